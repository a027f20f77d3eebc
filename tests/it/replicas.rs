//! Replicas sharing tasks through PostgreSQL: real `tapline run` processes against a private
//! PostgreSQL cluster (`harness/postgres.rs`), polling a loopback source that records every run
//! (`harness/replicas.rs`). Leases last 3 s (renewed every second) so that the whole file takes
//! well under a minute; the bounds scale with the lease duration.

use std::collections::BTreeSet;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use tapline::config::{PostgresConnection, SecretSource};
use tapline::coordination::postgres::PostgresCoordinator;
use tapline::coordination::{Coordinator, Error, Lease, SharedState};

use crate::harness::cli;
use crate::harness::postgres::{self, Postgres, PASSWORD};
use crate::harness::replicas::{
    assert_resumed, balanced, cursors_going_back, eventually, holders, overlaps, tasks_of, Backend,
    Replicas, Setup, Source,
};
use crate::harness::unique;

const LEASE: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_millis(200);

fn database(server: &Postgres, name: &str) -> String {
    let database = unique(name).replace('-', "_");
    server.create_database(&database);
    database
}

fn setup<'a>(
    server: &'a Postgres,
    database: &'a str,
    source: &'a Source,
    tasks: usize,
) -> Setup<'a> {
    Setup {
        backend: Backend::Postgres { server, database },
        source,
        tasks,
        lease: "3s",
        interval: "200ms",
    }
}

/// No two replicas ever ran one task at once, and no cursor went back.
fn assert_consistent(source: &Source) {
    let runs = source.runs();
    let overlapping = overlaps(&runs);
    assert!(overlapping.is_empty(), "runs overlap: {overlapping:#?}");
    let back = cursors_going_back(&runs);
    assert!(back.is_empty(), "cursors went back: {back:#?}");
}

#[test]
fn replicas_balance_take_over_a_killed_ones_tasks_in_seconds_and_never_overlap() {
    let server = postgres::shared();
    let database = database(server, "balance");
    let source = Source::start();
    let mut replicas = Replicas::new(&setup(server, &database, &source, 12));
    for name in ["r1", "r2", "r3"] {
        replicas.start(name);
    }
    let took = eventually(2 * LEASE, "4 leases on each of 3 replicas", || {
        balanced(server, &database, &["r1", "r2", "r3"], 4)
    });
    eprintln!("balanced after {took:?}");
    eventually(2 * RENEW, "the coordination gauges of r1", || {
        let metrics = replicas.metrics("r1");
        metrics.contains("tapline_coordination_leases_held 4")
            && metrics.contains("tapline_coordination_members 3")
            && metrics.contains("tapline_coordination_lease_changes_total{reason=\"acquired\"}")
    });

    // kill -9: the dead replica's tasks run elsewhere within a lease and a renew period (plus
    // the wait for the task's next interval tick).
    let moved: BTreeSet<String> = tasks_of(server, &database, "r1").into_iter().collect();
    let killed_at = source.now();
    replicas.kill("r1");
    let bound = LEASE + RENEW + INTERVAL + Duration::from_millis(300);
    let fail_over = source.moved(&moved, "r1", killed_at, bound * 2);
    let fail_over = fail_over.into_iter().max().unwrap();
    assert!(
        fail_over <= bound,
        "took {fail_over:?} to move, more than {bound:?}"
    );
    eventually(LEASE, "the 12 tasks on 2 replicas", || {
        balanced(server, &database, &["r2", "r3"], 6)
    });

    // Restarts: a replica joins (the others hand over their extras), one leaves with SIGTERM
    // (its leases are released at once), one is killed and comes back under the same name.
    replicas.start("r1");
    eventually(3 * LEASE, "rebalanced after r1 joined", || {
        balanced(server, &database, &["r1", "r2", "r3"], 4)
    });
    assert_eq!(replicas.terminate("r2"), 0);
    eventually(2 * RENEW, "r2's tasks taken at once after it left", || {
        balanced(server, &database, &["r1", "r3"], 6)
    });
    replicas.start("r2");
    replicas.kill("r3");
    replicas.start("r3");
    eventually(4 * LEASE, "rebalanced after the restarts", || {
        balanced(server, &database, &["r1", "r2", "r3"], 4)
    });
    std::thread::sleep(LEASE);
    assert_consistent(&source);
    assert!(
        source.runs().len() > 200,
        "the tasks ran: {}",
        source.runs().len()
    );
}

