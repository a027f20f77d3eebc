//! Blocks that belong to a registered component: `auth:`, each task's own keys, `sink:`.
//!
//! The config layer does not know which credential providers, task types or sinks exist; a
//! [`Catalog`] (the registry, above the runner) does. The loader keeps such a block as a
//! [`ComponentConfig`] (its `type` and its other keys), checks its shape against the schema the
//! catalog describes, and lets the catalog build it to find the problems a schema cannot express.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::Problem;
use super::sections::Sections;

/// A block chosen by `type`, before the component it names has read it.
#[derive(Clone, PartialEq)]
pub struct ComponentConfig {
    /// The `type` key: the name the component was registered under.
    pub type_name: String,
    /// Every other key of the block, for the component to deserialize.
    pub keys: Map<String, Value>,
}

impl ComponentConfig {
    /// A block of type `type_name` with `keys`.
    pub fn new(type_name: &str, keys: Map<String, Value>) -> Self {
        Self {
            type_name: type_name.to_string(),
            keys,
        }
    }
}

/// Only the type and the key names: the values may be secrets.
impl fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentConfig")
            .field("type", &self.type_name)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'de> Deserialize<'de> for ComponentConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut keys = Map::deserialize(deserializer)?;
        match keys.remove("type") {
            Some(Value::String(type_name)) => Ok(Self { type_name, keys }),
            Some(_) => Err(D::Error::custom("`type` must be a string")),
            None => Err(D::Error::missing_field("type")),
        }
    }
}

/// The placeholder the registry replaces with the schemas of the registered components.
impl schemars::JsonSchema for ComponentConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ComponentConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "properties": {"type": {"type": "string"}},
            "required": ["type"]
        })
    }
}

/// The kinds of component a config refers to by `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `auth:`: a credential provider.
    Provider,
    /// `tasks[]`: a task type.
    Task,
    /// `tasks[].sink`: where records go.
    Sink,
}

/// What the loader needs to know about the registered components. The registry implements it.
pub trait Catalog {
    /// The JSON Schema of the whole config file, with every registered component's keys.
    fn schema(&self) -> Value;

    /// Builds `block` (the component of `kind` written at key path `at`, with the file's shared
    /// `sections`) to find the problems its keys have beyond their shape, each with its full key
    /// path.
    fn check(
        &self,
        kind: Kind,
        block: &ComponentConfig,
        sections: &Sections,
        at: &str,
    ) -> Vec<Problem>;
}

/// A component's keys are valid for serde but not for the component: a URL that does not parse,
/// two keys that exclude each other. Key paths are relative to the component's block. One error
/// may hold several problems ([`BuildError::and`]), so one `validate` lists them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    problems: Vec<(Option<String>, String)>,
}

impl BuildError {
    /// A problem with the key `key` (relative to the block, such as `source.url`).
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Self {
            problems: vec![(Some(key.to_string()), message.into())],
        }
    }

    /// A problem with the block as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            problems: vec![(None, message.into())],
        }
    }

    /// This error and the problems of `other`.
    pub fn and(mut self, other: BuildError) -> Self {
        self.problems.extend(other.problems);
        self
    }

    /// Every problem of `errors`, or `None` when there are none.
    pub fn all(errors: impl IntoIterator<Item = BuildError>) -> Option<Self> {
        errors.into_iter().reduce(Self::and)
    }

    /// The key of the first problem.
    pub fn key(&self) -> Option<&str> {
        self.problems.first().and_then(|(key, _)| key.as_deref())
    }

    /// The problems as found in the config file, where the block is at key path `at`.
    pub fn locate(&self, at: &str) -> Vec<Problem> {
        let place = |key: &Option<String>| match key {
            Some(key) if at.is_empty() => key.clone(),
            Some(key) => format!("{at}.{key}"),
            None => at.to_string(),
        };
        self.problems
            .iter()
            .map(|(key, message)| Problem {
                path: place(key),
                line: None,
                message: message.clone(),
            })
            .collect()
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, (key, message)) in self.problems.iter().enumerate() {
            if position > 0 {
                f.write_str("; ")?;
            }
            match key {
                Some(key) => write!(f, "{key}: {message}")?,
                None => f.write_str(message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_type_is_taken_out_of_the_keys() {
        let block: ComponentConfig =
            serde_json::from_value(serde_json::json!({"type": "jsonl", "path": "out.jsonl"}))
                .unwrap();
        assert_eq!(block.type_name, "jsonl");
        assert_eq!(block.keys.keys().collect::<Vec<_>>(), ["path"]);
        let missing = serde_json::from_value::<ComponentConfig>(serde_json::json!({"path": "x"}));
        assert!(missing.unwrap_err().to_string().contains("type"));
    }

    #[test]
    fn debug_shows_key_names_only() {
        let block: ComponentConfig =
            serde_json::from_value(serde_json::json!({"type": "token", "token": "s3cret"}))
                .unwrap();
        let debug = format!("{block:?}");
        assert!(
            debug.contains("token") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn problems_are_placed_under_the_block() {
        let paths = |error: BuildError, at: &str| -> Vec<String> {
            error.locate(at).into_iter().map(|p| p.path).collect()
        };
        assert_eq!(
            paths(BuildError::at("source.url", "bad"), "tasks[2]"),
            ["tasks[2].source.url"]
        );
        assert_eq!(paths(BuildError::new("bad"), "auth"), ["auth"]);
        let both = BuildError::at("client-id", "bad").and(BuildError::at("tenant", "bad"));
        assert_eq!(paths(both, ""), ["client-id", "tenant"]);
    }
}
