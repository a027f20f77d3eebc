//! The `tapline` process: signals, exit codes, the state file, the quickstart, the example.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::harness::cli::{run, tapline};
use crate::harness::loopback::{self, serve};
use crate::harness::process::{example, Proc};
use crate::runner::metric;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn the_quickstart_copies_the_sample_data_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&root.join("config"), &dir.path().join("config"));
    copy_dir(
        &root.join("examples/data"),
        &dir.path().join("examples/data"),
    );
    let expected: usize = std::fs::read_dir(root.join("examples/data"))
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert!(expected > 0);
    for _ in 0..2 {
        let out = run(tapline()
            .args(["run", "--once", "-c", "config/quickstart.yaml"])
            .current_dir(dir.path()));
        assert_eq!(out.code, 0, "{}", out.stderr);
        let copied = std::fs::read_to_string(dir.path().join("out/quickstart.jsonl")).unwrap();
        assert_eq!(
            copied.lines().count(),
            expected,
            "a second run copied the data again"
        );
        for line in copied.lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
}

#[test]
fn validate_reports_task_option_problems_with_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "tapline.yaml",
        "auth: {type: none}\ntasks:\n  - name: a\n    type: http-poll\n    schedule: {interval: 1m}\n    source: {url: 'http://127.0.0.1/x', records: items, extra: 1}\n    sink: {type: stdout}\n  - name: b\n    type: file\n    schedule: startup\n    source: {path: '[unclosed'}\n    sink: {type: stdout}\n",
    );
    let out = crate::harness::cli::validate(&config);
    assert_eq!(out.code, 2, "{}", out.all_output());
    assert!(
        out.stderr
            .contains("tasks[0].source.extra: unknown key \"extra\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("tasks[1].source.path"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_failing_startup_task_exits_1_and_no_other_task_runs() {
    let dir = tempfile::tempdir().unwrap();
    let port = loopback::free_port();
    let out_file = dir.path().join("out.jsonl");
    write(dir.path(), "data.jsonl", "{\"a\": 1}\n");
    // A source without auth is retried like the session's requests: keep the retries short.
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {state}}}\nsession: {{retries: {{max-retries: 1, initial-backoff: 10ms}}}}\ntasks:\n  - name: boot\n    type: http-poll\n    schedule: startup\n    source: {{url: 'http://127.0.0.1:{port}/nothing-listens'}}\n    sink: {{type: stdout}}\n  - name: copy\n    type: file\n    schedule: {{interval: 1s}}\n    source: {{path: '{data}'}}\n    sink: {{type: jsonl, path: '{out}'}}\n",
            state = dir.path().join("state.json").display(),
            data = dir.path().join("data.jsonl").display(),
            out = out_file.display(),
        ),
    );
    let out = run(tapline().args(["run", "-c"]).arg(&config));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("startup task \"boot\" failed"),
        "{}",
        out.stderr
    );
    assert!(
        !out_file.exists(),
        "a task ran after the startup task failed"
    );
}

#[test]
fn sigterm_during_a_run_exits_0_within_the_grace_period_and_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let arrivals = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = arrivals.clone();
    let source = serve(Router::new().route(
        "/hang",
        get(
            move |Query(query): Query<std::collections::HashMap<String, String>>| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .push(query.get("since").cloned().unwrap_or_default());
                    tokio::time::sleep(Duration::from_secs(120)).await;
                    Json(json!([]))
                }
            },
        ),
    ));
    let state_path = dir.path().join("state.json");
    let state =
        json!({"version": 1, "tasks": {"poll": {"cursor": "c-7"}, "other": {"offsets": {"a": 3}}}});
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {}}}\nshutdown: {{grace-period: 60s}}\ntasks:\n  - name: poll\n    type: http-poll\n    schedule: {{interval: 1h}}\n    source: {{url: '{}/hang?since={{cursor}}'}}\n    sink: {{type: stdout}}\n",
            state_path.display(),
            source.base()
        ),
    );
    let mut command = tapline();
    command.args(["run", "-c"]).arg(&config);
    let mut proc = Proc::start(command, dir.path(), "tapline");
    let deadline = Instant::now() + Duration::from_secs(20);
    while arrivals.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the run never reached the source:\n{}",
            proc.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        arrivals.lock().unwrap()[0],
        "c-7",
        "the saved cursor was not used"
    );
    let signalled = Instant::now();
    proc.signal(libc::SIGTERM);
    let code = proc.wait(Duration::from_secs(15));
    assert_eq!(code, 0, "{}", proc.stderr_text());
    // The grace period is 60 s: exiting well before it means the hanging run was cancelled.
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?}: the run was not cancelled",
        signalled.elapsed()
    );
    let saved: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(saved, state, "the state changed or was lost");
}

