//! The `file` task on real files in temp dirs: rotation, truncation, symlink cycles, long lines,
//! forgotten files, old state files, memory, and offsets saved batch by batch.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::harness::cli::{run, tapline, Run};
use crate::harness::loopback::serve;
use crate::harness::process::Proc;
use crate::harness::rss;
use crate::runner::metric;

/// A temp dir holding the data files, the config, the state file and the output.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn append(&self, relative: &str, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path(relative))
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    /// A config with one `file` task per `(name, source keys)`, each printing to `sink`.
    fn config(&self, tasks: &[(&str, &str)], sink: &str) -> PathBuf {
        let mut text = format!(
            "auth: {{type: none}}\nstate: {{path: '{}'}}\ntasks:\n",
            self.path("state.json").display()
        );
        for (name, source) in tasks {
            text.push_str(&format!(
                "  - name: {name}\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{{source}}}\n    sink: {{{sink}}}\n"
            ));
        }
        let path = self.path("tapline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `path: '<dir>/<glob>'`, absolute so that in-process runs work too.
    fn glob(&self, glob: &str) -> String {
        format!("path: '{}'", self.path(glob).display())
    }

    /// `tapline run --once` with a stdout sink: the `n` of every record printed.
    fn run_once(&self, config: &Path) -> Vec<u64> {
        let out = self.run_binary(config);
        assert_eq!(out.code, 0, "{}", out.stderr);
        numbers(&out.stdout)
    }

    fn run_binary(&self, config: &Path) -> Run {
        run(tapline().args(["run", "--once", "-c"]).arg(config))
    }

    fn state(&self, task: &str) -> Value {
        let bytes = std::fs::read(self.path("state.json")).unwrap();
        let state: Value = serde_json::from_slice(&bytes).unwrap();
        state["tasks"][task].clone()
    }

    /// The paths of the files a task keeps offsets for.
    fn tracked(&self, task: &str) -> Vec<String> {
        self.state(task)["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| file["path"].as_str().unwrap().to_string())
            .collect()
    }
}

/// `{"n":N}` lines.
fn records(range: std::ops::RangeInclusive<u64>) -> String {
    range.map(|n| format!("{{\"n\":{n}}}\n")).collect()
}

fn numbers(text: &str) -> Vec<u64> {
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            record["n"].as_u64().unwrap()
        })
        .collect()
}

/// Runs the runner in this process with `--once`, so its metrics can be read.
async fn run_in_process(config: &Path) -> Result<(), tapline::runner::Error> {
    let registry = tapline::Registry::builtin();
    let config = registry.load(config).unwrap_or_else(|e| panic!("{e}"));
    registry
        .runner(config)?
        .once(true)
        .handle_signals(false)
        .run()
        .await
}

#[test]
fn a_file_renamed_away_is_finished_before_the_new_file_at_its_path_is_read_from_the_start() {
    let files = Files::new();
    let config = files.config(&[("rotate", &files.glob("data/*.jsonl"))], "type: stdout");
    files.write("data/app.jsonl", &records(1..=3));
    assert_eq!(files.run_once(&config), [1, 2, 3]);

    // logrotate's default: rename (to a name outside the glob), then create a new file.
    files.append("data/app.jsonl", &records(4..=5));
    std::fs::rename(files.path("data/app.jsonl"), files.path("data/app.jsonl.1")).unwrap();
    files.write("data/app.jsonl", &records(6..=8));
    assert_eq!(files.run_once(&config), [4, 5, 6, 7, 8]);

    // Renamed to a name inside the glob that sorts after the new file: still finished first.
    files.append("data/app.jsonl", &records(9..=9));
    std::fs::rename(
        files.path("data/app.jsonl"),
        files.path("data/zz-old.jsonl"),
    )
    .unwrap();
    files.write("data/app.jsonl", &records(10..=11));
    assert_eq!(files.run_once(&config), [9, 10, 11]);
    assert_eq!(files.run_once(&config), [] as [u64; 0]);
}

