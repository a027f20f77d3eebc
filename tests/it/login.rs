//! The login flows of issue 7 against the real identity provider: workload identity (a projected
//! service-account token as client assertion), device code and browser login with refresh tokens
//! kept in the token cache file.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde_json::json;
use tapline::auth::{
    BrowserConfig, Credentials, DeviceCodeConfig, Error, InteractiveLogin, LoginOptions,
    LoginPrompt, WorkloadIdentity, WorkloadIdentityConfig, WorkloadIdentityEnv,
};
use tapline::config::SessionConfig;
use tokio::sync::mpsc;

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

// ---------------------------------------------------------------------------------------------
// Device code and browser logins.

/// What a login asked the "person" to do.
#[derive(Debug)]
enum Asked {
    DeviceCode { user_code: String },
    Browser { url: String },
}

/// A prompt that hands what the login shows to the test instead of a person.
#[derive(Debug)]
struct TestPrompt(mpsc::UnboundedSender<Asked>);

impl LoginPrompt for TestPrompt {
    fn device_code(&self, _uri: &str, user_code: &str, _complete: Option<&str>) {
        let _ = self.0.send(Asked::DeviceCode {
            user_code: user_code.to_string(),
        });
    }

    fn open_browser(&self, url: &str) {
        let _ = self.0.send(Asked::Browser {
            url: url.to_string(),
        });
    }
}

fn options(allow_login: bool) -> (LoginOptions, mpsc::UnboundedReceiver<Asked>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        LoginOptions {
            prompt: Arc::new(TestPrompt(tx)),
            allow_login,
        },
        rx,
    )
}

fn device_login(yaml: &str, allow_login: bool) -> (Credentials, mpsc::UnboundedReceiver<Asked>) {
    let config: DeviceCodeConfig = serde_yaml::from_str(yaml).unwrap();
    let (options, asked) = options(allow_login);
    let http = tapline::auth::http_client(&SessionConfig::default()).unwrap();
    let login = InteractiveLogin::device_code(&config, http, options).unwrap();
    (Credentials::from_source(Arc::new(login)), asked)
}

async fn next_user_code(asked: &mut mpsc::UnboundedReceiver<Asked>) -> String {
    match asked.recv().await.expect("the login prompts") {
        Asked::DeviceCode { user_code } => user_code,
        other => panic!("expected a device code prompt, got {other:?}"),
    }
}

