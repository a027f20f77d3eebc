//! `type: client-secret`: the client proves itself with a client secret, in the form
//! (`client-auth: body`, the default, client_secret_post) or as HTTP Basic (`client-auth: basic`,
//! client_secret_basic).
//!
//! The provider's config ([`ClientSecretConfig`]), its rules ([`build`]) and its credentials
//! ([`ClientSecretProvider`]) are here; the proof is [`ClientSecret`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::provider::default_refresh_margin;
use crate::auth::{http_client, Credentials, Error, Provider, Scopes};
use crate::config::check::{self, Presence};
use crate::config::{BuildError, HumanDuration, SecretSource, SessionConfig};

use super::{ClientCredentials, ClientProof, Proof};

/// `type: client-secret`: the OAuth 2.0 client credentials grant with a client secret.
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
    pub refresh_margin: HumanDuration,
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

/// The secret is shown only as its source: a file's path, never an inline value.
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

/// A checked `client-secret` block: it builds the client credentials source.
#[derive(Debug)]
pub struct ClientSecretProvider {
    config: ClientSecretConfig,
}

/// Checks a `client-secret` block: a client id, a token URL (https, or http on loopback) or a
/// tenant, and a client secret or a readable secret file.
pub fn build(config: ClientSecretConfig) -> Result<ClientSecretProvider, BuildError> {
    check::all([
        check::not_blank(&config.client_id, "client-id"),
        token_endpoint(&config),
        check::secret_pair(
            config.client_secret.as_ref(),
            config.client_secret_file.as_deref(),
            "client-secret",
            Presence::Required,
        ),
    ])?;
    Ok(ClientSecretProvider { config })
}

/// Exactly one of `token-url` and `tenant`.
fn token_endpoint(config: &ClientSecretConfig) -> Result<(), BuildError> {
    match (&config.token_url, &config.tenant) {
        (Some(_), Some(_)) => Err(BuildError::at(
            "tenant",
            "give either token-url or tenant, not both",
        )),
        (None, None) => Err(BuildError::at(
            "token-url",
            "missing; give token-url, or tenant for Microsoft Entra ID",
        )),
        (Some(url), None) => check::token_url(url, "token-url"),
        (None, Some(tenant)) => check::not_blank(tenant, "tenant"),
    }
}

impl Provider for ClientSecretProvider {
    fn credentials(&self, session: &SessionConfig) -> Result<Credentials, Error> {
        let source = ClientCredentials::<ClientSecret>::new(&self.config, http_client(session)?)?;
        Ok(Credentials::with_refresh_margin(
            source,
            self.config.refresh_margin.get(),
        ))
    }
}

/// A client secret and where it goes in the token request.
pub struct ClientSecret {
    /// Read at every token request, so a rotated `client-secret-file` is picked up.
    secret: SecretSource,
    placement: ClientAuth,
}

impl ClientSecret {
    /// A secret sent in the form (client_secret_post), as Kognic wants it.
    pub(super) fn in_form(secret: SecretString) -> Self {
        Self {
            secret: SecretSource::Inline(secret),
            placement: ClientAuth::Body,
        }
    }
}

impl ClientCredentials<ClientSecret> {
    /// `type: client-secret`: checks the config (token URL, id, secret) and keeps `http` for
    /// token requests.
    pub fn new(config: &ClientSecretConfig, http: reqwest::Client) -> Result<Self, Error> {
        let url = config.resolved_token_url().ok_or_else(|| {
            Error::Misconfigured(
                "give auth.token-url, or auth.tenant for Microsoft Entra ID".into(),
            )
        })?;
        if config.client_id.trim().is_empty() {
            return Err(Error::Misconfigured("auth.client-id is empty".into()));
        }
        let secret = config.client_secret().ok_or_else(|| {
            Error::Misconfigured("give auth.client-secret or auth.client-secret-file".into())
        })?;
        let proof = ClientSecret {
            secret,
            placement: config.client_auth,
        };
        Self::from_parts(
            &url,
            config.client_id.clone(),
            &config.resolved_scopes().0,
            &config.token_args,
            proof,
            http,
        )
    }
}

#[async_trait::async_trait]
impl ClientProof for ClientSecret {
    async fn prove(&self, _client_id: &str, _token_url: &str) -> Result<Proof, Error> {
        let secret = self.secret.read()?;
        Ok(match self.placement {
            ClientAuth::Body => Proof::SecretInForm(secret),
            ClientAuth::Basic => Proof::SecretInBasic(secret),
        })
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `SecretSource`'s Debug shows a file's path and never an inline value.
        f.debug_struct("ClientSecret")
            .field("secret", &self.secret)
            .field("placement", &self.placement)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> ClientSecretConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn problems(yaml: &str) -> Vec<String> {
        let error = build(config(yaml)).unwrap_err();
        error
            .locate("auth")
            .into_iter()
            .map(|problem| format!("{}: {}", problem.path, problem.message))
            .collect()
    }

    #[test]
    fn build_reports_every_problem_of_the_block_at_once() {
        assert_eq!(
            problems("client-id: ' '\n"),
            [
                "auth.client-id: must not be empty",
                "auth.token-url: missing; give token-url, or tenant for Microsoft Entra ID",
                "auth.client-secret: missing; give client-secret (e.g. client-secret: ${VAR}) or client-secret-file",
            ]
        );
        assert_eq!(
            problems("client-id: c\ntoken-url: https://idp.test/token\ntenant: t\nclient-secret: s\nclient-secret-file: /s\n"),
            [
                "auth.tenant: give either token-url or tenant, not both",
                "auth.client-secret: give either client-secret or client-secret-file, not both",
            ]
        );
        assert!(build(config("client-id: c\ntenant: t\nclient-secret: s\n")).is_ok());
    }

    #[test]
    fn debug_of_the_config_and_the_provider_hides_the_secret() {
        let yaml =
            "token-url: https://idp.test/token\nclient-id: me\nclient-secret: hunter2-secret\n";
        let config = config(yaml);
        let debug = format!("{config:?} {:?}", build(config.clone()).unwrap());
        assert!(debug.contains("REDACTED"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn debug_never_shows_the_secret_and_http_urls_are_refused() {
        let yaml =
            "token-url: https://idp.test/token\nclient-id: me\nclient-secret: hunter2-secret\n";
        let config: ClientSecretConfig = serde_yaml::from_str(yaml).unwrap();
        let source = ClientCredentials::<ClientSecret>::new(&config, reqwest::Client::new());
        assert!(!format!("{:?}", source.unwrap()).contains("hunter2"));

        let yaml = "token-url: http://idp.example.com/token\nclient-id: me\nclient-secret: s\n";
        let config: ClientSecretConfig = serde_yaml::from_str(yaml).unwrap();
        let error =
            ClientCredentials::<ClientSecret>::new(&config, reqwest::Client::new()).unwrap_err();
        assert!(matches!(error, Error::TokenUrl { .. }), "{error}");
    }
}
