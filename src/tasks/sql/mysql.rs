//! MySQL and MariaDB: rows to records by column type, and cursor values bound as the type of
//! the column they were read from.
//!
//! Why by the saved type: MySQL does not say what type a `?` must be, so the cursor remembers
//! each column's type (`DATETIME`, `BIGINT UNSIGNED`) and its value is bound as that, which
//! compares exactly; a value whose type is not known yet (the `initial-cursor`) is bound by its
//! JSON type, and text in RFC 3339 form as a `DATETIME` in UTC.

use serde_json::Value;
use sqlx::mysql::{MySqlArguments, MySqlColumn, MySqlPool, MySqlRow};
use sqlx::types::{BigDecimal, Json};
use sqlx::{Arguments, Column, MySql, Type, TypeInfo};

use super::error::Error;
use super::fetch::{self, bind_error, get, Bind, Query, Read, Sender, Sent};
use super::value::{self, from_bytes, from_date, from_decimal, from_float, from_time};

/// The database's name in messages.
pub const NAME: &str = "MySQL";

/// Reads `query`'s rows into `sender`.
pub async fn read(
    pool: &MySqlPool,
    query: &Query,
    cursor: &[String],
    sender: &Sender,
) -> Result<Sent, Error> {
    let mut arguments = MySqlArguments::default();
    for bind in &query.binds {
        add(&mut arguments, bind)?;
    }
    fetch::rows(pool, query, NAME, arguments, reader, cursor, sender).await
}

/// Binds `bind` as the type of the column it came from, else by its JSON type.
fn add(arguments: &mut MySqlArguments, bind: &Bind) -> Result<(), Error> {
    let v = &bind.value;
    let type_name = bind.type_name.as_deref().unwrap_or("");
    let added = match type_name {
        "DATETIME" => put(arguments, value::timestamp(v)),
        "TIMESTAMP" => put(arguments, value::timestamptz(v)),
        "DATE" => put(arguments, value::date(v)),
        "TIME" => put(arguments, value::time(v)),
        "BOOLEAN" => put(arguments, value::boolean(v)),
        "FLOAT" | "DOUBLE" => put(arguments, value::float(v)),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => put(arguments, value::int(v)),
        unsigned if unsigned.ends_with("UNSIGNED") => put(arguments, value::unsigned(v)),
        "" => by_json_type(arguments, v),
        // DECIMAL and text: MySQL converts the exact text itself.
        _ => put(arguments, Ok(value::text(v))),
    };
    added.map_err(|reason| bind_error(bind, type_name, reason))
}

fn by_json_type(arguments: &mut MySqlArguments, v: &Value) -> Result<(), String> {
    match v {
        Value::Number(n) if n.is_i64() => put(arguments, value::int(v)),
        Value::Number(n) if n.is_u64() => put(arguments, value::unsigned(v)),
        Value::Number(_) => put(arguments, value::float(v)),
        Value::Bool(b) => put(arguments, Ok(*b)),
        Value::String(_) => match value::timestamptz(v) {
            Ok(at) => put(arguments, Ok(at.naive_utc())),
            Err(_) => put(arguments, Ok(value::text(v))),
        },
        other => put(arguments, Ok(other.to_string())),
    }
}

fn put<T>(arguments: &mut MySqlArguments, value: Result<T, String>) -> Result<(), String>
where
    T: for<'q> sqlx::Encode<'q, MySql> + Type<MySql> + Send + 'static,
{
    arguments.add(value?).map_err(|e| e.to_string())
}

/// The reader of a column of this type, if tapline converts it.
fn reader(column: &MySqlColumn) -> Option<Read<MySqlRow>> {
    let name = column.type_info().name();
    let read: Read<MySqlRow> = match name {
        "NULL" => |_, _| Ok(Value::Null),
        "BOOLEAN" => |r, i| get(r, i, Value::Bool),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
            |r, i| get(r, i, |n: i64| Value::from(n))
        }
        unsigned if unsigned.ends_with("UNSIGNED") => |r, i| get(r, i, |n: u64| Value::from(n)),
        "FLOAT" => |r, i| get(r, i, |f: f32| from_float(f.into())),
        "DOUBLE" => |r, i| get(r, i, from_float),
        "DECIMAL" => |r, i| get(r, i, |d: BigDecimal| from_decimal(&d)),
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            |r, i| get(r, i, Value::String)
        }
        "JSON" => |r, i| get(r, i, |j: Json<Value>| j.0),
        "DATETIME" => |r, i| get(r, i, value::from_timestamp),
        "TIMESTAMP" => |r, i| get(r, i, value::from_timestamptz),
        "DATE" => |r, i| get(r, i, from_date),
        "TIME" => |r, i| get(r, i, from_time),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            |r, i| get(r, i, |b: Vec<u8>| from_bytes(&b))
        }
        _ => return None,
    };
    Some(read)
}
