//! Replicas of `tapline run` sharing tasks through PostgreSQL or a Kubernetes API, and the loopback source they poll,
//! which records every run as (task, replica, cursor, start, end).
//!
//! A run is the source's view of it: from the request's arrival to the response. Each request is
//! held [`HOLD`], so two replicas running one task at once overlap on the source's clock, which
//! is what a user's source would see. [`overlaps`] finds them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::cli::tapline;
use super::loopback::{self, free_port, Loopback};
use super::postgres::{Postgres, PASSWORD};
use super::process::Proc;

/// How long the source holds each request.
pub const HOLD: Duration = Duration::from_millis(150);

/// One run as the source saw it.
#[derive(Debug, Clone)]
pub struct Run {
    pub task: String,
    pub replica: String,
    /// The cursor the run started from.
    pub cursor: u64,
    /// Since the source started.
    pub start: Duration,
    /// `None` while the request is held.
    pub end: Option<Duration>,
}

/// The loopback source.
#[derive(Clone)]
pub struct Source {
    runs: Arc<Mutex<Vec<Run>>>,
    origin: Instant,
    pub loopback: Arc<Loopback>,
}

#[derive(serde::Deserialize)]
struct Asked {
    replica: String,
    cursor: u64,
}

impl Source {
    /// Starts the source.
    pub fn start() -> Source {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let origin = Instant::now();
        let state = (runs.clone(), origin);
        let router = Router::new()
            .route("/run/{task}", get(record))
            .with_state(state);
        let loopback = Arc::new(loopback::serve(router));
        Source {
            runs,
            origin,
            loopback,
        }
    }

    /// Now, on the source's clock.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Every run so far.
    pub fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    /// For each of `tasks`, how long after `since` it first ran on a replica other than
    /// `gone`; waits up to `limit` for every one of them to have run elsewhere.
    pub fn moved<'a>(
        &self,
        tasks: impl IntoIterator<Item = &'a String> + Copy,
        gone: &str,
        since: Duration,
        limit: Duration,
    ) -> Vec<Duration> {
        let elsewhere = |runs: &[Run], task: &String| {
            runs.iter()
                .filter(|r| &r.task == task && r.replica != gone && r.start > since)
                .map(|r| r.start - since)
                .min()
        };
        let what = format!("every task of {gone} to run elsewhere");
        self.wait_for(limit, &what, |runs| {
            tasks
                .into_iter()
                .all(|task| elsewhere(runs, task).is_some())
        });
        let runs = self.runs();
        tasks
            .into_iter()
            .filter_map(|task| elsewhere(&runs, task))
            .collect()
    }

    /// Waits until `done` holds for the runs, or panics after `limit` with `what`.
    pub fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&[Run]) -> bool) {
        let deadline = Instant::now() + limit;
        while !done(&self.runs()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn record(
    State((runs, origin)): State<(Arc<Mutex<Vec<Run>>>, Instant)>,
    UrlPath(task): UrlPath<String>,
    Query(asked): Query<Asked>,
) -> Json<Value> {
    let index = {
        let mut runs = runs.lock().unwrap();
        runs.push(Run {
            task,
            replica: asked.replica,
            cursor: asked.cursor,
            start: origin.elapsed(),
            end: None,
        });
        runs.len() - 1
    };
    // Ends when the response goes out, or when the client goes away (the server drops this
    // future): a cancelled run ends there too.
    let _ended = Ended {
        runs: runs.clone(),
        index,
        origin,
    };
    tokio::time::sleep(HOLD).await;
    Json(json!({"items": [{"cursor": asked.cursor}], "cursor": (asked.cursor + 1).to_string()}))
}

/// Records a run's end when dropped.
struct Ended {
    runs: Arc<Mutex<Vec<Run>>>,
    index: usize,
    origin: Instant,
}

impl Drop for Ended {
    fn drop(&mut self) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs[self.index].end = Some(self.origin.elapsed());
    }
}

/// Pairs of runs of one task by different replicas whose times intersect (a held request
/// counts as still going).
pub fn overlaps(runs: &[Run]) -> Vec<(Run, Run)> {
    let mut by_task: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for run in runs {
        by_task.entry(&run.task).or_default().push(run);
    }
    let mut found = Vec::new();
    for runs in by_task.values() {
        for (i, a) in runs.iter().enumerate() {
            for b in &runs[i + 1..] {
                let a_end = a.end.unwrap_or(Duration::MAX);
                let b_end = b.end.unwrap_or(Duration::MAX);
                if a.replica != b.replica && a.start < b_end && b.start < a_end {
                    found.push(((*a).clone(), (*b).clone()));
                }
            }
        }
    }
    found
}

/// Checks that each task's first run after `since` started from its `saved` cursor or a later
/// one it had reached (an outage's runs may not have saved theirs), never from further back.
pub fn assert_resumed(runs: &[Run], saved: &[(String, u64)], since: Duration) {
    for (task, saved) in saved {
        let resumed = runs
            .iter()
            .filter(|r| &r.task == task && r.start > since)
            .min_by_key(|r| r.start)
            .unwrap_or_else(|| panic!("{task} did not run after {since:?}"));
        let highest = runs
            .iter()
            .filter(|r| &r.task == task)
            .map(|r| r.cursor)
            .max()
            .unwrap();
        assert!(
            (*saved..=highest).contains(&resumed.cursor),
            "{task} resumed from {} (saved {saved}, highest {highest})",
            resumed.cursor
        );
    }
}

/// Tasks whose cursor went back: a run that started from an older cursor than an earlier run
/// of the task ended with (the state was not shared, or a stale write won).
pub fn cursors_going_back(runs: &[Run]) -> Vec<Run> {
    let mut sorted: Vec<&Run> = runs.iter().collect();
    sorted.sort_by_key(|run| run.start);
    let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
    let mut back = Vec::new();
    for run in sorted {
        let high = highest.entry(&run.task).or_default();
        // A run killed before saving leaves the cursor where it was: the next run may repeat it.
        if run.cursor + 1 < *high {
            back.push(run.clone());
        }
        *high = (*high).max(run.cursor + 1);
    }
    back
}

/// A set of replicas of one config.
pub struct Replicas {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub procs: BTreeMap<String, Proc>,
    /// Each replica's `server.listen` port.
    pub ports: BTreeMap<String, u16>,
    restarts: usize,
}

/// Where the replicas coordinate.
#[derive(Clone, Copy)]
pub enum Backend<'a> {
    /// No `coordination:` and a state file per replica (the overlap checker's control).
    None,
    /// A database of a PostgreSQL server.
    Postgres {
        server: &'a Postgres,
        database: &'a str,
    },
    /// A (fake) Kubernetes API, reached through this kubeconfig file.
    Kubernetes { kubeconfig: &'a Path },
}

/// What the replicas' config says.
pub struct Setup<'a> {
    pub backend: Backend<'a>,
    pub source: &'a Source,
    pub tasks: usize,
    pub lease: &'a str,
    pub interval: &'a str,
}

