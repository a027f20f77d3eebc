//! What the session reports per attempt: each event logs and counts in one place, so logs and
//! metrics cannot drift apart. No event carries a header.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::SharedString;
use reqwest::Method;

use super::retry::{Outcome, Reason};
use crate::telemetry::catalogue;

/// One attempt ended: with a status, or without a response.
pub(super) struct AttemptFinished<'a> {
    pub task: &'a Arc<str>,
    pub method: &'a Method,
    pub attempt: u32,
    pub outcome: &'a Outcome,
    pub elapsed: Duration,
}

impl AttemptFinished<'_> {
    pub(super) fn emit(self) {
        // Labels are shared or static strings: this runs for every request, so no allocations.
        let status = status_label(self.outcome);
        metrics::counter!(
            catalogue::HTTP_REQUESTS.name,
            "task" => SharedString::from(self.task.clone()),
            "method" => method_label(self.method),
            "status" => status,
        )
        .increment(1);
        metrics::histogram!(
            catalogue::HTTP_REQUEST_DURATION.name,
            "task" => SharedString::from(self.task.clone())
        )
        .record(self.elapsed.as_secs_f64());
        tracing::debug!(
            attempt = self.attempt,
            status,
            duration = ?self.elapsed,
            "attempt finished"
        );
    }
}

/// A retry was decided.
pub(super) struct RetryScheduled<'a> {
    pub task: &'a Arc<str>,
    pub attempt: u32,
    pub reason: Reason,
    pub after: Duration,
}

impl RetryScheduled<'_> {
    pub(super) fn emit(self) {
        let reason = self.reason.label();
        tracing::info!(
            attempt = self.attempt,
            reason = %reason,
            wait_ms = self.after.as_millis() as u64,
            "retrying"
        );
        metrics::counter!(catalogue::HTTP_RETRIES.name, "task" => SharedString::from(self.task.clone()), "reason" => reason)
            .increment(1);
    }
}

/// The API rejected a token with 401; it is dropped and the request resent once.
pub(super) struct TokenRejected<'a> {
    pub task: &'a Arc<str>,
    pub attempt: u32,
}

impl TokenRejected<'_> {
    pub(super) fn emit(self) {
        tracing::info!(
            attempt = self.attempt,
            "401: refreshing the token and resending once"
        );
        metrics::counter!(catalogue::HTTP_RETRIES.name, "task" => SharedString::from(self.task.clone()), "reason" => "unauthorized")
            .increment(1);
    }
}

/// The `status` label: the code, or what happened instead of a response.
fn status_label(outcome: &Outcome) -> &'static str {
    static CODES: OnceLock<Vec<String>> = OnceLock::new();
    match outcome {
        Outcome::Response { status, .. } => {
            let codes = CODES.get_or_init(|| (0..1000).map(|code| code.to_string()).collect());
            codes
                .get(usize::from(status.as_u16()))
                .map_or("other", String::as_str)
        }
        Outcome::Timeout => "timeout",
        Outcome::Connect => "connect",
        Outcome::Transport => "transport",
    }
}

/// The `method` label, without allocating for the standard methods.
fn method_label(method: &Method) -> SharedString {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match STANDARD.iter().find(|name| **name == method.as_str()) {
        Some(name) => SharedString::const_str(name),
        None => SharedString::from(method.as_str().to_owned()),
    }
}
