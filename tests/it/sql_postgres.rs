//! The `sql` task against a private PostgreSQL 15 cluster started by the tests
//! (`harness/postgres.rs`); the scenarios are in `sql_scenarios.rs`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::harness::postgres::{self, Postgres, PASSWORD};
use crate::harness::server_cert::ServerCert;
use crate::harness::unique;
use crate::sql_scenarios::{self as scenarios, Dialect, Target};

struct Pg;

impl Dialect for Pg {
    fn events_table(&self) -> &'static str {
        "CREATE TABLE events (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, payload text)"
    }

    fn insert_events(&self, from: u64, to: u64) -> String {
        format!(
            "INSERT INTO events SELECT g, timestamptz '2024-01-01 00:00:00+00' + \
             (CASE WHEN g BETWEEN 2001 AND 2500 THEN 2001 ELSE g END) * interval '1.000001 second', \
             'p' || g FROM generate_series({from}, {to}) g"
        )
    }

    fn types_table(&self) -> &'static str {
        r#"CREATE TYPE mood AS ENUM ('calm', 'busy');
        CREATE TABLE types (id int8 PRIMARY KEY, i2 int2, i4 int4, f4 float4, f8 float8,
          num numeric(30,6), b bool, t text, vc varchar(20), ts timestamptz, tsn timestamp,
          d date, tm time, u uuid, j jsonb, js json, bytes bytea, arr int4[], tarr text[],
          tsarr timestamptz[], m mood, nothing text);
        INSERT INTO types VALUES (1, -32768, 2147483647, 1.5, 0.1, 12345678901234567890.123450,
          true, 'héllo "q"', 'v', '2024-02-29 23:59:59.123456+00', '2024-02-29 23:59:59.123456',
          '2024-02-29', '23:59:59.5', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
          '{"k": [1, 2, {"n": null}]}', '{"a": 1}', '\x00ff10', '{1,NULL,3}', '{"a","b c"}',
          '{"2024-01-01 00:00:00.000001+00"}', 'busy', NULL);
        INSERT INTO types (id) VALUES (2);"#
    }

    fn types_records(&self) -> Vec<Value> {
        vec![
            json!({"id": 1, "i2": -32768, "i4": 2147483647, "f4": 1.5, "f8": 0.1,
                "num": "12345678901234567890.123450", "b": true, "t": "héllo \"q\"", "vc": "v",
                "ts": "2024-02-29T23:59:59.123456Z", "tsn": "2024-02-29T23:59:59.123456",
                "d": "2024-02-29", "tm": "23:59:59.500", "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "j": {"k": [1, 2, {"n": null}]}, "js": {"a": 1}, "bytes": "AP8Q",
                "arr": [1, null, 3], "tarr": ["a", "b c"], "tsarr": ["2024-01-01T00:00:00.000001Z"],
                "m": "busy", "nothing": null}),
            json!({"id": 2, "i2": null, "i4": null, "f4": null, "f8": null, "num": null,
                "b": null, "t": null, "vc": null, "ts": null, "tsn": null, "d": null, "tm": null,
                "u": null, "j": null, "js": null, "bytes": null, "arr": null, "tarr": null,
                "tsarr": null, "m": null, "nothing": null}),
        ]
    }
}

