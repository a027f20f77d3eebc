//! `sink.type: stdout`: one JSON object per line on standard output.

use std::io::Write;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::config::BuildError;
use crate::runner::{Sink, TaskContext, TaskError};

/// `sink: {type: stdout}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StdoutSinkConfig {}

/// The built sink.
#[derive(Debug)]
pub struct StdoutSink;

/// Builds a `stdout` sink.
pub fn build(_: StdoutSinkConfig) -> Result<StdoutSink, BuildError> {
    Ok(StdoutSink)
}

#[async_trait::async_trait]
impl Sink for StdoutSink {
    async fn deliver(&self, _: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let mut out = std::io::stdout().lock();
        let mut write = || -> std::io::Result<()> {
            for record in batch {
                serde_json::to_writer(&mut out, record)?;
                out.write_all(b"\n")?;
            }
            out.flush()
        };
        write().map_err(|error| TaskError::with("cannot write to stdout", error))
    }
}
