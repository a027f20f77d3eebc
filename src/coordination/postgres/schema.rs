//! The tables of the PostgreSQL backend, created and migrated by tapline on start.
//!
//! Versioned: `tapline_schema` records the version; each entry of [`MIGRATIONS`] moves one
//! version up and is never edited once released (add a new entry instead). Idempotent and safe
//! when replicas start together: the whole migration runs in one transaction that first takes a
//! transaction-level advisory lock, so the second replica waits, then finds the work done. A
//! database migrated by a newer tapline is refused rather than guessed at.

use sqlx::PgPool;

/// The advisory lock key of migrations: "tapline" in ASCII, as a number.
const LOCK: i64 = 0x0074_6170_6c69_6e65;

/// Each migration (its statements), version 1 first.
const MIGRATIONS: &[&[&str]] = &[
    // 1: members, one lease row per task, and the state written under the leases.
    &[
        "CREATE TABLE tapline_members (
             replica text PRIMARY KEY,
             expires_at timestamptz NOT NULL
         )",
        "CREATE TABLE tapline_leases (
             task text PRIMARY KEY,
             holder text,
             generation bigint NOT NULL DEFAULT 0,
             expires_at timestamptz NOT NULL DEFAULT '-infinity'
         )",
        "CREATE INDEX tapline_leases_holder ON tapline_leases (holder)",
        "CREATE TABLE tapline_state (
             task text PRIMARY KEY,
             state jsonb NOT NULL,
             generation bigint NOT NULL,
             updated_at timestamptz NOT NULL DEFAULT now()
         )",
    ],
];

/// What went wrong, with the database's message.
pub(super) enum Failure {
    /// A statement failed.
    Sql(sqlx::Error),
    /// The database is at a version this tapline does not know.
    Newer(i32),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Self::Sql(error)
    }
}

/// Brings the schema to the newest version; returns it.
pub(super) async fn migrate(pool: &PgPool) -> Result<i32, Failure> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK)
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('tapline_schema') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        sqlx::query("CREATE TABLE tapline_schema (version integer NOT NULL)")
            .execute(&mut *tx)
            .await?;
    }
    let version: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM tapline_schema")
        .fetch_one(&mut *tx)
        .await?;
    let version = version.unwrap_or(0);
    let newest = MIGRATIONS.len() as i32;
    if version > newest {
        return Err(Failure::Newer(version));
    }
    for version in version + 1..=newest {
        for statement in MIGRATIONS[version as usize - 1] {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO tapline_schema (version) VALUES ($1)")
            .bind(version)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(newest)
}

/// The version the database is at, `None` before the first migration.
pub(super) async fn version(pool: &PgPool) -> Result<Option<i32>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('tapline_schema') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(None);
    }
    sqlx::query_scalar("SELECT max(version) FROM tapline_schema")
        .fetch_one(pool)
        .await
}
