//! Why a token could not be had.
//!
//! Messages carry what the identity provider said (`error`, `error_description`) and the token
//! URL (through [`crate::redact::url`]: no password, no query), never a secret, an assertion or a
//! token: these errors end up on stderr and in logs.

use std::time::Duration;

/// A token could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The auth configuration is incomplete.
    #[error("auth is not configured: {0}")]
    Misconfigured(String),
    /// A secret file could not be read.
    #[error(transparent)]
    SecretFile(#[from] crate::config::SecretFileError),
    /// The token is not usable as an HTTP header value.
    #[error("the token contains characters that cannot be sent in an HTTP header")]
    InvalidToken,
    /// The token URL is not one tapline will send credentials to.
    #[error("token URL {url:?} refused: {reason}")]
    TokenUrl {
        /// The URL as configured, redacted.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// The identity provider rejected the credentials or the request (a 4xx with an OAuth
    /// `error`). Retrying would not help, so it is reported at once.
    #[error("the identity provider rejected the token request (HTTP {status}): {error}{}", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    TokenRejected {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code, e.g. `invalid_client`.
        error: String,
        /// The provider's `error_description`, if it gave one.
        description: Option<String>,
    },
    /// The token endpoint answered with an error status and no usable OAuth error.
    #[error("the token endpoint {url} answered HTTP {status}")]
    TokenEndpointStatus {
        /// The token URL, redacted.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, in seconds, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The token endpoint could not be reached, or did not answer in time.
    #[error("cannot reach the token endpoint {url}")]
    Unreachable {
        /// The token URL, redacted.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The token endpoint answered 2xx with something that is not a usable token response.
    /// The body is never quoted: it may hold a token.
    #[error("the token endpoint {url} sent an invalid token response: {problem}")]
    MalformedResponse {
        /// The token URL, redacted.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The certificate or private key could not be used. Never includes key material.
    #[error("auth.certificate: {0}")]
    Certificate(String),
    /// The client assertion could not be signed.
    #[error("cannot sign the client assertion")]
    Signing(#[source] jsonwebtoken::errors::Error),
    /// The Kognic credentials could not be resolved or read.
    #[error("kognic credentials: {0}")]
    Kognic(String),
    /// The workload identity token file (the client assertion) could not be read.
    #[error("cannot read the workload identity token file {path}; is the pod's service account set up for workload identity (label azure.workload.identity/use: \"true\")?")]
    AssertionFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The workload identity token file holds an unusable or expired assertion. Sending it would
    /// only earn an AADSTS700024 from the identity provider.
    #[error("the workload identity token file {path} {problem}; the kubelet refreshes it, so check that the projected volume is mounted and current")]
    AssertionInvalid {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, e.g. "holds a token that expired 30s ago".
        problem: String,
    },
    /// No usable refresh token is cached and nobody is at a terminal to sign in.
    #[error("a login is needed: {0}")]
    LoginRequired(String),
    /// An interactive login (device code or browser) did not complete.
    #[error("the login failed: {0}")]
    LoginFailed(String),
    /// The token cache file could not be read or written.
    #[error("token cache file {path}: {action}")]
    TokenCacheFile {
        /// The file.
        path: std::path::PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for token requests could not be built (bad proxy or CA bundle).
    #[error("cannot set up the HTTP client for token requests")]
    Transport(#[from] crate::transport::Error),
}

impl Error {
    /// True for failures worth retrying with backoff: the endpoint could not be reached, timed
    /// out, or answered 408, 429 or 5xx. Rejected credentials and malformed answers are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::TokenEndpointStatus { status, .. } => {
                matches!(status, 408 | 429) || (500..=599).contains(status)
            }
            _ => false,
        }
    }

    /// How long the server asked to wait before the next attempt, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TokenEndpointStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
