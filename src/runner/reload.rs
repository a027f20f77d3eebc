//! [`Reload`]: a new config, already checked and built by the registry, handed to a running
//! runner; [`Live`] applies it without touching the tasks it does not change.
//!
//! The order matters: what can fail early (schedules, the new credentials' first token) is done
//! before any task is stopped, so a rejected reload leaves everything as it was. Tasks that
//! change are stopped as at shutdown (a run in progress is cancelled, what it delivered is
//! saved), then started from the new config; the others keep running untouched. One step can
//! only come after the stop: opening a task's disk buffer, which the old task holds locked. If
//! that fails, the error is logged and the task stays stopped until the next reload or restart.

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::roster::Roster;
use super::schedule::Schedule;
use super::supervisor::Host;
use super::{token_watch, Plan, TaskSpec};
use crate::auth::Provider;
use crate::config::{Changes, Config, CoordinationType, Problem};
use crate::session::Session;
use crate::telemetry::logging::error_chain;

/// A checked config for a running runner, and where to say how applying it went.
pub struct Reload {
    /// The new config, as `tapline validate` passed it.
    pub config: Config,
    /// What the registry built from it.
    pub plan: Plan,
    /// Told what changed, or why nothing did.
    pub done: oneshot::Sender<Result<Applied, ReloadError>>,
}

/// A reload that was applied.
#[derive(Debug)]
pub struct Applied {
    /// What changed.
    pub changes: Changes,
    /// The session the runs use from now on (a new one when `auth:` or `session:` changed), for
    /// whoever else sends requests with the runner's credentials.
    pub session: Session,
}

/// Why a valid config could not be applied; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A task's schedule cannot be used.
    #[error("{}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Tasks {
        /// Each with its key path.
        problems: Vec<Problem>,
    },
    /// The new `auth:` block gets no token: the old credentials stay.
    #[error("the new auth: block gets no token; the running credentials stay")]
    Token(#[source] crate::auth::Error),
    /// The new `session:` block cannot be built.
    #[error("cannot build the new session")]
    Session(#[source] crate::session::Error),
    /// Replicas took their leases for the tasks of the config they started with.
    #[error("with coordination:, adding or removing tasks needs a restart of every replica")]
    Coordinated,
}

/// What a runner keeps to apply reloads: the config in force, and the session and token watch
/// a new `auth:` or `session:` replaces.
pub(crate) struct Live {
    /// The config last applied, to compare the next one with.
    pub(crate) config: Config,
    /// The config the process started with: the settings read only at start (the state file,
    /// where disk buffers live) come from it.
    pub(crate) started: Config,
    pub(crate) sessions: watch::Sender<Session>,
    pub(crate) token_watch: JoinHandle<()>,
}

impl Live {
    /// Applies `config` (built into `plan`) to the tasks in `roster`.
    pub(crate) async fn apply(
        &mut self,
        config: Config,
        plan: Plan,
        roster: &mut Roster,
        host: &Host,
    ) -> Result<Changes, ReloadError> {
        let changes = Changes::between(&self.config, &config);
        let coordinated = self.config.coordination.kind != CoordinationType::None;
        if coordinated && !(changes.added.is_empty() && changes.removed.is_empty()) {
            return Err(ReloadError::Coordinated);
        }
        let Plan { provider, tasks } = plan;
        let starting = schedules(tasks, &changes)?;
        if changes.session {
            self.renew_session(&config, provider.as_ref(), host).await?;
        }
        let stopping: Vec<String> = changes
            .removed
            .iter()
            .chain(&changes.changed)
            .cloned()
            .collect();
        roster.stop(&stopping).await;
        for (spec, schedule) in starting {
            let name = spec.name.clone();
            match Roster::prepare(spec, &self.started, host) {
                Ok(prepared) => roster.add(prepared, schedule, false),
                Err(error) => {
                    tracing::error!(task = %name, error = %error_chain(&error), "cannot start the task with its new config; it stays stopped until the next reload or restart");
                }
            }
        }
        self.config = config;
        Ok(changes)
    }

    /// New credentials and session, switched to only once they have a token: the runs that
    /// start from then on use them, the runs in progress finish with the old ones.
    async fn renew_session(
        &mut self,
        config: &Config,
        provider: &dyn Provider,
        host: &Host,
    ) -> Result<(), ReloadError> {
        let credentials = provider
            .credentials(&config.session)
            .map_err(ReloadError::Token)?;
        credentials.token().await.map_err(ReloadError::Token)?;
        let session =
            Session::new(&config.session, credentials.clone()).map_err(ReloadError::Session)?;
        self.sessions.send_replace(session);
        self.token_watch.abort();
        self.token_watch =
            token_watch::spawn(credentials, host.readiness.clone(), host.shutdown.clone());
        Ok(())
    }
}

/// The specs and schedules of the tasks to start: the added and the changed ones.
fn schedules(
    tasks: Vec<TaskSpec>,
    changes: &Changes,
) -> Result<Vec<(TaskSpec, Schedule)>, ReloadError> {
    let mut starting = Vec::new();
    let mut problems = Vec::new();
    for (index, spec) in tasks.into_iter().enumerate() {
        if !changes.added.contains(&spec.name) && !changes.changed.contains(&spec.name) {
            continue;
        }
        match Schedule::from_config(&spec.schedule) {
            Ok(schedule) => starting.push((spec, schedule)),
            Err(message) => problems.push(Problem {
                path: format!("tasks[{index}].schedule"),
                line: None,
                message,
            }),
        }
    }
    match problems.is_empty() {
        true => Ok(starting),
        false => Err(ReloadError::Tasks { problems }),
    }
}
