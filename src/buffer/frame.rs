//! One record on disk: `[sync u32][len u32][crc32 u32][payload]`, the payload being the append
//! time (milliseconds since the epoch, u64) and the record's JSON.
//!
//! - The **CRC** covers the length and the payload, so a flipped bit in either is caught, and a
//!   zero-filled page (what a power cut may leave after a file grew) never reads as a record: the
//!   payload is at least 8 bytes, whose CRC is not zero.
//! - The **sync word** makes finding the next record after damage a cheap search: without it,
//!   every byte offset in the damaged region would be a candidate whose CRC must be computed over
//!   up to the rest of the segment. Its first byte, `0xF7`, never occurs in UTF-8, so JSON text
//!   never contains it.

/// Marks the start of every frame.
pub(super) const SYNC: [u8; 4] = [0xF7, 0x5B, 0x1A, 0x0C];

/// Bytes before the payload: sync, length, CRC.
pub(super) const HEADER_LEN: usize = 12;

/// The append time at the head of every payload.
const TIME_LEN: usize = 8;

/// Frames being put together for one append: encoded in place, one copy of each record.
#[derive(Debug)]
pub struct Frames {
    bytes: Vec<u8>,
    records: u64,
    appended_ms: u64,
}

impl Frames {
    /// No frames yet; each record will carry `appended_ms` as its append time.
    pub fn new(appended_ms: u64) -> Self {
        Self {
            bytes: Vec::new(),
            records: 0,
            appended_ms,
        }
    }

    /// Adds one record, whose bytes `write` appends to the buffer it is given.
    pub fn push<E>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<(), E> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&SYNC);
        self.bytes.extend_from_slice(&[0; 8]);
        self.bytes
            .extend_from_slice(&self.appended_ms.to_le_bytes());
        if let Err(error) = write(&mut self.bytes) {
            self.bytes.truncate(start);
            return Err(error);
        }
        let len = self.bytes.len() - start - HEADER_LEN;
        let len = u32::try_from(len).expect("a record under 4 GiB");
        self.bytes[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
        let crc = checksum(
            &self.bytes[start + 4..start + 8],
            &self.bytes[start + HEADER_LEN..],
        );
        self.bytes[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
        self.records += 1;
        Ok(())
    }

    /// How many records.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The encoded frames.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// What the bytes at some offset hold.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed<'a> {
    /// A whole, intact frame of `len` bytes.
    Frame {
        appended_ms: u64,
        record: &'a [u8],
        len: usize,
    },
    /// The start of a frame whose rest lies past the end of the bytes given.
    Incomplete,
    /// Not a frame: no sync word, an impossible length or a CRC mismatch.
    Invalid,
}

/// Reads the frame at the start of `bytes`.
pub(super) fn parse(bytes: &[u8]) -> Parsed<'_> {
    if bytes.len() < HEADER_LEN {
        let sync_so_far = bytes.len().min(SYNC.len());
        return match bytes[..sync_so_far] == SYNC[..sync_so_far] {
            true => Parsed::Incomplete,
            false => Parsed::Invalid,
        };
    }
    if bytes[..4] != SYNC {
        return Parsed::Invalid;
    }
    let len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    if len < TIME_LEN {
        return Parsed::Invalid;
    }
    let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + len) else {
        return Parsed::Incomplete;
    };
    let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if checksum(&bytes[4..8], payload) != crc {
        return Parsed::Invalid;
    }
    let (time, record) = payload.split_at(TIME_LEN);
    Parsed::Frame {
        appended_ms: u64::from_le_bytes(time.try_into().expect("8 bytes")),
        record,
        len: HEADER_LEN + len,
    }
}

/// The length a frame header announces, when `header` starts with the sync word: how many
/// payload bytes a reader must fetch before it can check the frame.
pub(super) fn announced_len(header: &[u8; HEADER_LEN]) -> Option<usize> {
    (header[..4] == SYNC).then(|| u32::from_le_bytes(header[4..8].try_into().expect("4")) as usize)
}

/// The offset of the first intact frame at or after `from`, if any.
pub(super) fn next_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at < bytes.len() {
        let found = bytes[at..].windows(SYNC.len()).position(|w| w == SYNC)?;
        at += found;
        if matches!(parse(&bytes[at..]), Parsed::Frame { .. }) {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(records: &[&str]) -> Frames {
        let mut frames = Frames::new(1_700_000_000_000);
        for record in records {
            frames
                .push(|out| {
                    out.extend_from_slice(record.as_bytes());
                    Ok::<_, ()>(())
                })
                .unwrap();
        }
        frames
    }

    #[test]
    fn a_frame_reads_back_with_its_time_and_record() {
        let frames = frames(&[r#"{"n":1}"#]);
        assert_eq!(
            parse(frames.bytes()),
            Parsed::Frame {
                appended_ms: 1_700_000_000_000,
                record: br#"{"n":1}"#,
                len: frames.bytes().len()
            }
        );
    }

    #[test]
    fn a_cut_frame_is_incomplete_and_a_flipped_bit_invalid() {
        let frames = frames(&[r#"{"n":1}"#]);
        let bytes = frames.bytes();
        for cut in [2, HEADER_LEN - 1, HEADER_LEN + 3, bytes.len() - 1] {
            assert_eq!(parse(&bytes[..cut]), Parsed::Incomplete, "cut at {cut}");
        }
        for at in 4..bytes.len() {
            let mut damaged = bytes.to_vec();
            damaged[at] ^= 0x10;
            assert!(
                !parse(&damaged).is_frame(),
                "a flipped bit at {at} went unnoticed"
            );
        }
        assert_eq!(parse(&[0; 64]), Parsed::Invalid);
    }

    #[test]
    fn the_next_frame_is_found_past_damage() {
        let frames = frames(&[r#"{"n":1}"#, r#"{"n":2}"#]);
        let first = frames.bytes().len() / 2;
        let mut bytes = frames.bytes().to_vec();
        bytes[HEADER_LEN + 9] ^= 0xFF;
        assert_eq!(parse(&bytes), Parsed::Invalid);
        assert_eq!(next_frame(&bytes, 1), Some(first));
        assert_eq!(next_frame(&bytes, first + 1), None);
    }

    impl Parsed<'_> {
        fn is_frame(&self) -> bool {
            matches!(self, Parsed::Frame { .. })
        }
    }
}
