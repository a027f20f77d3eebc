//! The `sql` task on a SQLite file (made with the `sqlite3` command); the scenarios are in
//! `sql_scenarios.rs`. SQLite has no server to restart and no password, so those scenarios are
//! PostgreSQL's and MariaDB's.

use serde_json::{json, Value};

use crate::harness::cli::validate;
use crate::harness::packages;
use crate::harness::server::run_ok;
use crate::sql_scenarios::{self as scenarios, Dialect, Target};

struct Lite;

impl Dialect for Lite {
    fn events_table(&self) -> &'static str {
        "CREATE TABLE events (id INTEGER PRIMARY KEY, updated_at TEXT NOT NULL, payload TEXT)"
    }

    /// Timestamps are text in SQLite: fixed-width RFC 3339, so text order is time order.
    fn insert_events(&self, from: u64, to: u64) -> String {
        format!(
            "WITH RECURSIVE g(n) AS (SELECT {from} UNION ALL SELECT n + 1 FROM g WHERE n < {to}) \
             INSERT INTO events SELECT n, \
             printf('2024-01-01T%02d:%02d:%02d.%06dZ', s / 3600, s / 60 % 60, s % 60, s), \
             'p' || n FROM (SELECT n, CASE WHEN n BETWEEN 2001 AND 2500 THEN 2001 ELSE n END AS s FROM g)"
        )
    }

    fn types_table(&self) -> &'static str {
        "CREATE TABLE types (id INTEGER PRIMARY KEY, small INTEGER, big INTEGER, f REAL, \
           t TEXT, b BOOLEAN, bytes BLOB, ts TEXT, j TEXT, absent TEXT);
         INSERT INTO types VALUES (1, -9223372036854775808, 9223372036854775807, 1.5, 'héllo \"q\"', \
           1, X'00FF10', '2024-02-29T23:59:59.123456Z', '{\"a\": 1}', NULL);
         INSERT INTO types (id) VALUES (2);"
    }

    fn types_records(&self) -> Vec<Value> {
        vec![
            json!({"id": 1, "small": i64::MIN, "big": i64::MAX, "f": 1.5, "t": "héllo \"q\"",
                "b": true, "bytes": "AP8Q", "ts": "2024-02-29T23:59:59.123456Z",
                "j": "{\"a\": 1}", "absent": null}),
            json!({"id": 2, "small": null, "big": null, "f": null, "t": null, "b": null,
                "bytes": null, "ts": null, "j": null, "absent": null}),
        ]
    }
}

/// A new SQLite file in a temp dir.
fn target() -> Target {
    packages::ensure("sqlite3", "sqlite3");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plant.db");
    let url = format!("sqlite://{}", file.display());
    // The file exists, as a database tapline reads would.
    run_ok(
        std::process::Command::new("sqlite3")
            .arg(&file)
            .arg("PRAGMA user_version = 1"),
        "sqlite3",
    );
    Target {
        url,
        password: None,
        exec: Box::new(move |sql| {
            run_ok(
                std::process::Command::new("sqlite3").arg(&file).arg(sql),
                "sqlite3",
            )
        }),
        dialect: &Lite,
        dir,
    }
}

#[test]
fn every_sqlite_storage_class_converts() {
    scenarios::every_type_converts(&target());
}

#[test]
fn sqlite_keyset_pages_deliver_every_row_once_and_resume() {
    let target = target();
    scenarios::keyset_pages_deliver_every_row_once_and_resume(&target);
    let last = (target.exec)("SELECT updated_at FROM events WHERE id = 10020");
    assert_eq!(target.state()["cursor"]["updated_at"], json!(last.trim()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_saves_the_cursor_as_pages_are_delivered() {
    scenarios::the_cursor_is_saved_as_pages_are_delivered(&target()).await;
}

#[test]
fn a_sqlite_syntax_error_is_its_message_with_the_task_name() {
    scenarios::a_syntax_error_is_the_database_message_with_the_task_name(
        &target(),
        "syntax error",
        None,
    );
}

#[test]
fn validate_checks_the_placeholders_against_the_cursor_with_their_key_path() {
    let target = target();
    let config = target.config(
        "SELECT * FROM events WHERE id > {cursor.version} LIMIT {limit}",
        "cursor: [id], initial-cursor: {id: 0}, tls: require",
        "type: stdout",
    );
    let out = validate(&config);
    assert_eq!(out.code, 2, "{}", out.all_output());
    assert!(
        out.stderr.contains("tasks[0].source.query")
            && out
                .stderr
                .contains("\"version\" is not one of the cursor columns"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("tasks[0].source.tls"),
        "every problem at once: {}",
        out.stderr
    );
}

/// A `transform:` sees the cursor the run started from as `$cursor`: the initial cursor on the
/// first run, the saved one (the last row's) on the next.
#[test]
fn a_transform_sees_the_cursor_the_run_started_from() {
    let target = target();
    (target.exec)(target.dialect.events_table());
    (target.exec)(&target.dialect.insert_events(1, 3));
    let config = target.keyset_config(2, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "    source:",
        "    transform: '{id, after: $cursor.id}'\n    source:",
    );
    std::fs::write(&config, text).unwrap();
    assert_eq!(
        scenarios::records(&config),
        [
            json!({"id": 1, "after": 0}),
            json!({"id": 2, "after": 0}),
            json!({"id": 3, "after": 0})
        ]
    );
    (target.exec)(&target.dialect.insert_events(4, 4));
    assert_eq!(scenarios::records(&config), [json!({"id": 4, "after": 3})]);
}
