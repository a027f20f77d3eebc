//! Reloading the config of a running `tapline run`: a ConfigMap update done as kubelet does it,
//! SIGHUP, a rejected config, new credentials, and a hundred reloads in a row. Every task polls
//! the test API (which checks each bearer token against the identity provider), so what ran,
//! when and with which client's token is read from the requests the API recorded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::api::{Api, Verifier};
use crate::harness::cli::tapline;
use crate::harness::idp::{idp, Client};
use crate::harness::loopback;
use crate::harness::process::Proc;

/// A running `tapline run` whose config lives in a kubelet-style ConfigMap directory:
/// `tapline.yaml -> ..data/tapline.yaml`, `..data -> ..<n>` (a directory per revision).
struct Reloading {
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    api: Api,
    port: u16,
    revision: u32,
    proc: Option<Proc>,
}

/// One polling task: its name and the API path it reads.
type TaskLine<'a> = (&'a str, &'a str);

impl Reloading {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let api = runtime.block_on(async { Api::start().await.verifying(idp()).await });
        api.default_body(r#"[{"reading": 1}, {"reading": 2}]"#);
        Self {
            dir,
            runtime,
            api,
            port: loopback::free_port(),
            revision: 0,
            proc: None,
        }
    }

    fn client(&self) -> Client {
        self.runtime.block_on(idp().secret_client(false, 3600))
    }

    /// The config with `tasks` polling every 200 ms, authenticated as `client` (its secret in a
    /// file named after it), checking for changes every 300 ms with `--watch`.
    fn yaml(&self, client: &Client, tasks: &[TaskLine<'_>], extra: &str) -> String {
        self.yaml_with(client, tasks, extra, "{type: stdout}")
    }

    /// [`Reloading::yaml`] with each task's record keys (`sink:` and what goes with it) given.
    fn yaml_with(
        &self,
        client: &Client,
        tasks: &[TaskLine<'_>],
        extra: &str,
        sink: &str,
    ) -> String {
        let secret = self.dir.path().join(format!("{}.secret", client.id));
        std::fs::write(&secret, &client.secret).unwrap();
        let mut text = format!(
            "auth: {{type: client-secret, token-url: '{token_url}', client-id: {id}, client-secret-file: '{secret}'}}\nsession: {{base-url: '{api}'}}\nstate: {{path: '{state}'}}\nserver: {{listen: '127.0.0.1:{port}'}}\nreload: {{interval: 300ms}}\n{extra}tasks:\n",
            token_url = idp().token_url(),
            id = client.id,
            secret = secret.display(),
            api = self.api.base_url(),
            state = self.dir.path().join("state.json").display(),
            port = self.port,
        );
        for (name, path) in tasks {
            text.push_str(&format!(
                "  - name: {name}\n    type: http-poll\n    schedule: {{interval: 200ms}}\n    source: {{url: '{path}', auth: session}}\n    sink: {sink}\n"
            ));
        }
        text
    }

    /// The path tapline reads: `tapline.yaml` through the `..data` symlink.
    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config/tapline.yaml")
    }

    /// Publishes `text` as kubelet updates a ConfigMap: a new revision directory, a temporary
    /// `..data` symlink to it renamed over the old one, the old directory removed.
    fn publish(&mut self, text: &str) {
        let config = self.dir.path().join("config");
        self.revision += 1;
        let revision = format!("..2026_12_01_{:04}", self.revision);
        std::fs::create_dir_all(config.join(&revision)).unwrap();
        std::fs::write(config.join(&revision).join("tapline.yaml"), text).unwrap();
        std::os::unix::fs::symlink(&revision, config.join("..data_tmp")).unwrap();
        std::fs::rename(config.join("..data_tmp"), config.join("..data")).unwrap();
        if self.revision == 1 {
            std::os::unix::fs::symlink("..data/tapline.yaml", config.join("tapline.yaml")).unwrap();
        } else {
            let old = format!("..2026_12_01_{:04}", self.revision - 1);
            std::fs::remove_dir_all(config.join(old)).unwrap();
        }
    }

    /// Starts `tapline run` (with `args`) and waits until it is ready.
    fn start(&mut self, args: &[&str]) {
        let mut command = tapline();
        command
            .arg("run")
            .args(args)
            .arg("-c")
            .arg(self.config_path());
        self.proc = Some(Proc::start(command, self.dir.path(), "tapline"));
        self.wait_for("ready", || self.get("/readyz").0 == 200);
    }

    fn proc(&self) -> &Proc {
        self.proc.as_ref().expect("started")
    }

    fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        self.runtime
            .block_on(loopback::get(&url))
            .unwrap_or((0, String::new()))
    }

