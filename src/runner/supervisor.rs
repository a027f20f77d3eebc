//! Drives one task along its schedule: spawns each run, catches panics, skips a run whose
//! predecessor is still going, restarts continuous tasks with backoff, counts every outcome and
//! saves the state after each run that changed it.
//!
//! A run whose state could not be saved counts as failed, and clears the `state_ok` readiness
//! flag until a save succeeds: its cursor lives only in memory, so a restart would extract the
//! same records again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::observer::{RunObserver, RunReport};
use super::on_error::{OnError, Rejects};
use super::permit::Permit;
use super::schedule::{restart_delay, Schedule, RESTART_BACKOFF};
use super::sink::Destination;
use super::state::{StateError, StateStore};
use super::task::{transform_threads, Task, TaskContext, TaskError};
use super::TaskSpec;
use crate::coordination::RunGuard;
use crate::session::Session;
use crate::telemetry::catalogue;
use crate::telemetry::logging::error_chain;
use crate::telemetry::Readiness;
use crate::transform::Program;

/// How long a run that passed its timeout gets to stop by itself once cancelled, before it is
/// abandoned.
const TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// How a run ended; the `result` label of `tapline_task_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run returned `Ok`.
    Success,
    /// The run returned an error.
    Failure,
    /// The run panicked.
    Panic,
    /// The run stopped because of shutdown.
    Cancelled,
    /// The run was not started because the previous one was still going.
    Skipped,
}

impl RunOutcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Panic => "panic",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// Whether this counts as a failed run (for `--once` and startup tasks).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failure | Self::Panic)
    }
}

/// What the runs of every task share.
#[derive(Clone)]
pub(crate) struct Host {
    /// The session of the runs from now on: a reload that changes `auth:` or `session:` sends
    /// a new one, and each run takes the latest when it starts.
    pub(crate) sessions: watch::Receiver<Session>,
    pub(crate) state: StateStore,
    pub(crate) shutdown: super::Shutdown,
    pub(crate) tracker: TaskTracker,
    pub(crate) readiness: Readiness,
    pub(crate) observers: Arc<[Arc<dyn RunObserver>]>,
    pub(crate) permit: Permit,
}

/// One task and what its runs need.
pub(crate) struct Supervisor {
    pub(crate) name: Arc<str>,
    pub(crate) task: Arc<dyn Task>,
    pub(crate) destination: Option<Destination>,
    transform: Option<Program>,
    /// Shared by the task's runs: see [`transform_threads`].
    transform_threads: Arc<Semaphore>,
    on_error: OnError,
    timeout: Option<Duration>,
    sessions: watch::Receiver<Session>,
    pub(crate) state: StateStore,
    /// This task's own: fired by shutdown, or by a reload that stops or changes the task.
    pub(crate) shutdown: super::Shutdown,
    pub(crate) tracker: TaskTracker,
    readiness: Readiness,
    observers: Arc<[Arc<dyn RunObserver>]>,
    permit: Permit,
    running: AtomicBool,
    /// Told when a run ends, for [`Supervisor::stop`].
    ended: Notify,
}

impl Supervisor {
    pub(crate) fn new(spec: TaskSpec, host: &Host) -> Arc<Self> {
        let host = host.clone();
        Arc::new(Self {
            sessions: host.sessions,
            name: spec.name.into(),
            task: spec.task,
            destination: spec.destination,
            transform: spec.transform,
            transform_threads: transform_threads(),
            on_error: spec.on_error,
            timeout: spec.timeout,
            state: host.state,
            shutdown: host.shutdown.child(),
            tracker: host.tracker,
            readiness: host.readiness,
            observers: host.observers,
            permit: host.permit,
            running: AtomicBool::new(false),
            ended: Notify::new(),
        })
    }

    /// Stops the task: no new run starts, a run in progress is cancelled as at shutdown (what
    /// it delivered is saved), and this returns once it has ended.
    pub(crate) async fn stop(&self) {
        self.shutdown.trigger();
        loop {
            let ended = self.ended.notified();
            if !self.running.load(Ordering::Acquire) {
                return;
            }
            ended.await;
        }
    }

