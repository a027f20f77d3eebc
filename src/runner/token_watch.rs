//! The token watch: keeps `/readyz`'s `token_ok` flag current by asking the credentials for a
//! token now and then, and is restarted when a reload brings new credentials.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::task::JoinHandle;

use super::schedule::RESTART_BACKOFF;
use super::shutdown::Shutdown;
use crate::auth::Credentials;
use crate::backoff::{Backoff, Jitter};
use crate::telemetry::logging::error_chain;
use crate::telemetry::Readiness;

/// Starts watching `credentials` until shutdown (or until the handle is aborted).
pub(super) fn spawn(
    credentials: Credentials,
    readiness: Readiness,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(supervise_token_watch(credentials, readiness, shutdown))
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
