//! What the task keeps in the state per file: how far it was read, and how to recognise it
//! again under another name.
//!
//! Kept under the state key `files`, a list of [`Checkpoint`]s. Versions before this one kept
//! `offsets`, a map from path to offset; it is still read ([`Checkpoints::legacy`]), used for the
//! files still at those paths, and removed at the first save.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::identity::{FileId, Fingerprint};
use crate::runner::{StateError, StateHandle};

const FILES: &str = "files";
const LEGACY_OFFSETS: &str = "offsets";

/// One file's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Checkpoint {
    /// Where the file was last seen (for logs, and to look for it when renamed).
    pub path: String,
    /// Which file it is.
    #[serde(flatten)]
    pub id: FileId,
    /// Its first bytes, to tell a truncated or replaced file from the one read before.
    pub fingerprint: Fingerprint,
    /// Bytes read and delivered.
    pub offset: u64,
    /// Whether `offset` is inside a too-long line whose rest is still to be skipped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_long_line: bool,
    /// When (Unix seconds) the file was first found missing; cleared when it is found again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gone_since: Option<u64>,
}

/// Every file one task knows.
#[derive(Debug, Default)]
pub(super) struct Checkpoints {
    /// The files, by identity.
    pub files: Vec<Checkpoint>,
    /// Offsets by path from a state file of an older version; emptied by the first plan.
    pub legacy: BTreeMap<String, u64>,
}

impl Checkpoints {
    /// Reads the task's checkpoints (and old path-keyed offsets) from the state.
    pub fn load(state: &StateHandle) -> Result<Self, StateError> {
        Ok(Self {
            files: state.get(FILES)?.unwrap_or_default(),
            legacy: state.get(LEGACY_OFFSETS)?.unwrap_or_default(),
        })
    }

    /// Writes them to the state (in memory; saving is the caller's), replacing old offsets.
    pub fn store(&self, state: &StateHandle) -> Result<(), StateError> {
        state.set(FILES, &self.files)?;
        if self.legacy.is_empty() {
            state.remove(LEGACY_OFFSETS);
        }
        Ok(())
    }

    /// The checkpoint of file `id`.
    pub fn get(&self, id: FileId) -> Option<&Checkpoint> {
        self.files.iter().find(|file| file.id == id)
    }

    /// Moves file `id` to `offset` after its lines up to there were delivered.
    pub fn advance(&mut self, id: FileId, offset: u64, in_long_line: bool) {
        if let Some(file) = self.files.iter_mut().find(|file| file.id == id) {
            file.offset = offset;
            file.in_long_line = in_long_line;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::StateStore;

    #[test]
    fn round_trips_through_the_state_and_drops_old_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path().join("state.json")).unwrap();
        let state = store.handle("t");
        state
            .set(LEGACY_OFFSETS, &BTreeMap::from([("a.jsonl", 5u64)]))
            .unwrap();
        let mut checkpoints = Checkpoints::load(&state).unwrap();
        assert_eq!(checkpoints.legacy["a.jsonl"], 5);
        checkpoints.legacy.clear();
        checkpoints.files.push(Checkpoint {
            path: "a.jsonl".into(),
            id: FileId { dev: 1, ino: 2 },
            fingerprint: Fingerprint::of(b"{}\n"),
            offset: 5,
            in_long_line: false,
            gone_since: None,
        });
        checkpoints.store(&state).unwrap();
        let again = Checkpoints::load(&state).unwrap();
        assert_eq!(again.files, checkpoints.files);
        assert!(again.legacy.is_empty());
        let raw: serde_json::Value = state.get(FILES).unwrap().unwrap();
        assert_eq!(raw[0]["ino"], 2, "{raw}");
        assert!(raw[0].get("gone_since").is_none(), "{raw}");
    }
}
