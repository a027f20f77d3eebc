//! Which file is which, whatever its name: a file keeps its device and inode numbers when it is
//! renamed (logrotate's default), and its first bytes when it is copied. Offsets keyed by path
//! break on rotation: the new file at the old path would be read from the old file's offset.
//!
//! A file is identified by device + inode, checked against a [`Fingerprint`] of its first bytes
//! (as Vector's `file` source and the OpenTelemetry `filelog` receiver do). The fingerprint
//! catches what the inode alone cannot: a file truncated and written again (copytruncate), and an
//! inode number reused for a new file after the old one was deleted.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Device and inode numbers: the same for as long as the file exists, across renames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(super) struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileId {
    /// The id of the file `metadata` describes.
    pub fn of(metadata: &Metadata) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }
}

/// A hash of a file's first [`Fingerprint::SIZE`] bytes, or of all of it while it is shorter.
///
/// Why a growing prefix: a file shorter than the full size is still recognised by device + inode,
/// and the bytes it had are still checked, so a small file truncated and rewritten with other
/// lines is not mistaken for the old one. Two files whose first bytes are equal cannot be told
/// apart by this; device + inode does that.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Fingerprint {
    /// How many bytes were hashed.
    bytes: usize,
    /// The first 8 bytes of their SHA-256, in hex: stable across versions and machines.
    sha256: String,
}

impl Fingerprint {
    /// The most bytes hashed.
    pub const SIZE: usize = 1024;

    /// The fingerprint of a file starting with `head` (only the first [`Self::SIZE`] bytes count).
    pub fn of(head: &[u8]) -> Self {
        let head = &head[..head.len().min(Self::SIZE)];
        let digest = Sha256::digest(head);
        Self {
            bytes: head.len(),
            sha256: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// Whether a file starting with `head` starts with the bytes this was taken from.
    pub fn matches(&self, head: &[u8]) -> bool {
        head.len() >= self.bytes && Self::of(&head[..self.bytes]) == *self
    }

    /// Whether it covers the full [`Self::SIZE`] bytes (a short prefix is too weak to recognise a
    /// file by on its own).
    pub fn is_full(&self) -> bool {
        self.bytes == Self::SIZE
    }
}

/// A file as found by this run: where it is, which it is, how long, and its first bytes.
#[derive(Debug, Clone)]
pub(super) struct Observed {
    /// Where it was found.
    pub path: PathBuf,
    /// Which file it is.
    pub id: FileId,
    /// Its length then.
    pub len: u64,
    /// Its first bytes (up to [`Fingerprint::SIZE`]).
    pub head: Vec<u8>,
}

impl Observed {
    /// Opens `path` and takes its id, length and first bytes from the open file, so that all three
    /// describe the same file even if the path is renamed meanwhile.
    pub fn read(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        let metadata = file.metadata()?;
        let mut head = Vec::with_capacity(Fingerprint::SIZE);
        file.take(Fingerprint::SIZE as u64).read_to_end(&mut head)?;
        Ok(Self {
            path,
            id: FileId::of(&metadata),
            len: metadata.len(),
            head,
        })
    }

    /// Its path as shown in logs and kept in the state.
    pub fn shown(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_matches_the_same_start_and_anything_appended() {
        let print = Fingerprint::of(b"{\"n\":1}\n");
        assert!(print.matches(b"{\"n\":1}\n"));
        assert!(print.matches(b"{\"n\":1}\n{\"n\":2}\n"));
        assert!(!print.matches(b"{\"n\":9}\n{\"n\":2}\n"), "other content");
        assert!(!print.matches(b"{\"n\""), "shorter than the hashed prefix");
        assert!(!print.is_full());
    }

    #[test]
    fn only_the_first_kibibyte_counts() {
        let long = vec![b'x'; 5000];
        let print = Fingerprint::of(&long);
        assert!(print.is_full());
        assert_eq!(print, Fingerprint::of(&long[..Fingerprint::SIZE]));
        let mut other = long.clone();
        other[4000] = b'y';
        assert!(print.matches(&other));
    }

    #[test]
    fn observing_a_file_reads_its_id_length_and_head() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, vec![b'a'; 3000]).unwrap();
        let seen = Observed::read(path.clone()).unwrap();
        assert_eq!(seen.len, 3000);
        assert_eq!(seen.head.len(), Fingerprint::SIZE);
        let renamed = dir.path().join("b.jsonl");
        std::fs::rename(&path, &renamed).unwrap();
        assert_eq!(Observed::read(renamed).unwrap().id, seen.id);
    }
}
