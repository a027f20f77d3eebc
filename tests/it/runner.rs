//! The runner in process, with scripted task types: schedules, supervision, readiness, metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::Deserialize;
use tapline::auth::{Credentials, FetchedToken, TokenSource};
use tapline::config::Config;
use tapline::runner::{Shutdown, Task, TaskContext, TaskError};
use tapline::telemetry::Readiness;
use tapline::Registry;

use crate::harness::loopback;

/// The keys of the scripted task types.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Keys {
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    ignore_cancel: bool,
    /// Saves the run number in the state on every run.
    #[serde(default)]
    remember: bool,
}

#[derive(Clone, Copy)]
enum What {
    Ok,
    Fail,
    Panic,
    /// Fails on every other run, starting with the second.
    Flaky,
}

/// What each task did: run start times, and how many of its runs overlapped.
#[derive(Clone, Default)]
struct Log {
    starts: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    ends: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    running: Arc<AtomicUsize>,
    max_running: Arc<AtomicUsize>,
}

impl Log {
    fn starts(&self, task: &str) -> Vec<Instant> {
        self.starts
            .lock()
            .unwrap()
            .get(task)
            .cloned()
            .unwrap_or_default()
    }
    fn ends(&self, task: &str) -> Vec<Instant> {
        self.ends
            .lock()
            .unwrap()
            .get(task)
            .cloned()
            .unwrap_or_default()
    }
}

struct Scripted {
    keys: Keys,
    what: What,
    log: Log,
}

#[async_trait::async_trait]
impl Task for Scripted {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let run = {
            let mut starts = self.log.starts.lock().unwrap();
            let entry = starts.entry(ctx.name().to_string()).or_default();
            entry.push(Instant::now());
            entry.len()
        };
        let now = self.log.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.max_running.fetch_max(now, Ordering::SeqCst);
        let sleep = tokio::time::sleep(Duration::from_millis(self.keys.sleep_ms));
        if self.keys.ignore_cancel {
            sleep.await;
        } else {
            tokio::select! {
                _ = sleep => {}
                _ = ctx.cancelled() => {}
            }
        }
        self.log.running.fetch_sub(1, Ordering::SeqCst);
        if self.keys.remember {
            ctx.state().set("run", &run)?;
        }
        self.log
            .ends
            .lock()
            .unwrap()
            .entry(ctx.name().to_string())
            .or_default()
            .push(Instant::now());
        match self.what {
            What::Ok => Ok(()),
            What::Fail => Err(TaskError::msg("scripted failure")),
            What::Panic => panic!("scripted panic"),
            What::Flaky if run % 2 == 0 => Err(TaskError::msg("scripted failure")),
            What::Flaky => Ok(()),
        }
    }
}

fn registry(log: &Log) -> Registry {
    let mut registry = Registry::builtin();
    for (name, what) in [
        ("ok", What::Ok),
        ("fail", What::Fail),
        ("panic", What::Panic),
        ("flaky", What::Flaky),
    ] {
        let log = log.clone();
        registry.task(name, move |keys: Keys| {
            Ok(Scripted {
                keys,
                what,
                log: log.clone(),
            })
        });
    }
    registry
}

/// A config with `tasks` (YAML list items) and `extra` top-level blocks, state in `dir`.
fn config(dir: &tempfile::TempDir, registry: &Registry, tasks: &str, extra: &str) -> Config {
    let path = dir.path().join("tapline.yaml");
    let state = dir.path().join("state.json");
    let text = format!(
        "auth: {{type: none}}\nstate: {{path: {}}}\nshutdown: {{grace-period: 5s}}\n{extra}\ntasks:\n{tasks}",
        state.display()
    );
    std::fs::write(&path, text).unwrap();
    registry
        .load(&path)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Runs the runner for `for_` (then shuts it down), or until it returns by itself.
async fn run_for(
    config: Config,
    registry: Registry,
    for_: Duration,
) -> Result<(), tapline::runner::Error> {
    let shutdown = Shutdown::new();
    let runner = registry
        .runner(config)
        .unwrap()
        .handle_signals(false)
        .shutdown(shutdown.clone());
    let handle = tokio::spawn(runner.run());
    tokio::select! {
        _ = tokio::time::sleep(for_) => {}
        _ = shutdown.wait() => {}
    }
    shutdown.trigger();
    handle.await.unwrap()
}

fn gaps(starts: &[Instant]) -> Vec<Duration> {
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn interval_runs_at_start_after_the_initial_delay_and_then_every_interval() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let config = config(
        &dir,
        &registry,
        "  - {name: tick, type: ok, schedule: {interval: 200ms, initial-delay: 300ms}}\n",
        "",
    );
    let started = Instant::now();
    run_for(config, registry, Duration::from_millis(1300))
        .await
        .unwrap();
    let starts = log.starts("tick");
    assert!(starts.len() >= 3, "only {} runs", starts.len());
    assert!(
        starts[0] - started >= Duration::from_millis(290),
        "first run before the initial delay"
    );
    for gap in gaps(&starts) {
        assert!(gap >= Duration::from_millis(150), "runs only {gap:?} apart");
    }
}

#[tokio::test]
async fn a_per_second_cron_runs_every_second() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let config = config(
        &dir,
        &registry,
        "  - {name: cron, type: ok, schedule: {cron: \"* * * * * *\"}}\n",
        "",
    );
    run_for(config, registry, Duration::from_millis(3200))
        .await
        .unwrap();
    let starts = log.starts("cron");
    assert!(starts.len() >= 2, "only {} runs in 3.2 s", starts.len());
    for gap in gaps(&starts) {
        assert!(
            gap >= Duration::from_millis(500),
            "cron runs only {gap:?} apart"
        );
    }
}

