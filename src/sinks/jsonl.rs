//! `sink.type: jsonl`: append one JSON object per line to a local file, fsynced after each batch.
//!
//! The file stays open for the whole run (opened at the first batch, closed when the run ends),
//! so a run of many small batches costs one open, not one per batch. A batch is written with one
//! `write` and then fsynced; if either fails, the file is cut back to where the batch started, so
//! a retry never leaves a torn line behind it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::config::BuildError;
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
    path: PathBuf,
    /// The file while a run is writing to it.
    file: Arc<Mutex<Option<File>>>,
}

/// Builds a `jsonl` sink.
pub fn build(config: JsonlSinkConfig) -> Result<JsonlSink, BuildError> {
    if config.path.as_os_str().is_empty() {
        return Err(BuildError::at("path", "must not be empty"));
    }
    Ok(JsonlSink {
        path: config.path,
        file: Arc::default(),
    })
}

#[async_trait::async_trait]
impl Sink for JsonlSink {
    async fn deliver(&self, _: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let mut text = Vec::with_capacity(batch.len() * 64);
        for record in batch {
            serde_json::to_writer(&mut text, record).expect("a JSON value serialises");
            text.push(b'\n');
        }
        let (path, file) = (self.path.clone(), self.file.clone());
        tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            append(&mut file, &path, &text)
        })
        .await
        .expect("file writes do not panic")
        .map_err(|error| {
            TaskError::with(format!("cannot append to {}", self.path.display()), error)
        })
    }

    fn end_run(&self) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        *file = None;
    }
}

/// Appends `text` and fsyncs; on failure cuts the file back and forgets the handle, so the next
/// attempt opens the file anew.
fn append(slot: &mut Option<File>, path: &Path, text: &[u8]) -> std::io::Result<()> {
    if slot.is_none() {
        *slot = Some(open(path)?);
    }
    let file = slot.as_mut().expect("opened above");
    let start = file.metadata()?.len();
    let written = file.write_all(text).and_then(|()| file.sync_data());
    if written.is_err() {
        let _ = file.set_len(start);
        *slot = None;
    }
    written
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_drops_the_handle_and_the_next_batch_opens_the_file_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut slot = None;
        append(&mut slot, &path, b"{\"a\":1}\n").unwrap();
        // A handle that cannot write: the batch fails and nothing of it remains.
        slot = Some(File::open(&path).unwrap());
        assert!(append(&mut slot, &path, b"{\"b\":2}\n").is_err());
        assert!(slot.is_none(), "the failed handle is dropped");
        append(&mut slot, &path, b"{\"c\":3}\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"c\":3}\n"
        );
    }
}
