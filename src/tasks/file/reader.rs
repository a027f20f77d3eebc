//! Reading a file's new lines a batch at a time, so memory holds one batch and one line, however
//! large the unread part of the file is.
//!
//! Only complete lines (ending in a newline) are read: a line being written is left for a later
//! run. Reading stops at the length the file had when it was opened, so a run ends even while a
//! writer keeps appending. A line longer than `max-line-bytes` is skipped without being held:
//! the reader reports it and discards bytes up to its newline, and when the file ends first (a
//! huge line still being written), it remembers to go on discarding next time
//! ([`Batch::in_long_line`]), so such a line is read once, not on every run for ever.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Take};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::identity::FileId;

/// Reading a file failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A line is not JSON.
    #[error("{path}: the line at byte {offset} is not JSON")]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Where the line starts.
        offset: u64,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// One batch of records and where the file is read up to after them.
#[derive(Debug, Default)]
pub(super) struct Batch {
    /// The records, at most the batch size.
    pub records: Vec<Value>,
    /// The offset past the last line consumed (records, blank and skipped lines).
    pub offset: u64,
    /// Whether the offset is inside a too-long line whose rest is to be discarded.
    pub in_long_line: bool,
    /// Where each line skipped as too long starts.
    pub too_long: Vec<u64>,
    /// Whether nothing more can be read from the file this run.
    pub done: bool,
}

/// A file being read from an offset.
#[derive(Debug)]
pub(super) struct LineReader {
    path: PathBuf,
    reader: BufReader<Take<File>>,
    offset: u64,
    in_long_line: bool,
    max_line_bytes: usize,
    done: bool,
}

/// Where to start and how long lines may be.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resume {
    /// The byte to start at.
    pub offset: u64,
    /// Whether that byte is inside a too-long line.
    pub in_long_line: bool,
    /// The longest line read, without its newline.
    pub max_line_bytes: usize,
}

impl LineReader {
    /// Opens `path` at `resume.offset` if it is still the file `id` and at least that long;
    /// `None` if it was renamed, replaced or truncated since the walk (the next run sees it).
    pub fn open(path: &Path, id: FileId, resume: Resume) -> Result<Option<Self>, ReadError> {
        let io = |source| io_error(path, source);
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(error)),
        };
        let metadata = file.metadata().map_err(io)?;
        if FileId::of(&metadata) != id || metadata.len() < resume.offset {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(resume.offset)).map_err(io)?;
        let unread = metadata.len() - resume.offset;
        Ok(Some(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, file.take(unread)),
            offset: resume.offset,
            in_long_line: resume.in_long_line,
            max_line_bytes: resume.max_line_bytes,
            done: false,
        }))
    }

    /// Reads up to `size` records. Blocking: call it from `spawn_blocking`.
    pub fn next_batch(&mut self, size: usize) -> Result<Batch, ReadError> {
        let mut batch = Batch::default();
        let mut line = Vec::new();
        while !self.done && batch.records.len() < size {
            if self.in_long_line {
                self.discard_rest_of_line()?;
                continue;
            }
            line.clear();
            let limit = (self.max_line_bytes as u64).saturating_add(1);
            let read = (&mut self.reader)
                .take(limit)
                .read_until(b'\n', &mut line)
                .map_err(|source| io_error(&self.path, source))?;
            let start = self.offset;
            if line.last() == Some(&b'\n') {
                self.offset += read as u64;
                if let Some(record) = self.parse(&line, start)? {
                    batch.records.push(record);
                }
            } else if line.len() > self.max_line_bytes {
                self.offset += read as u64;
                self.in_long_line = true;
                batch.too_long.push(start);
            } else {
                // The end of the file, or a line not complete yet: left for a later run.
                self.done = true;
            }
        }
        batch.offset = self.offset;
        batch.in_long_line = self.in_long_line;
        batch.done = self.done;
        Ok(batch)
    }

    fn parse(&self, line: &[u8], offset: u64) -> Result<Option<Value>, ReadError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(line)
            .map(Some)
            .map_err(|source| ReadError::NotJson {
                path: self.path.clone(),
                offset,
                source,
            })
    }

    /// Discards bytes up to and including the next newline, or to the end of what can be read.
    fn discard_rest_of_line(&mut self) -> Result<(), ReadError> {
        loop {
            let buffer = self
                .reader
                .fill_buf()
                .map_err(|source| io_error(&self.path, source))?;
            if buffer.is_empty() {
                self.done = true;
                return Ok(());
            }
            let (used, found) = match buffer.iter().position(|b| *b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buffer.len(), false),
            };
            self.reader.consume(used);
            self.offset += used as u64;
            if found {
                self.in_long_line = false;
                return Ok(());
            }
        }
    }
}

