//! Time series: `POST /timeseries` (≤ 1,000; an existing external id is 409 `duplicated`, and
//! nothing is created) and `POST /timeseries/byids`.

use std::collections::{BTreeMap, HashSet};

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::reply::{bad, duplicated, items, missing, now_ms, ok};
use super::{Answer, Series, Store};

pub fn create(store: &mut Store, body: &Value) -> Answer {
    let wanted = items(body, "time series", 1_000)?;
    let mut seen = HashSet::new();
    let mut taken = Vec::new();
    for item in &wanted {
        let id = item["externalId"]
            .as_str()
            .ok_or_else(|| bad("externalId is required here"))?;
        if store.series.contains_key(id) || !seen.insert(id) {
            taken.push(json!({"externalId": id}));
        }
    }
    if !taken.is_empty() {
        return Err(duplicated(taken));
    }
    let mut created = Vec::new();
    for item in wanted {
        let external_id = item["externalId"].as_str().unwrap_or_default().to_string();
        let series = Series {
            id: store.next_id(),
            is_string: item["isString"].as_bool().unwrap_or(false),
            data_set_id: item["dataSetId"].as_i64(),
            created: now_ms(),
            points: BTreeMap::new(),
        };
        created.push(describe(&external_id, &series));
        store.series.insert(external_id, series);
    }
    Ok(ok(StatusCode::CREATED, json!({"items": created})))
}

pub fn by_ids(store: &Store, body: &Value) -> Answer {
    let wanted = items(body, "identifiers", 1_000)?;
    let ignore = body["ignoreUnknownIds"].as_bool().unwrap_or(false);
    let mut found = Vec::new();
    let mut absent = Vec::new();
    for item in wanted {
        match item["externalId"]
            .as_str()
            .and_then(|id| store.series.get(id).map(|s| (id, s)))
        {
            Some((id, series)) => found.push(describe(id, series)),
            None => absent.push(item.clone()),
        }
    }
    if !absent.is_empty() && !ignore {
        return Err(missing("Time series not found", absent));
    }
    Ok(ok(StatusCode::OK, json!({"items": found})))
}

/// A time series as CDF describes it.
pub fn describe(external_id: &str, series: &Series) -> Value {
    let mut out = json!({
        "id": series.id, "externalId": external_id, "isString": series.is_string,
        "isStep": false, "metadata": {}, "securityCategories": [],
        "createdTime": series.created, "lastUpdatedTime": series.created,
    });
    if let Some(data_set) = series.data_set_id {
        out["dataSetId"] = data_set.into();
    }
    out
}
