//! A password in a URL (`http://user:s3cret@host/…`) never reaches stderr: not in the error a
//! run ends with, not in the logs at trace level. The URLs still appear, redacted, so that the
//! user can tell which one failed.

use std::path::Path;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::harness::cli::{run, tapline, Run};
use crate::harness::loopback::{serve, Loopback};

const PASSWORD: &str = "s3cret-Url-Pw9";

/// `http://user:<PASSWORD>@127.0.0.1:<port><path>`.
fn with_password(server: &Loopback, path: &str) -> String {
    format!("http://user:{PASSWORD}@{}{path}", server.addr)
}

/// A server where `/first` links to `next` and everything else is a 404.
fn api(next: String) -> Loopback {
    serve(
        Router::new()
            .route(
                "/first",
                get(move || async move { Json(json!({"items": [], "next": next})) }),
            )
            .fallback(|| async { StatusCode::NOT_FOUND }),
    )
}

fn run_at_trace(dir: &Path, args: &[&str], config: &str) -> Run {
    let path = dir.join("tapline.yaml");
    std::fs::write(&path, config).unwrap();
    run(tapline()
        .args(args)
        .arg("-c")
        .arg(&path)
        .env("RUST_LOG", "trace"))
}

fn assert_redacted(run: &Run, shown: &[String]) {
    let output = run.all_output();
    assert!(!output.contains(PASSWORD), "the password leaked:\n{output}");
    for url in shown {
        assert!(
            output.contains(url.as_str()),
            "{url} is not named in:\n{output}"
        );
    }
}

#[test]
fn a_token_url_password_never_appears_in_the_error_or_the_trace_log() {
    let idp = serve(Router::new().fallback(|| async { StatusCode::BAD_REQUEST }));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "auth: {{type: client-secret, token-url: \"{}\", client-id: c, client-secret: s}}\n",
        with_password(&idp, "/token?tenant=x")
    );
    let out = run_at_trace(dir.path(), &["token"], &config);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_redacted(
        &out,
        &[format!(
            "the token endpoint http://***:***@{}/token answered HTTP 400",
            idp.addr
        )],
    );
}

/// One run with three tasks, each failing on a URL with a password: from `session.base-url`,
/// from the `http-poll` source URL, and from a `next` link the source answered.
#[test]
fn session_source_and_next_link_passwords_never_appear_in_errors_or_the_trace_log() {
    let target = serve(Router::new().fallback(|| async { StatusCode::NOT_FOUND }));
    let source = api(with_password(&target, "/gone?page=2"));
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "auth: {{type: none}}\nstate: {{path: '{state}'}}\nsession: {{base-url: \"{base}\", retries: {{max-retries: 0}}}}\ntasks:\n\
         - {{name: via-session, type: http-poll, schedule: {{interval: 1h}}, source: {{url: readings, auth: session}}, sink: {{type: stdout}}}}\n\
         - {{name: via-source, type: http-poll, schedule: {{interval: 1h}}, source: {{url: \"{missing}\"}}, sink: {{type: stdout}}}}\n\
         - {{name: via-next, type: http-poll, schedule: {{interval: 1h}}, source: {{url: \"{first}/first\", records: /items, next: /next}}, sink: {{type: stdout}}}}\n",
        state = dir.path().join("state.json").display(),
        base = with_password(&target, "/api/"),
        missing = with_password(&target, "/missing?key=k"),
        first = source.base(),
    );
    let out = run_at_trace(dir.path(), &["run", "--once"], &config);
    assert_ne!(out.code, 0, "{}", out.stderr);
    let at = target.addr;
    assert_redacted(
        &out,
        &[
            // The session sends a URL's user and password as HTTP Basic, not in the URL, for
            // the base URL, a source URL and a `next` link alike.
            format!("GET http://{at}/api/readings answered 404 Not Found"),
            format!("GET http://{at}/missing answered 404 Not Found"),
            format!("GET http://{at}/gone answered 404 Not Found"),
        ],
    );
}
