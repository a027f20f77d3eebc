//! Where extracted records go, chosen by `sink.type`: `http` (POST through the shared session),
//! `jsonl` (append to a local file) or `stdout`. A sink delivers in batches and returns only once
//! a batch is durable at its destination, so a task saves its cursor only after that.

mod http;
mod jsonl;
mod stdout;

use serde::Deserialize;
use serde_json::Value;

pub use http::HttpSinkConfig;
pub use jsonl::JsonlSinkConfig;
pub use stdout::StdoutSinkConfig;

use crate::runner::{BuildError, TaskContext, TaskError};

/// `sink:`, chosen by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SinkConfig {
    /// POST batches to the target API through the shared session.
    Http(HttpSinkConfig),
    /// Append to a JSON-lines file.
    Jsonl(JsonlSinkConfig),
    /// Print one JSON object per line on stdout.
    Stdout(StdoutSinkConfig),
}

impl SinkConfig {
    /// Checks the keys serde cannot.
    pub fn check(&self) -> Result<(), BuildError> {
        let batch = match self {
            Self::Http(c) => c.batch_size,
            Self::Jsonl(c) => c.batch_size,
            Self::Stdout(c) => c.batch_size,
        };
        if batch == 0 {
            return Err(BuildError::at("sink.batch-size", "must be at least 1"));
        }
        if let Self::Jsonl(c) = self {
            if c.path.as_os_str().is_empty() {
                return Err(BuildError::at("sink.path", "must not be empty"));
            }
        }
        Ok(())
    }

    /// Delivers `records` in batches; returns after the last batch is delivered, or at the first
    /// batch that failed.
    pub async fn deliver(&self, ctx: &TaskContext, records: &[Value]) -> Result<(), TaskError> {
        let batch_size = match self {
            Self::Http(c) => c.batch_size,
            Self::Jsonl(c) => c.batch_size,
            Self::Stdout(c) => c.batch_size,
        };
        for batch in records.chunks(batch_size) {
            if ctx.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            match self {
                Self::Http(c) => c.deliver(ctx, batch).await?,
                Self::Jsonl(c) => c.deliver(batch).await?,
                Self::Stdout(c) => c.deliver(batch)?,
            }
            ctx.records_delivered(batch.len() as u64);
        }
        Ok(())
    }
}

fn default_batch_size() -> usize {
    500
}
