//! Values between JSON and the databases' types, both ways, written once for all of them.
//!
//! Out (a row to a record): exact first. Decimals become strings (a float would round them),
//! timestamps RFC 3339 with every digit the database keeps (`AutoSi`: none, 3, 6 or 9), bytes
//! base64. In (a saved cursor to a bind parameter): the same texts parse back to the same
//! values, so a microsecond timestamp comes back as the very same microsecond.

use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::types::{BigDecimal, Uuid};

/// How a naive timestamp (no offset) is written: RFC 3339 without the offset.
const NAIVE: &str = "%Y-%m-%dT%H:%M:%S%.f";

/// A timestamp with a time zone, as UTC RFC 3339.
pub fn from_timestamptz(at: DateTime<Utc>) -> Value {
    Value::String(rfc3339(&at.naive_utc(), "Z"))
}

/// A timestamp without a time zone, as RFC 3339 without an offset.
pub fn from_timestamp(at: NaiveDateTime) -> Value {
    Value::String(rfc3339(&at, ""))
}

/// `YYYY-MM-DDTHH:MM:SS[.fff|.ffffff|.fffffffff]` and `offset`, as chrono's `AutoSi` writes
/// it, digit by digit: formatting through `fmt` is a third of the cost of a row.
fn rfc3339(at: &NaiveDateTime, offset: &str) -> String {
    use chrono::{Datelike, Timelike};
    if !(0..=9999).contains(&at.year()) {
        let text = at.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true);
        return format!("{}{offset}", text.trim_end_matches('Z'));
    }
    let mut text = String::with_capacity(32);
    let mut digits = |value: u32, width: u32, before: Option<char>| {
        text.extend(before);
        push_digits(&mut text, value, width);
    };
    digits(at.year() as u32, 4, None);
    digits(at.month(), 2, Some('-'));
    digits(at.day(), 2, Some('-'));
    digits(at.hour(), 2, Some('T'));
    digits(at.minute(), 2, Some(':'));
    digits(at.second(), 2, Some(':'));
    let nanos = at.nanosecond();
    match nanos {
        0 => {}
        n if n % 1_000_000 == 0 => digits(n / 1_000_000, 3, Some('.')),
        n if n % 1_000 == 0 => digits(n / 1_000, 6, Some('.')),
        n => digits(n, 9, Some('.')),
    }
    text.push_str(offset);
    text
}

/// Appends the last `width` decimal digits of `value`, zero-padded: what `format!("{:0w$}")`
/// writes, without its formatting machinery or a `String` of its own.
pub fn push_digits(text: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10u32.pow(place) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

/// A date, `YYYY-MM-DD`.
pub fn from_date(date: NaiveDate) -> Value {
    Value::String(date.format("%Y-%m-%d").to_string())
}

/// A time of day, `HH:MM:SS[.ffffff]`.
pub fn from_time(time: NaiveTime) -> Value {
    Value::String(time.format("%H:%M:%S%.f").to_string())
}

/// A decimal, exactly, without an exponent.
pub fn from_decimal(decimal: &BigDecimal) -> Value {
    Value::String(decimal.to_plain_string())
}

/// A float; NaN and the infinities, which JSON has no number for, as strings.
pub fn from_float(float: f64) -> Value {
    serde_json::Number::from_f64(float)
        .map_or_else(|| Value::String(float.to_string()), Value::Number)
}

/// Bytes, base64 (standard alphabet, padded).
pub fn from_bytes(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// An integer: a JSON integer, or a string of one.
pub fn int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| "not a whole number".into()),
        Value::String(s) => s.trim().parse().map_err(|_| "not a whole number".into()),
        _ => Err("not a whole number".into()),
    }
}

/// An unsigned integer.
pub fn unsigned(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| "not a whole number ≥ 0".into()),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| "not a whole number ≥ 0".into()),
        _ => Err("not a whole number ≥ 0".into()),
    }
}

/// A float: a JSON number, or a string of one (`NaN`, `inf` included).
pub fn float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| "not a number".into()),
        Value::String(s) => s.trim().parse().map_err(|_| "not a number".into()),
        _ => Err("not a number".into()),
    }
}

/// A boolean: `true`/`false`, or 0/1.
pub fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        _ => Err("not true or false".into()),
    }
}

