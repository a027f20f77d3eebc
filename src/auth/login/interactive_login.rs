//! The token source of the interactive logins (`device-code`, `browser`): the access token and
//! refresh token live in the [`TokenCacheFile`], and a person is asked to sign in only when no
//! refresh token works.
//!
//! Each token request, in order:
//! 1. re-read the cache file (another process may have refreshed, and rotated the refresh token);
//! 2. an access token there with more than the refresh margin left is used as is, so
//!    `tapline token` right after `tapline login` asks nothing of the identity provider;
//! 3. else the refresh token is redeemed ([`super::refresh_token`]); one rejected as expired or
//!    revoked is dropped from the file, unless another process has meanwhile replaced it (its
//!    rotation won the race), in which case the new one is tried;
//! 4. else a new login (device code or browser), but only when someone can answer it: at a
//!    terminal (stdin and stderr are terminals) or in `tapline login`. A long-running process
//!    with no terminal fails with [`Error::LoginRequired`], which says to run `tapline login`.
//!
//! Every new token is written to the cache file at once.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;

use crate::auth::token_endpoint::{TokenEndpoint, TokenResponse};
use crate::auth::{Error, FetchedToken, TokenSource};

use super::browser::{Browser, BrowserConfig};
use super::device_code::{DeviceCode, DeviceCodeConfig};
use super::discovery::{resolve, Endpoints, InteractiveEndpoints, LoginEndpoint};
use super::prompt::{LoginOptions, LoginPrompt};
use super::refresh_token;
use super::token_cache_file::{epoch_now, CachedLogin, TokenCacheFile};

/// Which interactive flow signs the person in.
#[derive(Debug)]
enum Flow {
    DeviceCode(DeviceCode),
    Browser(Browser),
}

/// What a flow needs to sign someone in.
pub(crate) struct LoginRequest<'a> {
    pub(crate) endpoints: &'a Endpoints,
    pub(crate) client_id: &'a str,
    /// The configured scopes plus `openid offline_access`.
    pub(crate) scope: &'a str,
    pub(crate) token_args: &'a [(String, String)],
    pub(crate) prompt: &'a dyn LoginPrompt,
}

/// A [`TokenSource`] for the device code and browser logins, with the refresh token kept in
/// the token cache file.
pub struct InteractiveLogin {
    flow: Flow,
    configured: InteractiveEndpoints,
    http: reqwest::Client,
    endpoints: tokio::sync::OnceCell<Endpoints>,
    client_id: String,
    scopes: Vec<String>,
    token_args: Vec<(String, String)>,
    cache: TokenCacheFile,
    key: String,
    refresh_margin: Duration,
    options: LoginOptions,
}

/// The keys `device-code` and `browser` share: the near twins [`DeviceCodeConfig`] and
/// [`BrowserConfig`] differ only in their flow's own settings.
struct LoginSettings<'a> {
    endpoints: InteractiveEndpoints,
    client_id: &'a str,
    scopes: &'a [String],
    token_args: &'a BTreeMap<String, String>,
    token_cache: Option<&'a Path>,
    refresh_margin: Duration,
}

impl<'a> From<&'a DeviceCodeConfig> for LoginSettings<'a> {
    fn from(config: &'a DeviceCodeConfig) -> Self {
        Self {
            endpoints: config.endpoints(),
            client_id: &config.client_id,
            scopes: &config.scopes.0,
            token_args: &config.token_args,
            token_cache: config.token_cache.as_deref(),
            refresh_margin: config.refresh_margin.get(),
        }
    }
}

impl<'a> From<&'a BrowserConfig> for LoginSettings<'a> {
    fn from(config: &'a BrowserConfig) -> Self {
        Self {
            endpoints: config.endpoints(),
            client_id: &config.client_id,
            scopes: &config.scopes.0,
            token_args: &config.token_args,
            token_cache: config.token_cache.as_deref(),
            refresh_margin: config.refresh_margin.get(),
        }
    }
}

impl InteractiveLogin {
    /// The device code login (`type: device-code`).
    pub fn device_code(
        config: &DeviceCodeConfig,
        http: reqwest::Client,
        options: LoginOptions,
    ) -> Result<Self, Error> {
        let flow = Flow::DeviceCode(DeviceCode::new());
        Self::new(flow, config.into(), http, options)
    }

    /// The browser login (`type: browser`).
    pub fn browser(
        config: &BrowserConfig,
        http: reqwest::Client,
        options: LoginOptions,
    ) -> Result<Self, Error> {
        let flow = Flow::Browser(Browser::new(config.redirect_port));
        Self::new(flow, config.into(), http, options)
    }

    fn new(
        flow: Flow,
        settings: LoginSettings<'_>,
        http: reqwest::Client,
        options: LoginOptions,
    ) -> Result<Self, Error> {
        let LoginSettings {
            endpoints: configured,
            client_id,
            scopes,
            token_args,
            token_cache,
            refresh_margin,
        } = settings;
        if client_id.trim().is_empty() {
            return Err(Error::Misconfigured("auth.client-id is empty".into()));
        }
        let authority = configured
            .authority_url
            .clone()
            .or_else(|| configured.token_url.clone())
            .ok_or_else(|| {
                Error::Misconfigured("give auth.authority-url or auth.token-url".into())
            })?;
        // Check the URLs now, so a bad one fails at startup rather than at the first login.
        for url in [
            &configured.authority_url,
            &configured.token_url,
            &configured.login_url,
        ]
        .into_iter()
        .flatten()
        {
            TokenEndpoint::new(url, http.clone())?;
        }
        let cache = TokenCacheFile::configured(token_cache)?;
        Ok(Self {
            flow,
            configured,
            http,
            endpoints: tokio::sync::OnceCell::new(),
            client_id: client_id.to_string(),
            scopes: scopes.to_vec(),
            token_args: token_args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            key: TokenCacheFile::key(&authority, client_id, scopes),
            cache,
            refresh_margin,
            options,
        })
    }

