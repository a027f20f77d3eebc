//! A private PostgreSQL 15 cluster: `initdb` in a temporary directory, `postgres` on a free
//! loopback port (as the `postgres` account when the tests run as root), password logins over
//! TCP only. [`shared`] is one cluster for the whole test binary, each test in a database of
//! its own; [`Postgres::start`] gives a test its own cluster to stop and start.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::loopback::free_port;
use super::packages;
use super::server::{run_ok, spawn_watched, stop, wait_until, Account};
use super::server_cert::ServerCert;

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser, who logs in with [`PASSWORD`].
pub const USER: &str = "tapline";
/// The superuser's password: tests grep output for it.
pub const PASSWORD: &str = "pg-Secret-7Qx-never-shown";

/// A running cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    account: Account,
    pub port: u16,
    server: Mutex<Option<Child>>,
    /// `-c name=value` settings beyond the defaults.
    settings: Vec<String>,
}

/// The cluster shared by the tests of this binary.
pub fn shared() -> &'static Postgres {
    static SHARED: OnceLock<Postgres> = OnceLock::new();
    SHARED.get_or_init(Postgres::start)
}

impl Postgres {
    /// A new cluster, started.
    pub fn start() -> Postgres {
        let postgres = Postgres::init();
        postgres.start_again();
        postgres
    }

    /// A new cluster, started, that takes TLS connections only (`hostssl` in `pg_hba.conf`),
    /// presenting `cert`.
    pub fn start_tls(cert: &ServerCert) -> Postgres {
        let mut postgres = Postgres::init();
        let dir = postgres.dir.path();
        std::fs::copy(&cert.cert, dir.join("server.pem")).unwrap();
        std::fs::copy(&cert.key, dir.join("server.key")).unwrap();
        std::fs::set_permissions(dir.join("server.key"), Permissions::from_mode(0o600)).unwrap();
        let hba = "hostssl all all 127.0.0.1/32 scram-sha-256\n";
        std::fs::write(dir.join("data/pg_hba.conf"), hba).unwrap();
        postgres.account.own(dir);
        postgres.settings = [
            "ssl=on",
            "ssl_cert_file=../server.pem",
            "ssl_key_file=../server.key",
        ]
        .map(String::from)
        .to_vec();
        postgres.start_again();
        postgres
    }

    /// A new cluster, not started.
    fn init() -> Postgres {
        packages::ensure(&format!("{BIN}/initdb"), "postgresql-15");
        packages::ensure("psql", "postgresql-client-15");
        let account = Account::for_server("postgres");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pwfile"), PASSWORD).unwrap();
        account.own(dir.path());
        let data = dir.path().join("data");
        run_ok(
            account
                .command(format!("{BIN}/initdb"), dir.path())
                .arg("-D")
                .arg(&data)
                .args(["-U", USER, "--pwfile=pwfile", "--auth=scram-sha-256"])
                .args(["-E", "UTF8", "--locale=C", "--no-sync"]),
            "initdb",
        );
        Postgres {
            dir,
            account,
            port: free_port(),
            server: Mutex::new(None),
            settings: Vec::new(),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Starts the server (again) on the same port and waits until it takes connections.
    pub fn start_again(&self) {
        let mut command = self
            .account
            .command(format!("{BIN}/postgres"), self.dir.path());
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k", ""])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200"]);
        for setting in &self.settings {
            command.args(["-c", setting]);
        }
        let child = spawn_watched(command, &self.log(), "INT");
        *self.server.lock().unwrap() = Some(child);
        wait_until(Duration::from_secs(30), &self.log(), || {
            Command::new(format!("{BIN}/pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    /// Stops the server (fast shutdown: sessions are cut) and waits until it is gone.
    pub fn stop(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            stop(&mut child, libc::SIGINT);
        }
    }

    /// `postgres://tapline@127.0.0.1:<port>/<database>`, without the password.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs `sql` in `database` with psql; returns what it printed (unaligned, tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        run_ok(
            Command::new("psql")
                .env("PGPASSWORD", PASSWORD)
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-U", USER, "-d", database, "-c", sql]),
            "psql",
        )
    }

    /// A new, empty database named `name`.
    pub fn create_database(&self, name: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
    }
}
