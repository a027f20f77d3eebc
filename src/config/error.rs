//! What can go wrong while loading a config, worded for the person who wrote it.

use std::fmt;
use std::path::PathBuf;

use super::path::KeyPath;

/// One problem found in the config, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the config, e.g. `tasks[1].schedule.interval`.
    pub path: String,
    /// The line in the YAML file, when the key is written there (not for environment overrides
    /// or missing keys' parents that are themselves missing).
    pub line: Option<usize>,
    /// What is wrong and, where it helps, what to do. Never contains a secret value.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(path: &KeyPath, message: impl Into<String>) -> Self {
        Self {
            path: path.to_string(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Loading the config failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file has nothing in it.
    #[error(
        "config file {path} is empty; start from config/quickstart.yaml or config/reference.yaml"
    )]
    Empty {
        /// The config file.
        path: PathBuf,
    },
    /// The YAML could not be parsed.
    #[error("config file {path} is not valid YAML: {message}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The YAML parsed, but its content has problems.
    #[error("config file {path} has {count} problem{s}:{list}", count = problems.len(), s = if problems.len() == 1 { "" } else { "s" }, list = ProblemList(problems))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Every problem found, in file order where known.
        problems: Vec<Problem>,
    },
}

/// A serde error message without the value it quotes. serde writes `invalid type: string
/// "hunter2", expected a map`, and the value may well be a secret in the wrong place; this keeps
/// the kind that was found, what was expected and the position.
pub fn without_values(message: &str) -> String {
    let prefixes = ["invalid type: ", "invalid value: "];
    let Some((prefix, rest)) = prefixes
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix).map(|rest| (prefix, rest)))
    else {
        return message.to_string();
    };
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let kind = found
        .split(['"', '`', '\''])
        .next()
        .unwrap_or_default()
        .trim();
    if expected.is_empty() {
        format!("{prefix}{kind}")
    } else {
        format!("{prefix}{kind}, expected {expected}")
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_the_quoted_value_and_keep_the_rest() {
        let cases = [
            (
                "invalid type: string \"Bearer s3cret\", expected a map",
                "invalid type: string, expected a map",
            ),
            (
                "invalid type: integer `987654321`, expected a string at line 1 column 40",
                "invalid type: integer, expected a string at line 1 column 40",
            ),
            ("invalid value: string \"x\"", "invalid value: string"),
            ("missing field `source`", "missing field `source`"),
        ];
        for (message, expected) in cases {
            assert_eq!(without_values(message), expected);
        }
    }
}
