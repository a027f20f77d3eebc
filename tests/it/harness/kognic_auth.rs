//! The reference client: Kognic's own `kognic-auth` CLI (Python, from PyPI), installed once per
//! test binary into `target/kognic-auth-venv`, so tests can show that one credentials file and
//! one environment work the same in both.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The pinned reference version, shared with `.ci/run`.
const REQUIREMENTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/kognic-auth-requirements.txt"
);

/// The `kognic-auth` executable, installing it on first use.
pub fn kognic_auth() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(install)
}

fn install() -> PathBuf {
    let venv = super::venv::install("kognic-auth-venv", REQUIREMENTS, &|venv| {
        venv.join("bin/kognic-auth").exists()
    });
    venv.join("bin/kognic-auth")
}

/// `kognic-auth get-access-token` against `server` with no token cache; `AUTHLIB_INSECURE_TRANSPORT`
/// lets it talk to the loopback test provider over http, as tapline allows for loopback only.
pub fn get_access_token(server: &str) -> Command {
    let mut command = Command::new(kognic_auth());
    command
        .args([
            "get-access-token",
            "--token-cache",
            "none",
            "--server",
            server,
        ])
        .env("AUTHLIB_INSECURE_TRANSPORT", "1")
        .env_remove("KOGNIC_CREDENTIALS")
        .env_remove("KOGNIC_CLIENT_ID")
        .env_remove("KOGNIC_CLIENT_SECRET");
    command
}
