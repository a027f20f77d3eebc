//! [`Session`], the handle tasks hold, and its send loop, which carries out the retry policy.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use reqwest::header::AUTHORIZATION;
use reqwest::{Method, Response};
use tracing::Instrument;
use url::{Origin, Url};

use super::error::excerpt;
use super::events::{AttemptFinished, RetryScheduled, TokenRejected};
use super::limit::InFlightLimit;
use super::origin::{OriginOf, TokenOrigins};
use super::request::Prepared;
use super::retry::{Decision, GiveUp, Outcome, Progress, RetryPolicy, Wait};
use super::{client, Error, RequestBuilder, BODY_EXCERPT_BYTES};
use crate::auth::{AccessToken, Credentials};
use crate::config::SessionConfig;
use crate::retry_after;

/// A cheap-to-clone handle on the shared client, its base URL, retry policy, in-flight limit and
/// the process's credentials. Clone it into every task (or use [`Session::for_task`]).
#[derive(Clone, Debug)]
pub struct Session {
    shared: Arc<Shared>,
    task: Option<Arc<str>>,
    /// The `task` label of metrics: the task, or empty.
    label: Arc<str>,
    access: Access,
}

/// What a handle's requests carry besides the request's own headers.
#[derive(Clone, Debug)]
enum Access {
    /// `session.headers` and, at these origins only, the bearer token.
    Token(TokenOrigins),
    /// Neither: for third-party sources that must never see the API's credentials.
    Anonymous,
}

struct Shared {
    client: reqwest::Client,
    /// Same transport, no default headers and never a token: for third-party sources.
    anonymous: reqwest::Client,
    base_url: Option<Url>,
    credentials: Credentials,
    policy: RetryPolicy,
    limit: InFlightLimit,
}

