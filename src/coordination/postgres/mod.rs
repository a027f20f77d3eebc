//! The PostgreSQL backend: membership, task leases and fenced state as rows, every time the
//! server's `now()`.
//!
//! - `tapline_members`: one row per replica, its heartbeat's expiry.
//! - `tapline_leases`: one row per task (holder, generation, expiry). Renewing all of a
//!   replica's leases is one `UPDATE`; taking free ones is one `UPDATE … FOR UPDATE SKIP LOCKED`,
//!   so replicas that take at the same moment never take the same lease.
//! - `tapline_state` (`state.rs`): each task's state, written in one statement that locks and
//!   checks the lease row (holder, generation, not expired).
//!
//! A round costs two statements (heartbeat, renewal) whatever the number of tasks, so the load
//! on the database is about `2 × replicas / renew period` queries per second.

mod schema;
mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

use super::coordinator::{Coordinator, Error, Lease};
use crate::config::PostgresConnection;
use crate::redact;
pub use state::PostgresState;

/// Leases and membership in one PostgreSQL database.
#[derive(Debug)]
pub struct PostgresCoordinator {
    pool: PgPool,
    connection: PostgresConnection,
    replica: String,
    lease: Duration,
    /// Set after a failed request: the password is read again before the next one (rotated
    /// secrets are picked up without a restart).
    failed: AtomicBool,
}

impl PostgresCoordinator {
    /// A coordinator for `replica` with leases of `lease`; connects lazily.
    pub fn new(
        connection: PostgresConnection,
        replica: String,
        lease: Duration,
    ) -> Result<Self, Error> {
        let options = options(&connection)?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            // A request that cannot get a connection within a renew period is a failed round.
            .acquire_timeout(lease / 3)
            // A connection the database dropped (a restart) is noticed before it is used.
            .test_before_acquire(true)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            connection,
            replica,
            lease,
            failed: AtomicBool::new(false),
        })
    }

    /// The state table, on the same connections.
    pub fn state(&self) -> PostgresState {
        PostgresState::new(self.pool.clone(), self.replica.clone(), self.shown())
    }

    fn shown(&self) -> String {
        redact::url(&self.connection.url)
    }

    fn seconds(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    fn failure(&self, error: sqlx::Error) -> Error {
        self.failed.store(true, Ordering::Release);
        Error::Backend {
            backend: self.shown(),
            message: error.to_string(),
        }
    }

    /// After a failure, reads the password again for the connections opened from now on.
    fn refresh_password(&self) -> Result<(), Error> {
        if self.failed.swap(false, Ordering::AcqRel) {
            self.pool.set_connect_options(options(&self.connection)?);
        }
        Ok(())
    }

    async fn migrate(&self) -> Result<i32, Error> {
        schema::migrate(&self.pool)
            .await
            .map_err(|failure| match failure {
                schema::Failure::Sql(error) => self.failure(error),
                schema::Failure::Newer(version) => Error::Schema {
                    backend: self.shown(),
                    message: format!(
                        "version {version} was written by a newer tapline; upgrade this replica"
                    ),
                },
            })
    }
}

fn options(connection: &PostgresConnection) -> Result<sqlx::postgres::PgConnectOptions, Error> {
    let password = connection
        .password
        .as_ref()
        .map(|source| source.read())
        .transpose()
        .map_err(Error::Password)?;
    crate::postgres::connect_options(
        &connection.url,
        connection.tls,
        connection.ca_bundle.as_deref(),
        password.as_ref(),
    )
    .map_err(|error| Error::Backend {
        backend: redact::url(&connection.url),
        message: error.to_string(),
    })
}

fn leases(rows: Vec<sqlx::postgres::PgRow>) -> Vec<Lease> {
    rows.into_iter()
        .map(|row| Lease {
            task: row.get(0),
            generation: row.get(1),
        })
        .collect()
}

fn names(tasks: &[impl AsRef<str>]) -> Vec<String> {
    tasks.iter().map(|t| t.as_ref().to_string()).collect()
}