#[tokio::test]
async fn a_continuous_task_is_restarted_with_a_doubling_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let config = config(
        &dir,
        &registry,
        "  - {name: loop, type: fail, schedule: continuous}\n",
        "",
    );
    run_for(config, registry, Duration::from_millis(3600))
        .await
        .unwrap();
    let starts = log.starts("loop");
    // Restarts after 1 s, then 2 s: runs at about 0, 1 and 3 s.
    assert!(starts.len() >= 3, "only {} runs", starts.len());
    let gaps = gaps(&starts);
    assert!(
        gaps[0] >= Duration::from_millis(950),
        "first restart after {:?}",
        gaps[0]
    );
    assert!(
        gaps[1] >= Duration::from_millis(1950),
        "second restart after {:?}",
        gaps[1]
    );
    assert!(
        starts.len() <= 4,
        "{} runs: the backoff did not grow",
        starts.len()
    );
}

#[tokio::test]
async fn startup_tasks_finish_before_the_others_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let config = config(
        &dir,
        &registry,
        "  - {name: tick, type: ok, schedule: {interval: 100ms}}\n  - {name: boot-1, type: ok, sleep-ms: 300, schedule: startup}\n  - {name: boot-2, type: ok, sleep-ms: 100, schedule: startup}\n",
        "",
    );
    run_for(config, registry, Duration::from_millis(900))
        .await
        .unwrap();
    let boot_end = log.ends("boot-1")[0].max(log.ends("boot-2")[0]);
    let ticks = log.starts("tick");
    assert!(!ticks.is_empty());
    assert!(
        ticks[0] >= boot_end,
        "an interval task started before the startup tasks ended"
    );
}

#[tokio::test]
async fn a_failing_startup_task_stops_the_runner_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let config = config(
        &dir,
        &registry,
        "  - {name: tick, type: ok, schedule: {interval: 100ms}}\n  - {name: boot, type: fail, schedule: startup}\n",
        "",
    );
    let error = run_for(config, registry, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(error.exit_code(), 1);
    assert!(error.to_string().contains("\"boot\""), "{error}");
    assert!(
        log.starts("tick").is_empty(),
        "the interval task ran after a failed startup"
    );
}

#[tokio::test]
async fn an_overlapping_run_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let config = config(
        &dir,
        &registry,
        "  - {name: overlap-slow, type: ok, sleep-ms: 350, ignore-cancel: true, schedule: {interval: 100ms}}\n",
        "",
    );
    run_for(config, registry, Duration::from_millis(1200))
        .await
        .unwrap();
    assert_eq!(
        log.max_running.load(Ordering::SeqCst),
        1,
        "two runs overlapped"
    );
    assert!(log.starts("overlap-slow").len() >= 2);
    let metrics = tapline::telemetry::metrics::install().unwrap().render();
    let skipped = metric(
        &metrics,
        "tapline_task_runs_total",
        &[("task", "overlap-slow"), ("result", "skipped")],
    );
    assert!(skipped >= 2.0, "skipped = {skipped}\n{metrics}");
}

