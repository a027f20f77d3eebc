//! The `tapline` binary (or an example) as a long-running child process: start it with its stderr
//! in a file, signal it, wait for it with a deadline.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running child whose stderr goes to a file (a pipe could fill up and stall it).
pub struct Proc {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Proc {
    /// Starts `command` with stdout discarded and stderr written to `dir/<name>.stderr`.
    pub fn start(mut command: Command, dir: &Path, name: &str) -> Proc {
        let stderr = dir.join(format!("{name}.stderr"));
        let file = std::fs::File::create(&stderr).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the binary starts");
        Proc { child, stderr }
    }

    /// Sends `signal` (such as `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        let result = unsafe { libc::kill(pid, signal) };
        assert_eq!(result, 0, "kill({pid}, {signal}) failed");
    }

    /// The exit code once the process exits within `limit`; panics (after killing it) if not.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the process did not exit within {limit:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What it wrote on stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The path of a built example binary, next to the `tapline` binary.
pub fn example(name: &str) -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_tapline"));
    let path = bin.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing; `cargo test` builds the examples (or run `cargo build --examples`)",
        path.display()
    );
    path
}
