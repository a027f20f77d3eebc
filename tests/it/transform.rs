//! `transform:`, `on-error`, `dead-letter` and `timeout` end to end: the real binary (or the
//! runner in this process, to read its metrics), a `file` source in a temp dir, a jsonl sink.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::harness::cli::{run, tapline, validate, Run};
use crate::harness::loopback::serve;
use crate::runner::metric;

/// A temp dir with `in.jsonl`, the config, the state file, `out.jsonl` and dead letters.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `in.jsonl` holding `records`, one per line.
    fn input(&self, records: &[Value]) {
        let text: String = records.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(self.path("in.jsonl"), text).unwrap();
    }

    /// A config with one `file` task named `name` reading `in.jsonl` into `out.jsonl`; `keys`
    /// are more task keys (YAML, indented by four spaces).
    fn config(&self, name: &str, keys: &str) -> PathBuf {
        let text = format!(
            "auth: {{type: none}}\nstate: {{path: '{state}'}}\ntasks:\n  - name: {name}\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{path: '{input}'}}\n    sink: {{type: jsonl, path: '{output}', batch-size: 500}}\n{keys}",
            state = self.path("state.json").display(),
            input = self.path("in.jsonl").display(),
            output = self.path("out.jsonl").display(),
        );
        let path = self.path("tapline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run_once(&self, config: &Path) -> Run {
        run(tapline()
            .args(["run", "--once", "-c"])
            .arg(config)
            .env("PLANT_SITE", "plant-a"))
    }

    fn lines(&self, name: &str) -> Vec<Value> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// The byte offset the state file holds for the input file, 0 when none.
    fn offset(&self, task: &str) -> u64 {
        let text = std::fs::read_to_string(self.path("state.json")).unwrap_or_default();
        let state: Value = serde_json::from_str(&text).unwrap_or_default();
        state["tasks"][task]["files"][0]["offset"]
            .as_u64()
            .unwrap_or(0)
    }
}

fn transform(program: &str) -> String {
    format!("    transform: '{}'\n", program.replace('\'', "''"))
}

/// One worked example of the README: its program, what goes in and what must come out.
struct Example {
    program: &'static str,
    input: Vec<Value>,
    output: Vec<Value>,
}

fn readme_examples() -> Vec<Example> {
    vec![
        // Filter.
        Example {
            program: "select(.value != null)",
            input: vec![
                json!({"id": 1, "value": 2.5}),
                json!({"id": 2, "value": null}),
                json!({"id": 3, "value": 0}),
            ],
            output: vec![json!({"id": 1, "value": 2.5}), json!({"id": 3, "value": 0})],
        },
        // Reshape.
        Example {
            program: "{key: (.id|tostring), columns: .}",
            input: vec![json!({"id": 7, "status": "open"})],
            output: vec![json!({"key": "7", "columns": {"id": 7, "status": "open"}})],
        },
        // Explode.
        Example {
            program: ".device as $d | .readings[] | {device: $d, ts: .t, value: .v}",
            input: vec![
                json!({"device": "pump-1", "readings": [{"t": 1, "v": 0.5}, {"t": 2, "v": 0.7}]}),
            ],
            output: vec![
                json!({"device": "pump-1", "ts": 1, "value": 0.5}),
                json!({"device": "pump-1", "ts": 2, "value": 0.7}),
            ],
        },
        // Timestamp conversion.
        Example {
            program: "{externalId: .sensor, timestamp: (.time | fromdate * 1000), value: .reading}",
            input: vec![json!({"sensor": "t-1", "time": "2024-05-01T12:00:00Z", "reading": 21.5})],
            output: vec![
                json!({"externalId": "t-1", "timestamp": 1_714_564_800_000i64, "value": 21.5}),
            ],
        },
        // Enrich.
        Example {
            program: ". + {task: $task, site: $env.PLANT_SITE}",
            input: vec![json!({"id": 1})],
            output: vec![json!({"id": 1, "task": "readme", "site": "plant-a"})],
        },
    ]
}