fn cache_entry(path: &Path) -> serde_json::Value {
    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let entries = data["entries"].as_object().expect("entries");
    assert_eq!(entries.len(), 1, "{data}");
    entries.values().next().unwrap().clone()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn device_login_then_silent_refresh_with_the_cached_refresh_token() {
    let idp = idp();
    // Tokens live 20 s, less than the 30 s margin: every fetch after the login is a refresh.
    let client_id = idp.public_client(20, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache/tokens.json");
    let yaml = format!(
        "token-url: {}\ndevice-authorization-url: {}\nclient-id: {client_id}\nscopes: api.read\ntoken-cache: {}\nrefresh-margin: 30s\n",
        idp.token_url(),
        idp.device_authorization_url(),
        cache.display()
    );
    let (credentials, mut asked) = device_login(&yaml, true);
    let pending = tokio::spawn({
        let credentials = credentials.clone();
        async move { credentials.token().await }
    });
    let user_code = next_user_code(&mut asked).await;
    idp.decide_device(&user_code, true).await;
    let token = pending.await.unwrap().unwrap().unwrap();
    let claims = jwt::verify(
        token.secret().expose_secret(),
        &idp.jwks().await,
        &client_id,
    );
    assert_eq!(claims["sub"], "test-user");
    assert_eq!(claims["scope"], "api.read");
    let entry = cache_entry(&cache);
    assert!(entry["refresh_token"]
        .as_str()
        .is_some_and(|rt| !rt.is_empty()));
    assert_eq!(entry["access_token"], token.secret().expose_secret());
    assert_eq!(mode(&cache), 0o600);

    // The next token comes from the refresh token: no second device login.
    credentials.invalidate(&token);
    let refreshed = credentials.token().await.unwrap().unwrap();
    assert_ne!(
        refreshed.secret().expose_secret(),
        token.secret().expose_secret()
    );
    jwt::verify(
        refreshed.secret().expose_secret(),
        &idp.jwks().await,
        &client_id,
    );
    assert_eq!(idp.refreshed(&client_id).await, 1);
    assert!(asked.try_recv().is_err(), "no new login was started");
    let entry = cache_entry(&cache);
    assert_eq!(entry["access_token"], refreshed.secret().expose_secret());
    assert!(entry["refresh_token"]
        .as_str()
        .is_some_and(|rt| !rt.is_empty()));
    assert_eq!(
        mode(&cache),
        0o600,
        "the cache file stays private after an update"
    );

    // Another process (no terminal) finds the refresh token in the file.
    let (other, mut other_asked) = device_login(&yaml, false);
    let token = other.token().await.unwrap().unwrap();
    jwt::verify(
        token.secret().expose_secret(),
        &idp.jwks().await,
        &client_id,
    );
    assert_eq!(idp.refreshed(&client_id).await, 2);
    assert!(other_asked.try_recv().is_err());

    // Once the refresh token is revoked, a process without a terminal says to log in.
    idp.revoke_refresh_tokens(&client_id).await;
    let (other, _asked) = device_login(&yaml, false);
    let error = other.token().await.unwrap_err();
    assert!(matches!(error, Error::LoginRequired(_)), "{error:?}");
    assert!(error.to_string().contains("tapline login"), "{error}");
}

#[tokio::test]
async fn device_polling_honours_authorization_pending_and_slow_down() {
    let idp = idp();
    let client_id = idp.public_client(3600, 1).await;
    let key = unique("device-poll");
    idp.queue_faults(
        &key,
        json!([
            {"status": 400, "body": {"error": "authorization_pending"}},
            {"status": 400, "body": {"error": "slow_down"}},
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "token-url: {}\ndevice-authorization-url: {}\nclient-id: {client_id}\nscopes: api.read\ntoken-cache: {}\n",
        idp.faulty_token_url(&key),
        idp.device_authorization_url(),
        dir.path().join("tokens.json").display()
    );
    let (credentials, mut asked) = device_login(&yaml, true);
    let pending = tokio::spawn({
        let credentials = credentials.clone();
        async move { credentials.token().await }
    });
    let user_code = next_user_code(&mut asked).await;
    idp.decide_device(&user_code, true).await;
    pending.await.unwrap().unwrap().unwrap();
    let arrivals = idp.arrivals(&key).await;
    assert_eq!(
        arrivals.len(),
        3,
        "pending, slow_down, then the token: {arrivals:?}"
    );
    // Lower bounds only: 1 s after authorization_pending, 1 + 5 s after slow_down.
    assert!(arrivals[1] - arrivals[0] >= 950, "{arrivals:?}");
    assert!(arrivals[2] - arrivals[1] >= 5950, "{arrivals:?}");
}

#[tokio::test]
async fn a_declined_device_login_is_a_clear_error() {
    let idp = idp();
    let client_id = idp.public_client(3600, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "authority-url: {}\nclient-id: {client_id}\nscopes: api.read\ntoken-cache: {}\n",
        idp.base,
        dir.path().join("tokens.json").display()
    );
    // authority-url: the endpoints come from the provider's discovery document.
    let (credentials, mut asked) = device_login(&yaml, true);
    let pending = tokio::spawn({
        let credentials = credentials.clone();
        async move { credentials.token().await }
    });
    let user_code = next_user_code(&mut asked).await;
    idp.decide_device(&user_code, false).await;
    let error = pending.await.unwrap().unwrap_err();
    assert!(matches!(error, Error::LoginFailed(_)), "{error:?}");
    assert!(error.to_string().contains("declined"), "{error}");
}

fn browser_login(yaml: &str) -> (Credentials, mpsc::UnboundedReceiver<Asked>) {
    let config: BrowserConfig = serde_yaml::from_str(yaml).unwrap();
    let (options, asked) = options(true);
    let http = tapline::auth::http_client(&SessionConfig::default()).unwrap();
    let login = InteractiveLogin::browser(&config, http, options).unwrap();
    (Credentials::from_source(Arc::new(login)), asked)
}

async fn next_browser_url(asked: &mut mpsc::UnboundedReceiver<Asked>) -> reqwest::Url {
    match asked.recv().await.expect("the login prompts") {
        Asked::Browser { url } => reqwest::Url::parse(&url).unwrap(),
        other => panic!("expected a browser prompt, got {other:?}"),
    }
}

/// Does what a browser does with the authorization URL: follows the redirects, carrying the
/// provider's cookies, through the (automatic) sign-in and consent, until the redirect to the
/// local listener, which it also visits. Returns that last response's status.
async fn follow_like_a_browser(start: reqwest::Url) -> (u16, reqwest::Url) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies: BTreeMap<String, String> = BTreeMap::new();
    let mut url = start;
    for _ in 0..20 {
        let cookie_header = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = http.get(url.clone());
        if !cookie_header.is_empty() {
            request = request.header("cookie", cookie_header);
        }
        let response = request.send().await.expect("the request is answered");
        for set in response.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_string(), value.to_string());
            }
        }
        if !response.status().is_redirection() {
            return (response.status().as_u16(), url);
        }
        let location = response.headers()["location"].to_str().unwrap().to_string();
        url = url.join(&location).unwrap();
    }
    panic!("too many redirects");
}

