//! The `http-poll` task end to end: the real binary against a loopback source (paged, with a
//! cursor) and a loopback target API that can fail a batch.
//!
//! Auth: a client-secret client of the real test identity provider; the target API checks that
//! every batch carries a token the provider signed for that client.
//!
//! The hardening tests run the task in this process (`run_task`), so each can look at the run's
//! error, log and metrics; the servers are real loopback servers either way.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tapline::runner::{StateStore, Task, TaskContext, TaskError};
use tapline::session::Session;
use tokio_util::sync::CancellationToken;

use crate::harness::api::{Api, Reply};
use crate::harness::cli::{run, tapline};
use crate::harness::idp::idp;
use crate::harness::jwt;
use crate::harness::logs;
use crate::harness::loopback::serve;

#[derive(Default)]
struct Seen {
    /// Source requests: path and query, Authorization header.
    source: Vec<(String, Option<String>)>,
    /// Target batches: the records' ids, Authorization header.
    target: Vec<(Vec<String>, Option<String>)>,
    /// 1-based numbers of target requests to answer with 400.
    fail: Vec<usize>,
    target_requests: usize,
}

type Shared = Arc<Mutex<Seen>>;

fn auth(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string())
}

fn record(id: &str) -> Value {
    json!({"id": id, "value": 1.5})
}

fn source(seen: Shared) -> Router {
    Router::new()
        .route(
            "/readings",
            get(
                |State(seen): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    let since = q.get("since").cloned().unwrap_or_default();
                    seen.lock().unwrap().source.push((format!("/readings?since={since}"), auth(&headers)));
                    match since.as_str() {
                        // First page of everything; the cursor comes with the last page.
                        "" => Json(json!({"items": [record("r1"), record("r2")], "next": "/readings/page2"})),
                        "c5" => Json(json!({"items": [], "next_cursor": "c5"})),
                        other => panic!("unexpected cursor {other:?}"),
                    }
                },
            ),
        )
        .route(
            "/readings/page2",
            get(|State(seen): State<Shared>, headers: HeaderMap| async move {
                seen.lock().unwrap().source.push(("/readings/page2".into(), auth(&headers)));
                Json(json!({"items": [record("r3"), record("r4"), record("r5")], "next": null, "next_cursor": "c5"}))
            }),
        )
        .with_state(seen)
}

fn target(seen: Shared) -> Router {
    Router::new()
        .route(
            "/api/v1/timeseries/data",
            post(|State(seen): State<Shared>, headers: HeaderMap, Json(body): Json<Value>| async move {
                let mut seen = seen.lock().unwrap();
                seen.target_requests += 1;
                if seen.fail.contains(&seen.target_requests) {
                    return StatusCode::BAD_REQUEST;
                }
                let ids = body["items"]
                    .as_array()
                    .expect("records wrapped in items")
                    .iter()
                    .map(|r| r["id"].as_str().unwrap().to_string())
                    .collect();
                seen.target.push((ids, auth(&headers)));
                StatusCode::OK
            }),
        )
        .with_state(seen)
}

