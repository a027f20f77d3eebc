//! `sink.type: jsonl`: append one JSON object per line to a local file, fsynced after each batch.

use std::io::Write;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::runner::TaskError;

/// `sink: {type: jsonl, path: out/records.jsonl}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JsonlSinkConfig {
    /// The file to append to; it and its directory are created when missing.
    pub path: PathBuf,
    /// Records per write (each write is fsynced).
    #[serde(default = "super::default_batch_size")]
    pub batch_size: usize,
}

impl JsonlSinkConfig {
    pub(super) async fn deliver(&self, batch: &[Value]) -> Result<(), TaskError> {
        let path = self.path.clone();
        let mut text = Vec::new();
        for record in batch {
            serde_json::to_writer(&mut text, record).expect("a JSON value serialises");
            text.push(b'\n');
        }
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            file.write_all(&text)?;
            file.sync_all()
        })
        .await
        .expect("file writes do not panic")
        .map_err(|error| {
            TaskError::with(format!("cannot append to {}", self.path.display()), error)
        })
    }
}