impl Replicas {
    /// Writes the config.
    pub fn new(setup: &Setup) -> Replicas {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("pg-password");
        std::fs::write(&password, PASSWORD).unwrap();
        let config = dir.path().join("tapline.yaml");
        std::fs::write(&config, config_text(setup, &password)).unwrap();
        Replicas {
            dir,
            config,
            procs: BTreeMap::new(),
            ports: BTreeMap::new(),
            restarts: 0,
        }
    }

    /// Writes the config again, as `setup` says now (a reload test).
    pub fn rewrite(&self, setup: &Setup) {
        let password = self.dir.path().join("pg-password");
        std::fs::write(&self.config, config_text(setup, &password)).unwrap();
    }

    /// Starts replica `name` (again).
    pub fn start(&mut self, name: &str) {
        let port = *self.ports.entry(name.to_string()).or_insert_with(free_port);
        let mut command: Command = tapline();
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .env("REPLICA", name)
            .env("PORT", port.to_string())
            .env("STATE_DIR", self.dir.path().join(name))
            .env("RUST_LOG", "info");
        self.restarts += 1;
        let log = format!("{name}-{}", self.restarts);
        self.procs.insert(
            name.to_string(),
            Proc::start(command, self.dir.path(), &log),
        );
    }

    /// Kills replica `name` with SIGKILL and reaps it.
    pub fn kill(&mut self, name: &str) {
        let mut proc = self.procs.remove(name).expect("a running replica");
        proc.signal(libc::SIGKILL);
        proc.wait(Duration::from_secs(10));
    }

    /// Stops replica `name` with SIGTERM; returns its exit code.
    pub fn terminate(&mut self, name: &str) -> i32 {
        let mut proc = self.procs.remove(name).expect("a running replica");
        proc.signal(libc::SIGTERM);
        proc.wait(Duration::from_secs(15))
    }

    /// Sends `signal` to replica `name`.
    pub fn signal(&self, name: &str, signal: i32) {
        self.procs[name].signal(signal);
    }

    /// Everything replica `name` logged in this incarnation.
    pub fn log(&self, name: &str) -> String {
        self.procs[name].stderr_text()
    }

    /// `/readyz` of replica `name`: its status code.
    pub fn ready(&self, name: &str) -> u16 {
        self.get(name, "/readyz").0
    }