    /// Starts a run unless one is still going (then counts it as skipped and returns `None`),
    /// or another replica holds the task's lease (then returns `None`).
    pub(crate) fn start(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<RunOutcome>> {
        let guard = self.permit.enter(&self.name)?;
        if self.running.swap(true, Ordering::AcqRel) {
            tracing::warn!(task = %self.name, "previous run still going; skipping this one");
            count(&self.name, RunOutcome::Skipped);
            return None;
        }
        let this = self.clone();
        Some(self.tracker.spawn(async move {
            let outcome = this.run(guard).await;
            this.running.store(false, Ordering::Release);
            this.ended.notify_waiters();
            outcome
        }))
    }

    /// The latest session, as this task's.
    fn session(&self) -> Session {
        self.sessions.borrow().for_task(&self.name)
    }

    /// Runs once now and waits for the outcome.
    pub(crate) async fn run_now(self: &Arc<Self>) -> RunOutcome {
        match self.start() {
            Some(handle) => handle.await.unwrap_or(RunOutcome::Panic),
            None => RunOutcome::Skipped,
        }
    }

    async fn run(&self, guard: RunGuard) -> RunOutcome {
        let span = tracing::info_span!("task", task = %self.name);
        let rejects = Arc::new(Rejects::new(self.name.clone(), self.on_error.clone()));
        // The run's own token: shutdown cancels it, so do a lost lease, the run's timeout and
        // a reload that stops the task.
        let cancel = guard.token().child_token();
        let _linked = self.shutdown.cancels(&cancel);
        if let Err(error) = self.state.prepare(&self.name, guard.generation()).await {
            tracing::error!(task = %self.name, error = %error_chain(&error), "cannot load the task's state; not running it");
            count(&self.name, RunOutcome::Failure);
            return RunOutcome::Failure;
        }
        let ctx = TaskContext {
            name: self.name.clone(),
            session: self.session(),
            cancel: cancel.clone(),
            state: self.state.handle(&self.name),
            span: span.clone(),
            destination: self.destination.clone(),
            transform: self.transform.clone(),
            transform_threads: self.transform_threads.clone(),
            rejects: rejects.clone(),
            started: SystemTime::now(),
            validity: guard.validity(),
        };
        let task = self.task.clone();
        let started = Instant::now();
        // Its own tokio task, so that a panic ends up as a JoinError instead of unwinding here.
        let handle = tokio::spawn(async move { task.run(ctx).await }.instrument(span.clone()));
        let (joined, timed_out) = self.join(handle, &cancel, &span).await;
        rejects.finish();
        let elapsed = started.elapsed();
        let (outcome, error) = match timed_out {
            true => (
                RunOutcome::Failure,
                Some("the run took longer than its timeout".to_string()),
            ),
            false => judge(joined, &span),
        };
        let saved = self.save_state().await;
        let outcome = match outcome {
            // A lease lost during the run, or a refused state write: cancelled, not failed.
            _ if guard.lease_gone() && !self.shutdown.is_triggered() => RunOutcome::Cancelled,
            RunOutcome::Success if !saved => RunOutcome::Failure,
            outcome => outcome,
        };
        metrics::histogram!(catalogue::TASK_RUN_DURATION.name, "task" => self.name.to_string())
            .record(elapsed.as_secs_f64());
        count(&self.name, outcome);
        if outcome == RunOutcome::Success {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            metrics::gauge!(catalogue::TASK_LAST_SUCCESS.name, "task" => self.name.to_string())
                .set(now.as_secs_f64());
        }
        span.in_scope(|| {
            tracing::debug!(
                result = outcome.label(),
                seconds = elapsed.as_secs_f64(),
                "run ended"
            )
        });
        self.tell_observers(outcome, error.as_deref());
        outcome
    }

    /// Tells every observer how the run ended (a run stopped by shutdown is not news).
    fn tell_observers(&self, outcome: RunOutcome, error: Option<&str>) {
        if outcome == RunOutcome::Cancelled {
            return;
        }
        let error = match (outcome, error) {
            (RunOutcome::Failure, None) => Some("saving the task state failed"),
            (_, error) => error,
        };
        let report = RunReport {
            task: &self.name,
            outcome,
            error,
        };
        for observer in self.observers.iter() {
            observer.run_ended(&report);
        }
    }

    /// Waits for the run; past the task's `timeout`, cancels it, waits [`TIMEOUT_GRACE`] for it
    /// to stop at an await point, then abandons it. Returns whether it timed out.
    async fn join(
        &self,
        mut handle: JoinHandle<Result<(), TaskError>>,
        cancel: &CancellationToken,
        span: &tracing::Span,
    ) -> (Result<Result<(), TaskError>, JoinError>, bool) {
        let Some(timeout) = self.timeout else {
            return (handle.await, false);
        };
        if let Ok(joined) = tokio::time::timeout(timeout, &mut handle).await {
            return (joined, false);
        }
        span.in_scope(|| {
            tracing::error!(timeout = ?timeout, "run took longer than its timeout; cancelled, and counted as failed")
        });
        cancel.cancel();
        if let Ok(joined) = tokio::time::timeout(TIMEOUT_GRACE, &mut handle).await {
            return (joined, true);
        }
        handle.abort();
        (handle.await, true)
    }

    /// Saves the state if it changed and sets the `state_ok` readiness flag. When nothing changed
    /// the file on disk is current (a failed save leaves the store marked as changed), so that
    /// counts as a good save too. Returns whether the state is on disk.
    async fn save_state(&self) -> bool {
        let saved = self.state.save_task(&self.name).await;
        if let Err(error @ StateError::Fenced(_)) = &saved {
            tracing::warn!(task = %self.name, error = %error_chain(error), "state write refused: this replica no longer holds the task's lease; the run is cancelled");
            return false;
        }
        if let Err(error) = &saved {
            tracing::error!(task = %self.name, error = %error_chain(error), "saving the state failed; the run counts as failed");
        }
        // Shared state lives in the coordination backend, whose health is readiness's
        // coordination flag: a replica holding no task saves nothing and would never clear it.
        if !matches!(saved, Err(StateError::Shared { .. })) {
            self.readiness.set_state_ok(saved.is_ok());
        }
        saved.is_ok()
    }

    /// Runs the task along `schedule` until shutdown. Startup tasks are not driven here.
    pub(crate) async fn drive(self: Arc<Self>, schedule: Schedule) {
        match schedule {
            Schedule::Startup => {}
            Schedule::Continuous => self.drive_continuous().await,
            Schedule::Interval { first, every } => {
                let start = tokio::time::Instant::now() + first;
                let mut ticks =
                    tokio::time::interval_at(start, every.max(Duration::from_millis(1)));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = self.shutdown.wait() => return,
                        _ = ticks.tick() => { self.start(); }
                    }
                }
            }
            Schedule::Cron(cron) => loop {
                let Some(wait) = Schedule::until_next_cron(&cron) else {
                    tracing::warn!(task = %self.name, "the cron expression has no next time; the task will not run again");
                    return;
                };
                tokio::select! {
                    _ = self.shutdown.wait() => return,
                    _ = tokio::time::sleep(wait) => { self.start(); }
                }
                // Never wake twice for the same second.
                tokio::time::sleep(Duration::from_millis(5)).await;
            },
        }
    }

    async fn drive_continuous(self: Arc<Self>) {
        let mut delays = RESTART_BACKOFF.delays();
        while !self.shutdown.is_triggered() {
            tokio::select! {
                _ = self.shutdown.wait() => return,
                _ = self.permit.wait_for(&self.name) => {}
            }
            let started = Instant::now();
            let outcome = self.run_now().await;
            if self.shutdown.is_triggered() {
                return;
            }
            let delay = restart_delay(&mut delays, started.elapsed());
            tracing::info!(task = %self.name, result = outcome.label(), delay_seconds = delay.as_secs_f64(), "continuous task ended; restarting after a delay");
            tokio::select! {
                _ = self.shutdown.wait() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// The outcome of a joined run, and its error text for a failure or panic (logged here).
fn judge(
    joined: Result<Result<(), TaskError>, tokio::task::JoinError>,
    span: &tracing::Span,
) -> (RunOutcome, Option<String>) {
    match joined {
        Ok(Ok(())) => (RunOutcome::Success, None),
        Ok(Err(TaskError::Cancelled)) => (RunOutcome::Cancelled, None),
        Ok(Err(error)) => {
            let chain = error_chain(&error);
            span.in_scope(|| tracing::error!(error = %chain, "run failed"));
            (RunOutcome::Failure, Some(chain))
        }
        Err(error) if error.is_panic() => {
            let payload = error.into_panic();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            span.in_scope(|| tracing::error!(panic = %message, "run panicked"));
            (RunOutcome::Panic, Some(format!("panicked: {message}")))
        }
        Err(_) => (RunOutcome::Cancelled, None),
    }
}

fn count(task: &str, outcome: RunOutcome) {
    metrics::counter!(catalogue::TASK_RUNS.name, "task" => task.to_string(), "result" => outcome.label())
        .increment(1);
}