    /// The token cache file in use.
    pub fn cache_file(&self) -> &TokenCacheFile {
        &self.cache
    }

    /// Signs in now, whatever the cache holds, and stores the result (`tapline login`).
    pub async fn login(&self) -> Result<FetchedToken, Error> {
        let endpoints = self.endpoints().await?;
        let scope = refresh_token::login_scope(&self.scopes);
        let request = LoginRequest {
            endpoints,
            client_id: &self.client_id,
            scope: &scope,
            token_args: &self.token_args,
            prompt: self.options.prompt.as_ref(),
        };
        let response = match &self.flow {
            Flow::DeviceCode(flow) => flow.login(&request).await?,
            Flow::Browser(flow) => flow.login(&request).await?,
        };
        if response.refresh_token.is_none() {
            tracing::warn!(
                "the identity provider issued no refresh token; the next expiry needs a new login"
            );
        }
        self.remember(response, None)
    }

    /// Signs in now and returns the token cache file that holds the result (`tapline login`).
    pub async fn login_to_cache(&self) -> Result<PathBuf, Error> {
        self.login().await?;
        Ok(self.cache.path().to_path_buf())
    }

    async fn endpoints(&self) -> Result<&Endpoints, Error> {
        let kind = match self.flow {
            Flow::DeviceCode(_) => LoginEndpoint::DeviceAuthorization,
            Flow::Browser(_) => LoginEndpoint::Authorization,
        };
        self.endpoints
            .get_or_try_init(|| resolve(&self.configured, kind, &self.http))
            .await
    }

    /// Stores a token response in the cache file (keeping `previous_refresh` when the endpoint
    /// did not rotate it) and returns the access token.
    fn remember(
        &self,
        response: TokenResponse,
        previous_refresh: Option<SecretString>,
    ) -> Result<FetchedToken, Error> {
        let now = crate::auth::token::now();
        let expires_on = response
            .token
            .expires_at
            .map(|at| epoch_now() + at.saturating_duration_since(now).as_secs());
        let entry = CachedLogin {
            access_token: Some(response.token.value.clone()),
            expires_on,
            refresh_token: response.refresh_token.or(previous_refresh),
        };
        self.cache.store(&self.key, Some(&entry))?;
        Ok(response.token)
    }

    /// The cached access token, when it has more than the refresh margin left.
    fn cached_access_token(&self, entry: &CachedLogin) -> Option<FetchedToken> {
        let token = entry.access_token.clone()?;
        let expires_on = entry.expires_on?;
        let left = expires_on.saturating_sub(epoch_now());
        (left > self.refresh_margin.as_secs()).then(|| FetchedToken {
            value: token,
            expires_at: Some(crate::auth::token::now() + Duration::from_secs(left)),
        })
    }
}

#[async_trait::async_trait]
impl TokenSource for InteractiveLogin {
    async fn fetch(&self) -> Result<FetchedToken, Error> {
        // A second round only when another process rotated the refresh token under us.
        for _ in 0..3 {
            let Some(entry) = self.cache.load(&self.key)? else {
                break;
            };
            if let Some(token) = self.cached_access_token(&entry) {
                tracing::debug!(path = %self.cache.path().display(), "using the access token from the token cache file");
                return Ok(token);
            }
            let Some(refresh) = entry.refresh_token else {
                break;
            };
            let endpoints = self.endpoints().await?;
            let scope = refresh_token::refresh_scope(&self.scopes);
            match refresh_token::redeem(
                &endpoints.token,
                &self.client_id,
                &refresh,
                &scope,
                &self.token_args,
            )
            .await
            {
                Ok(response) => {
                    tracing::debug!("token refreshed with the refresh token");
                    return self.remember(response, Some(refresh));
                }
                Err(Error::TokenRejected { error, .. })
                    if refresh_token::needs_new_login(&error) =>
                {
                    if self.cache.forget_refresh_token(&self.key, &refresh)? {
                        tracing::warn!(error = %error, "the identity provider rejected the refresh token; it is dropped from the token cache file");
                        break;
                    }
                    tracing::debug!("another process replaced the refresh token; trying theirs");
                }
                Err(other) => return Err(other),
            }
        }
        if !self.options.allow_login {
            return Err(Error::LoginRequired(format!(
                "no usable refresh token for client {} in {}, and no terminal to sign in at; run `tapline login -c <config>` once",
                self.client_id,
                self.cache.path().display()
            )));
        }
        self.login().await
    }
}

impl fmt::Debug for InteractiveLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InteractiveLogin")
            .field("flow", &self.flow)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("cache", &self.cache)
            .field("allow_login", &self.options.allow_login)
            .finish_non_exhaustive()
    }
}
