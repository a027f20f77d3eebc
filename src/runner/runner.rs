//! [`Runner`]: builds the tasks from the config and runs them until shutdown (or once).

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio_util::task::TaskTracker;

use super::registry::{BuildError, Registry};
use super::schedule::Schedule;
use super::shutdown::Shutdown;
use super::state::{StateError, StateStore};
use super::supervisor::{error_chain, Supervisor};
use super::task::Task;
use crate::auth::Credentials;
use crate::config::{Config, Problem};
use crate::session::Session;
use crate::telemetry::{self, Readiness, ServerState};

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

/// Hosts the tasks of one config: schedules, supervision, state, shutdown, telemetry.
///
/// ```no_run
/// # async fn example(config: tapline::config::Config) -> Result<(), tapline::runner::Error> {
/// tapline::runner::Runner::builder(config).once(true).run().await
/// # }
/// ```
pub struct Runner;

impl Runner {
    /// Starts building a runner for `config`, with the built-in task types registered.
    pub fn builder(config: Config) -> RunnerBuilder {
        RunnerBuilder {
            config,
            registry: Registry::with_builtins(),
            once: false,
            credentials: None,
            shutdown: Shutdown::new(),
            signals: true,
            readiness: Readiness::new(),
        }
    }
}

/// Configures and starts a [`Runner`].
pub struct RunnerBuilder {
    config: Config,
    registry: Registry,
    once: bool,
    credentials: Option<Credentials>,
    shutdown: Shutdown,
    signals: bool,
    readiness: Readiness,
}

impl RunnerBuilder {
    /// Registers a task type (see [`Registry::register`]).
    pub fn register<C, T, F>(mut self, name: &str, build: F) -> Self
    where
        C: DeserializeOwned + 'static,
        T: Task,
        F: Fn(C) -> Result<T, BuildError> + Send + Sync + 'static,
    {
        self.registry.register(name, build);
        self
    }

    /// Replaces the registry.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
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
            registry,
            once,
            credentials,
            shutdown,
            signals,
            readiness,
        } = self;
        // First, so that nothing recorded from here on (token requests included) is lost.
        let metrics = telemetry::metrics::install();
        let tasks = registry
            .build(&config)
            .map_err(|problems| Error::Tasks { problems })?;
        let state = StateStore::open(&config.state.path)?;
        let credentials = match credentials {
            Some(credentials) => credentials,
            None => Credentials::from_config(&config).map_err(Error::Auth)?,
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
        background.push(tokio::spawn(watch_token(
            credentials,
            readiness.clone(),
            shutdown.clone(),
        )));

        let tracker = TaskTracker::new();
        let mut startup = Vec::new();
        let mut others = Vec::new();
        for (index, (task_config, task)) in config.tasks.iter().zip(tasks).enumerate() {
            let schedule =
                Schedule::from_config(&task_config.schedule).map_err(|message| Error::Tasks {
                    problems: vec![Problem {
                        path: format!("tasks[{index}].schedule"),
                        line: None,
                        message,
                    }],
                })?;
            let supervisor = Supervisor::new(
                &task_config.name,
                task,
                &session,
                &state,
                &shutdown,
                &tracker,
                &readiness,
            );
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
        state.save().await?;
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

/// Keeps the `token_ok` readiness flag current: true once a token is at hand, false while none
/// can be had (the cache only errs when the token has expired and cannot be refreshed).
async fn watch_token(credentials: Credentials, readiness: Readiness, shutdown: Shutdown) {
    let mut retry = Duration::from_millis(200);
    loop {
        let wait = match credentials.token().await {
            Ok(None) => {
                readiness.set_token_ok(true);
                return;
            }
            Ok(Some(_)) => {
                readiness.set_token_ok(true);
                retry = Duration::from_millis(200);
                Duration::from_secs(5)
            }
            Err(error) => {
                readiness.set_token_ok(false);
                tracing::warn!(error = %error_chain(&error), "no access token; not ready");
                retry = (retry * 2).min(Duration::from_secs(30));
                retry
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
