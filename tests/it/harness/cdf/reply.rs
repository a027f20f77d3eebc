//! CDF's answers: JSON bodies, and the error shape with `missing` and `duplicated`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// `status` with a JSON body.
pub fn ok(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// `{"error":{"code","message"}}`.
pub fn cdf_error(status: StatusCode, message: &str) -> Response {
    ok(
        status,
        json!({"error": {"code": status.as_u16(), "message": message}}),
    )
}

/// 400 `{"error":{..., "missing": [...]}}`.
pub fn missing(message: &str, items: Vec<Value>) -> Response {
    let code = StatusCode::BAD_REQUEST;
    ok(
        code,
        json!({"error": {"code": 400, "message": message, "missing": items}}),
    )
}

/// 409 `{"error":{..., "duplicated": [...]}}`.
pub fn duplicated(items: Vec<Value>) -> Response {
    let body = json!({"error": {"code": 409, "message": "Resource(s) already exist", "duplicated": items}});
    ok(StatusCode::CONFLICT, body)
}

/// 400 for a request over an API limit.
pub fn over_limit(what: &str, count: usize, limit: usize) -> Response {
    let message = format!("{what}: {count} is more than the limit of {limit} per request");
    cdf_error(StatusCode::BAD_REQUEST, &message)
}

/// 400 for a malformed request.
pub fn bad(message: &str) -> Response {
    cdf_error(StatusCode::BAD_REQUEST, message)
}

/// The `items` array of a request body, at most `limit` long.
pub fn items(body: &Value, what: &str, limit: usize) -> Result<Vec<Value>, Response> {
    let items = body["items"]
        .as_array()
        .ok_or_else(|| bad("the body has no items array"))?;
    if items.len() > limit {
        return Err(over_limit(what, items.len(), limit));
    }
    Ok(items.clone())
}

/// A query parameter.
pub fn param<'a>(query: &'a str, name: &str) -> Option<std::borrow::Cow<'a, str>> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}
