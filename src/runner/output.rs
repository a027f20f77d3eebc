//! [`Output`]: one run's path to its sink. Records pass through the task's `transform:` (if any),
//! then are gathered into batches of `batch-size` across all the pages (or files) of the run, so
//! a source with many small pages still writes full batches; each full batch is delivered before
//! more records are taken.
//!
//! The transform runs on blocking threads, a chunk of records at a time and several chunks at
//! once, their outputs taken in order: a heavy program uses every core without stalling the other
//! tasks' I/O, and a run that times out can be abandoned even while the program computes. A
//! source that delivers in steps can push its next step before flushing the previous one
//! ([`Output::mark`], [`Output::stage`], [`Output::flush_to`]), so the program works on the next
//! step while the sink writes the previous one.
//!
//! Records held in memory: without a transform, at most one batch (and a step being staged, and
//! up to three delivered batches of all tasks waiting to be freed, see `free_later`); with
//! one, besides that, up to two chunks per core in flight, a chunk being the batch size split
//! across the cores, between 256 and 8,192 records, with what the program made of them (it may
//! emit several records for one). Staging does not wait for chunks: a staged step is held whole.

use std::collections::VecDeque;
use std::sync::mpsc::{self, SyncSender};
use std::sync::OnceLock;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::sink::Destination;
use super::task::{TaskContext, TaskError};
use crate::telemetry::catalogue;
use crate::transform::{Bindings, Failed, Program, RecordError};

/// The fewest and the most records given to the transform at a time. Between the two, a batch
/// is cut into one chunk per core: fewer, larger chunks cost less than many small ones
/// (`cargo bench --bench transform`: 5,000-record chunks ran 20% faster than 1,024).
const CHUNK_SIZES: std::ops::RangeInclusive<usize> = 256..=8192;

/// A point in the stream of records pushed to an [`Output`]; see [`Output::flush_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark(u64);

/// Hands a run's records to its sink in batches. Get one with [`TaskContext::output`].
///
/// Call [`Output::flush`] before saving the position the records came from (a cursor, a file
/// offset): only then are they delivered (and their dead letters on disk). Records still pending
/// when the output is dropped are not delivered, and the run's position must not move past them.
#[derive(Debug)]
pub struct Output {
    ctx: TaskContext,
    destination: Destination,
    transform: Option<Transform>,
    /// Records ready for the sink.
    pending: Vec<Value>,
    /// Without a transform: records pushed, and records delivered, so far.
    pushed: u64,
    delivered: u64,
}

/// The task's program, the run's variables, the records waiting for it and the chunks it is
/// working on, oldest first.
#[derive(Debug)]
struct Transform {
    program: Program,
    bindings: Bindings,
    inputs: Vec<Value>,
    running: VecDeque<JoinHandle<Result<Transformed, TaskError>>>,
    /// Chunks started and finished so far in the run.
    started: u64,
    finished: u64,
    /// Records per chunk.
    chunk: usize,
    /// Chunks in flight before a push waits for the oldest: two per core.
    in_flight: usize,
}

/// What the transform made of one chunk.
#[derive(Debug)]
struct Transformed {
    inputs: u64,
    outputs: Vec<Value>,
    failed: Vec<Failed>,
    filtered: u64,
}

impl Output {
    pub(crate) fn new(ctx: TaskContext, destination: Destination) -> Self {
        let pending = Vec::with_capacity(destination.batch_size.min(10_000));
        let transform = ctx.transform.clone().map(|program| {
            let cursor = ctx.state.get::<Value>("cursor").ok().flatten();
            let bindings =
                Bindings::for_run(&ctx.name, ctx.started_ms(), cursor.unwrap_or_default());
            let cores = crate::cores::cores();
            let chunk = destination.batch_size.div_ceil(cores);
            let chunk = chunk.clamp(*CHUNK_SIZES.start(), *CHUNK_SIZES.end());
            Transform {
                program,
                bindings,
                inputs: Vec::with_capacity(chunk),
                running: VecDeque::new(),
                started: 0,
                finished: 0,
                chunk,
                in_flight: 2 * cores,
            }
        });
        Self {
            ctx,
            destination,
            transform,
            pending,
            pushed: 0,
            delivered: 0,
        }
    }

    /// Records per batch.
    pub fn batch_size(&self) -> usize {
        self.destination.batch_size
    }

