//! The telemetry server of the real binary: `/metrics` after real work (a token from the test
//! identity provider, an `http-poll` run with a retry) is valid Prometheus text.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tapline::telemetry::catalogue::{self, Kind};

use crate::harness::api::{Api, Reply};
use crate::harness::cli::tapline;
use crate::harness::idp::idp;
use crate::harness::loopback;
use crate::harness::process::Proc;

/// Runs the binary with a client-secret token and one startup `http-poll` task whose first
/// source request gets 503, waits until it is ready, and returns the `/metrics` text.
fn metrics_after_a_run() -> String {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime.block_on(Api::start());
    api.script(
        "/readings",
        [
            Reply::status(503),
            Reply::status(200).body(r#"{"items": [{"id": 1}, {"id": 2}]}"#),
        ],
    );
    let client = runtime.block_on(idp().secret_client(false, 3600));
    let port = loopback::free_port();
    let config = dir.path().join("tapline.yaml");
    std::fs::write(
        &config,
        format!(
            r#"auth: {{type: client-secret, token-url: "{token_url}", client-id: {id}, client-secret: {secret}}}
session: {{base-url: "{api}", retries: {{initial-backoff: 10ms}}}}
state: {{path: "{state}"}}
server: {{listen: "127.0.0.1:{port}"}}
tasks:
  - name: readings
    type: http-poll
    schedule: startup
    source: {{url: readings, records: /items, auth: session}}
    sink: {{type: http, path: sink}}
"#,
            token_url = idp().token_url(),
            id = client.id,
            secret = client.secret,
            api = api.base_url(),
            state = dir.path().join("state.json").display(),
        ),
    )
    .unwrap();
    let mut command = tapline();
    command.args(["run", "-c"]).arg(&config);
    let proc = Proc::start(command, dir.path(), "tapline");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while runtime
        .block_on(loopback::get(&format!("{base}/readyz")))
        .is_none_or(|(status, _)| status != 200)
    {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            proc.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, text) = runtime
        .block_on(loopback::get(&format!("{base}/metrics")))
        .unwrap();
    assert_eq!(status, 200);
    text
}

/// What the text says about one family.
#[derive(Default, Debug)]
struct Family {
    help: usize,
    kind: Option<String>,
    samples: Vec<String>,
}

/// The family a sample line belongs to, given the declared types: `_bucket`, `_sum` and
/// `_count` belong to a histogram (or summary) of the shorter name.
fn family_of(sample: &str, families: &HashMap<String, Family>) -> String {
    let name = sample.split(['{', ' ']).next().unwrap_or_default();
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .is_some_and(|f| matches!(f.kind.as_deref(), Some("histogram" | "summary")))
            {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

/// Reads the `tapline_*` families by the text format's rules: `# HELP` and `# TYPE` at most once
/// each and before the family's first sample, and no samples after another family started.
fn families(text: &str) -> Result<HashMap<String, Family>, String> {
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut current = String::new();
    for line in text.lines().filter(|line| line.contains("tapline_")) {
        let mut words = line.split(' ');
        let (family, is_sample) = match (words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name)) => {
                families.entry(name.into()).or_default().help += 1;
                (name.to_string(), false)
            }
            (Some("#"), Some("TYPE"), Some(name)) => {
                let family = families.entry(name.into()).or_default();
                if family.kind.is_some() || !family.samples.is_empty() {
                    return Err(format!("{name}: TYPE twice or after a sample"));
                }
                family.kind = words.next().map(str::to_string);
                (name.to_string(), false)
            }
            _ => (family_of(line, &families), true),
        };
        if family != current && families.get(&family).is_some_and(|f| !f.samples.is_empty()) {
            return Err(format!("{family}: its lines are not together"));
        }
        current = family.clone();
        if is_sample {
            families
                .entry(family)
                .or_default()
                .samples
                .push(line.into());
        }
    }
    Ok(families)
}

#[test]
fn every_metric_family_has_help_and_type_and_durations_are_histograms() {
    let text = metrics_after_a_run();
    let families = families(&text).unwrap_or_else(|problem| panic!("{problem}\n{text}"));
    for (name, family) in &families {
        assert_eq!(family.help, 1, "{name}: one # HELP line\n{text}");
        let kind = family.kind.as_deref();
        assert!(kind.is_some(), "{name}: no # TYPE line\n{text}");
        assert!(!family.samples.is_empty(), "{name}: no samples\n{text}");
        if name.ends_with("_duration_seconds") {
            assert_eq!(kind, Some("histogram"), "{name}\n{text}");
        }
        if kind == Some("histogram") {
            for part in ["_bucket{", "_sum", "_count"] {
                assert!(
                    family
                        .samples
                        .iter()
                        .any(|s| s.starts_with(&format!("{name}{part}"))),
                    "{name}: no {part} line\n{text}"
                );
            }
            assert!(
                family.samples.iter().any(|s| s.contains("le=\"+Inf\"")),
                "{name}: no +Inf bucket\n{text}"
            );
        }
    }
    // Every exported family is in the catalogue, with the catalogue's type; the run touched the
    // metrics of every request and run (the rest count rare events: a clamped lifetime, a
    // skipped line).
    for (name, family) in &families {
        let metric = catalogue::ALL.iter().find(|m| m.name == name);
        let metric = metric.unwrap_or_else(|| panic!("{name} is not in the catalogue\n{text}"));
        assert_eq!(
            family.kind.as_deref(),
            Some(metric.kind.as_str()),
            "{name}\n{text}"
        );
        if let Kind::Histogram { buckets } = metric.kind {
            let lines = family.samples.iter();
            let bucket_lines = lines.filter(|s| s.contains("_bucket{")).count();
            assert!(bucket_lines > buckets.len(), "{name}\n{text}");
        }
    }
    let touched = [
        &catalogue::HTTP_REQUESTS,
        &catalogue::HTTP_REQUEST_DURATION,
        &catalogue::HTTP_RETRIES,
        &catalogue::TOKEN_REQUESTS,
        &catalogue::TOKEN_EXPIRY,
        &catalogue::TASK_RUNS,
        &catalogue::TASK_RUN_DURATION,
        &catalogue::TASK_LAST_SUCCESS,
        &catalogue::TASK_RECORDS_EXTRACTED,
        &catalogue::TASK_RECORDS_DELIVERED,
    ];
    for metric in touched {
        assert!(
            families.contains_key(metric.name),
            "{} missing\n{text}",
            metric.name
        );
    }
}

/// The Prometheus project's own check; the Debian package `prometheus` provides `promtool`.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    crate::harness::packages::ensure("promtool", "prometheus");
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = spawned.unwrap_or_else(|error| {
        panic!("promtool is needed ({error}): apt-get install prometheus (Debian) provides it")
    });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && report.trim().is_empty(), report)
}

#[test]
fn promtool_accepts_the_metrics() {
    let text = metrics_after_a_run();
    let (ok, report) = promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics:\n{report}\n{text}");
}
