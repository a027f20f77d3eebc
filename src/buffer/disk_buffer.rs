//! [`DiskBuffer`]: the segment log at run time. One writer appends (a task's runs, which never
//! overlap), one reader takes batches in order and acknowledges them once delivered (the task's
//! drain). Appends are fsynced before [`DiskBuffer::append`] returns; acknowledgements move the
//! ledger and delete the segments read to the end.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

use super::error::{io, Error};
use super::frame::Frames;
use super::ledger::{Ledger, Position};
use super::reader::{Batch, Reader};
use super::recovery::{self, Recovery};
use super::segment::{self, HEADER_LEN};

/// How the buffer is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most bytes of undelivered records; an append that would pass it waits or fails.
    pub max_size: u64,
    /// A segment is closed and the next one started once it is this long.
    pub segment_size: u64,
}

impl Limits {
    /// `max_size`, with segments of an eighth of it (between 256 KiB and 32 MiB): space comes
    /// back a segment at a time, and a segment is read whole when the buffer is opened.
    pub fn new(max_size: u64) -> Self {
        Self {
            max_size,
            segment_size: (max_size / 8).clamp(256 << 10, 32 << 20),
        }
    }
}

/// Records and bytes waiting in the buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Level {
    /// Records not yet acknowledged.
    pub records: u64,
    /// Their bytes on disk (frames, without segment headers).
    pub bytes: u64,
}

/// A task's durable buffer; see the [module docs](super).
#[derive(Debug)]
pub struct DiskBuffer {
    dir: PathBuf,
    limits: Limits,
    /// The highest segment id the directory held or the ledger named at open (see
    /// [`recovery`]): the writer rolls past it even when the newest segment was set aside whole.
    last_id: u64,
    writer: Mutex<Writer>,
    reader: Mutex<Reader>,
    shared: Mutex<Shared>,
    ledger: Mutex<Ledger>,
    appended: Notify,
    freed: Notify,
    /// Held for as long as the buffer is open: one process per directory.
    _lock: File,
}

#[derive(Debug)]
struct Writer {
    id: u64,
    file: File,
    len: u64,
}

#[derive(Debug)]
struct Shared {
    level: Level,
    /// The end of the last fsynced append: the reader never reads past it.
    committed: Position,
    segments: VecDeque<u64>,
}

impl DiskBuffer {
    /// Opens (creating it if needed) the buffer in `dir`, mends what a crash or damage left (see
    /// [`Recovery`]), and locks it against other processes.
    pub fn open(dir: &Path, limits: Limits) -> Result<(Self, Recovery), Error> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        if let Err(error) = lock.try_lock() {
            return Err(match error {
                std::fs::TryLockError::WouldBlock => Error::Locked { path: dir.into() },
                std::fs::TryLockError::Error(source) => io("lock", lock_path)(source),
            });
        }
        let (mut opened, ledger) = recovery::recover(dir)?;
        let writer = match opened.segments.back() {
            Some(&id) if opened.newest_len < limits.segment_size => Writer {
                file: open_append(&segment::path(dir, id))?,
                id,
                len: opened.newest_len,
            },
            _ => {
                let id = opened.last_id + 1;
                if opened.segments.is_empty() {
                    opened.start = Position {
                        segment: id,
                        offset: HEADER_LEN,
                    };
                }
                opened.segments.push_back(id);
                create_segment(dir, id)?
            }
        };
        let shared = Shared {
            level: Level {
                records: opened.records,
                bytes: opened.bytes,
            },
            committed: Position {
                segment: writer.id,
                offset: writer.len,
            },
            segments: opened.segments,
        };
        let buffer = Self {
            dir: dir.into(),
            limits,
            last_id: opened.last_id,
            writer: Mutex::new(writer),
            reader: Mutex::new(Reader::new(opened.start)),
            shared: Mutex::new(shared),
            ledger: Mutex::new(ledger),
            appended: Notify::new(),
            freed: Notify::new(),
            _lock: lock,
        };
        Ok((buffer, opened.recovery))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What is waiting.
    pub fn level(&self) -> Level {
        lock(&self.shared).level
    }