#[test]
fn a_paused_replica_runs_nothing_it_no_longer_holds_and_writes_no_stale_cursor() {
    let server = postgres::shared();
    let database = database(server, "paused");
    let source = Source::start();
    let mut replicas = Replicas::new(&setup(server, &database, &source, 4));
    replicas.start("p1");
    replicas.start("p2");
    eventually(2 * LEASE, "2 leases each", || {
        balanced(server, &database, &["p1", "p2"], 2)
    });
    audit_state_writes(server, &database);
    let paused: Vec<String> = tasks_of(server, &database, "p1");
    // Stop p1 in the middle of a run: its request is held by the source.
    source.wait_for(LEASE, "a run of p1 in progress", |runs| {
        runs.iter().any(|r| r.replica == "p1" && r.end.is_none())
    });
    replicas.signal("p1", libc::SIGSTOP);
    let stopped_at = source.now();
    eventually(LEASE + 2 * RENEW, "p2 holding p1's tasks", || {
        balanced(server, &database, &["p2"], 4)
    });
    source.wait_for(2 * RENEW, "p2 running p1's tasks", |runs| {
        paused.iter().all(|task| {
            runs.iter()
                .any(|r| &r.task == task && r.replica == "p2" && r.start > stopped_at)
        })
    });
    replicas.signal("p1", libc::SIGCONT);
    let resumed_at = source.now();
    std::thread::sleep(3 * RENEW);

    // On waking, p1 drops the leases it held: the watchdog finds them expired, or the run it
    // was in finishes first and its cursor write is refused (as in the first run of this test).
    let log = replicas.log("p1");
    assert!(
        log.contains("task leases gone"),
        "p1 dropped its leases:\n{log}"
    );
    // p1 ran nothing it did not hold: any run of it after waking is of a lease it took again,
    // never beside p2 (the overlap check).
    assert_consistent(&source);
    let late = source
        .runs()
        .iter()
        .filter(|r| r.replica == "p1" && r.start > resumed_at)
        .count();
    eprintln!("p1 ran {late} times after waking");

    // The case the replica's own clock cannot catch (a clock that stood still, a partition
    // that healed): its leases taken over behind its back, just after it renewed them. Its next
    // cursor write is refused by the database, and the run cancelled.
    eventually(3 * LEASE, "2 leases each again", || {
        balanced(server, &database, &["p1", "p2"], 2)
    });
    let refused = |log: &str| log.matches("state write refused").count();
    let refused_before = refused(&replicas.log("p1"));
    let expiry = || {
        server.psql(
            &database,
            "SELECT max(expires_at) FROM tapline_leases WHERE holder = 'p1'",
        )
    };
    let before = expiry();
    eventually(2 * RENEW, "p1 renewing", || expiry() != before);
    server.psql(
        &database,
        "UPDATE tapline_leases SET holder = 'intruder', generation = generation + 1, \
         expires_at = now() + interval '1 hour' WHERE holder = 'p1'",
    );
    eventually(RENEW, "p1's cursor write refused by the database", || {
        refused(&replicas.log("p1")) > refused_before
    });

    // Every state write that landed was made under the lease current at that moment: the
    // generation the writer held (what the row keeps) is the lease row's.
    let writes = server.psql(&database, "SELECT count(*) FROM audit");
    assert!(
        writes.trim().parse::<u32>().unwrap() > 10,
        "writes: {writes}"
    );
    let stale = server.psql(
        &database,
        "SELECT task, written, leased, holder FROM audit WHERE written <> leased",
    );
    assert_eq!(
        stale.trim(),
        "",
        "state written under a lease no longer current"
    );
}

/// Records every write to `tapline_state` with the generation of the task's lease at that
/// moment (a trigger in the writing transaction).
fn audit_state_writes(server: &Postgres, database: &str) {
    server.psql(
        database,
        "CREATE TABLE audit (task text, written bigint, leased bigint, holder text);
         CREATE FUNCTION audit_state() RETURNS trigger AS $$
         BEGIN
             INSERT INTO audit SELECT NEW.task, NEW.generation, l.generation, l.holder
             FROM tapline_leases l WHERE l.task = NEW.task;
             RETURN NEW;
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER audit AFTER INSERT OR UPDATE ON tapline_state
         FOR EACH ROW EXECUTE FUNCTION audit_state();",
    );
}

