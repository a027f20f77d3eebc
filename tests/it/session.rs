//! The shared session against real servers on loopback: the test identity provider for tokens
//! and a fault-injecting API (harness/api.rs) for responses.

use std::time::{Duration, Instant, SystemTime};

use reqwest::StatusCode;
use tapline::auth::Credentials;
use tapline::config::{HumanDuration, RetryConfig, SessionConfig};
use tapline::session::Session;

use crate::harness::api::{Api, Reply};
use crate::harness::idp::{idp, Client};
use crate::harness::logs;

const MS: Duration = Duration::from_millis(1);

/// Small backoffs keep the suite fast; `max-retry-after` lets Retry-After tests wait seconds.
/// Other areas' tests use it for their sessions too.
pub(crate) fn config(base_url: &str) -> SessionConfig {
    SessionConfig {
        base_url: Some(base_url.to_string()),
        timeout: HumanDuration::from_secs(5),
        connect_timeout: HumanDuration::from_secs(1),
        retries: RetryConfig {
            max_retries: 3,
            initial_backoff: HumanDuration::from_millis(50),
            max_backoff: HumanDuration::from_millis(400),
            max_retry_after: Some(HumanDuration::from_secs(5)),
            ..RetryConfig::default()
        },
        ..SessionConfig::default()
    }
}

/// A session without authentication against `api`.
fn anonymous(api: &Api) -> Session {
    Session::new(&config(&api.base_url()), Credentials::none()).unwrap()
}

/// A client of the identity provider with tokens living `ttl_secs`, and credentials over it.
async fn client(ttl_secs: u64) -> (Client, Credentials) {
    let client = idp().secret_client(false, ttl_secs).await;
    let credentials = crate::harness::idp::credentials(&client);
    (client, credentials)
}

