//! [`Output`]: one run's path to its sink. Records are gathered into batches of `batch-size`
//! across all the pages (or files) of the run, so a source with many small pages still writes
//! full batches; each full batch is delivered before more records are taken, which keeps memory
//! bounded by the batch size.

use serde_json::Value;

use super::sink::Destination;
use super::task::{TaskContext, TaskError};

/// Hands a run's records to its sink in batches. Get one with [`TaskContext::output`].
///
/// Call [`Output::flush`] before saving the position the records came from (a cursor, a file
/// offset): only then are they delivered. Records still pending when the output is dropped are
/// not delivered, and the run's position must not move past them.
#[derive(Debug)]
pub struct Output {
    ctx: TaskContext,
    destination: Destination,
    pending: Vec<Value>,
}

impl Output {
    pub(crate) fn new(ctx: TaskContext, destination: Destination) -> Self {
        let pending = Vec::with_capacity(destination.batch_size.min(10_000));
        Self {
            ctx,
            destination,
            pending,
        }
    }

    /// Records per batch.
    pub fn batch_size(&self) -> usize {
        self.destination.batch_size
    }

    /// Adds one record, delivering a batch when it is full.
    pub async fn push(&mut self, record: Value) -> Result<(), TaskError> {
        self.pending.push(record);
        if self.pending.len() >= self.destination.batch_size {
            self.flush().await?;
        }
        Ok(())
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

    /// Delivers what is pending, if anything. After it returns, every record pushed so far is
    /// at the destination.
    pub async fn flush(&mut self) -> Result<(), TaskError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.ctx.is_cancelled() {
            return Err(TaskError::Cancelled);
        }
        self.destination
            .sink
            .deliver(&self.ctx, &self.pending)
            .await?;
        self.ctx.records_delivered(self.pending.len() as u64);
        self.pending.clear();
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.destination.sink.end_run();
    }
}
