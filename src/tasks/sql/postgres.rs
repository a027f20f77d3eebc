//! PostgreSQL: rows to records by column type, and cursor values bound as the type the server
//! infers for each parameter.
//!
//! Why prepare first: PostgreSQL says what type each `$n` must be (`timestamptz` for
//! `updated_at > $1`), so the saved cursor value is bound as exactly that type, whatever JSON
//! shape it was saved in, and compared as the column is.

use futures::TryStreamExt;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgColumn, PgPool, PgRow, PgTypeInfo, PgTypeKind};
use sqlx::types::{BigDecimal, Json, Uuid};
use sqlx::{
    Arguments, Column, Decode, Either, Executor, Postgres, Row, Statement, Type, TypeInfo, ValueRef,
};

use super::error::Error;
use super::fetch::{bind_error, forward, Bind, Query, Read, Sender, Sent};
use super::value::{self, from_bytes, from_date, from_decimal, from_float, from_time, push_digits};

/// The database's name in messages.
pub const NAME: &str = "PostgreSQL";

/// Reads `query`'s rows into `sender`.
pub async fn read(
    pool: &PgPool,
    query: &Query,
    cursor: &[String],
    sender: &Sender,
) -> Result<Sent, Error> {
    let error = |e| query.error(NAME, e);
    let mut connection = pool.acquire().await.map_err(error)?;
    let statement = (&mut *connection)
        .prepare(query.sql())
        .await
        .map_err(error)?;
    let arguments = arguments(&query.binds, statement.parameters())?;
    let rows = sqlx::query_with(query.sql(), arguments)
        .fetch(&mut *connection)
        .map_err(error);
    forward(rows, reader, cursor, sender).await
}

fn arguments(
    binds: &[Bind],
    parameters: Option<Either<&[PgTypeInfo], usize>>,
) -> Result<PgArguments, Error> {
    let types = match parameters {
        Some(Either::Left(types)) => types,
        _ => &[],
    };
    let mut arguments = PgArguments::default();
    for (bind, type_info) in binds.iter().zip(types) {
        let name = type_info.name();
        add(&mut arguments, bind, name).map_err(|reason| bind_error(bind, name, reason))?;
    }
    Ok(arguments)
}

/// Binds `bind` as the parameter type `name`.
fn add(arguments: &mut PgArguments, bind: &Bind, name: &str) -> Result<(), String> {
    let v = &bind.value;
    match name {
        "INT2" => put(arguments, value::int(v).and_then(|n| i16::try_from(n).map_err(range))),
        "INT4" => put(arguments, value::int(v).and_then(|n| i32::try_from(n).map_err(range))),
        "INT8" => put(arguments, value::int(v)),
        "FLOAT4" => put(arguments, value::float(v).map(|f| f as f32)),
        "FLOAT8" => put(arguments, value::float(v)),
        "NUMERIC" => put(arguments, value::decimal(v)),
        "BOOL" => put(arguments, value::boolean(v)),
        "TIMESTAMPTZ" => put(arguments, value::timestamptz(v)),
        "TIMESTAMP" => put(arguments, value::timestamp(v)),
        "DATE" => put(arguments, value::date(v)),
        "TIME" => put(arguments, value::time(v)),
        "UUID" => put(arguments, value::uuid(v)),
        "JSON" | "JSONB" => put(arguments, Ok(Json(v.clone()))),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => put(arguments, Ok(value::text(v))),
        _ => Err(format!(
            "tapline binds no {name} parameters; cast the placeholder in the query, such as {}::text",
            bind.label
        )),
    }
}

fn range(_: std::num::TryFromIntError) -> String {
    "out of range".into()
}

fn put<T>(arguments: &mut PgArguments, value: Result<T, String>) -> Result<(), String>
where
    T: for<'q> sqlx::Encode<'q, Postgres> + Type<Postgres> + Send + 'static,
{
    arguments.add(value?).map_err(|e| e.to_string())
}

