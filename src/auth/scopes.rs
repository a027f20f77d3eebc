//! [`Scopes`]: the `scopes` key every OAuth provider takes, written as a list or as one
//! space-separated string (the form the `scope` field of a token request has anyway).

use schemars::JsonSchema;
use serde::Deserialize;

/// OAuth scopes, written as a list or as one space-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[schemars(with = "ScopesSchema")]
pub struct Scopes(pub Vec<String>);

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ScopesSchema {
    Joined(String),
    List(Vec<String>),
}

impl Scopes {
    /// True when no scope is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes joined with spaces, as the `scope` form field wants them.
    pub fn joined(&self) -> String {
        self.0.join(" ")
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Joined(String),
            List(Vec<String>),
        }
        let list = match Either::deserialize(deserializer)? {
            Either::Joined(text) => text.split_whitespace().map(str::to_owned).collect(),
            Either::List(list) => list,
        };
        Ok(Self(list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_and_a_joined_string_mean_the_same() {
        let joined: Scopes = serde_yaml::from_str("\"api.read  api.write\"").unwrap();
        let list: Scopes = serde_yaml::from_str("[api.read, api.write]").unwrap();
        assert_eq!(joined, list);
        assert_eq!(joined.joined(), "api.read api.write");
    }
}
