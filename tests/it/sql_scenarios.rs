//! What every database must do for the `sql` task, written once: `sql_postgres.rs`,
//! `sql_mariadb.rs` and `sql_sqlite.rs` run these scenarios against their real servers (or
//! file), each test in a database of its own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tapline::prelude::*;

use crate::harness::cli::{run, tapline, Run};

/// The row ids whose `updated_at` is one shared value, across several page boundaries.
pub const SHARED: std::ops::RangeInclusive<u64> = 2001..=2500;

/// One database to run the scenarios in, and how to speak to it.
pub struct Target {
    /// The URL for tapline, without a password.
    pub url: String,
    /// The password tapline is given in `password-file`, if the database has one.
    pub password: Option<&'static str>,
    /// Runs SQL text with the database's own client.
    pub exec: Box<dyn Fn(&str) -> String + Send + Sync>,
    /// The SQL that differs between databases.
    pub dialect: &'static dyn Dialect,
    /// Config, state, password file and output.
    pub dir: tempfile::TempDir,
}

/// The SQL of the scenarios that differs between databases.
pub trait Dialect: Sync {
    /// `CREATE TABLE events (id, updated_at, payload)`.
    fn events_table(&self) -> &'static str;
    /// Inserts events `from..=to`: `updated_at` grows by 1.000001 s per id (microseconds
    /// matter), except [`SHARED`], which all have the `updated_at` of its first id.
    fn insert_events(&self, from: u64, to: u64) -> String;
    /// Creates the `types` table and inserts a row of every type and a row of NULLs.
    fn types_table(&self) -> &'static str;
    /// The query that reads the `types` rows.
    fn types_query(&self) -> &'static str {
        "SELECT * FROM types ORDER BY id"
    }
    /// The records of the `types` rows, as tapline must deliver them.
    fn types_records(&self) -> Vec<Value>;
}

/// The keyset query of the scenarios.
pub const KEYSET: &str = "SELECT id, updated_at, payload FROM events\n  WHERE (updated_at, id) > ({cursor.updated_at}, {cursor.id})\n  ORDER BY updated_at, id\n  LIMIT {limit}";

