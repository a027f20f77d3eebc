//! [`Sink`]: where a task's records go. Sinks are components: each type has its own config and is
//! registered by name (`tapline::Registry::sink`); a task of a type that delivers records (a
//! source) names one in its `sink:` block and hands records to it through its run's
//! [`Output`](super::Output).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::task::{TaskContext, TaskError};

/// A destination for records.
///
/// A sink returns from [`Sink::deliver`] only once the batch is durable at the destination: the
/// task moves its cursor after that, so a batch that was not delivered is read again next run.
/// Runs of one task never overlap, so a sink may keep state for the run (an open file) and drop
/// it in [`Sink::end_run`].
#[async_trait::async_trait]
pub trait Sink: Send + Sync + fmt::Debug + 'static {
    /// Delivers one batch (at most the sink block's `batch-size` records).
    async fn deliver(&self, ctx: &TaskContext, batch: &[Value]) -> Result<(), TaskError>;

    /// The run is over, successful or not: release what it held. Called once per run.
    fn end_run(&self) {}
}

/// A task's sink with the sink block's common keys.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The sink.
    pub sink: Arc<dyn Sink>,
    /// Records per batch (`sink.batch-size`).
    pub batch_size: usize,
}
