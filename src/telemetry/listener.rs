//! The telemetry server's accept loop, within [`Limits`].
//!
//! The port may be reachable from more than the kubelet and Prometheus, so what one client can
//! hold is bounded: a request head must arrive in time, and the open connections are capped in a
//! way that still lets `/healthz` in (see [`ConnectionLimit`]). Without these, 500 half-sent
//! requests stayed open for over a minute and used up the process's file handles. hyper's
//! HTTP/1 connection does the timing; this module only accepts, admits and closes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tower_service::Service;

use super::connection_limit::{Admission, ConnectionLimit};

/// What one client may hold of the server.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a client has to send a request's head, counted from when the server starts
    /// waiting for it: at connect, and after each response. So it is the keep-alive idle timeout
    /// too; a connection that sends nothing for this long is closed.
    pub header_timeout: Duration,
    /// The most connections open at once. At the cap, a new connection displaces the oldest idle
    /// one (still sending its request head, or between requests), or is closed at once when all
    /// are busy answering.
    pub max_connections: usize,
}

impl Default for Limits {
    /// 10 s is ample for a probe or a scrape on a cluster network; Prometheus reconnects when
    /// its keep-alive connection was closed in between. 256 connections are far more than the
    /// kubelet and a few Prometheus replicas need, and far below the usual file-handle limit.
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}

/// Serves `router` on `listener` within `limits`, for as long as the future is polled.
pub async fn serve_on(listener: TcpListener, router: Router, limits: Limits) {
    let connections = ConnectionLimit::new(limits.max_connections);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file handles, most likely: pause rather than spin, then try again.
                tracing::warn!(%error, "telemetry server cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match connections.admit() {
            Some(admission) => {
                tokio::spawn(serve_connection(
                    http.clone(),
                    stream,
                    router.clone(),
                    admission,
                ));
            }
            None => tracing::debug!("telemetry server busy; connection closed"),
        }
    }
}

/// Serves one connection until it ends, fails its header timeout, or is displaced.
async fn serve_connection(
    http: http1::Builder,
    stream: TcpStream,
    router: Router,
    admission: Admission,
) {
    let admission = Arc::new(admission);
    let service = {
        let admission = admission.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = admission.busy();
            let mut router = router.clone();
            async move {
                let response = router.call(request).await;
                drop(busy);
                response
            }
        })
    };
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "telemetry connection ended");
            }
        }
        () = admission.displaced() => tracing::debug!("telemetry connection displaced by a newer one"),
    }
}

/// The server on a real loopback socket, with raw TCP clients that misbehave.
#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    use super::*;
    use crate::telemetry::server::{router, Readiness, ServerState};

    /// The real router, served within `limits` on a free loopback port.
    async fn start(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ServerState {
            readiness: Readiness::new(),
            metrics: None,
        };
        tokio::spawn(serve_on(listener, router(state), limits));
        addr
    }

    /// A connection that sent half a request line and then nothing.
    async fn half_sent(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /healthz HT").await.unwrap();
        stream
    }

    /// Sends a whole `GET /healthz` on `stream` and reads the response head and body.
    async fn get_healthz(stream: &mut TcpStream, close: bool) -> String {
        let connection = if close { "close" } else { "keep-alive" };
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let mut buf = [0; 1024];
        while !response.ends_with(b"ok\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&response).into_owned()
    }

    /// Whether the server closes `stream` (end of stream or reset) within `limit`; a hang guard,
    /// not a speed check.
    async fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
        let mut buf = [0; 256];
        let closed = async {
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        tokio::time::timeout(limit, closed).await.is_ok()
    }

    /// Whether the server has closed `stream`, without waiting.
    fn is_closed(stream: &TcpStream) -> bool {
        let mut buf = [0; 256];
        match stream.try_read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
        }
    }

    #[tokio::test]
    async fn healthz_gets_in_while_500_half_sent_connections_are_open() {
        let limits = Limits {
            header_timeout: Duration::from_secs(300),
            max_connections: 256,
        };
        let addr = start(limits).await;
        let mut stalled = Vec::new();
        for _ in 0..500 {
            stalled.push(half_sent(addr).await);
        }

        let mut probe = TcpStream::connect(addr).await.unwrap();
        let response = tokio::time::timeout(Duration::from_secs(20), get_healthz(&mut probe, true))
            .await
            .expect("/healthz did not answer");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");

        // The server keeps at most 256 connections: the oldest stalled ones were closed.
        let must_close = stalled.len() - limits.max_connections;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut closed = 0;
        while Instant::now() < deadline {
            closed = stalled.iter().filter(|stream| is_closed(stream)).count();
            if closed >= must_close {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            closed >= must_close,
            "only {closed} of 500 stalled connections were closed; the server holds the rest"
        );
    }

    #[tokio::test]
    async fn a_half_sent_request_is_closed_after_the_header_timeout() {
        let addr = start(Limits {
            header_timeout: Duration::from_millis(500),
            ..Limits::default()
        })
        .await;
        let mut stream = half_sent(addr).await;

        assert!(
            closed_by_server(&mut stream, Duration::from_secs(20)).await,
            "the half-sent connection was still open after 20 s"
        );
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
        let addr = start(Limits {
            header_timeout: Duration::from_millis(500),
            ..Limits::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let response = get_healthz(&mut stream, false).await;
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");

        assert!(
            closed_by_server(&mut stream, Duration::from_secs(20)).await,
            "the idle keep-alive connection was still open after 20 s"
        );
    }
}