    /// The value of one sample of `/metrics` (`name{labels}` as printed), 0 when absent.
    fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' '))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    }

    fn reloads(&self, result: &str) -> f64 {
        self.metric(&format!(
            "tapline_config_reloads_total{{result=\"{result}\"}}"
        ))
    }

    /// Waits up to 15 s for `done`.
    fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; stderr:\n{}",
                self.proc
                    .as_ref()
                    .map(Proc::stderr_text)
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Requests to `path` that arrived after `since`.
    fn hits_since(&self, path: &str, since: Instant) -> usize {
        self.api
            .requests_to(path)
            .iter()
            .filter(|request| request.at > since)
            .count()
    }
}

fn stderr_contains(proc: &Proc, text: &str) -> bool {
    proc.stderr_text().contains(text)
}

#[test]
fn a_configmap_update_applies_added_changed_and_removed_tasks_and_leaves_the_rest_running() {
    let mut it = Reloading::new();
    let client = it.client();
    it.publish(&it.yaml(&client, &[("a", "/a")], ""));
    it.start(&["--watch"]);
    let started = Instant::now();
    it.wait_for("task a to run", || it.hits_since("/a", started) > 0);

    it.publish(&it.yaml(&client, &[("a", "/a"), ("b", "/b")], ""));
    let published = Instant::now();
    it.wait_for("the new task b to run", || {
        it.hits_since("/b", published) > 0
    });
    assert!(
        published.elapsed() < Duration::from_secs(10),
        "applied after {:?}",
        published.elapsed()
    );
    assert_eq!(it.reloads("applied"), 1.0);
    let proc = it.proc();
    assert!(
        stderr_contains(proc, "added [b]") && !stderr_contains(proc, "restarted"),
        "{}",
        proc.stderr_text()
    );
    it.wait_for("task a to go on", || it.hits_since("/a", published) > 2);
    let cancelled = "tapline_task_runs_total{result=\"cancelled\",task=\"a\"}";
    assert_eq!(
        it.metric(cancelled),
        0.0,
        "a run of the unchanged task was stopped"
    );

    // a changes its source; b is removed.
    it.publish(&it.yaml(&client, &[("a", "/a2")], ""));
    let changed = Instant::now();
    it.wait_for("a to read its new source", || {
        it.hits_since("/a2", changed) > 0
    });
    it.wait_for("the second reload", || it.reloads("applied") == 2.0);
    let applied = Instant::now();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(it.hits_since("/a", applied), 0, "the old a still runs");
    assert_eq!(it.hits_since("/b", applied), 0, "the removed b still runs");
    assert!(stderr_contains(it.proc(), "restarted [a]"));
    assert!(stderr_contains(it.proc(), "removed [b]"));
}

#[test]
fn an_invalid_config_is_rejected_with_its_key_paths_and_nothing_changes() {
    let mut it = Reloading::new();
    let client = it.client();
    it.publish(&it.yaml(&client, &[("a", "/a")], ""));
    it.start(&["--watch"]);
    let broken = it.yaml(&client, &[("a", "/a"), ("b", "/b")], "").replace(
        "interval: 200ms}\n    source: {url: '/b'",
        "interval: soon}\n    source: {url: '/b'",
    );
    it.publish(&broken);
    it.wait_for("the rejection", || it.reloads("rejected") == 1.0);
    let rejected = Instant::now();
    let stderr = it.proc().stderr_text();
    assert!(stderr.contains("tasks[1].schedule"), "{stderr}");
    assert!(stderr.contains("line "), "no line number: {stderr}");
    assert_eq!(it.get("/readyz").0, 200);
    it.wait_for("a to go on", || it.hits_since("/a", rejected) > 2);
    assert!(it.api.requests_to("/b").is_empty(), "the rejected task ran");
    assert_eq!(it.reloads("applied"), 0.0);
}

/// Also: a setting read only at start (`shutdown:`) is named as waiting for a restart.
#[test]
fn sighup_reloads_at_once_without_watch() {
    let mut it = Reloading::new();
    let client = it.client();
    it.publish(&it.yaml(&client, &[("a", "/a")], ""));
    it.start(&[]);
    let later = "shutdown: {grace-period: 5s}\n";
    it.publish(&it.yaml(&client, &[("a", "/a"), ("b", "/b")], later));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        it.api.requests_to("/b").is_empty(),
        "without --watch the file was read again on its own"
    );
    it.proc().signal(libc::SIGHUP);
    let signalled = Instant::now();
    it.wait_for("b after SIGHUP", || it.hits_since("/b", signalled) > 0);
    let stderr = it.proc().stderr_text();
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("config reloaded") && line.contains("SIGHUP")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("cannot change while running") && line.contains("shutdown")),
        "the setting that waits for a restart was not named: {stderr}"
    );
}

