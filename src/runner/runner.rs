//! [`Runner`]: builds the tasks from the config and runs them until shutdown (or once).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::task::TaskTracker;

use super::buffered;
use super::coordinated::Coordination;
use super::observer::RunObserver;
use super::on_error::OnError;
use super::schedule::{Schedule, RESTART_BACKOFF};
use super::shutdown::Shutdown;
use super::sink::Destination;
use super::state::StateError;
use super::supervisor::{Host, Supervisor};
use super::task::Task;
use crate::auth::{Credentials, Provider};
use crate::backoff::{Backoff, Jitter};
use crate::config::{self, Config, Problem};
use crate::session::Session;
use crate::telemetry::logging::error_chain;
use crate::telemetry::{self, Readiness, ServerState};
use crate::transform::Program;

/// Why `tapline run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The task configs have problems (exit code 2).
    #[error("invalid task configuration:{}", problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Tasks {
        /// Every problem found.
        problems: Vec<Problem>,
    },
    /// The state file could not be opened or saved.
    #[error(transparent)]
    State(#[from] StateError),
    /// The coordination backend could not be set up.
    #[error("cannot set up coordination")]
    Coordination(#[source] crate::coordination::Error),
    /// The credentials could not be set up.
    #[error("cannot set up authentication")]
    Auth(#[source] crate::auth::Error),
    /// The session could not be built.
    #[error("cannot set up the HTTP session")]
    Session(#[source] crate::session::Error),
    /// The telemetry server could not listen.
    #[error("cannot listen on {listen} for the telemetry server")]
    Listen {
        /// The address.
        listen: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A task's disk buffer could not be opened.
    #[error("cannot open the disk buffer of task {task:?}")]
    Buffer {
        /// The task.
        task: String,
        /// Why.
        #[source]
        source: crate::buffer::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
    /// A startup task failed.
    #[error("startup task {task:?} failed ({result}); not starting the other tasks")]
    StartupFailed {
        /// The task.
        task: String,
        /// `failure` or `panic`.
        result: &'static str,
    },
    /// In `--once` mode, some runs failed.
    #[error("{failed} of {total} task runs failed: {}", tasks.join(", "))]
    RunsFailed {
        /// How many failed.
        failed: usize,
        /// How many ran.
        total: usize,
        /// Which.
        tasks: Vec<String>,
    },
}

impl Error {
    /// 2 for task config problems, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Tasks { .. } => 2,
            _ => 1,
        }
    }
}

/// One task, built from its config block by the registry.
#[derive(Clone)]
pub struct TaskSpec {
    /// Its name from the config.
    pub name: String,
    /// When it runs.
    pub schedule: config::ScheduleConfig,
    /// The task.
    pub task: Arc<dyn Task>,
    /// Its sink, for task types that deliver records.
    pub destination: Option<Destination>,
    /// The `transform:` its records pass through on the way to the sink.
    pub transform: Option<Program>,
    /// What a record that fails costs (`on-error`).
    pub on_error: OnError,
    /// A run past this is cancelled and counts as failed (`timeout`).
    pub timeout: Option<Duration>,
    /// The disk buffer its records go through (`buffer: {type: disk}`), if any.
    pub buffer: Option<config::BufferConfig>,
}

impl std::fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSpec")
            .field("name", &self.name)
            .field("schedule", &self.schedule)
            .field("destination", &self.destination)
            .field("transform", &self.transform)
            .field("on_error", &self.on_error)
            .field("timeout", &self.timeout)
            .field("buffer", &self.buffer)
            .finish_non_exhaustive()
    }
}

/// What the registry built from a config: the credential provider and the tasks.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The `auth:` block's provider.
    pub provider: Arc<dyn Provider>,
    /// The tasks, in config order.
    pub tasks: Vec<TaskSpec>,
}

/// Hosts the tasks of one config: schedules, supervision, state, shutdown, telemetry.
///
/// ```no_run
/// # async fn example(config: tapline::config::Config) -> Result<(), Box<dyn std::error::Error>> {
/// let runner = tapline::Registry::builtin().runner(config)?; // builds the tasks: a `Plan`
/// runner.once(true).run().await?;
/// # Ok(()) }
/// ```
pub struct Runner;

