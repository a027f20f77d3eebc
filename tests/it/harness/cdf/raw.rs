//! RAW rows: `POST .../rows[?ensureParent=true]` (≤ 10,000 rows; a row with an existing key is
//! overwritten) and `GET .../rows?limit&cursor` (by key, ≤ 10,000 per page).

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::reply::{bad, cdf_error, items, now_ms, ok, param};
use super::{Answer, Store};

pub fn insert(store: &mut Store, db: &str, table: &str, query: &str, body: &Value) -> Answer {
    let rows = items(body, "rows", 10_000)?;
    let place = (db.to_string(), table.to_string());
    let ensure = param(query, "ensureParent").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !ensure && !store.raw.contains_key(&place) {
        return Err(cdf_error(StatusCode::NOT_FOUND, "Table not found"));
    }
    let mut checked = Vec::with_capacity(rows.len());
    for row in rows {
        let key = row["key"]
            .as_str()
            .filter(|k| !k.is_empty() && k.len() <= 1024);
        let (Some(key), Some(columns)) = (key, row["columns"].as_object()) else {
            return Err(bad(
                "every row needs a key (a string) and columns (an object)",
            ));
        };
        checked.push((key.to_string(), columns.clone()));
    }
    let now = now_ms();
    let table = store.raw.entry(place).or_default();
    for (key, columns) in checked {
        table.insert(key, (columns, now));
    }
    Ok(ok(StatusCode::CREATED, json!({})))
}

pub fn list(store: &Store, db: &str, table: &str, query: &str) -> Answer {
    let rows = store
        .raw
        .get(&(db.to_string(), table.to_string()))
        .ok_or_else(|| cdf_error(StatusCode::NOT_FOUND, "Table not found"))?;
    let limit: usize = param(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25);
    if limit > 10_000 {
        return Err(super::reply::over_limit("limit", limit, 10_000));
    }
    let from: usize = param(query, "cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = rows
        .iter()
        .skip(from)
        .take(limit)
        .map(|(key, (columns, updated))| json!({"key": key, "columns": columns, "lastUpdatedTime": updated}))
        .collect();
    let mut body = json!({"items": page});
    if from + limit < rows.len() {
        body["nextCursor"] = (from + limit).to_string().into();
    }
    Ok(ok(StatusCode::OK, body))
}
