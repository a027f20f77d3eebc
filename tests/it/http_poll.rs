//! The `http-poll` task end to end: the real binary against a loopback source (paged, with a
//! cursor) and a loopback target API that can fail a batch.
//!
//! Auth: a client-secret client of the real test identity provider; the target API checks that
//! every batch carries a token the provider signed for that client.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::harness::cli::{run, tapline};
use crate::harness::idp::idp;
use crate::harness::jwt;
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