    /// The cursor this run started from (as saved, or the task's initial cursor on a first run),
    /// which the transform sees as `$cursor`. By default it is the value saved under the state
    /// key `cursor`, or null; a source whose cursor lives elsewhere, or that has an initial
    /// cursor, says so here before pushing records.
    pub fn set_cursor(&mut self, cursor: Value) {
        if let Some(transform) = &mut self.transform {
            transform.bindings.cursor = cursor;
        }
    }

    /// Adds one record, delivering a batch when it is full.
    pub async fn push(&mut self, record: Value) -> Result<(), TaskError> {
        if self.take(record) {
            while self
                .transform
                .as_ref()
                .is_some_and(|t| t.running.len() >= t.in_flight)
            {
                self.finish_chunk().await?;
            }
        }
        self.deliver_full_batches().await
    }

    /// Adds records in order, delivering each batch as it fills.
    pub async fn extend(
        &mut self,
        records: impl IntoIterator<Item = Value>,
    ) -> Result<(), TaskError> {
        for record in records {
            self.push(record).await?;
        }
        Ok(())
    }

    /// Adds records without delivering any or waiting for the transform: a source that delivers
    /// in steps stages its next step, then flushes the previous one up to its [`Mark`], so the
    /// transform works on the next step while the sink writes the previous one, and a failing
    /// sink never takes records of a step whose position was not saved yet.
    pub fn stage(&mut self, records: impl IntoIterator<Item = Value>) {
        for record in records {
            self.take(record);
        }
    }

    /// Takes a record into the transform or the pending batch; returns whether it started a
    /// chunk.
    fn take(&mut self, record: Value) -> bool {
        let Some(transform) = &mut self.transform else {
            self.pending.push(record);
            self.pushed += 1;
            return false;
        };
        transform.inputs.push(record);
        if transform.inputs.len() < transform.chunk {
            return false;
        }
        self.start_chunk();
        true
    }

    /// Delivers what is pending, if anything, and makes this run's dead letters durable. After
    /// it returns, every record pushed so far is at the destination or was dealt with under
    /// `on-error`.
    pub async fn flush(&mut self) -> Result<(), TaskError> {
        let mark = self.mark();
        self.flush_to(mark).await
    }

    /// The point after the records pushed so far: a count of chunks with a transform, of
    /// records without.
    pub fn mark(&mut self) -> Mark {
        self.start_chunk();
        Mark(self.transform.as_ref().map_or(self.pushed, |t| t.started))
    }

    /// Like [`Output::flush`] for the records pushed before `mark`: after it returns they are at
    /// the destination (or dealt with under `on-error`), while the transform may still be
    /// working on records staged since, which are not delivered.
    pub async fn flush_to(&mut self, mark: Mark) -> Result<(), TaskError> {
        while self.transform.as_ref().is_some_and(|t| t.finished < mark.0) {
            self.finish_chunk().await?;
        }
        // With a transform, the pending records are outputs of chunks before the mark (pushes
        // after it may have finished later chunks too: delivering those early is harmless).
        let before_mark = match self.transform {
            Some(_) => self.pending.len(),
            None => usize::try_from(mark.0.saturating_sub(self.delivered)).unwrap_or(usize::MAX),
        };
        self.deliver_first(before_mark.min(self.pending.len()))
            .await?;
        self.ctx.rejects.sync().await
    }

    /// Delivers the pending records that fill whole batches.
    async fn deliver_full_batches(&mut self) -> Result<(), TaskError> {
        let size = self.destination.batch_size;
        self.deliver_first(self.pending.len() / size * size).await
    }

    /// Delivers the first `count` pending records, in batches of `batch-size`.
    async fn deliver_first(&mut self, mut count: usize) -> Result<(), TaskError> {
        while count > 0 {
            let size = count.min(self.destination.batch_size);
            // Delivered from where they are, then moved out to be freed: `pending` keeps its
            // allocation.
            let delivered = deliver(&self.ctx, &self.destination, &self.pending[..size]).await;
            free_later(self.pending.drain(..size).collect());
            delivered?;
            self.delivered += size as u64;
            count -= size;
        }
        Ok(())
    }

