//! `type: client-secret`: the OAuth 2.0 client credentials grant with a client secret.

use std::fmt;

use crate::config::{ClientAuth, ClientSecretConfig, SecretSource};

use super::token_endpoint::{
    client_credentials_form, ClientAuthentication, FormValue, TokenEndpoint,
};
use super::{Error, FetchedToken, TokenSource};

/// Fetches tokens with a client id and secret, sent in the form (`client-auth: body`, the
/// default) or as HTTP Basic (`client-auth: basic`).
pub struct ClientSecret {
    endpoint: TokenEndpoint,
    client_id: String,
    /// Read at every fetch, so a rotated `client-secret-file` is picked up.
    secret: SecretSource,
    client_auth: ClientAuth,
    scope: String,
    token_args: Vec<(String, String)>,
}

impl ClientSecret {
    /// Checks the config (token URL, id, secret) and keeps `http` for token requests.
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
        Ok(Self {
            endpoint: TokenEndpoint::new(&url, http)?,
            client_id: config.client_id.clone(),
            secret,
            client_auth: config.client_auth,
            scope: config.resolved_scopes().joined(),
            token_args: config
                .token_args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

#[async_trait::async_trait]
impl TokenSource for ClientSecret {
    async fn fetch(&self) -> Result<FetchedToken, Error> {
        let secret = self.secret.read()?;
        let mut form = client_credentials_form(&self.scope, &self.token_args);
        let auth = match self.client_auth {
            ClientAuth::Body => {
                form.push(("client_id", FormValue::Plain(&self.client_id)));
                form.push(("client_secret", FormValue::Secret(&secret)));
                ClientAuthentication::InForm
            }
            ClientAuth::Basic => ClientAuthentication::Basic {
                id: &self.client_id,
                secret: &secret,
            },
        };
        self.endpoint.request(&form, auth).await
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecret")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("secret", &self.secret)
            .field("client_auth", &self.client_auth)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_and_http_urls_are_refused() {
        let yaml =
            "token-url: https://idp.test/token\nclient-id: me\nclient-secret: hunter2-secret\n";
        let config: ClientSecretConfig = serde_yaml::from_str(yaml).unwrap();
        let source = ClientSecret::new(&config, reqwest::Client::new()).unwrap();
        assert!(!format!("{source:?}").contains("hunter2"));

        let yaml = "token-url: http://idp.example.com/token\nclient-id: me\nclient-secret: s\n";
        let config: ClientSecretConfig = serde_yaml::from_str(yaml).unwrap();
        let error = ClientSecret::new(&config, reqwest::Client::new()).unwrap_err();
        assert!(matches!(error, Error::TokenUrl { .. }), "{error}");
    }
}
