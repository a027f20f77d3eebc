//! `type: workload-identity`: Azure workload identity on Kubernetes, with no stored secret. The
//! client proves itself with a [`FederatedToken`]: a token file read as the client assertion.
//!
//! Why it exists: a long-running extractor in Kubernetes should not hold a client secret or a
//! certificate at all. The workload identity webhook projects a short-lived service-account token
//! into the pod and sets `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and
//! `AZURE_AUTHORITY_HOST`; Entra ID trusts that token (a federated credential) as the client
//! assertion of a client credentials grant.
//!
//! The file is read again for **every** token request: the kubelet rotates it, and reusing an
//! assertion read at startup is exactly the stale-assertion bug (AADSTS700024) other SDKs had.
//! An assertion that has already expired is reported before it is sent, with the file's path.
//!
//! The provider's config ([`WorkloadIdentityConfig`]), its rules ([`build`]) and its credentials
//! ([`WorkloadIdentityProvider`]) are here too.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::auth::provider::default_refresh_margin;
use crate::auth::{http_client, Credentials, Error, Provider, Scopes};
use crate::config::{check, BuildError, HumanDuration, SessionConfig};

use super::{ClientCredentials, ClientProof, Proof};

/// `type: workload-identity`: Azure workload identity on Kubernetes, client credentials with
/// the projected service-account token as client assertion; no stored secret. The defaults are
/// the variables the workload identity webhook sets in the pod.
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
    pub refresh_margin: HumanDuration,
}

/// A checked `workload-identity` block: it reads the webhook's variables when the credentials
/// are built.
#[derive(Debug)]
pub struct WorkloadIdentityProvider {
    config: WorkloadIdentityConfig,
}

