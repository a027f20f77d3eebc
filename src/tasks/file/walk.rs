//! Finding the files a `source.path` glob names.
//!
//! Why `walkdir` + `globset` and not the `glob` crate: `glob` follows symlinked directories under
//! `**` with no loop check, so a link back to a parent makes the walk re-read the same files
//! under ever longer paths, and two such links make it endless; it also runs as one call that
//! cannot be interrupted. Here the walk starts at the pattern's literal directory, goes no deeper
//! than the pattern can match, follows symlinks but enters each real directory once (by device +
//! inode; `walkdir` also reports links to an ancestor), returns each real file once, and checks
//! the cancellation token between entries so that SIGTERM stops it.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use tokio_util::sync::CancellationToken;
use walkdir::WalkDir;

use super::identity::FileId;

/// The walk was cancelled by shutdown.
#[derive(Debug, thiserror::Error)]
#[error("the directory walk was cancelled by shutdown")]
pub(super) struct Cancelled;

/// A compiled `source.path`: the directory to start from and what to match below it.
#[derive(Debug, Clone)]
pub(super) struct Pattern {
    /// Where the walk starts: the leading components without glob characters.
    root: PathBuf,
    /// Whether `root` is the working directory the pattern left implicit (`*.jsonl`), so paths
    /// are shown without a leading `./`, as the glob was written.
    implicit_root: bool,
    /// The rest of the pattern, matched against paths relative to `root`.
    matcher: GlobMatcher,
    /// How deep the rest can match (`None` with `**`).
    max_depth: Option<usize>,
}

impl Pattern {
    /// Compiles a glob such as `data/**/*.jsonl`; `*` and `?` do not match `/`.
    pub fn parse(text: &str) -> Result<Self, globset::Error> {
        let parts: Vec<&str> = text.split('/').filter(|part| !part.is_empty()).collect();
        let last = parts.len().saturating_sub(1);
        let literal = parts[..last].iter().take_while(|p| !is_glob(p)).count();
        let rest = parts[literal..].join("/");
        let mut root = parts[..literal].join("/");
        if text.starts_with('/') {
            root.insert(0, '/');
        }
        let implicit_root = root.is_empty();
        if implicit_root {
            root.push('.');
        }
        let matcher = GlobBuilder::new(&rest)
            .literal_separator(true)
            .build()?
            .compile_matcher();
        let max_depth = match rest.contains("**") {
            true => None,
            false => Some(parts.len() - literal),
        };
        Ok(Self {
            root: root.into(),
            implicit_root,
            matcher,
            max_depth,
        })
    }
}

fn is_glob(part: &str) -> bool {
    part.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// Every regular file `pattern` matches, each real file once (the first path in name order),
/// sorted. Unreadable directories and broken links are passed over.
pub(super) fn walk(
    pattern: &Pattern,
    cancel: &CancellationToken,
) -> Result<Vec<PathBuf>, Cancelled> {
    let mut walker = WalkDir::new(&pattern.root)
        .follow_links(true)
        .min_depth(1)
        .sort_by_file_name();
    if let Some(depth) = pattern.max_depth {
        walker = walker.max_depth(depth);
    }
    let mut entries = walker.into_iter();
    let mut dirs = HashSet::new();
    let mut files = HashSet::new();
    let mut found = Vec::new();
    while let Some(entry) = entries.next() {
        if cancel.is_cancelled() {
            return Err(Cancelled);
        }
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) => {
                tracing::debug!(%error, "passed over while walking");
                continue;
            }
        };
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_dir() {
            if !dirs.insert(FileId::of(&metadata)) {
                tracing::debug!(path = %entry.path().display(), "directory seen before (a symlink loop or a second link); not entered again");
                entries.skip_current_dir();
            }
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(&pattern.root)
            .unwrap_or(entry.path());
        if metadata.is_file()
            && pattern.matcher.is_match(relative)
            && files.insert(FileId::of(&metadata))
        {
            found.push(match pattern.implicit_root {
                true => relative.to_path_buf(),
                false => entry.path().to_path_buf(),
            });
        }
    }
    found.sort();
    Ok(found)
}