fn io_error(path: &Path, source: io::Error) -> ReadError {
    ReadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_with(dir: &tempfile::TempDir, text: &[u8], resume: Resume) -> LineReader {
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, text).unwrap();
        let id = FileId::of(&std::fs::metadata(&path).unwrap());
        LineReader::open(&path, id, resume).unwrap().unwrap()
    }

    fn from(offset: u64, max_line_bytes: usize) -> Resume {
        Resume {
            offset,
            in_long_line: false,
            max_line_bytes,
        }
    }

    #[test]
    fn reads_complete_lines_in_batches_and_leaves_an_unfinished_one() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"{\"n\":1}\n\n{\"n\":2}\n{\"n\":3}\n{\"n\":";
        let mut reader = open_with(&dir, text, from(0, 100));
        let first = reader.next_batch(2).unwrap();
        assert_eq!(first.records.len(), 2);
        assert_eq!(
            first.offset, 17,
            "past the blank line and the second record"
        );
        assert!(!first.done);
        let second = reader.next_batch(2).unwrap();
        assert_eq!(second.records, [serde_json::json!({"n": 3})]);
        assert_eq!(second.offset, 25, "not into the unfinished line");
        assert!(second.done);
    }

    #[test]
    fn a_too_long_line_is_skipped_and_its_unfinished_rest_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let long = vec![b'x'; 100];
        let mut text = b"{\"n\":1}\n".to_vec();
        text.extend(&long);
        text.extend(b"\n{\"n\":2}\n");
        text.extend(&long);
        let mut reader = open_with(&dir, &text, from(0, 20));
        let batch = reader.next_batch(10).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.too_long, [8, 117]);
        assert_eq!(batch.offset, text.len() as u64);
        assert!(batch.in_long_line && batch.done);

        // Later the long line ends: its rest is discarded without being counted again.
        text.extend(b"yy\n{\"n\":3}\n");
        let resume = Resume {
            offset: batch.offset,
            in_long_line: true,
            max_line_bytes: 20,
        };
        let batch = open_with(&dir, &text, resume).next_batch(10).unwrap();
        assert_eq!(batch.records, [serde_json::json!({"n": 3})]);
        assert!(batch.too_long.is_empty() && !batch.in_long_line);
    }

    #[test]
    fn a_line_of_exactly_max_line_bytes_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = open_with(&dir, b"{\"n\":12}\n", from(0, 8));
        let batch = reader.next_batch(10).unwrap();
        assert_eq!(batch.records.len(), 1);
        assert!(batch.too_long.is_empty());
    }

    #[test]
    fn a_line_that_is_not_json_is_an_error_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = open_with(&dir, b"{\"n\":1}\nnope\n", from(0, 100));
        let error = reader.next_batch(10).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("the line at byte 8 is not JSON"),
            "{error}"
        );
    }

    #[test]
    fn another_file_at_the_path_is_not_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, b"{}\n").unwrap();
        let id = FileId::of(&std::fs::metadata(&path).unwrap());
        std::fs::rename(&path, dir.path().join("old.jsonl")).unwrap();
        std::fs::write(&path, b"{}\n").unwrap();
        assert!(LineReader::open(&path, id, from(0, 100)).unwrap().is_none());
    }
}
