//! `type: sql`: read a database incrementally (PostgreSQL, MySQL/MariaDB, SQLite) and deliver
//! its rows as JSON records to the task's sink.
//!
//! ```yaml
//! - name: orders
//!   type: sql
//!   schedule: {interval: 1m}
//!   source:
//!     url: postgres://extractor@db.example.com:5432/plant
//!     password-file: /run/secrets/db-password
//!     query: |
//!       SELECT id, updated_at, status, amount FROM orders
//!       WHERE (updated_at, id) > ({cursor.updated_at}, {cursor.id})
//!       ORDER BY updated_at, id
//!       LIMIT {limit}
//!     cursor: [updated_at, id]
//!     initial-cursor: {updated_at: "1970-01-01T00:00:00Z", id: 0}
//!     page-size: 1000
//!   sink: {type: jsonl, path: out/orders.jsonl}
//! ```
//!
//! Why keyset pages with bound parameters: the cursor is the last delivered row's cursor
//! columns, bound (never spliced) into the next query, so rows sharing an `updated_at` across a
//! page boundary are neither lost nor sent twice, and memory holds about two pages (the one being
//! delivered and the next, read ahead), whatever the table's size.
//!
//! The pieces: `config` (the keys and their rules), `placeholders` (query text to bind
//! parameters), `database` (which database a URL names), `pool` (one pool per database,
//! shared), `reader` (pages read on a task of their own, ahead of the sink), `fetch` (one
//! query's rows in chunks), `postgres`, `mysql` and `sqlite`
//! (each database's rows to JSON and cursor values back to parameters), `value` (the
//! conversions they share), `cursor` (what is saved), `extract` (the run), `error`.

mod config;
mod cursor;
mod database;
mod error;
mod extract;
mod fetch;
mod mysql;
mod placeholders;
mod pool;
mod postgres;
mod reader;
mod sqlite;
mod value;

use std::sync::Arc;

pub use self::config::{SqlConfig, SqlSourceConfig, Tls};
pub use self::error::Error;

use self::fetch::{Bind, Query};
use self::placeholders::Rewritten;
use self::pool::{Connection, Pool, Pools, SharedPool};
use crate::config::BuildError;
use crate::runner::{Task, TaskContext, TaskError};

/// The built task.
#[derive(Debug)]
pub struct Sql {
    source: SqlSourceConfig,
    /// The query as written and as sent (its text and what each parameter binds), shared by
    /// every query of the task's runs.
    written: Arc<(String, Rewritten)>,
    /// The pool of its database, shared with the other tasks that read it.
    pool: Arc<SharedPool>,
}

/// The `sql` task type's build function, with one set of pools for every task it builds: tasks
/// reading the same database share its connections.
pub fn builder() -> impl Fn(SqlConfig) -> Result<Sql, BuildError> + Send + Sync + 'static {
    let pools = Pools::default();
    move |config| build(config, &pools)
}

/// Builds a `sql` task whose pools are `pools`, checking every rule of its keys.
pub fn build(config: SqlConfig, pools: &Pools) -> Result<Sql, BuildError> {
    let source = config.source;
    let (backend, template) = config::check(&source)?;
    let rewritten = template.rewrite(backend.style());
    Ok(Sql {
        written: Arc::new((source.query.clone(), rewritten)),
        pool: pools.share(Connection::new(backend, &source)),
        source,
    })
}

impl Sql {
    /// The pool of this task's database, with the password as it is now.
    fn pool(&self) -> Result<Pool, Error> {
        self.pool.get(self.source.password().as_ref())
    }

    /// How the reader pages from `start` (none for a snapshot).
    fn plan(&self, start: Option<cursor::Cursor>) -> reader::Plan {
        reader::Plan {
            query: self.query(Vec::new()),
            params: self.written.1.binds.clone(),
            columns: self.source.cursor.clone(),
            page_size: self.source.page_size,
            start,
        }
    }