impl Target {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A config with one `sql` task named `orders` reading `query` (YAML-quoted) with `extra`
    /// source keys, printing to stdout or into `sink`.
    pub fn config(&self, query: &str, extra: &str, sink: &str) -> PathBuf {
        let password = match self.password {
            Some(password) => {
                std::fs::write(self.path("db-password"), format!("{password}\n")).unwrap();
                format!("password-file: '{}', ", self.path("db-password").display())
            }
            None => String::new(),
        };
        let text = format!(
            "auth: {{type: none}}\nstate: {{path: '{state}'}}\ntasks:\n  - name: orders\n    type: sql\n    schedule: {{interval: 1h}}\n    source: {{url: '{url}', {password}query: {query}, {extra}}}\n    sink: {{{sink}}}\n",
            state = self.path("state.json").display(),
            url = self.url,
            query = serde_json::to_string(query).unwrap(),
        );
        let path = self.path("tapline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The keyset config over `events` with `page-size`.
    pub fn keyset_config(&self, page_size: u32, extra: &str) -> PathBuf {
        self.config(
            KEYSET,
            &format!("cursor: [updated_at, id], initial-cursor: {{updated_at: '1970-01-01T00:00:00Z', id: 0}}, page-size: {page_size}, {extra}"),
            "type: stdout",
        )
    }

    pub fn state(&self) -> Value {
        let bytes = std::fs::read(self.path("state.json")).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["tasks"]["orders"].clone()
    }
}

/// `tapline run --once -c config`.
pub fn run_once(config: &Path) -> Run {
    run(tapline().args(["run", "--once", "-c"]).arg(config))
}

/// The log line of the task's failed run, in a run that exited 1; it names the task.
pub fn failed_run(out: &Run) -> &str {
    assert_eq!(out.code, 1, "{}", out.stderr);
    let failed = out
        .stderr
        .lines()
        .find(|line| line.contains("run failed"))
        .unwrap_or_else(|| panic!("no failed run logged:\n{}", out.stderr));
    assert!(failed.contains("orders"), "{failed}");
    failed
}

/// The records a successful run printed.
pub fn records(config: &Path) -> Vec<Value> {
    let out = run_once(config);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn ids(records: &[Value]) -> Vec<u64> {
    records.iter().map(|r| r["id"].as_u64().unwrap()).collect()
}

/// Every type of the database comes out as the JSON the README promises.
pub fn every_type_converts(target: &Target) {
    (target.exec)(target.dialect.types_table());
    let config = target.config(target.dialect.types_query(), "", "type: stdout");
    assert_eq!(records(&config), target.dialect.types_records());
}

/// 10,000 rows, 500 sharing one `updated_at` across page boundaries, pages of 300: every row
/// once, in order; the saved cursor is the last row's, with its exact timestamp; rows inserted
/// afterwards, and only they, come with the next run.
pub fn keyset_pages_deliver_every_row_once_and_resume(target: &Target) {
    (target.exec)(target.dialect.events_table());
    (target.exec)(&target.dialect.insert_events(1, 10_000));
    let config = target.keyset_config(300, "");
    let first = records(&config);
    assert_eq!(ids(&first), (1..=10_000).collect::<Vec<_>>());
    let shared: BTreeSet<String> = first
        .iter()
        .filter(|r| SHARED.contains(&r["id"].as_u64().unwrap()))
        .map(|r| r["updated_at"].to_string())
        .collect();
    assert_eq!(shared.len(), 1, "the shared rows have one updated_at");
    let state = target.state();
    assert_eq!(
        state["cursor"],
        json!({"updated_at": first[9999]["updated_at"], "id": 10_000})
    );

    (target.exec)(&target.dialect.insert_events(10_001, 10_020));
    let second = records(&config);
    assert_eq!(ids(&second), (10_001..=10_020).collect::<Vec<_>>());
    assert!(records(&config).is_empty(), "nothing new, nothing sent");
}

/// A wrong password: the run fails with the database's refusal and the task's name, and neither
/// the wrong password nor the right one (nor one in the URL) is printed; `validate
/// --check-auth` says the same. The right password is given too (in `password-file` and in the
/// URL) to runs that fail on bad SQL, and is not printed either.
pub fn a_wrong_password_is_a_clear_error_and_never_printed(
    target: &mut Target,
    refusal: &str,
    right_password: &'static str,
) {
    let wrong = "Wr0ng-pass-9Zq";
    target.password = Some(wrong);
    let config = target.config("SELECT 1 AS one", "", "type: stdout");
    let out = run_once(&config);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(refusal), "{}", out.stderr);
    assert!(out.stderr.contains("orders"), "{}", out.stderr);
    let check = run(tapline()
        .args(["validate", "--check-auth", "-c"])
        .arg(&config));
    assert_eq!(check.code, 1, "{}", check.all_output());
    assert!(check.stderr.contains(refusal), "{}", check.stderr);

    target.password = Some(right_password);
    let bad_sql = "SELECT 1 AS one\n  FROMM nowhere";
    let logged_in = target.config(bad_sql, "", "type: stdout");
    let right = run_once(&logged_in);
    assert_eq!(right.code, 1, "{}", right.stderr);
    assert!(right.stderr.contains("run failed"), "{}", right.stderr);
    assert!(!right.stderr.contains(refusal), "{}", right.stderr);
    let right_check = run(tapline()
        .args(["validate", "--check-auth", "-c"])
        .arg(&logged_in));
    assert_eq!(right_check.code, 1, "{}", right_check.all_output());

    let url = target.url.clone();
    target.password = None;
    target.url = url.replacen("tapline@", &format!("tapline:{wrong}-url@"), 1);
    let in_url = run_once(&target.config("SELECT 1 AS one", "", "type: stdout"));
    assert_eq!(in_url.code, 1, "{}", in_url.stderr);
    assert!(in_url.stderr.contains(refusal), "{}", in_url.stderr);
    target.url = url.replacen("tapline@", &format!("tapline:{right_password}@"), 1);
    let right_in_url = run_once(&target.config(bad_sql, "", "type: stdout"));
    assert_eq!(right_in_url.code, 1, "{}", right_in_url.stderr);
    assert!(
        right_in_url.stderr.contains("run failed"),
        "{}",
        right_in_url.stderr
    );
    assert!(
        !right_in_url.stderr.contains(refusal),
        "{}",
        right_in_url.stderr
    );
    for text in [
        &out.all_output(),
        &check.all_output(),
        &in_url.all_output(),
        &right.all_output(),
        &right_check.all_output(),
        &right_in_url.all_output(),
    ] {
        assert!(
            !text.contains(wrong) && !text.contains(right_password),
            "a password was printed:\n{text}"
        );
    }
}

/// Bad SQL: the run fails with the database's message (and `position`, where the database says
/// where) and the task's name; `validate --check-auth` reports it before any run.
pub fn a_syntax_error_is_the_database_message_with_the_task_name(
    target: &Target,
    message: &str,
    position: Option<&str>,
) {
    let config = target.config("SELECT 1 AS one\n  FROMM nowhere", "", "type: stdout");
    let out = run_once(&config);
    let failed = failed_run(&out);
    assert!(failed.contains(message), "{failed}");
    if let Some(position) = position {
        assert!(failed.contains(position), "{failed}");
    }
    let check = run(tapline()
        .args(["validate", "--check-auth", "-c"])
        .arg(&config));
    assert_eq!(check.code, 1, "{}", check.all_output());
    assert!(check.stderr.contains(message), "{}", check.stderr);
    assert!(check.stderr.contains("\"orders\""), "{}", check.stderr);
}

/// A server stopped in the middle of a run and started again a second later: the run goes on
/// from the last row it had, and every row arrives once. Stopped for good: the run fails, and
/// the next run, with the server back, delivers every row not yet saved (nothing is lost).
pub async fn a_restarted_database_loses_nothing(
    target: &Target,
    stop: Arc<dyn Fn() + Send + Sync>,
    start: Arc<dyn Fn() + Send + Sync>,
) {
    (target.exec)(target.dialect.events_table());
    (target.exec)(&target.dialect.insert_events(1, 3_000));
    let sink = Collect::default();
    let (stop_once, restart) = (stop.clone(), start.clone());
    sink.at_batch(5, move || {
        stop_once();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(1));
            restart();
        });
    });
    let config = with_sink(&target.keyset_config(100, "max-retries: 8"));
    run_in_process(&config, &sink)
        .await
        .expect("the run recovers");
    assert_eq!(sink.take(), (1..=3_000).collect::<Vec<_>>());

    (target.exec)(&target.dialect.insert_events(3_001, 5_000));
    let config = with_sink(&target.keyset_config(100, "max-retries: 0"));
    sink.at_batch(3, move || stop());
    let failed = run_in_process(&config, &sink).await;
    assert!(failed.is_err(), "the run fails while the database is down");
    start();
    run_in_process(&config, &sink).await.expect("the next run");
    let delivered: BTreeSet<u64> = sink.take().into_iter().collect();
    assert_eq!(
        delivered,
        (3_001..=5_000).collect::<BTreeSet<_>>(),
        "every row of the failed run came with the next"
    );
}