    /// Appends `frames` and fsyncs them. [`Error::Full`] when they do not fit under `max-size`
    /// now (an append to an empty buffer always fits, however large); nothing is written then.
    pub fn append(&self, frames: &Frames) -> Result<(), Error> {
        let size = frames.bytes().len() as u64;
        if frames.records() == 0 {
            return Ok(());
        }
        let mut writer = lock(&self.writer);
        let held = lock(&self.shared).level.bytes;
        if held > 0 && held + size > self.limits.max_size {
            return Err(Error::Full);
        }
        if writer.len >= self.limits.segment_size {
            let next = create_segment(&self.dir, writer.id.max(self.last_id) + 1)?;
            lock(&self.shared).segments.push_back(next.id);
            *writer = next;
        }
        let start = writer.len;
        let path = segment::path(&self.dir, writer.id);
        let written = writer
            .file
            .write_all(frames.bytes())
            .and_then(|()| writer.file.sync_data());
        if let Err(error) = written {
            // Cut back, so that the next append does not follow a torn frame.
            let _ = writer.file.set_len(start);
            return Err(io("write to", path)(error));
        }
        writer.len += size;
        let mut shared = lock(&self.shared);
        shared.level.records += frames.records();
        shared.level.bytes += size;
        shared.committed = Position {
            segment: writer.id,
            offset: writer.len,
        };
        drop(shared);
        self.appended.notify_one();
        Ok(())
    }

    /// Reads up to `max` records after those read before, in order (possibly none). After an
    /// error the reader stands where it did (or after the records returned), so the read can be
    /// retried.
    pub fn read(&self, max: usize) -> Result<Batch, Error> {
        let mut reader = lock(&self.reader);
        let mut batch = Batch::default();
        // Records appended during this read are left to the next.
        let committed = lock(&self.shared).committed;
        let next = |after: u64| {
            let shared = lock(&self.shared);
            shared.segments.iter().copied().find(|&id| id > after)
        };
        while batch.records.len() < max && reader.at < committed {
            match reader.read_one(&self.dir, committed, next, &mut batch) {
                Ok(true) => {}
                Ok(false) => break,
                // The reader has moved past what it read: that is returned, and the error comes
                // again at the next read if it lasts.
                Err(_) if batch.bytes > 0 => break,
                Err(error) => return Err(error),
            }
        }
        if batch.bytes > 0 {
            batch.end = Some(reader.at);
        }
        Ok(batch)
    }

    /// The records of `batch` were delivered: the ledger moves past them (fsynced), segments
    /// read to the end are deleted, and a waiting append may find room.
    pub fn acknowledge(&self, batch: &Batch) -> Result<(), Error> {
        let Some(end) = batch.end else {
            return Ok(());
        };
        let mut ledger = lock(&self.ledger);
        let path = ledger.path().to_path_buf();
        ledger.save(end).map_err(io("write", path))?;
        drop(ledger);
        let mut shared = lock(&self.shared);
        while shared.segments.front().is_some_and(|&id| id < end.segment) {
            let id = shared.segments.pop_front().expect("checked");
            let path = segment::path(&self.dir, id);
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "cannot delete a delivered buffer segment");
            }
        }
        let level = &mut shared.level;
        level.records = level.records.saturating_sub(batch.records.len() as u64);
        level.bytes = level.bytes.saturating_sub(batch.bytes);
        if end == shared.committed {
            shared.level = Level::default();
        }
        drop(shared);
        self.freed.notify_one();
        Ok(())
    }

    /// Resolves after the next append (or at once if one happened since the last wait).
    pub async fn appended(&self) {
        self.appended.notified().await
    }

    /// Resolves after the next acknowledgement (or at once if one happened since the last wait).
    pub async fn freed(&self) {
        self.freed.notified().await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn open_append(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io("open", path))
}

