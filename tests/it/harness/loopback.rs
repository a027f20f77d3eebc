//! Loopback HTTP servers for tests: any axum router on `127.0.0.1:<free port>`, served from its
//! own thread so that tests driving the binary synchronously can use them too.

use std::net::SocketAddr;

/// A router served on a free loopback port until the test binary exits.
pub struct Loopback {
    pub addr: SocketAddr,
}

impl Loopback {
    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Serves `router` on a free loopback port.
pub fn serve(router: axum::Router) -> Loopback {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
    });
    Loopback { addr }
}

/// Serves `router` on a free loopback port from the calling runtime (it stops with it).
pub async fn spawn(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A free loopback port (bound, then released) for `server.listen`.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `url` with a plain blocking-free client; returns status and body.
pub async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}
