//! The `sql` task against a private MariaDB server started by the tests
//! (`harness/mariadb.rs`); the scenarios are in `sql_scenarios.rs`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::harness::mariadb::{self, MariaDb, PASSWORD};
use crate::harness::unique;
use crate::sql_scenarios::{self as scenarios, Dialect, Target};

struct Maria;

impl Dialect for Maria {
    fn events_table(&self) -> &'static str {
        "CREATE TABLE events (id BIGINT PRIMARY KEY, updated_at DATETIME(6) NOT NULL, payload VARCHAR(50))"
    }

    fn insert_events(&self, from: u64, to: u64) -> String {
        format!(
            "INSERT INTO events SELECT seq, TIMESTAMP'2024-01-01 00:00:00' + \
             INTERVAL (IF(seq BETWEEN 2001 AND 2500, 2001, seq) * 1000001) MICROSECOND, \
             CONCAT('p', seq) FROM seq_{from}_to_{to}"
        )
    }

    fn types_table(&self) -> &'static str {
        r#"SET time_zone = '+00:00';
        CREATE TABLE types (id BIGINT PRIMARY KEY, i2 SMALLINT, i4 INT, u8 BIGINT UNSIGNED,
          f4 FLOAT, f8 DOUBLE, num DECIMAL(30,6), b BOOLEAN, t TEXT, vc VARCHAR(20),
          ts TIMESTAMP(6) NULL, dt DATETIME(6), d DATE, tm TIME(6), u UUID, j JSON,
          bytes VARBINARY(10), absent TEXT);
        INSERT INTO types VALUES (1, -32768, 2147483647, 18446744073709551615, 1.5, 0.1,
          12345678901234567890.123450, TRUE, 'héllo "q"', 'v', '2024-02-29 23:59:59.123456',
          '2024-02-29 23:59:59.123456', '2024-02-29', '23:59:59.5',
          'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": [1, 2]}', X'00FF10', NULL);
        INSERT INTO types (id) VALUES (2);"#
    }

    /// MariaDB's JSON and UUID columns have a binary collation, which the wire protocol shows
    /// as binary data (base64); `CAST(... AS CHAR)` makes them text, as the README says.
    fn types_query(&self) -> &'static str {
        "SELECT id, i2, i4, u8, f4, f8, num, b, t, vc, ts, dt, d, tm, CAST(u AS CHAR) AS u, \
         CAST(j AS CHAR) AS j, bytes, absent FROM types ORDER BY id"
    }

    fn types_records(&self) -> Vec<Value> {
        vec![
            json!({"id": 1, "i2": -32768, "i4": 2147483647, "u8": u64::MAX, "f4": 1.5, "f8": 0.1,
                "num": "12345678901234567890.123450", "b": true, "t": "héllo \"q\"", "vc": "v",
                "ts": "2024-02-29T23:59:59.123456Z", "dt": "2024-02-29T23:59:59.123456",
                "d": "2024-02-29", "tm": "23:59:59.500", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "j": "{\"k\": [1, 2]}", "bytes": "AP8Q", "absent": null}),
            json!({"id": 2, "i2": null, "i4": null, "u8": null, "f4": null, "f8": null,
                "num": null, "b": null, "t": null, "vc": null, "ts": null, "dt": null, "d": null,
                "tm": null, "u": null, "j": null, "bytes": null, "absent": null}),
        ]
    }
}

/// A database of its own on `server` (the shared server unless a test has its own).
fn target(server: &'static MariaDb, name: &str) -> Target {
    let database = unique(name).replace('-', "_");
    server.create_database(&database);
    Target {
        url: server.url(&database),
        password: Some(PASSWORD),
        exec: Box::new(move |sql| server.sql(&database, sql)),
        dialect: &Maria,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[test]
fn every_mariadb_type_converts() {
    scenarios::every_type_converts(&target(mariadb::shared(), "types"));
}

#[test]
fn mariadb_keyset_pages_deliver_every_row_once_and_resume() {
    let target = target(mariadb::shared(), "keyset");
    scenarios::keyset_pages_deliver_every_row_once_and_resume(&target);
    // The saved DATETIME is the database's own value to the microsecond, and is bound back
    // as a DATETIME (the second run found exactly the new rows).
    let last = (target.exec)(
        "SELECT DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f') FROM events WHERE id = 10020",
    );
    assert_eq!(target.state()["cursor"]["updated_at"], json!(last.trim()));
    assert_eq!(
        target.state()["cursor-types"]["updated_at"],
        json!("DATETIME")
    );
}

#[test]
fn a_wrong_mariadb_password_is_a_clear_error_and_never_printed() {
    let mut target = target(mariadb::shared(), "password");
    scenarios::a_wrong_password_is_a_clear_error_and_never_printed(
        &mut target,
        "Access denied for user 'tapline'",
        PASSWORD,
    );
}

#[test]
fn a_mariadb_syntax_error_is_its_message_with_the_task_name() {
    scenarios::a_syntax_error_is_the_database_message_with_the_task_name(
        &target(mariadb::shared(), "syntax"),
        "You have an error in your SQL syntax",
        None,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_saves_the_cursor_as_pages_are_delivered() {
    scenarios::the_cursor_is_saved_as_pages_are_delivered(&target(mariadb::shared(), "saves"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_mariadb_loses_nothing() {
    let server: &'static MariaDb = Box::leak(Box::new(MariaDb::start()));
    let target = target(server, "restart");
    scenarios::a_restarted_database_loses_nothing(
        &target,
        Arc::new(|| server.stop()),
        Arc::new(|| server.start_again()),
    )
    .await;
    server.stop();
}
