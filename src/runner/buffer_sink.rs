//! [`BufferSink`]: what the runs of a task with `buffer: {type: disk}` deliver to. A batch is
//! appended to the task's [`DiskBuffer`] and fsynced before `deliver` returns, so the run's
//! `Output::flush` (after which the task saves its cursor or offsets) means "on disk in the
//! buffer"; the task's [`Drain`](super::drain::Drain) takes it to the real sink from there.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::drain::report_level;
use super::sink::Sink;
use super::task::{TaskContext, TaskError};
use crate::buffer::{self, DiskBuffer, Frames};
use crate::config::WhenFull;

/// How often a blocked append looks again even without a wake-up, in case one was missed.
const FULL_RECHECK: Duration = Duration::from_secs(1);

/// Appends a run's batches to the task's disk buffer.
#[derive(Debug)]
pub(crate) struct BufferSink {
    pub(crate) buffer: Arc<DiskBuffer>,
    pub(crate) when_full: WhenFull,
}

#[async_trait::async_trait]
impl Sink for BufferSink {
    async fn deliver(&self, ctx: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let mut frames = Frames::new(now_ms());
        for record in batch {
            frames
                .push(|out| serde_json::to_writer(out, record))
                .map_err(|error| TaskError::with("cannot encode a record for the buffer", error))?;
        }
        let mut warned = false;
        loop {
            let buffer = self.buffer.clone();
            let (appended, back) =
                tokio::task::spawn_blocking(move || (buffer.append(&frames), frames))
                    .await
                    .map_err(|error| TaskError::with("the buffer thread failed", error))?;
            frames = back;
            match appended {
                Ok(()) => {
                    report_level(ctx.name(), &self.buffer);
                    return Ok(());
                }
                Err(buffer::Error::Full) if self.when_full == WhenFull::Fail => {
                    return Err(TaskError::msg(format!(
                        "the disk buffer {} is full (buffer.max-size, when-full: fail)",
                        self.buffer.dir().display()
                    )))
                }
                Err(buffer::Error::Full) => self.wait_for_room(ctx, &mut warned).await?,
                Err(error) => {
                    return Err(TaskError::with("cannot append to the disk buffer", error))
                }
            }
        }
    }
}

impl BufferSink {
    /// Waits until the drain frees room (or the run is cancelled); says so once per batch.
    async fn wait_for_room(&self, ctx: &TaskContext, warned: &mut bool) -> Result<(), TaskError> {
        if !std::mem::replace(warned, true) {
            ctx.span().in_scope(|| {
                tracing::warn!(
                    buffer = %self.buffer.dir().display(),
                    "the disk buffer is full (buffer.max-size); not reading the source until the sink takes records"
                )
            });
        }
        tokio::select! {
            _ = self.buffer.freed() => Ok(()),
            _ = tokio::time::sleep(FULL_RECHECK) => Ok(()),
            _ = ctx.cancelled() => Err(TaskError::Cancelled),
        }
    }
}

/// Milliseconds since the Unix epoch: the append time stored with each record.
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}