/// Text: a string as it is, anything else as its JSON.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A decimal from its exact text (or a JSON number).
pub fn decimal(value: &Value) -> Result<BigDecimal, String> {
    text(value)
        .parse()
        .map_err(|_| "not a decimal number".into())
}

/// A timestamp with an offset (RFC 3339), in UTC.
pub fn timestamptz(value: &Value) -> Result<DateTime<Utc>, String> {
    let text = text(value);
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 timestamp with an offset ({e})"))
}

/// A timestamp without an offset: `2024-01-31T12:00:00[.ffffff]` (a space for the `T` too), or
/// RFC 3339 with an offset, taken in UTC.
pub fn timestamp(value: &Value) -> Result<NaiveDateTime, String> {
    let text = text(value);
    NaiveDateTime::parse_from_str(&text.replacen(' ', "T", 1), NAIVE)
        .or_else(|_| timestamptz(value).map(|at| at.naive_utc()))
        .map_err(|_| "not a timestamp like 2024-01-31T12:00:00".into())
}

/// A date, `YYYY-MM-DD`.
pub fn date(value: &Value) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(&text(value), "%Y-%m-%d").map_err(|_| "not a date".into())
}

/// A time of day, `HH:MM:SS[.f]`.
pub fn time(value: &Value) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(&text(value), "%H:%M:%S%.f").map_err(|_| "not a time".into())
}

/// A UUID.
pub fn uuid(value: &Value) -> Result<Uuid, String> {
    Uuid::parse_str(&text(value)).map_err(|_| "not a UUID".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_keep_every_digit_and_parse_back_to_the_same_instant() {
        let micro = DateTime::parse_from_rfc3339("2024-02-29T23:59:59.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let shown = from_timestamptz(micro);
        assert_eq!(shown, json!("2024-02-29T23:59:59.123456Z"));
        assert_eq!(timestamptz(&shown), Ok(micro));
        let whole = from_timestamptz(micro.with_nanosecond_zero());
        assert_eq!(whole, json!("2024-02-29T23:59:59Z"));
        let naive = micro.naive_utc();
        assert_eq!(from_timestamp(naive), json!("2024-02-29T23:59:59.123456"));
        assert_eq!(timestamp(&from_timestamp(naive)), Ok(naive));
        assert_eq!(timestamp(&json!("2024-02-29 23:59:59.123456")), Ok(naive));
        assert_eq!(timestamp(&json!("2024-02-29T23:59:59.123456Z")), Ok(naive));
        let milli = DateTime::parse_from_rfc3339("0999-01-02T03:04:05.120Z").unwrap();
        assert_eq!(
            from_timestamptz(milli.with_timezone(&Utc)),
            json!("0999-01-02T03:04:05.120Z")
        );
        let nano = DateTime::parse_from_rfc3339("2024-01-01T00:00:00.000000001Z").unwrap();
        assert_eq!(
            from_timestamptz(nano.with_timezone(&Utc)),
            json!("2024-01-01T00:00:00.000000001Z")
        );
    }

    trait NanoZero {
        fn with_nanosecond_zero(self) -> Self;
    }

    impl NanoZero for DateTime<Utc> {
        fn with_nanosecond_zero(self) -> Self {
            chrono::Timelike::with_nanosecond(&self, 0).unwrap()
        }
    }

    #[test]
    fn decimals_stay_exact_text_and_floats_stay_numbers() {
        let decimal_value: BigDecimal = "12345678901234567890.000100".parse().unwrap();
        assert_eq!(
            from_decimal(&decimal_value),
            json!("12345678901234567890.000100")
        );
        assert_eq!(decimal(&json!("0.10")).unwrap().to_plain_string(), "0.10");
        assert_eq!(from_float(1.5), json!(1.5));
        assert_eq!(from_float(f64::NAN), json!("NaN"));
    }

    #[test]
    fn integers_come_from_numbers_or_their_text() {
        assert_eq!(int(&json!(42)), Ok(42));
        assert_eq!(int(&json!("42")), Ok(42));
        assert!(int(&json!(1.5)).is_err());
        assert_eq!(from_bytes(b"\x00\xff"), json!("AP8="));
    }
}
