//! The plan of one run: which files to read, from which offset, in which order, and which
//! offsets to forget. A pure function of the checkpoints and of the files found now.
//!
//! - A known file (same device + inode, same first bytes) goes on from its offset, under
//!   whatever name it has now: a rotated file is finished.
//! - A known file shorter than its offset, or whose first bytes changed, was truncated (and
//!   maybe written again): it is read from the start.
//! - Any other file is new and read from the start. Files being finished come first, so a rotated
//!   file's last lines go out before the first lines of the new file at its old path.
//! - A known file not found is looked for in its last directory under other names (see
//!   [`missing`]), then marked gone; once gone for `forget-after` its checkpoint is dropped, so
//!   dated file names do not grow the state for ever.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checkpoint::{Checkpoint, Checkpoints};
use super::identity::{FileId, Fingerprint, Observed};

/// Where reading a file starts, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Start {
    /// A known file at its known path: from its offset.
    Continue,
    /// A known file under a new name: from its offset.
    Renamed {
        /// Its name before.
        from: String,
    },
    /// A file not seen before: from the start.
    New,
    /// A known file that was truncated: from the start.
    ReadAgain(Truncated),
}

/// How a truncated file was recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Truncated {
    /// It is shorter than the offset.
    Shorter,
    /// Its first bytes changed (truncated and written again, or its inode reused).
    Rewritten,
}

impl Start {
    fn reads_from_the_start(&self) -> bool {
        matches!(self, Self::New | Self::ReadAgain(_))
    }
}

/// One file to read.
#[derive(Debug, Clone)]
pub(super) struct Read {
    /// Where it is now.
    pub path: PathBuf,
    /// Which checkpoint it moves.
    pub id: FileId,
    /// Where reading starts.
    pub start: Start,
}

/// What one run does.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// The files to read, in order.
    pub reads: Vec<Read>,
    /// The paths of the files whose checkpoints were dropped.
    pub forgotten: Vec<String>,
}

/// The clock of a plan, passed in so tests need no real time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    /// Now, in Unix seconds.
    pub now: u64,
    /// `source.forget-after`.
    pub forget_after: Duration,
}

/// The known files not among `found`: the directories to look in for them under another name,
/// and their ids.
pub(super) fn missing(
    checkpoints: &Checkpoints,
    found: &[Observed],
) -> (BTreeSet<PathBuf>, HashSet<FileId>) {
    let found: HashSet<FileId> = found.iter().map(|seen| seen.id).collect();
    let missing: Vec<&Checkpoint> = checkpoints
        .files
        .iter()
        .filter(|file| !found.contains(&file.id))
        .collect();
    let dirs = missing
        .iter()
        .map(|file| Path::new(&file.path).parent().unwrap_or(Path::new("")))
        .map(Path::to_path_buf)
        .collect();
    (dirs, missing.iter().map(|file| file.id).collect())
}

/// Matches `found` (the glob's files) and `renamed` (known files found under other names in their
/// directory) against the checkpoints, which it updates: new files get one at offset 0, truncated
/// ones go back to 0, gone ones are marked or dropped.
pub(super) fn plan(
    checkpoints: &mut Checkpoints,
    found: Vec<Observed>,
    renamed: Vec<Observed>,
    clock: Clock,
) -> Plan {
    let by_id: HashMap<FileId, usize> = (checkpoints.files.iter().enumerate())
        .map(|(index, file)| (file.id, index))
        .collect();
    let mut matched = vec![false; checkpoints.files.len()];
    let mut reads = Vec::new();
    let mut unknown = Vec::new();
    for seen in found {
        match by_id.get(&seen.id) {
            Some(&index) => {
                matched[index] = true;
                reads.push(resume(&mut checkpoints.files[index], seen));
            }
            None => unknown.push(seen),
        }
    }
    for seen in renamed {
        if let Some(&index) = by_id.get(&seen.id) {
            let file = &mut checkpoints.files[index];
            // Outside the glob only a file known for sure is read, never a new one.
            if !matched[index] && file.fingerprint.matches(&seen.head) {
                matched[index] = true;
                reads.push(resume(file, seen));
            }
        }
    }
    for seen in unknown {
        if let Some(index) = same_file_on_a_new_device(checkpoints, &matched, &seen) {
            matched[index] = true;
            reads.push(resume(&mut checkpoints.files[index], seen));
        } else {
            reads.push(track(checkpoints, seen));
        }
    }
    checkpoints.legacy.clear();
    let forgotten = forget(checkpoints, &matched, clock);
    reads.sort_by(|a, b| {
        (a.start.reads_from_the_start(), &a.path).cmp(&(b.start.reads_from_the_start(), &b.path))
    });
    Plan { reads, forgotten }
}

