//! What the session reports per attempt: each event logs and counts in one place, so logs and
//! metrics cannot drift apart. No event carries a header.

use std::time::Duration;

use reqwest::Method;

use super::retry::Reason;

/// One attempt ended: with a status, or without a response.
pub(super) struct AttemptFinished<'a> {
    pub task: &'a str,
    pub method: &'a Method,
    pub attempt: u32,
    /// The status code, or `timeout` / `connect` / `transport`.
    pub status: &'a str,
    pub elapsed: Duration,
}

impl AttemptFinished<'_> {
    pub(super) fn emit(self) {
        metrics::counter!(
            "tapline_http_requests_total",
            "task" => self.task.to_owned(),
            "method" => self.method.as_str().to_owned(),
            "status" => self.status.to_owned(),
        )
        .increment(1);
        metrics::histogram!("tapline_http_request_duration_seconds", "task" => self.task.to_owned())
            .record(self.elapsed.as_secs_f64());
        tracing::debug!(
            attempt = self.attempt,
            status = self.status,
            duration_ms = self.elapsed.as_secs_f64() * 1000.0,
            "attempt finished"
        );
    }
}

/// A retry was decided.
pub(super) struct RetryScheduled<'a> {
    pub task: &'a str,
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
        metrics::counter!("tapline_http_retries_total", "task" => self.task.to_owned(), "reason" => reason)
            .increment(1);
    }
}

/// The API rejected a token with 401; it is dropped and the request resent once.
pub(super) struct TokenRejected<'a> {
    pub task: &'a str,
    pub attempt: u32,
}

impl TokenRejected<'_> {
    pub(super) fn emit(self) {
        tracing::info!(attempt = self.attempt, "401: refreshing the token and resending once");
        metrics::counter!("tapline_http_retries_total", "task" => self.task.to_owned(), "reason" => "unauthorized")
            .increment(1);
    }
}
