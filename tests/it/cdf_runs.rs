//! Extraction pipeline runs and `validate --check-auth` against the CDF test server: the right
//! status after each run, a task's own pipeline, `seen` heartbeats, reports that CDF refused sent
//! again with the next one, and the token's project and groups.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cdf::{run_once, Setup};
use crate::cdf_sdk::server_and_sdk;
use crate::harness::cli::{run, tapline};
use crate::harness::idp::idp;

const RAW: &str = "type: cdf-raw, database: d, table: t, key: /id";
const GHOST: &str = "type: cdf-datapoints, external-id: /tag, timestamp: /ts, value: /v";

#[tokio::test(flavor = "multi_thread")]
async fn each_run_reports_success_or_failure_to_its_pipeline() {
    let (server, sdk) = server_and_sdk().await;
    server.pipeline("pipe-a");
    server.pipeline("pipe-b");
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    setup.append("rows.jsonl", &[json!({"id": 1})]);
    setup.append("points.jsonl", &[json!({"tag": "ghost", "ts": 1, "v": 1})]);
    let mut config = std::fs::read_to_string(setup.config(
        &[("good", "rows.jsonl", RAW), ("bad", "points.jsonl", GHOST)],
        ", extraction-pipeline: {external-id: pipe-a}",
        "",
    ))
    .unwrap();
    config = config.replace(
        "  - name: bad\n",
        "  - name: bad\n    extraction-pipeline: pipe-b\n",
    );
    let path = setup.path("tapline.yaml");
    std::fs::write(&path, config).unwrap();

    let result = run_once(path).await;
    assert_eq!(result.code, 1, "the bad task fails: {}", result.stderr);
    assert_eq!(
        sdk.run("runs", &["pipe-a"]).await,
        json!([{"status": "success", "message": "task good"}])
    );
    let failed = sdk.run("runs", &["pipe-b"]).await;
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["status"], "failure");
    let message = failed[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("task bad: ") && message.contains("\"ghost\" does not exist"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_report_is_sent_again_with_the_next_and_heartbeats_go_out() {
    let (server, _sdk) = server_and_sdk().await;
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    setup.append("rows.jsonl", &[json!({"id": 1})]);
    let path = setup.config(
        &[("good", "rows.jsonl", RAW)],
        ", extraction-pipeline: {external-id: late, heartbeat: 1s}",
        "",
    );
    let (shutdown, handle) = every_second(&path);

    let refused = |server: &crate::harness::cdf::CdfServer| {
        server
            .seen()
            .iter()
            .any(|s| s.path == "extpipes/runs" && s.status == 400)
    };
    wait_for(|| refused(&server), "a refused report").await;
    let registered_at = chrono::Utc::now().timestamp_millis();
    server.pipeline("late");
    wait_for(
        || {
            let statuses = server.store().statuses("late");
            statuses.contains(&"seen".to_string())
                && statuses.iter().filter(|s| *s == "success").count() >= 2
        },
        "reports after registration",
    )
    .await;
    shutdown.trigger();
    handle.await.unwrap().unwrap();

    // Reports sent concurrently (a heartbeat and a run's report) may arrive in either order, so
    // the refused one is looked for by its time, not its place.
    let store = server.store();
    let refused_then_kept = store.runs.iter().any(|run| {
        run.external_id == "late" && run.status == "success" && run.created_time < registered_at
    });
    assert!(
        refused_then_kept,
        "the refused report came later: {:?}",
        store.runs
    );
    assert!(
        store.statuses("late").iter().all(|s| s != "failure"),
        "the task never failed"
    );
}

/// Runs the config's tasks every second, in process, until the returned shutdown.
fn every_second(
    path: &std::path::Path,
) -> (
    tapline::runner::Shutdown,
    tokio::task::JoinHandle<Result<(), tapline::runner::Error>>,
) {
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("interval: 1h", "interval: 1s");
    std::fs::write(path, text).unwrap();
    let registry = tapline::Registry::builtin();
    let config = registry.load(path).unwrap();
    let shutdown = tapline::runner::Shutdown::new();
    let runner = registry
        .runner(config)
        .unwrap()
        .handle_signals(false)
        .shutdown(shutdown.clone());
    (shutdown.clone(), tokio::spawn(runner.run()))
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_to_an_unknown_pipeline_wait_without_holding_back_the_others() {
    let (server, _sdk) = server_and_sdk().await;
    server.pipeline("pipe-a");
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    setup.append("a.jsonl", &[json!({"id": 1})]);
    setup.append("b.jsonl", &[json!({"id": 2})]);
    let path = setup.config(
        &[("good", "a.jsonl", RAW), ("lost", "b.jsonl", RAW)],
        ", extraction-pipeline: {external-id: pipe-a}",
        "",
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "  - name: lost\n",
        "  - name: lost\n    extraction-pipeline: nowhere\n",
    );
    std::fs::write(&path, text).unwrap();
    let (shutdown, handle) = every_second(&path);
    let successes = |pipeline: &str| {
        let statuses = server.store().statuses(pipeline);
        statuses.iter().filter(|s| *s == "success").count()
    };
    // Every run of `lost` adds a report CDF refuses; `good`'s go through all the same.
    wait_for(|| successes("pipe-a") >= 4, "four reports of good").await;
    assert_eq!(successes("nowhere"), 0);
    server.pipeline("nowhere");
    wait_for(|| successes("nowhere") >= 4, "the kept reports of lost").await;
    shutdown.trigger();
    handle.await.unwrap().unwrap();
}

async fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_auth_names_the_project_and_groups_cdf_sees() {
    let (server, _sdk) = server_and_sdk().await;
    let setup = Setup::new(server.clone(), idp().secret_client(false, 3600).await);
    let path = setup.config(&[("good", "rows.jsonl", RAW)], "", "");
    let check = |path: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            run(tapline().args(["validate", "--check-auth", "-c"]).arg(path))
        })
    };
    let result = check(path.clone()).await.unwrap();
    assert_eq!(result.code, 0, "{}", result.all_output());
    assert!(
        result
            .stdout
            .contains("CDF OK: project tapline-test, groups 101, 102"),
        "{}",
        result.stdout
    );
    assert_eq!(
        server.count(axum::http::Method::GET, "api/v1/token/inspect"),
        1
    );

    let other = std::fs::read_to_string(&path)
        .unwrap()
        .replace("project: tapline-test", "project: elsewhere");
    std::fs::write(&path, other).unwrap();
    let result = check(path).await.unwrap();
    assert_eq!(result.code, 1, "{}", result.all_output());
    assert!(
        result
            .stderr
            .contains("does not reach project \"elsewhere\"; it reaches: tapline-test"),
        "{}",
        result.stderr
    );
}
