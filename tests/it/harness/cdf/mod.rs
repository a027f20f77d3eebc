//! A CDF API on a loopback port: exactly the endpoints tapline's CDF sinks and run reports use,
//! plus the ones the official Python SDK reads them back with, each with CDF's real limits and
//! error shape (`{"error":{"code","message","missing","duplicated"}}`, `x-request-id` on every
//! answer). Every request must carry a bearer JWT signed by the test identity provider, for its
//! audience, unexpired at arrival, and with the cluster's `<base-url>/.default` scope; anything
//! else gets CDF's 401.
//!
//! Faults ([`CdfServer::faults`]): a fraction of requests get 429 with `Retry-After` or 503,
//! before they touch the data, as a busy cluster answers.
//!
//! It runs inside the test process (the official SDK, a child process, gets its URL), and the
//! CDF benchmark includes it by path.
//!
//! - `store.rs`: the project's data; `auth.rs`: the token check; `reply.rs`: CDF's answers;
//! - `raw.rs`, `datapoints.rs` (and `protobuf.rs`, the SDK reads datapoints as protobuf),
//!   `events.rs`, `timeseries.rs`, `extpipes.rs`: the endpoints.

// An endpoint's refusal is a whole CDF answer (`Err(Response)`, so `?` stops at the first
// problem); boxing it would buy nothing in a test server.
#![allow(clippy::result_large_err)]

mod auth;
mod datapoints;
mod events;
mod extpipes;
mod protobuf;
mod raw;
mod reply;
mod store;
mod timeseries;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;

pub use auth::Verifier;
pub use store::{Event, Run, Series, Store};

use reply::cdf_error;

/// The running server. It stops when the runtime that started it ends.
#[derive(Clone)]
pub struct CdfServer {
    pub addr: SocketAddr,
    pub project: String,
    shared: Arc<Shared>,
}

/// A request as it arrived.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// The path below `/api/v1/projects/{project}/` (or the whole path outside it).
    pub path: String,
    /// What the server answered.
    pub status: u16,
    /// How long the server took to answer, from the whole body on.
    pub took: std::time::Duration,
}

struct Shared {
    project: String,
    store: Mutex<Store>,
    verifier: Mutex<Option<Verifier>>,
    faults: Mutex<f64>,
    delay: Mutex<std::time::Duration>,
    seen: Mutex<Vec<Seen>>,
    next_request: AtomicU64,
}

impl CdfServer {
    /// Starts the server for `project` on a free loopback port; tokens are checked against
    /// `verifier` (see [`Verifier::of`]).
    pub async fn start(project: &str, verifier: Option<Verifier>) -> Self {
        let shared = Arc::new(Shared {
            project: project.to_string(),
            store: Mutex::new(Store::default()),
            verifier: Mutex::new(verifier),
            faults: Mutex::new(0.0),
            delay: Mutex::new(std::time::Duration::ZERO),
            seen: Mutex::new(Vec::new()),
            next_request: AtomicU64::new(1),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let addr = crate::harness::loopback::spawn(app).await;
        Self {
            addr,
            project: project.to_string(),
            shared,
        }
    }

    /// Checks every token from now on against the test identity provider, with this server's
    /// scope.
    pub async fn verifying(self, idp: &crate::harness::idp::Idp) -> Self {
        let verifier = Verifier::new(idp.jwks().await, &idp.base, &self.scope());
        *self.shared.verifier.lock().unwrap() = Some(verifier);
        self
    }

    /// A token for `client` with this server's scope, straight from the identity provider (for
    /// the SDK, which is handed a token).
    pub async fn token_for(&self, client: &crate::harness::idp::Client) -> String {
        let idp = crate::harness::idp::idp();
        let scope = self.scope();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_str()),
            ("scope", scope.as_str()),
        ];
        let answer: serde_json::Value = reqwest::Client::new()
            .post(idp.token_url())
            .form(&form)
            .send()
            .await
            .expect("the identity provider answers")
            .json()
            .await
            .expect("a token response");
        answer["access_token"]
            .as_str()
            .expect("an access token")
            .to_string()
    }