/// Starts `tapline run` with a task whose run cannot be cancelled: its jsonl sink opens a FIFO
/// for writing, which blocks until a reader comes, and none does.
fn start_stuck(dir: &Path, grace_period: &str) -> Proc {
    let fifo = dir.join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    write(dir, "data.jsonl", "{\"a\": 1}\n");
    let config = write(
        dir,
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {}}}\nshutdown: {{grace-period: {grace_period}}}\ntasks:\n  - name: stuck\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{path: '{}'}}\n    sink: {{type: jsonl, path: '{}'}}\n",
            dir.join("state.json").display(),
            dir.join("data.jsonl").display(),
            fifo.display(),
        ),
    );
    let mut command = tapline();
    command.args(["run", "-c"]).arg(&config);
    let proc = Proc::start(command, dir, "tapline");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !proc.stderr_text().contains("started") {
        assert!(
            Instant::now() < deadline,
            "did not start:\n{}",
            proc.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    proc
}

#[test]
fn a_second_signal_exits_at_once_with_code_130() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start_stuck(dir.path(), "60s");
    proc.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        proc.child.try_wait().unwrap().is_none(),
        "did not wait for the stuck run"
    );
    let signalled = Instant::now();
    proc.signal(libc::SIGTERM);
    let code = proc.wait(Duration::from_secs(15));
    assert_eq!(code, 130, "{}", proc.stderr_text());
    assert!(signalled.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_run_stuck_past_the_grace_period_is_abandoned_and_the_process_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = start_stuck(dir.path(), "1s");
    let signalled = Instant::now();
    proc.signal(libc::SIGTERM);
    let code = proc.wait(Duration::from_secs(30));
    assert_eq!(code, 0, "{}", proc.stderr_text());
    let waited = signalled.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "left before the grace period: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "hung after the grace period: {waited:?}"
    );
}

#[test]
fn sigkill_in_the_middle_of_many_state_saves_never_corrupts_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let source = serve(
        Router::new()
            .route(
                "/count",
                get(|State(counter): State<Arc<AtomicU64>>| async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    // A cursor long enough that a torn write would show.
                    Json(json!({"items": [{"n": n}], "next": {"cursor": n, "padding": "x".repeat(4000)}}))
                }),
            )
            .with_state(counter.clone()),
    );
    let state_path = dir.path().join("state.json");
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {}}}\nlogging: {{level: warn}}\ntasks:\n  - name: fast\n    type: http-poll\n    schedule: {{interval: 5ms}}\n    source: {{url: '{}/count?since={{cursor}}', records: /items, cursor: /next}}\n    sink: {{type: stdout}}\n",
            state_path.display(),
            source.base()
        ),
    );
    let mut last = 0;
    for round in 0..12u64 {
        let mut command = tapline();
        command.args(["run", "-c"]).arg(&config);
        let mut proc = Proc::start(command, dir.path(), "tapline");
        std::thread::sleep(Duration::from_millis(150 + (round * 37) % 300));
        proc.child.kill().unwrap(); // SIGKILL
        proc.child.wait().unwrap();
        if !state_path.exists() {
            continue;
        }
        let bytes = std::fs::read(&state_path).unwrap();
        let state: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "round {round}: corrupt state file ({e}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(state["version"], 1);
        let cursor = state["tasks"]["fast"]["cursor"]["cursor"]
            .as_u64()
            .expect("a cursor");
        assert!(
            cursor >= last,
            "round {round}: the cursor went back from {last} to {cursor}"
        );
        last = cursor;
    }
    assert!(
        last >= 10,
        "too few saves happened ({last}) to test anything"
    );
}

