//! [`RunObserver`]: hears how every task run ended, and may run beside the tasks. The runner
//! knows nothing about where run reports go (CDF extraction pipelines, a status page, ...); an
//! observer does, and is handed to [`RunnerBuilder::observer`](super::RunnerBuilder::observer).

use std::fmt;

use tokio::sync::watch;

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
    /// A run ended. Called inside the run, so it must not wait on anything: note the report and
    /// send it from [`watch`](Self::watch), so that a slow or unreachable destination never holds
    /// back a task's next run (or a reload, or shutdown).
    fn run_ended(&self, report: &RunReport<'_>);

    /// Runs beside the tasks until `shutdown` (sending what `run_ended` noted, a heartbeat);
    /// the runner waits for it to return within the shutdown grace period. `sessions` holds the
    /// current session: a reload of `auth:` or `session:` replaces it. By default, nothing.
    async fn watch(&self, sessions: watch::Receiver<Session>, shutdown: Shutdown) {
        let _ = (sessions, shutdown);
    }
}
