//! `buffer: {type: disk}` end to end: real `tapline run` processes (killed with SIGKILL or
//! stopped with SIGTERM where the scenario says so), a `file` source, and a loopback HTTP ingest
//! API that can be down, flaky or slow.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use rand::Rng;
use serde_json::Value;

use crate::harness::cli::tapline;
use crate::harness::loopback::{free_port, get, serve, Loopback};
use crate::harness::process::Proc;
use crate::runner::metric;

/// How the ingest API answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Up,
    /// 503 to everything.
    Down,
    /// 503 to every `n`th request.
    Flaky(usize),
    /// Answers after this long.
    Slow(Duration),
}

/// The ingest API: every batch it accepted, in order.
struct Ingest {
    mode: Mutex<Mode>,
    accepted: Mutex<Vec<Vec<u64>>>,
    requests: AtomicUsize,
}

async fn receive(State(api): State<Arc<Ingest>>, Json(body): Json<Value>) -> StatusCode {
    let request = api.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let mode = *api.mode.lock().unwrap();
    match mode {
        Mode::Down => return StatusCode::SERVICE_UNAVAILABLE,
        Mode::Flaky(every) if request.is_multiple_of(every) => {
            return StatusCode::SERVICE_UNAVAILABLE
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let batch = body["items"].as_array().unwrap().iter();
    let batch = batch.map(|record| record["n"].as_u64().unwrap()).collect();
    api.accepted.lock().unwrap().push(batch);
    StatusCode::OK
}

/// A temp dir with the data file, the config and the state; the ingest API; the metrics port.
struct Setup {
    dir: tempfile::TempDir,
    api: Arc<Ingest>,
    server: Loopback,
    port: u16,
    lines: u64,
}

impl Setup {
    fn new(mode: Mode) -> Self {
        let api = Arc::new(Ingest {
            mode: Mutex::new(mode),
            accepted: Mutex::default(),
            requests: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/ingest", post(receive))
            .with_state(api.clone());
        let setup = Self {
            dir: tempfile::tempdir().unwrap(),
            api,
            server: serve(router),
            port: free_port(),
            lines: 0,
        };
        std::fs::write(setup.path("data.jsonl"), "").unwrap();
        setup
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// A config with one buffered `file` task, `buffer` holding extra buffer keys.
    fn config(&self, buffer: &str) -> PathBuf {
        let text = format!(
            "auth: {{type: none}}
state: {{path: '{state}'}}
server: {{listen: '127.0.0.1:{port}'}}
shutdown: {{grace-period: 2s}}
session: {{retries: {{max-retries: 0, initial-backoff: 50ms, max-backoff: 200ms}}}}
tasks:
  - name: buffered
    type: file
    schedule: {{interval: 200ms}}
    source: {{path: '{data}'}}
    sink: {{type: http, path: '{base}/ingest', batch-size: 100}}
    buffer: {{type: disk, flush-interval: 100ms{buffer}}}
",
            state = self.path("state.json").display(),
            port = self.port,
            data = self.path("data.jsonl").display(),
            base = self.server.base(),
        );
        let path = self.path("tapline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn start(&self, config: &PathBuf, name: &str) -> Proc {
        let mut command = tapline();
        command.args(["run", "-c"]).arg(config);
        Proc::start(command, self.dir.path(), name)
    }

    /// Appends `count` more `{"n":…}` lines, padded with `pad` bytes.
    fn add_lines(&mut self, count: u64, pad: usize) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("data.jsonl"))
            .unwrap();
        let padding = "x".repeat(pad);
        let text: String = (self.lines + 1..=self.lines + count)
            .map(|n| format!("{{\"n\":{n},\"pad\":\"{padding}\"}}\n"))
            .collect();
        file.write_all(text.as_bytes()).unwrap();
        self.lines += count;
    }

    fn set_mode(&self, mode: Mode) {
        *self.api.mode.lock().unwrap() = mode;
    }

    /// Every record the API accepted, in order.
    fn received(&self) -> Vec<u64> {
        self.api.accepted.lock().unwrap().concat()
    }

    /// The file offset saved in the state file on disk (0 before the first save).
    fn offset_on_disk(&self) -> u64 {
        let state = std::fs::read(self.path("state.json")).ok();
        let state: Option<Value> = state.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        state
            .and_then(|s| s["tasks"]["buffered"]["files"][0]["offset"].as_u64())
            .unwrap_or(0)
    }

    fn data_size(&self) -> u64 {
        std::fs::metadata(self.path("data.jsonl")).unwrap().len()
    }

    /// A buffer gauge of the running process, or -1 while it cannot be read.
    fn gauge(&self, name: &str) -> f64 {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match runtime.block_on(get(&url)) {
            Some((200, text)) if text.contains(name) => {
                metric(&text, name, &[("task", "buffered")])
            }
            _ => -1.0,
        }
    }

    /// The newest segment file of the task's buffer (beside the state file by default).
    fn newest_segment(&self) -> PathBuf {
        let dir = self.path("buffer/buffered");
        let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "seg"))
            .collect();
        segments.sort();
        segments.pop().expect("a segment")
    }
}

/// Waits up to `limit` for `done`, polling; panics with `what` and the process's stderr.
fn wait_for(limit: Duration, what: &str, proc: &Proc, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stderr:\n{}",
            proc.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops `proc` with SIGTERM and checks it exits 0 within `limit`.
fn stop(mut proc: Proc, limit: Duration) {
    proc.signal(libc::SIGTERM);
    assert_eq!(proc.wait(limit), 0, "{}", proc.stderr_text());
}

/// The records in the order they first arrived, and how many arrived again.
fn first_arrivals(received: &[u64]) -> (Vec<u64>, usize) {
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<u64> = received
        .iter()
        .copied()
        .filter(|n| seen.insert(*n))
        .collect();
    let again = received.len() - firsts.len();
    (firsts, again)
}

/// The outage: the sink answers 503 for the whole time the source gains 5,000 lines
/// (about 2 s here instead of 60 s: what matters is that nothing gets through while the source
/// keeps being read), then recovers.
#[test]
fn during_a_sink_outage_the_source_is_read_into_the_buffer_and_delivered_in_order_after() {
    let mut setup = Setup::new(Mode::Down);
    let config = setup.config("");
    let proc = setup.start(&config, "outage");
    for _ in 0..10 {
        setup.add_lines(500, 0);
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_for(Duration::from_secs(15), "every line read", &proc, || {
        setup.offset_on_disk() == setup.data_size()
    });
    wait_for(Duration::from_secs(5), "5,000 buffered", &proc, || {
        setup.gauge("tapline_buffer_records") == 5000.0
    });
    assert!(setup.gauge("tapline_buffer_bytes") > 5000.0 * 12.0);
    assert!(setup.gauge("tapline_buffer_oldest_record_age_seconds") > 0.5);
    assert!(setup.received().is_empty());
    assert!(
        setup.api.requests.load(Ordering::SeqCst) > 0,
        "the sink was never tried"
    );

    setup.set_mode(Mode::Up);
    wait_for(
        Duration::from_secs(15),
        "delivery after recovery",
        &proc,
        || setup.received().len() >= 5000,
    );
    assert_eq!(setup.received(), (1..=5000).collect::<Vec<_>>());
    wait_for(Duration::from_secs(5), "an empty buffer", &proc, || {
        setup.gauge("tapline_buffer_records") == 0.0
            && setup.gauge("tapline_buffer_delivered_total") == 5000.0
    });
    stop(proc, Duration::from_secs(10));
}

/// SIGKILL at 10 random moments while lines arrive and a flaky sink takes them: no line is
/// missing, first arrivals keep the file's order, and what arrives twice is bounded by what can
/// be in flight at a kill (the batch being delivered, and the step appended but whose offset
/// was not saved yet: two batches per kill).
#[test]
fn kill_9_at_random_moments_loses_no_line_and_repeats_only_batches_in_flight() {
    let mut setup = Setup::new(Mode::Flaky(3));
    let config = setup.config("");
    let mut rng = rand::rng();
    let kills = 10;
    for round in 0..kills {
        setup.add_lines(1000, 0);
        let mut proc = setup.start(&config, &format!("kill-{round}"));
        std::thread::sleep(Duration::from_millis(rng.random_range(100..700)));
        proc.signal(libc::SIGKILL);
        proc.wait(Duration::from_secs(5));
    }
    setup.add_lines(1000, 0);
    let proc = setup.start(&config, "after-kills");
    wait_for(
        Duration::from_secs(40),
        "every line delivered",
        &proc,
        || first_arrivals(&setup.received()).0.len() as u64 == setup.lines,
    );
    let (firsts, again) = first_arrivals(&setup.received());
    assert_eq!(firsts, (1..=setup.lines).collect::<Vec<_>>());
    assert!(
        again <= kills * 2 * 100,
        "{again} records arrived twice after {kills} kills"
    );
    stop(proc, Duration::from_secs(10));
}

/// A buffer at `max-size` with `when-full: block`: the source's offset stops moving while the
/// sink is down, and moves on to the end once the sink takes records.
#[test]
fn a_full_buffer_blocks_the_source_until_the_sink_frees_room() {
    let mut setup = Setup::new(Mode::Down);
    setup.add_lines(20_000, 40);
    let config = setup.config(", max-size: 64KiB, when-full: block");
    let proc = setup.start(&config, "full");
    // The run says when it blocks: until then the last appends may still fit (the gauge alone
    // raced with one more append of the last few KiB).
    wait_for(Duration::from_secs(10), "a full buffer", &proc, || {
        proc.stderr_text().contains("buffer is full")
    });
    let blocked_at = setup.offset_on_disk();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(setup.offset_on_disk(), blocked_at, "the source was read on");
    assert!(blocked_at < setup.data_size() / 10, "offset {blocked_at}");
    let bytes = setup.gauge("tapline_buffer_bytes");
    assert!(
        bytes > 60_000.0 && bytes <= 65536.0,
        "{bytes} bytes in a full 64KiB buffer"
    );

    setup.set_mode(Mode::Up);
    wait_for(
        Duration::from_secs(30),
        "every line delivered",
        &proc,
        || setup.received().len() >= 20_000,
    );
    assert_eq!(setup.received(), (1..=20_000).collect::<Vec<_>>());
    assert_eq!(setup.offset_on_disk(), setup.data_size());
    stop(proc, Duration::from_secs(10));
}

/// The newest segment loses its last bytes (a write torn by a crash): the next start succeeds,
/// says so, and delivers every record before the torn one.
#[test]
fn a_torn_tail_is_dropped_and_every_record_before_it_is_delivered() {
    let mut setup = Setup::new(Mode::Down);
    setup.add_lines(1000, 0);
    let config = setup.config("");
    let mut proc = setup.start(&config, "before-tear");
    wait_for(Duration::from_secs(10), "1,000 buffered", &proc, || {
        setup.gauge("tapline_buffer_records") == 1000.0
    });
    proc.signal(libc::SIGKILL);
    proc.wait(Duration::from_secs(5));
    let segment = setup.newest_segment();
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.set_len(len - 5).unwrap();

    setup.set_mode(Mode::Up);
    let proc = setup.start(&config, "after-tear");
    wait_for(Duration::from_secs(10), "delivery", &proc, || {
        setup.received().len() >= 999
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(setup.received(), (1..=999).collect::<Vec<_>>());
    assert!(
        proc.stderr_text().contains("torn write"),
        "{}",
        proc.stderr_text()
    );
    stop(proc, Duration::from_secs(10));
}

/// SIGTERM with 10,000 records buffered and a slow sink: the process delivers on through the
/// grace period (2 s), exits within it, and the next start delivers the rest.
#[test]
fn sigterm_drains_for_the_grace_period_and_the_next_start_delivers_the_rest() {
    let mut setup = Setup::new(Mode::Down);
    setup.add_lines(10_000, 0);
    let config = setup.config("");
    let proc = setup.start(&config, "before-term");
    wait_for(Duration::from_secs(15), "10,000 buffered", &proc, || {
        setup.gauge("tapline_buffer_records") == 10_000.0
    });
    setup.set_mode(Mode::Slow(Duration::from_millis(200)));
    std::thread::sleep(Duration::from_millis(500));
    let at_term = setup.received().len();
    let sent = Instant::now();
    stop(proc, Duration::from_secs(10));
    let took = sent.elapsed();
    let after_term = setup.received().len();
    assert!(took < Duration::from_millis(3500), "exit took {took:?}");
    assert!(after_term > at_term, "nothing was delivered after SIGTERM");
    assert!(
        after_term < 10_000,
        "the slow sink took everything: {after_term}"
    );

    setup.set_mode(Mode::Up);
    let proc = setup.start(&config, "after-term");
    wait_for(Duration::from_secs(15), "the rest delivered", &proc, || {
        first_arrivals(&setup.received()).0.len() == 10_000
    });
    let (firsts, again) = first_arrivals(&setup.received());
    assert_eq!(firsts, (1..=10_000).collect::<Vec<_>>());
    assert!(again <= 100, "{again} records arrived twice");
    stop(proc, Duration::from_secs(10));
}

#[test]
fn bad_buffer_keys_are_reported_with_their_paths() {
    let setup = Setup::new(Mode::Up);
    let config = setup.config(", max-size: 10, when-full: maybe, path: ''");
    let out = crate::harness::cli::run(tapline().args(["validate", "-c"]).arg(&config));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("tasks[0].buffer.when-full"),
        "{}",
        out.stderr
    );
    let config = setup.config(", max-size: 10, path: ''");
    let out = crate::harness::cli::run(tapline().args(["validate", "-c"]).arg(&config));
    assert_eq!(out.code, 2, "{}", out.stderr);
    for key in ["tasks[0].buffer.max-size", "tasks[0].buffer.path"] {
        assert!(out.stderr.contains(key), "{key}: {}", out.stderr);
    }
}
