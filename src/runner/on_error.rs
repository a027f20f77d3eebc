//! What happens to a record that fails on its way to the sink: a transform error, or a record a
//! sink refuses before sending (`on-error: fail | skip | dead-letter`).
//!
//! Each run has one [`Rejects`]: it fails the run, counts the record, or keeps a dead letter for
//! it. Dead letters are written and fsynced by [`Rejects::sync`], which the run's `Output` calls
//! at the end of every flush, so they are on disk before the cursor moves past their records.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::task::TaskError;
use crate::jsonl_file::JsonlFile;
use crate::telemetry::catalogue;

/// A task's `on-error`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OnError {
    /// The run fails; nothing moves, so the next run reads the same records again.
    #[default]
    Fail,
    /// The record is dropped, counted and logged once per run.
    Skip,
    /// The record is appended to this JSON-lines file with the error, then dropped.
    DeadLetter(PathBuf),
}

/// Dead letters buffered before a write, so that a run where every record fails does not
/// fsync once per record.
const DEAD_LETTER_BUFFER: usize = 1 << 20;

/// One run's failed records.
#[derive(Debug)]
pub(crate) struct Rejects {
    task: Arc<str>,
    policy: OnError,
    dead_letters: Option<JsonlFile>,
    state: Mutex<Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    dropped: u64,
    first_error: Option<String>,
    /// Dead-letter lines not yet written.
    unwritten: Vec<u8>,
}

impl Rejects {
    pub(crate) fn new(task: Arc<str>, policy: OnError) -> Self {
        let dead_letters = match &policy {
            OnError::DeadLetter(path) => Some(JsonlFile::new(path)),
            _ => None,
        };
        Self {
            task,
            policy,
            dead_letters,
            state: Mutex::default(),
        }
    }

    /// Applies the policy to `record`, which failed with `error`.
    pub(crate) async fn reject(&self, record: &Value, error: &str) -> Result<(), TaskError> {
        if self.policy == OnError::Fail {
            return Err(TaskError::msg(format!(
                "a record failed (on-error: fail): {error}"
            )));
        }
        metrics::counter!(catalogue::TASK_RECORDS_DROPPED.name, "task" => self.task.to_string(), "reason" => "error")
            .increment(1);
        let full = {
            let mut tally = self.tally();
            tally.dropped += 1;
            tally.first_error.get_or_insert_with(|| error.to_string());
            if self.dead_letters.is_some() {
                let line = json!({
                    "task": &*self.task,
                    "time": chrono::Utc::now().to_rfc3339(),
                    "error": error,
                    "record": record,
                });
                serde_json::to_writer(&mut tally.unwritten, &line).expect("JSON serialises");
                tally.unwritten.push(b'\n');
            }
            tally.unwritten.len() >= DEAD_LETTER_BUFFER
        };
        if full {
            self.sync().await?;
        }
        Ok(())
    }

    /// Writes the dead letters kept so far and fsyncs them.
    pub(crate) async fn sync(&self) -> Result<(), TaskError> {
        let Some(file) = &self.dead_letters else {
            return Ok(());
        };
        // Taken out only once written: after a failed write the same lines are tried again by
        // the next sync (a drain retries it without delivering its batch again).
        let text = self.tally().unwritten.clone();
        if text.is_empty() {
            return Ok(());
        }
        let written = text.len();
        file.append_text(text).await.map_err(|error| {
            let place = format!("cannot write dead letters to {}", file.path().display());
            TaskError::with(place, error)
        })?;
        self.tally().unwritten.drain(..written);
        Ok(())
    }

    /// The run is over: one warning for everything it dropped, and the file closed.
    pub(crate) fn finish(&self) {
        let tally = std::mem::take(&mut *self.tally());
        if let Some(file) = &self.dead_letters {
            file.close();
        }
        let Some(first_error) = tally.first_error else {
            return;
        };
        match &self.policy {
            OnError::DeadLetter(path) => tracing::warn!(
                records = tally.dropped,
                first_error,
                dead_letter = %path.display(),
                "records failed and were written to the dead-letter file"
            ),
            _ => tracing::warn!(
                records = tally.dropped,
                first_error,
                "records failed and were skipped (on-error: skip)"
            ),
        }
    }

    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dead_letters_a_write_failed_on_are_written_by_the_next_sync_once() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("letters");
        std::fs::write(&blocked, "a file where the directory goes").unwrap();
        let path = blocked.join("dead.jsonl");
        let rejects = Rejects::new("t".into(), OnError::DeadLetter(path.clone()));
        rejects.reject(&json!({"id": 1}), "bad").await.unwrap();
        assert!(
            rejects.sync().await.is_err(),
            "the directory cannot be made"
        );

        std::fs::remove_file(&blocked).unwrap();
        rejects.sync().await.unwrap();
        rejects.sync().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["record"], json!({"id": 1}));
        assert_eq!(lines[0]["error"], "bad");
    }
}