/// Updates a known file's checkpoint to what was found, and says where reading starts.
fn resume(file: &mut Checkpoint, seen: Observed) -> Read {
    let shown = seen.shown();
    let start = if seen.len < file.offset {
        Start::ReadAgain(Truncated::Shorter)
    } else if !file.fingerprint.matches(&seen.head) {
        Start::ReadAgain(Truncated::Rewritten)
    } else if file.path != shown {
        Start::Renamed {
            from: file.path.clone(),
        }
    } else {
        Start::Continue
    };
    if start.reads_from_the_start() {
        file.offset = 0;
        file.in_long_line = false;
    }
    file.path = shown;
    file.id = seen.id;
    file.fingerprint = Fingerprint::of(&seen.head);
    file.gone_since = None;
    Read {
        path: seen.path,
        id: seen.id,
        start,
    }
}

/// A known file whose device number changed (a remount, another container): same path, same
/// inode, same full first kibibyte.
fn same_file_on_a_new_device(
    checkpoints: &Checkpoints,
    matched: &[bool],
    seen: &Observed,
) -> Option<usize> {
    let shown = seen.shown();
    (checkpoints.files.iter().zip(matched)).position(|(file, matched)| {
        !matched
            && file.path == shown
            && file.id.ino == seen.id.ino
            && file.fingerprint.is_full()
            && file.fingerprint.matches(&seen.head)
    })
}

/// Starts tracking a file not known by identity: from the old path-keyed offset if the state
/// has one for its path, else from the start.
fn track(checkpoints: &mut Checkpoints, seen: Observed) -> Read {
    let shown = seen.shown();
    let (offset, start) = match checkpoints.legacy.remove(&shown) {
        Some(offset) if seen.len >= offset => (offset, Start::Continue),
        Some(_) => (0, Start::ReadAgain(Truncated::Shorter)),
        None => (0, Start::New),
    };
    checkpoints.files.push(Checkpoint {
        path: shown,
        id: seen.id,
        fingerprint: Fingerprint::of(&seen.head),
        offset,
        in_long_line: false,
        gone_since: None,
    });
    Read {
        path: seen.path,
        id: seen.id,
        start,
    }
}

