//! The ledger: where the oldest record not yet delivered starts, as a (segment, offset)
//! [`Position`], moved after every delivered batch.
//!
//! Why two slots written in place, and not a file replaced atomically (`atomic_file`): the
//! ledger moves once per batch, and a replacement costs a new file, two fsyncs and a rename each
//! time: `cargo bench --bench buffer` measured 44% of the unbuffered throughput with it, 68%
//! with the slots (medians on a 2-core machine). Here a save
//! overwrites one of two 64-byte slots in turn (each with a sequence number and a CRC) and
//! fsyncs once. A torn save spoils at most the slot being written, whose CRC then fails, and the
//! other slot still holds the position before it: at worst a batch is delivered again.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::segment::VERSION;

/// A place in the buffer: a segment id and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The segment id.
    pub segment: u64,
    /// Bytes from the start of the segment file.
    pub offset: u64,
}

/// Bytes per slot; a slot is `[version u32][0 u32][seq u64][segment u64][offset u64][crc u32]`.
const SLOT: usize = 64;
const USED: usize = 36;

/// What the ledger file holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Loaded {
    /// No ledger yet: nothing was delivered.
    Missing,
    /// The read position.
    At(Position),
    /// Unreadable (damage): start from the oldest segment, delivering some records again.
    Unreadable,
    /// Written by a newer tapline.
    Newer(u32),
}

/// The open ledger file.
#[derive(Debug)]
pub(super) struct Ledger {
    file: File,
    path: PathBuf,
    /// The sequence number of the last save.
    seq: u64,
}

impl Ledger {
    /// Opens (creating it if needed) the ledger of `dir`, and reads it.
    pub(super) fn open(dir: &Path) -> io::Result<(Self, Loaded)> {
        let path = dir.join("ledger");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut bytes = [0; 2 * SLOT];
        let read = file.read_at(&mut bytes, 0)?;
        let slots = [&bytes[..SLOT], &bytes[SLOT..]].map(decode);
        let newest = slots.iter().flatten().max_by_key(|(seq, _, _)| *seq);
        let (seq, loaded) = match newest {
            Some(&(_, version, _)) if version > VERSION => (0, Loaded::Newer(version)),
            Some(&(seq, _, at)) => (seq, Loaded::At(at)),
            None if bytes[..read].iter().all(|&b| b == 0) => (0, Loaded::Missing),
            None => (0, Loaded::Unreadable),
        };
        Ok((Self { file, path, seq }, loaded))
    }

    /// The file's path, for errors.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Records `at` as the read position, durably, in the slot not holding the last save.
    pub(super) fn save(&mut self, at: Position) -> io::Result<()> {
        let seq = self.seq + 1;
        let mut slot = [0; SLOT];
        slot[..4].copy_from_slice(&VERSION.to_le_bytes());
        slot[8..16].copy_from_slice(&seq.to_le_bytes());
        slot[16..24].copy_from_slice(&at.segment.to_le_bytes());
        slot[24..32].copy_from_slice(&at.offset.to_le_bytes());
        let crc = crc32fast::hash(&slot[..32]);
        slot[32..USED].copy_from_slice(&crc.to_le_bytes());
        let place = (seq % 2) * SLOT as u64;
        self.file.write_all_at(&slot, place)?;
        self.file.sync_data()?;
        self.seq = seq;
        Ok(())
    }
}

/// A slot's sequence number, version and position, if its CRC holds.
fn decode(slot: &[u8]) -> Option<(u64, u32, Position)> {
    let word = |at: usize| u64::from_le_bytes(slot[at..at + 8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(slot[32..USED].try_into().expect("4 bytes"));
    if slot[..32].iter().all(|&b| b == 0) || crc32fast::hash(&slot[..32]) != crc {
        return None;
    }
    let version = u32::from_le_bytes(slot[..4].try_into().expect("4 bytes"));
    let at = Position {
        segment: word(16),
        offset: word(24),
    };
    Some((word(8), version, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn the_newest_save_reads_back_and_a_torn_one_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, loaded) = Ledger::open(dir.path()).unwrap();
        assert_eq!(loaded, Loaded::Missing);
        ledger.save(at(1, 100)).unwrap();
        ledger.save(at(1, 200)).unwrap();
        ledger.save(at(2, 16)).unwrap();
        drop(ledger);
        let (mut ledger, loaded) = Ledger::open(dir.path()).unwrap();
        assert_eq!(loaded, Loaded::At(at(2, 16)));
        ledger.save(at(2, 50)).unwrap();
        drop(ledger);

        // The last save (seq 4, slot 0) torn: the one before it holds.
        let path = dir.path().join("ledger");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Loaded::At(at(2, 16)));

        bytes[SLOT + 20] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Loaded::Unreadable);
    }

    #[test]
    fn a_ledger_of_a_newer_format_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ledger, _) = Ledger::open(dir.path()).unwrap();
        ledger.save(at(1, 16)).unwrap();
        drop(ledger);
        let path = dir.path().join("ledger");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[SLOT..SLOT + 4].copy_from_slice(&9u32.to_le_bytes());
        let crc = crc32fast::hash(&bytes[SLOT..SLOT + 32]);
        bytes[SLOT + 32..SLOT + USED].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().1, Loaded::Newer(9));
    }
}
