//! SQLite: each value as what it is stored as (SQLite types values, not columns), and cursor
//! values bound by their JSON type.
//!
//! Why no timestamp conversion: SQLite keeps a timestamp as the text (or number) it was given,
//! and compares it as that. The record carries the stored text unchanged, so the cursor saved
//! from it compares with the column exactly as the stored values compare with each other.
//! A column declared `BOOLEAN` comes out as `true`/`false`.

use serde_json::Value;
use sqlx::sqlite::{SqliteArguments, SqliteColumn, SqlitePool, SqliteRow};
use sqlx::{Arguments, Column, Row, Sqlite, Type, TypeInfo, ValueRef};

use super::error::Error;
use super::fetch::{self, bind_error, Bind, Query, Read, Sender, Sent};
use super::value::{self, from_bytes, from_float};

/// The database's name in messages.
pub const NAME: &str = "SQLite";

/// Reads `query`'s rows into `sender`.
pub async fn read(
    pool: &SqlitePool,
    query: &Query,
    cursor: &[String],
    sender: &Sender,
) -> Result<Sent, Error> {
    let mut arguments = SqliteArguments::default();
    for bind in &query.binds {
        add(&mut arguments, bind)?;
    }
    fetch::rows(pool, query, NAME, arguments, reader, cursor, sender).await
}

/// Binds `bind` as the JSON type it has: whole numbers as INTEGER, other numbers as REAL,
/// booleans as 0/1, text as TEXT.
fn add(arguments: &mut SqliteArguments<'_>, bind: &Bind) -> Result<(), Error> {
    let v = &bind.value;
    let added = match v {
        Value::Number(n) if n.is_i64() => put(arguments, value::int(v)),
        Value::Number(_) => put(arguments, value::float(v)),
        Value::Bool(b) => put(arguments, Ok(*b)),
        other => put(arguments, Ok(value::text(other))),
    };
    added.map_err(|reason| bind_error(bind, "a SQLite value", reason))
}

fn put<T>(arguments: &mut SqliteArguments<'_>, value: Result<T, String>) -> Result<(), String>
where
    T: for<'q> sqlx::Encode<'q, Sqlite> + Type<Sqlite> + Send + 'static,
{
    arguments.add(value?).map_err(|e| e.to_string())
}

/// Every column is read by the value's storage class; `BOOLEAN` columns as booleans.
fn reader(column: &SqliteColumn) -> Option<Read<SqliteRow>> {
    Some(match column.type_info().name() {
        "BOOLEAN" => |r, i| stored(r, i, true),
        _ => |r, i| stored(r, i, false),
    })
}

fn stored(row: &SqliteRow, index: usize, boolean: bool) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let class = raw.type_info().name().to_string();
    Ok(match class.as_str() {
        "INTEGER" if boolean => Value::Bool(row.try_get_unchecked::<i64, _>(index)? != 0),
        "INTEGER" => Value::from(row.try_get_unchecked::<i64, _>(index)?),
        "REAL" => from_float(row.try_get_unchecked(index)?),
        "BLOB" => from_bytes(row.try_get_unchecked::<&[u8], _>(index)?),
        _ => Value::String(row.try_get_unchecked(index)?),
    })
}
