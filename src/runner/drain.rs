//! [`Drain`]: the loop that takes a buffered task's records from its disk buffer to its sink.
//!
//! It reads batches of the sink's `batch-size` (or what is there once a partial batch has waited
//! `buffer.flush-interval`), delivers each with `Sink::deliver`, and acknowledges it in the
//! buffer (moving the ledger) only after the sink accepted it, and after the batch's dead
//! letters are on disk. A failed delivery is retried with the session's backoff, capped at
//! `session.retries.max-backoff`, for as long as it takes: the runs go on filling the buffer
//! meanwhile, and delivery resumes soon after the sink recovers. Order is kept: the same batch
//! is retried until it goes through.
//!
//! At shutdown the runs stop at once, but the drain goes on delivering (partial batches without
//! waiting) until the buffer is empty or `shutdown.grace-period` is over; what is left stays on
//! disk for the next start.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::buffer_sink::now_ms;
use super::shutdown::Shutdown;
use super::sink::Destination;
use super::task::{TaskContext, TaskError};
use crate::backoff::Backoff;
use crate::buffer::{Batch, Corrupt, DiskBuffer};
use crate::session::Session;
use crate::telemetry::catalogue;
use crate::telemetry::logging::error_chain;

/// One buffered task's way from its buffer to its sink.
#[derive(Debug)]
pub(crate) struct Drain {
    pub(crate) buffer: Arc<DiskBuffer>,
    pub(crate) destination: Destination,
    /// The drain's own context: its cancellation fires when the grace period ends, not at
    /// shutdown, so that a delivery in progress at SIGTERM may finish.
    pub(crate) ctx: TaskContext,
    /// The latest session: a reload of `auth:` or `session:` reaches the drain at its next batch.
    pub(crate) sessions: watch::Receiver<Session>,
    pub(crate) flush_interval: Duration,
    pub(crate) retry: Backoff,
    pub(crate) shutdown: Shutdown,
    pub(crate) grace: Duration,
}

impl Drain {
    /// Delivers until shutdown has come and either the buffer is empty or the grace period is
    /// over.
    pub(crate) async fn run(self) {
        let stop = self.ctx.cancellation().clone();
        let deadline = {
            let (shutdown, stop, grace) = (self.shutdown.clone(), stop.clone(), self.grace);
            async move {
                shutdown.wait().await;
                tokio::time::sleep(grace).await;
                stop.cancel();
            }
        };
        tokio::select! {
            _ = self.deliver_all() => {}
            _ = deadline => {}
            _ = stop.cancelled() => {}
        }
        let left = self.buffer.level();
        if left.records > 0 {
            self.ctx.span().in_scope(|| {
                tracing::warn!(
                    records = left.records,
                    buffer = %self.buffer.dir().display(),
                    "shutting down with records in the disk buffer; they are delivered after the next start"
                )
            });
        }
        self.idle();
    }

    async fn deliver_all(&self) {
        while let Some(batch) = self.next_batch().await {
            self.deliver(batch).await;
        }
    }

