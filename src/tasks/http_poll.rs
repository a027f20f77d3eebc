//! `type: http-poll`: GET a source URL on the task's schedule, follow pagination, deliver the
//! records to a sink, and only then save the cursor for the next run.
//!
//! ```yaml
//! - name: readings
//!   type: http-poll
//!   schedule: {interval: 60s}
//!   source:
//!     url: "https://source.example.com/readings?since={cursor}"
//!     records: /items          # JSON pointer to the records array; default: the body itself
//!     cursor: /next_cursor     # JSON pointer to the next cursor; saved after delivery
//!     initial-cursor: ""       # used before any cursor was saved
//!     next: /links/next        # JSON pointer to the next page's URL (pagination)
//!     headers: {accept: application/json}
//!     auth: none               # none (default) | session (send the shared bearer token)
//!   sink: {type: http, path: timeseries/data, wrap: items, batch-size: 500}
//! ```

use std::collections::BTreeMap;
use std::fmt;

use reqwest::header::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::config::BuildError;
use crate::redact;
use crate::runner::{Task, TaskContext, TaskError};

/// `type: http-poll`: poll a URL and follow its pages; the records go to the task's `sink:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpPollConfig {
    /// Where records come from.
    pub source: SourceConfig,
}

/// `source:` of an `http-poll` task.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SourceConfig {
    /// The URL; `{cursor}` is replaced by the saved cursor (URL-encoded).
    pub url: String,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON pointer to the array of records; default: the body, which must then be an array.
    pub records: Option<String>,
    /// JSON pointer to the value saved as the next cursor.
    pub cursor: Option<String>,
    /// The cursor before any was saved.
    #[serde(default)]
    pub initial_cursor: String,
    /// JSON pointer to the next page's URL (absolute or relative to the page's URL); pages are
    /// followed until it is missing, null or empty.
    pub next: Option<String>,
    /// `none`: a plain request; `session`: through the shared session, with the bearer token.
    #[serde(default)]
    pub auth: SourceAuth,
}

/// Hand-written: the URL's password and query and the header values may hold API keys.
impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceConfig")
            .field("url", &redact::url(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("records", &self.records)
            .field("cursor", &self.cursor)
            .field("initial_cursor", &self.initial_cursor)
            .field("next", &self.next)
            .field("auth", &self.auth)
            .finish()
    }
}

/// Whether the source gets the bearer token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceAuth {
    /// No Authorization header: the source is a different service than the target API.
    #[default]
    None,
    /// Through the shared session (base URL, bearer token, retries).
    Session,
}

/// The built task.
#[derive(Debug)]
pub struct HttpPoll {
    config: HttpPollConfig,
    headers: Vec<(HeaderName, HeaderValue)>,
}

const MAX_PAGES: usize = 10_000;

/// Builds an `http-poll` task, checking what serde cannot.
pub fn build(config: HttpPollConfig) -> Result<HttpPoll, BuildError> {
    let source = &config.source;
    for (key, pointer) in [
        ("records", &source.records),
        ("cursor", &source.cursor),
        ("next", &source.next),
    ] {
        if let Some(pointer) = pointer {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(BuildError::at(
                    &format!("source.{key}"),
                    format!(
                        "{pointer:?} is not a JSON pointer; write it like /items or /data/next"
                    ),
                ));
            }
        }
    }
    if source.auth == SourceAuth::None {
        let sample = source.url.replace("{cursor}", "x");
        match Url::parse(&sample) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(BuildError::at(
                    "source.url",
                    format!("{:?} is not an absolute http(s) URL (relative URLs need auth: session and session.base-url)", redact::url(&source.url)),
                ))
            }
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &source.headers {
        let key = format!("source.headers.{name}");
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BuildError::at(&key, "not a valid header name"))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| BuildError::at(&key, "not a valid header value"))?;
        // Configured headers often carry API keys: keep them out of `Debug` and HPACK tables.
        value.set_sensitive(true);
        headers.push((name, value));
    }
    Ok(HttpPoll { config, headers })
}