    /// `/metrics` of replica `name`.
    pub fn metrics(&self, name: &str) -> String {
        self.get(name, "/metrics").1
    }

    /// Status and body of `path` on replica `name`'s telemetry server (0 when it does not
    /// answer).
    fn get(&self, name: &str, path: &str) -> (u16, String) {
        let url = format!("http://127.0.0.1:{}{path}", self.ports[name]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let answer = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), loopback::get(&url)).await
        });
        answer.ok().flatten().unwrap_or_default()
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        for proc in self.procs.values_mut() {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}

fn config_text(setup: &Setup, password: &Path) -> String {
    let mut text = String::from(
        "auth: {type: none}\nserver: {listen: '127.0.0.1:${PORT}'}\nshutdown: {grace-period: 5s}\n",
    );
    match setup.backend {
        Backend::Postgres { server, database } => text.push_str(&format!(
            "coordination:\n  type: postgres\n  url: {}\n  password-file: {}\n  replica-id: ${{REPLICA}}\n  lease-duration: {}\nstate: {{type: postgres}}\n",
            server.url(database),
            password.display(),
            setup.lease,
        )),
        Backend::Kubernetes { kubeconfig } => text.push_str(&format!(
            "coordination:\n  type: kubernetes\n  kubeconfig: {}\n  lease-prefix: tl\n  replica-id: ${{REPLICA}}\n  lease-duration: {}\nstate: {{type: kubernetes}}\n",
            kubeconfig.display(),
            setup.lease,
        )),
        Backend::None => text.push_str("state: {path: '${STATE_DIR}/state.json'}\n"),
    }
    text.push_str("tasks:\n");
    for index in 0..setup.tasks {
        text.push_str(&format!(
            "  - name: t{index:02}\n    type: http-poll\n    schedule: {{interval: {}}}\n    source: {{url: '{}/run/t{index:02}?replica=${{REPLICA}}&cursor={{cursor}}', records: /items, cursor: /cursor, initial-cursor: '0'}}\n    sink: {{type: stdout}}\n",
            setup.interval,
            setup.source.loopback.base(),
        ));
    }
    text
}

/// Live lease holders and how many leases each holds, from the database.
pub fn holders(postgres: &Postgres, database: &str) -> BTreeMap<String, usize> {
    let exists = postgres.psql(database, "SELECT to_regclass('tapline_leases') IS NOT NULL");
    if exists.trim() != "t" {
        return BTreeMap::new();
    }
    let out = postgres.psql(
        database,
        "SELECT holder, count(*) FROM tapline_leases WHERE expires_at > now() AND holder IS NOT NULL GROUP BY holder",
    );
    out.lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(holder, count)| (holder.to_string(), count.trim().parse().unwrap()))
        .collect()
}

/// Whether exactly `replicas` hold leases, `each` apiece.
pub fn balanced(postgres: &Postgres, database: &str, replicas: &[&str], each: usize) -> bool {
    let held = holders(postgres, database);
    replicas.iter().all(|r| held.get(*r) == Some(&each)) && held.len() == replicas.len()
}

/// The tasks `replica` holds, from the database.
pub fn tasks_of(postgres: &Postgres, database: &str, replica: &str) -> Vec<String> {
    postgres
        .psql(
            database,
            &format!("SELECT task FROM tapline_leases WHERE holder = '{replica}' AND expires_at > now() ORDER BY task"),
        )
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until `check` holds, polling every 50 ms, or panics after `limit` with `what`.
pub fn eventually(limit: Duration, what: &str, check: impl Fn() -> bool) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "timed out ({limit:?}) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(task: &str, replica: &str, start: u64, end: Option<u64>) -> Run {
        Run {
            task: task.into(),
            replica: replica.into(),
            cursor: 0,
            start: Duration::from_millis(start),
            end: end.map(Duration::from_millis),
        }
    }

    #[test]
    fn the_checker_finds_overlaps_of_different_replicas_only() {
        let runs = [
            run("a", "r1", 0, Some(100)),
            run("a", "r2", 50, Some(150)),
            run("a", "r1", 200, Some(300)),
            run("a", "r2", 300, Some(400)),
            run("b", "r3", 0, Some(500)),
            run("b", "r3", 100, Some(200)),
            run("c", "r1", 0, None),
            run("c", "r2", 1000, Some(1100)),
        ];
        let found = overlaps(&runs);
        let pairs: Vec<(u128, u128)> = found
            .iter()
            .map(|(a, b)| (a.start.as_millis(), b.start.as_millis()))
            .collect();
        assert_eq!(pairs, [(0, 50), (0, 1000)]);
    }
}