#[tokio::test]
async fn browser_login_followed_over_http_yields_a_token_and_a_refresh_token() {
    let idp = idp();
    let client_id = idp.public_client(20, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tokens.json");
    // authority-url: the authorization and token endpoints come from discovery; port 0 picks a
    // free port for the listener (the client is registered for http://localhost, any port).
    let yaml = format!(
        "authority-url: {}\nclient-id: {client_id}\nscopes: [api.read, api.write]\nredirect-port: 0\nopen-browser: false\ntoken-cache: {}\nrefresh-margin: 30s\n",
        idp.base,
        cache.display()
    );
    let (credentials, mut asked) = browser_login(&yaml);
    let pending = tokio::spawn({
        let credentials = credentials.clone();
        async move { credentials.token().await }
    });
    let url = next_browser_url(&mut asked).await;
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["redirect_uri"].starts_with("http://localhost:"));
    let (status, last) = follow_like_a_browser(url).await;
    assert_eq!(last.host_str(), Some("localhost"), "ended at {last}");
    assert_eq!(status, 200);
    let token = pending.await.unwrap().unwrap().unwrap();
    let claims = jwt::verify(
        token.secret().expose_secret(),
        &idp.jwks().await,
        &client_id,
    );
    assert_eq!(claims["sub"], "test-user");
    assert_eq!(claims["scope"], "api.read api.write");
    let entry = cache_entry(&cache);
    assert!(entry["refresh_token"]
        .as_str()
        .is_some_and(|rt| !rt.is_empty()));
    assert_eq!(mode(&cache), 0o600);

    // Refreshed like a device login: with the refresh token, no browser.
    credentials.invalidate(&token);
    credentials.token().await.unwrap().unwrap();
    assert_eq!(idp.refreshed(&client_id).await, 1);
    assert!(asked.try_recv().is_err());
}

