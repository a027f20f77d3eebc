//! Extraction pipeline runs: `POST /extpipes/runs` (status `success`, `failure` or `seen`, a
//! message of at most 1,000 characters, a registered pipeline) and the SDK's two ways to list
//! them (`GET /extpipes/runs?externalId=` and `POST /extpipes/runs/list`), newest first; and
//! config revisions: `POST /extpipes/config` adds one, `GET /extpipes/config?externalId=
//! [&revision=]` reads the newest (or the one named).

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::reply::{bad, items, missing, now_ms, ok, param};
use super::{Answer, Run, Store};

pub fn create(store: &mut Store, body: &Value) -> Answer {
    let runs = items(body, "runs", 1_000)?;
    let mut unknown = Vec::new();
    for run in &runs {
        let id = run["externalId"]
            .as_str()
            .ok_or_else(|| bad("externalId is required"))?;
        if !matches!(run["status"].as_str(), Some("success" | "failure" | "seen")) {
            return Err(bad("status must be success, failure or seen"));
        }
        if run["message"]
            .as_str()
            .is_some_and(|m| m.chars().count() > 1000)
        {
            return Err(bad("message is longer than 1000 characters"));
        }
        if !store.pipelines.contains(id) {
            unknown.push(json!({"externalId": id}));
        }
    }
    if !unknown.is_empty() {
        return Err(missing("Extraction pipeline not found", unknown));
    }
    let mut created = Vec::new();
    for run in runs {
        let run = Run {
            id: store.next_id(),
            external_id: run["externalId"].as_str().unwrap_or_default().to_string(),
            status: run["status"].as_str().unwrap_or_default().to_string(),
            message: run["message"].as_str().map(str::to_string),
            created_time: run["createdTime"].as_i64().unwrap_or_else(now_ms),
        };
        created.push(describe(&run));
        store.runs.push(run);
    }
    Ok(ok(StatusCode::CREATED, json!({"items": created})))
}

pub fn list(store: &Store, body: &Value) -> Answer {
    let filter = &body["filter"];
    let id = filter["externalId"]
        .as_str()
        .ok_or_else(|| bad("filter.externalId is required"))?;
    let statuses: Vec<&str> = filter["statuses"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let limit = body["limit"].as_u64().unwrap_or(100) as usize;
    Ok(page(store, id, &statuses, limit))
}

pub fn list_query(store: &Store, query: &str) -> Answer {
    let id = param(query, "externalId").ok_or_else(|| bad("externalId is required"))?;
    let limit = param(query, "limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    Ok(page(store, &id, &[], limit))
}

fn page(store: &Store, id: &str, statuses: &[&str], limit: usize) -> axum::response::Response {
    let runs: Vec<Value> = store
        .runs
        .iter()
        .rev()
        .filter(|run| run.external_id == id)
        .filter(|run| statuses.is_empty() || statuses.contains(&run.status.as_str()))
        .take(limit.min(1000))
        .map(describe)
        .collect();
    ok(StatusCode::OK, json!({"items": runs}))
}

fn describe(run: &Run) -> Value {
    let mut out = json!({"id": run.id, "status": run.status, "createdTime": run.created_time});
    if let Some(message) = &run.message {
        out["message"] = message.clone().into();
    }
    out
}

pub fn create_config(store: &mut Store, body: &Value) -> Answer {
    let id = body["externalId"]
        .as_str()
        .ok_or_else(|| bad("externalId is required"))?;
    let text = body["config"]
        .as_str()
        .ok_or_else(|| bad("config must be a string"))?;
    if !store.pipelines.contains(id) {
        return Err(missing(
            "Extraction pipeline not found",
            vec![json!({"externalId": id})],
        ));
    }
    let revision = store.add_config(id, text);
    Ok(ok(StatusCode::CREATED, describe_config(id, revision, text)))
}

pub fn get_config(store: &Store, query: &str) -> Answer {
    let id = param(query, "externalId").ok_or_else(|| bad("externalId is required"))?;
    let wanted: Option<i64> = param(query, "revision").and_then(|r| r.parse().ok());
    let found = store
        .configs
        .get(id.as_ref())
        .and_then(|revisions| match wanted {
            Some(n) => revisions.iter().find(|(revision, _)| *revision == n),
            None => revisions.last(),
        });
    match found {
        Some((revision, text)) => Ok(ok(StatusCode::OK, describe_config(&id, *revision, text))),
        None => Err(super::reply::cdf_error(
            StatusCode::NOT_FOUND,
            "Extraction pipeline config not found",
        )),
    }
}

fn describe_config(id: &str, revision: i64, text: &str) -> Value {
    json!({"externalId": id, "config": text, "revision": revision, "createdTime": now_ms()})
}