    /// The query with `binds`.
    fn query(&self, binds: Vec<Bind>) -> Query {
        Query {
            binds,
            written: self.written.clone(),
            url: self.pool.connection().shown().into(),
        }
    }
}

#[async_trait::async_trait]
impl Task for Sql {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        extract::run(self, &ctx).await
    }

    /// Connects and prepares the query: a wrong password, an unknown table or bad SQL is found
    /// by `validate --check-auth` instead of the first run.
    async fn check(&self) -> Result<(), TaskError> {
        let pool = self.pool().map_err(failed)?;
        let query = self.query(Vec::new());
        fetch::prepare(&pool, &query).await.map_err(failed)
    }
}

/// A failed read of the database, as the run's error.
fn failed(error: Error) -> TaskError {
    TaskError::with("reading the database failed", error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::sql::placeholders::{Style, Template};

    fn source(yaml: &str) -> Result<Sql, BuildError> {
        build(serde_yaml::from_str(yaml).unwrap(), &Pools::default())
    }

    const KEYSET: &str =
        "SELECT * FROM t WHERE (u, id) > ({cursor.u}, {cursor.id}) ORDER BY u, id LIMIT {limit}";

    fn keyed(extra: &str) -> String {
        format!(
            "source: {{url: 'postgres://x@h/db', query: '{KEYSET}', cursor: [u, id], initial-cursor: {{u: 0, id: 0}}{extra}}}"
        )
    }

    #[test]
    fn a_keyset_query_builds() {
        let task = source(&keyed("")).unwrap();
        assert!(task.written.1.text.contains("> ($1, $2)"));
    }

    #[test]
    fn placeholders_are_checked_against_the_cursor_at_source_query() {
        let error = source(
            "source: {url: 'postgres://x@h/db', query: 'SELECT * FROM t WHERE v > {cursor.v} LIMIT {limit}', cursor: [id], initial-cursor: {id: 0}}",
        )
        .unwrap_err();
        assert_eq!(error.key(), Some("source.query"), "{error}");
        assert!(
            error
                .to_string()
                .contains("\"v\" is not one of the cursor columns"),
            "{error}"
        );
        let error =
            source("source: {url: 'postgres://x@h/db', query: 'SELECT {cursor.id}'}").unwrap_err();
        assert!(error.to_string().contains("needs source.cursor"), "{error}");
        let error = source("source: {url: 'postgres://x@h/db', query: 'SELECT 1 LIMIT {limit}'}")
            .unwrap_err();
        assert!(
            error.to_string().contains("{limit} is for paging"),
            "{error}"
        );
        let error =
            source("source: {url: 'postgres://x@h/db', query: 'SELECT {nope}'}").unwrap_err();
        assert_eq!(error.key(), Some("source.query"));
    }

    #[test]
    fn the_initial_cursor_gives_every_cursor_column() {
        let error =
            source(&keyed("").replace("initial-cursor: {u: 0, id: 0}", "initial-cursor: {u: 0}"))
                .unwrap_err();
        assert_eq!(error.key(), Some("source.initial-cursor"), "{error}");
    }

    #[test]
    fn sqlite_takes_no_network_keys_and_debug_hides_passwords() {
        let error = source("source: {url: 'sqlite:///tmp/x.db', query: 'SELECT 1', tls: require}")
            .unwrap_err();
        assert_eq!(error.key(), Some("source.tls"));
        let task = source(&keyed(", password: hunter2-pw")).unwrap();
        let in_url = source(&keyed("").replace("x@h", "x:url-pw-9@h")).unwrap();
        let debug = format!("{task:?} {in_url:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("url-pw-9"),
            "{debug}"
        );
    }

    #[test]
    fn an_error_position_points_into_the_query_as_written() {
        let written = "SELECT {cursor.id},\n  nope FROMM t";
        let rewritten = Template::parse(written, Style::Dollar)
            .unwrap()
            .rewrite(Style::Dollar);
        let chars = rewritten.text.find("FROMM").unwrap() + 1;
        assert_eq!(
            rewritten.position(written, chars),
            " at line 2, column 8 of source.query"
        );
    }
}
