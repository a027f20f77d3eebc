//! What an extractor is: the [`Task`] trait, and the [`TaskContext`] each run is handed.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::on_error::{OnError, Rejects};
use super::output::Output;
use super::sink::Destination;
use super::state::{StateError, StateHandle};
use crate::coordination::Validity;
use crate::session::Session;
use crate::telemetry::catalogue;
use crate::transform::Program;

/// An extractor task. [`Task::run`] is called once per scheduled run (for `continuous` tasks, it
/// runs for as long as it goes on and is started again when it returns).
///
/// A run should watch [`TaskContext::cancelled`] at its await points: at shutdown the token is
/// cancelled and the runner waits only for `shutdown.grace-period`.
#[async_trait::async_trait]
pub trait Task: Send + Sync + 'static {
    /// One run. Return an error to have the run counted and logged as failed; the other tasks
    /// go on either way.
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError>;

    /// Checks what only the real source can tell (it can be reached, the credentials work, the
    /// query is valid), without reading records. `tapline validate --check-auth` calls it for
    /// every task, so such problems show before the first run; the default checks nothing.
    async fn check(&self) -> Result<(), TaskError> {
        Ok(())
    }
}

/// A run failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A request through the session failed.
    #[error(transparent)]
    Session(#[from] crate::session::Error),
    /// Reading or writing the task's state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The run stopped because the process is shutting down.
    #[error("cancelled by shutdown")]
    Cancelled,
    /// Anything else, with what was being done.
    #[error("{context}")]
    Failed {
        /// What failed, worded for the operator.
        context: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl TaskError {
    /// A failure described by `message`.
    pub fn msg(message: impl Into<String>) -> Self {
        Self::Failed {
            context: message.into(),
            source: None,
        }
    }

    /// A failure while doing `context`, caused by `source`.
    pub fn with(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Failed {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Everything a run may use; no globals.
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub(crate) name: Arc<str>,
    pub(crate) session: Session,
    pub(crate) cancel: CancellationToken,
    pub(crate) state: StateHandle,
    pub(crate) span: tracing::Span,
    pub(crate) destination: Option<Destination>,
    pub(crate) transform: Option<Program>,
    /// The task's transform threads (see [`transform_threads`]), shared by all its runs.
    pub(crate) transform_threads: Arc<Semaphore>,
    pub(crate) rejects: Arc<Rejects>,
    pub(crate) started: SystemTime,
    /// With coordination, whether the run's lease is valid right now.
    pub(crate) validity: Validity,
}

impl TaskContext {
    /// Builds a context by hand, for testing a task outside the runner.
    pub fn new(
        name: &str,
        session: &Session,
        state: StateHandle,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            name: name.into(),
            session: session.for_task(name),
            cancel,
            state,
            span: tracing::info_span!("task", task = name),
            destination: None,
            transform: None,
            transform_threads: transform_threads(),
            rejects: Arc::new(Rejects::new(name.into(), OnError::Fail)),
            started: SystemTime::now(),
            validity: Validity::default(),
        }
    }

    /// This context with a sink, for testing a source outside the runner.
    pub fn with_sink(mut self, destination: Destination) -> Self {
        self.destination = Some(destination);
        self
    }

    /// This context with a transform and an `on-error` policy: for testing a source outside the
    /// runner, and for a disk buffer's drain, whose sink rejects records under the task's
    /// `on-error`.
    pub fn with_transform(mut self, transform: Option<Program>, on_error: OnError) -> Self {
        self.transform = transform;
        self.rejects = Arc::new(Rejects::new(self.name.clone(), on_error));
        self
    }

    /// The run's way to the task's `sink:`, batching records across the whole run. An error for
    /// a task type registered without a sink (`Registry::task` instead of `Registry::source`).
    pub fn output(&self) -> Result<Output, TaskError> {
        let destination = self.destination.clone().ok_or_else(|| {
            TaskError::msg("this task type has no sink; register it with Registry::source")
        })?;
        Ok(Output::new(self.clone(), destination))
    }

    /// A record that cannot be delivered (a sink found it invalid, the destination refused it)
    /// goes here with the reason, and the task's `on-error` decides: `fail` returns an error
    /// (fail the run with it), `skip` counts and drops it, `dead-letter` keeps it in the
    /// dead-letter file, durable once the run's `Output::flush` returns.
    pub async fn reject(&self, record: &Value, error: &str) -> Result<(), TaskError> {
        self.rejects.reject(record, error).await
    }

    /// When the run started, in milliseconds since the Unix epoch (the transform's `$now`).
    pub fn started_ms(&self) -> i64 {
        let since = self.started.duration_since(UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }

    /// The task's name from the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shared session, labelling requests with this task's name.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The task's own namespace of the state store. Values set here are saved after the run.
    pub fn state(&self) -> &StateHandle {
        &self.state
    }

    /// Saves the task's state now (the state file, or with coordination the shared state; if
    /// anything changed) instead of only after the run: a task that
    /// delivers in steps calls it after each step, so a crash or a failed step later in the run
    /// does not send the delivered records again.
    pub async fn save_state(&self) -> Result<(), StateError> {
        self.state.save().await
    }

    /// Cancelled when the run must stop: shutdown, its `timeout`, a reload that restarts the
    /// task, or (with coordination) its lease going.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the run must stop, as [`Self::cancellation`] says; with coordination it also checks
    /// the lease's validity at this very moment (and a lease found past its time cancels the
    /// token for every other check).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || !self.validity.holds()
    }

    /// Resolves when [`Self::cancellation`] is cancelled.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// The run's tracing span (field `task`); events inside the run are already in it.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Reports `count` records read from the source (`tapline_task_records_extracted_total`).
    pub fn records_extracted(&self, count: u64) {
        metrics::counter!(catalogue::TASK_RECORDS_EXTRACTED.name, "task" => self.name.to_string())
            .increment(count);
    }

    /// Reports `count` records delivered to the sink (`tapline_task_records_delivered_total`).
    pub fn records_delivered(&self, count: u64) {
        metrics::counter!(catalogue::TASK_RECORDS_DELIVERED.name, "task" => self.name.to_string())
            .increment(count);
    }
}

/// The threads a task's transform may keep busy, across its runs: two per core. A run cut off
/// by its `timeout` may leave a chunk computing (a jq program cannot be stopped inside one
/// value); its thread keeps its permit, so the task's next runs wait for one instead of taking
/// more of the blocking pool that file and buffer I/O share.
pub(crate) fn transform_threads() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(2 * crate::cores::cores()))
}