fn cursor(state: &Path) -> Option<String> {
    let bytes = std::fs::read(state).ok()?;
    let state: Value = serde_json::from_slice(&bytes).expect("state is valid JSON");
    state["tasks"]["readings"]["cursor"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn http_poll_pages_delivers_in_batches_and_moves_the_cursor_only_after_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let seen: Shared = Arc::default();
    seen.lock().unwrap().fail = vec![2];
    let source = serve(source(seen.clone()));
    let target = serve(target(seen.clone()));
    let state = dir.path().join("state.json");
    let config = dir.path().join("tapline.yaml");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(idp().secret_client(false, 3600));
    let jwks = runtime.block_on(idp().jwks());
    std::fs::write(
        &config,
        format!(
            r#"auth: {{type: client-secret, token-url: "{token_url}", client-id: {client_id}, client-secret: {client_secret}}}
session: {{base-url: "{target}/api/v1/"}}
state: {{path: "{state}"}}
tasks:
  - name: readings
    type: http-poll
    schedule: {{interval: 60s}}
    source:
      url: "{source}/readings?since={{cursor}}"
      records: /items
      cursor: /next_cursor
      next: /next
    sink: {{type: http, path: timeseries/data, wrap: items, batch-size: 2}}
"#,
            token_url = idp().token_url(),
            client_id = client.id,
            client_secret = client.secret,
            target = target.base(),
            source = source.base(),
            state = state.display()
        ),
    )
    .unwrap();
    let once = || run(tapline().args(["run", "--once", "-c"]).arg(&config));

    // Run 1: the target rejects the second batch: the run fails and the cursor stays unset.
    let out = once();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        cursor(&state),
        None,
        "the cursor moved although a batch was not delivered"
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.target.len(), 1);
        assert_eq!(seen.target[0].0, ["r1", "r2"]);
    }

    // Run 2: everything is delivered again from the same cursor, then the cursor moves.
    let out = once();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(cursor(&state).as_deref(), Some("c5"));
    {
        let seen = seen.lock().unwrap();
        let batches: Vec<Vec<String>> = seen.target.iter().map(|(ids, _)| ids.clone()).collect();
        assert_eq!(
            batches,
            [
                vec!["r1", "r2"],
                vec!["r1", "r2"],
                vec!["r3", "r4"],
                vec!["r5"]
            ]
        );
        // The target API gets the session's bearer token from the identity provider; the source
        // (auth: none) gets no token.
        for (_, auth) in &seen.target {
            let token = auth
                .as_deref()
                .and_then(|a| a.strip_prefix("Bearer "))
                .expect("a bearer token");
            jwt::verify(token, &jwks, &client.id);
        }
        assert!(
            seen.source.iter().all(|(_, auth)| auth.is_none()),
            "{:?}",
            seen.source
        );
    }

    // Run 3: the saved cursor is sent; nothing new, nothing delivered.
    let out = once();
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.source.last().unwrap().0, "/readings?since=c5");
    assert_eq!(seen.target.len(), 4);
    let paths: Vec<&str> = seen.source.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/readings?since=",
            "/readings/page2",
            "/readings?since=",
            "/readings/page2",
            "/readings?since=c5"
        ]
    );
}

/// The task of `keys` (its own YAML keys), run once in this process through `session`, with its
/// state in `state`: the error of a failed run comes back whole.
async fn run_task(keys: &str, session: &Session, state: &StateStore) -> Result<(), TaskError> {
    let mut keys: serde_json::Value = serde_yaml::from_str(keys).expect("task keys");
    let sink = serde_json::from_value(keys["sink"].take()).expect("a sink block");
    keys.as_object_mut().unwrap().remove("sink");
    let config = serde_json::from_value(keys).expect("task keys");
    let task = tapline::tasks::http_poll::build(config).expect("a valid task");
    let destination = tapline::Registry::builtin()
        .sink_for(&sink)
        .expect("a valid sink");
    let ctx = TaskContext::new(
        "readings",
        session,
        state.handle("readings"),
        CancellationToken::new(),
    )
    .with_sink(destination);
    task.run(ctx).await
}

/// A session whose base URL is `api` and whose token comes from the test identity provider.
async fn authenticated(api: &Api) -> Session {
    let client = idp().secret_client(false, 3600).await;
    Session::new(
        &crate::session::config(&api.base_url()),
        crate::harness::idp::credentials(&client),
    )
    .unwrap()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |text| text.lines().count())
}

