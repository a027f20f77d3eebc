//! [`CdfApi`]: requests to one CDF project through the shared session. Plain requests, no SDK:
//! the session already brings the token, retries, `Retry-After` and 401 recovery; this adds the
//! project's URLs, lets the token go to the cluster's origin, and reads CDF's answers (a JSON
//! body, or [`CdfError`] with the `missing`/`duplicated` items and the request id).

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use url::{Origin, Url};

use super::error::{ApiError, CdfError};
use super::request_id;
use crate::config::{BuildError, ByteSize, CdfConfig, Sections};
use crate::runner::{TaskContext, TaskError};
use crate::session::Session;

/// Error statuses whose body CDF fills with what to do next; the rest stay session errors.
const ANSWERED: [StatusCode; 4] = [
    StatusCode::BAD_REQUEST,
    StatusCode::NOT_FOUND,
    StatusCode::CONFLICT,
    StatusCode::UNPROCESSABLE_ENTITY,
];

/// The largest answer read: far above anything CDF sends for these requests (a page of 1,000
/// created events, a config revision), and a bound on what a wrong server can make us buffer.
const MAX_ANSWER: ByteSize = ByteSize::mib(64);

/// A request body `{"items": [...]}`, serialized straight from the sink's own values (a
/// 100,000-point request is not built as a JSON tree first).
#[derive(Debug, Serialize)]
pub struct Items<'a, T: Serialize> {
    /// The items.
    pub items: &'a [T],
}

/// One CDF project's API.
#[derive(Debug, Clone)]
pub struct CdfApi {
    config: CdfConfig,
    origin: Origin,
}

impl CdfApi {
    /// The API of the `cdf:` block (already checked by the config loader).
    pub fn new(config: &CdfConfig) -> Self {
        let origin = Url::parse(&config.base_url())
            .map(|url| url.origin())
            .unwrap_or_else(|_| Url::parse("http://invalid").expect("a URL").origin());
        Self {
            config: config.clone(),
            origin,
        }
    }

    /// The API of the file's `cdf:` block, for a sink's build; a sink without one is a problem
    /// of the sink's block.
    pub fn from_sections(sections: &Sections) -> Result<Self, BuildError> {
        sections.cdf.as_ref().map(Self::new).ok_or_else(|| {
            BuildError::new(
                "this sink writes to Cognite Data Fusion; add a top-level cdf: block with project and base-url (or cluster)",
            )
        })
    }

    /// The `cdf:` block.
    pub fn config(&self) -> &CdfConfig {
        &self.config
    }

    /// POSTs `body` to `path` (under the project) for a run, giving up at shutdown.
    pub async fn post<B>(&self, ctx: &TaskContext, path: &str, body: &B) -> Result<Value, CdfError>
    where
        B: Serialize + ?Sized + Sync,
    {
        tokio::select! {
            answer = self.send(ctx.session(), Method::POST, path, Some(body)) => answer,
            _ = ctx.cancelled() => Err(CdfError::Cancelled),
        }
    }

    /// Sends a request to `path` (under the project; an absolute `/api/...` path is under the
    /// cluster) and reads the JSON answer.
    pub async fn send<B>(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Value, CdfError>
    where
        B: Serialize + ?Sized + Sync,
    {
        let url = match path.strip_prefix('/') {
            Some(absolute) => format!("{}/{absolute}", self.config.base_url()),
            None => self.config.project_url(path),
        };
        let what = format!(
            "{method} /{}",
            path.split('?')
                .next()
                .unwrap_or(path)
                .trim_start_matches('/')
        );
        let mut request = session
            .allowing_origins([self.origin.clone()])
            .request(method, &url)
            .answer(&ANSWERED);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let request_id = request_id::of(response.headers());
        let bytes = crate::session::read_body(response, MAX_ANSWER).await?;
        if !status.is_success() {
            let error = ApiError::parse(&what, status.as_u16(), &bytes, request_id);
            return Err(CdfError::Api(error));
        }
        match bytes.is_empty() {
            true => Ok(Value::Null),
            false => {
                serde_json::from_slice(&bytes).map_err(|_| CdfError::Decode { what, request_id })
            }
        }
    }
}

impl From<CdfError> for TaskError {
    fn from(error: CdfError) -> Self {
        match error {
            CdfError::Cancelled => TaskError::Cancelled,
            CdfError::Session(error) => TaskError::Session(error),
            error => TaskError::with("writing to Cognite Data Fusion failed", error),
        }
    }
}
