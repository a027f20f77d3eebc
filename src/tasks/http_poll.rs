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
//!     allowed-origins: []      # with auth: session, origins besides session.base-url's
//!     max-body-size: 64MiB     # per page; a larger answer fails the run
//!   sink: {type: http, path: timeseries/data, wrap: items, batch-size: 500}
//! ```
//!
//! Both kinds of source go through the shared session's send loop (retries, backoff,
//! `Retry-After`, `max-in-flight`); `auth: none` only leaves out the token and `session.headers`.
//! Pagination ends at a page without `next`, and fails the run at a `next` that leads back to a
//! page of the same run, at one that leaves the allowed origins (`auth: session`), or after
//! 10,000 pages.

mod events;
mod trail;

use std::collections::BTreeMap;
use std::fmt;

use reqwest::header::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use url::{Origin, Url};

use crate::config::{BuildError, ByteSize};
use crate::redact;
use crate::runner::{Task, TaskContext, TaskError};
use crate::session::{self, parse_origin, Session};
use events::CursorMissing;
use trail::Trail;

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
    /// `none`: no token and no `session.headers`; `session`: with the bearer token, and relative
    /// URLs resolved against `session.base-url`.
    #[serde(default)]
    pub auth: SourceAuth,
    /// With `auth: session`, the origins (`https://api.example.com:8443`) besides
    /// `session.base-url`'s that may receive the bearer token: the source URL's, if it is
    /// elsewhere, and any that `next` links lead to. Any other origin fails the run.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The largest page body read (`64MiB`, `512KiB`, or bytes); a larger one fails the run
    /// before it fills the memory.
    #[serde(default = "default_max_body_size")]
    pub max_body_size: ByteSize,
}

fn default_max_body_size() -> ByteSize {
    ByteSize::mib(64)
}

/// Hand-written: the URL's query and the header values may hold API keys.
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
            .field("allowed_origins", &self.allowed_origins)
            .field("max_body_size", &self.max_body_size)
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
    /// With the shared session's token (only to `session.base-url`'s origin and
    /// `allowed-origins`) and base URL.
    Session,
}

/// The built task.
#[derive(Debug)]
pub struct HttpPoll {
    config: HttpPollConfig,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// `source.allowed-origins`, parsed.
    origins: Vec<Origin>,
}

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
    let origins = allowed_origins(source)?;
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
    Ok(HttpPoll {
        config,
        headers,
        origins,
    })
}

/// `source.allowed-origins`: each an origin, and only where a token is sent at all.
fn allowed_origins(source: &SourceConfig) -> Result<Vec<Origin>, BuildError> {
    if source.auth == SourceAuth::None && !source.allowed_origins.is_empty() {
        return Err(BuildError::at(
            "source.allowed-origins",
            "only applies to auth: session (with auth: none no token is sent anywhere)",
        ));
    }
    source
        .allowed_origins
        .iter()
        .enumerate()
        .map(|(index, text)| {
            parse_origin(text).map_err(|error| {
                BuildError::at(
                    &format!("source.allowed-origins[{index}]"),
                    error.to_string(),
                )
            })
        })
        .collect()
}

impl HttpPoll {
    /// The session handle of this source: without any credentials for `auth: none`, else
    /// sending the token to `session.base-url`'s origin and `source.allowed-origins` only.
    fn session(&self, ctx: &TaskContext) -> Session {
        match self.config.source.auth {
            SourceAuth::None => ctx.session().unauthenticated(),
            SourceAuth::Session => ctx.session().allowing_origins(self.origins.iter().cloned()),
        }
    }

    /// The cursor this run starts from: the saved one, else `initial-cursor`.
    fn start_cursor(&self, ctx: &TaskContext) -> Result<Value, TaskError> {
        let saved: Option<Value> = ctx.state().get("cursor")?;
        Ok(match saved {
            Some(Value::Null) | None => Value::String(self.config.source.initial_cursor.clone()),
            Some(saved) => saved,
        })
    }

    /// The first page: `source.url` with the run's start cursor, resolved.
    fn first_url(&self, start: &Value, session: &Session) -> Result<Url, TaskError> {
        let source = &self.config.source;
        let cursor = match start {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        let encoded: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();
        let text = source.url.replace("{cursor}", &encoded);
        let url = session.resolve(&text).map_err(|_| {
            TaskError::msg(format!(
                "source.url: {:?} is not a URL (a relative one needs auth: session and session.base-url)",
                redact::url(&text)
            ))
        })?;
        if source.auth == SourceAuth::Session && !session.sends_token_to(&url) {
            return Err(TaskError::msg(format!(
                "source.url: {} is not session.base-url's origin; list it in \
                 source.allowed-origins to send the bearer token there, or use auth: none",
                session::OriginOf(&url)
            )));
        }
        Ok(url)
    }

    /// The page after `page`: its `source.next` link resolved against it, if there is one.
    fn next_url(
        &self,
        session: &Session,
        page: &Url,
        body: &Value,
    ) -> Result<Option<Url>, TaskError> {
        let source = &self.config.source;
        let next = source
            .next
            .as_deref()
            .and_then(|pointer| body.pointer(pointer))
            .and_then(Value::as_str)
            .filter(|next| !next.is_empty());
        let Some(next) = next else {
            return Ok(None);
        };
        let url = page
            .join(next)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| {
                TaskError::msg(format!(
                    "source.next: {} answered {:?}, which is not an http(s) URL",
                    redact::url(page.as_str()),
                    redact::url(next)
                ))
            })?;
        if source.auth == SourceAuth::Session && !session.sends_token_to(&url) {
            return Err(TaskError::msg(format!(
                "source.next: {} links to {}, which is neither session.base-url's origin nor in \
                 source.allowed-origins; not following it, so the bearer token does not go there",
                redact::url(page.as_str()),
                session::OriginOf(&url)
            )));
        }
        Ok(Some(url))
    }

