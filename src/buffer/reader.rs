//! [`Reader`]: the buffer's read side. It reads frames in order from the read position up to
//! the end of the last fsynced append, moving on to the next segment at the end of one, and
//! verifies each frame's CRC; damage met here (bytes that went bad after the buffer was opened)
//! is set aside like damage found at open, and reading goes on after it.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Take};
use std::path::{Path, PathBuf};

use super::error::{io, Error};
use super::frame::{self, Parsed};
use super::ledger::Position;
use super::recovery::{self, Corrupt};
use super::segment::{self, HEADER_LEN};

/// Records read from the buffer, in order, not yet acknowledged.
#[derive(Debug, Default)]
pub struct Batch {
    /// The records: append time (ms since the epoch) and JSON bytes.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Damaged regions met and set aside on the way.
    pub corrupt: Vec<Corrupt>,
    /// Bytes read past: frames, and damage set aside.
    pub(super) bytes: u64,
    /// Where reading stopped, if it moved at all.
    pub(super) end: Option<Position>,
}

impl Batch {
    /// Whether reading moved at all (past records, or past damage).
    pub fn is_empty(&self) -> bool {
        self.end.is_none()
    }

    /// Adds `later`, read after this batch, to it.
    pub fn extend(&mut self, later: Batch) {
        self.records.extend(later.records);
        self.corrupt.extend(later.corrupt);
        self.bytes += later.bytes;
        self.end = later.end.or(self.end);
    }
}

#[derive(Debug)]
pub(super) struct Reader {
    /// Where the next record starts.
    pub(super) at: Position,
    /// The segment `at` is in, positioned at `at`. The file under the buffer reads no further
    /// than the end [`Reader::end`] gave (the limit of its `Take`): bytes past the last fsynced
    /// append may belong to an append whose fsync fails, which the writer cuts off before writing
    /// other bytes at the same offsets, and a copy buffered here would be read in their place.
    file: Option<BufReader<Take<File>>>,
    /// Its path, kept for error messages.
    path: PathBuf,
    /// Its length, once the writer has moved on to a later segment.
    complete: Option<u64>,
    /// The frame being read.
    frame: Vec<u8>,
}

impl Reader {
    /// A reader starting at `at`.
    pub(super) fn new(at: Position) -> Self {
        Self {
            at,
            file: None,
            path: PathBuf::new(),
            complete: None,
            frame: Vec::new(),
        }
    }

    /// Reads the record at the reader's position (or moves to the next segment, or sets a
    /// damaged region aside). `next` gives the segment after the one given, if there is one yet.
    /// Returns false when there is nothing more to read now.
    pub(super) fn read_one(
        &mut self,
        dir: &Path,
        committed: Position,
        next: impl FnOnce(u64) -> Option<u64>,
        batch: &mut Batch,
    ) -> Result<bool, Error> {
        let reader = self;
        let end = reader.end(dir, committed)?;
        if reader.at.offset >= end {
            let Some(next) = next(reader.at.segment) else {
                return Ok(false);
            };
            reader.move_to(Position {
                segment: next,
                offset: HEADER_LEN,
            });
            return Ok(true);
        }
        if let Err(error) = reader.fetch_frame(end) {
            // The file stands somewhere in the frame: reopen it at `at` at the next read.
            reader.file = None;
            return Err(io("read", &reader.path)(error));
        }
        if let Parsed::Frame {
            appended_ms,
            record,
            len,
        } = frame::parse(&reader.frame)
        {
            batch.records.push((appended_ms, record.to_vec()));
            batch.bytes += len as u64;
            reader.at.offset += len as u64;
            return Ok(true);
        }
        reader.set_aside(dir, end, batch)?;
        Ok(true)
    }

    /// The reader stands on damage: copies the bytes up to the next intact frame (or the end of
    /// what can be read) to `corrupt/` and moves past them.
    fn set_aside(&mut self, dir: &Path, end: u64, batch: &mut Batch) -> Result<(), Error> {
        let reader = self;
        let path = segment::path(dir, reader.at.segment);
        let mut file = File::open(&path).map_err(io("open", &path))?;
        let mut rest = Vec::new();
        file.seek(SeekFrom::Start(reader.at.offset))
            .and_then(|_| file.take(end - reader.at.offset).read_to_end(&mut rest))
            .map_err(io("read", &path))?;
        let skip = frame::next_frame(&rest, 1).unwrap_or(rest.len());
        let moved_to = recovery::corrupt_path(dir, reader.at.segment, reader.at.offset)?;
        std::fs::write(&moved_to, &rest[..skip]).map_err(io("write", &moved_to))?;
        batch.corrupt.push(Corrupt {
            segment: path,
            offset: reader.at.offset,
            bytes: skip as u64,
            moved_to,
        });
        batch.bytes += skip as u64;
        let after = Position {
            segment: reader.at.segment,
            offset: reader.at.offset + skip as u64,
        };
        reader.move_to(after);
        Ok(())
    }

    /// Where reading must stop in the current segment (which it opens if needed): the end of
    /// the last append there, or the end of the file once the writer has moved on.
    fn end(&mut self, dir: &Path, committed: Position) -> Result<u64, Error> {
        if self.file.is_none() {
            let path = segment::path(dir, self.at.segment);
            let mut file = File::open(&path).map_err(io("open", &path))?;
            file.seek(SeekFrom::Start(self.at.offset))
                .map_err(io("read", &path))?;
            self.path = path;
            self.file = Some(BufReader::with_capacity(1 << 20, file.take(0)));
        }
        if self.at.segment == committed.segment {
            return Ok(committed.offset);
        }
        if let Some(len) = self.complete {
            return Ok(len);
        }
        let file = self
            .file
            .as_ref()
            .expect("opened above")
            .get_ref()
            .get_ref();
        let len = file.metadata().map_err(io("read", &self.path))?.len();
        self.complete = Some(len);
        Ok(len)
    }

    /// Reads the frame at `at` into `frame`, reading the file no further than `end`; leaves
    /// `frame` empty when its header is damaged or announces more than there is.
    fn fetch_frame(&mut self, end: u64) -> std::io::Result<()> {
        let file = self.file.as_mut().expect("opened by end()");
        let left = end - self.at.offset;
        // The file stands past `at` by what is buffered: it may read on up to `end`, no further.
        let buffered = file.buffer().len() as u64;
        file.get_mut().set_limit(left.saturating_sub(buffered));
        self.frame.clear();
        let mut header = [0; frame::HEADER_LEN];
        if left < header.len() as u64 {
            return Ok(());
        }
        file.read_exact(&mut header)?;
        let whole = frame::announced_len(&header).map(|len| (frame::HEADER_LEN + len) as u64);
        let Some(whole) = whole.filter(|&whole| whole <= left) else {
            // The header was consumed; reopen at `at` before reading on.
            self.move_to(self.at);
            return Ok(());
        };
        self.frame.extend_from_slice(&header);
        self.frame.resize(whole as usize, 0);
        file.read_exact(&mut self.frame[frame::HEADER_LEN..])
    }

    /// Reads on from `at` (reopening the segment at the next read).
    fn move_to(&mut self, at: Position) {
        if at.segment != self.at.segment {
            self.complete = None;
        }
        self.at = at;
        self.file = None;
    }
}
