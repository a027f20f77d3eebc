//! [`PostgresState`]: task state in `tapline_state`, each write fenced by the task's lease row.

use serde_json::Value;
use sqlx::PgPool;

use crate::coordination::coordinator::{Error, Lease, SharedState};

/// The state table of the PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PostgresState {
    pool: PgPool,
    replica: String,
    shown: String,
}

impl PostgresState {
    pub(super) fn new(pool: PgPool, replica: String, shown: String) -> Self {
        Self {
            pool,
            replica,
            shown,
        }
    }

    fn failure(&self, error: sqlx::Error) -> Error {
        Error::Backend {
            backend: self.shown.clone(),
            message: error.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl SharedState for PostgresState {
    async fn load(&self, task: &str) -> Result<Option<Value>, Error> {
        sqlx::query_scalar("SELECT state FROM tapline_state WHERE task = $1")
            .bind(task)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failure(e))
    }

    /// One statement, so one transaction: the lease row is locked (a replica taking the lease
    /// over waits for this write, then sees it) and must still be this replica's, at this
    /// generation, unexpired on the server's clock; otherwise nothing is written. The row keeps
    /// the generation the writer holds (equal to the lease's when written), so an audit can
    /// tell a write the check should have refused.
    async fn store(&self, lease: &Lease, namespace: &Value) -> Result<(), Error> {
        let written = sqlx::query(
            "WITH lease AS (
                 SELECT generation FROM tapline_leases
                 WHERE task = $1 AND holder = $2 AND generation = $3 AND expires_at > now()
                 FOR UPDATE
             )
             INSERT INTO tapline_state (task, state, generation, updated_at)
             SELECT $1, $4, $3, now() FROM lease
             ON CONFLICT (task) DO UPDATE
             SET state = excluded.state, generation = excluded.generation, updated_at = now()
             WHERE tapline_state.generation <= excluded.generation",
        )
        .bind(&lease.task)
        .bind(&self.replica)
        .bind(lease.generation)
        .bind(namespace)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failure(e))?;
        match written.rows_affected() {
            0 => Err(Error::Fenced {
                task: lease.task.clone(),
            }),
            _ => Ok(()),
        }
    }
}