    /// Starts transforming the records waiting for it, if any.
    fn start_chunk(&mut self) {
        let Some(transform) = &mut self.transform else {
            return;
        };
        if transform.inputs.is_empty() {
            return;
        }
        let fresh = Vec::with_capacity(transform.chunk);
        let inputs = std::mem::replace(&mut transform.inputs, fresh);
        let (program, bindings) = (transform.program.clone(), transform.bindings.clone());
        let (cancel, threads) = (self.ctx.cancel.clone(), self.ctx.transform_threads.clone());
        transform.started += 1;
        transform.running.push_back(tokio::spawn(async move {
            // The permit goes with the thread: it is the task's again only when the thread ends.
            let permit = tokio::select! {
                permit = threads.acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = cancel.cancelled() => return Err(TaskError::Cancelled),
            };
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                transform_chunk(&program, &bindings, inputs, &|| cancel.is_cancelled())
            })
            .await
            .map_err(|error| TaskError::with("the transform thread failed", error))?
        }));
    }

    /// Waits for the oldest chunk: its outputs join the pending records (delivered by the
    /// caller), and the records the program failed on go to `on-error`.
    async fn finish_chunk(&mut self) -> Result<(), TaskError> {
        let Some(transform) = self.transform.as_mut() else {
            return Ok(());
        };
        let Some(chunk) = transform.running.pop_front() else {
            return Ok(());
        };
        transform.finished += 1;
        let done = chunk
            .await
            .map_err(|error| TaskError::with("the transform thread failed", error))??;
        let task = self.ctx.name.to_string();
        metrics::counter!(catalogue::TASK_RECORDS_TRANSFORMED.name, "task" => task.clone())
            .increment(done.inputs);
        metrics::counter!(catalogue::TASK_RECORDS_DROPPED.name, "task" => task, "reason" => "filtered")
            .increment(done.filtered);
        self.pending.extend(done.outputs);
        for failed in done.failed {
            let error = format!("transform: {}", failed.error);
            self.ctx.reject(&failed.record, &error).await?;
        }
        Ok(())
    }
}

/// Frees delivered records on a thread of their own, or here when that thread is still busy
/// with two batches. Why: freeing a batch of records (every string and map in them) takes about
/// as long as writing it out as JSON, and the next batch need not wait for it; never more than
/// three batches, of all tasks together, wait to be freed.
fn free_later(records: Vec<Value>) {
    static FREER: OnceLock<Option<SyncSender<Vec<Value>>>> = OnceLock::new();
    let freer = FREER.get_or_init(|| {
        let (sender, batches) = mpsc::sync_channel::<Vec<Value>>(2);
        let thread = std::thread::Builder::new().name("tapline-free".into());
        // Without the thread (it could not start), batches are freed where they were delivered.
        let started = thread.spawn(move || batches.into_iter().for_each(drop));
        started.ok().map(|_| sender)
    });
    if let Some(freer) = freer {
        // Full or gone: freed here, on return.
        let _ = freer.try_send(records);
    }
}

/// Hands `batch` to the sink and counts it.
async fn deliver(
    ctx: &TaskContext,
    destination: &Destination,
    batch: &[Value],
) -> Result<(), TaskError> {
    if ctx.is_cancelled() {
        return Err(TaskError::Cancelled);
    }
    destination.sink.deliver(ctx, batch).await?;
    ctx.records_delivered(batch.len() as u64);
    Ok(())
}

/// Runs `program` on each record of a chunk, in order.
fn transform_chunk(
    program: &Program,
    bindings: &Bindings,
    inputs: Vec<Value>,
    cancelled: &dyn Fn() -> bool,
) -> Result<Transformed, TaskError> {
    let bound = program.bind(bindings);
    let mut done = Transformed {
        inputs: inputs.len() as u64,
        outputs: Vec::with_capacity(inputs.len()),
        failed: Vec::new(),
        filtered: 0,
    };
    for record in inputs {
        let before = done.outputs.len();
        match bound.apply(record, &mut done.outputs, cancelled) {
            Ok(()) if done.outputs.len() == before => done.filtered += 1,
            Ok(()) => {}
            Err(failed) if failed.error == RecordError::Cancelled => {
                return Err(TaskError::Cancelled)
            }
            Err(failed) => done.failed.push(failed),
        }
    }
    Ok(done)
}

impl Drop for Output {
    fn drop(&mut self) {
        self.destination.sink.end_run();
    }
}
