//! [`Pools`]: one connection pool per distinct database, shared by the tasks that read it.
//!
//! Why shared: ten tasks reading one database should hold a handful of connections between them,
//! not ten pools' worth, and a database restart should be noticed (and the stale connections
//! dropped) once. The registry's `sql` builder owns one `Pools`, so every task of a config shares
//! it; nothing is connected until the first run (building opens nothing, so `validate` is free).
//!
//! Each built task holds its [`SharedPool`]; `Pools` holds only weak handles, so a pool lives as
//! long as a task that reads it. A reload that changes a connection key builds tasks with a new
//! pool, and the old one (with its connections) goes when the last task of the old config does;
//! the dead handles are pruned when a new pool is added.
//!
//! A pool is keyed by the URL, the connection keys (`tls`, `ca-bundle`, `max-connections`,
//! `connect-timeout`) and where the password comes from: tasks with the same `password-file`
//! share a pool, a task with an inline `password` has one of its own (so no task can set another
//! one's password on a shared pool, and the key holds nothing of the value). The password is read
//! at every run and handed to the pool for the connections it opens from then on, so a rotated
//! `password-file` needs no restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlSslMode};
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::ConnectOptions;

use super::config::{SqlSourceConfig, Tls};
use super::database::Backend;
use super::error::Error;
use crate::config::SecretSource;
use crate::redact;

/// An open pool, of the database's own type (rows are read per database).
#[derive(Clone)]
pub enum Pool {
    /// PostgreSQL.
    Postgres(PgPool),
    /// MySQL and MariaDB.
    MySql(MySqlPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

/// How to reach one database: the pool key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Connection {
    backend: Backend,
    /// The URL as configured (it may hold a password: shown only through [`redact::url`]).
    url: String,
    tls: Option<Tls>,
    ca_bundle: Option<PathBuf>,
    max_connections: u32,
    connect_timeout: Duration,
    password: PasswordKey,
}

/// Where a pool's password comes from, in its key: tasks share a pool only when they cannot give
/// it different passwords.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PasswordKey {
    /// None (a password in the URL is part of the URL).
    None,
    /// `password-file`: the tasks reading one file read one password.
    File(PathBuf),
    /// An inline `password`: a number of the built task's own, never the value.
    Inline(u64),
}

impl PasswordKey {
    fn of(source: &SqlSourceConfig) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        match source.password() {
            None => Self::None,
            Some(SecretSource::File(path)) => Self::File(path),
            Some(SecretSource::Inline(_)) => Self::Inline(NEXT.fetch_add(1, Ordering::Relaxed)),
        }
    }
}

impl Connection {
    /// The connection keys of `source`, and where its password comes from.
    pub fn new(backend: Backend, source: &SqlSourceConfig) -> Self {
        Self {
            backend,
            url: source.url.clone(),
            tls: source.tls,
            ca_bundle: source.ca_bundle.clone(),
            max_connections: source.max_connections,
            connect_timeout: source.connect_timeout.get(),
            password: PasswordKey::of(source),
        }
    }

    /// The URL without its password, for messages.
    pub fn shown(&self) -> String {
        redact::url(&self.url)
    }

    fn pool_options<DB: sqlx::Database>(&self) -> PoolOptions<DB> {
        PoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.connect_timeout)
            // A connection the database dropped (a restart) is noticed before it is used.
            .test_before_acquire(true)
    }

    fn configuration(&self, source: sqlx::Error) -> Error {
        Error::Configuration {
            url: self.shown(),
            source,
        }
    }

    fn postgres(&self, password: Option<&SecretString>) -> Result<PgConnectOptions, Error> {
        crate::postgres::connect_options(&self.url, self.tls, self.ca_bundle.as_deref(), password)
            .map_err(|e| self.configuration(e))
    }

    fn mysql(&self, password: Option<&SecretString>) -> Result<MySqlConnectOptions, Error> {
        // sqlx reads only the URL's parts, not its scheme; `mariadb://` is ours.
        let url = self.url.replacen("mariadb:", "mysql:", 1);
        let mut options = MySqlConnectOptions::from_str(&url)
            .map_err(|e| self.configuration(e))?
            .ssl_mode(match self.tls {
                Some(Tls::Require) => MySqlSslMode::VerifyIdentity,
                Some(Tls::Disable) => MySqlSslMode::Disabled,
                Some(Tls::Prefer) | None => MySqlSslMode::Preferred,
            })
            .disable_statement_logging();
        if let Some(bundle) = &self.ca_bundle {
            options = options.ssl_ca(bundle);
        }
        if let Some(password) = password {
            options = options.password(password.expose_secret());
        }
        Ok(options)
    }

    fn sqlite(&self) -> Result<SqliteConnectOptions, Error> {
        // Read only: an extractor never writes to the file it reads.
        Ok(SqliteConnectOptions::from_str(&self.url)
            .map_err(|e| self.configuration(e))?
            .read_only(true)
            .disable_statement_logging())
    }
}

