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

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use crate::config::{BrowserConfig, DeviceCodeConfig, InteractiveEndpoints};
use crate::redact;

use super::browser::Browser;
use super::device_code::DeviceCode;
use super::refresh_token;
use super::token_cache_file::{epoch_now, CachedLogin, TokenCacheFile};
use super::token_endpoint::{TokenEndpoint, TokenResponse};
use super::{Error, FetchedToken, TokenSource};

/// How a login talks to the person signing in.
pub trait LoginPrompt: Send + Sync + fmt::Debug {
    /// Device code: tell the person where to go and which code to enter.
    fn device_code(&self, verification_uri: &str, user_code: &str, complete_uri: Option<&str>);
    /// Browser: send the person's browser to `url` (the authorization request).
    fn open_browser(&self, url: &str);
}

/// The prompt of the command line: messages on stderr (stdout may carry a token), and the
/// system browser opened when asked for.
#[derive(Debug, Clone, Copy)]
pub struct TerminalPrompt {
    /// Try to open the system browser for the browser login.
    pub open_browser: bool,
}

impl LoginPrompt for TerminalPrompt {
    fn device_code(&self, verification_uri: &str, user_code: &str, complete_uri: Option<&str>) {
        eprintln!("To sign in, open {verification_uri} and enter the code {user_code}");
        if let Some(complete) = complete_uri {
            eprintln!("(or open {complete})");
        }
    }

    fn open_browser(&self, url: &str) {
        eprintln!("To sign in, open this URL in your browser:\n{url}");
        if self.open_browser && !launch_browser(url) {
            eprintln!("(could not open a browser; open the URL above yourself)");
        }
    }
}

/// Starts the system's URL opener; false when there is none.
fn launch_browser(url: &str) -> bool {
    let opener: &[&str] = if cfg!(target_os = "macos") {
        &["open"]
    } else if cfg!(windows) {
        &["cmd", "/C", "start", ""]
    } else {
        &["xdg-open"]
    };
    std::process::Command::new(opener[0])
        .args(&opener[1..])
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Who answers a login, and whether one may be started at all.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    /// Tells the person what to do.
    pub prompt: Arc<dyn LoginPrompt>,
    /// A new login may be started when no refresh token works. Off, a missing or rejected
    /// refresh token is an [`Error::LoginRequired`].
    pub allow_login: bool,
}

impl LoginOptions {
    /// The command line's options: a [`TerminalPrompt`], and logins only when stdin and stderr
    /// are terminals (a person is there to answer).
    pub fn terminal(open_browser: bool) -> Self {
        Self {
            prompt: Arc::new(TerminalPrompt { open_browser }),
            allow_login: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        }
    }
}

/// Which interactive flow signs the person in.
#[derive(Debug)]
enum Flow {
    DeviceCode(DeviceCode),
    Browser(Browser),
}

/// The endpoints a login uses, once resolved.
pub(crate) struct Endpoints {
    /// The token endpoint.
    pub(crate) token: TokenEndpoint,
    /// The device authorization endpoint or the authorization endpoint.
    pub(crate) login: url::Url,
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

impl InteractiveLogin {
    /// The device code login (`type: device-code`).
    pub fn device_code(
        config: &DeviceCodeConfig,
        http: reqwest::Client,
        options: LoginOptions,
    ) -> Result<Self, Error> {
        Self::new(
            Flow::DeviceCode(DeviceCode::new()),
            config.endpoints(),
            http,
            &config.client_id,
            &config.scopes.0,
            &config.token_args,
            config.token_cache.as_deref(),
            config.refresh_margin.get(),
            options,
        )
    }

