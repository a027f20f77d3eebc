//! One run of a `sql` task: the reader pages from the saved cursor, and each page is delivered
//! before its cursor is saved; without a cursor, the whole result once.
//!
//! A lost connection or a restarting database is retried with backoff: the reader starts again
//! after the last row handed to the sink, so nothing is read twice within a run. The cursor in
//! the state file moves only after a page was delivered, so a run that gives up sends at most
//! the rows after the last saved page again on the next run, and loses none.

use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::cursor::Cursor;
use super::error::Error;
use super::reader::{self, Message};
use super::{failed, Sql};
use crate::backoff::{Backoff, Delays, Jitter};
use crate::runner::{Output, StateError, StateHandle, TaskContext, TaskError};

/// Waits between retries within a run: up to 0.5 s doubling to 10 s, each drawn from
/// `[0, ceiling]` ([`Jitter::Full`], the one that spreads a herd) so that tasks sharing a
/// restarted database do not come back in lockstep, and never longer than 10 s.
const RETRY: Backoff = Backoff::new(
    Duration::from_millis(500),
    Duration::from_secs(10),
    Jitter::Full,
);

/// Where a run is: the last row handed to the output, whether its cursor is saved, and the
/// save in flight.
struct Progress {
    cursor: Option<Cursor>,
    unsaved: bool,
    rows: u64,
    saving: Saving,
}

/// One run of `sql`.
pub(super) async fn run(sql: &Sql, ctx: &TaskContext) -> Result<(), TaskError> {
    let mut output = ctx.output()?;
    let pool = sql.pool().map_err(failed)?;
    let start = match &sql.source.initial_cursor {
        Some(initial) if !sql.source.cursor.is_empty() => {
            Some(Cursor::start(ctx.state(), initial)?)
        }
        _ => None,
    };
    output.set_cursor(start.as_ref().map_or(Value::Null, Cursor::values));
    let mut progress = Progress {
        cursor: start,
        unsaved: false,
        rows: 0,
        saving: Saving::default(),
    };
    let result = read_all(sql, ctx, &pool, &mut output, &mut progress).await;
    // Whatever ended the run, its last save is waited for: two saves of one task never overlap,
    // so an older cursor can never land after a newer one.
    let saved = progress.saving.finish().await;
    if let (Err(_), Err(error)) = (&result, &saved) {
        tracing::warn!(error = %crate::runner::error_chain(error), "saving the cursor failed too");
    }
    result?;
    saved?;
    tracing::info!(records = progress.rows, "query done");
    Ok(())
}

/// Reads page after page until the last, retrying a lost connection from the last row handed on.
async fn read_all(
    sql: &Sql,
    ctx: &TaskContext,
    pool: &super::pool::Pool,
    output: &mut Output,
    progress: &mut Progress,
) -> Result<(), TaskError> {
    let mut retry = Retry::new(sql.source.max_retries);
    loop {
        let plan = sql.plan(progress.cursor.clone());
        match read(ctx, pool, plan, output, progress, &mut retry).await? {
            None => return Ok(()),
            // A snapshot cannot resume in the middle: only retried while nothing was handed on.
            Some(error) if plan_resumes(sql) || progress.rows == 0 => {
                retry.after(ctx, error).await?
            }
            Some(error) => return Err(failed(error)),
        }
    }
}

fn plan_resumes(sql: &Sql) -> bool {
    !sql.source.cursor.is_empty()
}

/// Hands the reader's records to `output` and saves the cursor at each page end, until the last
/// page (`None`) or a database error (`Some`, to retry or fail on).
async fn read(
    ctx: &TaskContext,
    pool: &super::pool::Pool,
    plan: reader::Plan,
    output: &mut Output,
    progress: &mut Progress,
    retry: &mut Retry,
) -> Result<Option<Error>, TaskError> {
    // Every return drops it, which aborts the reader: a cancelled or failed run leaves no query
    // running on the database.
    let mut messages = reader::spawn(pool, plan);
    loop {
        let message = tokio::select! {
            message = messages.recv() => message,
            _ = ctx.cancelled() => return Err(TaskError::Cancelled),
        };
        match message {
            None => return Err(TaskError::msg("the database reader stopped unexpectedly")),
            Some(Err(error)) => return Ok(Some(error)),
            Some(Ok(Message::Rows(chunk))) => {
                let records = match chunk.records.await {
                    Ok(Ok(records)) => records,
                    Ok(Err(error)) => return Ok(Some(error)),
                    Err(error) => return Err(TaskError::with("converting rows failed", error)),
                };
                let rows = records.len() as u64;
                ctx.records_extracted(rows);
                output
                    .extend(records.into_iter().map(Value::Object))
                    .await?;
                progress.rows += rows;
                if let Some(last) = chunk.last {
                    progress.cursor = Some(last);
                    progress.unsaved = true;
                }
            }
            Some(Ok(Message::PageEnd { short })) => {
                output.flush().await?;
                if let (Some(cursor), true) = (&progress.cursor, progress.unsaved) {
                    cursor.store(ctx.state())?;
                    progress.saving.start(ctx.state()).await?;
                    progress.unsaved = false;
                }
                retry.reset();
                if short {
                    return Ok(None);
                }
            }
        }
    }
}

/// The state save of the last page end, in flight while the next page is delivered.
///
/// Why not wait for it: a save is a file replaced and fsynced (or a transaction on the shared
/// state), a fifth of a run's time when the run waits for each. It only writes cursors of pages
/// already delivered, so the next page may go to the sink meanwhile; saves still happen one at a
/// time and in order, and the run ends only after the last one (with its error if it failed),
/// however it ends.
#[derive(Default)]
struct Saving(Option<JoinHandle<Result<(), StateError>>>);

impl Saving {
    /// Starts saving `state`, once the save before has finished.
    async fn start(&mut self, state: &StateHandle) -> Result<(), TaskError> {
        self.finish().await?;
        let state = state.clone();
        self.0 = Some(tokio::spawn(async move { state.save().await }));
        Ok(())
    }

    /// Waits for the save in flight, if any.
    async fn finish(&mut self) -> Result<(), TaskError> {
        match self.0.take() {
            Some(saving) => Ok(saving.await.map_err(|error| {
                TaskError::with("the state save stopped unexpectedly", error)
            })??),
            None => Ok(()),
        }
    }
}

/// The retries left within a run.
struct Retry {
    left: u32,
    max: u32,
    delays: Delays,
}

impl Retry {
    fn new(max: u32) -> Self {
        Self {
            left: max,
            max,
            delays: RETRY.delays(),
        }
    }

    /// A page went through: the next failure starts the count again.
    fn reset(&mut self) {
        self.left = self.max;
        self.delays.reset();
    }

    /// Waits before the next try after `error`, or fails the run with it when it is not worth
    /// a retry or none are left.
    async fn after(&mut self, ctx: &TaskContext, error: Error) -> Result<(), TaskError> {
        if !error.is_transient() || self.left == 0 {
            return Err(failed(error));
        }
        self.left -= 1;
        let delay = self.delays.next().unwrap_or_default();
        tracing::warn!(
            error = %crate::runner::error_chain(&error),
            retry_in_seconds = delay.as_secs_f64(),
            retries_left = self.left,
            "the database is unreachable; trying again"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = ctx.cancelled() => Err(TaskError::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_at_most_ten_seconds() {
        let delays: Vec<Duration> = RETRY.delays().take(12).collect();
        assert_eq!(delays.len(), 12);
        assert!(
            delays.iter().all(|delay| *delay <= Duration::from_secs(10)),
            "{delays:?}"
        );
    }
}
