//! A private MariaDB server: `mariadb-install-db` in a temporary directory, `mariadbd` on a
//! free loopback port (as the `mysql` account when the tests run as root), with a password user
//! made at start-up. `mariadb-server` is installed with apt-get when missing (as root).
//! [`shared`] is one server for the whole test binary, each test in a database of its own;
//! [`MariaDb::start`] gives a test its own server to stop and start.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::loopback::free_port;
use super::packages;
use super::server::{run_ok, spawn_watched, stop, wait_until, Account};

/// The user the tests log in as, with [`PASSWORD`], from anywhere.
pub const USER: &str = "tapline";
/// Its password: tests grep output for it.
pub const PASSWORD: &str = "maria-Secret-4Kd-never-shown";

/// A running server.
pub struct MariaDb {
    dir: tempfile::TempDir,
    account: Account,
    pub port: u16,
    server: Mutex<Option<Child>>,
}

/// The server shared by the tests of this binary.
pub fn shared() -> &'static MariaDb {
    static SHARED: OnceLock<MariaDb> = OnceLock::new();
    SHARED.get_or_init(MariaDb::start)
}

impl MariaDb {
    /// A new server, started.
    pub fn start() -> MariaDb {
        packages::ensure("mariadbd", "mariadb-server");
        let account = Account::for_server("mysql");
        let dir = tempfile::tempdir().unwrap();
        let init = format!(
            "CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';\n\
             GRANT ALL ON *.* TO '{USER}'@'%' WITH GRANT OPTION;\n"
        );
        std::fs::write(dir.path().join("init.sql"), init).unwrap();
        account.own(dir.path());
        run_ok(
            account
                .command("mariadb-install-db", dir.path())
                .arg("--no-defaults")
                .arg(format!("--datadir={}", dir.path().join("data").display()))
                .args(["--skip-test-db", "--auth-root-authentication-method=socket"]),
            "mariadb-install-db",
        );
        let server = MariaDb {
            dir,
            account,
            port: free_port(),
            server: Mutex::new(None),
        };
        server.start_again();
        server
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("mariadbd.log")
    }

    /// Starts the server (again) on the same port and waits until the test user can log in.
    pub fn start_again(&self) {
        let dir = self.dir.path();
        let mut command = self.account.command("mariadbd", dir);
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .arg(format!("--socket={}", dir.join("mariadbd.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--init-file={}", dir.join("init.sql").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--skip-log-bin",
            ])
            .args([
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=64M",
            ])
            .args(["--max-connections=200"]);
        let child = spawn_watched(command, &self.log(), "TERM");
        *self.server.lock().unwrap() = Some(child);
        wait_until(Duration::from_secs(60), &self.log(), || {
            self.client()
                .arg("-e")
                .arg("SELECT 1")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    /// Stops the server (connections are cut) and waits until it is gone.
    pub fn stop(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            stop(&mut child, libc::SIGTERM);
        }
    }

    /// `mysql://tapline@127.0.0.1:<port>/<database>`, without the password.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    fn client(&self) -> Command {
        let mut command = Command::new("mariadb");
        command
            .arg("--no-defaults")
            .args(["-h", "127.0.0.1", "-P", &self.port.to_string(), "-u", USER])
            .arg(format!("-p{PASSWORD}"))
            .args(["-N", "-B"]);
        command
    }

    /// Runs `sql` in `database`; returns what it printed (tab-separated, no headers).
    pub fn sql(&self, database: &str, sql: &str) -> String {
        run_ok(self.client().args(["-D", database, "-e", sql]), "mariadb")
    }

    /// A new, empty database named `name`.
    pub fn create_database(&self, name: &str) {
        run_ok(
            self.client().args([
                "-e",
                &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
            ]),
            "mariadb",
        );
    }
}