/// The files in `dirs` (not below them) whose id is in `wanted`: where files renamed out of the
/// glob went (`app.log` → `app.log.1`), so that their last lines are still read.
pub(super) fn find_renamed(
    dirs: &BTreeSet<PathBuf>,
    wanted: &HashSet<FileId>,
    cancel: &CancellationToken,
) -> Result<Vec<PathBuf>, Cancelled> {
    let mut found = Vec::new();
    for dir in dirs {
        let listed = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let Ok(entries) = std::fs::read_dir(listed) else {
            continue;
        };
        for entry in entries.flatten() {
            if cancel.is_cancelled() {
                return Err(Cancelled);
            }
            let path = dir.join(entry.file_name());
            match std::fs::metadata(&path) {
                Ok(metadata) if metadata.is_file() && wanted.contains(&FileId::of(&metadata)) => {
                    found.push(path)
                }
                _ => {}
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(pattern: &str, root: &Path) -> Vec<String> {
        let pattern = Pattern::parse(&format!("{}/{pattern}", root.display())).unwrap();
        walk(&pattern, &CancellationToken::new())
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    fn touch(root: &Path, relative: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "{}\n").unwrap();
    }

    #[test]
    fn star_stays_in_its_directory_and_double_star_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["a.jsonl", "b.txt", "sub/c.jsonl", "sub/deeper/d.jsonl"] {
            touch(dir.path(), file);
        }
        assert_eq!(names("*.jsonl", dir.path()), ["a.jsonl"]);
        assert_eq!(names("*/*.jsonl", dir.path()), ["sub/c.jsonl"]);
        assert_eq!(
            names("**/*.jsonl", dir.path()),
            ["a.jsonl", "sub/c.jsonl", "sub/deeper/d.jsonl"]
        );
        assert_eq!(names("a.jsonl", dir.path()), ["a.jsonl"]);
        assert_eq!(names("sub/{c,x}.jsonl", dir.path()), ["sub/c.jsonl"]);
        assert!(names("missing/*.jsonl", dir.path()).is_empty());
    }

    #[test]
    fn the_root_is_the_literal_directory_part() {
        let pattern = Pattern::parse("/var/log/app/**/x-*.jsonl").unwrap();
        assert_eq!(pattern.root, Path::new("/var/log/app"));
        assert_eq!(pattern.max_depth, None);
        let pattern = Pattern::parse("data/*/x.jsonl").unwrap();
        assert_eq!(pattern.root, Path::new("data"));
        assert_eq!(pattern.max_depth, Some(2));
        let pattern = Pattern::parse("*.jsonl").unwrap();
        assert!(pattern.implicit_root);
        assert!(Pattern::parse("data/[unclosed").is_err());
    }

    #[test]
    fn symlink_loops_are_entered_once_and_linked_files_read_once() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a.jsonl");
        touch(dir.path(), "sub/b.jsonl");
        symlink("..", dir.path().join("sub/up")).unwrap();
        symlink(".", dir.path().join("sub/here")).unwrap();
        symlink("sub/b.jsonl", dir.path().join("alias.jsonl")).unwrap();
        assert_eq!(
            names("**/*.jsonl", dir.path()),
            ["a.jsonl", "alias.jsonl"],
            "sub/b.jsonl is the same file as alias.jsonl, which comes first"
        );
    }

    #[test]
    fn a_cancelled_walk_stops() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "a.jsonl");
        let pattern = Pattern::parse(&format!("{}/**/*.jsonl", dir.path().display())).unwrap();
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(walk(&pattern, &cancel).is_err());
        let wanted = HashSet::new();
        let dirs = BTreeSet::from([dir.path().to_path_buf()]);
        assert!(find_renamed(&dirs, &wanted, &cancel).is_err());
    }

    #[test]
    fn renamed_files_are_found_by_id_in_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "app.log");
        touch(dir.path(), "other.log");
        let id = FileId::of(&std::fs::metadata(dir.path().join("app.log")).unwrap());
        std::fs::rename(dir.path().join("app.log"), dir.path().join("app.log.1")).unwrap();
        let dirs = BTreeSet::from([dir.path().to_path_buf()]);
        let found = find_renamed(&dirs, &HashSet::from([id]), &CancellationToken::new()).unwrap();
        assert_eq!(found, [dir.path().join("app.log.1")]);
    }
}