fn gaps(api: &Api, path: &str) -> Vec<Duration> {
    let requests = api.requests_to(path);
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// The `wait_ms` of each "retrying" event in a captured log.
fn logged_waits(log: &str) -> Vec<Duration> {
    log.lines()
        .filter(|line| line.contains("retrying"))
        .filter_map(|line| {
            let value = line.split("wait_ms=").nth(1)?.split_whitespace().next()?;
            Some(Duration::from_millis(value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn retries_503_twice_then_succeeds_with_growing_backoff() {
    let log = logs::capture();
    let api = Api::start().await;
    api.script("/flaky", [Reply::status(503), Reply::status(503)]);

    let response = anonymous(&api).get("flaky").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        api.requests_to("/flaky").len(),
        3,
        "success on the third attempt"
    );
    // Full jitter draws each wait from [0, ceiling], the ceiling doubling per retry (50 ms, then
    // 100 ms here; the growth itself is unit-tested in tapline::backoff). What is checked here is
    // that the session really waited what it decided before each retry.
    let waits = logged_waits(&log.text());
    assert_eq!(waits.len(), 2, "two retries logged: {waits:?}");
    assert!(waits[0] <= 50 * MS && waits[1] <= 100 * MS, "{waits:?}");
    for (gap, wait) in gaps(&api, "/flaky").iter().zip(&waits) {
        assert!(*gap >= *wait, "waited {gap:?}, decided {wait:?}");
    }
}

/// Full jitter makes any single pair of waits random, so growth is checked over many requests:
/// the ceilings are 50 ms then 100 ms, so the second wait averages about twice the first.
/// (With 60 samples each, the margin below is more than four standard deviations.)
#[tokio::test]
async fn the_second_backoff_is_longer_than_the_first_on_average() {
    const RUNS: u32 = 60;
    let log = logs::capture();
    let api = Api::start().await;
    let session = anonymous(&api);
    for _ in 0..RUNS {
        api.script("/flaky", [Reply::status(503), Reply::status(503)]);
        let response = session.get("flaky").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let waits = logged_waits(&log.text());
    assert_eq!(waits.len(), 2 * RUNS as usize, "{waits:?}");
    let first: Duration = waits.iter().step_by(2).sum::<Duration>() / RUNS;
    let second: Duration = waits.iter().skip(1).step_by(2).sum::<Duration>() / RUNS;
    assert!(first > 5 * MS, "the session hardly waited: mean {first:?}");
    assert!(
        second > first.mul_f64(1.15),
        "backoff did not grow: mean first {first:?}, mean second {second:?}"
    );
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let api = Api::start().await;
    api.script("/limited", [Reply::status(429).header("retry-after", "2")]);

    anonymous(&api).get("limited").send().await.unwrap();

    let gaps = gaps(&api, "/limited");
    assert_eq!(gaps.len(), 1);
    assert!(
        gaps[0] >= Duration::from_secs(2),
        "retried after {:?}",
        gaps[0]
    );
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let api = Api::start().await;
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    api.script("/busy", [Reply::status(503).header("retry-after", &at)]);

    anonymous(&api).get("busy").send().await.unwrap();

    // The date has whole seconds, so "now + 3 s" is at least 2 s ahead.
    let gaps = gaps(&api, "/busy");
    assert_eq!(gaps.len(), 1);
    assert!(
        gaps[0] >= Duration::from_millis(1900),
        "retried after {:?}",
        gaps[0]
    );
}

#[tokio::test]
async fn statuses_not_in_retry_on_are_not_retried() {
    let api = Api::start().await;
    api.script(
        "/bad",
        [Reply::status(400).body(r#"{"error":"field 'name' is required"}"#)],
    );
    api.script("/missing", [Reply::status(404).body("no such item")]);
    let session = anonymous(&api);

    let error = session
        .post("bad?secret-query=hunter2")
        .json(&[1])
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(error.attempts(), Some(1));
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "POST {}bad answered 400 Bad Request (1 attempt)",
            api.base_url()
        )),
        "{message}"
    );
    assert!(
        message.contains("field 'name' is required"),
        "the API's explanation: {message}"
    );
    assert!(
        !message.contains("hunter2"),
        "no query in errors: {message}"
    );

    let error = session.get("missing").send().await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    assert!(error.to_string().contains("no such item"));

    assert_eq!(api.requests_to("/bad").len(), 1);
    assert_eq!(api.requests_to("/missing").len(), 1);
}

#[tokio::test]
async fn exhausted_retries_name_the_attempts() {
    let api = Api::start().await;
    api.script(
        "/down",
        (0..10).map(|_| Reply::status(503).body("maintenance")),
    );

    let error = anonymous(&api).get("down").send().await.unwrap_err();

    assert_eq!(
        api.requests_to("/down").len(),
        4,
        "the first attempt and max-retries (3)"
    );
    assert_eq!(error.attempts(), Some(4));
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    let message = error.to_string();
    assert!(
        message.contains("503 Service Unavailable (4 attempts)"),
        "{message}"
    );
    assert!(message.contains("max-retries (3)"), "{message}");
}

#[tokio::test]
async fn a_hanging_server_times_out_and_the_request_is_retried() {
    let api = Api::start().await;
    api.script("/slow", [Reply::hang(Duration::from_secs(10))]);
    let mut config = config(&api.base_url());
    config.timeout = HumanDuration::from_millis(300);
    let session = Session::new(&config, Credentials::none()).unwrap();

    let started = Instant::now();
    let response = session.get("slow").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api.requests_to("/slow").len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_timeout_on_every_attempt_is_an_error() {
    let api = Api::start().await;
    api.script(
        "/stuck",
        (0..5).map(|_| Reply::hang(Duration::from_secs(10))),
    );
    let mut config = config(&api.base_url());
    config.timeout = HumanDuration::from_millis(100);
    config.retries.max_retries = 1;
    let session = Session::new(&config, Credentials::none()).unwrap();

    let error = session.get("stuck").send().await.unwrap_err();

    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.attempts(), Some(2));
    assert!(
        error.to_string().contains("timed out (2 attempts)"),
        "{error}"
    );
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let session = Session::new(
        &config(&format!("http://127.0.0.1:{port}/")),
        Credentials::none(),
    )
    .unwrap();

    let error = session.get("items").send().await.unwrap_err();

    assert_eq!(error.attempts(), Some(4), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "GET http://127.0.0.1:{port}/items could not connect (4 attempts)"
        )),
        "{message}"
    );
    assert!(message.contains("max-retries (3)"), "{message}");
}

#[tokio::test]
async fn a_401_for_the_current_token_refreshes_once_and_succeeds() {
    let api = Api::start().await.verifying(idp()).await;
    let (client, credentials) = client(3600).await;
    let first = credentials.token().await.unwrap().unwrap();
    api.revoke(first.header());
    let issued_before = idp().issued(&client.id).await;
    let session = Session::new(&config(&api.base_url()), credentials).unwrap();

    let response = session.get("items").send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        idp().issued(&client.id).await - issued_before,
        1,
        "one token request"
    );
    let requests = api.requests_to("/items");
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].authorization(), first.header().to_str().ok());
    assert_ne!(
        requests[1].authorization(),
        requests[0].authorization(),
        "the resend carries the new token"
    );
    assert!(requests[1].token_check.as_ref().unwrap().is_ok());
}