/// Checks a `workload-identity` block: at most one of `tenant`, `authority-url` and
/// `token-url`, no blank client id or tenant, and https (or loopback) URLs. What the block
/// leaves out comes from the environment when the credentials are built.
pub fn build(config: WorkloadIdentityConfig) -> Result<WorkloadIdentityProvider, BuildError> {
    let given: Vec<&str> = [
        ("tenant", config.tenant.is_some()),
        ("authority-url", config.authority_url.is_some()),
        ("token-url", config.token_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    let one_endpoint = match given.as_slice() {
        [_, second, ..] => Err(BuildError::at(
            second,
            format!(
                "give only one of tenant, authority-url and token-url (found {})",
                given.join(", ")
            ),
        )),
        _ => Ok(()),
    };
    check::all([
        one_endpoint,
        if_given(&config.client_id, "client-id", check::not_blank),
        if_given(&config.tenant, "tenant", check::not_blank),
        if_given(&config.token_url, "token-url", check::token_url),
        if_given(&config.authority_url, "authority-url", check::token_url),
    ])?;
    Ok(WorkloadIdentityProvider { config })
}

/// `rule` applied to the value at `key`, when the block gives one.
fn if_given(
    value: &Option<String>,
    key: &str,
    rule: fn(&str, &str) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    value.as_deref().map_or(Ok(()), |value| rule(value, key))
}

impl Provider for WorkloadIdentityProvider {
    fn credentials(&self, session: &SessionConfig) -> Result<Credentials, Error> {
        let source = WorkloadIdentity::new(
            &self.config,
            &WorkloadIdentityEnv::from_process(),
            http_client(session)?,
        )?;
        Ok(Credentials::with_refresh_margin(
            source,
            self.config.refresh_margin.get(),
        ))
    }
}

/// `type: workload-identity`: the client credentials grant with a federated token.
pub type WorkloadIdentity = ClientCredentials<FederatedToken>;

/// Entra ID's public cloud, when `$AZURE_AUTHORITY_HOST` is not set.
const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";

/// The variables Azure's workload identity webhook sets in the pod, captured once so that
/// resolution is testable without touching the process environment.
#[derive(Debug, Clone, Default)]
pub struct WorkloadIdentityEnv {
    /// `$AZURE_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `$AZURE_TENANT_ID`.
    pub tenant_id: Option<String>,
    /// `$AZURE_FEDERATED_TOKEN_FILE`.
    pub federated_token_file: Option<PathBuf>,
    /// `$AZURE_AUTHORITY_HOST`, e.g. `https://login.microsoftonline.com/`.
    pub authority_host: Option<String>,
}

impl WorkloadIdentityEnv {
    /// Reads the variables from this process's environment; empty values count as unset.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            client_id: var("AZURE_CLIENT_ID"),
            tenant_id: var("AZURE_TENANT_ID"),
            federated_token_file: var("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from),
            authority_host: var("AZURE_AUTHORITY_HOST"),
        }
    }
}

/// A federated token (the projected service-account token) as the client assertion. The file is
/// not read when the source is built: it is read at every request.
#[derive(Debug)]
pub struct FederatedToken {
    token_file: PathBuf,
}

impl ClientCredentials<FederatedToken> {
    /// `type: workload-identity`: resolves the client id, token URL and token file from the
    /// config, falling back to `env`.
    pub fn new(
        config: &WorkloadIdentityConfig,
        env: &WorkloadIdentityEnv,
        http: reqwest::Client,
    ) -> Result<Self, Error> {
        let client_id = config
            .client_id
            .clone()
            .or_else(|| env.client_id.clone())
            .ok_or_else(|| {
                Error::Misconfigured(
                    "give auth.client-id, or set $AZURE_CLIENT_ID (the workload identity webhook sets it from the service account's azure.workload.identity/client-id annotation)".into(),
                )
            })?;
        let token_url = token_url(config, env)?;
        let token_file = config
            .token_file
            .clone()
            .or_else(|| env.federated_token_file.clone())
            .ok_or_else(|| {
                Error::Misconfigured(
                    "give auth.token-file, or set $AZURE_FEDERATED_TOKEN_FILE (the workload identity webhook sets it when the pod has the label azure.workload.identity/use: \"true\")".into(),
                )
            })?;
        Self::from_parts(
            &token_url,
            client_id,
            &config.scopes.0,
            &config.token_args,
            FederatedToken { token_file },
            http,
        )
    }
}

/// `token-url`, else `authority-url`, else the tenant (config or `$AZURE_TENANT_ID`) at the
/// authority host (`$AZURE_AUTHORITY_HOST` or Entra ID's public cloud).
fn token_url(config: &WorkloadIdentityConfig, env: &WorkloadIdentityEnv) -> Result<String, Error> {
    if let Some(url) = &config.token_url {
        return Ok(url.clone());
    }
    if let Some(authority) = &config.authority_url {
        return Ok(format!(
            "{}/oauth2/v2.0/token",
            authority.trim_end_matches('/')
        ));
    }
    let tenant = config
        .tenant
        .clone()
        .or_else(|| env.tenant_id.clone())
        .ok_or_else(|| {
            Error::Misconfigured(
                "give auth.tenant, auth.authority-url or auth.token-url, or set $AZURE_TENANT_ID (the workload identity webhook sets it)".into(),
            )
        })?;
    let host = env
        .authority_host
        .as_deref()
        .unwrap_or(DEFAULT_AUTHORITY_HOST);
    Ok(format!(
        "{}/{tenant}/oauth2/v2.0/token",
        host.trim_end_matches('/')
    ))
}

impl FederatedToken {
    /// Reads the assertion now, refusing an empty file or a JWT whose `exp` has passed.
    async fn assertion(&self) -> Result<SecretString, Error> {
        let text = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|source| Error::AssertionFile {
                path: self.token_file.clone(),
                source,
            })?;
        let assertion = SecretString::from(text.trim().to_string());
        if assertion.expose_secret().is_empty() {
            return Err(self.invalid("is empty".into()));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        if let Some(exp) = expiry(assertion.expose_secret()) {
            if exp <= now {
                return Err(self.invalid(format!("holds a token that expired {}s ago", now - exp)));
            }
        }
        Ok(assertion)
    }

    fn invalid(&self, problem: String) -> Error {
        Error::AssertionInvalid {
            path: self.token_file.clone(),
            problem,
        }
    }
}

/// The `exp` claim of a JWT, read without verifying it (the identity provider verifies); `None`
/// when the text is not a JWT with a numeric `exp`.
fn expiry(jwt: &str) -> Option<u64> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

#[async_trait::async_trait]
impl ClientProof for FederatedToken {
    async fn prove(&self, _client_id: &str, _token_url: &str) -> Result<Proof, Error> {
        self.assertion().await.map(Proof::Assertion)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> WorkloadIdentityConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn env() -> WorkloadIdentityEnv {
        WorkloadIdentityEnv {
            client_id: Some("env-client".into()),
            tenant_id: Some("env-tenant".into()),
            federated_token_file: Some("/var/run/secrets/azure/tokens/azure-identity-token".into()),
            authority_host: Some("https://login.microsoftonline.com/".into()),
        }
    }

    #[test]
    fn defaults_come_from_the_webhook_variables() {
        let source =
            ClientCredentials::<FederatedToken>::new(&config("{}"), &env(), reqwest::Client::new())
                .unwrap();
        assert_eq!(source.client_id(), "env-client");
        assert_eq!(
            source.token_url(),
            "https://login.microsoftonline.com/env-tenant/oauth2/v2.0/token"
        );
        assert_eq!(
            source.proof.token_file,
            PathBuf::from("/var/run/secrets/azure/tokens/azure-identity-token")
        );
    }

    #[test]
    fn the_config_wins_over_the_environment() {
        let source = ClientCredentials::<FederatedToken>::new(
            &config("client-id: mine\ntenant: t2\ntoken-file: /tmp/x"),
            &env(),
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(source.client_id(), "mine");
        assert!(source.token_url().contains("/t2/"));
        let source = ClientCredentials::<FederatedToken>::new(
            &config("authority-url: https://login.example.com/tenant3/"),
            &env(),
            reqwest::Client::new(),
        )
        .unwrap();
        assert_eq!(
            source.token_url(),
            "https://login.example.com/tenant3/oauth2/v2.0/token"
        );
    }

    #[test]
    fn missing_values_name_the_key_and_the_variable() {
        let error = ClientCredentials::<FederatedToken>::new(
            &config("{}"),
            &WorkloadIdentityEnv::default(),
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("AZURE_CLIENT_ID"), "{error}");
        let error = ClientCredentials::<FederatedToken>::new(
            &config("client-id: c\ntenant: t"),
            &WorkloadIdentityEnv::default(),
            reqwest::Client::new(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"),
            "{error}"
        );
    }

    #[test]
    fn build_reports_every_problem_of_the_block_at_once() {
        let found: Vec<String> = build(config(
            "client-id: ' '\ntenant: t\ntoken-url: http://idp.example.com/token\n",
        ))
        .unwrap_err()
        .locate("auth")
        .into_iter()
        .map(|problem| problem.to_string())
        .collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(
            found[0],
            "auth.token-url: give only one of tenant, authority-url and token-url (found tenant, token-url)"
        );
        assert_eq!(found[1], "auth.client-id: must not be empty");
        assert!(
            found[2].starts_with("auth.token-url: plain http:// is refused"),
            "{found:?}"
        );
        assert!(
            build(config("{}")).is_ok(),
            "everything may come from the environment"
        );
    }

    #[test]
    fn expiry_reads_the_unverified_exp_claim() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1234}"#);
        assert_eq!(expiry(&format!("e30.{payload}.sig")), Some(1234));
        assert_eq!(expiry("not a jwt"), None);
    }
}
