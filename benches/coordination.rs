//! Replicas sharing tasks through PostgreSQL: how long a dead replica's tasks take to run
//! elsewhere, and how many transactions per second the replicas cost the database.
//!
//! Real `tapline run` processes against a private cluster (started as the tests start it:
//! `tests/it/harness/postgres.rs`), polling the tests' recording source
//! (`tests/it/harness/replicas.rs`). Leases last 3 s here (renewed every second), so the run
//! takes about three minutes; both numbers scale with the lease duration.
//!
//! - Fail-over: 3 replicas, 12 tasks every 200 ms; `kill -9` one replica, then the time until
//!   each of its tasks has a run on another replica (the first and the last of them), over 10
//!   trials. The baseline is the bound the design promises: a lease plus a renew period.
//! - Load: 10 replicas with 100 and with 1,000 tasks (every hour, so that runs do not blur the
//!   count), and 5 replicas with 1,000: committed transactions per second in
//!   `pg_stat_database` once the leases are spread, against the design's 2 statements (heartbeat
//!   and renewal) per replica per renew period.
//!
//! Run with `cargo bench --bench coordination`.

#[path = "../tests/it/harness/mod.rs"]
mod harness;

use std::time::Duration;

use harness::postgres::Postgres;
use harness::replicas::{
    balanced, eventually, holders, tasks_of, Backend, Replicas, Setup, Source,
};

const LEASE: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_secs(1);
const TRIALS: usize = 10;
const WINDOW: Duration = Duration::from_secs(15);

fn main() {
    let pg = Postgres::start();
    let (first, all) = fail_over(&pg);
    let bound = LEASE + RENEW;
    println!("fail-over, {TRIALS} trials (kill -9 to runs elsewhere), lease {LEASE:?}:");
    for (what, mut times) in [("first task", first), ("all its tasks", all)] {
        times.sort();
        let (min, median, max) = (times[0], times[times.len() / 2], times[times.len() - 1]);
        println!(
            "  {what:>14}: min {:.2} s, median {:.2} s, max {:.2} s; max / (lease + renew period) = {:.2}",
            min.as_secs_f64(),
            median.as_secs_f64(),
            max.as_secs_f64(),
            max.as_secs_f64() / bound.as_secs_f64()
        );
    }
    println!("database load (committed transactions per second, steady state):");
    let mut baseline = None;
    for (replicas, tasks) in [(10, 100), (10, 1000), (5, 1000)] {
        let rate = load(&pg, replicas, tasks);
        let design = 2.0 * replicas as f64 / RENEW.as_secs_f64();
        let base = *baseline.get_or_insert(rate);
        println!(
            "  {replicas:>2} replicas, {tasks:>4} tasks: {rate:6.1}/s; design {design:.0}/s (ratio {:.2}); vs 10 replicas/100 tasks {:.2}",
            rate / design,
            rate / base
        );
    }
    pg.stop();
}

/// Per trial: (kill → first of the victim's tasks run elsewhere, kill → the last of them).
fn fail_over(pg: &Postgres) -> (Vec<Duration>, Vec<Duration>) {
    pg.create_database("failover");
    let source = Source::start();
    let mut replicas = Replicas::new(&setup(pg, "failover", &source, 12, "200ms"));
    let names = ["r1", "r2", "r3"];
    for name in names {
        replicas.start(name);
    }
    let (mut first, mut all) = (Vec::new(), Vec::new());
    for trial in 0..TRIALS {
        eventually(6 * LEASE, "4 leases each", || {
            balanced(pg, "failover", &names, 4)
        });
        let victim = names[trial % names.len()];
        let moved = tasks_of(pg, "failover", victim);
        let killed_at = source.now();
        replicas.kill(victim);
        let times = source.moved(&moved, victim, killed_at, 4 * LEASE);
        first.push(*times.iter().min().unwrap());
        all.push(*times.iter().max().unwrap());
        replicas.start(victim);
    }
    (first, all)
}

/// Committed transactions per second of `replicas` replicas sharing `tasks` tasks.
fn load(pg: &Postgres, replicas: usize, tasks: usize) -> f64 {
    let database = format!("load_{replicas}_{tasks}");
    pg.create_database(&database);
    let source = Source::start();
    let mut set = Replicas::new(&setup(pg, &database, &source, tasks, "1h"));
    let names: Vec<String> = (0..replicas).map(|i| format!("l{i}")).collect();
    for name in &names {
        set.start(name);
    }
    let share = tasks.div_ceil(replicas);
    eventually(10 * LEASE, "every lease held, none above its share", || {
        let held = holders(pg, &database);
        held.values().sum::<usize>() == tasks && held.values().all(|n| *n <= share)
    });
    std::thread::sleep(2 * RENEW);
    let before = commits(pg, &database);
    std::thread::sleep(WINDOW);
    let after = commits(pg, &database);
    drop(set);
    (after - before) as f64 / WINDOW.as_secs_f64()
}

fn setup<'a>(
    pg: &'a Postgres,
    database: &'a str,
    source: &'a Source,
    tasks: usize,
    interval: &'a str,
) -> Setup<'a> {
    Setup {
        backend: Backend::Postgres {
            server: pg,
            database,
        },
        source,
        tasks,
        lease: "3s",
        interval,
    }
}

/// Committed transactions of `database` (the statistics are flushed within a second).
fn commits(pg: &Postgres, database: &str) -> i64 {
    std::thread::sleep(Duration::from_millis(1100));
    pg.psql(
        database,
        &format!("SELECT pg_stat_clear_snapshot(); SELECT xact_commit FROM pg_stat_database WHERE datname = '{database}'"),
    )
    .lines()
    .filter_map(|line| line.trim().parse().ok())
    .next_back()
    .unwrap()
}
