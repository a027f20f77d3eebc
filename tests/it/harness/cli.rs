//! Runs the real `tapline` binary, as users do.

use std::path::Path;
use std::process::{Command, Output};

/// The result of one `tapline` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together, for "never prints X" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A `tapline` command with a clean environment: no `TAPLINE_*` or `KOGNIC_*` leaks in from the
/// developer's shell.
pub fn tapline() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tapline"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TAPLINE_") || key.starts_with("KOGNIC_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `command` to completion.
pub fn run(command: &mut Command) -> Run {
    let Output { status, stdout, stderr } = command.output().expect("tapline binary runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// `tapline validate -c <path>`.
pub fn validate(path: &Path) -> Run {
    run(tapline().arg("validate").arg("-c").arg(path))
}