/// The reader of a column of this type, if tapline converts it.
fn reader(column: &PgColumn) -> Option<Read<PgRow>> {
    let type_info = column.type_info();
    if matches!(type_info.kind(), PgTypeKind::Enum(_)) {
        // An enum's value travels as its label.
        return Some(|r, i| {
            let label: Option<&str> = r.try_get_unchecked(i)?;
            Ok(label.map_or(Value::Null, |l| Value::String(l.into())))
        });
    }
    let read: Read<PgRow> = match type_info.name() {
        "BOOL" => |r, i| get(r, i, Value::Bool),
        "INT2" => |r, i| get(r, i, |n: i16| Value::from(n)),
        "INT4" => |r, i| get(r, i, |n: i32| Value::from(n)),
        "INT8" => |r, i| get(r, i, |n: i64| Value::from(n)),
        "FLOAT4" => |r, i| get(r, i, |f: f32| from_float(f.into())),
        "FLOAT8" => |r, i| get(r, i, from_float),
        "NUMERIC" => numeric,
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" => |r, i| get(r, i, Value::String),
        "TIMESTAMPTZ" => |r, i| get(r, i, value::from_timestamptz),
        "TIMESTAMP" => |r, i| get(r, i, value::from_timestamp),
        "DATE" => |r, i| get(r, i, from_date),
        "TIME" => |r, i| get(r, i, from_time),
        "UUID" => |r, i| get(r, i, |u: Uuid| Value::String(u.to_string())),
        "JSON" | "JSONB" => |r, i| get(r, i, |j: Value| j),
        "BYTEA" => |r, i| get(r, i, |b: Vec<u8>| from_bytes(&b)),
        "BOOL[]" => |r, i| array(r, i, Value::Bool),
        "INT2[]" => |r, i| array(r, i, |n: i16| Value::from(n)),
        "INT4[]" => |r, i| array(r, i, |n: i32| Value::from(n)),
        "INT8[]" => |r, i| array(r, i, |n: i64| Value::from(n)),
        "FLOAT4[]" => |r, i| array(r, i, |f: f32| from_float(f.into())),
        "FLOAT8[]" => |r, i| array(r, i, from_float),
        "NUMERIC[]" => |r, i| array(r, i, |d: BigDecimal| from_decimal(&d)),
        "TEXT[]" | "VARCHAR[]" | "BPCHAR[]" | "NAME[]" => |r, i| array(r, i, Value::String),
        "TIMESTAMPTZ[]" => |r, i| array(r, i, value::from_timestamptz),
        "TIMESTAMP[]" => |r, i| array(r, i, value::from_timestamp),
        "DATE[]" => |r, i| array(r, i, from_date),
        "TIME[]" => |r, i| array(r, i, from_time),
        "UUID[]" => |r, i| array(r, i, |u: Uuid| Value::String(u.to_string())),
        "JSON[]" | "JSONB[]" => |r, i| array(r, i, |j: Value| j),
        _ => return None,
    };
    Some(read)
}

/// A one-dimensional array column, each element through `to`.
/// The column's value as JSON through `to`, NULL as null. Unchecked: a PostgreSQL column has one
/// type for the whole statement and its reader was picked by that type, so sqlx's check of the
/// type at every value (a tenth of a run's time in `perf`) would only repeat it; arrays and JSON
/// still check their own payloads.
fn get<'r, T>(row: &'r PgRow, index: usize, to: impl Fn(T) -> Value) -> Result<Value, sqlx::Error>
where
    T: Decode<'r, Postgres>,
{
    Ok(row
        .try_get_unchecked::<Option<T>, _>(index)?
        .map_or(Value::Null, to))
}

fn array<'r, T>(row: &'r PgRow, index: usize, to: impl Fn(T) -> Value) -> Result<Value, sqlx::Error>
where
    Vec<Option<T>>: Decode<'r, Postgres> + Type<Postgres>,
{
    let items: Option<Vec<Option<T>>> = row.try_get(index)?;
    Ok(items.map_or(Value::Null, |items| {
        items
            .into_iter()
            .map(|item| item.map_or(Value::Null, &to))
            .collect()
    }))
}

