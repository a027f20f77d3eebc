//! A fault-injecting HTTP API on a loopback port, for the session tests.
//!
//! Responses are scripted per path ([`Api::script`]): each request to the path takes the next
//! [`Reply`] (a status, headers, a body, optionally a hang first); once the script is used up the
//! path answers 200 `{"ok":true}`. Every request is recorded on arrival ([`Recorded`]: the
//! instant, method, path, headers including `Authorization`, body bytes) before any hang.
//!
//! Auth checks, for all paths:
//! - [`Api::verifying`]: every bearer token must be a JWT signed by the test identity provider
//!   (checked against its JWKS, `exp` checked at arrival to the millisecond, no leeway); anything
//!   else gets 401;
//! - [`Api::revoke`]: requests carrying that exact `Authorization` value get 401;
//! - [`Api::always_unauthorized`]: every request gets 401.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    hang: Option<Duration>,
}

impl Reply {
    /// Answers `status` with an empty JSON object.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: "{}".into(),
            hang: None,
        }
    }

    /// Waits `hang` before answering 200 (the client's timeout should fire first).
    pub fn hang(hang: Duration) -> Self {
        Self {
            hang: Some(hang),
            ..Self::status(200)
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the response body.
    pub fn body(mut self, body: &str) -> Self {
        self.body = body.into();
        self
    }
}

/// A request as the API saw it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub at: Instant,
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// With [`Api::verifying`]: whether the bearer token was valid on arrival, or why not.
    pub token_check: Option<Result<(), String>>,
}

impl Recorded {
    /// The `Authorization` header, if any.
    pub fn authorization(&self) -> Option<&str> {
        self.headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
    }
}

#[derive(Default)]
struct Shared {
    scripts: Mutex<HashMap<String, VecDeque<Reply>>>,
    recorded: Mutex<Vec<Recorded>>,
    revoked: Mutex<HashSet<String>>,
    always_unauthorized: Mutex<bool>,
    /// The body of the 200 answered to a request without a scripted reply.
    default_body: Mutex<Option<String>>,
    verifier: Mutex<Option<Verifier>>,
    active: AtomicUsize,
    peak: AtomicUsize,
}

/// Checks bearer tokens as an API would: a JWT signed by the identity provider (its JWKS), for
/// the test audience and issuer, `exp` checked at arrival to the millisecond with no leeway.
pub struct Verifier {
    keys: JwkSet,
    validation: Validation,
}

impl Verifier {
    /// Tokens of the identity provider whose keys are `jwks` and whose issuer is `issuer`.
    pub fn new(jwks: serde_json::Value, issuer: &str) -> Self {
        let keys: JwkSet = serde_json::from_value(jwks).expect("a JWK set");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_audience(&["https://api.tapline.test"]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Self { keys, validation }
    }

    /// The token's claims, or why it is refused.
    pub fn check(&self, authorization: Option<&str>) -> Result<serde_json::Value, String> {
        let token = authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or("no bearer token")?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let jwk = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.find(kid))
            .ok_or("unknown signing key")?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &self.validation)
            .map_err(|e| e.to_string())?
            .claims;
        // jsonwebtoken compares `exp` with the current whole second, which lets a token through
        // for up to a second after it expired; RFC 7519 wants "now" strictly before `exp`.
        let exp_ms = claims["exp"].as_u64().ok_or("no numeric exp")? * 1000;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64;
        if now_ms >= exp_ms {
            return Err(format!("expired {} ms before it arrived", now_ms - exp_ms));
        }
        Ok(claims)
    }
}

/// The running API. It stops when the test's runtime ends.
#[derive(Clone)]
pub struct Api {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Api {
    /// Starts the API on a free loopback port.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let addr = crate::harness::loopback::spawn(app).await;
        Self { addr, shared }
    }

    /// `http://127.0.0.1:<port>/`, for `session.base-url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Queues replies for `path` (e.g. `/items`), one per request, in order.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        self.shared
            .scripts
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .extend(replies);
    }

    /// Checks every bearer token against the identity provider's keys (`iss`, `aud`, `exp` at
    /// arrival to the millisecond, no leeway); a request without a valid one gets 401.
    pub async fn verifying(self, idp: &super::idp::Idp) -> Self {
        let verifier = Verifier::new(idp.jwks().await, &idp.base);
        *self.shared.verifier.lock().unwrap() = Some(verifier);
        self
    }

    /// Answers 401 to every request carrying exactly this `Authorization` value.
    pub fn revoke(&self, authorization: &HeaderValue) {
        let value = authorization.to_str().expect("ASCII header").to_string();
        self.shared.revoked.lock().unwrap().insert(value);
    }

    /// Answers `body` (with 200) to every request that has no scripted reply, instead of
    /// `{"ok":true}`.
    pub fn default_body(&self, body: &str) {
        *self.shared.default_body.lock().unwrap() = Some(body.to_string());
    }

    /// Answers 401 to every request.
    pub fn always_unauthorized(&self) {
        *self.shared.always_unauthorized.lock().unwrap() = true;
    }

    /// Every request so far, in arrival order.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().unwrap().clone()
    }

    /// The most requests the API was handling at the same time.
    pub fn peak_concurrency(&self) -> usize {
        self.shared.peak.load(Ordering::SeqCst)
    }

    /// The requests to `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.recorded()
            .into_iter()
            .filter(|request| request.path == path)
            .collect()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let at = Instant::now();
    let active = shared.active.fetch_add(1, Ordering::SeqCst) + 1;
    shared.peak.fetch_max(active, Ordering::SeqCst);
    let response = respond(&shared, at, request).await;
    shared.active.fetch_sub(1, Ordering::SeqCst);
    response
}

async fn respond(shared: &Shared, at: Instant, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let authorization = parts
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let token_check = shared
        .verifier
        .lock()
        .unwrap()
        .as_ref()
        .map(|verifier| verifier.check(authorization.as_deref()).map(drop));
    shared.recorded.lock().unwrap().push(Recorded {
        at,
        method: parts.method,
        path: path.clone(),
        headers: parts.headers,
        body,
        token_check: token_check.clone(),
    });

    let revoked = authorization
        .as_ref()
        .is_some_and(|value| shared.revoked.lock().unwrap().contains(value));
    if revoked || *shared.always_unauthorized.lock().unwrap() || matches!(token_check, Some(Err(_)))
    {
        return (StatusCode::UNAUTHORIZED, r#"{"error":"invalid_token"}"#).into_response();
    }

    let reply = shared
        .scripts
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let Some(reply) = reply else {
        let body = shared.default_body.lock().unwrap().clone();
        let body = body.unwrap_or_else(|| r#"{"ok":true}"#.to_string());
        return (StatusCode::OK, body).into_response();
    };
    if let Some(hang) = reply.hang {
        tokio::time::sleep(hang).await;
    }
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).expect("a valid status");
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            HeaderValue::from_str(&value).expect("a header value"),
        );
    }
    response
}
