//! The telemetry server: `/healthz`, `/readyz`, `/metrics`.
//!
//! `/healthz` answers 200 for as long as the process serves. `/readyz` answers 200 only once the
//! startup tasks are done and a token was obtained (or auth is `none`), and 503 while the token
//! cannot be refreshed past its expiry, while the state file cannot be saved (cursors would be
//! lost at the next restart), while a replica cannot reach its coordination backend, and during
//! shutdown, so a load balancer or the kubelet stops sending
//! work before the process stops.
//!
//! [`serve`] runs the routes within [`Limits`], so that clients that
//! never finish a request cannot crowd out the probes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use super::listener::{serve_on, Limits};

/// The flags `/readyz` is computed from; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    startup_done: AtomicBool,
    token_ok: AtomicBool,
    // Inverted so that the default (no save failed yet) is ready.
    state_failed: AtomicBool,
    // Inverted so that a process without coordination is ready.
    coordination_failed: AtomicBool,
    shutting_down: AtomicBool,
}

impl Readiness {
    /// Not ready: startup not done, no token yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The startup tasks have all finished.
    pub fn set_startup_done(&self) {
        self.inner.startup_done.store(true, Ordering::Release);
    }

    /// Whether a valid token is at hand (always true with `auth: none`).
    pub fn set_token_ok(&self, ok: bool) {
        self.inner.token_ok.store(ok, Ordering::Release);
    }

    /// Whether the last save of the state file succeeded.
    pub fn set_state_ok(&self, ok: bool) {
        self.inner.state_failed.store(!ok, Ordering::Release);
    }

    /// Whether this replica is a healthy member (its last coordination round succeeded); a
    /// member holding no task is ready too.
    pub fn set_coordination_ok(&self, ok: bool) {
        self.inner.coordination_failed.store(!ok, Ordering::Release);
    }

    /// Shutdown has started; readiness never comes back.
    pub fn set_shutting_down(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.inner.startup_done.load(Ordering::Acquire)
            && self.inner.token_ok.load(Ordering::Acquire)
            && !self.inner.state_failed.load(Ordering::Acquire)
            && !self.inner.coordination_failed.load(Ordering::Acquire)
            && !self.inner.shutting_down.load(Ordering::Acquire)
    }
}

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct ServerState {
    /// The readiness flags.
    pub readiness: Readiness,
    /// The Prometheus recorder, when installed.
    pub metrics: Option<PrometheusHandle>,
}

/// The routes, without a socket, so tests can drive them with `oneshot`.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Binds `listen` and serves [`router`] within the default [`Limits`] until the process ends.
pub async fn serve(
    listen: std::net::SocketAddr,
    state: ServerState,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, "telemetry server listening");
    Ok(tokio::spawn(serve_on(
        listener,
        router(state),
        Limits::default(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn status(state: &ServerState, path: &str) -> StatusCode {
        router(state.clone())
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn readyz_follows_the_flags() {
        let state = ServerState {
            readiness: Readiness::new(),
            metrics: None,
        };
        assert_eq!(status(&state, "/healthz").await, StatusCode::OK);
        assert_eq!(
            status(&state, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.readiness.set_startup_done();
        assert_eq!(
            status(&state, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.readiness.set_token_ok(true);
        assert_eq!(status(&state, "/readyz").await, StatusCode::OK);
        state.readiness.set_state_ok(false);
        assert_eq!(
            status(&state, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        state.readiness.set_state_ok(true);
        assert_eq!(status(&state, "/readyz").await, StatusCode::OK);
        state.readiness.set_shutting_down();
        assert_eq!(
            status(&state, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(&state, "/healthz").await, StatusCode::OK);
    }
}