impl Runner {
    /// Starts building a runner for `config`, whose components the registry built into `plan`.
    pub fn builder(config: Config, plan: Plan) -> RunnerBuilder {
        RunnerBuilder {
            config,
            plan,
            once: false,
            credentials: None,
            shutdown: Shutdown::new(),
            signals: true,
            readiness: Readiness::new(),
            observers: Vec::new(),
        }
    }
}

/// Configures and starts a [`Runner`].
pub struct RunnerBuilder {
    config: Config,
    plan: Plan,
    once: bool,
    credentials: Option<Credentials>,
    shutdown: Shutdown,
    signals: bool,
    readiness: Readiness,
    observers: Vec<Arc<dyn RunObserver>>,
}

impl RunnerBuilder {
    /// Tells `observer` how every run ended, and runs its [`RunObserver::watch`] beside the tasks.
    pub fn observer(mut self, observer: Arc<dyn RunObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Runs every task once (continuous ones until they return), then stops.
    pub fn once(mut self, once: bool) -> Self {
        self.once = once;
        self
    }

    /// Uses these credentials instead of building them from `auth:`.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Uses this shutdown handle, so the caller can stop the runner.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Whether SIGTERM/SIGINT trigger shutdown (default true).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.signals = on;
        self
    }

    /// Uses these readiness flags (to observe them from outside).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Runs until shutdown (or, with `once`, until every task ran once).
    pub async fn run(self) -> Result<(), Error> {
        let Self {
            config,
            plan,
            once,
            credentials,
            shutdown,
            signals,
            readiness,
            observers,
        } = self;
        // First, so that nothing recorded from here on (token requests included) is lost.
        let metrics = telemetry::metrics::install();
        let names = plan.tasks.iter().map(|spec| spec.name.clone()).collect();
        let coordination = Coordination::start(&config, names, once, &shutdown, &readiness)?;
        let state = coordination.state.clone();
        let credentials = match credentials {
            Some(credentials) => credentials,
            None => plan
                .provider
                .credentials(&config.session)
                .map_err(Error::Auth)?,
        };
        let session = Session::new(&config.session, credentials.clone()).map_err(Error::Session)?;
        if signals {
            shutdown.listen_for_signals().map_err(Error::Signals)?;
        }
        let mut background = Vec::new();
        if let Some(server) = &config.server {
            let state = ServerState {
                readiness: readiness.clone(),
                metrics: metrics.clone(),
            };
            let handle = telemetry::server::serve(server.listen, state)
                .await
                .map_err(|source| Error::Listen {
                    listen: server.listen,
                    source,
                })?;
            background.push(handle);
            if let Some(metrics) = metrics {
                background.push(tokio::spawn(telemetry::metrics::upkeep(metrics)));
            }
        }
        background.push(tokio::spawn(supervise_token_watch(
            credentials,
            readiness.clone(),
            shutdown.clone(),
        )));

        for observer in &observers {
            let (observer, session) = (observer.clone(), session.clone());
            let shutdown = shutdown.clone();
            background.push(tokio::spawn(async move {
                observer.watch(session, shutdown).await
            }));
        }
        let tracker = TaskTracker::new();
        let host = Host {
            session,
            state: state.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            readiness: readiness.clone(),
            observers: observers.into(),
            permit: coordination.permit.clone(),
        };
        let mut startup = Vec::new();
        let mut others = Vec::new();
        for (index, spec) in plan.tasks.into_iter().enumerate() {
            let schedule =
                Schedule::from_config(&spec.schedule).map_err(|message| Error::Tasks {
                    problems: vec![Problem {
                        path: format!("tasks[{index}].schedule"),
                        line: None,
                        message,
                    }],
                })?;
            let spec = buffered::attach(spec, &config, &host)?;
            let supervisor = Supervisor::new(spec, &host);
            match schedule {
                Schedule::Startup => startup.push(supervisor),
                schedule => others.push((supervisor, schedule)),
            }
        }

        let result = run_tasks(startup, others, once, &shutdown, &readiness).await;

        readiness.set_shutting_down();
        shutdown.trigger();
        tracker.close();
        let grace = config.shutdown.grace_period.get();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(grace_period = ?grace, "tasks still running after the grace period; abandoning them");
        }
        let saved = state.save().await;
        coordination.leave().await;
        saved?;
        for handle in background {
            handle.abort();
        }
        tracing::info!("stopped");
        result
    }
}