/// The cursor reaches the state file while the run goes on, at most one page behind the rows
/// delivered; and a save that fails stops the run within a page, not at its end.
pub async fn the_cursor_is_saved_as_pages_are_delivered(target: &Target) {
    (target.exec)(target.dialect.events_table());
    (target.exec)(&target.dialect.insert_events(1, 1_500));
    let sink = Collect::default();
    let state = target.path("state.json");
    let seen = Arc::new(Mutex::new(None));
    let (path, saw) = (state.clone(), seen.clone());
    // Batch 12 is page 12 (ids 1101..=1200): page 10 is saved by now, page 11 may be on its way.
    sink.at_batch(12, move || *saw.lock().unwrap() = Some(saved_id(&path)));
    let config = with_sink(&target.keyset_config(100, ""));
    run_in_process(&config, &sink).await.expect("the run");
    assert_eq!(sink.take(), (1..=1_500).collect::<Vec<_>>());
    let saved = seen.lock().unwrap().take().expect("batch 12 came");
    assert!(
        matches!(saved, Some(1_000 | 1_100)),
        "while page 12 was delivered the state file's cursor was at id {saved:?}"
    );

    (target.exec)(&target.dialect.insert_events(1_501, 3_000));
    // A directory in the state file's place: every save from page 5 on fails.
    sink.at_batch(5, move || {
        // Again if the save in flight put a file back in between.
        while std::fs::create_dir_all(state.join("in-the-way")).is_err() {
            let _ = std::fs::remove_file(&state);
        }
    });
    let failed = run_in_process(&config, &sink).await;
    assert!(failed.is_err(), "the run failed");
    let delivered = sink.take().len();
    assert!(
        (500..=700).contains(&delivered),
        "{delivered} rows were delivered, though the state could not be saved after 500"
    );
}

