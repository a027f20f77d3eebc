//! Opening a buffer directory after whatever happened to it: a clean stop, a `kill -9`, a power
//! cut, a damaged disk. Nothing here refuses to start over damage:
//!
//! - segments before the ledger's position were delivered and are deleted;
//! - a torn end of the newest segment (a write a crash cut short: its append never returned, so
//!   no run counted on it) is cut off;
//! - a damaged region anywhere else holds no intact frame between two intact ones (or runs to the
//!   end of an older segment): its bytes are copied to `corrupt/`, and the segment is rewritten
//!   with its intact frames only. The records in the region are lost, nothing else is;
//! - a segment whose header is not ours is moved to `corrupt/` whole.
//!
//! Only a format written by a newer tapline stops the open ([`Error::NewerFormat`]): that is no
//! damage, and guessing at it could lose records.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::error::{io, Error};
use super::ledger::{Ledger, Loaded, Position};
use super::segment::{self, Header, HEADER_LEN};
use crate::atomic_file::{self, Access};

/// What opening found and mended, for the caller to log and count.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Torn ends cut off the newest segment: `(segment, bytes)`.
    pub torn: Vec<(PathBuf, u64)>,
    /// Damaged regions set aside.
    pub corrupt: Vec<Corrupt>,
    /// The ledger could not be read: reading starts at the oldest segment, so records delivered
    /// before may be delivered again.
    pub ledger_unreadable: bool,
}

/// A damaged region, set aside.
#[derive(Debug, Clone)]
pub struct Corrupt {
    /// The segment it was in.
    pub segment: PathBuf,
    /// Where it started.
    pub offset: u64,
    /// How long it was.
    pub bytes: u64,
    /// Where its bytes are now.
    pub moved_to: PathBuf,
}

/// The directory as it is after the repairs.
#[derive(Debug)]
pub(super) struct Opened {
    /// The segment ids, oldest first.
    pub segments: VecDeque<u64>,
    /// The length of the newest segment.
    pub newest_len: u64,
    /// The highest segment id the directory held or the ledger named: a new segment gets a
    /// higher one, never the name of one set aside.
    pub last_id: u64,
    /// Where reading starts.
    pub start: Position,
    /// Records and frame bytes not delivered yet.
    pub records: u64,
    pub bytes: u64,
    pub recovery: Recovery,
}

/// One segment after its repair.
struct Repaired {
    records: u64,
    bytes: u64,
    len: u64,
    start: u64,
}

/// Opens `dir` (which exists and is locked), mending what needs it; returns it with its ledger.
pub(super) fn recover(dir: &Path) -> Result<(Opened, Ledger), Error> {
    let mut recovery = Recovery::default();
    let ledger_path = dir.join("ledger");
    let (mut ledger, loaded) = Ledger::open(dir).map_err(io("open", &ledger_path))?;
    let read = match loaded {
        Loaded::At(read) => Some(read),
        Loaded::Missing => None,
        Loaded::Unreadable => {
            recovery.ledger_unreadable = true;
            None
        }
        Loaded::Newer(found) => {
            return Err(Error::NewerFormat {
                path: ledger_path,
                found,
            })
        }
    };
    let mut ids = list(dir)?;
    if let Some(read) = read {
        for &id in ids.iter().filter(|&&id| id < read.segment) {
            let path = segment::path(dir, id);
            std::fs::remove_file(&path).map_err(io("delete", path))?;
        }
        ids.retain(|&id| id >= read.segment);
    }
    let newest = ids.last().copied();
    let mut opened = Opened {
        segments: VecDeque::new(),
        newest_len: 0,
        last_id: newest.unwrap_or(0).max(read.map_or(0, |r| r.segment)),
        start: Position {
            segment: read.map_or(0, |r| r.segment),
            offset: HEADER_LEN,
        },
        records: 0,
        bytes: 0,
        recovery: Recovery::default(),
    };
    for id in ids {
        let from = match read {
            Some(read) if read.segment == id => read.offset.max(HEADER_LEN),
            _ => HEADER_LEN,
        };
        let newest = Some(id) == newest;
        let Some(repaired) = repair(dir, id, from, newest, &mut ledger, &mut recovery)? else {
            continue;
        };
        if opened.segments.is_empty() {
            opened.start = Position {
                segment: id,
                offset: repaired.start,
            };
        }
        opened.segments.push_back(id);
        opened.records += repaired.records;
        opened.bytes += repaired.bytes;
        opened.newest_len = repaired.len;
    }
    opened.recovery = recovery;
    Ok((opened, ledger))
}