/// Marks the known files not found as gone, and drops those gone for `forget-after`.
fn forget(checkpoints: &mut Checkpoints, matched: &[bool], clock: Clock) -> Vec<String> {
    let mut forgotten = Vec::new();
    let mut index = 0;
    checkpoints.files.retain_mut(|file| {
        let found = matched.get(index).copied().unwrap_or(true);
        index += 1;
        if found {
            return true;
        }
        let since = *file.gone_since.get_or_insert(clock.now);
        let keep = clock.now.saturating_sub(since) < clock.forget_after.as_secs();
        if !keep {
            forgotten.push(file.path.clone());
        }
        keep
    });
    forgotten
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Clock = Clock {
        now: 1_000_000,
        forget_after: Duration::from_secs(86_400),
    };

    fn seen(path: &str, ino: u64, text: &str) -> Observed {
        Observed {
            path: path.into(),
            id: FileId { dev: 1, ino },
            len: text.len() as u64,
            head: text.as_bytes()[..text.len().min(Fingerprint::SIZE)].to_vec(),
        }
    }

    /// Checkpoints after one run that read `files` to their ends.
    fn read_to_end(files: &[&Observed]) -> Checkpoints {
        let mut checkpoints = Checkpoints::default();
        let found = files.iter().map(|seen| (*seen).clone()).collect();
        plan(&mut checkpoints, found, vec![], DAY);
        for (file, seen) in checkpoints.files.iter_mut().zip(files) {
            file.offset = seen.len;
        }
        checkpoints
    }

    fn starts(plan: &Plan) -> Vec<(String, Start)> {
        let shown = |read: &Read| read.path.display().to_string();
        plan.reads
            .iter()
            .map(|read| (shown(read), read.start.clone()))
            .collect()
    }

    fn offset(checkpoints: &Checkpoints, path: &str) -> u64 {
        let file = checkpoints.files.iter().find(|f| f.path == path).unwrap();
        file.offset
    }

    #[test]
    fn a_renamed_file_is_finished_before_the_new_file_at_its_path() {
        let mut checkpoints = read_to_end(&[&seen("a.log", 7, "1\n2\n")]);
        let found = vec![
            seen("a.log", 8, "new\n"),
            seen("z-rotated.log", 7, "1\n2\n3\n"),
        ];
        let plan = plan(&mut checkpoints, found, vec![], DAY);
        assert_eq!(
            starts(&plan),
            [
                (
                    "z-rotated.log".into(),
                    Start::Renamed {
                        from: "a.log".into()
                    }
                ),
                ("a.log".into(), Start::New),
            ]
        );
        assert_eq!(offset(&checkpoints, "z-rotated.log"), 4);
        assert_eq!(offset(&checkpoints, "a.log"), 0);
    }

    #[test]
    fn a_file_renamed_out_of_the_glob_is_finished_when_found_in_its_directory() {
        let mut checkpoints = read_to_end(&[&seen("logs/a.log", 7, "1\n")]);
        let found = vec![seen("logs/a.log", 8, "new\n")];
        let (dirs, ids) = missing(&checkpoints, &found);
        assert_eq!(dirs, BTreeSet::from([PathBuf::from("logs")]));
        assert_eq!(ids, HashSet::from([FileId { dev: 1, ino: 7 }]));
        let renamed = vec![seen("logs/a.log.1", 7, "1\n2\n")];
        let plan = plan(&mut checkpoints, found, renamed, DAY);
        assert_eq!(plan.reads[0].path, Path::new("logs/a.log.1"));
        assert!(matches!(plan.reads[0].start, Start::Renamed { .. }));
        assert_eq!(plan.reads[1].start, Start::New);
    }

    #[test]
    fn a_file_with_other_first_bytes_outside_the_glob_is_not_read() {
        let mut checkpoints = read_to_end(&[&seen("a.log", 7, "1\n")]);
        let renamed = vec![seen("a.log.1", 7, "other\n")];
        let plan = plan(&mut checkpoints, vec![], renamed, DAY);
        assert!(plan.reads.is_empty());
        assert_eq!(checkpoints.files[0].gone_since, Some(DAY.now));
    }

    #[test]
    fn truncated_files_are_read_reads_from_the_start() {
        let mut checkpoints = read_to_end(&[
            &seen("shorter.log", 1, "1\n2\n3\n"),
            &seen("rewritten.log", 2, "1\n2\n"),
        ]);
        let found = vec![
            seen("shorter.log", 1, "1\n"),
            seen("rewritten.log", 2, "a\nb\nc\nd\n"),
        ];
        let plan = plan(&mut checkpoints, found, vec![], DAY);
        assert_eq!(
            starts(&plan),
            [
                (
                    "rewritten.log".into(),
                    Start::ReadAgain(Truncated::Rewritten)
                ),
                ("shorter.log".into(), Start::ReadAgain(Truncated::Shorter)),
            ]
        );
        assert!(checkpoints.files.iter().all(|file| file.offset == 0));
    }

    #[test]
    fn a_file_that_grew_goes_on_and_its_fingerprint_grows() {
        let mut checkpoints = read_to_end(&[&seen("a.log", 1, "1\n")]);
        let plan = plan(
            &mut checkpoints,
            vec![seen("a.log", 1, "1\n2\n")],
            vec![],
            DAY,
        );
        assert_eq!(starts(&plan), [("a.log".into(), Start::Continue)]);
        assert_eq!(checkpoints.files[0].offset, 2);
        assert_eq!(checkpoints.files[0].fingerprint, Fingerprint::of(b"1\n2\n"));
    }

    #[test]
    fn gone_files_are_forgotten_after_forget_after() {
        let mut checkpoints = read_to_end(&[&seen("old.log", 1, "1\n"), &seen("b.log", 2, "2\n")]);
        let kept = vec![seen("b.log", 2, "2\n")];
        plan(&mut checkpoints, kept.clone(), vec![], DAY);
        assert_eq!(checkpoints.files.len(), 2, "forgotten at once");
        let later = Clock {
            now: DAY.now + 86_399,
            ..DAY
        };
        plan(&mut checkpoints, kept.clone(), vec![], later);
        assert_eq!(checkpoints.files.len(), 2, "forgotten too early");
        let day_later = Clock {
            now: DAY.now + 86_400,
            ..DAY
        };
        let plan = plan(&mut checkpoints, kept, vec![], day_later);
        assert_eq!(plan.forgotten, ["old.log"]);
        assert_eq!(checkpoints.files.len(), 1);
    }

    #[test]
    fn a_file_found_again_is_no_longer_gone() {
        let mut checkpoints = read_to_end(&[&seen("a.log", 1, "1\n")]);
        plan(&mut checkpoints, vec![], vec![], DAY);
        assert_eq!(checkpoints.files[0].gone_since, Some(DAY.now));
        plan(&mut checkpoints, vec![seen("a.log", 1, "1\n")], vec![], DAY);
        assert_eq!(checkpoints.files[0].gone_since, None);
    }

    #[test]
    fn old_path_keyed_offsets_are_used_once() {
        let mut checkpoints = Checkpoints::default();
        checkpoints.legacy.insert("a.log".into(), 2);
        checkpoints.legacy.insert("short.log".into(), 9);
        checkpoints.legacy.insert("gone.log".into(), 9);
        let found = vec![seen("a.log", 1, "1\n2\n"), seen("short.log", 2, "1\n")];
        let plan = plan(&mut checkpoints, found, vec![], DAY);
        assert_eq!(
            starts(&plan),
            [
                ("a.log".into(), Start::Continue),
                ("short.log".into(), Start::ReadAgain(Truncated::Shorter)),
            ]
        );
        assert_eq!(offset(&checkpoints, "a.log"), 2);
        assert_eq!(offset(&checkpoints, "short.log"), 0);
        assert!(checkpoints.legacy.is_empty());
    }

    #[test]
    fn a_new_device_number_keeps_a_file_with_the_same_path_inode_and_first_kibibyte() {
        let text = "x".repeat(2000) + "\n";
        let mut checkpoints = read_to_end(&[&seen("a.log", 5, &text)]);
        let mut moved = seen("a.log", 5, &text);
        moved.id.dev = 99;
        let plan = plan(&mut checkpoints, vec![moved], vec![], DAY);
        assert_eq!(starts(&plan), [("a.log".into(), Start::Continue)]);
        assert_eq!(checkpoints.files.len(), 1);
        assert_eq!(checkpoints.files[0].id.dev, 99);
    }
}
