//! tapline's CDF sinks against the CDF test server, with the official SDK reading back: no loss,
//! no duplicates, datapoints equal; also under 429/503 faults with 3 s tokens; missing series;
//! upserts; records our checks refuse; and the config rules of the `cdf:` block.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cdf_sdk::server_and_sdk;
use crate::harness::cdf::CdfServer;
use crate::harness::cli::{run, tapline, validate, Run};
use crate::harness::idp::{idp, Client};

/// A temp dir with data files and a config for the server.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub server: CdfServer,
    pub client: Client,
}

impl Setup {
    pub fn new(server: CdfServer, client: Client) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            server,
            client,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Appends records, one JSON line each, to the data file `name`.
    pub fn append(&self, name: &str, records: &[Value]) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(name))
            .unwrap();
        for record in records {
            writeln!(file, "{record}").unwrap();
        }
    }

    /// A config whose tasks read `(task, data file, sink block)` and write to the server;
    /// `extra` is added to the `cdf:` block, `task_extra` to every task.
    pub fn config(&self, tasks: &[(&str, &str, &str)], extra: &str, task_extra: &str) -> PathBuf {
        let mut text = format!(
            "auth: {{type: client-secret, token-url: '{}', client-id: '{}', client-secret: '{}'}}\n\
             cdf: {{project: {}, base-url: '{}'{extra}}}\n\
             state: {{path: '{}'}}\n\
             tasks:\n",
            idp().token_url(),
            self.client.id,
            self.client.secret,
            self.server.project,
            self.server.base_url(),
            self.path("state.json").display(),
        );
        for (name, file, sink) in tasks {
            text.push_str(&format!(
                "  - name: {name}\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{path: '{}'}}\n    sink: {{{sink}}}\n{task_extra}",
                self.path(file).display()
            ));
        }
        let path = self.path("tapline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// `tapline run --once -c config`, off the runtime so the in-process server keeps answering.
pub async fn run_once(config: PathBuf) -> Run {
    tokio::task::spawn_blocking(move || run(tapline().args(["run", "--once", "-c"]).arg(&config)))
        .await
        .unwrap()
}

fn rows(count: usize) -> Vec<Value> {
    (0..count)
        .map(|n| json!({"id": format!("k{}", n % (count / 2)), "n": n, "when": "now"}))
        .collect()
}

/// Points of three series, numeric, string and a timestamp written as RFC 3339.
fn points(per_series: i64) -> Vec<Value> {
    let mut out = Vec::new();
    for t in 0..per_series {
        out.push(json!({"tag": "num", "ts": 1_700_000_000_000i64 + t, "v": t as f64 / 4.0}));
        out.push(json!({"tag": "text", "ts": 1_700_000_000_000i64 + t, "v": format!("s{t}")}));
    }
    out.push(json!({"tag": "rfc", "ts": "2024-01-01T00:00:00.250Z", "v": -1e100}));
    out
}

fn events(count: usize, version: &str) -> Vec<Value> {
    (0..count)
        .map(|n| json!({"externalId": format!("ev-{n}"), "startTime": n, "type": version, "metadata": {version: "1"}}))
        .collect()
}

const RAW: &str = "type: cdf-raw, database: plant, table: readings, key: /id, batch-size: 40";
const DATAPOINTS: &str = "type: cdf-datapoints, external-id: /tag, timestamp: /ts, value: /v, create-missing: true, data-set-id: 77, batch-size: 250";
const EVENTS: &str = "type: cdf-events, batch-size: 30";

/// Writes rows, points and events through tapline, then reads them back with the SDK.
async fn write_and_read_back(faults: f64, token_ttl: u64) {
    let (server, sdk) = server_and_sdk().await;
    let client = idp().secret_client(false, token_ttl).await;
    let setup = Setup::new(server.clone(), client.clone());
    setup.append("rows.jsonl", &rows(200));
    setup.append("points.jsonl", &points(1500));
    setup.append("events.jsonl", &events(90, "v1"));
    let config = setup.config(
        &[
            ("rows", "rows.jsonl", RAW),
            ("points", "points.jsonl", DATAPOINTS),
            ("events", "events.jsonl", EVENTS),
        ],
        "",
        "",
    );
    server.faults(faults);
    if faults > 0.0 {
        // Slow enough that the run outlives its first token (each task sends 6 or more
        // requests, 2.4 s or more; a 3 s token is renewed after half its life), so the
        // refresh under faults is always exercised.
        server.delay(Duration::from_millis(400));
    }
    let result = run_once(config).await;
    server.faults(0.0);
    server.delay(Duration::ZERO);
    assert_eq!(result.code, 0, "{}", result.stderr);

    let rows = sdk.run("rows", &["plant", "readings"]).await;
    let expected: serde_json::Map<String, Value> = (100..200)
        .map(|n| {
            (
                format!("k{}", n % 100),
                json!({"id": format!("k{}", n % 100), "n": n, "when": "now"}),
            )
        })
        .collect();
    assert_eq!(
        rows,
        Value::Object(expected),
        "the last record of each key wins"
    );

    let read = sdk.run("datapoints", &["num", "text", "rfc"]).await;
    let num: Vec<Value> = (0..1500)
        .map(|t| json!([1_700_000_000_000i64 + t, t as f64 / 4.0]))
        .collect();
    let text: Vec<Value> = (0..1500)
        .map(|t| json!([1_700_000_000_000i64 + t, format!("s{t}")]))
        .collect();
    assert_eq!(read["num"], Value::Array(num));
    assert_eq!(read["text"], Value::Array(text));
    assert_eq!(read["rfc"], json!([[1_704_067_200_250i64, -1e100]]));
    let series = sdk.run("series", &["num", "text", "rfc"]).await;
    assert_eq!(series["text"], json!({"isString": true, "dataSetId": 77}));
    assert_eq!(series["num"], json!({"isString": false, "dataSetId": 77}));

    let all = sdk.run("all-events", &[]).await;
    let mut ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["externalId"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..90).map(|n| format!("ev-{n}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "every event once");
    if faults > 0.0 {
        let faulted = server
            .seen()
            .iter()
            .filter(|s| matches!(s.status, 429 | 503))
            .count();
        assert!(faulted > 0, "faults were injected");
        assert!(
            idp().issued(&client.id).await > 1,
            "tokens were refreshed during the run"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tapline_writes_rows_points_and_events_the_sdk_reads_back() {
    write_and_read_back(0.0, 3600).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_holds_under_429_and_503_faults_with_3s_tokens() {
    write_and_read_back(0.2, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn points_of_a_missing_series_fail_the_run_without_create_missing() {
    let run = missing_series_under("fail", &[known_point(), ghost_point()]).await;
    assert_eq!(run.result.code, 1, "{}", run.result.stderr);
    assert!(
        run.result.stderr.contains("\\\"ghost\\\" does not exist")
            || run.result.stderr.contains("\"ghost\" does not exist"),
        "{}",
        run.result.stderr
    );
    assert_eq!(
        run.known,
        json!({"known": []}),
        "nothing of the batch moved"
    );
    assert!(
        !run.server.store().series.contains_key("ghost"),
        "not created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn values_outside_cdf_limits_fail_the_run_before_anything_is_sent() {
    let (server, _sdk) = server_and_sdk().await;
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    setup.append(
        "points.jsonl",
        &[
            json!({"tag": "a", "ts": 1, "v": 1}),
            json!({"tag": "a", "ts": 2, "v": 1e101}),
        ],
    );
    let sink =
        "type: cdf-datapoints, external-id: /tag, timestamp: /ts, value: /v, create-missing: true";
    let result = run_once(setup.config(&[("points", "points.jsonl", sink)], "", "")).await;
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result.stderr.contains("outside ±1e100"),
        "{}",
        result.stderr
    );
    assert_eq!(server.count(axum::http::Method::POST, "timeseries/data"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn upserting_twice_gives_one_event_with_the_second_values() {
    let (server, sdk) = server_and_sdk().await;
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    let first = json!({"externalId": "e1", "startTime": 1, "description": "first", "metadata": {"a": "1", "b": "2"}});
    setup.append("events.jsonl", &[first]);
    let config = setup.config(&[("events", "events.jsonl", "type: cdf-events")], "", "");
    assert_eq!(run_once(config.clone()).await.code, 0);
    let second = json!({"externalId": "e1", "startTime": 5, "description": "second", "metadata": {"c": "3"}});
    setup.append("events.jsonl", &[second]);
    let result = run_once(config).await;
    assert_eq!(result.code, 0, "{}", result.stderr);

    let all = sdk.run("all-events", &[]).await;
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let event = &all[0];
    assert_eq!(event["startTime"], 5);
    assert_eq!(event["description"], "second");
    assert_eq!(
        event["metadata"],
        json!({"c": "3"}),
        "metadata replaced, not merged"
    );
    assert_eq!(
        server.count(axum::http::Method::POST, "events"),
        1,
        "created once"
    );
    assert_eq!(server.count(axum::http::Method::POST, "events/update"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_mode_counts_existing_events_as_delivered() {
    let (server, sdk) = server_and_sdk().await;
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    setup.append("events.jsonl", &events(3, "v1"));
    let config = setup.config(
        &[("events", "events.jsonl", "type: cdf-events, mode: create")],
        "",
        "",
    );
    assert_eq!(run_once(config.clone()).await.code, 0);
    std::fs::remove_file(setup.path("state.json")).unwrap();
    let again = run_once(config).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        sdk.run("all-events", &[]).await.as_array().unwrap().len(),
        3
    );
    assert!(
        server.seen().iter().any(|s| s.status == 409),
        "the second run met 409 duplicated"
    );
}

#[test]
fn cdf_sinks_and_pipelines_need_a_valid_cdf_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tapline.yaml");
    std::fs::write(
        &path,
        "auth: {type: none}\ntasks:\n  - name: t\n    type: file\n    schedule: {interval: 1m}\n    extraction-pipeline: p\n    source: {path: x}\n    sink: {type: cdf-raw, database: d, table: '', key: id}\n",
    )
    .unwrap();
    let result = validate(&path);
    assert_eq!(result.code, 2, "{}", result.all_output());
    for expected in [
        "tasks[0].sink.table",
        "tasks[0].sink.key",
        "tasks[0].sink: ",
        "tasks[0].extraction-pipeline",
    ] {
        assert!(
            result.all_output().contains(expected),
            "{expected}: {}",
            result.all_output()
        );
    }
    std::fs::write(
        &path,
        "auth: {type: none}\ncdf: {project: p, base-url: x, cluster: y}\n",
    )
    .unwrap();
    let result = validate(&path);
    assert_eq!(result.code, 2);
    assert!(
        result.all_output().contains("cdf.cluster"),
        "{}",
        result.all_output()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_larger_than_the_api_limits_become_several_requests() {
    let (server, sdk) = server_and_sdk().await;
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    let rows: Vec<Value> = (0..25_000).map(|n| json!({"id": n, "v": n})).collect();
    setup.append("rows.jsonl", &rows);
    setup.append("events.jsonl", &events(2_500, "v1"));
    let config = setup.config(
        &[
            (
                "rows",
                "rows.jsonl",
                "type: cdf-raw, database: d, table: t, key: /id, batch-size: 25000",
            ),
            (
                "events",
                "events.jsonl",
                "type: cdf-events, batch-size: 2500",
            ),
        ],
        "",
        "",
    );
    let result = run_once(config).await;
    assert_eq!(result.code, 0, "{}", result.stderr);
    let post = axum::http::Method::POST;
    assert_eq!(
        server.count(post.clone(), "raw/dbs/d/tables/t/rows"),
        3,
        "10,000 + 10,000 + 5,000"
    );
    assert_eq!(
        server.count(post.clone(), "events"),
        3,
        "1,000 + 1,000 + 500"
    );
    assert_eq!(server.store().rows("d", "t").len(), 25_000);
    assert_eq!(
        sdk.run("all-events", &[]).await.as_array().unwrap().len(),
        2_500
    );
}

fn known_point() -> Value {
    json!({"tag": "known", "ts": 1, "v": 1})
}

fn ghost_point() -> Value {
    json!({"tag": "ghost", "ts": 1, "v": 2})
}

/// What a run with points of a missing series left.
struct MissingRun {
    setup: Setup,
    server: CdfServer,
    result: Run,
    /// What the SDK reads of the series that exists.
    known: Value,
}

/// Delivers `records` (points of the series `known`, which exists, and others) without
/// `create-missing`, under `on-error: <mode>`.
async fn missing_series_under(on_error: &str, records: &[Value]) -> MissingRun {
    let (server, sdk) = server_and_sdk().await;
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    server.store().add_series("known", false);
    setup.append("points.jsonl", records);
    let sink = "type: cdf-datapoints, external-id: /tag, timestamp: /ts, value: /v";
    let mut task_extra = format!("    on-error: {on_error}\n");
    if on_error == "dead-letter" {
        let file = setup.path("dead.jsonl");
        task_extra.push_str(&format!("    dead-letter: '{}'\n", file.display()));
    }
    let result = run_once(setup.config(&[("points", "points.jsonl", sink)], "", &task_extra)).await;
    let known = sdk.run("datapoints", &["known"]).await;
    MissingRun {
        setup,
        server,
        result,
        known,
    }
}

/// The three kinds of point: delivered, of a missing series, refused by our checks.
fn three_points() -> Vec<Value> {
    let long = json!({"tag": "bad", "ts": 1, "v": "x".repeat(2000)});
    vec![known_point(), ghost_point(), long]
}

#[tokio::test(flavor = "multi_thread")]
async fn under_skip_the_points_of_a_missing_series_are_dropped_and_the_rest_delivered() {
    let run = missing_series_under("skip", &three_points()).await;
    assert_eq!(run.result.code, 0, "{}", run.result.stderr);
    assert_eq!(run.known, json!({"known": [[1, 1.0]]}));
    assert!(!run.server.store().series.contains_key("ghost"));
    assert!(
        run.result.stderr.contains("records=2"),
        "one warning counts the ghost point and the long one: {}",
        run.result.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn under_dead_letter_they_are_kept_as_given_to_the_sink() {
    let run = missing_series_under("dead-letter", &three_points()).await;
    assert_eq!(run.result.code, 0, "{}", run.result.stderr);
    assert_eq!(run.known, json!({"known": [[1, 1.0]]}));
    let dead = std::fs::read_to_string(run.setup.path("dead.jsonl")).unwrap();
    let text = dead.replace(char::is_whitespace, "");
    assert!(text.contains(r#""tag":"ghost""#), "{dead}");
    assert!(
        text.contains(r#""tag":"bad""#),
        "the over-long string too: {dead}"
    );
    assert!(!text.contains(r#""tag":"known""#), "{dead}");
}