#[test]
fn with_postgres_down_tasks_stop_before_their_leases_expire_and_resume_after() {
    let server: &'static Postgres = Box::leak(Box::new(Postgres::start()));
    let database = database(server, "outage");
    let source = Source::start();
    // Two tasks for three replicas: one member holds no task, and is ready all the same.
    let mut replicas = Replicas::new(&setup(server, &database, &source, 2));
    for name in ["o1", "o2", "o3"] {
        replicas.start(name);
    }
    eventually(2 * LEASE, "both tasks held", || {
        holders(server, &database).values().sum::<usize>() == 2
    });
    eventually(2 * RENEW, "every member ready", || {
        ["o1", "o2", "o3"].iter().all(|r| replicas.ready(r) == 200)
    });
    assert_eq!(
        holders(server, &database).len(),
        2,
        "one member holds nothing"
    );

    std::thread::sleep(RENEW);
    let saved_before = saved_cursors(server, &database);
    assert_eq!(
        saved_before.len(),
        2,
        "both cursors saved: {saved_before:?}"
    );
    server.stop();
    let stopped_at = source.now();
    // Shortened from the 30 s: three lease durations show the same.
    std::thread::sleep(LEASE + RENEW);
    for name in ["o1", "o2", "o3"] {
        assert_eq!(
            replicas.ready(name),
            503,
            "{name} is not ready without the database"
        );
    }
    std::thread::sleep(2 * LEASE - RENEW);
    let runs = source.runs();
    let after_expiry: Vec<_> = runs
        .iter()
        .filter(|r| r.end.is_none_or(|end| end > stopped_at + LEASE))
        .collect();
    assert!(
        after_expiry.is_empty(),
        "runs went on past the leases' expiry: {after_expiry:#?}"
    );
    assert!(
        runs.iter().any(|r| r.start > stopped_at),
        "the tasks ran on while their leases were valid"
    );

    server.start_again();
    let restarted_at = source.now();
    source.wait_for(3 * LEASE, "both tasks running again", |runs| {
        ["t00", "t01"].iter().all(|task| {
            runs.iter()
                .any(|r| r.task == *task && r.start > restarted_at)
        })
    });
    eventually(2 * RENEW, "every member ready again", || {
        ["o1", "o2", "o3"].iter().all(|r| replicas.ready(r) == 200)
    });
    let runs = source.runs();
    let overlapping = overlaps(&runs);
    assert!(overlapping.is_empty(), "runs overlap: {overlapping:#?}");
    // As with the state file: the runs after the outage resume from the last saved cursor (at
    // least the one saved before the database stopped; the runs during the outage could not
    // save theirs), never from the start.
    assert_resumed(&runs, &saved_before, restarted_at);
}

/// Each task's cursor in the shared state.
fn saved_cursors(server: &Postgres, database: &str) -> Vec<(String, u64)> {
    server
        .psql(
            database,
            "SELECT task, state->>'cursor' FROM tapline_state ORDER BY task",
        )
        .lines()
        .filter_map(|line| line.split_once('|'))
        .map(|(task, cursor)| (task.to_string(), cursor.parse().unwrap()))
        .collect()
}

/// The control of the overlap checker: without coordination, two replicas run every task, and
/// the checker sees it.
#[test]
fn without_coordination_two_replicas_overlap_and_the_checker_finds_it() {
    let server = postgres::shared();
    let source = Source::start();
    let mut replicas = Replicas::new(&Setup {
        backend: Backend::None,
        ..setup(server, "unused", &source, 2)
    });
    replicas.start("n1");
    replicas.start("n2");
    source.wait_for(Duration::from_secs(10), "an overlap", |runs| {
        !overlaps(runs).is_empty()
    });
}

fn connection(server: &Postgres, database: &str) -> PostgresConnection {
    PostgresConnection {
        url: server.url(database),
        password: Some(SecretSource::Inline(SecretString::from(PASSWORD))),
        tls: None,
        ca_bundle: None,
    }
}

fn coordinator(
    server: &Postgres,
    database: &str,
    replica: &str,
    lease: Duration,
) -> PostgresCoordinator {
    PostgresCoordinator::new(connection(server, database), replica.into(), lease).unwrap()
}

