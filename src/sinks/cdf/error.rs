//! [`CdfError`]: what a CDF request answered when it failed. CDF's error body is
//! `{"error":{"code","message","missing","duplicated"}}`; `missing` and `duplicated` list the items
//! (`{"externalId": ...}`) the request could not apply, which the sinks act on (create the missing
//! series, update the duplicated events). The request id (`x-request-id`) goes into the message:
//! it is what Cognite support asks for.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::session;

/// A CDF request failed.
#[derive(Debug, thiserror::Error)]
pub enum CdfError {
    /// The request did not get an answer CDF could explain (transport, retries used up, 401).
    #[error(transparent)]
    Session(#[from] session::Error),
    /// The run stopped for shutdown before CDF answered.
    #[error("cancelled by shutdown")]
    Cancelled,
    /// CDF refused the request and said why.
    #[error("{0}")]
    Api(ApiError),
    /// A successful answer that is not the JSON CDF sends.
    #[error("{what} answered a body that is not CDF's JSON{}", RequestId(request_id.as_deref()))]
    Decode {
        /// The request, as `POST /timeseries/data`.
        what: String,
        /// The `x-request-id` of the answer.
        request_id: Option<String>,
    },
}

/// CDF's error body, with the status and request id of the answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The request, as `POST /timeseries/data`.
    pub what: String,
    /// The HTTP status.
    pub status: u16,
    /// `error.message`.
    pub message: String,
    /// `error.missing`: items the request named that do not exist.
    pub missing: Vec<Value>,
    /// `error.duplicated`: items that already exist.
    pub duplicated: Vec<Value>,
    /// The `x-request-id` of the answer.
    pub request_id: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} answered {}: {}",
            self.what, self.status, self.message
        )?;
        for (label, items) in [("missing", &self.missing), ("duplicated", &self.duplicated)] {
            if !items.is_empty() {
                write!(f, "; {label}: {}", Listed(items))?;
            }
        }
        write!(f, "{}", RequestId(self.request_id.as_deref()))
    }
}

impl ApiError {
    /// Reads CDF's error body; a body of another shape keeps its start as the message.
    pub fn parse(what: &str, status: u16, body: &[u8], request_id: Option<String>) -> Self {
        #[derive(Deserialize)]
        struct Body {
            error: Inner,
        }
        #[derive(Deserialize)]
        struct Inner {
            #[serde(default)]
            message: String,
            #[serde(default)]
            missing: Vec<Value>,
            #[serde(default)]
            duplicated: Vec<Value>,
        }
        let (message, missing, duplicated) = match serde_json::from_slice::<Body>(body) {
            Ok(Body { error }) => (error.message, error.missing, error.duplicated),
            Err(_) => (crate::session::excerpt(body), Vec::new(), Vec::new()),
        };
        Self {
            what: what.to_string(),
            status,
            message,
            missing,
            duplicated,
            request_id,
        }
    }

    /// The external ids among `missing`.
    pub fn missing_external_ids(&self) -> Vec<String> {
        external_ids(&self.missing)
    }

    /// The external ids among `duplicated`.
    pub fn duplicated_external_ids(&self) -> Vec<String> {
        external_ids(&self.duplicated)
    }
}

fn external_ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| item["externalId"].as_str().map(str::to_string))
        .collect()
}

/// At most five items, then how many more.
struct Listed<'a>(&'a [Value]);

impl fmt::Display for Listed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().take(5).map(Value::to_string).collect();
        f.write_str(&shown.join(", "))?;
        match self.0.len().saturating_sub(5) {
            0 => Ok(()),
            more => write!(f, " and {more} more"),
        }
    }
}

/// ` (request id X)`, or nothing.
struct RequestId<'a>(Option<&'a str>);

impl fmt::Display for RequestId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (request id {id})"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_shape_is_read_with_its_request_id() {
        let body = br#"{"error":{"code":400,"message":"Time series not found","missing":[{"externalId":"a"},{"externalId":"b"}]}}"#;
        let error = ApiError::parse("POST /timeseries/data", 400, body, Some("r-1".into()));
        assert_eq!(error.missing_external_ids(), ["a", "b"]);
        assert!(error.duplicated.is_empty());
        let text = error.to_string();
        assert_eq!(
            text,
            r#"POST /timeseries/data answered 400: Time series not found; missing: {"externalId":"a"}, {"externalId":"b"} (request id r-1)"#
        );
    }

    #[test]
    fn a_body_of_another_shape_is_kept_short() {
        let body = "x".repeat(1000);
        let error = ApiError::parse("POST /events", 502, body.as_bytes(), None);
        assert_eq!(error.message, format!("{}…", "x".repeat(300)));
        assert!(!error.to_string().contains("request id"));
    }

    #[test]
    fn long_lists_are_cut() {
        let missing: Vec<Value> = (0..8)
            .map(|n| serde_json::json!({"externalId": n.to_string()}))
            .collect();
        let body =
            serde_json::to_vec(&serde_json::json!({"error": {"message": "m", "missing": missing}}))
                .unwrap();
        let text = ApiError::parse("x", 400, &body, None).to_string();
        assert!(text.ends_with("and 3 more"), "{text}");
    }
}
