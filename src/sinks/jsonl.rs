//! `sink.type: jsonl`: append one JSON object per line to a local file, fsynced after each batch.
//! The file stays open for the run, and a failed batch leaves no torn line (see `JsonlFile`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::config::BuildError;
use crate::jsonl_file::JsonlFile;
use crate::runner::{Sink, TaskContext, TaskError};

/// `sink: {type: jsonl, path: out/records.jsonl}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JsonlSinkConfig {
    /// The file to append to; it and its directory are created when missing.
    pub path: PathBuf,
}

/// The built sink.
#[derive(Debug)]
pub struct JsonlSink {
    file: JsonlFile,
}

/// Builds a `jsonl` sink.
pub fn build(config: JsonlSinkConfig) -> Result<JsonlSink, BuildError> {
    if config.path.as_os_str().is_empty() {
        return Err(BuildError::at("path", "must not be empty"));
    }
    Ok(JsonlSink {
        file: JsonlFile::new(config.path),
    })
}

#[async_trait::async_trait]
impl Sink for JsonlSink {
    async fn deliver(&self, _: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        self.file.append(batch).await.map_err(|error| {
            TaskError::with(
                format!("cannot append to {}", self.file.path().display()),
                error,
            )
        })
    }

    fn end_run(&self) {
        self.file.close();
    }
}