    async fn fetch(
        &self,
        ctx: &TaskContext,
        session: &Session,
        url: &Url,
    ) -> Result<Value, TaskError> {
        let mut request = session.get(url.as_str());
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        let response = tokio::select! {
            response = request.send() => response?,
            _ = ctx.cancelled() => return Err(TaskError::Cancelled),
        };
        let status = response.status();
        if !status.is_success() {
            return Err(TaskError::msg(format!(
                "GET {} answered {status}",
                redact::url(url.as_str())
            )));
        }
        let body = tokio::select! {
            body = session::read_body(response, self.config.source.max_body_size) => body.map_err(too_large_hint)?,
            _ = ctx.cancelled() => return Err(TaskError::Cancelled),
        };
        serde_json::from_slice(&body).map_err(|e| {
            TaskError::with(
                format!("{} did not answer JSON", redact::url(url.as_str())),
                e,
            )
        })
    }
}

/// Says which key to raise when a page was too large.
fn too_large_hint(error: session::Error) -> TaskError {
    match error {
        error @ session::Error::BodyTooLarge { .. } => TaskError::with(
            "a page is over source.max-body-size (raise it if the source's pages really are this large)",
            error,
        ),
        error => error.into(),
    }
}

#[async_trait::async_trait]
impl Task for HttpPoll {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let source = &self.config.source;
        let session = self.session(&ctx);
        let start = self.start_cursor(&ctx)?;
        let mut url = self.first_url(&start, &session)?;
        let mut trail = Trail::default();
        let mut next_cursor = None;
        let mut cursor_seen = false;
        let mut total = 0usize;
        let mut output = ctx.output()?;
        output.set_cursor(start);
        loop {
            trail.enter(&url)?;
            if ctx.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            let mut body = self.fetch(&ctx, &session, &url).await?;
            if let Some(pointer) = &source.cursor {
                if let Some(value) = body.pointer(pointer) {
                    cursor_seen = true;
                    if !value.is_null() {
                        next_cursor = Some(value.clone());
                    }
                }
            }
            let next = self.next_url(&session, &url, &body)?;
            // Taken out of the page, not copied: the page is not needed any more.
            let records = match source.records.as_deref() {
                None | Some("") => Some(&mut body),
                Some(pointer) => body.pointer_mut(pointer),
            };
            let Some(Value::Array(records)) = records.map(Value::take) else {
                return Err(TaskError::msg(format!(
                    "{} answered no records array at {:?}",
                    redact::url(url.as_str()),
                    source.records.as_deref().unwrap_or("")
                )));
            };
            ctx.records_extracted(records.len() as u64);
            total += records.len();
            output.extend(records).await?;
            match next {
                Some(next) => url = next,
                None => break,
            }
        }
        output.flush().await?;
        // Every page was delivered: only now may the cursor move.
        if let Some(cursor) = next_cursor {
            ctx.state().set("cursor", &cursor)?;
        }
        if let Some(pointer) = source
            .cursor
            .as_deref()
            .filter(|_| !cursor_seen && total > 0)
        {
            CursorMissing {
                task: ctx.name(),
                pointer,
                records: total,
            }
            .emit();
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
    fn allowed_origins_must_be_origins_and_need_session_auth() {
        let error = build(config(
            "source: {url: readings, auth: session, allowed-origins: ['https://ok.example', 'https://x.example/path']}",
        ))
        .unwrap_err();
        assert_eq!(error.key(), Some("source.allowed-origins[1]"));
        let error = build(config(
            "source: {url: 'https://s.example/r', allowed-origins: ['https://s.example']}",
        ))
        .unwrap_err();
        assert_eq!(error.key(), Some("source.allowed-origins"));
        assert!(build(config(
            "source: {url: readings, auth: session, allowed-origins: ['https://ok.example:8443']}",
        ))
        .is_ok());
    }

    #[test]
    fn max_body_size_defaults_to_64_mib_and_takes_units() {
        let source = |yaml: &str| config(yaml).source.max_body_size;
        assert_eq!(
            source("source: {url: 'https://s.example/r'}"),
            ByteSize::mib(64)
        );
        assert_eq!(
            source("source: {url: 'https://s.example/r', max-body-size: 512KiB}"),
            ByteSize::new(512 * 1024)
        );
        assert!(serde_yaml::from_str::<HttpPollConfig>(
            "source: {url: 'https://s.example/r', max-body-size: lots}"
        )
        .is_err());
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