/// A NUMERIC as PostgreSQL writes it: exact, with its display scale (`1.50` stays `1.50`).
fn numeric(row: &PgRow, index: usize) -> Result<Value, sqlx::Error> {
    let raw = row.try_get_raw(index)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let bytes = raw.as_bytes().map_err(sqlx::Error::Decode)?;
    numeric_text(bytes)
        .map(Value::String)
        .ok_or_else(|| sqlx::Error::Decode("not a binary NUMERIC".into()))
}

/// The text of a binary NUMERIC: `ndigits`, `weight`, `sign`, `dscale` (big-endian 16-bit), then
/// `ndigits` base-10000 digits, the first one worth 10000^weight. Written here rather than
/// through a big-decimal type, which costs a big-integer conversion per value.
fn numeric_text(bytes: &[u8]) -> Option<String> {
    let word = |at: usize| -> Option<u16> {
        Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
    };
    let (count, weight, sign, scale) = (word(0)?, word(2)? as i16, word(4)?, word(6)?);
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        _ => {}
    }
    // Every digit there and below 10000, as PostgreSQL's own `numeric_recv` demands.
    if !(0..usize::from(count)).all(|i| word(8 + 2 * i).is_some_and(|digit| digit < 10_000)) {
        return None;
    }
    // The base-10000 digit worth 10000^exponent.
    let group = |exponent: i32| -> u16 {
        usize::try_from(i32::from(weight) - exponent)
            .ok()
            .filter(|i| *i < usize::from(count))
            .and_then(|i| word(8 + 2 * i))
            .unwrap_or(0)
    };
    let mut text = String::with_capacity(4 * (usize::from(count) + 2) + usize::from(scale));
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        let first = u32::from(group(i32::from(weight)));
        push_digits(&mut text, first, first.checked_ilog10().unwrap_or(0) + 1);
        for exponent in (0..i32::from(weight)).rev() {
            push_digits(&mut text, group(exponent).into(), 4);
        }
    }
    if scale > 0 {
        text.push('.');
        let start = text.len();
        let mut exponent = -1;
        while text.len() - start < usize::from(scale) {
            push_digits(&mut text, group(exponent).into(), 4);
            exponent -= 1;
        }
        text.truncate(start + usize::from(scale));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::numeric_text;

    fn binary(count: u16, weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [count, weight as u16, sign, scale].iter().chain(digits) {
            bytes.extend_from_slice(&word.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn numerics_come_out_as_postgresql_writes_them() {
        // 12345678901234567890.123450 = 1234|5678|9012|3456|7890 . 1234|5000
        let big = binary(7, 4, 0, 6, &[1234, 5678, 9012, 3456, 7890, 1234, 5000]);
        assert_eq!(numeric_text(&big).unwrap(), "12345678901234567890.123450");
        assert_eq!(
            numeric_text(&binary(1, 0, 0x4000, 2, &[1])).unwrap(),
            "-1.00"
        );
        assert_eq!(
            numeric_text(&binary(1, -2, 0, 8, &[5])).unwrap(),
            "0.00000005"
        );
        assert_eq!(numeric_text(&binary(1, 1, 0, 0, &[7])).unwrap(), "70000");
        assert_eq!(
            numeric_text(&binary(2, 1, 0, 0, &[1, 12])).unwrap(),
            "10012"
        );
        assert_eq!(numeric_text(&binary(1, 0, 0, 2, &[0])).unwrap(), "0.00");
        assert!(numeric_text(&binary(2, 1, 0, 0, &[1, 10_000])).is_none());
        assert!(numeric_text(&binary(2, 1, 0, 0, &[1])).is_none());
        assert_eq!(numeric_text(&binary(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric_text(&binary(0, 0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(numeric_text(&[0, 1]).is_none());
    }
}
