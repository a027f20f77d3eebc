//! The peak resident memory of a child process, measured so that this process's own memory does
//! not count.
//!
//! Why not `wait4` on a child of ours: a process spawned from here (fork or vfork) carries this
//! process's high-water RSS into its own `ru_maxrss` when it execs, so a test or benchmark that
//! holds a server and its data in memory would make tapline look as large as itself. A small
//! Python process forks the command instead and reports the child's `ru_maxrss`, which then
//! starts from Python's few MiB.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How a measured command ended.
#[derive(Debug)]
pub struct Measured {
    /// Its exit code, or minus the signal that ended it (-9 when the deadline killed it).
    pub code: i32,
    /// From its start to its end, measured by the wrapper.
    pub elapsed: Duration,
    /// Its peak resident memory, in KiB.
    pub peak_kib: u64,
}

/// Forks the command, waits for it (killing it after the deadline), writes "code nanos maxrss".
const WRAPPER: &str = r#"
import os, sys, time
report, deadline, argv = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
start = time.monotonic_ns()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done == pid:
        break
    if time.monotonic_ns() - start > deadline * 1e9:
        os.kill(pid, 9)
    time.sleep(0.01)
took = time.monotonic_ns() - start
code = os.waitstatus_to_exitcode(status)
with open(report, "w") as out:
    out.write(f"{code} {took} {usage.ru_maxrss}")
"#;

/// Runs `command` (its program, arguments, environment and directory) to its end with the
/// given stdout and stderr, killing it after `deadline`.
pub fn measure(command: &Command, stdout: Stdio, stderr: Stdio, deadline: Duration) -> Measured {
    let report = tempfile::NamedTempFile::new().expect("a temp file for the report");
    let mut wrapper = Command::new("python3");
    wrapper
        .arg("-c")
        .arg(WRAPPER)
        .arg(report.path())
        .arg(deadline.as_secs_f64().to_string())
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapper.env(key, value),
            None => wrapper.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapper.current_dir(dir);
    }
    let status = wrapper.status().expect("python3 runs");
    assert!(status.success(), "the measuring wrapper failed: {status}");
    read_report(report.path())
}

fn read_report(path: &Path) -> Measured {
    let text = std::fs::read_to_string(path).expect("the wrapper wrote its report");
    let fields: Vec<i64> = text
        .split_whitespace()
        .map(|field| field.parse().expect("a number"))
        .collect();
    let [code, nanos, peak_kib] = fields[..] else {
        panic!("a report of three numbers, not {text:?}");
    };
    Measured {
        code: code as i32,
        elapsed: Duration::from_nanos(nanos as u64),
        peak_kib: peak_kib as u64,
    }
}