impl HttpPoll {
    async fn fetch(&self, ctx: &TaskContext, url: &str) -> Result<Value, TaskError> {
        let response = match self.config.source.auth {
            SourceAuth::Session => {
                let mut request = ctx.session().get(url);
                for (name, value) in &self.headers {
                    request = request.header(name.clone(), value.clone());
                }
                tokio::select! {
                    response = request.send() => response?,
                    _ = ctx.cancelled() => return Err(TaskError::Cancelled),
                }
            }
            SourceAuth::None => {
                let mut request = ctx.session().unauthenticated().get(url);
                for (name, value) in &self.headers {
                    request = request.header(name.clone(), value.clone());
                }
                tokio::select! {
                    response = request.send() => response.map_err(|e| TaskError::with(format!("GET {} failed", redact::url(url)), e.without_url()))?,
                    _ = ctx.cancelled() => return Err(TaskError::Cancelled),
                }
            }
        };
        let status = response.status();
        if !status.is_success() {
            return Err(TaskError::msg(format!(
                "GET {} answered {status}",
                redact::url(url)
            )));
        }
        let body = tokio::select! {
            body = response.bytes() => body.map_err(|e| TaskError::with(format!("reading {} failed", redact::url(url)), e.without_url()))?,
            _ = ctx.cancelled() => return Err(TaskError::Cancelled),
        };
        serde_json::from_slice(&body)
            .map_err(|e| TaskError::with(format!("{} did not answer JSON", redact::url(url)), e))
    }
}

#[async_trait::async_trait]
impl Task for HttpPoll {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let source = &self.config.source;
        let saved: Option<Value> = ctx.state().get("cursor")?;
        let cursor = match &saved {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Null) | None => source.initial_cursor.clone(),
            Some(other) => other.to_string(),
        };
        let encoded: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        let mut url = source.url.replace("{cursor}", &encoded);
        let mut next_cursor = None;
        let mut total = 0usize;
        let mut output = ctx.output()?;
        for page in 0.. {
            if page == MAX_PAGES {
                return Err(TaskError::msg(format!(
                    "stopped after {MAX_PAGES} pages; check source.next"
                )));
            }
            if ctx.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            let body = self.fetch(&ctx, &url).await?;
            let records = match source.records.as_deref() {
                None | Some("") => body.as_array(),
                Some(pointer) => body.pointer(pointer).and_then(Value::as_array),
            };
            let Some(records) = records else {
                return Err(TaskError::msg(format!(
                    "{} answered no records array at {:?}",
                    redact::url(&url),
                    source.records.as_deref().unwrap_or("")
                )));
            };
            ctx.records_extracted(records.len() as u64);
            total += records.len();
            output.extend(records.iter().cloned()).await?;
            if let Some(pointer) = &source.cursor {
                if let Some(value) = body.pointer(pointer).filter(|v| !v.is_null()) {
                    next_cursor = Some(value.clone());
                }
            }
            let next = source
                .next
                .as_deref()
                .and_then(|pointer| body.pointer(pointer))
                .and_then(Value::as_str)
                .filter(|next| !next.is_empty());
            match next {
                Some(next) => {
                    let base = Url::parse(&url).ok();
                    url = match base.and_then(|base| base.join(next).ok()) {
                        Some(joined) => joined.to_string(),
                        None => next.to_string(),
                    };
                }
                None => break,
            }
        }
        output.flush().await?;
        // Every page was delivered: only now may the cursor move.
        if let Some(cursor) = next_cursor {
            ctx.state().set("cursor", &cursor)?;
        }
        tracing::info!(records = total, "poll done");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> HttpPollConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn accepts_the_deploy_configmap_keys() {
        let task = build(config(
            r#"
source: {url: "https://source.example.com/readings?since={cursor}", records: /items, cursor: /next_cursor}
"#,
        ));
        assert!(task.is_ok(), "{task:?}");
    }

    #[test]
    fn debug_shows_neither_header_values_nor_the_query() {
        let task = build(config(
            "source: {url: \"https://s.example/r?api_key=k3y-Q\", headers: {x-api-key: k3y-H}}",
        ))
        .unwrap();
        let debug = format!("{task:?}");
        assert!(
            !debug.contains("k3y-Q") && !debug.contains("k3y-H"),
            "{debug}"
        );
        assert!(debug.contains("x-api-key"), "{debug}");
    }

    #[test]
    fn rejects_a_relative_url_without_session_auth() {
        let error = build(config("source: {url: readings}")).unwrap_err();
        assert_eq!(error.key(), Some("source.url"));
    }

    #[test]
    fn rejects_a_pointer_without_slash() {
        let error = build(config(
            "source: {url: 'http://127.0.0.1/x', records: items}",
        ))
        .unwrap_err();
        assert_eq!(error.key(), Some("source.records"));
    }
}