/// Two loopback servers are two origins: the API (base URL, source) and a foreign host that a
/// `next` link points at. The foreign host must never see the token.
#[tokio::test]
async fn a_next_link_to_another_origin_fails_the_run_and_gets_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start().await.verifying(idp()).await;
    let foreign = Api::start().await;
    let elsewhere = format!("http://{}", foreign.addr);
    api.script(
        "/readings",
        [Reply::status(200).body(
            &json!({"items": [record("r1")], "next": format!("{elsewhere}/page2?api_key=s3cret")})
                .to_string(),
        )],
    );
    let session = authenticated(&api).await;
    let state = StateStore::empty(dir.path().join("state.json"));
    let out = dir.path().join("out.jsonl");
    let keys = format!(
        "source: {{url: readings, records: /items, next: /next, auth: session}}\nsink: {{type: jsonl, path: '{}'}}",
        out.display()
    );

    let error = run_task(&keys, &session, &state)
        .await
        .unwrap_err()
        .to_string();

    assert!(
        foreign
            .recorded()
            .iter()
            .all(|r| r.authorization().is_none()),
        "the foreign origin got a token"
    );
    assert!(
        error.contains(&format!("links to {elsewhere}, which is neither")),
        "{error}"
    );
    assert!(error.contains("source.allowed-origins"), "{error}");
    assert!(!error.contains("s3cret"), "no query in errors: {error}");
    assert!(api.requests_to("/readings")[0]
        .token_check
        .as_ref()
        .unwrap()
        .is_ok());
    // The run failed before its batch was full: nothing was delivered and the cursor did not
    // move, so the next run reads the first page again.
    assert_eq!(lines(&out), 0, "a failed run delivers no partial batch");

    // Listed in allowed-origins, the same link is followed, with the token.
    api.script(
        "/readings",
        [Reply::status(200).body(
            &json!({"items": [record("r1")], "next": format!("{elsewhere}/page2")}).to_string(),
        )],
    );
    foreign.script(
        "/page2",
        [Reply::status(200).body(&json!({"items": [record("r2")]}).to_string())],
    );
    let keys = format!(
        "source: {{url: readings, records: /items, next: /next, auth: session, allowed-origins: ['{elsewhere}']}}\nsink: {{type: jsonl, path: '{}'}}",
        out.display()
    );
    run_task(&keys, &session, &state).await.unwrap();
    assert!(foreign.requests_to("/page2")[0].authorization().is_some());
}

#[tokio::test]
async fn a_source_url_at_another_origin_needs_allowed_origins_for_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let foreign = Api::start().await;
    let session = authenticated(&api).await;
    let state = StateStore::empty(dir.path().join("state.json"));
    let keys = format!(
        "source: {{url: 'http://{}/readings?key=s3cret', auth: session}}\nsink: {{type: stdout}}",
        foreign.addr
    );

    let error = run_task(&keys, &session, &state)
        .await
        .unwrap_err()
        .to_string();

    assert!(
        error.starts_with(&format!(
            "source.url: http://{} is not session.base-url's origin",
            foreign.addr
        )),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
    assert!(foreign.recorded().is_empty());
}

#[tokio::test]
async fn a_next_link_back_to_a_fetched_page_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let page = |n: u32, next: &str| {
        Reply::status(200)
            .body(&json!({"items": [record(&format!("r{n}"))], "next": next}).to_string())
    };
    // A cycle through the query (page=1 → page=2 → page=1), then a page linking to itself.
    api.script(
        "/pages",
        [page(1, "pages?page=2"), page(2, "/pages?page=1")],
    );
    api.script("/self", [page(3, "self")]);
    let session = Session::new(
        &crate::session::config(&api.base_url()),
        tapline::auth::Credentials::none(),
    )
    .unwrap();
    let state = StateStore::empty(dir.path().join("state.json"));
    let out = dir.path().join("out.jsonl");
    let keys = |path: &str| {
        format!(
            "source: {{url: '{}{path}', records: /items, next: /next}}\nsink: {{type: jsonl, path: '{}'}}",
            api.base_url(),
            out.display()
        )
    };

    let error = run_task(&keys("pages?page=1"), &session, &state)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!(
            "source.next of page 2 leads back to {}pages (page 1 of this run)",
            api.base_url()
        )),
        "{error}"
    );
    assert!(!error.contains("page=1"), "no query in errors: {error}");
    assert_eq!(api.requests_to("/pages").len(), 2);

    let error = run_task(&keys("self"), &session, &state)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!(
            "source.next of page 1 leads back to {}self",
            api.base_url()
        )),
        "{error}"
    );
    assert_eq!(api.requests_to("/self").len(), 1);
    // Both runs failed before their batch was full: no page was delivered, let alone again.
    assert_eq!(lines(&out), 0, "a failed run delivers no partial batch");
}

