//! Why a token could not be had.

/// A token could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `auth.type` has no provider in this build.
    #[error("auth type {0:?} is not supported yet")]
    Unsupported(&'static str),
    /// The auth configuration is incomplete.
    #[error("auth is not configured: {0}")]
    Misconfigured(String),
    /// A secret file could not be read.
    #[error(transparent)]
    SecretFile(#[from] crate::config::SecretFileError),
    /// The token is not usable as an HTTP header value.
    #[error("the token contains characters that cannot be sent in an HTTP header")]
    InvalidToken,
}
