//! The `auth:` block: which credential provider the process uses, chosen by `type`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::duration::Duration;
use super::secret::SecretSource;

/// How tapline obtains the bearer token that every task's requests carry.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AuthConfig {
    /// OAuth 2.0 client credentials grant with a client secret.
    ClientSecret(ClientSecretConfig),
    /// OAuth 2.0 client credentials with a signed certificate assertion (private_key_jwt).
    Certificate(CertificateConfig),
    /// Kognic API credentials (a kognic-auth credentials file or environment variables).
    Kognic(KognicConfig),
    /// A token obtained elsewhere, given inline or in a file.
    Token(TokenConfig),
    /// OAuth 2.0 device authorization grant (RFC 8628): a person signs in on another device;
    /// the refresh token is kept in the token cache file.
    DeviceCode(DeviceCodeConfig),
    /// OAuth 2.0 authorization code grant with PKCE in the user's browser, redirected to a
    /// local listener; the refresh token is kept in the token cache file.
    Browser(BrowserConfig),
    /// Kubernetes workload identity (Azure): client credentials with the projected
    /// service-account token as client assertion; no stored secret.
    WorkloadIdentity(WorkloadIdentityConfig),
    /// No authentication: requests carry no Authorization header.
    None,
}

impl AuthConfig {
    /// The `type` name as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::ClientSecret(_) => "client-secret",
            Self::Certificate(_) => "certificate",
            Self::Kognic(_) => "kognic",
            Self::Token(_) => "token",
            Self::DeviceCode(_) => "device-code",
            Self::Browser(_) => "browser",
            Self::WorkloadIdentity(_) => "workload-identity",
            Self::None => "none",
        }
    }
}

/// `type: client-secret`.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ClientSecretConfig {
    /// The token endpoint. Give this, or `tenant` for Microsoft Entra ID.
    pub token_url: Option<String>,
    /// Entra ID tenant: token URL `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub tenant: Option<String>,
    /// Cognite cluster: default scope `https://{cluster}.cognitedata.com/.default`.
    pub cluster: Option<String>,
    /// The OAuth client id.
    pub client_id: String,
    /// The client secret. Prefer `client-secret-file` or `${VAR}`.
    #[schemars(with = "Option<String>")]
    pub client_secret: Option<SecretString>,
    /// A file holding the client secret, re-read at every token refresh.
    pub client_secret_file: Option<PathBuf>,
    /// Scopes: a list, or one space-separated string.
    #[serde(default)]
    pub scopes: Scopes,
    /// Extra form fields sent with every token request (audience, resource, ...).
    #[serde(default)]
    pub token_args: BTreeMap<String, String>,
    /// How the client authenticates to the token endpoint.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: Duration,
}

impl ClientSecretConfig {
    /// The client secret's source.
    pub fn client_secret(&self) -> Option<SecretSource> {
        SecretSource::from_pair(
            self.client_secret.as_ref(),
            self.client_secret_file.as_deref(),
        )
    }

    /// The token URL, from `token-url` or the Entra ID `tenant` shortcut.
    pub fn resolved_token_url(&self) -> Option<String> {
        self.token_url.clone().or_else(|| {
            self.tenant.as_ref().map(|tenant| {
                format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token")
            })
        })
    }

    /// The scopes, defaulting to the Cognite cluster's `.default` scope when `cluster` is set.
    pub fn resolved_scopes(&self) -> Scopes {
        match (&self.cluster, self.scopes.is_empty()) {
            (Some(cluster), true) => {
                Scopes(vec![format!("https://{cluster}.cognitedata.com/.default")])
            }
            _ => self.scopes.clone(),
        }
    }
}

impl fmt::Debug for ClientSecretConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretConfig")
            .field(
                "token_url",
                &self.token_url.as_deref().map(crate::redact::url),
            )
            .field("tenant", &self.tenant)
            .field("cluster", &self.cluster)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret())
            .field("scopes", &self.scopes)
            .field("token_args", &self.token_args)
            .field("client_auth", &self.client_auth)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

/// Where the client id and secret go in the token request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` form fields (client_secret_post).
    #[default]
    Body,
    /// HTTP Basic authentication (client_secret_basic).
    Basic,
}

/// `type: certificate`: a private_key_jwt client assertion, as Microsoft Entra ID expects it.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CertificateConfig {
    /// The OAuth client id.
    pub client_id: String,
    /// Authority; the token URL is this plus `/oauth2/v2.0/token`. Or give `token-url`.
    pub authority_url: Option<String>,
    /// The token endpoint, instead of `authority-url`.
    pub token_url: Option<String>,
    /// PEM with certificate and private key, or a .pfx/.p12 file.
    pub certificate: PathBuf,
    /// The private key in its own PEM file, when it is not in `certificate`.
    pub private_key: Option<PathBuf>,
    /// Password for a PKCS#12 file or an encrypted key.
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
    /// Scopes: a list, or one space-separated string.
    #[serde(default)]
    pub scopes: Scopes,
    /// Extra form fields sent with every token request.
    #[serde(default)]
    pub token_args: BTreeMap<String, String>,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: Duration,
}

impl CertificateConfig {
    /// The password's source, if any.
    pub fn password(&self) -> Option<SecretSource> {
        SecretSource::from_pair(self.password.as_ref(), self.password_file.as_deref())
    }

    /// The token URL, from `token-url` or `authority-url`.
    pub fn resolved_token_url(&self) -> Option<String> {
        self.token_url.clone().or_else(|| {
            self.authority_url
                .as_ref()
                .map(|authority| format!("{}/oauth2/v2.0/token", authority.trim_end_matches('/')))
        })
    }
}

