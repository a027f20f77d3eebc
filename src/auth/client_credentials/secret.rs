//! `type: client-secret`: the client proves itself with a client secret, in the form
//! (`client-auth: body`, the default, client_secret_post) or as HTTP Basic (`client-auth: basic`,
//! client_secret_basic).

use std::fmt;

use secrecy::SecretString;

use crate::config::{ClientAuth, ClientSecretConfig, SecretSource};

use super::{ClientCredentials, ClientProof, Proof};
use crate::auth::Error;

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
