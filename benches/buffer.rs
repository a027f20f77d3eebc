//! Throughput of a `file` task into a `jsonl` sink through a disk buffer (`buffer: {type:
//! disk}`) versus the same task without one, in the same run.
//!
//! The source is one file of [`RECORDS`] small JSON lines (`{"n":…}`). Each round runs the task
//! once through the library's runner (`--once` semantics) from a fresh state: without a buffer,
//! the run writes each batch to the sink (append + fsync); with one, the run appends each batch
//! to the buffer (append + fsync) and the drain delivers it to the same sink, moving the ledger
//! after each batch, and the round ends when the buffer is empty. Both use the sink's default
//! `batch-size` (500).
//!
//! Run with `cargo bench --bench buffer`. Rounds alternate (unbuffered, buffered, …) so that
//! noise from other processes hits both alike; the median and the best round are reported.

/// The allocator the `tapline` binary runs with (`src/main.rs`): the runner runs in this process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/rounds.rs"]
mod rounds;

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use tapline::Registry;

const RECORDS: u64 = 1_000_000;
const ROUNDS: usize = 3;

#[derive(Clone, Copy)]
enum Side {
    Unbuffered,
    Buffered,
}

/// One run of the task over `data` into `dir/out.jsonl`, from a fresh state.
async fn round(side: Side, data: &Path, dir: &Path) {
    let buffer = match side {
        Side::Unbuffered => "",
        Side::Buffered => "\n    buffer: {type: disk, max-size: 1GiB}",
    };
    let yaml = format!(
        "auth: {{type: none}}\nstate: {{path: '{state}'}}\nshutdown: {{grace-period: 10m}}\ntasks:\n  - name: bench\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{path: '{data}'}}\n    sink: {{type: jsonl, path: '{out}'}}{buffer}\n",
        state = dir.join("state.json").display(),
        data = data.display(),
        out = dir.join("out.jsonl").display(),
    );
    let path = dir.join("tapline.yaml");
    std::fs::write(&path, yaml).unwrap();
    let registry = Registry::builtin();
    let config = registry.load(&path).unwrap();
    registry
        .runner(config)
        .unwrap()
        .once(true)
        .handle_signals(false)
        .run()
        .await
        .unwrap();
}

/// Records per second of one round of `side`, after checking every record arrived once.
async fn measure(side: Side, data: &Path) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    round(side, data, dir.path()).await;
    let elapsed = started.elapsed();
    let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(out.lines().count() as u64, RECORDS, "every record once");
    RECORDS as f64 / elapsed.as_secs_f64()
}

fn main() {
    let source = tempfile::tempdir().unwrap();
    let data = source.path().join("data.jsonl");
    let mut writer = std::io::BufWriter::new(std::fs::File::create(&data).unwrap());
    for n in 1..=RECORDS {
        writeln!(writer, "{{\"n\":{n}}}").unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        // Warm up: page cache, allocator.
        measure(Side::Unbuffered, &data).await;
        measure(Side::Buffered, &data).await;

        println!(
            "file → jsonl: {RECORDS} small records, with and without a disk buffer, \
             {ROUNDS} alternating rounds"
        );
        let (mut bare, mut buffered) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            bare.push(measure(Side::Unbuffered, &data).await);
            buffered.push(measure(Side::Buffered, &data).await);
        }
        println!(
            "rounds, records/s: unbuffered {:?}, buffered {:?}",
            bare.iter().map(|r| r.round()).collect::<Vec<_>>(),
            buffered.iter().map(|r| r.round()).collect::<Vec<_>>()
        );
        println!(
            "{:>6} {:>21} {:>19} {:>7}",
            "", "unbuffered records/s", "buffered records/s", "ratio"
        );
        for (name, pick) in rounds::PICKS {
            let (bare, buffered) = (pick(&mut bare), pick(&mut buffered));
            println!(
                "{name:>6} {bare:>21.0} {buffered:>19.0} {:>6.1}%",
                100.0 * buffered / bare
            );
        }
    });
}