/// A JSON array of `records` small objects, streamed in chunks without a Content-Length.
fn streamed_array(records: usize) -> Body {
    let chunks = (0..=records).map(move |n| {
        let text = match n {
            0 => "[".to_string(),
            n if n == records => "{\"n\": 0}]".to_string(),
            n => format!("{{\"n\": {n}, \"padding\": \"{}\"}},", "x".repeat(100)),
        };
        Ok::<_, std::io::Error>(Bytes::from(text))
    });
    Body::from_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn a_page_over_max_body_size_fails_the_run_while_it_streams() {
    let dir = tempfile::tempdir().unwrap();
    // About 230 KiB, chunked: no Content-Length to trust.
    let chunked = serve(Router::new().route("/big", get(|| async { streamed_array(2_000) })));
    let api = Api::start().await;
    // 20 KiB with a Content-Length.
    let padding = "x".repeat(20 * 1024);
    api.script(
        "/sized",
        [Reply::status(200).body(&json!([{"padding": padding}]).to_string())],
    );
    let session = Session::new(
        &crate::session::config(&api.base_url()),
        tapline::auth::Credentials::none(),
    )
    .unwrap();
    let state = StateStore::empty(dir.path().join("state.json"));
    let out = dir.path().join("out.jsonl");

    for url in [
        format!("{}/big", chunked.base()),
        format!("{}sized", api.base_url()),
    ] {
        let keys = format!(
            "source: {{url: '{url}', max-body-size: 16KiB}}\nsink: {{type: jsonl, path: '{}'}}",
            out.display()
        );
        let error = run_task(&keys, &session, &state).await.unwrap_err();
        let chain = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(
            chain.contains("source.max-body-size") && chain.contains("larger than 16KiB"),
            "{chain}"
        );
    }
    assert_eq!(lines(&out), 0, "nothing delivered");

    // Under the default limit the same chunked page is read whole.
    let keys = format!(
        "source: {{url: '{}/big'}}\nsink: {{type: jsonl, path: '{}'}}",
        chunked.base(),
        out.display()
    );
    run_task(&keys, &session, &state).await.unwrap();
    assert_eq!(lines(&out), 2_000);
}

/// `auth: none` goes through the session's send loop too: retries, backoff and `Retry-After`,
/// only without the token. The session has credentials here, to show none of them leave.
#[tokio::test]
async fn a_source_without_auth_is_retried_and_honours_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let source = Api::start().await;
    source.script(
        "/readings",
        [
            Reply::status(503),
            Reply::status(503),
            Reply::status(429).header("retry-after", "1"),
            Reply::status(200).body(&json!({"items": [record("r1")]}).to_string()),
        ],
    );
    let session = authenticated(&api).await;
    let state = StateStore::empty(dir.path().join("state.json"));
    let out = dir.path().join("out.jsonl");
    let keys = format!(
        "source: {{url: 'http://{}/readings', records: /items}}\nsink: {{type: jsonl, path: '{}'}}",
        source.addr,
        out.display()
    );

    run_task(&keys, &session, &state).await.unwrap();

    assert_eq!(lines(&out), 1);
    let requests = source.requests_to("/readings");
    assert_eq!(requests.len(), 4);
    assert!(
        requests[3].at - requests[2].at >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    assert!(requests.iter().all(|r| r.authorization().is_none()));
}

#[tokio::test]
async fn a_cursor_missing_from_every_page_warns_and_counts() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    // This thread's recorder and log only; the test runs on a current-thread runtime.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let log = logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let items = |cursor: Option<&str>| {
        let mut body = json!({"items": [record("r1")]});
        if let Some(cursor) = cursor {
            body["next_cursor"] = json!(cursor);
        }
        Reply::status(200).body(&body.to_string())
    };
    api.script("/readings", [items(None), items(Some("c2")), items(None)]);
    let session = Session::new(
        &crate::session::config(&api.base_url()),
        tapline::auth::Credentials::none(),
    )
    .unwrap();
    let state = StateStore::empty(dir.path().join("state.json"));
    let keys = format!(
        "source: {{url: '{}readings?since={{cursor}}', records: /items, cursor: /next_cursor}}\nsink: {{type: jsonl, path: '{}'}}",
        api.base_url(),
        dir.path().join("out.jsonl").display()
    );
    let counted = || {
        metrics
            .render()
            .lines()
            .find(|line| {
                line.starts_with("tapline_http_poll_cursor_missing_total{task=\"readings\"}")
            })
            .map(str::to_string)
    };

    run_task(&keys, &session, &state).await.unwrap();
    assert_eq!(
        counted().as_deref(),
        Some("tapline_http_poll_cursor_missing_total{task=\"readings\"} 1")
    );
    let text = log.text();
    let warning = text
        .lines()
        .find(|line| line.contains("WARN") && line.contains("\"/next_cursor\""))
        .unwrap_or_else(|| panic!("no warning naming the pointer in:\n{text}"));
    assert!(warning.contains("reads these records again"), "{warning}");

    // With the cursor there, no warning; the cursor moves.
    run_task(&keys, &session, &state).await.unwrap();
    assert_eq!(
        counted().as_deref(),
        Some("tapline_http_poll_cursor_missing_total{task=\"readings\"} 1")
    );
    assert_eq!(
        state
            .handle("readings")
            .get::<String>("cursor")
            .unwrap()
            .as_deref(),
        Some("c2")
    );
    run_task(&keys, &session, &state).await.unwrap();
    assert_eq!(
        counted().as_deref(),
        Some("tapline_http_poll_cursor_missing_total{task=\"readings\"} 2")
    );
    let paths: Vec<String> = api
        .requests_to("/readings")
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths.len(), 3);
}

