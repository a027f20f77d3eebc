//! Credential providers and the process-wide token cache.
//!
//! Every task shares one [`Credentials`]: it hands out the current bearer token, refreshes it
//! before it expires, and drops exactly the token an API rejected with 401.

mod cache;
mod error;
mod static_token;
mod token;

use std::sync::Arc;

pub use cache::TokenCache;
pub use error::Error;
pub use token::{AccessToken, FetchedToken};

use crate::config::{AuthConfig, Config};

/// Fetches one new token from wherever the provider gets them. The [`TokenCache`] decides when.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + std::fmt::Debug {
    /// Requests a token now.
    async fn fetch(&self) -> Result<FetchedToken, Error>;
}

/// The credentials every request of the process uses: none, or a shared token cache.
#[derive(Clone, Debug)]
pub struct Credentials {
    cache: Option<Arc<TokenCache>>,
}

impl Credentials {
    /// No authentication: requests carry no Authorization header.
    pub fn none() -> Self {
        Self { cache: None }
    }

    /// Credentials that take their tokens from `source`.
    pub fn from_source(source: Arc<dyn TokenSource>) -> Self {
        Self {
            cache: Some(Arc::new(TokenCache::new(source))),
        }
    }

    /// Builds the credentials the config's `auth:` block describes.
    pub fn from_config(config: &Config) -> Result<Self, Error> {
        match &config.auth {
            AuthConfig::None => Ok(Self::none()),
            AuthConfig::Token(token) => Ok(Self::from_source(Arc::new(
                static_token::StaticToken::new(token)?,
            ))),
            other => Err(Error::Unsupported(other.type_name())),
        }
    }

    /// The token to send now, or `None` when authentication is off.
    pub async fn token(&self) -> Result<Option<Arc<AccessToken>>, Error> {
        match &self.cache {
            None => Ok(None),
            Some(cache) => cache.token().await.map(Some),
        }
    }

    /// Drops `token` if it is still the current one, so the next [`Self::token`] fetches anew.
    pub fn invalidate(&self, token: &AccessToken) {
        if let Some(cache) = &self.cache {
            cache.invalidate(token);
        }
    }
}
