//! A minimal client-credentials [`TokenSource`] against the test identity provider, so the
//! session tests run against real tokens before the real client-secret provider lands. It is
//! deliberately plain: POST the form, read `access_token` and `expires_in`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tapline::auth::{Credentials, Error, FetchedToken, TokenSource};

use super::idp::{idp, Client};

/// Fetches client-credentials tokens for one registered client.
#[derive(Debug)]
pub struct IdpSource {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: SecretString,
}

impl IdpSource {
    /// A source for `client` at the provider's token endpoint.
    pub fn new(client: &Client) -> Self {
        Self {
            http: reqwest::Client::new(),
            token_url: idp().token_url(),
            client_id: client.id.clone(),
            client_secret: SecretString::from(client.secret.clone()),
        }
    }

    /// Credentials (a token cache) over a new source for `client`.
    pub fn credentials(client: &Client) -> Credentials {
        Credentials::from_source(Arc::new(Self::new(client)))
    }
}

#[async_trait::async_trait]
impl TokenSource for IdpSource {
    async fn fetch(&self) -> Result<FetchedToken, Error> {
        let failed = |what: String| Error::Misconfigured(format!("test token request: {what}"));
        let response = self
            .http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose_secret()),
            ])
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!("{status}: {}", body["error"])));
        }
        let value = body["access_token"]
            .as_str()
            .ok_or_else(|| failed("no access_token".into()))?;
        let expires_in = body["expires_in"]
            .as_u64()
            .ok_or_else(|| failed("no expires_in".into()))?;
        Ok(FetchedToken {
            value: SecretString::from(value.to_string()),
            expires_at: Some(Instant::now() + Duration::from_secs(expires_in)),
        })
    }
}
