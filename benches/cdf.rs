//! 1,000,000 datapoints over 1,000 time series from a JSON-lines file into the CDF test server:
//! `tapline run --once` (a `file` task into a `cdf-datapoints` sink) versus Cognite's own
//! `cognite-extractor-utils` `TimeSeriesUploadQueue` with its defaults (`benches/cdf_peer.py`,
//! pinned in `tests/cognite-requirements.txt`, venv in `target/cognite-venv`), the same file and
//! the same server, in the same run: wall time, requests, peak RSS of each process, ratios.
//!
//! The server is the integration tests' (`tests/it/harness/cdf/`), without token checks (no
//! identity provider needed: both sides send a static token); each side gets a fresh one with
//! the 1,000 series created, and what it stored is compared with the file afterwards.
//!
//! Run with `cargo bench --bench cdf` (after `.ci/run` or a CDF test has installed the venv).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[allow(dead_code)]
#[path = "../tests/it/harness/api.rs"]
mod api;
#[allow(dead_code)]
#[path = "../tests/it/harness/cdf/mod.rs"]
mod cdf_server;
#[allow(dead_code)]
#[path = "../tests/it/harness/idp.rs"]
mod idp;
#[allow(dead_code)]
#[path = "../tests/it/harness/loopback.rs"]
mod loopback;
#[path = "../tests/it/harness/rss.rs"]
mod rss;

/// What the test server's modules expect to find at `crate::harness`.
mod harness {
    pub(crate) use super::{api, idp, loopback};
}

/// A unique name (for `idp.rs`; unused here).
#[allow(dead_code)]
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

use cdf_server::CdfServer;

const SERIES: usize = 1_000;
const PER_SERIES: usize = 1_000;
const BASE_TS: i64 = 1_700_000_000_000;

/// Writes the points, timestamp by timestamp across all series (as a poller produces them).
fn write_points(path: &Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for t in 0..PER_SERIES {
        for s in 0..SERIES {
            let value = (s * 7 + t) as f64 / 8.0;
            writeln!(
                out,
                r#"{{"externalId":"ts-{s}","timestamp":{},"value":{value}}}"#,
                BASE_TS + t as i64
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
}

/// A fresh server with the series created, on a runtime thread of its own.
fn start_server() -> CdfServer {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = CdfServer::start("bench", None).await;
            for s in 0..SERIES {
                server.store().add_series(&format!("ts-{s}"), false);
            }
            tx.send(server).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

/// Wall time and peak RSS (KiB) of a child process, which must succeed.
fn measure(command: Command) -> (Duration, u64) {
    let run = rss::measure(
        &command,
        Stdio::inherit(),
        Stdio::inherit(),
        Duration::from_secs(3600),
    );
    assert_eq!(run.code, 0, "{command:?} failed");
    (run.elapsed, run.peak_kib)
}

/// One side's numbers.
struct Result {
    wall: Duration,
    requests: usize,
    rss_kib: u64,
    /// Time the server spent answering (the same work for both sides).
    server: Duration,
}

impl Result {
    fn of(wall: Duration, rss_kib: u64, server: &CdfServer) -> Self {
        let seen = server.seen();
        Self {
            wall,
            requests: seen.len(),
            rss_kib,
            server: seen.iter().map(|s| s.took).sum(),
        }
    }
}

fn check_stored(server: &CdfServer) {
    let store = server.store();
    let total: usize = store.series.values().map(|s| s.points.len()).sum();
    assert_eq!(total, SERIES * PER_SERIES, "every point stored once");
    let sample = &store.series["ts-7"].points;
    let expected = (7 * 7 + 999) as f64 / 8.0;
    assert_eq!(
        sample[&(BASE_TS + 999)].as_f64(),
        Some(expected),
        "values equal"
    );
}

fn tapline(points: &Path, dir: &Path) -> Result {
    let server = start_server();
    let config = dir.join("tapline.yaml");
    std::fs::write(
        &config,
        format!(
            "auth: {{type: token, token: bench-token}}\ncdf: {{project: bench, base-url: '{}'}}\nstate: {{path: '{}'}}\nlogging: {{level: warn}}\ntasks:\n  - name: points\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{path: '{}'}}\n    sink: {{type: cdf-datapoints, external-id: /externalId, timestamp: /timestamp, value: /value, batch-size: 100000}}\n",
            server.base_url(),
            dir.join("state.json").display(),
            points.display()
        ),
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join("state.json"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_tapline"));
    command.args(["run", "--once", "-c"]).arg(&config);
    let (wall, rss_kib) = measure(command);
    check_stored(&server);
    Result::of(wall, rss_kib, &server)
}

fn peer(points: &Path) -> Result {
    let server = start_server();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/cognite-venv/bin/python");
    assert!(python.exists(), "install the peer first: python3 -m venv target/cognite-venv && target/cognite-venv/bin/pip install -r tests/cognite-requirements.txt");
    let mut command = Command::new(python);
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/cdf_peer.py"))
        .arg(points)
        .env("COGNITE_BASE_URL", server.base_url())
        .env("COGNITE_PROJECT", "bench")
        .env("COGNITE_TOKEN", "bench-token")
        .env("PYTHONWARNINGS", "ignore");
    let (wall, rss_kib) = measure(command);
    check_stored(&server);
    Result::of(wall, rss_kib, &server)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let points: PathBuf = dir.path().join("points.jsonl");
    write_points(&points);
    println!(
        "cdf datapoints: {} points over {SERIES} series from JSON lines into the CDF test server",
        SERIES * PER_SERIES
    );
    let peer = peer(&points);
    let ours = tapline(&points, dir.path());
    println!(
        "{:>28} {:>10} {:>9} {:>13} {:>9}",
        "", "wall s", "requests", "peak RSS MiB", "server s"
    );
    for (name, side) in [("extractor-utils (defaults)", &peer), ("tapline", &ours)] {
        println!(
            "{name:>28} {:>10.2} {:>9} {:>13.1} {:>9.2}",
            side.wall.as_secs_f64(),
            side.requests,
            side.rss_kib as f64 / 1024.0,
            side.server.as_secs_f64()
        );
    }
    println!(
        "ratios (peer / tapline): wall {:.1}x, requests {:.2}x, peak RSS {:.1}x",
        peer.wall.as_secs_f64() / ours.wall.as_secs_f64(),
        peer.requests as f64 / ours.requests as f64,
        peer.rss_kib as f64 / ours.rss_kib as f64
    );
}