#[tokio::test]
async fn a_panicking_task_does_not_stop_a_healthy_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let config = config(
        &dir,
        &registry,
        "  - {name: boom, type: panic, schedule: {interval: 100ms}}\n  - {name: fine, type: ok, schedule: {interval: 100ms}}\n",
        "",
    );
    run_for(config, registry, Duration::from_millis(800))
        .await
        .unwrap();
    assert!(
        log.starts("boom").len() >= 3,
        "the panicking task was not run again"
    );
    assert!(log.starts("fine").len() >= 3, "the healthy task stopped");
    let metrics = tapline::telemetry::metrics::install().unwrap().render();
    let panics = metric(
        &metrics,
        "tapline_task_runs_total",
        &[("task", "boom"), ("result", "panic")],
    );
    assert_eq!(panics as usize, log.ends("boom").len());
}

#[tokio::test]
async fn metrics_count_every_run_by_result() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let config = config(
        &dir,
        &registry,
        "  - {name: counted, type: flaky, schedule: {interval: 50ms}}\n",
        "",
    );
    run_for(config, registry, Duration::from_millis(600))
        .await
        .unwrap();
    let runs = log.ends("counted").len();
    assert!(runs >= 4, "only {runs} runs");
    let metrics = tapline::telemetry::metrics::install().unwrap().render();
    let labels = |result| [("task", "counted"), ("result", result)];
    let success = metric(&metrics, "tapline_task_runs_total", &labels("success"));
    let failure = metric(&metrics, "tapline_task_runs_total", &labels("failure"));
    assert_eq!(success as usize, runs.div_ceil(2), "{metrics}");
    assert_eq!(failure as usize, runs / 2, "{metrics}");
    let durations = metric(
        &metrics,
        "tapline_task_run_duration_seconds_count",
        &[("task", "counted")],
    );
    assert_eq!(durations as usize, runs);
    let last = metric(
        &metrics,
        "tapline_task_last_success_timestamp_seconds",
        &[("task", "counted")],
    );
    assert!(last > 1.7e9, "last success timestamp {last}");
}

/// A token source that hands out its token only once the test opens the gate.
#[derive(Debug)]
struct Gated(tokio::sync::watch::Receiver<bool>);

#[async_trait::async_trait]
impl TokenSource for Gated {
    async fn fetch(&self) -> Result<FetchedToken, tapline::auth::Error> {
        let mut open = self.0.clone();
        let _ = open.wait_for(|open| *open).await;
        Ok(FetchedToken {
            value: SecretString::from("gated-token".to_string()),
            expires_at: None,
        })
    }
}

#[tokio::test]
async fn readyz_is_503_before_the_first_token_200_after_and_503_in_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let port = loopback::free_port();
    let config = config(
        &dir,
        &registry,
        "  - {name: boot, type: ok, schedule: startup}\n  - {name: busy, type: ok, sleep-ms: 1500, ignore-cancel: true, schedule: {interval: 1s}}\n",
        &format!("server: {{listen: 127.0.0.1:{port}}}\n"),
    );
    let (gate, gated) = tokio::sync::watch::channel(false);
    let shutdown = Shutdown::new();
    let readiness = Readiness::new();
    let runner = registry
        .runner(config)
        .unwrap()
        .handle_signals(false)
        .shutdown(shutdown.clone())
        .readiness(readiness.clone())
        .credentials(Credentials::from_source(Arc::new(Gated(gated))));
    let handle = tokio::spawn(runner.run());
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let status = |url: String| async move { loopback::get(&url).await.map(|(status, _)| status) };
    // The server comes up, but without a token the process is not ready.
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(healthz.clone()).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the telemetry server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(readyz.clone()).await, Some(503));
    // Token obtained: ready.
    gate.send(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(readyz.clone()).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready after the token was obtained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Shutdown: not ready while the busy run finishes, still healthy.
    while log.starts("busy").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.trigger();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !handle.is_finished(),
        "the runner did not wait for the busy run"
    );
    assert_eq!(status(readyz.clone()).await, Some(503));
    assert_eq!(status(healthz.clone()).await, Some(200));
    handle.await.unwrap().unwrap();
    assert_eq!(
        log.ends("busy").len(),
        log.starts("busy").len(),
        "the busy run was abandoned"
    );
}

