//! Python reference clients, each in its own venv under `target/` with pinned requirements,
//! installed once per test binary (`.ci/run` installs them up front the same way).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The venv `target/<name>`, with `requirements` installed unless `ready` (a path inside the
/// venv, such as `bin/kognic-auth`) already works; returns the venv's directory.
pub fn install(name: &str, requirements: &str, ready: &dyn Fn(&Path) -> bool) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    if ready(&venv) {
        return venv;
    }
    let created = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    assert!(
        created.is_ok_and(|status| status.success()),
        "the reference-client tests need python3 with the venv module on PATH"
    );
    let installed = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            requirements,
        ])
        .status()
        .expect("pip runs");
    assert!(installed.success(), "pip could not install {requirements}");
    venv
}
