//! The login flows of issue 7 against the real identity provider: workload identity (a projected
//! service-account token as client assertion), device code and browser login with refresh tokens
//! kept in the token cache file.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::json;
use tapline::auth::{Credentials, Error, WorkloadIdentity, WorkloadIdentityEnv};
use tapline::config::{SessionConfig, WorkloadIdentityConfig};

use crate::harness::cert::TestCert;
use crate::harness::cli::{run, tapline};
use crate::harness::idp::idp;
use crate::harness::jwt;
use crate::harness::unique;

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A projected service-account token as the workload identity webhook would mount it: a JWT for
/// `api://AzureADTokenExchange`, signed by a key the provider trusts for `client_id`.
fn write_assertion(cert: &TestCert, client_id: &str, path: &Path, exp: u64) -> String {
    let jti = unique("sa-token");
    let key = EncodingKey::from_rsa_pem(&std::fs::read(&cert.key).unwrap()).unwrap();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": "api://AzureADTokenExchange",
        "jti": jti,
        "iat": epoch() - 5,
        "exp": exp,
    });
    let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    // Written the way the kubelet swaps projected files: a new file renamed over the old one.
    let temp = path.with_extension("new");
    std::fs::write(&temp, format!("{token}\n")).unwrap();
    std::fs::rename(&temp, path).unwrap();
    jti
}

async fn workload_client(cert: &TestCert) -> String {
    let id = unique("workload");
    idp()
        .register(json!({
            "client_id": id,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": cert.jwks(),
            "token_ttl": 3600,
        }))
        .await;
    id
}

fn workload_identity(yaml: &str, env: &WorkloadIdentityEnv) -> Credentials {
    let config: WorkloadIdentityConfig = serde_yaml::from_str(yaml).unwrap();
    let http = tapline::auth::http_client(&SessionConfig::default()).unwrap();
    Credentials::from_source(Arc::new(WorkloadIdentity::new(&config, env, http).unwrap()))
}

#[tokio::test]
async fn workload_identity_rereads_the_assertion_file_for_every_token_request() {
    let idp = idp();
    let cert = TestCert::generate();
    let client_id = workload_client(&cert).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    let first = write_assertion(&cert, &client_id, &file, epoch() + 3600);
    // Client id and token file from the webhook's variables, the token URL from the config.
    let env = WorkloadIdentityEnv {
        client_id: Some(client_id.clone()),
        federated_token_file: Some(file.clone()),
        ..WorkloadIdentityEnv::default()
    };
    let credentials = workload_identity(
        &format!("token-url: {}\nscopes: api.read\n", idp.token_url()),
        &env,
    );
    let token = credentials.token().await.unwrap().unwrap();
    let claims = jwt::verify(
        token.secret().expose_secret(),
        &idp.jwks().await,
        &client_id,
    );
    assert_eq!(claims["scope"], "api.read");
    let seen = idp.assertions(&client_id).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["jti"], first.as_str());
    assert_eq!(seen[0]["aud"], "api://AzureADTokenExchange");

    // The kubelet rotates the file; the next token request must send the new assertion.
    let second = write_assertion(&cert, &client_id, &file, epoch() + 3600);
    credentials.invalidate(&token);
    let renewed = credentials.token().await.unwrap().unwrap();
    assert!(!Arc::ptr_eq(&token, &renewed));
    let seen = idp.assertions(&client_id).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1]["jti"], second.as_str());
}

#[tokio::test]
async fn a_missing_or_expired_assertion_file_is_a_clear_error() {
    let idp = idp();
    let cert = TestCert::generate();
    let client_id = workload_client(&cert).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    let yaml = format!(
        "token-url: {}\nclient-id: {client_id}\ntoken-file: {}\n",
        idp.token_url(),
        file.display()
    );
    let credentials = workload_identity(&yaml, &WorkloadIdentityEnv::default());
    let error = credentials.token().await.unwrap_err();
    assert!(matches!(error, Error::AssertionFile { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("workload identity"), "{message}");

    write_assertion(&cert, &client_id, &file, epoch() - 120);
    let credentials = workload_identity(&yaml, &WorkloadIdentityEnv::default());
    let error = credentials.token().await.unwrap_err();
    assert!(matches!(error, Error::AssertionInvalid { .. }), "{error:?}");
    assert!(error.to_string().contains("expired"), "{error}");
    // Refused before sending: the provider saw nothing.
    assert_eq!(idp.issued(&client_id).await, 0);
    assert!(idp.assertions(&client_id).await.is_empty());
}

#[tokio::test]
async fn tapline_token_takes_workload_identity_defaults_from_the_webhook_variables() {
    let idp = idp();
    let cert = TestCert::generate();
    let client_id = workload_client(&cert).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("azure-identity-token");
    let jti = write_assertion(&cert, &client_id, &file, epoch() + 3600);
    let config = dir.path().join("tapline.yaml");
    std::fs::write(
        &config,
        format!(
            "auth:\n  type: workload-identity\n  token-url: {}\n",
            idp.token_url()
        ),
    )
    .unwrap();
    let out = run(tapline()
        .args(["token", "-c"])
        .arg(&config)
        .env("AZURE_CLIENT_ID", &client_id)
        .env("AZURE_TENANT_ID", "ignored-when-token-url-is-given")
        .env("AZURE_FEDERATED_TOKEN_FILE", &file)
        .env("RUST_LOG", "trace"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let token = out.stdout.trim();
    jwt::verify(token, &idp.jwks().await, &client_id);
    assert_eq!(idp.assertions(&client_id).await[0]["jti"], jti.as_str());
    // Neither the assertion nor the token shows up in the trace log.
    let assertion = std::fs::read_to_string(&file).unwrap();
    assert!(!out.stderr.contains(assertion.trim()), "{}", out.stderr);
    assert!(!out.stderr.contains(token), "{}", out.stderr);
}
