//! Idle cost of `tapline run`: 100 interval tasks scheduled, none due (interval 1h, initial delay
//! 1h), telemetry server on. Reports resident memory (VmRSS) after start-up and the CPU time
//! (utime + stime from /proc/<pid>/stat) used over an idle window.
//!
//! `cargo bench --bench idle` (window: `IDLE_SECS`, default 60). Linux only.
//! Targets: under 20 MB RSS, under 1% of one core.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let secs: u64 = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut yaml = format!(
        "auth: {{type: none}}\nstate: {{path: {}}}\nserver: {{listen: '127.0.0.1:{port}'}}\nlogging: {{level: warn}}\ntasks:\n",
        dir.path().join("state.json").display()
    );
    for i in 0..100 {
        yaml.push_str(&format!(
            "  - name: task-{i}\n    type: file\n    schedule: {{interval: 1h, initial-delay: 1h}}\n    source: {{path: '{}/in-{i}/*.jsonl'}}\n    sink: {{type: stdout}}\n",
            dir.path().display()
        ));
    }
    let config = dir.path().join("tapline.yaml");
    std::fs::write(&config, yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapline"))
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .expect("tapline starts");
    let pid = child.id();
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "tapline exited early");
    let rss_start = rss_kib(pid);
    let cpu_start = cpu_ticks(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let wall = started.elapsed().as_secs_f64();
    let cpu_end = cpu_ticks(pid);
    let rss_end = rss_kib(pid);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    // SAFETY: sysconf has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (cpu_end - cpu_start) as f64 / ticks_per_sec;
    println!("tapline run, 100 interval tasks, none due, {wall:.0} s idle:");
    println!(
        "  RSS after start-up: {:.1} MiB; after the idle window: {:.1} MiB",
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    println!(
        "  CPU time: {cpu:.3} s = {:.3}% of one core",
        100.0 * cpu / wall
    );
    println!("  exit after SIGTERM: {status}");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