#[test]
fn the_binary_serves_metrics_and_readiness_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = loopback::free_port();
    write(dir.path(), "data.jsonl", "{\"a\": 1}\n{\"a\": 2}\n");
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: token, token: static-test-token}}\nstate: {{path: {state}}}\nserver: {{listen: '127.0.0.1:{port}'}}\ntasks:\n  - name: boot-a\n    type: file\n    schedule: startup\n    source: {{path: '{data}'}}\n    sink: {{type: jsonl, path: '{out}'}}\n  - name: later\n    type: file\n    schedule: {{interval: 1h, initial-delay: 1h}}\n    source: {{path: '{data}'}}\n    sink: {{type: stdout}}\n",
            state = dir.path().join("state.json").display(),
            data = dir.path().join("data.jsonl").display(),
            out = dir.path().join("out.jsonl").display(),
        ),
    );
    let mut command = tapline();
    command.args(["run", "-c"]).arg(&config);
    let mut proc = Proc::start(command, dir.path(), "tapline");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = runtime.block_on(loopback::get(&format!("{base}/readyz")));
        if ready.is_some_and(|(status, _)| status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            proc.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, metrics) = runtime
        .block_on(loopback::get(&format!("{base}/metrics")))
        .unwrap();
    assert_eq!(status, 200);
    let runs = |task, result| {
        metric(
            &metrics,
            "tapline_task_runs_total",
            &[("task", task), ("result", result)],
        )
    };
    assert_eq!(runs("boot-a", "success"), 1.0, "{metrics}");
    assert_eq!(runs("later", "success"), 0.0, "{metrics}");
    assert_eq!(
        metric(
            &metrics,
            "tapline_task_records_delivered_total",
            &[("task", "boot-a")]
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "tapline_task_run_duration_seconds_count",
            &[("task", "boot-a")]
        ),
        1.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("tapline_task_last_success_timestamp_seconds{task=\"boot-a\"}"),
        "{metrics}"
    );
    proc.signal(libc::SIGTERM);
    assert_eq!(
        proc.wait(Duration::from_secs(15)),
        0,
        "{}",
        proc.stderr_text()
    );
}

/// Requests the loopback API received: Authorization header and JSON body.
type Received = Arc<Mutex<Vec<(Option<String>, Value)>>>;

