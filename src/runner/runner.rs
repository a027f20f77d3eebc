//! [`Runner`]: builds the tasks from the config and runs them until shutdown (or once).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;

use super::coordinated::Coordination;
use super::observer::RunObserver;
use super::on_error::OnError;
use super::reload::{Applied, Live, Reload};
use super::roster::{Prepared, Roster};
use super::schedule::Schedule;
use super::shutdown::Shutdown;
use super::sink::Destination;
use super::state::StateError;
use super::supervisor::Host;
use super::task::Task;
use super::token_watch;
use crate::auth::{Credentials, Provider};
use crate::config::{self, Config, Problem};
use crate::session::Session;
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
            reloads: None,
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
    reloads: Option<mpsc::Receiver<Reload>>,
}

impl RunnerBuilder {
    /// Applies each [`Reload`] sent here to the running tasks (`tapline run --watch`, SIGHUP).
    pub fn reloads(mut self, reloads: mpsc::Receiver<Reload>) -> Self {
        self.reloads = Some(reloads);
        self
    }

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
            reloads,
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
        let token_watch = token_watch::spawn(credentials, readiness.clone(), shutdown.clone());

        let tracker = TaskTracker::new();
        let (sessions, sessions_rx) = watch::channel(session);
        // On the tracker: shutdown waits (within the grace period) for what they still send.
        for observer in &observers {
            let (observer, sessions) = (observer.clone(), sessions_rx.clone());
            let shutdown = shutdown.clone();
            tracker.spawn(async move { observer.watch(sessions, shutdown).await });
        }
        let host = Host {
            sessions: sessions_rx,
            state: state.clone(),
            shutdown: shutdown.clone(),
            tracker: tracker.clone(),
            readiness: readiness.clone(),
            observers: observers.into(),
            permit: coordination.permit.clone(),
        };
        let mut tasks = Vec::new();
        for (index, spec) in plan.tasks.into_iter().enumerate() {
            let schedule =
                Schedule::from_config(&spec.schedule).map_err(|message| Error::Tasks {
                    problems: vec![Problem {
                        path: format!("tasks[{index}].schedule"),
                        line: None,
                        message,
                    }],
                })?;
            tasks.push((Roster::prepare(spec, &config, &host)?, schedule));
        }

        let grace = config.shutdown.grace_period.get();
        let live = Live {
            started: config.clone(),
            config,
            sessions,
            token_watch,
        };
        let result = run_tasks(tasks, once, &host, live, reloads).await;

        readiness.set_shutting_down();
        shutdown.trigger();
        tracker.close();
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
    tasks: Vec<(Prepared, Schedule)>,
    once: bool,
    host: &Host,
    mut live: Live,
    mut reloads: Option<mpsc::Receiver<Reload>>,
) -> Result<(), Error> {
    let (shutdown, readiness) = (&host.shutdown, &host.readiness);
    let startup = tasks
        .iter()
        .map(|((supervisor, _), schedule)| (supervisor, schedule));
    for (supervisor, _) in startup.filter(|(_, schedule)| matches!(schedule, Schedule::Startup)) {
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
    tracing::info!(tasks = tasks.len(), "started");
    if once {
        let others = tasks
            .into_iter()
            .filter(|(_, schedule)| !matches!(schedule, Schedule::Startup));
        let others: Vec<_> = others.map(|((supervisor, _), _)| supervisor).collect();
        let total = others.len();
        let runs = others.into_iter().map(|supervisor| async move {
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
    let mut roster = Roster::default();
    for (prepared, schedule) in tasks {
        roster.add(prepared, schedule, true);
    }
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            Some(reload) = next(&mut reloads) => {
                let applied = live
                    .apply(reload.config, reload.plan, &mut roster, host)
                    .await
                    .map(|changes| Applied {
                        changes,
                        session: live.sessions.borrow().clone(),
                    });
                let _ = reload.done.send(applied);
            }
        }
    }
    live.token_watch.abort();
    roster.join().await;
    Ok(())
}

/// The next reload, or never without a reload channel.
async fn next(reloads: &mut Option<mpsc::Receiver<Reload>>) -> Option<Reload> {
    match reloads {
        Some(reloads) => reloads.recv().await,
        None => std::future::pending().await,
    }
}