#[tokio::test]
async fn replicas_migrating_together_make_one_schema() {
    let server = postgres::shared();
    let database = database(server, "migrate");
    let tasks = vec!["x".to_string()];
    let joins = (0..6).map(|i| {
        let c = coordinator(server, &database, &format!("m{i}"), LEASE);
        let tasks = tasks.clone();
        async move { c.join(&tasks).await }
    });
    for joined in futures::future::join_all(joins).await {
        joined.unwrap();
    }
    assert_eq!(
        server
            .psql(&database, "SELECT count(*) FROM tapline_schema")
            .trim(),
        "1"
    );
    assert_eq!(
        server
            .psql(&database, "SELECT count(*) FROM tapline_leases")
            .trim(),
        "1"
    );
    let again = coordinator(server, &database, "late", LEASE);
    again.join(&tasks).await.unwrap();
    assert_eq!(
        server
            .psql(&database, "SELECT version FROM tapline_schema")
            .trim(),
        "1"
    );
}

#[tokio::test]
async fn a_write_under_a_lease_taken_over_is_refused_by_the_database() {
    let server = postgres::shared();
    let database = database(server, "fence");
    let tasks = vec!["x".to_string()];
    let short = Duration::from_secs(1);
    let a = coordinator(server, &database, "a", short);
    let b = coordinator(server, &database, "b", short);
    a.join(&tasks).await.unwrap();
    let held = a.acquire(&tasks, 1).await.unwrap();
    assert_eq!(
        held,
        [Lease {
            task: "x".into(),
            generation: 1
        }]
    );
    assert!(b.acquire(&tasks, 1).await.unwrap().is_empty(), "a holds it");
    let (state_a, state_b) = (a.state(), b.state());
    state_a
        .store(&held[0], &json!({"cursor": "1"}))
        .await
        .unwrap();

    // a is paused past its lease; b takes it over with a new generation.
    tokio::time::sleep(short + Duration::from_millis(200)).await;
    let taken = b.acquire(&tasks, 1).await.unwrap();
    assert_eq!(
        taken,
        [Lease {
            task: "x".into(),
            generation: 2
        }]
    );
    let refused = state_a.store(&held[0], &json!({"cursor": "stale"})).await;
    assert!(matches!(refused, Err(Error::Fenced { .. })), "{refused:?}");
    assert!(
        a.renew(&held).await.unwrap().is_empty(),
        "a's renewal finds it lost"
    );
    state_b
        .store(&taken[0], &json!({"cursor": "2"}))
        .await
        .unwrap();
    assert_eq!(
        state_b.load("x").await.unwrap(),
        Some(json!({"cursor": "2"}))
    );
    // Even a write under the current holder's name with the old generation is refused.
    let old = Lease {
        task: "x".into(),
        generation: 1,
    };
    assert!(matches!(
        state_b.store(&old, &json!({})).await,
        Err(Error::Fenced { .. })
    ));
}

#[tokio::test]
async fn renewing_one_replicas_leases_is_one_statement_whatever_their_number() {
    let server = postgres::shared();
    let database = database(server, "renew");
    let tasks: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    let c = coordinator(server, &database, "solo", LEASE);
    c.join(&tasks).await.unwrap();
    let held = c.acquire(&tasks, 50).await.unwrap();
    assert_eq!(held.len(), 50);
    let before = statements(server, &database);
    let renewed = c.renew(&held).await.unwrap();
    assert_eq!(renewed.len(), 50);
    assert_eq!(c.heartbeat().await.unwrap(), 1);
    let after = statements(server, &database);
    // The renewal, the heartbeat, and the count query's own transaction.
    assert!(
        after - before <= 3,
        "{} transactions for 50 leases",
        after - before
    );
}

/// Committed transactions of `database` so far (pg_stat_database is updated when a backend
/// reports, so ask for a fresh snapshot).
fn statements(server: &Postgres, database: &str) -> i64 {
    std::thread::sleep(Duration::from_millis(600));
    server
        .psql(
            database,
            &format!("SELECT pg_stat_clear_snapshot(); SELECT xact_commit FROM pg_stat_database WHERE datname = '{database}'"),
        )
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .next_back()
        .unwrap()
}

