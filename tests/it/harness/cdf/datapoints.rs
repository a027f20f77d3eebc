//! Datapoints: `POST /timeseries/data` (≤ 10,000 series and ≤ 100,000 points per request, values
//! within ±1e100, strings ≤ 1,023 bytes, timestamps 1900..2099, the series' type; series that do
//! not exist are named in `missing` and nothing is written) and `POST /timeseries/data/list`
//! (JSON, or protobuf for the SDK; `start` inclusive, `end` exclusive, `limit`, `cursor`).

use std::collections::HashSet;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::protobuf::{self, ListItem};
use super::reply::{bad, items, missing, ok, over_limit};
use super::{Answer, Store};

const MIN_TIMESTAMP: i64 = -2_208_988_800_000;
const MAX_TIMESTAMP: i64 = 4_102_444_799_999;

pub fn insert(store: &mut Store, body: &Value) -> Answer {
    let series = items(body, "time series", 10_000)?;
    let total: usize = series
        .iter()
        .map(|item| item["datapoints"].as_array().map_or(0, Vec::len))
        .sum();
    if total > 100_000 {
        return Err(over_limit("datapoints", total, 100_000));
    }
    let mut absent = Vec::new();
    let mut noted = HashSet::new();
    for item in &series {
        let id = item["externalId"]
            .as_str()
            .ok_or_else(|| bad("externalId is required here"))?;
        let Some(known) = store.series.get(id) else {
            if noted.insert(id) {
                absent.push(json!({"externalId": id}));
            }
            continue;
        };
        for point in item["datapoints"]
            .as_array()
            .ok_or_else(|| bad("datapoints must be an array"))?
        {
            check(point, known.is_string).map_err(|why| bad(&format!("{id}: {why}")))?;
        }
    }
    if !absent.is_empty() {
        return Err(missing("Time series not found", absent));
    }
    for item in series {
        let id = item["externalId"].as_str().unwrap_or_default();
        let known = store.series.get_mut(id).expect("checked above");
        for point in item["datapoints"].as_array().into_iter().flatten() {
            let timestamp = point["timestamp"].as_i64().unwrap_or_default();
            known.points.insert(timestamp, point["value"].clone());
        }
    }
    Ok(ok(StatusCode::CREATED, json!({})))
}

fn check(point: &Value, is_string: bool) -> Result<(), String> {
    let timestamp = point["timestamp"]
        .as_i64()
        .ok_or("timestamp must be an integer")?;
    if !(MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&timestamp) {
        return Err(format!("timestamp {timestamp} is outside 1900..2099"));
    }
    match (&point["value"], is_string) {
        (Value::Number(n), false) if n.as_f64().is_some_and(|v| v.abs() <= 1e100) => Ok(()),
        (Value::Number(n), false) => Err(format!("value {n} is outside ±1e100")),
        (Value::String(s), true) if s.len() <= 1023 => Ok(()),
        (Value::String(_), true) => Err("string value longer than 1023 bytes".into()),
        (_, true) => Err("Expected string value for datapoint".into()),
        (_, false) => Err("Expected numeric value for datapoint".into()),
    }
}

pub fn list(store: &Store, body: &Value, headers: &HeaderMap) -> Answer {
    let queries = items(body, "queries", 100)?;
    let ignore = body["ignoreUnknownIds"].as_bool().unwrap_or(false);
    let mut found = Vec::new();
    let mut absent = Vec::new();
    for query in &queries {
        let id = query["externalId"].as_str().unwrap_or_default();
        let Some(series) = store.series.get(id) else {
            absent.push(json!({"externalId": id}));
            continue;
        };
        let setting = |key: &str| {
            query
                .get(key)
                .filter(|v| !v.is_null())
                .or(body.get(key))
                .and_then(Value::as_i64)
        };
        let start = query["cursor"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .or(setting("start"))
            .unwrap_or(0);
        let end = setting("end").unwrap_or(i64::MAX);
        let limit = setting("limit").unwrap_or(100).clamp(0, 100_000) as usize;
        let mut points: Vec<(i64, &Value)> = series
            .points
            .range(start..end)
            .map(|(t, v)| (*t, v))
            .take(limit + 1)
            .collect();
        let next_cursor = (points.len() > limit).then(|| points[limit].0.to_string());
        points.truncate(limit);
        found.push(ListItem {
            id: series.id,
            external_id: id,
            is_string: series.is_string,
            points,
            next_cursor,
        });
    }
    if !absent.is_empty() && !ignore {
        return Err(missing("Time series not found", absent));
    }
    let wants_protobuf = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("protobuf"));
    Ok(match wants_protobuf {
        true => protobuf_answer(&found),
        false => ok(
            StatusCode::OK,
            json!({"items": found.iter().map(json_item).collect::<Vec<_>>()}),
        ),
    })
}

fn protobuf_answer(items: &[ListItem]) -> Response {
    let content_type = [("content-type", "application/protobuf")];
    (StatusCode::OK, content_type, protobuf::encode(items)).into_response()
}

fn json_item(item: &ListItem) -> Value {
    let points: Vec<Value> = item
        .points
        .iter()
        .map(|(t, v)| json!({"timestamp": t, "value": v}))
        .collect();
    let mut out = json!({"id": item.id, "externalId": item.external_id, "isString": item.is_string, "isStep": false, "datapoints": points});
    if let Some(cursor) = &item.next_cursor {
        out["nextCursor"] = cursor.clone().into();
    }
    out
}