async fn run_tasks(
    startup: Vec<Arc<Supervisor>>,
    others: Vec<(Arc<Supervisor>, Schedule)>,
    once: bool,
    shutdown: &Shutdown,
    readiness: &Readiness,
) -> Result<(), Error> {
    for supervisor in &startup {
        let outcome = tokio::select! {
            outcome = supervisor.run_now() => outcome,
            _ = shutdown.wait() => return Ok(()),
        };
        if outcome.is_failure() {
            return Err(Error::StartupFailed {
                task: supervisor.name.to_string(),
                result: outcome.label(),
            });
        }
    }
    readiness.set_startup_done();
    tracing::info!(tasks = others.len() + startup.len(), "started");
    if once {
        let total = others.len();
        let runs = others.into_iter().map(|(supervisor, _)| async move {
            let outcome = supervisor.run_now().await;
            (supervisor.name.to_string(), outcome)
        });
        let outcomes = tokio::select! {
            outcomes = futures::future::join_all(runs) => outcomes,
            _ = shutdown.wait() => return Ok(()),
        };
        let tasks: Vec<String> = outcomes
            .into_iter()
            .filter(|(_, outcome)| outcome.is_failure())
            .map(|(name, _)| name)
            .collect();
        return match tasks.len() {
            0 => Ok(()),
            failed => Err(Error::RunsFailed {
                failed,
                total,
                tasks,
            }),
        };
    }
    let drivers: Vec<_> = others
        .into_iter()
        .map(|(supervisor, schedule)| tokio::spawn(supervisor.drive(schedule)))
        .collect();
    shutdown.wait().await;
    for driver in drivers {
        let _ = driver.await;
    }
    Ok(())
}

/// How soon [`watch_token`] asks again while no token can be had: 400 ms doubling to 30 s.
const TOKEN_WATCH_RETRY: Backoff = Backoff::new(
    Duration::from_millis(400),
    Duration::from_secs(30),
    Jitter::None,
);

/// Runs [`watch_token`] and, should it panic, takes readiness down, says so and starts it again
/// after a restart delay: the watcher never dies silently, leaving `/readyz` stuck where it was.
async fn supervise_token_watch(credentials: Credentials, readiness: Readiness, shutdown: Shutdown) {
    let mut delays = RESTART_BACKOFF.delays();
    loop {
        let watch = watch_token(credentials.clone(), readiness.clone(), shutdown.clone());
        if AssertUnwindSafe(watch).catch_unwind().await.is_ok() {
            return;
        }
        readiness.set_token_ok(false);
        let delay = delays.next().unwrap_or_default();
        tracing::error!(
            restart_in_seconds = delay.as_secs_f64(),
            "the token watcher panicked; not ready until it has a token again"
        );
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Keeps the `token_ok` readiness flag current: true once a token is at hand, false while none
/// can be had (the cache only errs when the token has expired and cannot be refreshed).
async fn watch_token(credentials: Credentials, readiness: Readiness, shutdown: Shutdown) {
    let mut retries = TOKEN_WATCH_RETRY.delays();
    loop {
        let wait = match credentials.token().await {
            Ok(None) => {
                readiness.set_token_ok(true);
                return;
            }
            Ok(Some(_)) => {
                readiness.set_token_ok(true);
                retries.reset();
                Duration::from_secs(5)
            }
            Err(error) => {
                readiness.set_token_ok(false);
                tracing::warn!(error = %error_chain(&error), "no access token; not ready");
                retries.next().unwrap_or_default()
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
