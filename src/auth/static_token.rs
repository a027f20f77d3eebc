//! `type: token`: a token obtained elsewhere.
//!
//! The token never expires as far as tapline knows; a `token-file` is re-read by the cache every
//! few seconds (and after a 401), so a rotated file takes effect without a restart.
//!
//! The provider's config ([`TokenConfig`]), its rules ([`build`]) and its credentials
//! ([`StaticTokenProvider`]) are here too.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::config::check::{self, Presence};
use crate::config::{BuildError, SecretSource, SessionConfig};

use super::{CacheOptions, Credentials, Error, FetchedToken, Provider, TokenCache, TokenSource};

/// How often a `token-file` is looked at again, so a rotated token is picked up without waiting
/// for a 401.
const TOKEN_FILE_RECHECK: Duration = Duration::from_secs(5);

/// `type: token`: a token obtained elsewhere, given inline or in a file.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TokenConfig {
    /// The bearer token. Prefer `token-file` or `${VAR}`.
    #[schemars(with = "Option<String>")]
    pub token: Option<SecretString>,
    /// A file holding the token, re-read when it changes.
    pub token_file: Option<PathBuf>,
}

impl TokenConfig {
    /// The token's source.
    pub fn token(&self) -> Option<SecretSource> {
        SecretSource::from_pair(self.token.as_ref(), self.token_file.as_deref())
    }
}

/// The token is shown only as its source: a file's path, never an inline value.
impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("token", &self.token())
            .finish()
    }
}

/// A checked `token` block.
#[derive(Debug)]
pub struct StaticTokenProvider {
    config: TokenConfig,
}

/// Checks a `token` block: a token, or a token file that is readable and not empty.
pub fn build(config: TokenConfig) -> Result<StaticTokenProvider, BuildError> {
    check::secret_pair(
        config.token.as_ref(),
        config.token_file.as_deref(),
        "token",
        Presence::Required,
    )?;
    Ok(StaticTokenProvider { config })
}

/// Needs no token request, so `session` plays no part.
impl Provider for StaticTokenProvider {
    fn credentials(&self, _session: &SessionConfig) -> Result<Credentials, Error> {
        let source = StaticToken::new(&self.config)?;
        let options = CacheOptions {
            recheck: source.is_file().then_some(TOKEN_FILE_RECHECK),
            ..CacheOptions::default()
        };
        Ok(Credentials::from_cache(TokenCache::with_options(
            Arc::new(source),
            options,
        )))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_wants_one_token_and_debug_hides_it() {
        let config: TokenConfig = serde_yaml::from_str("token: hunter2-token\n").unwrap();
        let debug = format!("{config:?} {:?}", build(config.clone()).unwrap());
        assert!(!debug.contains("hunter2"), "{debug}");
        let error = build(serde_yaml::from_str("{}").unwrap()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "token: missing; give token (e.g. token: ${VAR}) or token-file"
        );
    }
}
