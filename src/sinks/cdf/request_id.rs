//! The `x-request-id` CDF puts on every answer: the one thing Cognite support needs to find a
//! request in their logs, so every CDF error carries it.

use reqwest::header::HeaderMap;

/// The header's name.
pub const HEADER: &str = "x-request-id";

/// The request id of an answer, if it has a readable one.
pub fn of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}
