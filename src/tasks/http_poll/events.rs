//! What an `http-poll` run reports beyond the runner's counters: each event logs and counts in
//! one place.

use metrics::SharedString;

use crate::telemetry::catalogue;

/// Records came in but no page of the run had the configured `source.cursor`.
///
/// A warning and a counter, not an error, because:
/// - the records are already delivered when the last page shows the cursor is missing, so
///   failing the run would undo nothing; it would only hide the delivered records behind a
///   failure and retry the same pages sooner;
/// - some APIs legitimately leave the cursor out of a page now and then (an empty or partial
///   answer), and a run must not fail for that.
///
/// But a pointer that *never* matches means every run re-reads (and re-delivers) everything
/// since the initial cursor, so it must not pass silently: the warning names the pointer, and
/// `tapline_http_poll_cursor_missing_total{task}` lets an alert catch a count that keeps rising.
pub(super) struct CursorMissing<'a> {
    pub task: &'a str,
    pub pointer: &'a str,
    pub records: usize,
}

impl CursorMissing<'_> {
    pub(super) fn emit(self) {
        tracing::warn!(
            pointer = self.pointer,
            records = self.records,
            "no page had the cursor at source.cursor {:?}; the cursor stays where it was, so the \
             next run reads these records again: check source.cursor against the source's answers",
            self.pointer
        );
        metrics::counter!(
            catalogue::HTTP_POLL_CURSOR_MISSING.name,
            "task" => SharedString::from(self.task.to_string())
        )
        .increment(1);
    }
}
