//! Debian packages some tests need (a command such as `promtool`). A test never skips because a
//! program is missing: as root (CI, the development machines) the package is installed with
//! apt-get once per test binary; otherwise the test fails with the exact command to run.

use std::process::Command;
use std::sync::Mutex;

/// Makes sure `program` is on the PATH, installing the Debian `package` that provides it.
pub fn ensure(program: &str, package: &str) {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    if on_path(program) {
        return;
    }
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "{program} is missing; install it with: sudo apt-get install -y {package}"
    );
    let status = Command::new("sh")
        .args([
            "-c",
            &format!("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {package}"),
        ])
        .status()
        .expect("sh runs");
    assert!(
        status.success() && on_path(program),
        "installing {package} for {program} failed; run: apt-get install -y {package}"
    );
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|out| out.status.success())
}