#[tokio::test]
async fn always_401_is_an_error_after_exactly_one_resend() {
    let api = Api::start().await;
    api.always_unauthorized();
    let (client, credentials) = client(3600).await;
    let session = Session::new(&config(&api.base_url()), credentials).unwrap();

    let error = session.get("items").send().await.unwrap_err();

    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(
        api.requests_to("/items").len(),
        2,
        "the request and one resend, no loop"
    );
    assert_eq!(error.attempts(), Some(2));
    assert!(
        error
            .to_string()
            .contains("rejected a freshly fetched token"),
        "{error}"
    );
    assert_eq!(
        idp().issued(&client.id).await,
        2,
        "the first token and one refresh"
    );
}

/// Relies on the real `TokenCache` (single flight, from the credential providers issue): the
/// session's part is to invalidate exactly the token each request carried, so late 401s for the
/// old token do not drop the fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_401s_cause_one_token_request() {
    let api = Api::start().await.verifying(idp()).await;
    let (client, credentials) = client(3600).await;
    let first = credentials.token().await.unwrap().unwrap();
    api.revoke(first.header());
    let session = Session::new(&config(&api.base_url()), credentials).unwrap();

    let requests: Vec<_> = (0..50)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move { session.get("items").send().await.map(|r| r.status()) })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), StatusCode::OK);
    }

    assert_eq!(
        api.requests_to("/items").len(),
        100,
        "each request was rejected once"
    );
    assert_eq!(
        idp().issued(&client.id).await,
        2,
        "the first token and exactly one refresh"
    );
}

/// Relies on the real `TokenCache` refreshing ahead of expiry (from the credential providers
/// issue); the session's part is to take the current token at every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_valid_on_arrival_under_load() {
    let api = Api::start().await.verifying(idp()).await;
    let (_client, credentials) = client(3).await;
    let session = Session::new(&config(&api.base_url()), credentials).unwrap();
    let until = Instant::now() + Duration::from_secs(15);

    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let session = session.for_task(&format!("task-{n}"));
            tokio::spawn(async move {
                let mut sent = 0u32;
                while Instant::now() < until {
                    session.get("load").send().await?;
                    sent += 1;
                    tokio::time::sleep(20 * MS).await;
                }
                Ok::<_, tapline::session::Error>(sent)
            })
        })
        .collect();
    for task in tasks {
        let sent = task.await.unwrap().expect("no request fails");
        assert!(sent > 0);
    }

    let requests = api.requests_to("/load");
    let rejected: Vec<_> = requests
        .iter()
        .filter_map(|r| r.token_check.clone().and_then(Result::err))
        .collect();
    assert!(
        rejected.is_empty(),
        "{} of {} requests carried an invalid token: {:?}",
        rejected.len(),
        requests.len(),
        rejected.first()
    );
    assert_eq!(
        requests.len(),
        requests.iter().filter(|r| r.token_check.is_some()).count()
    );
}