/// A database of its own on `server` (the shared cluster unless a test has its own).
fn target(server: &'static Postgres, name: &str) -> Target {
    let database = unique(name);
    server.create_database(&database);
    Target {
        url: server.url(&database),
        password: Some(PASSWORD),
        exec: Box::new(move |sql| server.psql(&database, sql)),
        dialect: &Pg,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[test]
fn every_postgres_type_converts() {
    scenarios::every_type_converts(&target(postgres::shared(), "types"));
}

#[test]
fn postgres_keyset_pages_deliver_every_row_once_and_resume() {
    let target = target(postgres::shared(), "keyset");
    scenarios::keyset_pages_deliver_every_row_once_and_resume(&target);
    // The saved timestamp is the database's own value to the microsecond.
    let last = (target.exec)("SELECT to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM events WHERE id = 10020");
    assert_eq!(target.state()["cursor"]["updated_at"], json!(last.trim()));
    assert_eq!(
        target.state()["cursor-types"]["updated_at"],
        json!("TIMESTAMPTZ")
    );
}

#[test]
fn a_wrong_postgres_password_is_a_clear_error_and_never_printed() {
    let mut target = target(postgres::shared(), "password");
    scenarios::a_wrong_password_is_a_clear_error_and_never_printed(
        &mut target,
        "password authentication failed for user \"tapline\"",
        PASSWORD,
    );
}

#[test]
fn a_postgres_syntax_error_is_its_message_with_the_task_name_and_position() {
    scenarios::a_syntax_error_is_the_database_message_with_the_task_name(
        &target(postgres::shared(), "syntax"),
        "syntax error at or near \"FROMM\"",
        Some("at line 2, column 3 of source.query"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_saves_the_cursor_as_pages_are_delivered() {
    scenarios::the_cursor_is_saved_as_pages_are_delivered(&target(postgres::shared(), "saves"))
        .await;
}

/// A value that cannot be read (a two-dimensional array: tapline reads one-dimensional ones)
/// fails the run naming its column. Only rows before it are delivered (the whole batches among
/// them), none at or after it, and the cursor stays where the last whole page left it (nowhere:
/// the page is not whole).
#[test]
fn an_unreadable_value_fails_the_run_after_the_rows_before_it() {
    let target = target(postgres::shared(), "unreadable");
    (target.exec)(
        "CREATE TABLE grid (id bigint PRIMARY KEY, tags int4[]);
         INSERT INTO grid SELECT g, ARRAY[g::int4] FROM generate_series(1, 1000) g;
         UPDATE grid SET tags = '{{1,2},{3,4}}' WHERE id = 700;",
    );
    let config = target.config(
        "SELECT id, tags FROM grid WHERE id > {cursor.id} ORDER BY id LIMIT {limit}",
        "cursor: [id], initial-cursor: {id: 0}, page-size: 1000",
        "type: stdout, batch-size: 100",
    );
    let out = scenarios::run_once(&config);
    let failed = scenarios::failed_run(&out);
    assert!(
        failed.contains("column \"tags\" (INT4[]) could not be read"),
        "{failed}"
    );
    let ids: Vec<u64> = out
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(
        !ids.is_empty() && ids.len() < 700,
        "{} rows delivered",
        ids.len()
    );
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    let saved = std::fs::read(target.path("state.json")).map(|bytes| {
        serde_json::from_slice::<Value>(&bytes).unwrap()["tasks"]["orders"]["cursor"].clone()
    });
    assert!(
        saved.is_err() || saved.as_ref().unwrap().is_null(),
        "{saved:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_postgres_loses_nothing() {
    let server: &'static Postgres = Box::leak(Box::new(Postgres::start()));
    let target = target(server, "restart");
    scenarios::a_restarted_database_loses_nothing(
        &target,
        Arc::new(|| server.stop()),
        Arc::new(|| server.start_again()),
    )
    .await;
    server.stop();
}

/// A server that takes TLS only: `tls: require` with the CA in `ca-bundle` connects encrypted
/// (PostgreSQL itself says so); without the CA the certificate is refused at once, naming it (a
/// certificate does not get better by retrying); `tls: disable` is refused by the server.
#[test]
fn tls_require_verifies_the_server_against_the_ca_bundle() {
    let cert = ServerCert::generate();
    let server: &'static Postgres = Box::leak(Box::new(Postgres::start_tls(&cert)));
    let target = target(server, "tls");
    let encrypted = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let ca = format!("ca-bundle: '{}'", cert.ca.display());

    let verified = target.config(encrypted, &format!("tls: require, {ca}"), "type: stdout");
    assert_eq!(scenarios::records(&verified), [json!({"ssl": true})]);

    let unknown = scenarios::run_once(&target.config(encrypted, "tls: require", "type: stdout"));
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("certificate"),
        "the refusal does not name the certificate:\n{}",
        unknown.stderr
    );
    assert!(
        !unknown.stderr.contains("trying again"),
        "a refused certificate was retried:\n{}",
        unknown.stderr
    );

    let plain = scenarios::run_once(&target.config(encrypted, "tls: disable", "type: stdout"));
    assert_eq!(plain.code, 1, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("no encryption"),
        "the server's refusal of a plain connection is not shown:\n{}",
        plain.stderr
    );
    server.stop();
}
