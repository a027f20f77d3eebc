//! [`Pools`]: one connection pool per distinct database, shared by the tasks that read it.
//!
//! Why shared: ten tasks reading one database should hold a handful of connections between them,
//! not ten pools' worth, and a database restart should be noticed (and the stale connections
//! dropped) once. The registry's `sql` builder owns one `Pools`, so every task of a config shares
//! it; nothing is connected until the first run (building opens nothing, so `validate` is free).
//!
//! A pool is keyed by the URL and the connection keys (`tls`, `ca-bundle`, `max-connections`,
//! `connect-timeout`). The password is read at every run and handed to the pool for the
//! connections it opens from then on, so a rotated `password-file` needs no restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
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
}

impl Connection {
    /// The connection keys of `source`.
    pub fn new(backend: Backend, source: &SqlSourceConfig) -> Self {
        Self {
            backend,
            url: source.url.clone(),
            tls: source.tls,
            ca_bundle: source.ca_bundle.clone(),
            max_connections: source.max_connections,
            connect_timeout: source.connect_timeout.get(),
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
            .finish_non_exhaustive()
    }
}

/// The pools of one registry, by [`Connection`].
#[derive(Default)]
pub struct Pools {
    open: Mutex<HashMap<Connection, Pool>>,
}

/// Only how many: a pool's connect options hold the password.
impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = self.open.lock().map_or(0, |open| open.len());
        f.debug_struct("Pools").field("open", &open).finish()
    }
}

impl Pools {
    /// The pool for `connection`, made on first use (without connecting), with `password` read
    /// now and used for every connection the pool opens from now on.
    pub fn get(
        &self,
        connection: &Connection,
        password: Option<&SecretSource>,
    ) -> Result<Pool, Error> {
        let password = password
            .map(SecretSource::read)
            .transpose()
            .map_err(Error::Password)?;
        let password = password.as_ref();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = open.get(connection) {
            match pool {
                Pool::Postgres(pool) => pool.set_connect_options(connection.postgres(password)?),
                Pool::MySql(pool) => pool.set_connect_options(connection.mysql(password)?),
                Pool::Sqlite(_) => {}
            }
            return Ok(pool.clone());
        }
        let pool = match connection.backend {
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
        open.insert(connection.clone(), pool.clone());
        Ok(pool)
    }
}