/// A short token whose refresh is slow (the provider hangs 2 s): the old token must not be sent
/// in its last second while the new one is on its way; callers wait for the new one instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_refresh_never_lets_an_expired_token_go_out() {
    let api = Api::start().await.verifying(idp()).await;
    let client = idp().secret_client(false, 3).await;
    let key = crate::harness::unique("slow-refresh");
    // The first token comes at once, every later one after 2 s.
    let slow: Vec<_> = (0..20)
        .map(|_| serde_json::json!({"hang_ms": 2000}))
        .collect();
    idp()
        .queue_faults(&key, serde_json::json!([{"hang_ms": 0}]))
        .await;
    idp()
        .queue_faults(&key, serde_json::Value::Array(slow))
        .await;
    let auth: tapline::config::ComponentConfig = serde_json::from_value(serde_json::json!({
        "type": "client-secret",
        "token-url": idp().faulty_token_url(&key),
        "client-id": client.id,
        "client-secret": client.secret,
    }))
    .unwrap();
    let provider = tapline::Registry::builtin().provider_for(&auth).unwrap();
    let credentials = provider.credentials(&SessionConfig::default()).unwrap();
    let session = Session::new(&config(&api.base_url()), credentials).unwrap();
    let until = Instant::now() + Duration::from_secs(8);

    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let session = session.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    session.get("load").send().await?;
                    tokio::time::sleep(10 * MS).await;
                }
                Ok::<_, tapline::session::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("no request fails");
    }

    let requests = api.requests_to("/load");
    let rejected: Vec<_> = requests
        .iter()
        .filter_map(|r| r.token_check.clone().and_then(Result::err))
        .collect();
    assert!(requests.len() > 100, "only {} requests", requests.len());
    assert!(
        rejected.is_empty(),
        "{} of {} requests carried an expired token: {:?}",
        rejected.len(),
        requests.len(),
        rejected.first()
    );
}

/// An identity provider issuing tokens that live 0 seconds: the session must not turn every API
/// request into a token request.
#[tokio::test]
async fn zero_second_tokens_cost_about_one_token_request_a_second() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The recorder of this thread only; the test runs on a current-thread runtime.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let api = Api::start().await;
    let (client, credentials) = client(0).await;
    let session = Session::new(&config(&api.base_url()), credentials).unwrap();
    let started = Instant::now();

    let requests = (0..300).map(|_| {
        let session = session.clone();
        async move { session.get("items").send().await.map(|r| r.status()) }
    });
    let statuses = futures::future::join_all(requests).await;
    // And a slow trickle, each request on its own.
    for _ in 0..30 {
        session.get("items").send().await.unwrap();
        tokio::time::sleep(50 * MS).await;
    }

    assert!(statuses
        .iter()
        .all(|s| *s.as_ref().unwrap() == StatusCode::OK));
    let seconds = started.elapsed().as_secs();
    let issued = idp().issued(&client.id).await;
    assert!(
        issued <= seconds + 2,
        "{issued} token requests for 330 API requests in {seconds} s"
    );
    let clamped = handle.render();
    assert!(
        clamped.contains(r#"tapline_token_lifetime_clamped_total{reason="too_short"}"#),
        "{clamped}"
    );
}

#[tokio::test]
async fn post_bodies_are_identical_on_every_attempt() {
    let api = Api::start().await;
    api.script("/upload", [Reply::status(503), Reply::status(500)]);
    let body = serde_json::json!({"items": [{"id": 1, "value": 2.5, "name": "ünïcode"}]});

    anonymous(&api)
        .post("upload")
        .json(&body)
        .send()
        .await
        .unwrap();

    let requests = api.requests_to("/upload");
    assert_eq!(requests.len(), 3);
    let expected = serde_json::to_vec(&body).unwrap();
    for request in &requests {
        assert_eq!(request.method, reqwest::Method::POST);
        assert_eq!(request.body.as_ref(), expected.as_slice());
        assert_eq!(request.headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn a_streaming_body_is_not_retried_and_the_error_says_why() {
    let api = Api::start().await;
    api.script("/stream", [Reply::status(503)]);
    let chunks: Vec<Result<&'static [u8], std::io::Error>> =
        vec![Ok(b"part one, "), Ok(b"part two")];
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));

    let error = anonymous(&api)
        .post("stream")
        .body_stream(body)
        .send()
        .await
        .unwrap_err();

    assert_eq!(api.requests_to("/stream").len(), 1);
    assert_eq!(
        api.requests_to("/stream")[0].body.as_ref(),
        b"part one, part two"
    );
    assert!(
        error
            .to_string()
            .contains("stream that cannot be sent again"),
        "{error}"
    );
}

#[tokio::test]
async fn max_in_flight_caps_concurrency_across_tasks() {
    let api = Api::start().await;
    api.script("/slow", (0..12).map(|_| Reply::hang(100 * MS)));
    let mut config = config(&api.base_url());
    config.max_in_flight = 3;
    let session = Session::new(&config, Credentials::none()).unwrap();

    let requests: Vec<_> = (0..12)
        .map(|n| {
            let session = session.for_task(&format!("task-{}", n % 4));
            tokio::spawn(async move { session.get("slow").send().await.map(|r| r.status()) })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), StatusCode::OK);
    }

    assert_eq!(api.requests_to("/slow").len(), 12);
    // Twelve 100 ms requests through three slots: the cap is reached and never passed.
    assert_eq!(api.peak_concurrency(), 3);
}

