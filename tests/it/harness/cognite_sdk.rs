//! Cognite's official Python SDK (`cognite-sdk`, pinned in `tests/cognite-requirements.txt`
//! with `cognite-extractor-utils`), installed once into `target/cognite-venv`, driven through
//! `tests/cognite/sdk_client.py` against the CDF test server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

const REQUIREMENTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/cognite-requirements.txt"
);
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cognite/sdk_client.py");

/// The venv's `python`, installing the pinned packages on first use.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(install)
}

fn install() -> PathBuf {
    let ready = |venv: &Path| {
        Command::new(venv.join("bin/python"))
            .args(["-c", "import cognite.client, cognite.extractorutils"])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    super::venv::install("cognite-venv", REQUIREMENTS, &ready).join("bin/python")
}

/// The SDK client of a project at `base_url` with `token`.
pub struct Sdk {
    pub base_url: String,
    pub project: String,
    pub token: String,
}

impl Sdk {
    /// Runs `sdk_client.py command args...` (off the async runtime, so the in-process test
    /// server keeps answering) and returns its JSON.
    pub async fn run(&self, command: &str, args: &[&str]) -> Value {
        let mut child = Command::new(python());
        child
            .arg(SCRIPT)
            .arg(command)
            .args(args)
            .env("COGNITE_BASE_URL", &self.base_url)
            .env("COGNITE_PROJECT", &self.project)
            .env("COGNITE_TOKEN", &self.token);
        let what = format!("sdk_client.py {command}");
        let output = tokio::task::spawn_blocking(move || child.output().expect("python runs"))
            .await
            .expect("the SDK run finishes");
        assert!(
            output.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!("{what} printed {}", String::from_utf8_lossy(&output.stdout))
        })
    }
}
