//! `cdf.remote-config`: the tasks come from an extraction pipeline's config revisions on the CDF
//! test server; a new revision is applied, a bad one is refused once and reported as a failure
//! run, and a start while CDF is unreachable runs the cached revision.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::cdf::CdfServer;
use crate::harness::cli::{run, tapline};
use crate::harness::idp::{idp, Client};
use crate::harness::loopback;
use crate::harness::process::Proc;

const PIPELINE: &str = "plant-a";

struct Remote {
    dir: tempfile::TempDir,
    server: CdfServer,
    client: Client,
    port: u16,
}

impl Remote {
    async fn new() -> Self {
        let server = CdfServer::start("p", None).await.verifying(idp()).await;
        server.pipeline(PIPELINE);
        Self {
            dir: tempfile::tempdir().unwrap(),
            server,
            client: idp().secret_client(false, 3600).await,
            port: loopback::free_port(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The local file: credentials, the `cdf:` block (at `base_url`) and the telemetry server.
    fn local(&self, base_url: &str) -> PathBuf {
        let text = format!(
            "auth: {{type: client-secret, token-url: '{}', client-id: '{}', client-secret: '{}'}}\ncdf:\n  project: p\n  base-url: '{base_url}'\n  extraction-pipeline: {{external-id: {PIPELINE}}}\n  remote-config: true\n  remote-config-refresh: 300ms\n  remote-config-cache: '{}'\nserver: {{listen: '127.0.0.1:{}'}}\n",
            idp().token_url(),
            self.client.id,
            self.client.secret,
            self.path("cache/remote.json").display(),
            self.port,
        );
        let path = self.path("tapline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A revision of the pipeline's config: `tasks` copy `<name>.jsonl` to `out-<name>.jsonl`;
    /// `schedule` is every task's.
    fn publish(&self, tasks: &[&str], schedule: &str) {
        let mut text = format!(
            "state: {{path: '{}'}}\ntasks:\n",
            self.path("state.json").display()
        );
        for name in tasks {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(&format!("{name}.jsonl")))
                .unwrap();
            text.push_str(&format!(
                "  - name: {name}\n    type: file\n    schedule: {schedule}\n    source: {{path: '{}'}}\n    sink: {{type: jsonl, path: '{}'}}\n",
                self.path(&format!("{name}.jsonl")).display(),
                self.path(&format!("out-{name}.jsonl")).display(),
            ));
        }
        self.server.publish_config(PIPELINE, &text);
    }

    fn append(&self, task: &str, line: &str) {
        use std::io::Write;
        let path = self.path(&format!("{task}.jsonl"));
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        writeln!(file, "{line}").unwrap();
    }

    fn delivered(&self, task: &str) -> String {
        std::fs::read_to_string(self.path(&format!("out-{task}.jsonl"))).unwrap_or_default()
    }

    fn start(&self, local: &Path, name: &str) -> Proc {
        let mut command = tapline();
        command.args(["run", "-c"]).arg(local);
        Proc::start(command, self.dir.path(), name)
    }

    fn failures(&self) -> Vec<String> {
        let store = self.server.store();
        store
            .runs
            .iter()
            .filter(|run| run.status == "failure")
            .map(|run| run.message.clone().unwrap_or_default())
            .collect()
    }
}

/// Waits up to 15 s for `done`, off the runtime's worker (the server answers meanwhile).
async fn wait_for(what: &str, proc: &Proc, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stderr:\n{}",
            proc.stderr_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revisions_are_applied_a_bad_one_is_refused_once_and_the_cache_starts_without_cdf() {
    let it = Remote::new().await;
    it.publish(&["a"], "{interval: 200ms}");
    it.append("a", r#"{"n": 1}"#);
    let local = it.local(&it.server.base_url());
    let mut proc = it.start(&local, "first");
    wait_for("task a from revision 1", &proc, || {
        it.delivered("a").contains(r#""n":1"#)
    })
    .await;
    let cache = it.path("cache/remote.json");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the cache may hold secrets");

    it.publish(&["a", "b"], "{interval: 200ms}");
    it.append("b", r#"{"n": 2}"#);
    wait_for("task b from revision 2", &proc, || {
        it.delivered("b").contains(r#""n":2"#)
    })
    .await;

    it.publish(&["a", "b", "c"], "{interval: soon}");
    wait_for("revision 3 reported as refused", &proc, || {
        !it.failures().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let failures = it.failures();
    assert_eq!(
        failures.len(),
        1,
        "a refused revision was tried again: {failures:?}"
    );
    assert!(
        failures[0].contains("revision 3") && failures[0].contains("tasks[0].schedule"),
        "{}",
        failures[0]
    );
    it.append("a", r#"{"n": 3}"#);
    wait_for("a to go on under revision 2", &proc, || {
        it.delivered("a").contains(r#""n":3"#)
    })
    .await;
    proc.signal(libc::SIGTERM);
    assert_eq!(
        proc.wait(Duration::from_secs(20)),
        0,
        "{}",
        proc.stderr_text()
    );

    // CDF unreachable: the cached revision 2 runs.
    let unreachable = format!("http://127.0.0.1:{}", loopback::free_port());
    let local = it.local(&unreachable);
    it.append("b", r#"{"n": 4}"#);
    let proc = it.start(&local, "second");
    wait_for("task b from the cache", &proc, || {
        it.delivered("b").contains(r#""n":4"#)
    })
    .await;
    assert!(proc
        .stderr_text()
        .contains("running the cached remote config"));
}

#[test]
fn a_local_file_with_remote_config_holds_no_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tapline.yaml");
    std::fs::write(
        &path,
        "auth: {type: none}\ncdf: {project: p, base-url: 'https://cdf.test', remote-config: true}\ntasks: []\n",
    )
    .unwrap();
    let out = run(tapline().args(["validate", "-c"]).arg(&path));
    assert_eq!(out.code, 2, "{}", out.all_output());
    for problem in [
        "cdf.remote-config: the config comes from an extraction pipeline",
        "tasks: with cdf.remote-config this comes from the extraction pipeline's config",
    ] {
        assert!(
            out.all_output().contains(problem),
            "{problem:?} not reported: {}",
            out.all_output()
        );
    }
}