    /// `http://127.0.0.1:<port>`, for `cdf.base-url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The scope tokens must carry: `<base-url>/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.base_url())
    }

    /// Answers `fraction` of the requests from now on with 429 (`Retry-After: 1`) or 503, half
    /// each.
    pub fn faults(&self, fraction: f64) {
        *self.shared.faults.lock().unwrap() = fraction;
    }

    /// Answers every request from now on only after `delay`, as a slow cluster does.
    pub fn delay(&self, delay: std::time::Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// Registers an extraction pipeline (runs reported to unknown pipelines are refused).
    pub fn pipeline(&self, external_id: &str) {
        self.store().pipelines.insert(external_id.to_string());
    }

    /// Adds a config revision to `pipeline` (registered), as `POST /extpipes/config` does.
    pub fn publish_config(&self, pipeline: &str, text: &str) {
        let mut store = self.store();
        store.pipelines.insert(pipeline.to_string());
        store.add_config(pipeline, text);
    }

    /// The project's data, to look at or to set up.
    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap()
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// How many requests went to `method path` (path below the project).
    pub fn count(&self, method: Method, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }

    /// How many requests were refused for their token.
    pub fn unauthorized(&self) -> usize {
        self.seen().iter().filter(|s| s.status == 401).count()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let id = format!(
        "req-{}",
        shared.next_request.fetch_add(1, Ordering::Relaxed)
    );
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 64 << 20).await.unwrap_or_default();
    let body = match parts.headers.get("content-encoding").map(|v| v.as_bytes()) {
        Some(b"gzip") => gunzip(&body),
        _ => body,
    };
    let prefix = format!("/api/v1/projects/{}/", shared.project);
    let full = parts.uri.path().to_string();
    let path = full
        .strip_prefix(&prefix)
        .unwrap_or(full.trim_start_matches('/'))
        .to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let started = std::time::Instant::now();
    let delay = *shared.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = respond(&shared, &parts.method, &path, &query, &parts.headers, body);
    response
        .headers_mut()
        .insert("x-request-id", id.parse().expect("a header value"));
    shared.seen.lock().unwrap().push(Seen {
        method: parts.method,
        path,
        status: response.status().as_u16(),
        took: started.elapsed(),
    });
    response
}

fn respond(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &str,
    headers: &axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    let claims = match shared.verifier.lock().unwrap().as_ref() {
        Some(verifier) => match verifier.check(authorization) {
            Ok(claims) => Some(claims),
            Err(why) => {
                return cdf_error(StatusCode::UNAUTHORIZED, &format!("Unauthorized: {why}"))
            }
        },
        None => None,
    };
    if let Some(fault) = fault(*shared.faults.lock().unwrap()) {
        return fault;
    }
    let json = || serde_json::from_slice::<serde_json::Value>(&body);
    let parsed = match method {
        &Method::POST => match json() {
            Ok(value) => value,
            Err(_) => return cdf_error(StatusCode::BAD_REQUEST, "Request body is not valid JSON"),
        },
        _ => serde_json::Value::Null,
    };
    let mut store = shared.store.lock().unwrap();
    let segments: Vec<&str> = path.split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["api", "v1", "token", "inspect"]) => Ok(auth::inspect(claims, &shared.project)),
        ("POST", ["raw", "dbs", db, "tables", table, "rows"]) => {
            raw::insert(&mut store, db, table, query, &parsed)
        }
        ("GET", ["raw", "dbs", db, "tables", table, "rows"]) => raw::list(&store, db, table, query),
        ("POST", ["timeseries", "data"]) => datapoints::insert(&mut store, &parsed),
        ("POST", ["timeseries", "data", "list"]) => datapoints::list(&store, &parsed, headers),
        ("POST", ["timeseries"]) => timeseries::create(&mut store, &parsed),
        ("POST", ["timeseries", "byids"]) => timeseries::by_ids(&store, &parsed),
        ("POST", ["events"]) => events::create(&mut store, &parsed),
        ("POST", ["events", "update"]) => events::update(&mut store, &parsed),
        ("POST", ["events", "byids"]) => events::by_ids(&store, &parsed),
        ("POST", ["events", "list"]) => events::list(&store, &parsed),
        ("POST", ["extpipes", "runs"]) => extpipes::create(&mut store, &parsed),
        ("POST", ["extpipes", "runs", "list"]) => extpipes::list(&store, &parsed),
        ("GET", ["extpipes", "runs"]) => extpipes::list_query(&store, query),
        ("POST", ["extpipes", "config"]) => extpipes::create_config(&mut store, &parsed),
        ("GET", ["extpipes", "config"]) => extpipes::get_config(&store, query),
        _ => Err(cdf_error(
            StatusCode::NOT_FOUND,
            &format!("{method} /{path} is not an endpoint here"),
        )),
    }
    .unwrap_or_else(|refused| refused)
}

/// A gzipped request body (the SDK compresses its bodies, as CDF accepts), unpacked; an
/// invalid one is left as it is and fails as JSON.
fn gunzip(body: &Bytes) -> Bytes {
    use std::io::Read;
    let mut out = Vec::new();
    match flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out) {
        Ok(_) => out.into(),
        Err(_) => body.clone(),
    }
}

/// 429 with `Retry-After: 1` or 503 for `fraction` of the calls, half each.
fn fault(fraction: f64) -> Option<Response> {
    if fraction <= 0.0 || rand::random::<f64>() >= fraction {
        return None;
    }
    Some(if rand::random::<bool>() {
        let mut response = cdf_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        response
            .headers_mut()
            .insert("retry-after", "1".parse().expect("a header value"));
        response
    } else {
        cdf_error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable")
    })
}

/// What an endpoint answers: its success, or CDF's error (`?` stops at the first problem).
type Answer = Result<Response, Response>;
