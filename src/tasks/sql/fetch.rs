//! One query's rows as JSON records, in chunks: what the databases share ([`Readers`] picks a
//! reader per column once, [`forward`] sends chunks of rows converted on tasks of their own),
//! and what a query is sent with ([`Query`], [`Bind`]). The paging around it is `reader.rs`.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use sqlx::{Column as _, Row, TypeInfo as _};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::cursor::Cursor;
use super::error::Error;
use super::placeholders::Rewritten;
use super::pool::Pool;
use super::reader::Message;
use super::{mysql, postgres, sqlite};

/// Records per chunk handed from the reader to the run.
pub const CHUNK: usize = 256;

/// A result column: its name and the database's name for its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name (the record's key).
    pub name: String,
    /// The database's type name, such as `TIMESTAMPTZ` or `DATETIME`.
    pub type_name: String,
}

/// Some rows of a query: their records, being converted on a task of their own (see
/// [`forward`]), and the cursor of the last of them.
#[derive(Debug)]
pub struct Chunk {
    /// One JSON object per row, once converted; a value that cannot be read is an error.
    pub records: JoinHandle<Result<Vec<Map<String, Value>>, Error>>,
    /// The cursor of the last of them (when the task has cursor columns).
    pub last: Option<Cursor>,
}

/// What [`forward`] sent of one query.
#[derive(Debug, Default)]
pub struct Sent {
    /// Rows sent.
    pub rows: u64,
    /// The cursor of the last row sent.
    pub last: Option<Cursor>,
    /// The run stopped listening: stop reading.
    pub gone: bool,
}

/// A value to bind to one of the query's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Bind {
    /// What it is for, in messages: `{cursor.id}` or `{limit}`.
    pub label: String,
    /// The value as JSON (as saved in the cursor, or the page size).
    pub value: Value,
    /// The database's type name of the column it came from, when known.
    pub type_name: Option<String>,
}

/// What a query is sent with.
#[derive(Debug, Clone)]
pub struct Query {
    /// The values, in parameter order.
    pub binds: Vec<Bind>,
    /// The query as written, and as sent: the text with bind parameters, and how it maps back
    /// to the written one (for error positions). Shared, never copied, by every query of a task.
    pub written: Arc<(String, Rewritten)>,
    /// The URL, redacted, for messages.
    pub url: Arc<str>,
}

impl Query {
    /// The text sent: the query with bind parameters.
    pub fn sql(&self) -> &str {
        &self.written.1.text
    }

    /// ` at line L, column C of source.query` for the 1-based character `chars` of [`Query::sql`].
    pub fn position(&self, chars: usize) -> String {
        let (written, rewritten) = &*self.written;
        rewritten.position(written, chars)
    }

    /// `error` in this task's terms, for `database`.
    pub fn error(&self, database: &'static str, error: sqlx::Error) -> Error {
        super::error::from_sqlx(error, database, &self.url, &|chars| self.position(chars))
    }
}

/// Reads `query` from `pool` into `sender`, each chunk with the cursor (of `cursor`'s columns)
/// of its last row.
pub async fn read(
    pool: &Pool,
    query: &Query,
    cursor: &[String],
    sender: &Sender,
) -> Result<Sent, Error> {
    match pool {
        Pool::Postgres(pool) => postgres::read(pool, query, cursor, sender).await,
        Pool::MySql(pool) => mysql::read(pool, query, cursor, sender).await,
        Pool::Sqlite(pool) => sqlite::read(pool, query, cursor, sender).await,
    }
}

/// Where chunks go.
pub type Sender = mpsc::Sender<Result<Message, Error>>;

/// Checks `query` against the database without reading rows: connects and prepares it.
pub async fn prepare(pool: &Pool, query: &Query) -> Result<(), Error> {
    match pool {
        Pool::Postgres(pool) => prepare_on(pool, query, postgres::NAME).await,
        Pool::MySql(pool) => prepare_on(pool, query, mysql::NAME).await,
        Pool::Sqlite(pool) => prepare_on(pool, query, sqlite::NAME).await,
    }
}

async fn prepare_on<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    query: &Query,
    database: &'static str,
) -> Result<(), Error>
where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    use sqlx::Executor;
    pool.prepare(query.sql())
        .await
        .map(drop)
        .map_err(|e| query.error(database, e))
}

/// Runs `query` with `arguments` on a connection of `pool` and forwards its rows (for the
/// databases whose parameters need no preparing first).
pub async fn rows<'q, DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
    query: &'q Query,
    database: &'static str,
    arguments: <DB as sqlx::Database>::Arguments<'q>,
    reader: fn(&DB::Column) -> Option<Read<DB::Row>>,
    cursor: &[String],
    sender: &Sender,
) -> Result<Sent, Error>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    use futures::TryStreamExt;
    let error = |e| query.error(database, e);
    let mut connection = pool.acquire().await.map_err(error)?;
    let rows = sqlx::query_with(query.sql(), arguments)
        .fetch(&mut *connection)
        .map_err(error);
    forward(rows, reader, cursor, sender).await
}

/// Reads column `index` of a row as JSON.
pub type Read<R> = fn(&R, usize) -> Result<Value, sqlx::Error>;