/// `batch-size` holds across pages: 25 one-record pages reach the target as 3 POSTs.
#[test]
fn batches_span_pages() {
    let posts: Arc<Mutex<Vec<usize>>> = Arc::default();
    let source = serve(Router::new().route(
        "/p/{n}",
        get(
            |axum::extract::Path(n): axum::extract::Path<u32>| async move {
                let next = (n < 25).then(|| format!("/p/{}", n + 1));
                Json(json!({"items": [{"n": n}], "next": next}))
            },
        ),
    ));
    let target = serve(
        Router::new()
            .route(
                "/api/items",
                post(
                    |State(posts): State<Arc<Mutex<Vec<usize>>>>, Json(body): Json<Value>| async move {
                        posts.lock().unwrap().push(body["items"].as_array().unwrap().len());
                        "ok"
                    },
                ),
            )
            .with_state(posts.clone()),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tapline.yaml");
    std::fs::write(
        &config,
        format!(
            "auth: {{type: none}}\nsession: {{base-url: '{}/api/'}}\nstate: {{path: '{}'}}\ntasks:\n  - name: pages\n    type: http-poll\n    schedule: startup\n    source: {{url: '{}/p/1', records: /items, next: /next}}\n    sink: {{type: http, path: items, batch-size: 10}}\n",
            target.base(),
            dir.path().join("state.json").display(),
            source.base()
        ),
    )
    .unwrap();
    let out = run(tapline().args(["run", "--once", "-c"]).arg(&config));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(*posts.lock().unwrap(), [10, 10, 5]);
}