/// Creates segment `id` with its header, durably (the file and its directory entry).
fn create_segment(dir: &Path, id: u64) -> Result<Writer, Error> {
    let path = segment::path(dir, id);
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .map_err(io("create", &path))?;
    file.write_all(&segment::header())
        .and_then(|()| file.sync_all())
        .and_then(|()| File::open(dir)?.sync_all())
        .map_err(io("create", &path))?;
    Ok(Writer {
        id,
        file: open_append(&path)?,
        len: HEADER_LEN,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        max_size: 1 << 20,
        segment_size: 600,
    };

    fn frames(numbers: std::ops::Range<u64>) -> Frames {
        let mut frames = Frames::new(1_700_000_000_000);
        for n in numbers {
            frames
                .push(|out| serde_json::to_writer(out, &serde_json::json!({ "n": n })))
                .unwrap();
        }
        frames
    }

    fn numbers(batch: &Batch) -> Vec<u64> {
        let number = |bytes: &[u8]| {
            let record: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            record["n"].as_u64().unwrap()
        };
        batch
            .records
            .iter()
            .map(|(_, bytes)| number(bytes))
            .collect()
    }

    fn open(dir: &Path) -> (DiskBuffer, Recovery) {
        DiskBuffer::open(dir, SMALL).unwrap()
    }

    /// Reads and acknowledges everything, `max` at a time.
    fn drain(buffer: &DiskBuffer, max: usize) -> Vec<u64> {
        let mut all = Vec::new();
        loop {
            let batch = buffer.read(max).unwrap();
            if batch.end.is_none() {
                return all;
            }
            all.extend(numbers(&batch));
            buffer.acknowledge(&batch).unwrap();
        }
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = open(dir.path());
        for start in (0..100).step_by(10) {
            buffer.append(&frames(start..start + 10)).unwrap();
        }
        assert!(segments(dir.path()).len() > 3, "segments were not rolled");
        assert_eq!(buffer.level().records, 100);
        let first = buffer.read(30).unwrap();
        assert_eq!(numbers(&first), (0..30).collect::<Vec<_>>());
        buffer.acknowledge(&first).unwrap();
        // Read but not acknowledged: delivered again after a reopen.
        assert_eq!(numbers(&buffer.read(5).unwrap()), [30, 31, 32, 33, 34]);
        drop(buffer);

        let (buffer, recovery) = open(dir.path());
        assert!(recovery.torn.is_empty() && recovery.corrupt.is_empty());
        assert_eq!(buffer.level().records, 70);
        buffer.append(&frames(100..105)).unwrap();
        assert_eq!(drain(&buffer, 7), (30..105).collect::<Vec<_>>());
        assert_eq!(buffer.level(), Level::default());
        assert_eq!(
            segments(dir.path()).len(),
            1,
            "delivered segments were kept"
        );
    }

    #[test]
    fn the_reader_never_keeps_bytes_past_the_last_fsynced_append() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = open(dir.path());
        buffer.append(&frames(0..3)).unwrap();
        // An append in progress: its bytes are in the file, but its fsync has not returned.
        let segment = segments(dir.path()).pop().unwrap();
        let committed = std::fs::metadata(&segment).unwrap().len();
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(frames(100..103).bytes()).unwrap();
        assert_eq!(numbers(&buffer.read(100).unwrap()), [0, 1, 2]);
        // Its fsync failed: the writer cut it off, and the next append writes other bytes there.
        file.set_len(committed).unwrap();
        buffer.append(&frames(3..6)).unwrap();
        assert_eq!(numbers(&buffer.read(100).unwrap()), [3, 4, 5]);
    }

    #[test]
    fn a_read_that_fails_can_be_retried_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = open(dir.path());
        for start in (0..100).step_by(10) {
            buffer.append(&frames(start..start + 10)).unwrap();
        }
        let all = segments(dir.path());
        assert!(all.len() > 2, "segments were not rolled");
        // The second segment cannot be opened for a while.
        let away = dir.path().join("away");
        std::fs::rename(&all[1], &away).unwrap();
        let first = buffer.read(100).unwrap();
        assert!(!first.records.is_empty());
        assert!(buffer.read(100).is_err());
        std::fs::rename(&away, &all[1]).unwrap();
        let mut read = numbers(&first);
        buffer.acknowledge(&first).unwrap();
        read.extend(drain(&buffer, 100));
        assert_eq!(read, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn a_new_segment_never_gets_the_name_of_one_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = open(dir.path());
        buffer.append(&frames(0..2)).unwrap();
        drop(buffer);
        // A newest segment, foreign: set aside whole at the next open.
        let first = segments(dir.path()).pop().unwrap();
        let mut foreign = segment::header().to_vec();
        foreign[0] = b'X';
        let newest_id = segment::id_of(first.file_name().unwrap().to_str().unwrap()).unwrap() + 1;
        std::fs::write(segment::path(dir.path(), newest_id), &foreign).unwrap();

        let (buffer, recovery) = open(dir.path());
        assert_eq!(recovery.corrupt.len(), 1, "{recovery:?}");
        for start in (2..100).step_by(10) {
            buffer.append(&frames(start..start + 10)).unwrap();
        }
        assert!(segments(dir.path()).len() > 2, "segments were not rolled");
        assert!(
            !segment::path(dir.path(), newest_id).exists(),
            "a new segment took the name of the one set aside"
        );
        assert_eq!(drain(&buffer, 100), (0..102).collect::<Vec<_>>());
    }

    #[test]
    fn a_second_process_cannot_open_the_same_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (_buffer, _) = open(dir.path());
        let error = DiskBuffer::open(dir.path(), SMALL).unwrap_err();
        assert!(matches!(error, Error::Locked { .. }), "{error}");
    }

    #[test]
    fn an_append_past_max_size_is_refused_unless_the_buffer_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_size: 100,
            segment_size: 1 << 20,
        };
        let (buffer, _) = DiskBuffer::open(dir.path(), limits).unwrap();
        buffer.append(&frames(0..10)).unwrap();
        assert!(matches!(buffer.append(&frames(10..11)), Err(Error::Full)));
        let batch = buffer.read(100).unwrap();
        buffer.acknowledge(&batch).unwrap();
        buffer.append(&frames(10..11)).unwrap();
        assert_eq!(drain(&buffer, 100), [10]);
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_everything_before_it_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = open(dir.path());
        buffer.append(&frames(0..3)).unwrap();
        buffer.append(&frames(3..6)).unwrap();
        drop(buffer);
        let newest = segments(dir.path()).pop().unwrap();
        let len = std::fs::metadata(&newest).unwrap().len();
        let file = OpenOptions::new().write(true).open(&newest).unwrap();
        file.set_len(len - 5).unwrap();

        let (buffer, recovery) = open(dir.path());
        assert_eq!(recovery.torn.len(), 1, "{recovery:?}");
        assert!(recovery.corrupt.is_empty(), "{recovery:?}");
        buffer.append(&frames(6..7)).unwrap();
        assert_eq!(drain(&buffer, 100), [0, 1, 2, 3, 4, 6]);
    }

    #[test]
    fn a_damaged_middle_frame_costs_that_record_only() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = open(dir.path());
        buffer.append(&frames(0..5)).unwrap();
        drop(buffer);
        let segment = segments(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        let frame = (bytes.len() - HEADER_LEN as usize) / 5;
        bytes[HEADER_LEN as usize + 2 * frame + 20] ^= 0x01;
        std::fs::write(&segment, &bytes).unwrap();

        let (buffer, recovery) = open(dir.path());
        assert_eq!(recovery.corrupt.len(), 1, "{recovery:?}");
        let corrupt = &recovery.corrupt[0];
        assert_eq!(corrupt.bytes, frame as u64);
        assert_eq!(std::fs::read(&corrupt.moved_to).unwrap().len(), frame);
        assert_eq!(buffer.level().records, 4);
        assert_eq!(drain(&buffer, 100), [0, 1, 3, 4]);
    }

    #[test]
    fn damage_found_while_reading_is_set_aside_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = open(dir.path());
        buffer.append(&frames(0..4)).unwrap();
        let segment = segments(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        let frame = (bytes.len() - HEADER_LEN as usize) / 4;
        bytes[HEADER_LEN as usize + frame + 13] ^= 0x01;
        std::fs::write(&segment, &bytes).unwrap();
        let batch = buffer.read(100).unwrap();
        assert_eq!(numbers(&batch), [0, 2, 3]);
        assert_eq!(batch.corrupt.len(), 1);
        buffer.acknowledge(&batch).unwrap();
        assert_eq!(buffer.level(), Level::default());
    }

    #[test]
    fn a_segment_of_a_newer_format_is_refused_and_a_foreign_one_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let (buffer, _) = open(dir.path());
        buffer.append(&frames(0..2)).unwrap();
        drop(buffer);
        let segment = segments(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[8] = 2;
        std::fs::write(&segment, &bytes).unwrap();
        let error = DiskBuffer::open(dir.path(), SMALL).unwrap_err();
        assert!(
            matches!(error, Error::NewerFormat { found: 2, .. }),
            "{error}"
        );

        bytes[0] = b'X';
        std::fs::write(&segment, &bytes).unwrap();
        let (buffer, recovery) = open(dir.path());
        assert_eq!(recovery.corrupt.len(), 1);
        assert!(!segment.exists());
        assert_eq!(drain(&buffer, 100), [] as [u64; 0]);
    }
}
