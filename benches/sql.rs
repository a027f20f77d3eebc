//! Throughput and memory of a `sql` task reading PostgreSQL into a `jsonl` sink, against a
//! Python loop with psycopg doing the same keyset paging and writing the same JSON lines, and
//! against `psql -c "\copy (SELECT …) TO STDOUT"` as the floor, in the same run on the same
//! private cluster (started as the tests start it: `tests/it/harness/postgres.rs`).
//!
//! The table has six columns (bigint, timestamptz, text, float8, numeric, bool) and an index on
//! the cursor `(updated_at, id)`. tapline runs as a child process (`tapline run --once`), so
//! its peak RSS is the kernel's (`ru_maxrss`, through `tests/it/harness/rss.rs`); it is measured at two table sizes to show that memory
//! is bounded by the page size, not the table. The Python loop is pinned in
//! `benches/sql-requirements.txt` and installed into `target/sql-bench-venv`.
//!
//! Run with `cargo bench --bench sql`. Rounds alternate (copy, Python, tapline, …) so that
//! noise hits all alike; the median and the best round of each are reported.

#[path = "../tests/it/harness/mod.rs"]
mod harness;
#[path = "common/rounds.rs"]
mod rounds;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::postgres::{Postgres, PASSWORD, USER};

const LARGE: u64 = 1_000_000;
const SMALL: u64 = 200_000;
const PAGE_SIZE: u32 = 5_000;
const ROUNDS: usize = 5;
const HOUR: Duration = Duration::from_secs(3600);
const COLUMNS: &str = "id, updated_at, name, value, amount, flag";

fn main() {
    let pg = Postgres::start();
    pg.create_database("bench");
    for rows in [SMALL, LARGE] {
        load(&pg, rows);
    }
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    // Rows per second of each side (copy, Python, tapline), round by round.
    let mut rates: [Vec<f64>; 3] = Default::default();
    let mut rss = (0, 0);
    for round in 0..ROUNDS {
        let copy = copy_floor(&pg, &dir.path().join(format!("copy-{round}.txt")));
        let baseline = python_loop(&pg, &python, &dir.path().join(format!("py-{round}.jsonl")));
        let (took, peak) = tapline(&pg, LARGE, dir.path(), round);
        for (side, took) in rates.iter_mut().zip([copy, baseline, took]) {
            side.push(LARGE as f64 / took.as_secs_f64());
        }
        rss.1 = rss.1.max(peak);
        for name in [format!("copy-{round}.txt"), format!("py-{round}.jsonl")] {
            let _ = std::fs::remove_file(dir.path().join(name));
        }
    }
    let (_, small_peak) = tapline(&pg, SMALL, dir.path(), ROUNDS);
    rss.0 = small_peak;
    report(rates, rss);
    pg.stop();
}

/// Table `t<rows>`: ids 1..=rows, `updated_at` 1.000001 s apart, an index on the cursor.
fn load(pg: &Postgres, rows: u64) {
    pg.psql(
        "bench",
        &format!(
            "CREATE TABLE t{rows} (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, \
             name text, value float8, amount numeric(12,2), flag bool);
             INSERT INTO t{rows} SELECT g, timestamptz '2024-01-01 00:00:00+00' + g * interval '1.000001 second', \
             'reading-' || g, g * 0.25, (g % 100000) / 100.0, g % 2 = 0 FROM generate_series(1, {rows}) g;
             CREATE INDEX ON t{rows} (updated_at, id);"
        ),
    );
    pg.psql("bench", &format!("VACUUM ANALYZE t{rows}"));
}

/// `psql -c "\copy (SELECT …) TO STDOUT"` into a file: the floor, no JSON at all.
fn copy_floor(pg: &Postgres, out: &Path) -> Duration {
    let file = std::fs::File::create(out).unwrap();
    let start = Instant::now();
    let status = Command::new("psql")
        .env("PGPASSWORD", PASSWORD)
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            USER,
            "-d",
            "bench",
        ])
        .arg("-c")
        .arg(format!(
            "\\copy (SELECT {COLUMNS} FROM t{LARGE} ORDER BY updated_at, id) TO STDOUT"
        ))
        .stdout(Stdio::from(file))
        .status()
        .unwrap();
    assert!(status.success());
    let took = start.elapsed();
    assert_eq!(lines(out), LARGE);
    took
}

