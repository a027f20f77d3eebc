//! A task's durable buffer between its source and its sink: a small segment log of our own, in
//! the manner of Vector's disk buffer (`disk_v2`).
//!
//! # Why a segment log, and not a B-tree file (redb, sled)
//!
//! The buffer must survive what a crash or a disk does to it and still start: a torn write at
//! the end must cost only that write, and damage in the middle only the records in the damaged
//! bytes. A B-tree file keeps its records in pages linked by pointers and commits by swapping a
//! root; when a page or the commit slot is damaged, the database (rightly) refuses to open, and
//! what it still holds is out of reach without forensic tools. A log of self-checking records
//! needs no structure beyond the records themselves: every record can be verified on its own
//! (length, CRC-32) and found again after damage (a sync word), so a reader keeps what is
//! intact and loses only what is not. The access pattern is a queue anyway (append at one end,
//! delete at the other), which is what segment files do with no compaction or free lists.
//!
//! # Layout of a buffer directory
//!
//! - `<id>.seg`: segment files of bounded size, a versioned header then frames (`segment.rs`,
//!   `frame.rs`); a full segment is closed and the next one started; a segment read to the end
//!   and acknowledged is deleted.
//! - `ledger`: where the oldest record not yet delivered starts (`ledger.rs`), saved after each
//!   delivered batch in one of two checksummed slots, in turn.
//! - `corrupt/`: damaged regions, set aside for inspection (`recovery.rs`).
//! - `lock`: locked while a process has the buffer open.

mod disk_buffer;
mod error;
mod frame;
mod ledger;
mod reader;
mod recovery;
mod segment;

pub use disk_buffer::{DiskBuffer, Limits};
pub use error::Error;
pub use frame::Frames;
pub use reader::Batch;
pub use recovery::{Corrupt, Recovery};