#[test]
fn coordination_problems_are_reported_with_their_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("coordination: {type: postgres, url: 'postgres://u@h/db'}\n", "state.type"),
        ("state: {type: postgres}\n", "state.type"),
        ("coordination: {type: postgres}\nstate: {type: postgres}\n", "coordination.url"),
        ("coordination: {type: postgres, url: 'mysql://h/db'}\nstate: {type: postgres}\n", "coordination.url"),
        ("coordination: {type: postgres, url: 'postgres://h/a', lease-duration: 100ms}\nstate: {type: postgres}\n", "coordination.lease-duration"),
        ("coordination: {type: postgres, url: 'postgres://h/a'}\nstate: {type: postgres, url: 'postgres://h/b'}\n", "state.url"),
        ("coordination: {replica-id: x}\n", "coordination.replica-id"),
        (
            "coordination: {type: postgres, url: 'postgres://h/a'}\nstate: {type: postgres}\ntasks:\n  - {name: once, type: http-poll, schedule: startup, source: {url: 'http://h/'}, sink: {type: stdout}}\n",
            "tasks[0].schedule: a startup task runs once in each process",
        ),
        (
            "coordination: {type: kubernetes}\nstate: {type: kubernetes}\ntasks:\n  - {name: kept, type: http-poll, schedule: {interval: 1m}, source: {url: 'http://h/'}, sink: {type: stdout}, buffer: {type: disk}}\n",
            "tasks[0].buffer.type: a disk buffer belongs to one replica",
        ),
    ];
    for (block, path) in cases {
        let config = dir.path().join("c.yaml");
        std::fs::write(&config, format!("auth: {{type: none}}\n{block}")).unwrap();
        let run = cli::validate(&config);
        assert_eq!(run.code, 2, "{block}: {}", run.all_output());
        assert!(
            run.all_output().contains(path),
            "{block}: expected {path} in {}",
            run.all_output()
        );
    }
}

#[test]
fn validate_check_auth_connects_to_the_coordination_database_and_never_shows_the_password() {
    let server = postgres::shared();
    let database = database(server, "check");
    let dir = tempfile::tempdir().unwrap();
    let check = |password: &str| {
        let file = dir.path().join("pw");
        std::fs::write(&file, password).unwrap();
        let config = dir.path().join("c.yaml");
        std::fs::write(
            &config,
            format!(
                "auth: {{type: none}}\ncoordination: {{type: postgres, url: '{}', password-file: '{}'}}\nstate: {{type: postgres}}\n",
                server.url(&database),
                file.display()
            ),
        )
        .unwrap();
        cli::run(
            cli::tapline()
                .args(["validate", "--check-auth", "-c"])
                .arg(&config),
        )
    };
    let good = check(PASSWORD);
    assert_eq!(good.code, 0, "{}", good.all_output());
    assert!(good.stdout.contains("coordination OK"), "{}", good.stdout);
    assert!(!good.all_output().contains(PASSWORD));
    let wrong = "Wrong-pg-Secret-never-shown";
    let bad = check(wrong);
    assert_eq!(bad.code, 1, "{}", bad.all_output());
    assert!(
        bad.all_output().contains("coordination"),
        "{}",
        bad.all_output()
    );
    assert!(!bad.all_output().contains(wrong), "{}", bad.all_output());
}

/// A reload on a replica: changed task keys are applied; a new task is refused until every
/// replica restarts (the leases were set up for the tasks of the start), and nothing changes.
#[test]
fn a_replica_applies_changed_tasks_and_refuses_new_ones_until_restarted() {
    let server = postgres::shared();
    let database = database(server, "reload");
    let source = Source::start();
    let mut replicas = Replicas::new(&setup(server, &database, &source, 2));
    replicas.start("r1");
    let both = |runs: &[crate::harness::replicas::Run]| {
        ["t00", "t01"]
            .iter()
            .all(|task| runs.iter().any(|run| run.task == *task))
    };
    source.wait_for(Duration::from_secs(20), "both tasks to run", both);

    replicas.rewrite(&setup(server, &database, &source, 3));
    replicas.signal("r1", libc::SIGHUP);
    eventually(Duration::from_secs(10), "the refusal", || {
        replicas
            .log("r1")
            .contains("adding or removing tasks needs a restart")
    });
    let mut changed = setup(server, &database, &source, 2);
    changed.interval = "300ms";
    replicas.rewrite(&changed);
    replicas.signal("r1", libc::SIGHUP);
    eventually(Duration::from_secs(10), "the changed tasks", || {
        replicas.log("r1").contains("restarted [t00, t01]")
    });
    let after = source.now();
    source.wait_for(Duration::from_secs(20), "runs after the reload", |runs| {
        runs.iter().filter(|run| run.start > after).count() >= 2
    });
    assert!(
        source.runs().iter().all(|run| run.task != "t02"),
        "the refused task ran"
    );
    assert_consistent(&source);
}