#[test]
fn a_copied_and_truncated_file_is_read_again_from_the_start_with_a_warning() {
    let files = Files::new();
    let config = files.config(&[("copytruncate", &files.glob("*.jsonl"))], "type: stdout");
    files.write("app.jsonl", &records(1..=8));
    assert_eq!(files.run_once(&config), (1..=8).collect::<Vec<_>>());

    // logrotate's copytruncate: the new lines make the file longer than the saved offset.
    std::fs::copy(files.path("app.jsonl"), files.path("app.jsonl.1")).unwrap();
    std::fs::File::create(files.path("app.jsonl")).unwrap();
    files.append("app.jsonl", &records(101..=112));
    let out = files.run_binary(&config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(numbers(&out.stdout), (101..=112).collect::<Vec<_>>());
    assert!(out.stderr.contains("from the start"), "{}", out.stderr);

    // Shorter than the offset: also read from the start.
    std::fs::write(files.path("app.jsonl"), records(7..=7)).unwrap();
    assert_eq!(files.run_once(&config), [7]);
}

#[test]
fn symlink_cycles_under_a_double_star_end_and_every_file_is_read_once() {
    let files = Files::new();
    files.write("data/a.jsonl", &records(1..=2));
    files.write("data/sub/b.jsonl", &records(3..=3));
    // Two cycles (with one, a naive walk re-reads files; with two, it never ends) and a second
    // name for the same file.
    std::os::unix::fs::symlink("..", files.path("data/sub/up")).unwrap();
    std::os::unix::fs::symlink(".", files.path("data/sub/here")).unwrap();
    std::os::unix::fs::symlink("sub/b.jsonl", files.path("data/alias.jsonl")).unwrap();
    let out_file = files.path("out.jsonl");
    let config = files.config(
        &[("cycles", &files.glob("data/**/*.jsonl"))],
        &format!("type: jsonl, path: '{}'", out_file.display()),
    );
    let mut command = tapline();
    command.args(["run", "--once", "-c"]).arg(&config);
    let mut proc = Proc::start(command, files.dir.path(), "tapline");
    assert_eq!(
        proc.wait(Duration::from_secs(30)),
        0,
        "{}",
        proc.stderr_text()
    );
    let mut read = numbers(&std::fs::read_to_string(&out_file).unwrap());
    read.sort();
    assert_eq!(read, [1, 2, 3]);
}

#[tokio::test]
async fn a_line_longer_than_max_line_bytes_is_skipped_counted_and_never_read_again() {
    let files = Files::new();
    let out_file = files.path("out.jsonl");
    let config = files.config(
        &[(
            "long-lines",
            &format!("{}, max-line-bytes: 1024", files.glob("data.jsonl")),
        )],
        &format!("type: jsonl, path: '{}'", out_file.display()),
    );
    let long = |c: &str| format!("{{\"pad\":\"{}", c.repeat(3000));
    // A long complete line, then a long line still being written (no newline yet).
    files.write(
        "data.jsonl",
        &format!(
            "{}{}\"}}\n{}{}",
            records(1..=1),
            long("x"),
            records(3..=3),
            long("y")
        ),
    );
    let skipped = || {
        let metrics = tapline::telemetry::metrics::install().unwrap().render();
        metric(
            &metrics,
            "tapline_file_lines_skipped_total",
            &[("task", "long-lines"), ("reason", "too-long")],
        )
    };
    let output = || numbers(&std::fs::read_to_string(&out_file).unwrap());
    run_in_process(&config).await.unwrap();
    assert_eq!(output(), [1, 3]);
    assert_eq!(skipped(), 2.0);
    let length = std::fs::metadata(files.path("data.jsonl")).unwrap().len();
    assert_eq!(
        files.state("long-lines")["files"][0]["offset"],
        length,
        "the offset did not move past the unfinished long line"
    );

    run_in_process(&config).await.unwrap();
    assert_eq!(output(), [1, 3]);
    assert_eq!(skipped(), 2.0, "the long line was read again");

    // The rest of the long line arrives: it is skipped, and the line after it is read.
    files.append("data.jsonl", &format!("yyy\"}}\n{}", records(4..=4)));
    run_in_process(&config).await.unwrap();
    assert_eq!(output(), [1, 3, 4]);
    assert_eq!(skipped(), 2.0);
}

#[test]
fn offsets_of_files_gone_longer_than_forget_after_are_dropped() {
    let files = Files::new();
    let glob = files.glob("data/*.jsonl");
    let config = files.config(
        &[
            ("forget-now", &format!("{glob}, forget-after: 0s")),
            ("forget-later", &glob),
        ],
        "type: stdout",
    );
    files.write("data/2024-01-01.jsonl", &records(1..=1));
    files.write("data/2024-01-02.jsonl", &records(2..=2));
    assert_eq!(files.run_once(&config).len(), 4);
    std::fs::remove_file(files.path("data/2024-01-01.jsonl")).unwrap();
    assert_eq!(files.run_once(&config), [] as [u64; 0]);
    let kept = files.path("data/2024-01-02.jsonl").display().to_string();
    assert_eq!(files.tracked("forget-now"), [kept]);
    assert_eq!(files.tracked("forget-later").len(), 2);
}

#[test]
fn path_keyed_offsets_of_an_older_version_are_used_and_converted() {
    let files = Files::new();
    files.write("data.jsonl", &records(1..=3));
    let data = files.path("data.jsonl").display().to_string();
    let old = json!({"version": 1, "tasks": {"upgraded": {"offsets": {data.clone(): 16}}}});
    std::fs::write(files.path("state.json"), old.to_string()).unwrap();
    let config = files.config(&[("upgraded", &files.glob("data.jsonl"))], "type: stdout");
    assert_eq!(files.run_once(&config), [3]);
    let state = files.state("upgraded");
    assert!(state.get("offsets").is_none(), "{state}");
    assert_eq!(files.tracked("upgraded"), [data]);
    assert_eq!(files.run_once(&config), [] as [u64; 0]);
}

/// A loopback ingest API that refuses any batch holding record 7 while `refuse` is set, and
/// notes the offset in the state file on disk as each batch arrives.
#[derive(Default)]
struct Ingest {
    refuse: AtomicBool,
    received: Mutex<Vec<u64>>,
    offsets_on_disk: Mutex<Vec<u64>>,
    state_path: PathBuf,
}

async fn receive(State(api): State<Arc<Ingest>>, Json(body): Json<Value>) -> StatusCode {
    let on_disk = std::fs::read(&api.state_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|state| state["tasks"]["batches"]["files"][0]["offset"].as_u64());
    api.offsets_on_disk
        .lock()
        .unwrap()
        .push(on_disk.unwrap_or(0));
    let lines: String = (body["items"].as_array().unwrap().iter())
        .map(|record| format!("{record}\n"))
        .collect();
    let batch = numbers(&lines);
    if api.refuse.load(Ordering::SeqCst) && batch.contains(&7) {
        return StatusCode::BAD_REQUEST;
    }
    api.received.lock().unwrap().extend(batch);
    StatusCode::OK
}

#[test]
fn the_offset_on_disk_moves_with_every_delivered_batch() {
    let files = Files::new();
    let api = Arc::new(Ingest {
        refuse: AtomicBool::new(true),
        state_path: files.path("state.json"),
        ..Ingest::default()
    });
    let server = serve(
        Router::new()
            .route("/ingest", post(receive))
            .with_state(api.clone()),
    );
    files.write("data.jsonl", &records(1..=10));
    let config = files.config(
        &[("batches", &files.glob("data.jsonl"))],
        &format!(
            "type: http, path: '{}/ingest', batch-size: 3",
            server.base()
        ),
    );
    let out = files.run_binary(&config);
    assert_eq!(out.code, 1, "the refused batch did not fail the run");
    assert_eq!(*api.received.lock().unwrap(), [1, 2, 3, 4, 5, 6]);
    let after = |last: u64| records(1..=last).len() as u64;
    assert_eq!(
        *api.offsets_on_disk.lock().unwrap(),
        [0, after(3), after(6)],
        "the state file on disk did not move with each delivered batch"
    );

    api.refuse.store(false, Ordering::SeqCst);
    let out = files.run_binary(&config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        *api.received.lock().unwrap(),
        (1..=10).collect::<Vec<_>>(),
        "batches were sent twice or lost"
    );
}

#[test]
fn a_large_backlog_is_streamed_with_memory_that_does_not_grow_with_it() {
    let files = Files::new();
    let count = 1_000_000u64;
    {
        let file = std::fs::File::create(files.path("big.jsonl")).unwrap();
        let mut writer = std::io::BufWriter::new(file);
        for n in 1..=count {
            writeln!(writer, "{{\"n\":{n}}}").unwrap();
        }
    }
    let size = std::fs::metadata(files.path("big.jsonl")).unwrap().len();
    let config = files.config(
        &[("big", &files.glob("big.jsonl"))],
        "type: stdout, batch-size: 5000",
    );
    let out = std::fs::File::create(files.path("out.jsonl")).unwrap();
    let mut command = tapline();
    command.args(["run", "--once", "-c"]).arg(&config);
    let run = rss::measure(
        &command,
        out.into(),
        Stdio::null(),
        Duration::from_secs(300),
    );
    assert_eq!(run.code, 0);
    let peak = run.peak_kib;
    let delivered = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(files.path("out.jsonl")).unwrap(),
    ))
    .count() as u64;
    assert_eq!(delivered, count);
    // Reading it all into memory took about 1 GiB; streamed, it stays near the process's size.
    assert!(
        peak < 100 * 1024,
        "peak RSS {} MiB for a {} MiB file",
        peak / 1024,
        size >> 20
    );
    assert_eq!(files.state("big")["files"][0]["offset"], size);
}
