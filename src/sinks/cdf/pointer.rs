//! [`Pointer`]: a sink key that says where in a record a field is, as a JSON pointer (RFC 6901:
//! `/key`, `/nested/key`, `/list/0`; `""` is the whole record).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::config::BuildError;

/// A JSON pointer into a record, split into its reference tokens once: it is followed for every
/// record, and `Value::pointer` splits and unescapes the text at each call (a third of the
/// datapoints sink's time in `perf`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub struct Pointer {
    text: String,
    /// The tokens after the first `/`, unescaped (`~1` is `/`, `~0` is `~`).
    tokens: Vec<String>,
}

impl From<String> for Pointer {
    fn from(text: String) -> Self {
        let tokens = match text.strip_prefix('/') {
            Some(rest) => rest
                .split('/')
                .map(|token| token.replace("~1", "/").replace("~0", "~"))
                .collect(),
            None => Vec::new(),
        };
        Self { text, tokens }
    }
}

impl JsonSchema for Pointer {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "JsonPointer".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A JSON pointer (RFC 6901) into a record: /key, /nested/key, /list/0; \"\" is the whole record.",
        })
    }
}

impl Pointer {
    /// A pointer written `text`.
    pub fn new(text: &str) -> Self {
        Self::from(text.to_string())
    }

    /// The field of `record` it points at (as [`Value::pointer`] finds it). A text that is not
    /// a pointer points at nothing ([`Self::check`] refuses it in the config).
    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        if !self.text.is_empty() && !self.text.starts_with('/') {
            return None;
        }
        self.tokens
            .iter()
            .try_fold(record, |value, token| match value {
                Value::Object(map) => map.get(token),
                Value::Array(list) => index(token).and_then(|at| list.get(at)),
                _ => None,
            })
    }

    /// `""` or starting with `/`, as RFC 6901 wants; an error at `key` otherwise.
    pub fn check(&self, key: &str) -> Result<(), BuildError> {
        match self.text.is_empty() || self.text.starts_with('/') {
            true => Ok(()),
            false => Err(BuildError::at(
                key,
                format!(
                    "{:?} is not a JSON pointer; write /{} (or \"\" for the whole record)",
                    self.text, self.text
                ),
            )),
        }
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// An array index as RFC 6901 writes it: digits, no leading zero (`-`, past the end, is none).
fn index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    let canonical = token == "0" || !token.starts_with('0');
    (digits && canonical).then(|| token.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_into_records_and_checks_its_form() {
        let record = serde_json::json!({"a": {"b": [1, 2]}});
        assert_eq!(Pointer::new("/a/b/1").get(&record), Some(&Value::from(2)));
        assert_eq!(Pointer::new("").get(&record), Some(&record));
        assert_eq!(Pointer::new("/x").get(&record), None);
        // The same answers as serde_json's own pointer, escapes and odd indexes included.
        let odd = serde_json::json!({"a/b": 1, "m~n": 2, "": 3, "l": [4, 5], "n": {"0": 6}});
        for text in [
            "/a~1b", "/m~0n", "/", "/l/1", "/l/01", "/l/-", "/l/2", "/n/0", "/l/x", "",
        ] {
            assert_eq!(Pointer::new(text).get(&odd), odd.pointer(text), "{text}");
        }
        let error = Pointer::new("a").check("key").unwrap_err();
        assert_eq!(error.key(), Some("key"));
        assert!(error.to_string().contains("write /a"), "{error}");
    }
}
