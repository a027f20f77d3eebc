//! Throughput of a jq `transform:` in the `file` task versus `jq -c` (Debian's jq) running the
//! same program on the same file, in the same run.
//!
//! The input is [`LINES`] small JSON lines. Each round either runs `tapline run --once` (the
//! release binary, as users run it) with one `file` task, `transform: PROGRAM`, into a `jsonl`
//! sink with `batch-size: 10000`, or runs `jq -c PROGRAM input > output`. tapline also keeps file
//! offsets in its state file and fsyncs each batch; jq only streams. Both outputs are checked to
//! hold every record, transformed. The same task without the transform is timed too, to show
//! what the transform itself costs.
//!
//! Run with `cargo bench --bench transform` (jq must be installed: `apt-get install jq`). Rounds
//! alternate so that noise from other processes hits both alike; the median is reported.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LINES: usize = 1_000_000;
const ROUNDS: usize = 3;
const PROGRAM: &str = "{key: (.id|tostring), columns: .}";

fn write_input(path: &Path) {
    let mut text = String::with_capacity(LINES * 64);
    for n in 0..LINES {
        text.push_str(&format!(
            "{{\"id\":{n},\"value\":{}.5,\"name\":\"reading\",\"ok\":true}}\n",
            n % 1000
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// One `tapline run --once`; `transform` is the task's `transform:` line, or empty.
fn tapline_round(dir: &Path, round: usize, transform: &str) -> Duration {
    let output = dir.join(format!("tapline-{round}.jsonl"));
    let yaml = format!(
        "auth: {{type: none}}\nstate: {{path: '{state}'}}\nlogging: {{level: warn}}\ntasks:\n  - name: bench\n    type: file\n    schedule: {{interval: 1h}}\n    source: {{path: '{input}'}}\n    {transform}\n    sink: {{type: jsonl, path: '{output}', batch-size: 10000}}\n",
        state = dir.join(format!("state-{round}-{}.json", transform.len())).display(),
        input = dir.join("input.jsonl").display(),
        output = output.display(),
    );
    let config = dir.join("tapline.yaml");
    std::fs::write(&config, yaml).unwrap();
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_tapline"))
        .args(["run", "--once", "-c"])
        .arg(&config)
        .status()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(status.success());
    check(&output, !transform.is_empty());
    elapsed
}

fn jq_round(dir: &Path, round: usize) -> Duration {
    let output = dir.join(format!("jq-{round}.jsonl"));
    let started = Instant::now();
    let status = Command::new("jq")
        .args(["-c", PROGRAM])
        .arg(dir.join("input.jsonl"))
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(Stdio::inherit())
        .status()
        .expect("jq runs (apt-get install jq)");
    let elapsed = started.elapsed();
    assert!(status.success());
    check(&output, true);
    elapsed
}

/// Every record must have been written, transformed when `transformed`.
fn check(output: &Path, transformed: bool) {
    let text = std::fs::read_to_string(output).unwrap();
    assert_eq!(text.lines().count(), LINES, "{}", output.display());
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let id = match transformed {
        true => &last["columns"]["id"],
        false => &last["id"],
    };
    assert_eq!(id, LINES - 1);
    std::fs::remove_file(output).unwrap();
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let version = Command::new("jq")
        .arg("--version")
        .output()
        .expect("jq is installed");
    let dir = tempfile::tempdir().unwrap();
    write_input(&dir.path().join("input.jsonl"));
    let transform = format!("transform: '{PROGRAM}'");
    let (mut ours, mut theirs, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        theirs.push(jq_round(dir.path(), round));
        ours.push(tapline_round(dir.path(), round, &transform));
        plain.push(tapline_round(dir.path(), round, ""));
    }
    let rate = |d: Duration| LINES as f64 / d.as_secs_f64();
    let (ours, theirs, plain) = (median(ours), median(theirs), median(plain));
    println!("transform: {LINES} lines, program {PROGRAM:?}, median of {ROUNDS} rounds");
    println!(
        "  {:<24} {:>8.2} s  {:>10.0} records/s",
        String::from_utf8_lossy(&version.stdout).trim(),
        theirs.as_secs_f64(),
        rate(theirs)
    );
    println!(
        "  {:<24} {:>8.2} s  {:>10.0} records/s",
        "tapline (file → jsonl)",
        ours.as_secs_f64(),
        rate(ours)
    );
    println!(
        "  {:<24} {:>8.2} s  {:>10.0} records/s",
        "tapline, no transform",
        plain.as_secs_f64(),
        rate(plain)
    );
    println!(
        "  ratio: tapline does {:.2}x jq's records/s",
        rate(ours) / rate(theirs)
    );
}