/// The segment ids in `dir`, oldest first.
fn list(dir: &Path) -> Result<Vec<u64>, Error> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        if let Some(id) = entry.file_name().to_str().and_then(segment::id_of) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Checks segment `id` from offset `from` and mends it; `None` if it was set aside whole.
fn repair(
    dir: &Path,
    id: u64,
    from: u64,
    newest: bool,
    ledger: &mut Ledger,
    recovery: &mut Recovery,
) -> Result<Option<Repaired>, Error> {
    let path = segment::path(dir, id);
    let bytes = std::fs::read(&path).map_err(io("read", &path))?;
    match segment::check_header(&bytes) {
        Header::Current => {}
        Header::Newer(found) => return Err(Error::NewerFormat { path, found }),
        Header::Short if newest => {
            recovery.torn.push((path.clone(), bytes.len() as u64));
            rewrite(&path, &[])?;
            return Ok(Some(Repaired {
                records: 0,
                bytes: 0,
                len: HEADER_LEN,
                start: HEADER_LEN,
            }));
        }
        Header::Short | Header::Foreign => {
            let moved_to = corrupt_path(dir, id, 0)?;
            std::fs::rename(&path, &moved_to).map_err(io("move", &path))?;
            recovery.corrupt.push(Corrupt {
                segment: path,
                offset: 0,
                bytes: bytes.len() as u64,
                moved_to,
            });
            return Ok(None);
        }
    }
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    let found = segment::scan(&bytes, from);
    let mut repaired = Repaired {
        records: found.records,
        bytes: found.valid_bytes(),
        len: bytes.len() as u64,
        start: from as u64,
    };
    let mut damaged = found.damaged.clone();
    match (&found.tail, newest) {
        (Some(tail), true) => recovery.torn.push((path.clone(), tail.len() as u64)),
        (Some(tail), false) => damaged.push(tail.clone()),
        (None, _) => {}
    }
    if damaged.is_empty() {
        if let Some(tail) = &found.tail {
            truncate(&path, tail.start as u64)?;
            repaired.len = tail.start as u64;
        }
        return Ok(Some(repaired));
    }
    for region in &damaged {
        set_aside(dir, id, &path, &bytes, region, recovery)?;
    }
    // The ledger first: a crash between the two leaves the old file with the ledger at its start
    // (records delivered again), never the new file with an offset meant for the old one.
    if from as u64 > HEADER_LEN {
        let start = Position {
            segment: id,
            offset: HEADER_LEN,
        };
        let path = ledger.path().to_path_buf();
        ledger.save(start).map_err(io("write", path))?;
    }
    let kept: Vec<u8> = found
        .valid
        .iter()
        .flat_map(|r| &bytes[r.clone()])
        .copied()
        .collect();
    rewrite(&path, &kept)?;
    repaired.len = HEADER_LEN + kept.len() as u64;
    repaired.start = HEADER_LEN;
    Ok(Some(repaired))
}

/// Copies `region` of segment `id` (read as `bytes`) to `corrupt/`.
fn set_aside(
    dir: &Path,
    id: u64,
    path: &Path,
    bytes: &[u8],
    region: &Range<usize>,
    recovery: &mut Recovery,
) -> Result<(), Error> {
    let moved_to = corrupt_path(dir, id, region.start as u64)?;
    std::fs::write(&moved_to, &bytes[region.clone()]).map_err(io("write", &moved_to))?;
    recovery.corrupt.push(Corrupt {
        segment: path.to_path_buf(),
        offset: region.start as u64,
        bytes: region.len() as u64,
        moved_to,
    });
    Ok(())
}

/// Where the damaged bytes of segment `id` at `offset` go; creates `corrupt/`.
pub(super) fn corrupt_path(dir: &Path, id: u64, offset: u64) -> Result<PathBuf, Error> {
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).map_err(io("create", &corrupt))?;
    Ok(corrupt.join(format!("{id:020}-{offset}.bin")))
}

/// Replaces the segment at `path` with a header and `frames`.
fn rewrite(path: &Path, frames: &[u8]) -> Result<(), Error> {
    let mut content = segment::header().to_vec();
    content.extend_from_slice(frames);
    atomic_file::replace(path, &content, Access::Default).map_err(io("rewrite", path))
}

/// Cuts the file at `path` back to `len` bytes, durably.
fn truncate(path: &Path, len: u64) -> Result<(), Error> {
    let cut = |file: File| -> io::Result<()> {
        file.set_len(len)?;
        file.sync_all()
    };
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(cut)
        .map_err(io("cut the torn end of", path))
}