#[tokio::test]
async fn a_redirect_with_the_wrong_state_is_refused() {
    let idp = idp();
    let client_id = idp.public_client(3600, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "token-url: {}\nauthorization-url: {}/auth\nclient-id: {client_id}\nscopes: api.read\nredirect-port: 0\ntoken-cache: {}\n",
        idp.token_url(),
        idp.base,
        dir.path().join("tokens.json").display()
    );
    let (credentials, mut asked) = browser_login(&yaml);
    let pending = tokio::spawn({
        let credentials = credentials.clone();
        async move { credentials.token().await }
    });
    let url = next_browser_url(&mut asked).await;
    let redirect_uri = url
        .query_pairs()
        .find(|(name, _)| name == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    // A forged redirect: a code, but not the state this login sent.
    let forged = format!("{redirect_uri}/?code=forged-code&state=not-the-state");
    let response = reqwest::get(&forged).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error = pending.await.unwrap().unwrap_err();
    assert!(matches!(error, Error::LoginFailed(_)), "{error:?}");
    assert!(error.to_string().contains("state"), "{error}");
    assert_eq!(
        idp.issued(&client_id).await,
        0,
        "the forged code was never sent"
    );
}

#[tokio::test]
async fn tapline_login_fills_the_cache_and_tapline_token_then_needs_no_prompt() {
    use std::io::{BufRead, BufReader};
    let idp = idp();
    let client_id = idp.public_client(3600, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tokens.json");
    let config = dir.path().join("tapline.yaml");
    std::fs::write(
        &config,
        format!(
            "auth:\n  type: device-code\n  authority-url: {}\n  client-id: {client_id}\n  scopes: api.read\n  token-cache: {}\n",
            idp.base,
            cache.display()
        ),
    )
    .unwrap();
    let mut child = tapline()
        .args(["login", "-c"])
        .arg(&config)
        .env("RUST_LOG", "trace")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (code_tx, mut code_rx) = mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.split("enter the code ").nth(1) {
                let _ = code_tx.send(rest.trim().to_string());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let user_code = code_rx
        .recv()
        .await
        .expect("tapline login prints a user code");
    idp.decide_device(&user_code, true).await;
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let login_log = reader.join().unwrap();
    assert!(status.success(), "{login_log}");
    assert!(login_log.contains("tokens cached in"), "{login_log}");
    assert!(
        login_log.contains("starting a device login"),
        "the trace log is on: {login_log}"
    );
    assert_eq!(mode(&cache), 0o600);
    let entry = cache_entry(&cache);
    let access = entry["access_token"].as_str().unwrap().to_string();
    let refresh = entry["refresh_token"].as_str().unwrap().to_string();
    let issued = idp.issued(&client_id).await;

    // No terminal here: `tapline token` must get by with the cache, and it does.
    let out = run(tapline()
        .args(["token", "-c"])
        .arg(&config)
        .env("RUST_LOG", "trace"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), access);
    assert_eq!(
        idp.issued(&client_id).await,
        issued,
        "served from the cache file"
    );
    // Trace logs of both commands never show the tokens.
    for log in [&login_log, &out.stderr] {
        assert!(!log.contains(&access), "{log}");
        assert!(!log.contains(&refresh), "{log}");
    }
}

#[test]
fn tapline_login_refuses_auth_types_without_an_interactive_login() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tapline.yaml");
    std::fs::write(&config, "auth:\n  type: none\n").unwrap();
    let out = run(tapline().args(["login", "-c"]).arg(&config));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("device-code and browser"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_rejected_refresh_token_falls_back_to_a_new_login_when_someone_can_answer() {
    let idp = idp();
    let client_id = idp.public_client(20, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "token-url: {}\ndevice-authorization-url: {}\nclient-id: {client_id}\nscopes: api.read\ntoken-cache: {}\n",
        idp.token_url(),
        idp.device_authorization_url(),
        dir.path().join("tokens.json").display()
    );
    let (credentials, mut asked) = device_login(&yaml, true);
    for round in 0..2 {
        let pending = tokio::spawn({
            let credentials = credentials.clone();
            async move { credentials.token().await }
        });
        let user_code = next_user_code(&mut asked).await;
        idp.decide_device(&user_code, true).await;
        let token = pending.await.unwrap().unwrap().unwrap();
        if round == 0 {
            idp.revoke_refresh_tokens(&client_id).await;
            credentials.invalidate(&token);
        }
    }
    assert_eq!(idp.refreshed(&client_id).await, 0);
    // Debug output of the login shows neither token.
    let debug = format!("{credentials:?}");
    let cached = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(&cached).unwrap();
    let entry = entry["entries"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert!(
        !debug.contains(entry["refresh_token"].as_str().unwrap()),
        "{debug}"
    );
    assert!(
        !debug.contains(entry["access_token"].as_str().unwrap()),
        "{debug}"
    );
}

#[test]
fn validate_checks_the_login_types() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tapline.yaml");
    let check = |auth: &str| {
        std::fs::write(&config, format!("auth:\n{auth}")).unwrap();
        crate::harness::cli::validate(&config)
    };
    let out =
        check("  type: device-code\n  token-url: https://idp.example.com/token\n  client-id: c\n");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("auth.device-authorization-url: missing"),
        "{}",
        out.stderr
    );
    let out = check("  type: browser\n  authority-url: http://idp.example.com\n  client-id: c\n  redirect-port: 8400\n");
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("auth.authority-url: plain http://"),
        "{}",
        out.stderr
    );
    let out = check(
        "  type: workload-identity\n  tenant: t\n  token-url: https://idp.example.com/token\n",
    );
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("give only one of tenant, authority-url and token-url"),
        "{}",
        out.stderr
    );
    let out = check("  type: device-code\n  authority-url: https://login.microsoftonline.com/t\n  client-id: c\n  interval: 5\n");
    assert_eq!(out.code, 2, "unknown keys are errors: {}", out.stderr);
    let out = check(
        "  type: browser\n  authority-url: https://login.microsoftonline.com/t\n  client-id: c\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
}
