//! Records cross between serde_json (what sources and sinks speak) and jaq's own value type
//! (what the jq program works on). The two agree on JSON; the conversions below say what happens
//! where jaq's values go beyond it.

use jaq_json::{Num, Val};
use serde_json::{Map, Number, Value};

/// A JSON value as a jaq value.
/// Strings move into the jaq value without a copy.
pub(super) fn to_jaq(value: Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(b) => Val::Bool(b),
        Value::Number(n) => Val::Num(number(&n)),
        Value::String(s) => Val::from(s),
        Value::Array(items) => items.into_iter().map(to_jaq).collect(),
        Value::Object(map) => Val::obj(
            map.into_iter()
                .map(|(key, value)| (Val::from(key), to_jaq(value)))
                .collect(),
        ),
    }
}

fn number(n: &Number) -> Num {
    if let Some(i) = n.as_i64() {
        Num::from_integral(i)
    } else if let Some(u) = n.as_u64() {
        Num::from_integral(u)
    } else {
        Num::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// A jaq value as JSON. jq's own rules for what JSON cannot hold: NaN becomes null, ±infinity
/// the largest finite double. An object key that is not a string, or a byte string, is an error:
/// no JSON record can carry it.
pub(super) fn to_json(value: &Val) -> Result<Value, String> {
    Ok(match value {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Num(n) => num_to_json(n),
        Val::TStr(bytes) => Value::String(text(bytes)),
        Val::BStr(_) => return Err("a byte string cannot be written as JSON".into()),
        Val::Arr(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Val::Obj(map) => Value::Object(
            map.iter()
                .map(|(key, value)| match key {
                    Val::TStr(key) => Ok((text(key), to_json(value)?)),
                    key => Err(format!("object key {key} is not a string")),
                })
                .collect::<Result<Map<_, _>, _>>()?,
        ),
    })
}

/// jaq's text is UTF-8 unless a program made it otherwise; invalid bytes become U+FFFD.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn num_to_json(n: &Num) -> Value {
    match n {
        Num::Int(i) => Value::from(*i as i64),
        Num::Float(f) => float(*f),
        // Big integers and decimal literals keep their digits where JSON numbers can.
        Num::BigInt(_) | Num::Dec(_) => {
            let text = n.to_string();
            serde_json::from_str::<Number>(&text)
                .map(Value::Number)
                .unwrap_or_else(|_| float(text.parse().unwrap_or(f64::NAN)))
        }
    }
}

fn float(f: f64) -> Value {
    match f {
        f if f.is_nan() => Value::Null,
        f if f.is_infinite() => Value::from(f64::MAX.copysign(f)),
        f => Number::from_f64(f).map_or(Value::Null, Value::Number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_survives_the_round_trip() {
        let record = json!({
            "int": -7, "big": u64::MAX, "float": 1.5, "text": "héllo", "null": null,
            "yes": true, "list": [1, "two", {"three": 3.25}], "empty": {}
        });
        assert_eq!(to_json(&to_jaq(record.clone())).unwrap(), record);
    }

    #[test]
    fn what_json_cannot_hold_is_mapped_as_jq_does_or_refused() {
        assert_eq!(
            to_json(&Val::Num(Num::Float(f64::NAN))).unwrap(),
            Value::Null
        );
        assert_eq!(
            to_json(&Val::Num(Num::Float(f64::NEG_INFINITY))).unwrap(),
            json!(-f64::MAX)
        );
        let numeric_key = Val::obj([(Val::from(1usize), Val::Null)].into_iter().collect());
        assert!(to_json(&numeric_key).unwrap_err().contains("not a string"));
    }
}
