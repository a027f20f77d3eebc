//! Reloading the config of a running extractor: on SIGHUP, and with `--watch` (or
//! `reload.watch`) when the file's content changes.
//!
//! A new config goes through exactly what `tapline validate` does ([`Registry::load`], then
//! [`Registry::plan`]). With any problem nothing changes: the problems are logged with their
//! key paths and lines and the reload counts as rejected. Otherwise the runner applies it
//! ([`Reload`]): changed tasks restart, the others run on untouched.

mod trigger;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use trigger::{Cause, Triggers};

use crate::config::{self, Changes};
use crate::runner::{Reload, ReloadError};
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

/// Reads the config at `path` again at each trigger and hands it to the runner behind
/// `runner`, until the runner stops listening.
pub async fn run(
    registry: &Registry,
    path: PathBuf,
    watch: Option<Duration>,
    runner: mpsc::Sender<Reload>,
) {
    let mut triggers = match Triggers::new(path.clone(), watch) {
        Ok(triggers) => triggers,
        Err(error) => {
            tracing::error!(error = %error, "cannot listen for SIGHUP; the config will not be reloaded");
            return;
        }
    };
    loop {
        let cause = triggers.next().await;
        let Some(outcome) = reload(registry, &path, &runner).await else {
            return;
        };
        report(cause, outcome);
    }
}

/// Loads, checks and hands over the config; `None` once the runner has stopped.
async fn reload(
    registry: &Registry,
    path: &std::path::Path,
    runner: &mpsc::Sender<Reload>,
) -> Option<Result<Changes, Rejected>> {
    let config = match registry.load(path) {
        Ok(config) => config,
        Err(error) => return Some(Err(error.into())),
    };
    let plan = match registry.plan(&config) {
        Ok(plan) => plan,
        Err(problems) => {
            let path = path.to_path_buf();
            return Some(Err(config::Error::Invalid { path, problems }.into()));
        }
    };
    let (done, answer) = oneshot::channel();
    runner.send(Reload { config, plan, done }).await.ok()?;
    Some(answer.await.ok()?.map_err(Rejected::from))
}

/// Logs and counts how a reload went.
fn report(cause: Cause, outcome: Result<Changes, Rejected>) {
    let result = match outcome {
        Ok(changes) => {
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
