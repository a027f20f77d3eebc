//! The real OAuth 2.0 identity provider (`oidc-provider` from npm, see tests/idp/), started once
//! per test binary on a free loopback port.
//!
//! Each test registers its own clients and uses its own fault keys, so tests run in parallel
//! without disturbing each other.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::{json, Value};

/// The running identity provider.
pub struct Idp {
    /// `http://127.0.0.1:<port>`, also the issuer.
    pub base: String,
    // Held so the provider lives as long as the test binary; it exits when stdin closes.
    _process: Mutex<(Child, ChildStdin)>,
}

/// A client registered with the provider.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub secret: String,
}

/// The provider, started on first use.
pub fn idp() -> &'static Idp {
    static IDP: OnceLock<Idp> = OnceLock::new();
    IDP.get_or_init(start)
}

fn idp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/idp")
}

fn start() -> Idp {
    let dir = idp_dir();
    require_node();
    if !dir.join("node_modules/oidc-provider").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(status.success(), "`npm ci` in {} failed", dir.display());
    }
    let mut child = Command::new("node")
        .arg("server.js")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node starts the test identity provider");
    let stdin = child.stdin.take().expect("piped stdin");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("identity provider prints its ready line");
    let ready: Value = serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("identity provider did not start; it printed {line:?}"));
    Idp {
        base: ready["issuer"]
            .as_str()
            .expect("issuer in ready line")
            .to_string(),
        _process: Mutex::new((child, stdin)),
    }
}

/// The tests need Node.js; say so plainly instead of skipping.
fn require_node() {
    let found = Command::new("node").arg("--version").output();
    assert!(
        found.is_ok_and(|out| out.status.success()),
        "the integration tests need Node.js 20+ and npm on PATH to run the test identity provider"
    );
}

impl Idp {
    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    /// The token endpoint behind the fault injector `key` (see [`Idp::queue_faults`]).
    pub fn faulty_token_url(&self, key: &str) -> String {
        format!("{}/fault/{key}/token", self.base)
    }

    /// Registers a client from raw metadata (see tests/idp/README.md).
    pub async fn register(&self, metadata: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/__test/clients", self.base))
            .json(&metadata)
            .send()
            .await
            .expect("admin route answers");
        assert!(
            response.status().is_success(),
            "registering {metadata} failed: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Registers a client_secret_post (`basic = false`) or client_secret_basic client whose tokens
    /// live `ttl_secs`.
    pub async fn secret_client(&self, basic: bool, ttl_secs: u64) -> Client {
        let client = Client {
            id: super::unique("client"),
            secret: super::unique("secret-Xq9"),
        };
        let method = if basic {
            "client_secret_basic"
        } else {
            "client_secret_post"
        };
        self.register(json!({
            "client_id": client.id,
            "client_secret": client.secret,
            "token_endpoint_auth_method": method,
            "token_ttl": ttl_secs,
        }))
        .await;
        client
    }

    /// GETs `path` (below the issuer) and reads the JSON answer.
    async fn get_json(&self, path: &str) -> Value {
        reqwest::get(format!("{}/{path}", self.base))
            .await
            .unwrap_or_else(|error| panic!("{path}: {error}"))
            .json()
            .await
            .unwrap_or_else(|error| panic!("{path} is not JSON: {error}"))
    }

    /// How many tokens the provider issued to `client_id`.
    pub async fn issued(&self, client_id: &str) -> u64 {
        let counts: Value = self.get_json(&format!("__test/counts/{client_id}")).await;
        counts["issued"].as_u64().expect("issued count")
    }

    /// Queues faults for requests under `/fault/<key>/`, one per request, e.g.
    /// `[{"status": 503}, {"hang_ms": 5000}, {"status": 200, "body": "not json"}]`.
    pub async fn queue_faults(&self, key: &str, faults: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/__test/faults/{key}", self.base))
            .json(&json!({ "faults": faults }))
            .send()
            .await
            .expect("admin route answers");
        assert!(response.status().is_success());
    }

    /// Arrival times (ms since the epoch) of the requests under `/fault/<key>/`.
    pub async fn arrivals(&self, key: &str) -> Vec<u64> {
        let body: Value = self
            .get_json(&format!("__test/faults/{key}/arrivals"))
            .await;
        body["arrivals"]
            .as_array()
            .expect("arrivals list")
            .iter()
            .map(|t| t.as_u64().expect("a timestamp"))
            .collect()
    }

    /// How many refresh_token grants the provider answered with a token for `client_id`.
    pub async fn refreshed(&self, client_id: &str) -> u64 {
        let counts: Value = self.get_json(&format!("__test/counts/{client_id}")).await;
        counts["refreshed"].as_u64().expect("refreshed count")
    }

    /// The client assertions the provider accepted for `client_id`, in order:
    /// `[{jti, aud, iat, exp}, ...]`.
    pub async fn assertions(&self, client_id: &str) -> Vec<Value> {
        let body: Value = self
            .get_json(&format!("__test/assertions/{client_id}"))
            .await;
        body["assertions"].as_array().expect("a list").clone()
    }

    /// Registers a public client (no secret) for the interactive flows: device code, and
    /// authorization code with redirect URI `http://localhost` (any port, as a native app).
    /// `device_interval` is the polling interval /device/auth advertises.
    pub async fn public_client(&self, ttl_secs: u64, device_interval: u64) -> String {
        let id = super::unique("public");
        self.register(json!({
            "client_id": id,
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "grant_types": [
                "urn:ietf:params:oauth:grant-type:device_code",
                "authorization_code",
                "refresh_token"
            ],
            "redirect_uris": ["http://localhost"],
            "token_ttl": ttl_secs,
            "device_interval": device_interval,
        }))
        .await;
        id
    }

    /// The device authorization endpoint.
    pub fn device_authorization_url(&self) -> String {
        format!("{}/device/auth", self.base)
    }

    /// Approves (as the test user) or denies the pending device login with `user_code`.
    pub async fn decide_device(&self, user_code: &str, approve: bool) {
        let action = if approve { "approve" } else { "deny" };
        let body: Value = reqwest::Client::new()
            .post(format!("{}/__test/device/{action}", self.base))
            .json(&json!({ "user_code": user_code }))
            .send()
            .await
            .expect("admin route answers")
            .json()
            .await
            .expect("JSON answer");
        assert!(body.get("error").is_none(), "{action} failed: {body}");
    }

    /// Drops every refresh token issued to `client_id`.
    pub async fn revoke_refresh_tokens(&self, client_id: &str) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/__test/refresh-tokens/{client_id}/revoke",
                self.base
            ))
            .send()
            .await
            .expect("admin route answers");
        assert!(response.status().is_success());
    }

    /// The provider's signing keys.
    pub async fn jwks(&self) -> Value {
        self.get_json("jwks").await
    }
}

/// The process credentials a `client-secret` config for `client` gives: the real provider and the
/// real token cache, exactly as `tapline run` builds them.
pub fn credentials(client: &Client) -> tapline::auth::Credentials {
    let block: tapline::config::ComponentConfig = serde_json::from_value(json!({
        "type": "client-secret",
        "token-url": idp().token_url(),
        "client-id": client.id,
        "client-secret": client.secret,
    }))
    .expect("an auth block");
    tapline::Registry::builtin()
        .provider_for(&block)
        .expect("a valid auth block")
        .credentials(&Default::default())
        .expect("credentials build")
}
