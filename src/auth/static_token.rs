//! `type: token`: a token obtained elsewhere.
//!
//! The token never expires as far as tapline knows; a `token-file` is re-read by the cache every
//! few seconds (and after a 401), so a rotated file takes effect without a restart.

use crate::config::{SecretSource, TokenConfig};

use super::{Error, FetchedToken, TokenSource};

/// Serves the configured token; a `token-file` is read at each fetch.
#[derive(Debug)]
pub struct StaticToken {
    source: SecretSource,
}

impl StaticToken {
    /// Checks that a token is configured.
    pub fn new(config: &TokenConfig) -> Result<Self, Error> {
        let source = config
            .token()
            .ok_or_else(|| Error::Misconfigured("give auth.token or auth.token-file".into()))?;
        Ok(Self { source })
    }

    /// True for a `token-file`, which the cache looks at again now and then.
    pub fn is_file(&self) -> bool {
        matches!(self.source, SecretSource::File(_))
    }
}

#[async_trait::async_trait]
impl TokenSource for StaticToken {
    async fn fetch(&self) -> Result<FetchedToken, Error> {
        Ok(FetchedToken {
            value: self.source.read()?,
            expires_at: None,
        })
    }
}