/// How each column of a query's rows is read, found once from the first row.
pub struct Readers<R> {
    columns: Arc<[Column]>,
    reads: Vec<Read<R>>,
}

impl<R: Row> Readers<R> {
    /// A reader for each column of `row`, as `reader` chooses by the column's type; a column of
    /// a type without one is an error before any row is converted.
    pub fn new(
        row: &R,
        reader: fn(&<R::Database as sqlx::Database>::Column) -> Option<Read<R>>,
    ) -> Result<Self, Error> {
        let mut columns = Vec::new();
        let mut reads = Vec::new();
        for column in row.columns() {
            let type_name = column.type_info().name().to_string();
            let name = column.name().to_string();
            let read = reader(column).ok_or_else(|| Error::Unsupported {
                column: name.clone(),
                type_name: type_name.clone(),
            })?;
            columns.push(Column { name, type_name });
            reads.push(read);
        }
        Ok(Self {
            columns: columns.into(),
            reads,
        })
    }

    /// `rows` as records.
    fn records(&self, rows: &[R]) -> Result<Vec<Map<String, Value>>, Error> {
        rows.iter().map(|row| self.record(row)).collect()
    }

    /// The cursor (of the columns `cursor`) of `row`, if there is a row and `cursor` columns;
    /// only those columns are read.
    fn cursor(&self, row: Option<&R>, cursor: &[String]) -> Result<Option<Cursor>, Error> {
        let Some(row) = row.filter(|_| !cursor.is_empty()) else {
            return Ok(None);
        };
        let mut values = Map::new();
        for (index, column) in self.columns.iter().enumerate() {
            if cursor.contains(&column.name) {
                values.insert(column.name.clone(), self.read(row, index)?);
            }
        }
        Cursor::of(&values, &self.columns, cursor).map(Some)
    }

    /// `row` as a record.
    fn record(&self, row: &R) -> Result<Map<String, Value>, Error> {
        let mut record = Map::new();
        for (index, column) in self.columns.iter().enumerate() {
            record.insert(column.name.clone(), self.read(row, index)?);
        }
        Ok(record)
    }

    /// Column `index` of `row` as JSON.
    fn read(&self, row: &R, index: usize) -> Result<Value, Error> {
        self.reads[index](row, index).map_err(|source| {
            let column = &self.columns[index];
            Error::Decode {
                column: column.name.clone(),
                type_name: column.type_name.clone(),
                source,
            }
        })
    }
}

/// Sends the rows of `rows` in chunks, each converted by the readers `reader` chooses on a task
/// of its own and with the cursor of its last row; stops early when the run has gone.
///
/// Why convert on other tasks: the next page's query waits for this page's last row, so this
/// loop is the run's critical path. Left here, converting (two thirds of a run's CPU) would
/// take turns with receiving; on their own tasks, chunks are converted on the other cores
/// while this loop receives the next rows. The run awaits the chunks in order. At most a chunk
/// per core is converted at a time, so a large page does not queue hundreds of conversions
/// ahead of the other tasks' work on the runtime's threads.
pub async fn forward<R: Row>(
    rows: impl Stream<Item = Result<R, Error>>,
    reader: fn(&<R::Database as sqlx::Database>::Column) -> Option<Read<R>>,
    cursor: &[String],
    sender: &Sender,
) -> Result<Sent, Error> {
    let mut rows = std::pin::pin!(rows);
    let mut readers: Option<Arc<Readers<R>>> = None;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut sent = Sent::default();
    let converting = Arc::new(Semaphore::new(crate::cores::cores()));
    loop {
        let row = rows.next().await.transpose()?;
        let ended = row.is_none();
        if let Some(row) = row {
            if readers.is_none() {
                readers = Some(Arc::new(Readers::new(&row, reader)?));
            }
            chunk.push(row);
        }
        let full = chunk.len() == CHUNK || (ended && !chunk.is_empty());
        if let (true, Some(readers)) = (full, &readers) {
            let rows = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            let last = readers.cursor(rows.last(), cursor)?;
            sent.rows += rows.len() as u64;
            sent.last = last.clone();
            let readers = readers.clone();
            let permit = converting.clone().acquire_owned().await;
            let permit = permit.expect("the semaphore is never closed");
            let records = tokio::spawn(async move {
                let _permit = permit;
                readers.records(&rows)
            });
            if sender
                .send(Ok(Message::Rows(Chunk { records, last })))
                .await
                .is_err()
            {
                sent.gone = true;
                return Ok(sent);
            }
        }
        if ended {
            return Ok(sent);
        }
    }
}

/// A value that does not fit the parameter's type.
pub fn bind_error(bind: &Bind, type_name: &str, reason: impl ToString) -> Error {
    Error::Bind {
        column: bind.label.clone(),
        value: bind.value.to_string(),
        type_name: type_name.to_string(),
        reason: reason.to_string(),
    }
}

/// Column `index` of `row` as `T`, through `to`; NULL as null.
pub fn get<'r, R, T>(
    row: &'r R,
    index: usize,
    to: impl Fn(T) -> Value,
) -> Result<Value, sqlx::Error>
where
    R: Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    Ok(row.try_get::<Option<T>, _>(index)?.map_or(Value::Null, to))
}
