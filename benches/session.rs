//! Throughput of authenticated GETs through the [`Session`] versus a bare `reqwest::Client` that
//! sends a fixed `Authorization` header, against the same loopback server, in the same run.
//!
//! Run with `cargo bench --bench session`. Each configuration is measured in alternating rounds
//! (bare, session, bare, session, …) so that noise from other processes hits both alike; the median
//! and the best round of each are reported.

#[path = "common/rounds.rs"]
mod rounds;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use secrecy::SecretString;
use tapline::auth::{Credentials, Error, FetchedToken, TokenSource};
use tapline::config::SessionConfig;
use tapline::session::Session;

const ROUND: Duration = Duration::from_secs(2);
const ROUNDS: usize = 5;
const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl";

/// A token that never expires, so the benchmark measures the session, not an identity provider.
#[derive(Debug)]
struct FixedToken;

#[async_trait::async_trait]
impl TokenSource for FixedToken {
    async fn fetch(&self) -> Result<FetchedToken, Error> {
        Ok(FetchedToken {
            value: SecretString::from(TOKEN),
            expires_at: None,
        })
    }
}

/// Serves `GET /items` → 200 with a small JSON body on its own runtime thread.
fn start_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = Router::new().route("/items", get(|| async { r#"{"items":[]}"# }));
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

#[derive(Clone)]
enum Target {
    Bare(reqwest::Client, String),
    Session(Session),
}

impl Target {
    async fn get(&self) {
        let response = match self {
            Target::Bare(client, url) => client
                .get(url)
                .header(
                    AUTHORIZATION,
                    HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
                )
                .send()
                .await
                .unwrap(),
            Target::Session(session) => session.get("items").send().await.unwrap(),
        };
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
    }
}

/// Requests per second with `concurrency` loops sending back to back for [`ROUND`].
async fn measure(target: &Target, concurrency: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, done, stop) = (target.clone(), done.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    target.get().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    tokio::time::sleep(ROUND).await;
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let addr = start_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let base = format!("http://{addr}/");
        let bare = Target::Bare(reqwest::Client::new(), format!("{base}items"));
        let config = SessionConfig {
            base_url: Some(base),
            max_in_flight: 64,
            ..SessionConfig::default()
        };
        let credentials = Credentials::from_source(Arc::new(FixedToken));
        let session = Target::Session(
            Session::new(&config, credentials)
                .unwrap()
                .for_task("bench"),
        );
        // Warm up: connections, the token, allocator.
        measure(&bare, 64).await;
        measure(&session, 64).await;

        println!("authenticated GET, loopback, {ROUNDS} alternating rounds of {ROUND:?} each");
        println!(
            "{:>11} {:>6} {:>12} {:>14} {:>7}",
            "concurrency", "", "bare req/s", "session req/s", "ratio"
        );
        for concurrency in [1, 64] {
            let (mut bare_rounds, mut session_rounds) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                bare_rounds.push(measure(&bare, concurrency).await);
                session_rounds.push(measure(&session, concurrency).await);
            }
            for (name, pick) in rounds::PICKS {
                let (bare, session) = (pick(&mut bare_rounds), pick(&mut session_rounds));
                println!(
                    "{concurrency:>11} {name:>6} {bare:>12.0} {session:>14.0} {:>6.1}%",
                    100.0 * session / bare
                );
            }
        }
    });
}
