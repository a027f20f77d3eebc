//! What went wrong with a request, in user terms.
//!
//! Every message names the method and the URL without its password and query (both can carry
//! secrets; see [`crate::redact::url`]), the status when there was one and how many attempts were made. No header value ever
//! appears: not in the message, not in `Debug`.

use std::fmt;

use reqwest::{Method, StatusCode};

use super::retry::GiveUp;

/// How many bytes of a 4xx response body an error keeps: enough for an API's error message.
pub(crate) const BODY_EXCERPT_BYTES: usize = 300;

/// A request through the session failed, or the session could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built from the config (proxy, CA bundle, TLS).
    #[error(transparent)]
    Client(#[from] crate::transport::Error),
    /// A `session.headers` entry is not a valid HTTP header.
    #[error("session.headers.{0}: not a valid HTTP header name or value")]
    InvalidHeader(String),
    /// A path or URL could not be turned into a URL (shown redacted).
    #[error("invalid URL {0:?}: give an absolute URL, or set session.base-url and give a path")]
    InvalidUrl(String),
    /// The request body could not be encoded.
    #[error("cannot encode the request body as JSON")]
    Body(#[source] serde_json::Error),
    /// No token could be had for the request.
    #[error("no access token for the request")]
    Auth(#[from] crate::auth::Error),
    /// The request would have carried the bearer token to an origin it is not meant for; it was
    /// not sent. Only the origin is named: the rest of the URL may hold secrets.
    #[error("{method} to {origin} not sent: the bearer token goes only to {allowed}")]
    OriginNotAllowed {
        /// The method.
        method: Method,
        /// `scheme://host:port` of the refused URL.
        origin: String,
        /// The origins the token may go to.
        allowed: String,
    },
    /// The response body was longer than the caller's limit; reading stopped there.
    #[error("{url} answered a body larger than {limit}")]
    BodyTooLarge {
        /// The URL without its query.
        url: String,
        /// The limit.
        limit: crate::config::ByteSize,
    },
    /// The connection failed while the body was read.
    #[error("reading the body of {url} failed")]
    BodyRead {
        /// The URL without its query.
        url: String,
        /// The client's error (without the URL).
        #[source]
        source: reqwest::Error,
    },
    /// No response: the connection failed or timed out, on the last attempt.
    #[error("{method} {url} {what} {}{}", Attempts(*attempts), Why(*why))]
    Transport {
        /// The method.
        method: Method,
        /// The URL, redacted.
        url: String,
        /// "timed out", "could not connect", "failed".
        what: &'static str,
        /// Attempts made, counting the first.
        attempts: u32,
        /// Why no further attempt was made.
        why: GiveUp,
        /// The client's error (without the URL).
        #[source]
        source: reqwest::Error,
    },
    /// The final response had an error status.
    #[error("{method} {url} answered {status} {}{}{}", Attempts(*attempts), Why(*why), Excerpt(body.as_deref()))]
    Status {
        /// The method.
        method: Method,
        /// The URL, redacted.
        url: String,
        /// The status of the last response.
        status: StatusCode,
        /// Attempts made, counting the first.
        attempts: u32,
        /// Why no further attempt was made.
        why: GiveUp,
        /// The start of the body of a 4xx response (at most 300 bytes), often the API's own
        /// explanation.
        body: Option<String>,
    },
}

impl Error {
    /// The status of the final response, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How many attempts were made, when the request was sent at all.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            Self::Status { attempts, .. } | Self::Transport { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// Whether the request timed out on its last attempt.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Transport { source, .. } if source.is_timeout())
    }
}

struct Attempts(u32);

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("(1 attempt)"),
            n => write!(f, "({n} attempts)"),
        }
    }
}

struct Why(GiveUp);

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            GiveUp::NotRetryable => Ok(()),
            GiveUp::Exhausted { max_retries } => {
                write!(f, ": gave up after max-retries ({max_retries}) retries")
            }
            GiveUp::NotReplayable => f.write_str(
                ": not retried because the request body is a stream that cannot be sent again; \
                 use a buffered body (bytes or JSON) to get retries",
            ),
            GiveUp::RejectedAfterRefresh => f.write_str(
                ": the API rejected a freshly fetched token too; check that the client is \
                 allowed to call this API (scopes, audience, role assignments)",
            ),
        }
    }
}

struct Excerpt<'a>(Option<&'a str>);

impl fmt::Display for Excerpt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(body) if !body.trim().is_empty() => write!(f, "; response: {}", body.trim()),
            _ => Ok(()),
        }
    }
}

/// The first [`BODY_EXCERPT_BYTES`] of `body` as text, cut at a character boundary.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(BODY_EXCERPT_BYTES)];
    let text = String::from_utf8_lossy(head);
    let mut text = text.trim_end_matches('\u{FFFD}').to_string();
    if body.len() > BODY_EXCERPT_BYTES {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_reads_naturally() {
        let error = Error::Status {
            method: Method::GET,
            url: "https://api.example.com/v1/items".into(),
            status: StatusCode::SERVICE_UNAVAILABLE,
            attempts: 4,
            why: GiveUp::Exhausted { max_retries: 3 },
            body: None,
        };
        assert_eq!(
            error.to_string(),
            "GET https://api.example.com/v1/items answered 503 Service Unavailable (4 attempts): \
             gave up after max-retries (3) retries"
        );
        let error = Error::Status {
            method: Method::POST,
            url: "https://api.example.com/v1/items".into(),
            status: StatusCode::BAD_REQUEST,
            attempts: 1,
            why: GiveUp::NotRetryable,
            body: Some("{\"error\":\"name is required\"}".into()),
        };
        assert_eq!(
            error.to_string(),
            "POST https://api.example.com/v1/items answered 400 Bad Request (1 attempt); \
             response: {\"error\":\"name is required\"}"
        );
    }

    #[test]
    fn excerpt_is_bounded_and_utf8() {
        assert_eq!(excerpt(b"short"), "short");
        let long = "é".repeat(400);
        let cut = excerpt(long.as_bytes());
        assert!(cut.len() <= BODY_EXCERPT_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
        assert!(!cut.contains('\u{FFFD}'));
    }
}
