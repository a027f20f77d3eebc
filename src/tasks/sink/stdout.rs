//! `sink.type: stdout`: one JSON object per line on standard output.

use std::io::Write;

use serde::Deserialize;
use serde_json::Value;

use crate::runner::TaskError;

/// `sink: {type: stdout}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StdoutSinkConfig {
    /// Records per flush.
    #[serde(default = "super::default_batch_size")]
    pub batch_size: usize,
}

impl StdoutSinkConfig {
    pub(super) fn deliver(&self, batch: &[Value]) -> Result<(), TaskError> {
        let mut out = std::io::stdout().lock();
        let write = |out: &mut std::io::StdoutLock<'_>| -> std::io::Result<()> {
            for record in batch {
                serde_json::to_writer(&mut *out, record)?;
                out.write_all(b"\n")?;
            }
            out.flush()
        };
        write(&mut out).map_err(|error| TaskError::with("cannot write to stdout", error))
    }
}
