//! [`Pointer`]: a sink key that says where in a record a field is, as a JSON pointer (RFC 6901:
//! `/key`, `/nested/key`, `/list/0`; `""` is the whole record).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::config::BuildError;

/// A JSON pointer into a record.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Pointer(String);

impl Pointer {
    /// A pointer written `text`.
    pub fn new(text: &str) -> Self {
        Self(text.to_string())
    }

    /// The field of `record` it points at.
    pub fn get<'a>(&self, record: &'a Value) -> Option<&'a Value> {
        record.pointer(&self.0)
    }

    /// `""` or starting with `/`, as RFC 6901 wants; an error at `key` otherwise.
    pub fn check(&self, key: &str) -> Result<(), BuildError> {
        match self.0.is_empty() || self.0.starts_with('/') {
            true => Ok(()),
            false => Err(BuildError::at(
                key,
                format!(
                    "{:?} is not a JSON pointer; write /{} (or \"\" for the whole record)",
                    self.0, self.0
                ),
            )),
        }
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
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
        let error = Pointer::new("a").check("key").unwrap_err();
        assert_eq!(error.key(), Some("key"));
        assert!(error.to_string().contains("write /a"), "{error}");
    }
}