#[test]
fn the_five_readme_examples_work_end_to_end_as_documented() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for example in readme_examples() {
        assert!(
            readme.contains(&format!("transform: '{}'", example.program)),
            "the README does not show {:?}",
            example.program
        );
        let dir = Dir::new();
        dir.input(&example.input);
        let config = dir.config("readme", &transform(example.program));
        let out = dir.run_once(&config);
        assert_eq!(out.code, 0, "{}: {}", example.program, out.stderr);
        assert_eq!(
            dir.lines("out.jsonl"),
            example.output,
            "{}",
            example.program
        );
    }
}

#[test]
fn a_record_exploded_into_ten_thousand_keeps_their_order_across_batches() {
    let dir = Dir::new();
    dir.input(&[json!({"n": 10000}), json!({"n": 2})]);
    let config = dir.config("explode", &transform("range(.n) as $i | {i: $i}"));
    let out = dir.run_once(&config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got: Vec<u64> = dir
        .lines("out.jsonl")
        .iter()
        .map(|r| r["i"].as_u64().unwrap())
        .collect();
    let want: Vec<u64> = (0..10_000).chain(0..2).collect();
    assert_eq!(got, want);
}

/// Three records, the middle one a string where the program adds 1.
fn mixed(dir: &Dir) {
    dir.input(&[json!({"a": 1}), json!({"a": "x"}), json!({"a": 3})]);
}

#[test]
fn on_error_fail_fails_the_run_and_nothing_moves() {
    let dir = Dir::new();
    mixed(&dir);
    let config = dir.config("fail", &transform(".a + 1"));
    let out = dir.run_once(&config);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("on-error: fail"), "{}", out.stderr);
    assert!(out.stderr.contains("cannot calculate"), "{}", out.stderr);
    assert_eq!(
        dir.offset("fail"),
        0,
        "the file offset moved past a failed record"
    );
    assert!(dir.lines("out.jsonl").is_empty());
}

#[test]
fn on_error_skip_drops_the_record_and_warns_once_with_the_count() {
    let dir = Dir::new();
    dir.input(&[
        json!({"a": 1}),
        json!({"a": "x"}),
        json!({"a": "y"}),
        json!({"a": 3}),
    ]);
    let config = dir.config(
        "skip",
        &format!("{}    on-error: skip\n", transform(".a + 1")),
    );
    let out = dir.run_once(&config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir.lines("out.jsonl"), [json!(2), json!(4)]);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("skipped"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(warnings[0].contains("records=2"), "{}", warnings[0]);
    let length = std::fs::metadata(dir.path("in.jsonl")).unwrap().len();
    assert_eq!(dir.offset("skip"), length);
}

#[test]
fn on_error_dead_letter_keeps_the_failed_record_with_its_error() {
    let dir = Dir::new();
    mixed(&dir);
    let dead = dir.path("dead/letters.jsonl");
    let keys = format!(
        "{}    on-error: dead-letter\n    dead-letter: '{}'\n",
        transform(".a + 1"),
        dead.display()
    );
    let config = dir.config("dead", &keys);
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let out = dir.run_once(&config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dir.lines("out.jsonl"), [json!(2), json!(4)]);
    let letters = dir.lines("dead/letters.jsonl");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["task"], "dead");
    assert_eq!(letter["record"], json!({"a": "x"}));
    assert!(
        letter["error"]
            .as_str()
            .unwrap()
            .contains("cannot calculate"),
        "{letter}"
    );
    let time = chrono::DateTime::parse_from_rfc3339(letter["time"].as_str().unwrap()).unwrap();
    assert!(time >= before && time <= chrono::Utc::now(), "{letter}");
}

