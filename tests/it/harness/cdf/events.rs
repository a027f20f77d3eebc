//! Events: `POST /events` (≤ 1,000; an external id that exists, or twice in the request, is 409
//! `duplicated` and nothing is created), `POST /events/update` (≤ 1,000; `set`, `setNull`, and
//! `add`/`remove` for `metadata` and `assetIds`; events that do not exist are named in `missing`
//! and nothing is updated), `POST /events/byids` and `POST /events/list`.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::reply::{bad, duplicated, items, missing, now_ms, ok};
use super::{Answer, Event, Store};

const FIELDS: [&str; 10] = [
    "externalId",
    "startTime",
    "endTime",
    "type",
    "subtype",
    "description",
    "metadata",
    "assetIds",
    "dataSetId",
    "source",
];

pub fn create(store: &mut Store, body: &Value) -> Answer {
    let wanted = items(body, "events", 1_000)?;
    let mut seen = HashSet::new();
    let mut taken = Vec::new();
    for event in &wanted {
        let fields = event
            .as_object()
            .ok_or_else(|| bad("an event is an object"))?;
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(&format!("Unrecognized field {unknown:?}")));
        }
        let id = fields
            .get("externalId")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("externalId is required here"))?;
        if store.events.contains_key(id) || !seen.insert(id.to_string()) {
            taken.push(json!({"externalId": id}));
        }
    }
    if !taken.is_empty() {
        return Err(duplicated(taken));
    }
    let mut created = Vec::new();
    for event in wanted {
        let mut fields = event.as_object().cloned().unwrap_or_default();
        let now = now_ms();
        fields.insert("id".into(), store.next_id().into());
        fields.insert("createdTime".into(), now.into());
        fields.insert("lastUpdatedTime".into(), now.into());
        let id = fields["externalId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        created.push(Value::Object(fields.clone()));
        store.events.insert(id, Event { fields });
    }
    Ok(ok(StatusCode::CREATED, json!({"items": created})))
}

pub fn update(store: &mut Store, body: &Value) -> Answer {
    let changes = items(body, "updates", 1_000)?;
    let mut absent = Vec::new();
    for change in &changes {
        let id = change["externalId"]
            .as_str()
            .ok_or_else(|| bad("externalId is required here"))?;
        if !store.events.contains_key(id) {
            absent.push(json!({"externalId": id}));
        }
        let update = change["update"]
            .as_object()
            .ok_or_else(|| bad("update must be an object"))?;
        if let Some(unknown) = update.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(bad(&format!("Unrecognized field {unknown:?}")));
        }
    }
    if !absent.is_empty() {
        return Err(missing("Events not found", absent));
    }
    let mut updated = Vec::new();
    for change in changes {
        let id = change["externalId"].as_str().unwrap_or_default();
        let event = store.events.get_mut(id).expect("checked above");
        for (field, how) in change["update"].as_object().into_iter().flatten() {
            apply(&mut event.fields, field, how);
        }
        event
            .fields
            .insert("lastUpdatedTime".into(), now_ms().into());
        updated.push(Value::Object(event.fields.clone()));
    }
    Ok(ok(StatusCode::OK, json!({"items": updated})))
}

/// One field's change: `set`, `setNull`, or `add`/`remove` on `metadata` (an object) or
/// `assetIds` (a list).
fn apply(fields: &mut Map<String, Value>, field: &str, how: &Value) {
    if let Some(value) = how.get("set") {
        fields.insert(field.into(), value.clone());
        return;
    }
    if how["setNull"] == json!(true) {
        fields.remove(field);
        return;
    }
    let empty = if field == "assetIds" {
        json!([])
    } else {
        json!({})
    };
    match fields.entry(field.to_string()).or_insert(empty) {
        Value::Object(map) => {
            for (k, v) in how["add"].as_object().into_iter().flatten() {
                map.insert(k.clone(), v.clone());
            }
            for k in how["remove"].as_array().into_iter().flatten() {
                map.remove(k.as_str().unwrap_or_default());
            }
        }
        Value::Array(list) => {
            list.extend(how["add"].as_array().into_iter().flatten().cloned());
            let removed = how["remove"].as_array().cloned().unwrap_or_default();
            list.retain(|v| !removed.contains(v));
        }
        _ => {}
    }
}

pub fn by_ids(store: &Store, body: &Value) -> Answer {
    let wanted = items(body, "identifiers", 1_000)?;
    let ignore = body["ignoreUnknownIds"].as_bool().unwrap_or(false);
    let mut found = Vec::new();
    let mut absent = Vec::new();
    for item in wanted {
        match item["externalId"]
            .as_str()
            .and_then(|id| store.events.get(id))
        {
            Some(event) => found.push(Value::Object(event.fields.clone())),
            None => absent.push(item.clone()),
        }
    }
    if !absent.is_empty() && !ignore {
        return Err(missing("Events not found", absent));
    }
    Ok(ok(StatusCode::OK, json!({"items": found})))
}

pub fn list(store: &Store, body: &Value) -> Answer {
    let limit = body["limit"].as_u64().unwrap_or(100).min(1_000) as usize;
    let from: usize = body["cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = store
        .events
        .values()
        .skip(from)
        .take(limit)
        .map(|e| Value::Object(e.fields.clone()))
        .collect();
    let mut out = json!({"items": page});
    if from + limit < store.events.len() {
        out["nextCursor"] = (from + limit).to_string().into();
    }
    Ok(ok(StatusCode::OK, out))
}