#[test]
fn new_credentials_take_over_with_a_valid_token_on_every_request() {
    let mut it = Reloading::new();
    let (first, second) = (it.client(), it.client());
    it.publish(&it.yaml(&first, &[("a", "/a")], ""));
    it.start(&["--watch"]);
    let started = Instant::now();
    it.wait_for("a to run", || it.hits_since("/a", started) > 1);
    it.publish(&it.yaml(&second, &[("a", "/a")], ""));
    it.wait_for("the reload", || it.reloads("applied") == 1.0);
    let applied = Instant::now();
    it.wait_for("a to go on", || it.hits_since("/a", applied) > 2);

    let verifier = it
        .runtime
        .block_on(async { Verifier::new(idp().jwks().await, &idp().base) });
    let requests = it.api.requests_to("/a");
    for request in &requests {
        assert_eq!(
            request.token_check,
            Some(Ok(())),
            "a request went without a valid token"
        );
    }
    let client_of = |request: &crate::harness::api::Recorded| {
        let claims = verifier.check(request.authorization()).unwrap();
        claims["client_id"].as_str().unwrap().to_string()
    };
    assert_eq!(client_of(&requests[0]), first.id);
    let after: Vec<String> = requests
        .iter()
        .filter(|request| request.at > applied)
        .map(client_of)
        .collect();
    assert!(
        after.iter().all(|id| *id == second.id),
        "runs after the reload used the old client: {after:?}"
    );
    assert!(stderr_contains(it.proc(), "new credentials and session"));
    assert!(
        !stderr_contains(it.proc(), "restarted"),
        "the task was restarted"
    );
}

/// Threads, open files and resident memory of a process, from /proc.
fn footprint(pid: u32) -> (usize, usize, u64) {
    let count = |dir: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{dir}"))
            .unwrap()
            .count()
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    (count("task"), count("fd"), rss_kib)
}

#[test]
fn a_hundred_reloads_leak_no_tasks_threads_files_or_memory() {
    let mut it = Reloading::new();
    let client = it.client();
    let revision = |n: u32| {
        let path = format!("/b{}", n % 2);
        it.yaml(&client, &[("a", "/a"), ("b", &path)], "")
    };
    let texts: Vec<String> = (0..2).map(revision).collect();
    it.publish(&texts[0]);
    it.start(&[]);
    let pid = it.proc().child.id();
    let reload = |it: &mut Reloading, n: usize| {
        it.publish(&texts[n % 2]);
        it.proc().signal(libc::SIGHUP);
        it.wait_for("the reload", || it.reloads("applied") == n as f64);
    };
    for n in 1..=10 {
        reload(&mut it, n);
    }
    let before = footprint(pid);
    for n in 11..=110 {
        reload(&mut it, n);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = footprint(pid);
    assert!(
        after.0 <= before.0 + 2,
        "threads grew: {before:?} -> {after:?}"
    );
    assert!(
        after.1 <= before.1 + 2,
        "open files grew: {before:?} -> {after:?}"
    );
    assert!(
        after.2 <= before.2 + 8 * 1024,
        "resident memory grew by more than 8 MiB: {before:?} -> {after:?}"
    );
    // Only the current b runs: the 100 earlier ones were all stopped.
    let settled = Instant::now();
    std::thread::sleep(Duration::from_millis(800));
    let (now, old) = ("/b0", "/b1"); // revision 110 is even
    assert!(it.hits_since(now, settled) > 0);
    assert_eq!(it.hits_since(old, settled), 0, "a stopped task still runs");
}

/// A task with a disk buffer restarted by a reload: its drain lets go of the buffer directory
/// before the new one opens it, and delivery goes on.
#[test]
fn a_buffered_task_is_restarted_with_its_buffer() {
    let mut it = Reloading::new();
    let client = it.client();
    let config = |batch: u32| {
        let sink = format!("{{type: http, path: sink, batch-size: {batch}}}\n    buffer: {{type: disk, flush-interval: 100ms}}");
        it.yaml_with(&client, &[("a", "/a")], "", &sink)
    };
    let (first, second) = (config(10), config(20));
    it.publish(&first);
    it.start(&["--watch"]);
    let started = Instant::now();
    it.wait_for("a delivery", || it.hits_since("/sink", started) > 0);
    it.publish(&second);
    it.wait_for("the reload", || it.reloads("applied") == 1.0);
    let applied = Instant::now();
    it.wait_for("deliveries after the reload", || {
        it.hits_since("/sink", applied) > 1
    });
    let stderr = it.proc().stderr_text();
    assert!(stderr.contains("restarted [a]"), "{stderr}");
    assert!(!stderr.contains("cannot start the task"), "{stderr}");
}
