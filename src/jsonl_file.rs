//! [`JsonlFile`]: a local file that takes JSON lines a batch at a time, for the `jsonl` sink and
//! for dead letters.
//!
//! The file stays open between batches (opened at the first, closed by [`JsonlFile::close`]), so
//! a run of many small batches costs one open, not one per batch. A batch is written with one
//! `write` and then fsynced; if either fails, the file is cut back to where the batch started, so
//! a retry never leaves a torn line behind it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// An append-only JSON-lines file.
#[derive(Debug, Clone)]
pub(crate) struct JsonlFile {
    path: PathBuf,
    /// The open file between batches.
    file: Arc<Mutex<Option<File>>>,
}

impl JsonlFile {
    /// The file at `path`; it and its directory are created at the first batch.
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: Arc::default(),
        }
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line per record and fsyncs: when it returns `Ok`, the lines are on disk.
    pub(crate) async fn append(&self, records: &[Value]) -> io::Result<()> {
        self.append_text(lines(records)).await
    }

    /// Appends `text` (whole lines) and fsyncs.
    pub(crate) async fn append_text(&self, text: Vec<u8>) -> io::Result<()> {
        let (path, file) = (self.path.clone(), self.file.clone());
        tokio::task::spawn_blocking(move || {
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            append(&mut file, &path, &text)
        })
        .await
        .expect("file writes do not panic")
    }

    /// Closes the file; the next batch opens it again.
    pub(crate) fn close(&self) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        *file = None;
    }
}

/// One compact JSON line per record.
pub(crate) fn lines(records: &[Value]) -> Vec<u8> {
    let mut text = Vec::with_capacity(records.len() * 64);
    for record in records {
        serde_json::to_writer(&mut text, record).expect("a JSON value serialises");
        text.push(b'\n');
    }
    text
}

/// Appends `text` and fsyncs; on failure cuts the file back and forgets the handle, so the next
/// attempt opens the file anew.
fn append(slot: &mut Option<File>, path: &Path, text: &[u8]) -> io::Result<()> {
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

fn open(path: &Path) -> io::Result<File> {
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
