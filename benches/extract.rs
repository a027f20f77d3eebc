//! Throughput of an `http-poll` run end to end versus a bare reqwest + serde_json loop doing the
//! same work, against the same loopback server, in the same run.
//!
//! The source serves [`PAGES`] pages of one record each, linked by `next`. Each round either runs
//! the `http-poll` task once through the library's runner (config from YAML text, `--once`
//! semantics, `jsonl` sink in a temporary directory), or runs the bare loop: GET, parse, take
//! `/items`, gather records until a batch of `batch-size` is full, append it to a JSON-lines file
//! and fsync it, follow `/next`, and write the last partial batch at the end. Both write the same
//! batches (six of 500 records), so the fsyncs are the same too.
//!
//! Run with `cargo bench --bench extract`. Rounds alternate (bare, tapline, bare, …) so that
//! noise from other processes hits both alike; the median and the best round are reported.

/// The allocator the `tapline` binary runs with (`src/main.rs`): the runner runs in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/rounds.rs"]
mod rounds;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path as UrlPath, State};
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tapline::Registry;
use url::Url;

const PAGES: usize = 3_000;
const ROUNDS: usize = 5;
/// The jsonl sink's default `batch-size`; the bare loop cuts its batches the same way.
const BATCH_SIZE: usize = 500;

/// Serves `GET /pages/{n}` → `{"items": [one record], "next": "/pages/{n+1}"}` (null after the
/// last page) on its own runtime thread. Bodies are rendered once, so serving costs the same
/// for both sides.
fn start_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..PAGES)
            .map(|n| {
                let next = (n + 1 < PAGES).then(|| format!("/pages/{}", n + 1));
                json!({"items": [{"id": n, "value": 1.5, "name": "reading"}], "next": next})
                    .to_string()
            })
            .collect(),
    );
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = Router::new()
                .route(
                    "/pages/{n}",
                    get(
                        |State(bodies): State<Arc<Vec<String>>>, UrlPath(n): UrlPath<usize>| async move {
                            ([(CONTENT_TYPE, "application/json")], bodies[n].clone())
                        },
                    ),
                )
                .with_state(bodies);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

/// One `http-poll` run through the runner, into `out`.
async fn tapline_round(first: &str, dir: &Path, out: &Path) {
    let yaml = format!(
        "auth: {{type: none}}\nstate: {{path: '{state}'}}\ntasks:\n  - name: extract\n    type: http-poll\n    schedule: {{interval: 1h}}\n    source: {{url: '{first}', records: /items, next: /next}}\n    sink: {{type: jsonl, path: '{out}', batch-size: {BATCH_SIZE}}}\n",
        state = dir.join("state.json").display(),
        out = out.display(),
    );
    let path = dir.join("tapline.yaml");
    std::fs::write(&path, yaml).unwrap();
    let registry = Registry::builtin();
    let config = registry.load(&path).unwrap();
    registry
        .runner(config)
        .unwrap()
        .once(true)
        .handle_signals(false)
        .run()
        .await
        .unwrap();
}

/// The same pages with a bare client: GET, parse, append + fsync each batch, follow `next`.
async fn bare_round(first: &str, out: &Path) {
    let client = reqwest::Client::new();
    let mut url = Url::parse(first).unwrap();
    let mut pending = Vec::with_capacity(BATCH_SIZE);
    loop {
        let response = client.get(url.clone()).send().await.unwrap();
        assert!(response.status().is_success());
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        let records = body.pointer("/items").and_then(Value::as_array).unwrap();
        for record in records {
            pending.push(record.clone());
            if pending.len() == BATCH_SIZE {
                append(out.to_path_buf(), &pending).await;
                pending.clear();
            }
        }
        match body.pointer("/next").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => url = url.join(next).unwrap(),
            _ => break,
        }
    }
    if !pending.is_empty() {
        append(out.to_path_buf(), &pending).await;
    }
}

/// What the jsonl sink does with a batch: one line per record, appended and fsynced (data).
async fn append(path: PathBuf, batch: &[Value]) {
    let mut text = Vec::new();
    for record in batch {
        serde_json::to_writer(&mut text, record).unwrap();
        text.push(b'\n');
    }
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(&text)?;
        file.sync_data()
    })
    .await
    .unwrap()
    .unwrap();
}

#[derive(Clone, Copy)]
enum Side {
    Bare,
    Tapline,
}

/// Pages per second of one round of `side`, after checking every record arrived once.
async fn measure(side: Side, first: &str, dir: &Path) -> f64 {
    let out = dir.join("out.jsonl");
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(dir.join("state.json"));
    let started = Instant::now();
    match side {
        // Spawned, like the runner's task runs: `block_on`'s own future runs outside the worker.
        Side::Bare => {
            let (first, out) = (first.to_string(), out.clone());
            tokio::spawn(async move { bare_round(&first, &out).await })
                .await
                .unwrap()
        }
        Side::Tapline => tapline_round(first, dir, &out).await,
    }
    let elapsed = started.elapsed();
    let written = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(written, PAGES, "every record once");
    PAGES as f64 / elapsed.as_secs_f64()
}

fn main() {
    let addr = start_server();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let first = format!("http://{addr}/pages/0");
        // Warm up: connections, page cache, allocator.
        measure(Side::Bare, &first, dir.path()).await;
        measure(Side::Tapline, &first, dir.path()).await;

        println!(
            "http-poll extract: {PAGES} one-record pages over loopback into jsonl \
             (append + fsync per batch), {ROUNDS} alternating rounds"
        );
        let (mut bare, mut tapline) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            bare.push(measure(Side::Bare, &first, dir.path()).await);
            tapline.push(measure(Side::Tapline, &first, dir.path()).await);
        }
        println!(
            "rounds, pages/s: bare {:?}, tapline {:?}",
            bare.iter().map(|r| r.round()).collect::<Vec<_>>(),
            tapline.iter().map(|r| r.round()).collect::<Vec<_>>()
        );
        println!(
            "{:>6} {:>13} {:>16} {:>7}",
            "", "bare pages/s", "tapline pages/s", "ratio"
        );
        for (name, pick) in rounds::PICKS {
            let (bare, tapline) = (pick(&mut bare), pick(&mut tapline));
            println!(
                "{name:>6} {bare:>13.0} {tapline:>16.0} {:>6.1}%",
                100.0 * tapline / bare
            );
        }
    });
}