    /// The browser login (`type: browser`).
    pub fn browser(
        config: &BrowserConfig,
        http: reqwest::Client,
        options: LoginOptions,
    ) -> Result<Self, Error> {
        Self::new(
            Flow::Browser(Browser::new(config.redirect_port)),
            config.endpoints(),
            http,
            &config.client_id,
            &config.scopes.0,
            &config.token_args,
            config.token_cache.as_deref(),
            config.refresh_margin.get(),
            options,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        flow: Flow,
        configured: InteractiveEndpoints,
        http: reqwest::Client,
        client_id: &str,
        scopes: &[String],
        token_args: &std::collections::BTreeMap<String, String>,
        token_cache: Option<&std::path::Path>,
        refresh_margin: Duration,
        options: LoginOptions,
    ) -> Result<Self, Error> {
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
        let now = super::token::now();
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
            expires_at: Some(super::token::now() + Duration::from_secs(left)),
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

/// Which endpoint besides the token endpoint a flow needs.
#[derive(Clone, Copy)]
enum LoginEndpoint {
    DeviceAuthorization,
    Authorization,
}

impl LoginEndpoint {
    fn discovery_field(self) -> &'static str {
        match self {
            Self::DeviceAuthorization => "device_authorization_endpoint",
            Self::Authorization => "authorization_endpoint",
        }
    }

    fn entra_path(self) -> &'static str {
        match self {
            Self::DeviceAuthorization => "oauth2/v2.0/devicecode",
            Self::Authorization => "oauth2/v2.0/authorize",
        }
    }
}

/// Explicit URLs win; an Entra ID authority gets its well-known v2.0 paths; any other authority
/// is an OIDC issuer whose discovery document names the endpoints.
async fn resolve(
    configured: &InteractiveEndpoints,
    kind: LoginEndpoint,
    http: &reqwest::Client,
) -> Result<Endpoints, Error> {
    let checked = |url: &str| {
        crate::config::check_token_url(url).map_err(|reason| Error::TokenUrl {
            url: redact::url(url),
            reason,
        })
    };
    if let (Some(token), Some(login)) = (&configured.token_url, &configured.login_url) {
        return Ok(Endpoints {
            token: TokenEndpoint::new(token, http.clone())?,
            login: checked(login)?,
        });
    }
    let authority = configured
        .authority_url
        .as_deref()
        .ok_or_else(|| Error::Misconfigured("give auth.authority-url or auth.token-url".into()))?
        .trim_end_matches('/');
    let (token, login) = if is_entra(authority) {
        (
            format!("{authority}/oauth2/v2.0/token"),
            format!("{authority}/{}", kind.entra_path()),
        )
    } else {
        discover(authority, kind, http).await?
    };
    let token = configured.token_url.clone().unwrap_or(token);
    let login = configured.login_url.clone().unwrap_or(login);
    Ok(Endpoints {
        token: TokenEndpoint::new(&token, http.clone())?,
        login: checked(&login)?,
    })
}

fn is_entra(authority: &str) -> bool {
    url::Url::parse(authority)
        .ok()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|host| {
            host.starts_with("login.microsoftonline.")
                || host == "login.chinacloudapi.cn"
                || host == "login.partner.microsoftonline.cn"
        })
}

/// OIDC discovery: `<issuer>/.well-known/openid-configuration`.
async fn discover(
    issuer: &str,
    kind: LoginEndpoint,
    http: &reqwest::Client,
) -> Result<(String, String), Error> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    crate::config::check_token_url(&url).map_err(|reason| Error::TokenUrl {
        url: redact::url(&url),
        reason,
    })?;
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|source| Error::Unreachable {
            url: redact::url(&url),
            source: source.without_url(),
        })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(Error::TokenEndpointStatus {
            url: redact::url(&url),
            status,
            retry_after: None,
        });
    }
    let document: Value = response
        .json()
        .await
        .map_err(|_| Error::MalformedResponse {
            url: redact::url(&url),
            problem: "the discovery document is not JSON",
        })?;
    let field = |name: &'static str, problem: &'static str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(Error::MalformedResponse {
                url: redact::url(&url),
                problem,
            })
    };
    let token = field(
        "token_endpoint",
        "the discovery document names no token_endpoint",
    )?;
    let login = field(
        kind.discovery_field(),
        match kind {
            LoginEndpoint::DeviceAuthorization => {
                "the discovery document names no device_authorization_endpoint; give device-authorization-url"
            }
            LoginEndpoint::Authorization => {
                "the discovery document names no authorization_endpoint; give authorization-url"
            }
        },
    )?;
    Ok((token, login))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_authorities_are_recognised() {
        assert!(is_entra("https://login.microsoftonline.com/tenant"));
        assert!(is_entra("https://login.microsoftonline.us/tenant"));
        assert!(!is_entra("https://idp.example.com/realms/x"));
    }

    #[tokio::test]
    async fn entra_endpoints_need_no_discovery() {
        let configured = InteractiveEndpoints {
            authority_url: Some("https://login.microsoftonline.com/t1/".into()),
            token_url: None,
            login_url: None,
        };
        let endpoints = resolve(
            &configured,
            LoginEndpoint::DeviceAuthorization,
            &reqwest::Client::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            endpoints.token.url(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(
            endpoints.login.as_str(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/devicecode"
        );
    }
}