    /// The next batch: `batch-size` records, or fewer once they waited `flush-interval` (or at
    /// shutdown, at once); `None` at shutdown with nothing left.
    async fn next_batch(&self) -> Option<Batch> {
        let size = self.destination.batch_size;
        let mut batch = Batch::default();
        let mut flush_at = None;
        loop {
            let wanted = size - batch.records.len();
            batch.extend(self.read(wanted).await?);
            if batch.records.len() >= size {
                return Some(batch);
            }
            // At shutdown, a read that found no records means none are left.
            let stopping = self.shutdown.is_triggered();
            if stopping && batch.records.is_empty() {
                return (!batch.is_empty()).then_some(batch);
            }
            let flush_at = match batch.is_empty() {
                true => None,
                false => Some(*flush_at.get_or_insert(Instant::now() + self.flush_interval)),
            };
            if flush_at.is_some_and(|at| stopping || Instant::now() >= at) {
                return Some(batch);
            }
            self.report_age(&batch);
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                _ = self.buffer.appended() => {}
                _ = self.shutdown.wait(), if !stopping => {}
                _ = tokio::time::sleep_until(flush_at.unwrap_or(far)) => {}
            }
        }
    }

    /// Reads up to `max` records; logs and counts damage met on the way. A read that fails (a
    /// transient disk error, too many open files) is retried with the drain's backoff, with a
    /// warning each time. `None` if it still fails once shutdown has come, or if the buffer thread
    /// failed (said in the log): the drain stops, and the records stay on disk.
    async fn read(&self, max: usize) -> Option<Batch> {
        let mut delays = self.retry.delays();
        loop {
            let buffer = self.buffer.clone();
            let error = match tokio::task::spawn_blocking(move || buffer.read(max)).await {
                Ok(Ok(batch)) => {
                    for corrupt in &batch.corrupt {
                        report_corrupt(&self.ctx, corrupt);
                    }
                    return Some(batch);
                }
                Ok(Err(error)) => error,
                Err(error) => {
                    self.ctx.span().in_scope(|| tracing::error!(error = %error, "the buffer thread failed; delivery stops until restart"));
                    return None;
                }
            };
            if self.shutdown.is_triggered() {
                self.ctx.span().in_scope(|| tracing::error!(error = %error_chain(&error), "cannot read the disk buffer; delivery stops, the records stay on disk for the next start"));
                return None;
            }
            let delay = delays.next().unwrap_or_default();
            self.ctx.span().in_scope(|| {
                tracing::warn!(
                    error = %error_chain(&error),
                    retry_in_seconds = delay.as_secs_f64(),
                    "cannot read the disk buffer; retrying"
                )
            });
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.wait() => {}
            }
        }
    }

    /// Delivers `batch` until the sink accepts it and its dead letters are on disk, then
    /// acknowledges it. A batch the sink took is not delivered again while its dead letters
    /// cannot be written; a cancelled drain leaves the batch in the buffer.
    async fn deliver(&self, batch: Batch) {
        let records = self.decode(&batch);
        self.report_age(&batch);
        if !records.is_empty() {
            let to_sink = || async {
                let ctx = self.with_latest_session();
                self.destination.sink.deliver(&ctx, &records).await
            };
            let refused = "the sink refused a batch from the disk buffer; retrying";
            if !self
                .until_done(&batch, records.len(), refused, to_sink)
                .await
            {
                return;
            }
            let unwritten =
                "cannot write the batch's dead letters; retrying them (the sink has the batch)";
            let dead_letters = || self.ctx.rejects.sync();
            if !self
                .until_done(&batch, records.len(), unwritten, dead_letters)
                .await
            {
                return;
            }
        }
        self.acknowledge(batch, records.len() as u64).await;
    }

    /// Runs `attempt` until it succeeds, with the drain's backoff; false once the drain is
    /// cancelled.
    async fn until_done<F, Fut>(
        &self,
        batch: &Batch,
        records: usize,
        what: &str,
        mut attempt: F,
    ) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), TaskError>>,
    {
        let mut delays = self.retry.delays();
        loop {
            let error = match attempt().await {
                Ok(()) => return true,
                Err(_) if self.ctx.is_cancelled() => return false,
                Err(error) => error,
            };
            let delay = delays.next().unwrap_or_default();
            self.ctx.span().in_scope(|| {
                tracing::warn!(
                    error = %error_chain(&error),
                    records,
                    retry_in_seconds = delay.as_secs_f64(),
                    "{what}"
                )
            });
            self.report_age(batch);
            tokio::time::sleep(delay).await;
        }
    }

    /// The drain's context with the session in force now.
    fn with_latest_session(&self) -> TaskContext {
        let mut ctx = self.ctx.clone();
        ctx.session = self.sessions.borrow().for_task(self.ctx.name());
        ctx
    }

    /// The batch's records as JSON. A record that passed its CRC but is not JSON was written by
    /// something else: it is logged and counted as damage, and skipped.
    fn decode(&self, batch: &Batch) -> Vec<Value> {
        let mut records = Vec::with_capacity(batch.records.len());
        for (_, bytes) in &batch.records {
            match serde_json::from_slice(bytes) {
                Ok(record) => records.push(record),
                Err(error) => {
                    self.ctx.span().in_scope(|| tracing::error!(%error, "a record in the disk buffer is not JSON; skipped"));
                    metrics::counter!(catalogue::BUFFER_CORRUPT.name, "task" => self.ctx.name().to_string())
                        .increment(1);
                }
            }
        }
        records
    }

    /// Moves the ledger past a delivered batch and reports the new level.
    async fn acknowledge(&self, batch: Batch, delivered: u64) {
        let buffer = self.buffer.clone();
        let acknowledged = tokio::task::spawn_blocking(move || buffer.acknowledge(&batch)).await;
        if let Ok(Err(error)) = &acknowledged {
            // The next acknowledgement moves the ledger past this batch too; until then a
            // restart would deliver it again.
            self.ctx.span().in_scope(|| tracing::error!(error = %error_chain(error), "cannot record the delivered batch in the buffer ledger"));
        }
        let task = self.ctx.name().to_string();
        metrics::counter!(catalogue::BUFFER_DELIVERED.name, "task" => task).increment(delivered);
        if self.buffer.level().records == 0 {
            self.idle();
        }
    }

    /// The buffer is empty (or the drain stops): the sink's run ends, dropped records are told.
    fn idle(&self) {
        report_level(self.ctx.name(), &self.buffer);
        metrics::gauge!(catalogue::BUFFER_OLDEST_AGE.name, "task" => self.ctx.name().to_string())
            .set(0.0);
        self.destination.sink.end_run();
        self.ctx.rejects.finish();
    }

    /// The age of the oldest record not delivered: the first of `batch`.
    fn report_age(&self, batch: &Batch) {
        let Some((appended_ms, _)) = batch.records.first() else {
            return;
        };
        let age = now_ms().saturating_sub(*appended_ms) as f64 / 1000.0;
        metrics::gauge!(catalogue::BUFFER_OLDEST_AGE.name, "task" => self.ctx.name().to_string())
            .set(age);
    }
}

/// Sets the records and bytes gauges of `task`'s buffer.
pub(crate) fn report_level(task: &str, buffer: &DiskBuffer) {
    let level = buffer.level();
    metrics::gauge!(catalogue::BUFFER_RECORDS.name, "task" => task.to_string())
        .set(level.records as f64);
    metrics::gauge!(catalogue::BUFFER_BYTES.name, "task" => task.to_string())
        .set(level.bytes as f64);
}

/// Logs and counts a damaged region set aside.
pub(crate) fn report_corrupt(ctx: &TaskContext, corrupt: &Corrupt) {
    ctx.span().in_scope(|| {
        tracing::error!(
            segment = %corrupt.segment.display(),
            offset = corrupt.offset,
            bytes = corrupt.bytes,
            moved_to = %corrupt.moved_to.display(),
            "a damaged region of the disk buffer was set aside; the records in it are lost"
        )
    });
    metrics::counter!(catalogue::BUFFER_CORRUPT.name, "task" => ctx.name().to_string())
        .increment(1);
}
