//! `type: device-code`: the OAuth 2.0 device authorization grant (RFC 8628).
//!
//! Why: a person at a terminal, in a notebook or over SSH signs in on any device with a browser;
//! tapline only prints a URL and a short code. The flow: POST the device authorization endpoint,
//! show `verification_uri` and `user_code` on stderr, then poll the token endpoint every
//! `interval` seconds (5 when the server names none), waiting on `authorization_pending`, adding
//! 5 s to the interval on every `slow_down` (RFC 8628 section 3.5), and stopping on
//! `expired_token`, `access_denied` or when the device code's own lifetime is over. The refresh
//! token that comes back is kept by [`super::InteractiveLogin`].
//!
//! The provider's config ([`DeviceCodeConfig`]), its rules ([`build`]) and its credentials
//! ([`DeviceCodeProvider`]) are here too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::discovery::InteractiveEndpoints;
use super::interactive_login::{InteractiveLogin, LoginRequest};
use super::prompt::LoginOptions;
use crate::auth::provider::default_refresh_margin;
use crate::auth::token_endpoint::{post_form, ClientAuthentication, FormValue, TokenResponse};
use crate::auth::{http_client, Credentials, Error, Provider, Scopes};
use crate::config::{check, BuildError, SessionConfig};
use crate::redact;

/// `type: device-code`: the OAuth 2.0 device authorization grant (RFC 8628). A person signs in
/// once on any device with a browser; tapline keeps the refresh token in the token cache file
/// and refreshes silently from then on.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeviceCodeConfig {
    /// The authority, e.g. `https://login.microsoftonline.com/<tenant>` (Entra ID endpoints are
    /// derived from it) or an OIDC issuer (endpoints found by discovery). Or give `token-url`.
    pub authority_url: Option<String>,
    /// The token endpoint, instead of `authority-url`; needs `device-authorization-url`.
    pub token_url: Option<String>,
    /// The device authorization endpoint (RFC 8628), with `token-url`.
    pub device_authorization_url: Option<String>,
    /// The OAuth client id (a public client: no secret).
    pub client_id: String,
    /// Scopes: a list, or one space-separated string. `openid` and `offline_access` are added to
    /// the login request so that a refresh token is issued.
    #[serde(default)]
    pub scopes: Scopes,
    /// Extra form fields sent with the login and token requests (audience, resource, ...).
    #[serde(default)]
    pub token_args: BTreeMap<String, String>,
    /// The token cache file (mode 0600); default `$XDG_CACHE_HOME/tapline/tokens.json`, else
    /// `~/.cache/tapline/tokens.json`.
    pub token_cache: Option<PathBuf>,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: crate::config::HumanDuration,
}

impl DeviceCodeConfig {
    /// The configured endpoints.
    pub fn endpoints(&self) -> InteractiveEndpoints {
        InteractiveEndpoints {
            authority_url: self.authority_url.clone(),
            token_url: self.token_url.clone(),
            login_url: self.device_authorization_url.clone(),
        }
    }
}

/// A checked `device-code` block.
#[derive(Debug)]
pub struct DeviceCodeProvider {
    config: DeviceCodeConfig,
}

/// Checks a `device-code` block: a client id, and an authority or a token URL with a device
/// authorization URL, all https (or loopback).
pub fn build(config: DeviceCodeConfig) -> Result<DeviceCodeProvider, BuildError> {
    check::all([
        check::not_blank(&config.client_id, "client-id"),
        config.endpoints().check("device-authorization-url"),
    ])?;
    Ok(DeviceCodeProvider { config })
}

impl DeviceCodeProvider {
    fn source(
        &self,
        session: &SessionConfig,
        options: LoginOptions,
    ) -> Result<InteractiveLogin, Error> {
        InteractiveLogin::device_code(&self.config, http_client(session)?, options)
    }
}

/// A new login starts only when stdin and stderr are terminals; otherwise the refresh token
/// `tapline login` cached must do.
#[async_trait::async_trait]
impl Provider for DeviceCodeProvider {
    fn credentials(&self, session: &SessionConfig) -> Result<Credentials, Error> {
        let source = self.source(session, LoginOptions::terminal(false))?;
        Ok(Credentials::with_refresh_margin(
            source,
            self.config.refresh_margin.get(),
        ))
    }

