//! Whether and when to try a request again: a pure decision, apart from the loop that sends.
//!
//! [`RetryPolicy::decide`] looks at what one attempt produced and at what happened so far, and
//! answers with a [`Decision`]. It never sends, sleeps or reads a clock, so every rule below is a
//! unit test; [`super::Session`] drives the loop and only does what the policy says.
//!
//! The rules:
//! - success (2xx, 3xx): done;
//! - 401: the token this attempt carried is refreshed and the request sent once more; a second
//!   401 is final (an API that rejects fresh tokens would otherwise be hammered forever, and every
//!   loop iteration would cost a token request too);
//! - connection errors, timeouts and the `retry-on` statuses: retried after the server's
//!   `Retry-After` (capped) or else a jittered backoff, at most `max-retries` times;
//! - anything else, or a request whose body is a stream that cannot be sent twice: final.

use std::time::Duration;

use reqwest::StatusCode;

use crate::backoff::{Backoff, Jitter};
use crate::config::RetryConfig;

/// What one attempt produced, as far as retrying is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered.
    Response {
        /// Its status.
        status: StatusCode,
        /// The wait its `Retry-After` header asks for, if any (see `crate::retry_after`).
        retry_after: Option<Duration>,
    },
    /// No answer within the timeout.
    Timeout,
    /// No connection could be made.
    Connect,
    /// The connection failed otherwise (reset, protocol error, …).
    Transport,
}

/// Where the request stands before the decision.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Retries already made (not counting the resend after a 401).
    pub retries: u32,
    /// Whether the token was already refreshed once for this request.
    pub refreshed: bool,
    /// Whether the body can be sent again (false for a stream).
    pub replayable: bool,
    /// Whether the attempt carried a token (false with `auth.type: none`, where a 401 has no
    /// token to refresh).
    pub authenticated: bool,
}

/// How long to wait before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The next jittered delay of the [`Backoff`].
    Backoff,
    /// Exactly this long, as the server asked (already capped).
    RetryAfter(Duration),
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The attempt succeeded: hand the response over.
    Done,
    /// Try again after the wait; `reason` labels the retry metric.
    Retry {
        /// How long to wait first.
        after: Wait,
        /// Why: a status code, `timeout`, `connect` or `transport`.
        reason: Reason,
    },
    /// The token was rejected: invalidate it, get a fresh one and resend at once.
    Refresh,
    /// Stop and report the outcome as an error.
    GiveUp(GiveUp),
}

/// Why a request is retried, as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A `retry-on` status.
    Status(StatusCode),
    /// The attempt timed out.
    Timeout,
    /// No connection could be made.
    Connect,
    /// The connection failed otherwise.
    Transport,
}

impl Reason {
    /// The `reason` label of `tapline_http_retries_total`: the status code, or `timeout`,
    /// `connect`, `transport`.
    pub fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Status(status) => status.as_u16().to_string().into(),
            Self::Timeout => "timeout".into(),
            Self::Connect => "connect".into(),
            Self::Transport => "transport".into(),
        }
    }
}

/// Why a request was given up: part of the error the user sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// The outcome is not one that is retried (e.g. 400, 404).
    NotRetryable,
    /// `max-retries` retries were made, all failed.
    Exhausted {
        /// The configured `max-retries`.
        max_retries: u32,
    },
    /// It would have been retried, but the body was a stream and is gone.
    NotReplayable,
    /// The API answered 401 even to a freshly fetched token.
    RejectedAfterRefresh,
}

/// The retry rules of the `session.retries` block.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    max_retries: u32,
    retry_on: Vec<StatusCode>,
    backoff: Backoff,
    max_retry_after: Duration,
}