#[test]
fn the_offset_moves_only_once_the_dead_letters_are_on_disk() {
    let dir = Dir::new();
    mixed(&dir);
    // The dead-letter file's directory cannot be made: a file is in the way.
    std::fs::write(dir.path("blocked"), "").unwrap();
    let letters = |parent: &str| {
        let path = dir.path(parent).join("letters.jsonl");
        let keys = format!(
            "{}    on-error: dead-letter\n    dead-letter: '{}'\n",
            transform(".a + 1"),
            path.display()
        );
        dir.config("durable", &keys)
    };
    let out = dir.run_once(&letters("blocked"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot write dead letters"),
        "{}",
        out.stderr
    );
    assert_eq!(
        dir.offset("durable"),
        0,
        "the offset moved though the dead letter was lost"
    );

    // With a writable place, the next run reads the same records again and keeps the letter.
    let out = dir.run_once(&letters("open"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        dir.lines("open/letters.jsonl")[0]["record"],
        json!({"a": "x"})
    );
    assert_ne!(dir.offset("durable"), 0);
}

#[test]
fn validate_reports_a_program_that_does_not_compile_with_its_key_path_and_position() {
    let dir = Dir::new();
    dir.input(&[]);
    let keys = "    transform: |\n      .a |\n        nosuch(1)\n    on-error: dead-letter\n";
    let config = dir.config("broken", keys);
    let out = validate(&config);
    assert_eq!(out.code, 2, "{}", out.all_output());
    let text = out.all_output();
    assert!(text.contains("tasks[0].transform"), "{text}");
    assert!(text.contains("undefined filter nosuch/1"), "{text}");
    assert!(text.contains("line 2, column 3: undefined"), "{text}");
    // Reported together with the file's other problem.
    assert!(text.contains("tasks[0].dead-letter"), "{text}");

    let config = dir.config("syntax", &transform("{a: .b"));
    let out = validate(&config);
    assert_eq!(out.code, 2);
    assert!(
        out.all_output().contains("tasks[0].transform"),
        "{}",
        out.all_output()
    );
    assert!(
        out.all_output().contains("line 1, column"),
        "{}",
        out.all_output()
    );
}

/// A source with a cursor: `/items?since=c` answers one record and `next: c + "+"`.
fn cursor_source() -> String {
    let router = Router::new().route(
        "/items",
        get(
            |Query(q): Query<std::collections::HashMap<String, String>>| async move {
                let since = q.get("since").cloned().unwrap_or_default();
                Json(json!({"items": [{"since": since}], "next": format!("{since}+")}))
            },
        ),
    );
    serve(router).base()
}

#[test]
fn the_program_sees_task_now_cursor_and_env() {
    let dir = Dir::new();
    let base = cursor_source();
    let text = format!(
        "auth: {{type: none}}\nstate: {{path: '{state}'}}\ntasks:\n  - name: vars\n    type: http-poll\n    schedule: {{interval: 1h}}\n    source: {{url: '{base}/items?since={{cursor}}', auth: none, records: /items, cursor: /next, initial-cursor: c0}}\n    transform: '[., $task, $now, $cursor, $env.PLANT_SITE, $ENV.PLANT_SITE]'\n    sink: {{type: jsonl, path: '{out}'}}\n",
        state = dir.path("state.json").display(),
        out = dir.path("out.jsonl").display(),
    );
    let config = dir.path("tapline.yaml");
    std::fs::write(&config, text).unwrap();
    let millis = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    for _ in 0..2 {
        let before = millis();
        let out = dir.run_once(&config);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let now = dir.lines("out.jsonl").last().unwrap()[2].as_i64().unwrap();
        assert!(
            before <= now && now <= millis(),
            "$now {now} is not the run's start"
        );
    }
    let lines = dir.lines("out.jsonl");
    assert_eq!(lines[0][0], json!({"since": "c0"}));
    assert_eq!(lines[0][1], "vars");
    assert_eq!(lines[0][3], "c0", "first run: $cursor is initial-cursor");
    assert_eq!(
        lines[1][3], "c0+",
        "second run: $cursor is the saved cursor"
    );
    assert_eq!(lines[0][4], "plant-a");
    assert_eq!(lines[0][5], "plant-a");
}

#[test]
fn the_cursor_of_a_task_without_one_is_null_and_now_is_fixed_for_the_run() {
    let dir = Dir::new();
    dir.input(&(0..3000).map(|n| json!({"n": n})).collect::<Vec<_>>());
    let config = dir.config("fixed", &transform("[$cursor, $now]"));
    let out = dir.run_once(&config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines = dir.lines("out.jsonl");
    assert_eq!(lines.len(), 3000);
    assert!(lines.iter().all(|line| line[0].is_null()), "{:?}", lines[0]);
    assert!(
        lines.iter().all(|line| line[1] == lines[0][1]),
        "$now changed within a run"
    );
}

#[tokio::test]
async fn transformed_and_dropped_records_are_counted() {
    let dir = Dir::new();
    dir.input(&[
        json!({"a": 1}),
        json!({"a": null}),
        json!({"a": "x"}),
        json!({"a": 4}),
    ]);
    let keys = format!(
        "{}    on-error: skip\n",
        transform("select(.a != null) | .a + 1")
    );
    let config = dir.config("counted", &keys);
    let registry = tapline::Registry::builtin();
    let config = registry.load(&config).unwrap_or_else(|e| panic!("{e}"));
    let runner = registry
        .runner(config)
        .unwrap()
        .once(true)
        .handle_signals(false);
    runner.run().await.unwrap();
    let metrics = tapline::telemetry::metrics::install().unwrap().render();
    let count = |name, labels: &[(&str, &str)]| metric(&metrics, name, labels);
    let task = ("task", "counted");
    assert_eq!(
        count("tapline_task_records_transformed_total", &[task]),
        4.0,
        "{metrics}"
    );
    assert_eq!(
        count(
            "tapline_task_records_dropped_total",
            &[task, ("reason", "filtered")]
        ),
        1.0
    );
    assert_eq!(
        count(
            "tapline_task_records_dropped_total",
            &[task, ("reason", "error")]
        ),
        1.0
    );
    assert_eq!(count("tapline_task_records_delivered_total", &[task]), 2.0);
}

#[test]
fn a_run_past_its_timeout_is_cancelled_and_counts_as_failed() {
    let dir = Dir::new();
    dir.input(&[json!({"a": 1})]);
    // A program that never ends: it computes without yielding an output.
    let took = run_past_its_timeout(&dir, "last(repeat(1))");
    // The timeout (1 s), the grace a run gets to stop at an await point (5 s), then abandoned.
    assert!(
        took < Duration::from_secs(10),
        "the run was not abandoned after the grace period: {took:?}"
    );
    assert_eq!(
        dir.offset("endless"),
        0,
        "the offset moved for a run that timed out"
    );
    assert!(dir.lines("out.jsonl").is_empty());
}

#[test]
fn a_program_that_keeps_giving_outputs_stops_at_the_timeout_without_the_grace_period() {
    let dir = Dir::new();
    dir.input(&[json!({"a": 1})]);
    // Endless, but with an output now and then: cancellation is checked between outputs.
    let took = run_past_its_timeout(&dir, "repeat(1) | ((range(0; 100000) | empty), .)");
    assert!(
        took < Duration::from_secs(5),
        "the program was not cancelled, only abandoned after the grace period: {took:?}"
    );
    assert!(dir.lines("out.jsonl").is_empty());
}

/// Runs task `endless` once with `program` and a 1 s `timeout`; the run must fail as timed out.
/// How long the process took.
fn run_past_its_timeout(dir: &Dir, program: &str) -> Duration {
    let keys = format!("{}    timeout: 1s\n", transform(program));
    let config = dir.config("endless", &keys);
    let started = Instant::now();
    let out = dir.run_once(&config);
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("run took longer than its timeout"),
        "{}",
        out.stderr
    );
    took
}
