//! Credential providers and the process-wide token cache.
//!
//! Every task shares one [`Credentials`]: it hands out the current bearer token, refreshes it
//! before it expires, and drops exactly the token an API rejected with 401.
//!
//! Each provider is a [`TokenSource`] that fetches one token; [`TokenCache`] decides when. The
//! providers come in two families, as in azure_identity:
//!
//! ```text
//! auth/
//!   mod.rs                  TokenSource, Credentials (config `auth:` -> token source)
//!   cache.rs                TokenCache: when to fetch; knows nothing about OAuth
//!   token.rs                AccessToken, FetchedToken: tokens that never reach a log
//!   error.rs                auth::Error
//!   token_endpoint.rs       the OAuth token request on the wire; http_client for it
//!   static_token.rs         type: token
//!   client_credentials/     one source, ClientCredentials, with a pluggable ClientProof
//!     mod.rs                the grant, the ClientProof trait, Proof
//!     secret.rs             type: client-secret (form or HTTP Basic)
//!     kognic.rs             type: kognic (credentials file or KOGNIC_* -> client secret)
//!     certificate.rs        type: certificate (signed private_key_jwt assertion)
//!     certificate_file.rs   reading PEM, encrypted PKCS#8 and PKCS#12
//!     federated.rs          type: workload-identity (federated token file as assertion)
//!   login/                  the interactive logins, with refresh tokens kept in a file
//!     mod.rs                what is where
//!     interactive_login.rs  InteractiveLogin: cache file, refresh token, new login
//!     device_code.rs        type: device-code (RFC 8628)
//!     browser.rs            type: browser (authorization code + PKCE, loopback redirect)
//!     refresh_token.rs      the refresh grant and its scope rules
//!     token_cache_file.rs   TokenCacheFile
//!     prompt.rs             LoginPrompt, TerminalPrompt, LoginOptions
//!     discovery.rs          token and login endpoints (Entra ID paths, OIDC discovery)
//! ```
//!
//! Token requests use their own HTTP client ([`http_client`]), built by
//! [`crate::transport`] with the session's proxy, CA bundle and timeouts but no auth layer, so
//! fetching a token can never recurse into needing one.

mod cache;
mod client_credentials;
mod error;
mod login;
mod provider;
mod static_token;
mod token;
mod token_endpoint;

use std::sync::Arc;
use std::time::Duration;

pub use cache::{CacheOptions, TokenCache, FETCH_BACKOFF};
pub use client_credentials::{
    Certificate, CertificateAssertion, ClientCredentials, ClientProof, ClientSecret,
    FederatedToken, KognicEnv, Proof, WorkloadIdentity, WorkloadIdentityEnv,
};
pub use error::Error;
pub use login::{
    CachedLogin, InteractiveLogin, LoginOptions, LoginPrompt, TerminalPrompt, TokenCacheFile,
};
pub use provider::Provider;
pub use static_token::StaticToken;
pub use token::{AccessToken, FetchedToken};
pub use token_endpoint::http_client;

use crate::config::{AuthConfig, SessionConfig};

/// How often a `token-file` is looked at again, so a rotated token is picked up without waiting
/// for a 401.
const TOKEN_FILE_RECHECK: Duration = Duration::from_secs(5);

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
        Self::from_cache(TokenCache::new(source))
    }

    /// Credentials over a cache built by the caller (custom [`CacheOptions`]).
    pub fn from_cache(cache: TokenCache) -> Self {
        Self {
            cache: Some(Arc::new(cache)),
        }
    }

    /// Builds the credentials for one `auth:` block, with token requests made as `session`
    /// describes. Kognic credentials and the workload identity defaults (`AZURE_*`) are resolved
    /// from the process environment; `device-code` and `browser` start a new login only when
    /// stdin and stderr are terminals (else they need the refresh token `tapline login` cached).
    pub fn from_auth(auth: &AuthConfig, session: &SessionConfig) -> Result<Self, Error> {
        let (source, options): (Arc<dyn TokenSource>, CacheOptions) = match auth {
            AuthConfig::None => return Ok(Self::none()),
            AuthConfig::Token(token) => {
                let source = StaticToken::new(token)?;
                let recheck = source.is_file().then_some(TOKEN_FILE_RECHECK);
                let options = CacheOptions {
                    recheck,
                    ..CacheOptions::default()
                };
                (Arc::new(source), options)
            }
            AuthConfig::ClientSecret(config) => (
                Arc::new(ClientCredentials::<ClientSecret>::new(
                    config,
                    http_client(session)?,
                )?),
                margin(config.refresh_margin),
            ),
            AuthConfig::Certificate(config) => (
                Arc::new(Certificate::new(config, http_client(session)?)?),
                margin(config.refresh_margin),
            ),
            AuthConfig::Kognic(config) => (
                Arc::new(ClientCredentials::kognic(
                    config,
                    &KognicEnv::from_process(),
                    http_client(session)?,
                )?),
                margin(config.refresh_margin),
            ),
            AuthConfig::WorkloadIdentity(config) => (
                Arc::new(WorkloadIdentity::new(
                    config,
                    &WorkloadIdentityEnv::from_process(),
                    http_client(session)?,
                )?),
                margin(config.refresh_margin),
            ),
            AuthConfig::DeviceCode(config) => (
                Arc::new(InteractiveLogin::device_code(
                    config,
                    http_client(session)?,
                    LoginOptions::terminal(false),
                )?),
                margin(config.refresh_margin),
            ),
            AuthConfig::Browser(config) => (
                Arc::new(InteractiveLogin::browser(
                    config,
                    http_client(session)?,
                    LoginOptions::terminal(config.open_browser),
                )?),
                margin(config.refresh_margin),
            ),
        };
        Ok(Self::from_cache(TokenCache::with_options(source, options)))
    }

    /// Runs the interactive login of a `device-code` or `browser` block once, at the terminal,
    /// and fills the token cache file (`tapline login`); returns the cache file's path.
    pub async fn login(
        auth: &AuthConfig,
        session: &SessionConfig,
    ) -> Result<std::path::PathBuf, Error> {
        let options = |open_browser| LoginOptions {
            allow_login: true,
            ..LoginOptions::terminal(open_browser)
        };
        let login = match auth {
            AuthConfig::DeviceCode(config) => {
                InteractiveLogin::device_code(config, http_client(session)?, options(false))?
            }
            AuthConfig::Browser(config) => InteractiveLogin::browser(
                config,
                http_client(session)?,
                options(config.open_browser),
            )?,
            other => {
                return Err(Error::Misconfigured(format!(
                    "auth type {} has no interactive login; `tapline login` is for device-code and browser",
                    other.type_name()
                )))
            }
        };
        login.login().await?;
        Ok(login.cache_file().path().to_path_buf())
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

fn margin(refresh_margin: crate::config::Duration) -> CacheOptions {
    CacheOptions {
        refresh_margin: refresh_margin.get(),
        ..CacheOptions::default()
    }
}
