//! Segment files: `<id>.seg` (the id zero-padded to 20 digits, so names sort as numbers), each a
//! 16-byte header, then frames. The header names the format and its version, so a later tapline
//! can read (or convert) what this one wrote, and this one refuses what a later one wrote instead
//! of taking it for damage.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::frame::{self, Parsed};

/// The first bytes of every segment.
const MAGIC: [u8; 8] = *b"TAPLBUF\0";

/// The format this tapline writes and reads.
pub const VERSION: u32 = 1;

/// The header: magic, version (u32 LE), four reserved zero bytes.
pub(super) const HEADER_LEN: u64 = 16;

/// The header this tapline writes.
pub(super) fn header() -> [u8; HEADER_LEN as usize] {
    let mut header = [0; HEADER_LEN as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header
}

/// What a segment's first bytes say.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Header {
    /// Our format and version.
    Current,
    /// Shorter than a header, but what is there matches ours: a file torn right after creation.
    Short,
    /// Not a buffer segment, or a damaged header.
    Foreign,
    /// A segment of a newer format version.
    Newer(u32),
}

/// Reads the header at the start of `bytes`.
pub(super) fn check_header(bytes: &[u8]) -> Header {
    let ours = header();
    if bytes.len() < ours.len() {
        return match bytes == &ours[..bytes.len()] {
            true => Header::Short,
            false => Header::Foreign,
        };
    }
    if bytes[..8] != MAGIC {
        return Header::Foreign;
    }
    match u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) {
        VERSION => Header::Current,
        version if version > VERSION => Header::Newer(version),
        _ => Header::Foreign,
    }
}

/// The path of segment `id` in `dir`.
pub(super) fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The id of a segment file name, if it is one.
pub(super) fn id_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// What reading a segment's frames from some offset found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scan {
    /// Intact frames.
    pub records: u64,
    /// Their bytes, one range per run of intact frames.
    pub valid: Vec<Range<usize>>,
    /// Regions that hold no intact frame, with intact frames after them.
    pub damaged: Vec<Range<usize>>,
    /// What follows the last intact frame when no intact frame comes after it.
    pub tail: Option<Range<usize>>,
}

impl Scan {
    /// The bytes of the intact frames.
    pub fn valid_bytes(&self) -> u64 {
        self.valid.iter().map(|r| r.len() as u64).sum()
    }
}

/// Reads the frames of `bytes` (a whole segment) from `from` to the end.
pub(super) fn scan(bytes: &[u8], from: usize) -> Scan {
    let mut found = Scan::default();
    let mut at = from;
    while at < bytes.len() {
        if let Parsed::Frame { len, .. } = frame::parse(&bytes[at..]) {
            match found.valid.last_mut() {
                Some(run) if run.end == at => run.end += len,
                _ => found.valid.push(at..at + len),
            }
            found.records += 1;
            at += len;
            continue;
        }
        match frame::next_frame(bytes, at + 1) {
            Some(next) => {
                found.damaged.push(at..next);
                at = next;
            }
            None => {
                found.tail = Some(at..bytes.len());
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::frame::Frames;
    use super::*;

    fn segment(records: u64) -> Vec<u8> {
        let mut frames = Frames::new(1);
        for n in 0..records {
            frames
                .push(|out| {
                    out.extend_from_slice(format!("{{\"n\":{n}}}").as_bytes());
                    Ok::<_, ()>(())
                })
                .unwrap();
        }
        let mut bytes = header().to_vec();
        bytes.extend_from_slice(frames.bytes());
        bytes
    }

    #[test]
    fn names_sort_as_numbers_and_read_back() {
        let dir = Path::new("/b");
        let name = |id| {
            path(dir, id)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        assert!(name(9) < name(10));
        assert_eq!(id_of(&name(12345)), Some(12345));
        assert_eq!(id_of("12.seg"), None);
        assert_eq!(id_of("ledger.json"), None);
    }

    #[test]
    fn the_header_names_the_version() {
        let mut bytes = header().to_vec();
        assert_eq!(check_header(&bytes), Header::Current);
        assert_eq!(check_header(&bytes[..5]), Header::Short);
        bytes[8] = 2;
        assert_eq!(check_header(&bytes), Header::Newer(2));
        bytes[0] = b'X';
        assert_eq!(check_header(&bytes), Header::Foreign);
    }

    #[test]
    fn a_cut_end_is_a_tail_and_a_bad_middle_frame_is_damage() {
        let bytes = segment(3);
        let start = HEADER_LEN as usize;
        let whole = scan(&bytes, start);
        assert_eq!(whole.records, 3);
        assert_eq!(whole.valid, vec![start..bytes.len()]);
        assert_eq!((whole.damaged.len(), whole.tail.clone()), (0, None));

        let torn = scan(&bytes[..bytes.len() - 3], start);
        assert_eq!(torn.records, 2);
        assert_eq!(torn.tail.unwrap().end, bytes.len() - 3);

        let frame = (bytes.len() - start) / 3;
        let mut damaged = bytes.clone();
        damaged[start + frame + 14] ^= 1;
        let found = scan(&damaged, start);
        assert_eq!(found.records, 2);
        assert_eq!(found.damaged, vec![start + frame..start + 2 * frame]);
        assert_eq!(found.valid_bytes(), 2 * frame as u64);
        assert_eq!(found.tail, None);
    }
}