/// Runs the runner with a telemetry server and `credentials` until `/readyz` answers 200 (true)
/// or `wait` passes (false), then shuts it down.
async fn becomes_ready(credentials: Credentials, wait: Duration) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let port = loopback::free_port();
    let config = config(
        &dir,
        &registry,
        "  - {name: idle, type: ok, schedule: {interval: 1h}}\n",
        &format!("server: {{listen: 127.0.0.1:{port}}}\n"),
    );
    let shutdown = Shutdown::new();
    let runner = registry
        .runner(config)
        .unwrap()
        .handle_signals(false)
        .shutdown(shutdown.clone())
        .credentials(credentials);
    let handle = tokio::spawn(runner.run());
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + wait;
    let mut ready = false;
    while Instant::now() < deadline && !ready {
        ready = loopback::get(&readyz).await.map(|(status, _)| status) == Some(200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.trigger();
    handle.await.unwrap().unwrap();
    ready
}

#[tokio::test]
async fn a_huge_expires_in_does_not_keep_readyz_at_503() {
    let idp = crate::harness::idp::idp();
    let client = idp.secret_client(false, 3600).await;
    let key = crate::harness::unique("huge-readyz");
    idp.queue_faults(
        &key,
        serde_json::json!([{"status": 200, "body": {"access_token": "t", "expires_in": "1e308"}}]),
    )
    .await;
    let auth: tapline::config::ComponentConfig = serde_json::from_value(serde_json::json!({
        "type": "client-secret",
        "token-url": idp.faulty_token_url(&key),
        "client-id": client.id,
        "client-secret": client.secret,
    }))
    .unwrap();
    let provider = Registry::builtin().provider_for(&auth).unwrap();
    let credentials = provider.credentials(&Default::default()).unwrap();
    assert!(becomes_ready(credentials, Duration::from_secs(10)).await);
}

/// A token source whose first fetch panics; later ones hand out a token.
#[derive(Debug, Default)]
struct PanicsOnce(AtomicUsize);

#[async_trait::async_trait]
impl TokenSource for PanicsOnce {
    async fn fetch(&self) -> Result<FetchedToken, tapline::auth::Error> {
        assert_ne!(self.0.fetch_add(1, Ordering::SeqCst), 0, "scripted panic");
        Ok(FetchedToken {
            value: SecretString::from("after-the-panic".to_string()),
            expires_at: None,
        })
    }
}

#[tokio::test]
async fn a_token_watcher_that_panics_is_started_again() {
    let source = Arc::new(PanicsOnce::default());
    let credentials = Credentials::from_source(source.clone());
    assert!(becomes_ready(credentials, Duration::from_secs(10)).await);
    assert!(source.0.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn a_state_save_that_fails_fails_the_run_and_readiness_until_a_save_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::default();
    let registry = registry(&log);
    let port = loopback::free_port();
    let state_dir = dir.path().join("state");
    let config_path = dir.path().join("tapline.yaml");
    std::fs::write(
        &config_path,
        format!(
            "auth: {{type: none}}\nstate: {{path: {}}}\nserver: {{listen: 127.0.0.1:{port}}}\ntasks:\n  - {{name: unsaved, type: ok, remember: true, schedule: {{interval: 50ms}}}}\n",
            state_dir.join("state.json").display()
        ),
    )
    .unwrap();
    let config = registry.load(&config_path).unwrap();
    let shutdown = Shutdown::new();
    let runner = registry
        .runner(config)
        .unwrap()
        .handle_signals(false)
        .shutdown(shutdown.clone());
    let handle = tokio::spawn(runner.run());
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    let wait_for = |want: u16, what: &'static str| {
        let readyz = readyz.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while loopback::get(&readyz).await.map(|(status, _)| status) != Some(want) {
                assert!(Instant::now() < deadline, "{what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(200, "never ready").await;
    // Ready comes with the start; the first run's save may land a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state_dir.join("state.json").exists() {
        assert!(Instant::now() < deadline, "the first run saved no state");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A regular file where the state's directory was: no save can succeed, even as root.
    std::fs::remove_dir_all(&state_dir).unwrap();
    std::fs::write(&state_dir, "").unwrap();
    wait_for(503, "still ready while the state cannot be saved").await;
    let failures = || {
        let metrics = tapline::telemetry::metrics::install().unwrap().render();
        metric(
            &metrics,
            "tapline_task_runs_total",
            &[("task", "unsaved"), ("result", "failure")],
        )
    };
    assert!(
        failures() >= 1.0,
        "a run whose state was not saved counted as a success"
    );
    // Saving works again: ready again.
    std::fs::remove_file(&state_dir).unwrap();
    wait_for(200, "not ready after the state could be saved again").await;
    shutdown.trigger();
    handle.await.unwrap().unwrap();
}

/// The value of the sample of `name` whose labels include all of `labels`, 0 when absent.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