#[tokio::test]
async fn requests_carry_user_agent_default_headers_and_no_authorization_without_auth() {
    let api = Api::start().await;
    let mut config = config(&api.base_url());
    config.headers.insert("x-team".into(), "plant-a".into());
    let session = Session::new(&config, Credentials::none()).unwrap();

    session
        .get("items")
        .query([("since", "2026-01-01T00:00:00Z")])
        .header(
            reqwest::header::HeaderName::from_static("x-request"),
            reqwest::header::HeaderValue::from_static("42"),
        )
        .send()
        .await
        .unwrap();

    let request = &api.requests_to("/items")[0];
    assert_eq!(request.headers["user-agent"], tapline::session::USER_AGENT);
    assert!(tapline::session::USER_AGENT.starts_with("tapline/"));
    assert_eq!(request.headers["x-team"], "plant-a");
    assert_eq!(request.headers["x-request"], "42");
    assert!(request.authorization().is_none());
}

#[tokio::test]
async fn the_trace_log_holds_neither_the_client_secret_nor_any_token() {
    let log = logs::capture();
    let api = Api::start().await.verifying(idp()).await;
    let (client, credentials) = client(3600).await;
    let first = credentials.token().await.unwrap().unwrap();
    api.revoke(first.header());
    api.script("/items", [Reply::status(503)]);
    api.script("/bad", [Reply::status(400).body("nope")]);
    let session = Session::new(&config(&api.base_url()), credentials)
        .unwrap()
        .for_task("logged");

    // A 401 and refresh, a retry, a POST with a body, a final error: every path that logs.
    session.get("items").send().await.unwrap();
    session
        .post("items")
        .json(&serde_json::json!({"a": 1}))
        .send()
        .await
        .unwrap();
    session.get("bad").send().await.unwrap_err();
    tracing::trace!(token = ?first, "a Debug of the token, as careless code might log it");

    let text = log.text();
    assert!(text.contains("TRACE"), "trace level was captured");
    assert!(
        text.contains("retrying") && text.contains("401"),
        "the session's events are in it"
    );
    assert!(
        text.contains("reqwest::"),
        "the HTTP client's own `log` records are in it"
    );
    if let Ok(path) = std::env::var("TAPLINE_TEST_LOG_DUMP") {
        std::fs::write(path, &text).unwrap();
    }
    assert!(
        !text.contains(&client.secret),
        "the client secret leaked into the log"
    );
    let tokens: Vec<String> = api
        .recorded()
        .iter()
        .filter_map(|r| {
            r.authorization()?
                .strip_prefix("Bearer ")
                .map(str::to_string)
        })
        .collect();
    assert!(tokens.len() >= 4);
    for token in &tokens {
        assert!(
            !text.contains(token.as_str()),
            "an access token leaked into the log"
        );
        // Each JWT part on its own, too (a log could split or quote a token).
        for part in token.split('.').filter(|part| part.len() > 16) {
            assert!(
                !text.contains(part),
                "part of an access token leaked into the log"
            );
        }
    }
}

#[tokio::test]
async fn attempts_and_retries_are_counted_per_task() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // The recorder of this thread only; the test runs on a current-thread runtime.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let api = Api::start().await;
    api.script("/counted", [Reply::status(503), Reply::status(429)]);
    let session = anonymous(&api).for_task("metered");

    session.get("counted").send().await.unwrap();

    let text = handle.render();
    for line in [
        r#"tapline_http_requests_total{task="metered",method="GET",status="503"} 1"#,
        r#"tapline_http_requests_total{task="metered",method="GET",status="429"} 1"#,
        r#"tapline_http_requests_total{task="metered",method="GET",status="200"} 1"#,
        r#"tapline_http_retries_total{task="metered",reason="503"} 1"#,
        r#"tapline_http_retries_total{task="metered",reason="429"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        text.contains("tapline_http_request_duration_seconds"),
        "{text}"
    );
}

