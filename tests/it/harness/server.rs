//! A database server the tests start themselves: a process in a temporary directory on a free
//! loopback port, run as an unprivileged user when the tests run as root (PostgreSQL refuses
//! root), stopped when the test binary ends (a watchdog outlives nothing: statics are never
//! dropped, so a shared server would otherwise be left running).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user and group ids a server runs as: the system account `name` when running as root,
/// else whoever runs the tests.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

impl Account {
    /// `name`'s ids as root; our own otherwise.
    pub fn for_server(name: &str) -> Account {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        if uid != 0 {
            return Account { uid, gid };
        }
        let id = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, name]).output().unwrap();
            assert!(
                out.status.success(),
                "user {name} is missing; create it (useradd --system {name})"
            );
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        Account {
            uid: id("-u"),
            gid: id("-g"),
        }
    }

    /// Gives `path` (recursively) to this account.
    pub fn own(&self, path: &Path) {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", path.display());
    }

    /// `program` to be run as this account, in `dir`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
        let mut command = Command::new(program);
        command.current_dir(dir).env("HOME", dir);
        // SAFETY: getuid cannot fail.
        if unsafe { libc::getuid() } == 0 {
            command.uid(self.uid).gid(self.gid);
        }
        command
    }
}

/// Runs `command` to the end; panics with its output if it fails.
pub fn run_ok(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `command` (the server in the foreground, its output in `log`) and a watchdog that
/// stops it with `signal` once this test binary has exited.
pub fn spawn_watched(mut command: Command, log: &Path, signal: &str) -> Child {
    let file = std::fs::File::create(log).unwrap();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .expect("the database server starts");
    let script = format!(
        "while [ -d /proc/{me} ] && [ -d /proc/{server} ]; do sleep 0.5; done; kill -{signal} {server} 2>/dev/null",
        me = std::process::id(),
        server = child.id()
    );
    // Started in the background by a shell that exits at once (and is waited for), so the
    // watchdog belongs to init and outlives this process, as it must.
    let status = Command::new("sh")
        .args(["-c", &format!("({script}) >/dev/null 2>&1 </dev/null &")])
        .status()
        .expect("sh runs");
    assert!(status.success(), "the watchdog starts");
    child
}

/// Waits until `ready` holds, for at most `limit`; panics with `log`'s content if it never does.
pub fn wait_until(limit: Duration, log: &Path, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "the database server is not ready after {limit:?}; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` to `child` and waits for it to exit.
pub fn stop(child: &mut Child, signal: i32) {
    // SAFETY: kill(2) on a child we have not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let _ = child.wait();
}