impl RetryPolicy {
    /// The policy the config describes; `max-retry-after` defaults to `max-backoff`.
    pub fn from_config(config: &RetryConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            retry_on: config
                .retry_on
                .iter()
                .filter_map(|code| StatusCode::from_u16(*code).ok())
                .collect(),
            backoff: Backoff::new(
                config.initial_backoff.get(),
                config.max_backoff.get(),
                Jitter::Full,
            ),
            max_retry_after: config.max_retry_after.unwrap_or(config.max_backoff).get(),
        }
    }

    /// The backoff used when the server gives no `Retry-After`.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// What to do after an attempt that produced `outcome`.
    pub fn decide(&self, outcome: &Outcome, progress: &Progress) -> Decision {
        let (reason, retry_after) = match *outcome {
            Outcome::Response { status, .. } if status.is_success() || status.is_redirection() => {
                return Decision::Done
            }
            Outcome::Response { status, .. } if status == StatusCode::UNAUTHORIZED => {
                return if !progress.authenticated {
                    Decision::GiveUp(GiveUp::NotRetryable)
                } else if progress.refreshed {
                    Decision::GiveUp(GiveUp::RejectedAfterRefresh)
                } else if !progress.replayable {
                    Decision::GiveUp(GiveUp::NotReplayable)
                } else {
                    Decision::Refresh
                };
            }
            Outcome::Response {
                status,
                retry_after,
            } if self.retry_on.contains(&status) => (Reason::Status(status), retry_after),
            Outcome::Response { .. } => return Decision::GiveUp(GiveUp::NotRetryable),
            Outcome::Timeout => (Reason::Timeout, None),
            Outcome::Connect => (Reason::Connect, None),
            Outcome::Transport => (Reason::Transport, None),
        };
        if progress.retries >= self.max_retries {
            return Decision::GiveUp(GiveUp::Exhausted {
                max_retries: self.max_retries,
            });
        }
        if !progress.replayable {
            return Decision::GiveUp(GiveUp::NotReplayable);
        }
        let after = match retry_after {
            Some(wait) => Wait::RetryAfter(wait.min(self.max_retry_after)),
            None => Wait::Backoff,
        };
        Decision::Retry { after, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy::from_config(&RetryConfig {
            max_retries,
            initial_backoff: HumanDuration::from_millis(100),
            max_backoff: HumanDuration::from_secs(5),
            max_retry_after: None,
            retry_on: vec![408, 429, 500, 502, 503, 504],
        })
    }

    fn status(code: u16) -> Outcome {
        Outcome::Response {
            status: StatusCode::from_u16(code).unwrap(),
            retry_after: None,
        }
    }

    fn fresh() -> Progress {
        Progress {
            replayable: true,
            authenticated: true,
            ..Progress::default()
        }
    }

    #[test]
    fn success_and_redirects_are_done() {
        for code in [200, 201, 204, 304] {
            assert_eq!(policy(3).decide(&status(code), &fresh()), Decision::Done);
        }
    }

    #[test]
    fn retry_on_statuses_and_connection_failures_back_off() {
        for (outcome, label) in [
            (status(503), "503"),
            (status(429), "429"),
            (Outcome::Timeout, "timeout"),
            (Outcome::Connect, "connect"),
            (Outcome::Transport, "transport"),
        ] {
            match policy(3).decide(&outcome, &fresh()) {
                Decision::Retry {
                    after: Wait::Backoff,
                    reason,
                } => assert_eq!(reason.label(), label),
                other => panic!("{outcome:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn other_statuses_are_final() {
        for code in [400, 403, 404, 409, 501] {
            assert_eq!(
                policy(3).decide(&status(code), &fresh()),
                Decision::GiveUp(GiveUp::NotRetryable)
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let asks = |secs| Outcome::Response {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(secs)),
        };
        let wait = |outcome| match policy(3).decide(&outcome, &fresh()) {
            Decision::Retry { after, .. } => after,
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(asks(2)), Wait::RetryAfter(Duration::from_secs(2)));
        assert_eq!(wait(asks(3600)), Wait::RetryAfter(Duration::from_secs(5)));
    }

    #[test]
    fn separate_retry_after_cap() {
        let config = RetryConfig {
            max_backoff: HumanDuration::from_secs(1),
            initial_backoff: HumanDuration::from_millis(10),
            max_retry_after: Some(HumanDuration::from_secs(120)),
            ..RetryConfig::default()
        };
        let outcome = Outcome::Response {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(Duration::from_secs(90)),
        };
        assert!(matches!(
            RetryPolicy::from_config(&config).decide(&outcome, &fresh()),
            Decision::Retry { after: Wait::RetryAfter(d), .. } if d == Duration::from_secs(90)
        ));
    }

    #[test]
    fn gives_up_after_max_retries() {
        let progress = Progress {
            retries: 3,
            ..fresh()
        };
        assert_eq!(
            policy(3).decide(&status(503), &progress),
            Decision::GiveUp(GiveUp::Exhausted { max_retries: 3 })
        );
        assert_eq!(
            policy(0).decide(&Outcome::Timeout, &fresh()),
            Decision::GiveUp(GiveUp::Exhausted { max_retries: 0 })
        );
    }

    #[test]
    fn unauthorized_refreshes_once_then_gives_up() {
        assert_eq!(policy(3).decide(&status(401), &fresh()), Decision::Refresh);
        let refreshed = Progress {
            refreshed: true,
            ..fresh()
        };
        assert_eq!(
            policy(3).decide(&status(401), &refreshed),
            Decision::GiveUp(GiveUp::RejectedAfterRefresh)
        );
        // Independent of the retry budget: a 401 after retries still gets its one refresh.
        let spent = Progress {
            retries: 3,
            ..fresh()
        };
        assert_eq!(policy(3).decide(&status(401), &spent), Decision::Refresh);
    }

    #[test]
    fn unauthorized_without_a_token_is_final() {
        let anonymous = Progress {
            authenticated: false,
            ..fresh()
        };
        assert_eq!(
            policy(3).decide(&status(401), &anonymous),
            Decision::GiveUp(GiveUp::NotRetryable)
        );
    }

    #[test]
    fn a_stream_body_is_never_resent() {
        let stream = Progress {
            authenticated: true,
            ..Progress::default()
        };
        assert_eq!(
            policy(3).decide(&status(503), &stream),
            Decision::GiveUp(GiveUp::NotReplayable)
        );
        assert_eq!(
            policy(3).decide(&status(401), &stream),
            Decision::GiveUp(GiveUp::NotReplayable)
        );
        assert_eq!(policy(3).decide(&status(200), &stream), Decision::Done);
    }
}