#[tokio::test]
async fn a_401_without_authentication_is_not_resent() {
    let api = Api::start().await;
    api.always_unauthorized();

    let error = anonymous(&api).get("items").send().await.unwrap_err();

    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(
        api.requests_to("/items").len(),
        1,
        "no token to refresh, so no resend"
    );
}

/// The origin rule lives in the session: whatever built the URL (a task, a `next` link, a record),
/// an authenticated request outside `session.base-url`'s origin is refused before it is sent.
#[tokio::test]
async fn the_token_never_goes_to_another_origin() {
    let api = Api::start().await.verifying(idp()).await;
    let foreign = Api::start().await;
    let (_client, credentials) = client(3600).await;
    let session = Session::new(&config(&api.base_url()), credentials).unwrap();
    let elsewhere = format!("http://{}", foreign.addr);

    for url in [
        format!("{elsewhere}/page2?api_key=s3cret"),
        // Protocol-relative: joined to the base, it lands on the other host.
        format!("//{}/page2?api_key=s3cret", foreign.addr),
    ] {
        let error = session.get(&url).send().await.unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, tapline::session::Error::OriginNotAllowed { .. }),
            "{message}"
        );
        assert!(
            message.contains(&format!("GET to {elsewhere} not sent")),
            "{message}"
        );
        assert!(
            message.contains(&api.base_url()[..api.base_url().len() - 1]),
            "{message}"
        );
        assert!(!message.contains("s3cret"), "no query in errors: {message}");
    }
    // The base origin itself still gets its token.
    session.get("items").send().await.unwrap();
    assert!(api.requests_to("/items")[0]
        .token_check
        .as_ref()
        .unwrap()
        .is_ok());

    // Without a token, any origin; with an explicitly allowed origin, the token goes there.
    session
        .unauthenticated()
        .get(&format!("{elsewhere}/open"))
        .send()
        .await
        .unwrap();
    let origin = tapline::session::parse_origin(&elsewhere).unwrap();
    session
        .allowing_origins([origin])
        .get(&format!("{elsewhere}/allowed"))
        .send()
        .await
        .unwrap();

    let seen: Vec<(String, bool)> = foreign
        .recorded()
        .iter()
        .map(|r| (r.path.clone(), r.authorization().is_some()))
        .collect();
    assert_eq!(
        seen,
        [("/open".to_string(), false), ("/allowed".to_string(), true)],
        "the refused requests never arrived; only the allowed one carried a token"
    );
}

#[tokio::test]
async fn unauthenticated_requests_get_retries_and_retry_after_but_no_credentials() {
    let api = Api::start().await;
    let source = Api::start().await;
    source.script(
        "/readings",
        [
            Reply::status(503),
            Reply::status(503),
            Reply::status(429).header("retry-after", "1"),
        ],
    );
    let (_client, credentials) = client(3600).await;
    let mut config = config(&api.base_url());
    config
        .headers
        .insert("x-api-key".into(), "for-the-api-only".into());
    let session = Session::new(&config, credentials)
        .unwrap()
        .unauthenticated();

    let response = session
        .get(&format!("http://{}/readings", source.addr))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let requests = source.requests_to("/readings");
    assert_eq!(requests.len(), 4, "two 503s and a 429 retried");
    assert!(
        requests[3].at - requests[2].at >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured: {:?}",
        requests[3].at - requests[2].at
    );
    for request in &requests {
        assert!(request.authorization().is_none());
        assert!(request.headers.get("x-api-key").is_none());
        assert_eq!(request.headers["user-agent"], tapline::session::USER_AGENT);
    }
}

#[tokio::test]
async fn unauthenticated_connection_refused_is_retried_then_reported() {
    let port = crate::harness::loopback::free_port();
    let session = Session::new(&config("http://127.0.0.1:1/"), Credentials::none())
        .unwrap()
        .unauthenticated();

    let error = session
        .get(&format!("http://127.0.0.1:{port}/readings"))
        .send()
        .await
        .unwrap_err();

    assert_eq!(error.attempts(), Some(4), "{error}");
    assert!(
        error.to_string().contains("could not connect (4 attempts)"),
        "{error}"
    );
}