#[async_trait::async_trait]
impl Coordinator for PostgresCoordinator {
    /// Connects and reads the schema version, changing nothing: what `tapline validate
    /// --check-auth` asks; returns a line to show.
    async fn check(&self) -> Result<String, Error> {
        let version = schema::version(&self.pool)
            .await
            .map_err(|e| self.failure(e))?;
        let schema = match version {
            Some(version) => format!("schema version {version}"),
            None => "no schema yet; tapline run creates it".to_string(),
        };
        Ok(format!("coordination OK: {} ({schema})", self.shown()))
    }

    async fn join(&self, tasks: &[String]) -> Result<(), Error> {
        self.refresh_password()?;
        self.migrate().await?;
        sqlx::query(
            "INSERT INTO tapline_leases (task) SELECT unnest($1::text[]) ON CONFLICT (task) DO NOTHING",
        )
        .bind(tasks)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failure(e))?;
        Ok(())
    }

    async fn heartbeat(&self) -> Result<usize, Error> {
        self.refresh_password()?;
        // The CTEs see the table as it was before the statement: count the others, add this one.
        let others: i64 = sqlx::query_scalar(
            "WITH beat AS (
                 INSERT INTO tapline_members (replica, expires_at)
                 VALUES ($1, now() + make_interval(secs => $2))
                 ON CONFLICT (replica) DO UPDATE SET expires_at = excluded.expires_at
             ), gone AS (
                 DELETE FROM tapline_members WHERE expires_at < now() - interval '1 hour'
             )
             SELECT count(*) FROM tapline_members WHERE expires_at > now() AND replica <> $1",
        )
        .bind(&self.replica)
        .bind(self.seconds())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.failure(e))?;
        Ok(others as usize + 1)
    }

    async fn renew(&self, held: &[Lease]) -> Result<Vec<Lease>, Error> {
        let tasks: Vec<String> = held.iter().map(|l| l.task.clone()).collect();
        let rows = sqlx::query(
            "UPDATE tapline_leases SET expires_at = now() + make_interval(secs => $2)
             WHERE holder = $1 AND task = ANY($3) AND expires_at > now()
             RETURNING task, generation",
        )
        .bind(&self.replica)
        .bind(self.seconds())
        .bind(&tasks)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.failure(e))?;
        Ok(leases(rows))
    }

    async fn acquire(&self, tasks: &[String], max: usize) -> Result<Vec<Lease>, Error> {
        if tasks.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "UPDATE tapline_leases AS l
             SET holder = $1, generation = l.generation + 1,
                 expires_at = now() + make_interval(secs => $2)
             FROM (SELECT task FROM tapline_leases
                   WHERE task = ANY($3) AND expires_at <= now()
                   ORDER BY random() LIMIT $4
                   FOR UPDATE SKIP LOCKED) AS free
             WHERE l.task = free.task AND l.expires_at <= now()
             RETURNING l.task, l.generation",
        )
        .bind(&self.replica)
        .bind(self.seconds())
        .bind(names(tasks))
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.failure(e))?;
        Ok(leases(rows))
    }

    async fn release(&self, tasks: &[String]) -> Result<(), Error> {
        sqlx::query(
            "UPDATE tapline_leases SET holder = NULL, expires_at = '-infinity'
             WHERE holder = $1 AND task = ANY($2)",
        )
        .bind(&self.replica)
        .bind(names(tasks))
        .execute(&self.pool)
        .await
        .map_err(|e| self.failure(e))?;
        Ok(())
    }

    async fn leave(&self) -> Result<(), Error> {
        sqlx::query(
            "WITH released AS (
                 UPDATE tapline_leases SET holder = NULL, expires_at = '-infinity' WHERE holder = $1
             )
             DELETE FROM tapline_members WHERE replica = $1",
        )
        .bind(&self.replica)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failure(e))?;
        Ok(())
    }
}
