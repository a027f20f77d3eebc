//! What went wrong with a request, in user terms and without header values.

/// A request through the session failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built from the config.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// A path or URL could not be turned into a URL.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    /// The request body could not be encoded.
    #[error("cannot encode the request body as JSON")]
    Body(#[source] serde_json::Error),
    /// No token could be had for the request.
    #[error("no access token")]
    Auth(#[from] crate::auth::Error),
    /// The request could not be sent or its response not read.
    #[error("{method} {url} failed")]
    Transport {
        /// The method.
        method: reqwest::Method,
        /// The URL without its query.
        url: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
}