/// Hand-written: the URL may hold a password.
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.shown())
            .field("tls", &self.tls)
            .field("max_connections", &self.max_connections)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

/// The pools of one registry, by [`Connection`]: weak handles, the tasks hold the pools.
#[derive(Default)]
pub struct Pools {
    open: Mutex<HashMap<Connection, Weak<SharedPool>>>,
}

/// Only how many: a pool's connect options hold the password.
impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").field("open", &self.live()).finish()
    }
}

impl Pools {
    /// The pool of `connection`, shared with the tasks built with the same one that still
    /// exist, or a new one (not made until its first [`SharedPool::get`]).
    pub fn share(&self, connection: Connection) -> Arc<SharedPool> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = open.get(&connection).and_then(Weak::upgrade) {
            return shared;
        }
        open.retain(|_, shared| shared.strong_count() > 0);
        let shared = Arc::new(SharedPool {
            connection: connection.clone(),
            pool: Mutex::new(None),
        });
        open.insert(connection, Arc::downgrade(&shared));
        shared
    }

    /// How many pools are still held by a task.
    fn live(&self) -> usize {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.values()
            .filter(|shared| shared.strong_count() > 0)
            .count()
    }
}

/// One database's pool, held by each built task that reads it: made at the first run of one of
/// them, closed when the last of them is dropped.
pub struct SharedPool {
    connection: Connection,
    pool: Mutex<Option<Pool>>,
}

/// Hand-written: a pool's connect options hold the password.
impl std::fmt::Debug for SharedPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = self.pool.lock().is_ok_and(|pool| pool.is_some());
        f.debug_struct("SharedPool")
            .field("connection", &self.connection)
            .field("made", &made)
            .finish()
    }
}

impl SharedPool {
    /// How to reach the database.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// The pool, made on first use (without connecting), with `password` read now and used for
    /// every connection the pool opens from now on.
    pub fn get(&self, password: Option<&SecretSource>) -> Result<Pool, Error> {
        let password = password
            .map(SecretSource::read)
            .transpose()
            .map_err(Error::Password)?;
        let password = password.as_ref();
        let connection = &self.connection;
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = &*pool {
            match pool {
                Pool::Postgres(pool) => pool.set_connect_options(connection.postgres(password)?),
                Pool::MySql(pool) => pool.set_connect_options(connection.mysql(password)?),
                Pool::Sqlite(_) => {}
            }
            return Ok(pool.clone());
        }
        let made = match connection.backend {
            Backend::Postgres => Pool::Postgres(
                connection
                    .pool_options()
                    .connect_lazy_with(connection.postgres(password)?),
            ),
            Backend::MySql => Pool::MySql(
                connection
                    .pool_options()
                    .connect_lazy_with(connection.mysql(password)?),
            ),
            Backend::Sqlite => Pool::Sqlite(
                connection
                    .pool_options()
                    .connect_lazy_with(connection.sqlite()?),
            ),
        };
        Ok(pool.insert(made).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(url: &str) -> Connection {
        with_password(url, "")
    }

    /// The connection of `url` with the source keys `extra` (`, password: ...`).
    fn with_password(url: &str, extra: &str) -> Connection {
        let source: SqlSourceConfig =
            serde_yaml::from_str(&format!("{{url: '{url}', query: 'SELECT 1'{extra}}}")).unwrap();
        Connection::new(Backend::from_url(url).unwrap(), &source)
    }

    #[test]
    fn tasks_share_a_pool_only_when_their_passwords_cannot_differ() {
        let pools = Pools::default();
        let url = "postgres://x@h/db";
        let file = |path| pools.share(with_password(url, &format!(", password-file: {path}")));
        let (a, again, b) = (file("/run/a"), file("/run/a"), file("/run/b"));
        assert!(Arc::ptr_eq(&a, &again), "one file, one pool");
        assert!(!Arc::ptr_eq(&a, &b), "another file, another pool");
        let inline = || pools.share(with_password(url, ", password: s3cret-Pw-7"));
        let (first, second) = (inline(), inline());
        assert!(
            !Arc::ptr_eq(&first, &second),
            "an inline password, a pool of its own"
        );
        assert!(!Arc::ptr_eq(&first, &pools.share(connection(url))));
        let debug = format!("{first:?} {pools:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[tokio::test]
    async fn a_pool_no_task_holds_is_dropped() {
        let pools = Pools::default();
        let first = pools.share(connection("postgres://x@h/one"));
        let again = pools.share(connection("postgres://x@h/one"));
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same connection shares a pool"
        );
        first.get(None).unwrap();
        let pool = Arc::downgrade(&first);
        assert_eq!(pools.live(), 1);

        drop((first, again));
        assert!(pool.upgrade().is_none(), "the pool went with its tasks");
        assert_eq!(pools.live(), 0);
        let other = pools.share(connection("postgres://x@h/two"));
        let open = pools.open.lock().unwrap();
        assert_eq!(open.len(), 1, "the dead handle was pruned");
        assert!(open.contains_key(other.connection()));
    }
}