/// The id of the cursor in the state file on disk, if one was saved.
fn saved_id(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let state: Value = serde_json::from_slice(&bytes).unwrap();
    state["tasks"]["orders"]["cursor"]["id"].as_u64()
}

/// Replaces the stdout sink of `config` with `sink`.
fn with_sink(config: &Path) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.replace(
        "sink: {type: stdout}",
        "sink: {type: collect, batch-size: 100}",
    );
    std::fs::write(config, text).unwrap();
    config.to_path_buf()
}

/// Runs the config's tasks once in this process, with `sink` registered as `collect`.
async fn run_in_process(config: &Path, sink: &Collect) -> Result<(), tapline::runner::Error> {
    let mut registry = Registry::builtin();
    let shared = sink.clone();
    registry.sink("collect", move |_: NoKeys| Ok(shared.clone()));
    let config = registry.load(config).unwrap_or_else(|e| panic!("{e}"));
    registry
        .runner(config)?
        .once(true)
        .handle_signals(false)
        .run()
        .await
}

/// A sink without keys.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoKeys {}

/// Keeps the ids of what it is given, and does something once at a given batch.
#[derive(Clone, Default)]
struct Collect {
    ids: Arc<Mutex<Vec<u64>>>,
    batches: Arc<Mutex<usize>>,
    at: Arc<Mutex<Option<(usize, Action)>>>,
}

/// What [`Collect`] does at its batch.
type Action = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for Collect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collect")
    }
}

impl Collect {
    fn at_batch(&self, batch: usize, action: impl FnOnce() + Send + 'static) {
        *self.batches.lock().unwrap() = 0;
        *self.at.lock().unwrap() = Some((batch, Box::new(action)));
    }

    fn take(&self) -> Vec<u64> {
        std::mem::take(&mut self.ids.lock().unwrap())
    }
}

#[async_trait]
impl Sink for Collect {
    async fn deliver(&self, _: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        self.ids.lock().unwrap().extend(ids(batch));
        let count = {
            let mut batches = self.batches.lock().unwrap();
            *batches += 1;
            *batches
        };
        let due = {
            let mut at = self.at.lock().unwrap();
            match at.take() {
                Some((batch, action)) if batch == count => Some(action),
                other => {
                    *at = other;
                    None
                }
            }
        };
        if let Some(action) = due {
            tokio::task::spawn_blocking(action).await.unwrap();
        }
        Ok(())
    }
}
