//! Reloading the config of a running extractor: on SIGHUP, with `--watch` (or `reload.watch`)
//! when the file's content changes, and with `cdf.remote-config` when the extraction pipeline
//! has a new config revision (`remote.rs`).
//!
//! A new config goes through exactly what `tapline validate` does ([`Registry::load`], then
//! [`Registry::plan`]). With any problem nothing changes: the problems are logged with their
//! key paths and lines and the reload counts as rejected. Otherwise the runner applies it
//! ([`Reload`]): changed tasks restart, the others run on untouched.

mod remote;
mod trigger;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use remote::{Remote, Revision};
pub use trigger::{Cause, Triggers};

use crate::auth::Credentials;
use crate::config::{self, Config};
use crate::runner::{Applied, Plan, Reload, ReloadError};
use crate::session::Session;
use crate::telemetry::catalogue;
use crate::telemetry::logging::error_chain;
use crate::Registry;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The new config has problems (each with its key path and line).
    #[error(transparent)]
    Invalid(#[from] config::Error),
    /// The runner could not apply it.
    #[error(transparent)]
    Runner(#[from] ReloadError),
}

/// Why `tapline run` cannot start with a remote config.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The local file's credentials or session cannot be set up.
    #[error("cannot set up the session that reads the remote config: {0}")]
    Session(String),
    /// Neither CDF nor the cache has a usable config.
    #[error("no remote config to start with: CDF has no usable revision of extraction pipeline {pipeline}, and the cache {cache} has none")]
    NoConfig {
        /// The pipeline.
        pipeline: String,
        /// The cache file.
        cache: PathBuf,
    },
    /// The cached revision has problems (a newer tapline may check more).
    #[error(transparent)]
    Invalid(#[from] config::Error),
}

/// The config `tapline run` starts with: the local file's, or with `cdf.remote-config` the
/// pipeline's newest revision (the cached one when CDF cannot be reached or the newest is
/// refused).
pub struct Start {
    /// The config to run.
    pub config: Config,
    /// The remote config's source, to look for new revisions.
    pub remote: Option<Remote>,
    /// The credentials the remote config was read with, for the runner to share.
    pub credentials: Option<Credentials>,
}

impl Start {
    /// Reads the remote config when `local` asks for one.
    pub async fn of(registry: &Registry, path: &Path, local: Config) -> Result<Self, StartError> {
        if local
            .cdf
            .as_ref()
            .and_then(|cdf| cdf.remote_pipeline())
            .is_none()
        {
            return Ok(Self {
                config: local,
                remote: None,
                credentials: None,
            });
        }
        let session_error = |error: &dyn std::error::Error| StartError::Session(error_chain(error));
        let provider = registry.provider_of(&local).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            StartError::Session(list.join("; "))
        })?;
        let credentials = provider
            .credentials(&local.session)
            .map_err(|e| session_error(&e))?;
        let session =
            Session::new(&local.session, credentials.clone()).map_err(|e| session_error(&e))?;
        let mut remote = Remote::new(&local, session).expect("asked for above");
        let config = remote::first(registry, path, &mut remote).await?;
        Ok(Self {
            config,
            remote: Some(remote),
            credentials: Some(credentials),
        })
    }
}

/// Reads the config again at each trigger and hands it to the runner behind `runner`, until
/// the runner stops listening. `path` is the local file; `remote`, the pipeline's config.
pub async fn run(
    registry: &Registry,
    path: PathBuf,
    watch: Option<Duration>,
    runner: mpsc::Sender<Reload>,
    mut remote: Option<Remote>,
) {
    let refresh = remote.as_ref().map(|remote| remote.refresh);
    let mut triggers = match Triggers::new(path.clone(), watch, refresh) {
        Ok(triggers) => triggers,
        Err(error) => {
            tracing::error!(error = %error, "cannot listen for SIGHUP; the config will not be reloaded");
            return;
        }
    };
    loop {
        let cause = triggers.next().await;
        let revision = match (&remote, cause) {
            (Some(remote), Cause::Refresh) => match remote.poll().await {
                Some(revision) => Some(revision),
                None => continue,
            },
            (Some(remote), _) => remote.current.clone(),
            (None, _) => None,
        };
        let built = checked(registry, &path, remote.as_ref(), revision.as_ref());
        let outcome = match built {
            Ok((config, plan)) => match hand_over(&runner, config, plan).await {
                Some(outcome) => outcome,
                None => return,
            },
            Err(error) => Err(error.into()),
        };
        if let (Some(remote), Ok(applied)) = (&mut remote, &outcome) {
            remote.session = applied.session.clone();
        }
        // Only a new revision is judged: a SIGHUP or file change re-applies the one in force,
        // and a problem of the local file alone is not the revision's fault (it is tried again
        // at the next refresh).
        if let (Some(remote), Some(revision), Cause::Refresh) = (&mut remote, revision, cause) {
            match &outcome {
                Ok(_) => remote.accept(revision),
                Err(Rejected::Invalid(error)) if registry.load(&path).is_ok() => {
                    remote.refuse(&revision, &error.to_string()).await
                }
                Err(_) => {}
            }
        }
        report(cause, outcome);
    }
}

/// The config (the local file's, or made with `revision` of the remote config), checked and
/// built as `tapline validate` does.
fn checked(
    registry: &Registry,
    path: &Path,
    remote: Option<&Remote>,
    revision: Option<&Revision>,
) -> Result<(Config, Plan), config::Error> {
    let config = match (remote, revision) {
        (Some(remote), Some(revision)) => remote.build(registry, path, revision)?,
        _ => registry.load(path)?,
    };
    let plan = registry
        .plan(&config)
        .map_err(|problems| config::Error::Invalid {
            path: path.to_path_buf(),
            problems,
        })?;
    Ok((config, plan))
}

/// Hands a checked config to the runner; `None` once the runner has stopped.
async fn hand_over(
    runner: &mpsc::Sender<Reload>,
    config: Config,
    plan: Plan,
) -> Option<Result<Applied, Rejected>> {
    let (done, answer) = oneshot::channel();
    runner.send(Reload { config, plan, done }).await.ok()?;
    Some(answer.await.ok()?.map_err(Rejected::from))
}

/// Logs and counts how a reload went.
fn report(cause: Cause, outcome: Result<Applied, Rejected>) {
    let result = match outcome {
        Ok(Applied { changes, .. }) => {
            tracing::info!(cause = cause.as_str(), changes = %changes, "config reloaded");
            for setting in &changes.fixed {
                tracing::warn!(setting, "this setting cannot change while running; it keeps its old value until a restart");
            }
            "applied"
        }
        Err(Rejected::Invalid(config::Error::Invalid { problems, .. })) => {
            for problem in &problems {
                tracing::error!(problem = %problem, "the new config has a problem");
            }
            tracing::error!(
                cause = cause.as_str(),
                problems = problems.len(),
                "config reload rejected; nothing changed"
            );
            "rejected"
        }
        Err(error) => {
            tracing::error!(cause = cause.as_str(), error = %error_chain(&error), "config reload rejected; nothing changed");
            "rejected"
        }
    };
    metrics::counter!(catalogue::CONFIG_RELOADS.name, "result" => result).increment(1);
}