impl fmt::Debug for CertificateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateConfig")
            .field("client_id", &self.client_id)
            .field(
                "authority_url",
                &self.authority_url.as_deref().map(crate::redact::url),
            )
            .field(
                "token_url",
                &self.token_url.as_deref().map(crate::redact::url),
            )
            .field("certificate", &self.certificate)
            .field("private_key", &self.private_key)
            .field("password", &self.password())
            .field("scopes", &self.scopes)
            .field("token_args", &self.token_args)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

/// `type: kognic`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KognicConfig {
    /// A kognic-auth credentials JSON file; else `$KOGNIC_CREDENTIALS`, else
    /// `$KOGNIC_CLIENT_ID` + `$KOGNIC_CLIENT_SECRET`. `~` is expanded.
    pub credentials: Option<PathBuf>,
    /// The Kognic auth server; the token URL is this plus `/v1/auth/oauth/token`.
    #[serde(default = "default_kognic_server")]
    pub server: String,
    /// Scopes; when empty, those in the credentials file are used.
    #[serde(default)]
    pub scopes: Scopes,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: Duration,
}

/// `type: token`.
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

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("token", &self.token())
            .finish()
    }
}

/// `type: device-code`: a person signs in once on any device with a browser; tapline keeps the
/// refresh token in the token cache file and refreshes silently from then on.
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
    pub refresh_margin: Duration,
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

/// `type: browser`: authorization code with PKCE in the user's browser.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BrowserConfig {
    /// The authority, e.g. `https://login.microsoftonline.com/<tenant>` (Entra ID endpoints are
    /// derived from it) or an OIDC issuer (endpoints found by discovery). Or give `token-url`.
    pub authority_url: Option<String>,
    /// The token endpoint, instead of `authority-url`; needs `authorization-url`.
    pub token_url: Option<String>,
    /// The authorization endpoint, with `token-url`.
    pub authorization_url: Option<String>,
    /// The OAuth client id (a public client registered with redirect URI `http://localhost`).
    pub client_id: String,
    /// Scopes: a list, or one space-separated string. `openid` and `offline_access` are added to
    /// the login request so that a refresh token is issued.
    #[serde(default)]
    pub scopes: Scopes,
    /// Extra form fields sent with the token requests (audience, resource, ...).
    #[serde(default)]
    pub token_args: BTreeMap<String, String>,
    /// The local port of the redirect listener, `http://localhost:<port>`.
    #[serde(default = "default_redirect_port")]
    pub redirect_port: u16,
    /// Try to open the system browser; the URL is printed on stderr either way.
    #[serde(default = "default_true")]
    pub open_browser: bool,
    /// The token cache file (mode 0600); default `$XDG_CACHE_HOME/tapline/tokens.json`, else
    /// `~/.cache/tapline/tokens.json`.
    pub token_cache: Option<PathBuf>,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: Duration,
}

impl BrowserConfig {
    /// The configured endpoints.
    pub fn endpoints(&self) -> InteractiveEndpoints {
        InteractiveEndpoints {
            authority_url: self.authority_url.clone(),
            token_url: self.token_url.clone(),
            login_url: self.authorization_url.clone(),
        }
    }
}

/// The endpoints of an interactive login as configured: an authority, or a token URL plus the
/// flow's own endpoint (device authorization or authorization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractiveEndpoints {
    /// `authority-url`.
    pub authority_url: Option<String>,
    /// `token-url`.
    pub token_url: Option<String>,
    /// `device-authorization-url` or `authorization-url`.
    pub login_url: Option<String>,
}

/// `type: workload-identity`: Azure workload identity on Kubernetes. The defaults are the
/// variables the workload identity webhook sets in the pod.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WorkloadIdentityConfig {
    /// The client id of the app registration or managed identity; default `$AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// The Entra ID tenant; default `$AZURE_TENANT_ID`. Token URL
    /// `<authority host>/<tenant>/oauth2/v2.0/token`.
    pub tenant: Option<String>,
    /// The authority, instead of `tenant`; the token URL is this plus `/oauth2/v2.0/token`.
    pub authority_url: Option<String>,
    /// The token endpoint, instead of `tenant` or `authority-url`.
    pub token_url: Option<String>,
    /// The projected service-account token, sent as the client assertion and read again for
    /// every token request (the kubelet rotates it); default `$AZURE_FEDERATED_TOKEN_FILE`.
    pub token_file: Option<PathBuf>,
    /// Scopes: a list, or one space-separated string.
    #[serde(default)]
    pub scopes: Scopes,
    /// Extra form fields sent with every token request.
    #[serde(default)]
    pub token_args: BTreeMap<String, String>,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: Duration,
}

/// OAuth scopes, written as a list or as one space-separated string.
#[derive(Debug, Clone, Default, PartialEq, Eq, JsonSchema)]
#[schemars(with = "ScopesSchema")]
pub struct Scopes(pub Vec<String>);

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ScopesSchema {
    Joined(String),
    List(Vec<String>),
}

impl Scopes {
    /// True when no scope is given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The scopes joined with spaces, as the `scope` form field wants them.
    pub fn joined(&self) -> String {
        self.0.join(" ")
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Joined(String),
            List(Vec<String>),
        }
        let list = match Either::deserialize(deserializer)? {
            Either::Joined(text) => text.split_whitespace().map(str::to_owned).collect(),
            Either::List(list) => list,
        };
        Ok(Self(list))
    }
}

fn default_refresh_margin() -> Duration {
    Duration::from_secs(30)
}

fn default_redirect_port() -> u16 {
    53000
}

fn default_true() -> bool {
    true
}

fn default_kognic_server() -> String {
    "https://auth.app.kognic.com".to_string()
}