    async fn login(&self, session: &SessionConfig) -> Result<PathBuf, Error> {
        self.source(session, LoginOptions::login_command(false))?
            .login_to_cache()
            .await
    }
}

/// The grant type of the polling token requests.
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628: the default polling interval, and what each `slow_down` adds to it.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// When the server gives no `expires_in` for the device code.
const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(900);

/// The device authorization grant.
#[derive(Debug, Default)]
pub(crate) struct DeviceCode;

/// The device authorization response. `verification_url` is the name Google and Entra ID's v1
/// endpoint use.
#[derive(Deserialize)]
struct Authorization {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: Option<u64>,
    interval: Option<u64>,
}

impl DeviceCode {
    pub(crate) fn new() -> Self {
        Self
    }

    /// Runs one device login to the end: a token response, or why not.
    pub(crate) async fn login(&self, request: &LoginRequest<'_>) -> Result<TokenResponse, Error> {
        let authorization = self.authorize(request).await?;
        request.prompt.device_code(
            &authorization.verification_uri,
            &authorization.user_code,
            authorization.verification_uri_complete.as_deref(),
        );
        let device_code = SecretString::from(authorization.device_code);
        let deadline = crate::auth::token::expiry(
            crate::auth::token::now(),
            authorization
                .expires_in
                .map_or(DEFAULT_CODE_LIFETIME, Duration::from_secs),
        );
        let mut interval = authorization
            .interval
            .filter(|seconds| *seconds > 0)
            .map_or(DEFAULT_INTERVAL, Duration::from_secs);
        loop {
            tokio::time::sleep(interval).await;
            if crate::auth::token::now() >= deadline {
                return Err(Error::LoginFailed(
                    "the device code expired before the sign-in was completed; run the login again"
                        .into(),
                ));
            }
            let mut form = vec![
                ("grant_type", FormValue::Plain(DEVICE_CODE_GRANT)),
                ("client_id", FormValue::Plain(request.client_id)),
                ("device_code", FormValue::Secret(&device_code)),
            ];
            for (name, value) in request.token_args {
                form.push((name, FormValue::Plain(value)));
            }
            let result = request
                .endpoints
                .token
                .request_grant(&form, ClientAuthentication::InForm)
                .await;
            match result {
                Ok(response) => return Ok(response),
                Err(Error::TokenRejected { error, .. }) if error == "authorization_pending" => {
                    tracing::debug!("device login pending");
                }
                Err(Error::TokenRejected { error, .. }) if error == "slow_down" => {
                    interval = interval.saturating_add(SLOW_DOWN_STEP);
                    tracing::debug!(
                        interval_secs = interval.as_secs(),
                        "the identity provider asked to poll more slowly"
                    );
                }
                Err(Error::TokenRejected { error, .. }) if error == "expired_token" => {
                    return Err(Error::LoginFailed(
                        "the device code expired before the sign-in was completed; run the login again".into(),
                    ));
                }
                Err(Error::TokenRejected {
                    error, description, ..
                }) if error == "access_denied" => {
                    return Err(Error::LoginFailed(format!(
                        "the sign-in was declined (access_denied{})",
                        description.map(|d| format!(": {d}")).unwrap_or_default()
                    )));
                }
                Err(error) if error.is_transient() => {
                    tracing::info!(error = %error, "polling the token endpoint failed; trying again at the next interval");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// POSTs the device authorization request.
    async fn authorize(&self, request: &LoginRequest<'_>) -> Result<Authorization, Error> {
        let url = &request.endpoints.login;
        let mut form = vec![("client_id", FormValue::Plain(request.client_id))];
        if !request.scope.is_empty() {
            form.push(("scope", FormValue::Plain(request.scope)));
        }
        for (name, value) in request.token_args {
            form.push((name, FormValue::Plain(value)));
        }
        tracing::debug!(url = %redact::url(url.as_str()), "starting a device login");
        let answer = post_form(
            request.endpoints.token.http(),
            url,
            &form,
            ClientAuthentication::InForm,
        )
        .await?;
        serde_json::from_slice(&answer.bytes).map_err(|_| Error::MalformedResponse {
            url: redact::url(url.as_str()),
            problem: "the device authorization response lacks device_code, user_code or verification_uri",
        })
    }
}
