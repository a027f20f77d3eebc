//! The ledger: where the oldest record not yet delivered starts, as a (segment, offset)
//! [`Position`]. It is one small JSON file, replaced atomically after each delivered batch, so a
//! crash leaves the old position or the new one: at worst a batch is delivered again.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::segment::VERSION;
use crate::atomic_file::{self, Access};

/// A place in the buffer: a segment id and a byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// The segment id.
    pub segment: u64,
    /// Bytes from the start of the segment file.
    pub offset: u64,
}

#[derive(Serialize, Deserialize)]
struct Ledger {
    version: u32,
    #[serde(flatten)]
    read: Position,
}

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

/// The ledger's path in `dir`.
pub(super) fn path(dir: &Path) -> PathBuf {
    dir.join("ledger.json")
}

/// Reads the ledger of `dir`.
pub(super) fn load(dir: &Path) -> io::Result<Loaded> {
    let bytes = match std::fs::read(path(dir)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(error) => return Err(error),
    };
    Ok(match serde_json::from_slice::<Ledger>(&bytes) {
        Ok(ledger) if ledger.version > VERSION => Loaded::Newer(ledger.version),
        Ok(ledger) => Loaded::At(ledger.read),
        Err(_) => Loaded::Unreadable,
    })
}

/// Replaces the ledger of `dir` with `read`.
pub(super) fn save(dir: &Path, read: Position) -> io::Result<()> {
    let ledger = Ledger {
        version: VERSION,
        read,
    };
    let bytes = serde_json::to_vec(&ledger).expect("a ledger serialises");
    atomic_file::replace(&path(dir), &bytes, Access::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_reads_back_and_damage_or_a_newer_version_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::Missing);
        let at = Position {
            segment: 7,
            offset: 4096,
        };
        save(dir.path(), at).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::At(at));
        std::fs::write(path(dir.path()), b"{\"vers").unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::Unreadable);
        std::fs::write(
            path(dir.path()),
            br#"{"version":9,"segment":1,"offset":16}"#,
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap(), Loaded::Newer(9));
    }
}
