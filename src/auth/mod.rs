//! Credential providers and the process-wide token cache.
//!
//! Every task shares one [`Credentials`]: it hands out the current bearer token, refreshes it
//! before it expires, and drops exactly the token an API rejected with 401.
//!
//! Each provider is a [`TokenSource`] that fetches one token; `TokenCache` (`cache.rs`) decides when. A
//! provider's file holds the whole provider: its config struct (the keys of its `auth:` block,
//! whose doc comments are the schema), its `build` (the rules serde cannot express) and its
//! [`Provider`] impl (which builds the token source); `src/registry/builtin.rs` registers each
//! by its `type`. The providers come in two families, as in azure_identity:
//!
//! ```text
//! auth/
//!   mod.rs                  TokenSource, Credentials
//!   provider.rs             Provider: a checked `auth:` block that builds the Credentials
//!   cache.rs                TokenCache: when to fetch; knows nothing about OAuth
//!   token.rs                AccessToken, FetchedToken: tokens that never reach a log
//!   error.rs                auth::Error
//!   token_endpoint.rs       the OAuth token request on the wire; http_client for it
//!   scopes.rs               Scopes, the `scopes` key of the OAuth providers
//!   static_token.rs         type: token
//!   no_auth.rs              type: none
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
pub mod client_credentials;
mod error;
pub mod login;
pub mod no_auth;
mod provider;
mod scopes;
pub mod static_token;
mod token;
mod token_endpoint;

use std::sync::Arc;
use std::time::Duration;

pub(crate) use cache::{CacheOptions, TokenCache};
pub use client_credentials::{
    Certificate, CertificateAssertion, CertificateConfig, CertificateProvider, ClientAuth,
    ClientCredentials, ClientProof, ClientSecret, ClientSecretConfig, ClientSecretProvider,
    FederatedToken, KognicConfig, KognicEnv, KognicProvider, Proof, WorkloadIdentity,
    WorkloadIdentityConfig, WorkloadIdentityEnv, WorkloadIdentityProvider,
};
pub use error::Error;
pub use login::{
    BrowserConfig, BrowserProvider, DeviceCodeConfig, DeviceCodeProvider, InteractiveEndpoints,
    InteractiveLogin, LoginOptions, LoginPrompt, TerminalPrompt,
};
pub use no_auth::{NoneConfig, NoneProvider};
pub use provider::Provider;
pub use scopes::Scopes;
pub use static_token::{StaticToken, StaticTokenProvider, TokenConfig};
pub use token::{AccessToken, FetchedToken};
pub use token_endpoint::http_client;

/// Fetches one new token from wherever the provider gets them. The token cache decides when.
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

    /// Credentials over a cache built with custom [`CacheOptions`].
    pub(crate) fn from_cache(cache: TokenCache) -> Self {
        Self {
            cache: Some(Arc::new(cache)),
        }
    }

    /// Credentials over `source` with the default cache options, except that tokens are
    /// refreshed `refresh_margin` before they expire (a provider's `refresh-margin` key).
    pub fn with_refresh_margin(
        source: impl TokenSource + 'static,
        refresh_margin: Duration,
    ) -> Self {
        let options = CacheOptions {
            refresh_margin,
            ..CacheOptions::default()
        };
        Self::from_cache(TokenCache::with_options(Arc::new(source), options))
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