#[test]
fn the_custom_task_example_runs_against_a_loopback_api() {
    let dir = tempfile::tempdir().unwrap();
    let received: Received = Arc::default();
    let target = serve(
        Router::new()
            .route(
                "/api/heartbeats",
                post(
                    |State(received): State<Received>,
                     headers: HeaderMap,
                     Json(body): Json<Value>| async move {
                        let auth = headers
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string());
                        received.lock().unwrap().push((auth, body));
                        "ok"
                    },
                ),
            )
            .with_state(received.clone()),
    );
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: token, token: example-token}}\nsession: {{base-url: '{}/api/'}}\nstate: {{path: {}}}\ntasks:\n  - name: beat\n    type: heartbeat\n    schedule: {{interval: 30s}}\n    path: heartbeats\n    site: plant-a\n",
            target.base(),
            dir.path().join("state.json").display()
        ),
    );
    for _ in 0..2 {
        let out = run(std::process::Command::new(example("custom_task"))
            .args(["run", "--once", "-c"])
            .arg(&config));
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let received = received.lock().unwrap();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].0.as_deref(), Some("Bearer example-token"));
    assert_eq!(
        received[0].1,
        json!({"site": "plant-a", "task": "beat", "beat": 1})
    );
    assert_eq!(
        received[1].1["beat"], 2,
        "the state was not kept between runs"
    );
    // Its own keys are checked with their key paths.
    let bad = write(
        dir.path(),
        "bad.yaml",
        "auth: {type: none}\ntasks:\n  - {name: beat, type: heartbeat, schedule: startup, path: x, site: ''}\n",
    );
    let out = run(std::process::Command::new(example("custom_task"))
        .args(["--once", "-c"])
        .arg(&bad));
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn json_logs_are_one_object_per_line_with_the_task_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "data.jsonl", "{\"a\": 1}\n");
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {}}}\nlogging: {{level: info, format: json}}\ntasks:\n  - name: copy\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{path: '{}'}}\n    sink: {{type: stdout}}\n",
            dir.path().join("state.json").display(),
            dir.path().join("data.jsonl").display(),
        ),
    );
    let out = run(tapline().args(["run", "--once", "-c"]).arg(&config));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout, "{\"a\":1}\n",
        "the stdout sink prints records only"
    );
    let lines: Vec<Value> = out
        .stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line.get(key).is_some(), "no {key} in {line}");
        }
    }
    let done = lines
        .iter()
        .find(|line| line["message"] == "files read")
        .unwrap_or_else(|| panic!("no 'files read' line in {lines:?}"));
    assert_eq!(done["task"], "copy");
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["fields"]["records"], 1);

    // RUST_LOG wins over logging.level.
    let out = run(tapline()
        .args(["run", "--once", "-c"])
        .arg(&config)
        .env("RUST_LOG", "error"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "", "RUST_LOG=error still logged info lines");
}

#[test]
fn a_corrupt_state_file_stops_startup_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let state = write(
        dir.path(),
        "state.json",
        "{\"version\": 1, \"tasks\": {\"copy\": ",
    );
    write(dir.path(), "data.jsonl", "{\"a\": 1}\n");
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {}}}\ntasks:\n  - name: copy\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{path: '{}'}}\n    sink: {{type: stdout}}\n",
            state.display(),
            dir.path().join("data.jsonl").display(),
        ),
    );
    let out = run(tapline().args(["run", "--once", "-c"]).arg(&config));
    assert_eq!(out.code, 1, "{}", out.all_output());
    assert!(out.stderr.contains("is corrupt"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&state.display().to_string()),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "", "a task ran with a corrupt state file");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "{\"version\": 1, \"tasks\": {\"copy\": "
    );
}

#[test]
fn the_custom_sink_example_writes_csv_from_a_built_in_source() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    write(
        &dir.path().join("data"),
        "x.jsonl",
        "{\"sensor\": \"a\", \"value\": 1}\n{\"sensor\": \"b,c\", \"value\": 2}\n",
    );
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {0}/state.json}}\ntasks:\n  - name: readings\n    type: file\n    schedule: {{interval: 10s}}\n    source: {{path: '{0}/data/*.jsonl'}}\n    sink: {{type: csv, path: {0}/out.csv, columns: [sensor, value]}}\n",
            dir.path().display()
        ),
    );
    let out = run(std::process::Command::new(example("custom_sink"))
        .args(["run", "--once", "-c"])
        .arg(&config));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let csv = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    assert_eq!(csv, "a,1\n\"b,c\",2\n");
    // Its own keys are checked like the built-in ones: the full command line, exit code 2.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("columns", "colums"),
    )
    .unwrap();
    let out = run(std::process::Command::new(example("custom_sink"))
        .args(["validate", "-c"])
        .arg(&config));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("tasks[0].sink.colums: unknown key"),
        "{}",
        out.stderr
    );
}
