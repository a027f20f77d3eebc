//! [`RunObserver`]: hears how every task run ended, and may run beside the tasks. The runner
//! knows nothing about where run reports go (CDF extraction pipelines, a status page, ...); an
//! observer does, and is handed to [`RunnerBuilder::observer`](super::RunnerBuilder::observer).

use std::fmt;

use super::shutdown::Shutdown;
use super::supervisor::RunOutcome;
use crate::session::Session;

/// How one run ended, as told to observers.
#[derive(Debug, Clone, Copy)]
pub struct RunReport<'a> {
    /// The task's name.
    pub task: &'a str,
    /// How the run ended (never `Skipped`: a run that did not start is not reported).
    pub outcome: RunOutcome,
    /// For a failed or panicked run: the error chain or the panic message.
    pub error: Option<&'a str>,
}

/// Told about every run; a failure to pass the news on is the observer's to log and retry, it
/// never changes the run's outcome.
#[async_trait::async_trait]
pub trait RunObserver: Send + Sync + fmt::Debug + 'static {
    /// A run ended. Awaited before the task's next run may start, so keep it short (the session's
    /// timeouts and retries bound it).
    async fn run_ended(&self, session: &Session, report: &RunReport<'_>);

    /// Runs beside the tasks until `shutdown` (a heartbeat, say). By default, nothing.
    async fn watch(&self, session: Session, shutdown: Shutdown) {
        let _ = (session, shutdown);
    }
}
