//! What the `file` task tells the operator. Each event logs (and, where there is a metric,
//! counts) in one place, so the two cannot drift apart.

use super::plan::{Start, Truncated};
use crate::telemetry::catalogue;

/// Something that happened while reading files.
#[derive(Debug)]
pub(super) enum FileEvent<'a> {
    /// A file is about to be read (logged only when that is news: renamed or truncated).
    Reading {
        /// Where it is.
        path: &'a str,
        /// From where, and why.
        start: &'a Start,
    },
    /// A line longer than `source.max-line-bytes` was skipped
    /// (`tapline_file_lines_skipped_total{reason="too-long"}`).
    LineTooLong {
        /// The file.
        path: &'a str,
        /// Where the line starts.
        offset: u64,
        /// The limit.
        max_line_bytes: usize,
    },
    /// The offset of a file gone for `source.forget-after` was dropped.
    Forgotten {
        /// Where it was last seen.
        path: &'a str,
    },
}

impl FileEvent<'_> {
    /// Logs it (in the current span, which names the task) and counts it for `task`.
    pub fn emit(&self, task: &str) {
        match self {
            Self::Reading { path, start } => match start {
                Start::Continue | Start::New => {}
                Start::Renamed { from } => {
                    tracing::info!(file = %path, renamed_from = %from, "file was renamed (rotated); reading the rest of it")
                }
                Start::ReadAgain(Truncated::Shorter) => tracing::warn!(
                    file = %path,
                    "file is shorter than its saved offset (truncated); reading it again from the start"
                ),
                Start::ReadAgain(Truncated::Rewritten) => tracing::warn!(
                    file = %path,
                    "file's first bytes changed (truncated and written again, or replaced); reading it again from the start"
                ),
            },
            Self::LineTooLong {
                path,
                offset,
                max_line_bytes,
            } => {
                tracing::warn!(file = %path, offset, max_line_bytes, "line longer than source.max-line-bytes; skipped");
                metrics::counter!(catalogue::FILE_LINES_SKIPPED.name, "task" => task.to_string(), "reason" => "too-long")
                    .increment(1);
            }
            Self::Forgotten { path } => {
                tracing::info!(file = %path, "file gone for longer than source.forget-after; its offset is dropped")
            }
        }
    }
}
