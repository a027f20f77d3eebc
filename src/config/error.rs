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
    #[error("config file {path} is empty; start from config/quickstart.yaml or config/reference.yaml")]
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

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}