/// Hand-written: the base URL may hold a password.
impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let base_url = self
            .base_url
            .as_ref()
            .map(|url| crate::redact::url(url.as_str()));
        f.debug_struct("Shared")
            .field("base_url", &base_url)
            .field("credentials", &self.credentials)
            .field("policy", &self.policy)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Builds the session from the `session:` config block.
    pub fn new(config: &SessionConfig, credentials: Credentials) -> Result<Self, Error> {
        let base_url = config
            .base_url
            .as_deref()
            .map(|base| Url::parse(base).map_err(|_| Error::InvalidUrl(crate::redact::url(base))))
            .transpose()?;
        Ok(Self {
            access: Access::Token(TokenOrigins::of_base(base_url.as_ref())),
            shared: Arc::new(Shared {
                client: client::build(config)?,
                anonymous: crate::transport::client(config)?,
                base_url,
                credentials,
                policy: RetryPolicy::from_config(&config.retries),
                limit: InFlightLimit::new(config.max_in_flight),
            }),
            task: None,
            label: Arc::from(""),
        })
    }

    /// The same session, labelling its requests' metrics and logs with `task`.
    pub fn for_task(&self, task: &str) -> Self {
        let task: Arc<str> = task.into();
        Self {
            task: Some(task.clone()),
            label: task,
            ..self.clone()
        }
    }

    /// The task this handle labels its requests with, if any.
    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// The same session without its default headers or token, for sources that must never see
    /// the API's credentials. Everything else is shared: the transport (timeouts, proxy, CA
    /// roots, user agent), retries with backoff and `Retry-After`, and the `max-in-flight` slots.
    pub fn unauthenticated(&self) -> Self {
        Self {
            access: Access::Anonymous,
            ..self.clone()
        }
    }

    /// The same session, also sending its token to `origins` (besides `session.base-url`'s).
    /// An unauthenticated handle stays unauthenticated.
    ///
    /// Only for origins the operator named in the config: an origin taken from response data
    /// would undo the protection (see [`Session::sends_token_to`]).
    pub fn allowing_origins(&self, origins: impl IntoIterator<Item = Origin>) -> Self {
        let access = match &self.access {
            Access::Token(allowed) => Access::Token(allowed.with(origins)),
            Access::Anonymous => Access::Anonymous,
        };
        Self {
            access,
            ..self.clone()
        }
    }

    /// Whether a request to `url` through this handle may carry the bearer token: `url` is at
    /// `session.base-url`'s origin (scheme, host and port) or at one of the origins allowed with
    /// [`Session::allowing_origins`]. An authenticated request anywhere else is refused with
    /// [`Error::OriginNotAllowed`] before it is sent; an unauthenticated handle sends no token,
    /// so nothing is refused there.
    pub fn sends_token_to(&self, url: &Url) -> bool {
        match &self.access {
            Access::Token(allowed) => allowed.allows(url),
            Access::Anonymous => false,
        }
    }

    /// The credentials whose tokens this session sends.
    pub fn credentials(&self) -> &Credentials {
        &self.shared.credentials
    }

    /// A GET request to `path` (absolute, or relative to `base-url`).
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A POST request to `path` (absolute, or relative to `base-url`).
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// A PUT request to `path` (absolute, or relative to `base-url`).
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    /// A PATCH request to `path` (absolute, or relative to `base-url`).
    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    /// A DELETE request to `path` (absolute, or relative to `base-url`).
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// A request with any method to `path` (absolute, or relative to `base-url`).
    ///
    /// With `base-url: https://api.example.com/api/v1/`, `"items"` means
    /// `https://api.example.com/api/v1/items` (URL joining rules: keep the trailing `/` on the
    /// base, and no leading `/` on the path).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, self.resolve(path))
    }

    /// The absolute URL `path` means for this session: itself when absolute, else joined to
    /// `base-url`.
    pub fn resolve(&self, path: &str) -> Result<Url, Error> {
        let joined = match &self.shared.base_url {
            Some(base) => base.join(path),
            None => Url::parse(path),
        };
        joined.map_err(|_| Error::InvalidUrl(crate::redact::url(path)))
    }

    /// The send loop: attempt, ask the policy, wait or refresh, attempt again.
    pub(super) async fn send(&self, request: Prepared) -> Result<Response, Error> {
        let span = tracing::info_span!(
            "http",
            method = %request.method,
            host = request.url.host_str().unwrap_or(""),
            path = request.url.path(),
            task = self.task.as_deref().unwrap_or(""),
        );
        self.send_loop(request).instrument(span).await
    }

    async fn send_loop(&self, mut request: Prepared) -> Result<Response, Error> {
        let shared = &*self.shared;
        let task = &self.label;
        let mut delays = shared.policy.backoff().delays();
        let mut progress = Progress {
            replayable: request.body.replayable(),
            ..Progress::default()
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // The slot first, then the token: a request that waited for a slot must not carry a
            // token that expired meanwhile.
            let permit = shared.limit.acquire().await;
            // The token is looked up at every attempt: a retry after a refresh carries the new one.
            let token = self.token_for(&request).await?;
            let mut outgoing = reqwest::Request::new(request.method.clone(), request.url.clone());
            *outgoing.headers_mut() = request.headers.clone();
            if let Some(token) = &token {
                outgoing
                    .headers_mut()
                    .insert(AUTHORIZATION, token.header().clone());
            }
            *outgoing.body_mut() = request.body.for_attempt();
            *outgoing.timeout_mut() = request.timeout;

            let started = Instant::now();
            let result = self.client().execute(outgoing).await;
            let elapsed = started.elapsed();
            drop(permit);

            let outcome = match &result {
                Ok(response) => Outcome::Response {
                    status: response.status(),
                    retry_after: retry_after::from_headers(response.headers(), SystemTime::now()),
                },
                Err(error) if error.is_timeout() => Outcome::Timeout,
                Err(error) if error.is_connect() => Outcome::Connect,
                Err(_) => Outcome::Transport,
            };
            AttemptFinished {
                task,
                method: &request.method,
                attempt,
                outcome: &outcome,
                elapsed,
            }
            .emit();

            progress.authenticated = token.is_some();
            match shared.policy.decide(&outcome, &progress) {
                Decision::Done => {
                    let Ok(response) = result else {
                        unreachable!("the policy says Done only for a response")
                    };
                    return Ok(response);
                }
                Decision::Refresh => {
                    TokenRejected { task, attempt }.emit();
                    if let Some(token) = &token {
                        shared.credentials.invalidate(token);
                    }
                    progress.refreshed = true;
                }
                Decision::Retry { after, reason } => {
                    let wait = match after {
                        Wait::RetryAfter(wait) => wait,
                        Wait::Backoff => delays.next().unwrap_or_default(),
                    };
                    RetryScheduled {
                        task,
                        attempt,
                        reason,
                        after: wait,
                    }
                    .emit();
                    progress.retries += 1;
                    tokio::time::sleep(wait).await;
                }
                Decision::GiveUp(GiveUp::NotRetryable) if request.answers(&result) => {
                    return result.map_err(|_| unreachable!("only a response is answered"));
                }
                Decision::GiveUp(why) => {
                    return Err(give_up(&request, result, attempt, why).await);
                }
            }
        }
    }

    /// The client of this handle's [`Access`]: with or without `session.headers`.
    fn client(&self) -> &reqwest::Client {
        match self.access {
            Access::Token(_) => &self.shared.client,
            Access::Anonymous => &self.shared.anonymous,
        }
    }

    /// The token to attach to `request`, if any; an error when there is one and `request` goes
    /// to an origin it is not meant for.
    async fn token_for(&self, request: &Prepared) -> Result<Option<Arc<AccessToken>>, Error> {
        let Access::Token(allowed) = &self.access else {
            return Ok(None);
        };
        let token = self.shared.credentials.token().await?;
        if token.is_some() && !allowed.allows(&request.url) {
            return Err(Error::OriginNotAllowed {
                method: request.method.clone(),
                origin: OriginOf(&request.url).to_string(),
                allowed: allowed.describe(),
            });
        }
        Ok(token)
    }
}

/// The error for the last attempt's result.
async fn give_up(
    request: &Prepared,
    result: Result<Response, reqwest::Error>,
    attempts: u32,
    why: GiveUp,
) -> Error {
    let url = crate::redact::url(request.url.as_str());
    match result {
        Ok(response) => {
            let status = response.status();
            let body = if status.is_client_error() {
                Some(excerpt(&read_head(response).await))
            } else {
                None
            };
            Error::Status {
                method: request.method.clone(),
                url,
                status,
                attempts,
                why,
                body,
            }
        }
        Err(source) => Error::Transport {
            method: request.method.clone(),
            url,
            what: if source.is_timeout() {
                "timed out"
            } else if source.is_connect() {
                "could not connect"
            } else {
                "failed"
            },
            attempts,
            why,
            source: source.without_url(),
        },
    }
}

/// The first bytes of a response body, without reading a huge body to its end.
async fn read_head(mut response: Response) -> Vec<u8> {
    let mut head = Vec::new();
    while head.len() <= BODY_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => head.extend_from_slice(&chunk),
            _ => break,
        }
    }
    head
}