/// The venv `target/sql-bench-venv` with the pinned psycopg (installed by the tests' harness
/// when it cannot be imported yet); its `python`.
fn python() -> PathBuf {
    let requirements = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/sql-requirements.txt");
    let ready = |venv: &Path| {
        Command::new(venv.join("bin/python"))
            .args(["-c", "import psycopg"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    harness::venv::install("sql-bench-venv", requirements, &ready).join("bin/python")
}

fn python_loop(pg: &Postgres, python: &Path, out: &Path) -> Duration {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sql_baseline.py");
    let conninfo = format!(
        "host=127.0.0.1 port={} user={USER} password={PASSWORD} dbname=bench",
        pg.port
    );
    let start = Instant::now();
    let output = Command::new(python)
        .arg(script)
        .args([&conninfo, &format!("t{LARGE}"), &PAGE_SIZE.to_string()])
        .arg(out)
        .output()
        .unwrap();
    let took = start.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(lines(out), LARGE);
    took
}

/// `tapline run --once` over `t<rows>` into a jsonl file: the time and the peak RSS (KiB).
fn tapline(pg: &Postgres, rows: u64, dir: &Path, round: usize) -> (Duration, u64) {
    let password = dir.join("password");
    std::fs::write(&password, PASSWORD).unwrap();
    let out = dir.join(format!("tapline-{rows}-{round}.jsonl"));
    let config = dir.join("tapline.yaml");
    let yaml = format!(
        "auth: {{type: none}}\nstate: {{path: '{state}'}}\nlogging: {{level: warn}}\ntasks:\n  - name: bench\n    type: sql\n    schedule: {{interval: 1h}}\n    source:\n      url: '{url}'\n      password-file: '{password}'\n      query: 'SELECT {COLUMNS} FROM t{rows} WHERE (updated_at, id) > ({{cursor.updated_at}}, {{cursor.id}}) ORDER BY updated_at, id LIMIT {{limit}}'\n      cursor: [updated_at, id]\n      initial-cursor: {{updated_at: '1970-01-01T00:00:00Z', id: 0}}\n      page-size: {PAGE_SIZE}\n    sink: {{type: jsonl, path: '{out}', batch-size: {PAGE_SIZE}}}\n",
        state = dir.join(format!("state-{rows}-{round}.json")).display(),
        url = pg.url("bench"),
        password = password.display(),
        out = out.display(),
    );
    std::fs::write(&config, yaml).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tapline"));
    command.args(["run", "--once", "-c"]).arg(&config);
    let run = harness::rss::measure(&command, Stdio::null(), Stdio::inherit(), HOUR);
    assert_eq!(run.code, 0, "tapline failed");
    assert_eq!(lines(&out), rows);
    let _ = std::fs::remove_file(&out);
    (run.elapsed, run.peak_kib)
}

/// Counts lines a block at a time: reading a whole 100 MB file would make this process that
/// large, and a child forked from it reports that as its own peak RSS.
fn lines(path: &Path) -> u64 {
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap();
    let mut block = vec![0; 1 << 16];
    let mut count = 0;
    loop {
        let read = file.read(&mut block).unwrap();
        if read == 0 {
            return count;
        }
        count += block[..read].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

fn report(mut rates: [Vec<f64>; 3], (small_rss, large_rss): (u64, u64)) {
    println!("sql: {LARGE} rows x 6 columns, PostgreSQL 15 -> JSON lines, pages of {PAGE_SIZE}, {ROUNDS} rounds");
    println!(
        "{:>6} {:>14} {:>14} {:>14} {:>16} {:>15}",
        "", "\\copy rows/s", "python rows/s", "tapline rows/s", "tapline/python", "copy/tapline"
    );
    for (name, pick) in rounds::PICKS {
        let [copy, python, tapline] = [0, 1, 2].map(|side| pick(&mut rates[side]));
        println!(
            "{name:>6} {copy:>14.0} {python:>14.0} {tapline:>14.0} {:>15.2}x {:>14.2}x",
            tapline / python,
            copy / tapline
        );
    }
    println!("targets: tapline/python >= 5x, copy/tapline <= 3x");
    println!(
        "tapline peak RSS: {} KiB at {SMALL} rows, {} KiB at {LARGE} rows",
        small_rss, large_rss
    );
}
