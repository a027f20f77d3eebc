//! A request being built through the session.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use url::Url;

use super::{Error, Session};

/// Built by [`Session::get`] and friends; [`RequestBuilder::send`] sends it with retries.
///
/// ```no_run
/// # async fn example(session: tapline::session::Session) -> Result<(), tapline::session::Error> {
/// let response = session
///     .post("timeseries/data")
///     .query([("dry-run", "false")])
///     .json(&serde_json::json!({"items": []}))
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
pub struct RequestBuilder {
    session: Session,
    method: Method,
    url: Result<Url, Error>,
    headers: HeaderMap,
    body: Payload,
    timeout: Option<Duration>,
    answered: Vec<StatusCode>,
}

/// Hand-written: the URL may hold a password or an API key in its query.
impl std::fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self
            .url
            .as_ref()
            .map(|url| crate::redact::url(url.as_str()));
        f.debug_struct("RequestBuilder")
            .field("session", &self.session)
            .field("method", &self.method)
            .field("url", &url)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("timeout", &self.timeout)
            .field("answered", &self.answered)
            .finish()
    }
}

/// The request body, kept so that each attempt can send it again.
#[derive(Debug)]
pub(super) enum Payload {
    /// No body.
    Empty,
    /// Bytes in memory: every attempt sends the same bytes (a cheap reference-counted clone).
    Buffered(Bytes),
    /// A stream: it can be sent once, so a request with one is never retried.
    Stream(Option<reqwest::Body>),
}

impl Payload {
    /// The body for the next attempt.
    pub(super) fn for_attempt(&mut self) -> Option<reqwest::Body> {
        match self {
            Self::Empty => None,
            Self::Buffered(bytes) => Some(bytes.clone().into()),
            Self::Stream(body) => body.take(),
        }
    }

    /// Whether the body can be sent more than once.
    pub(super) fn replayable(&self) -> bool {
        !matches!(self, Self::Stream(_))
    }
}

/// Everything [`Session`]'s send loop needs, once the builder is done.
#[derive(Debug)]
pub(super) struct Prepared {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Payload,
    pub timeout: Option<Duration>,
    /// Error statuses the caller reads itself ([`RequestBuilder::answer`]).
    pub answered: Vec<StatusCode>,
}

impl Prepared {
    /// Whether `result` is a response the caller asked to read itself.
    pub(super) fn answers(&self, result: &Result<reqwest::Response, reqwest::Error>) -> bool {
        matches!(result, Ok(response) if self.answered.contains(&response.status()))
    }
}

impl RequestBuilder {
    pub(super) fn new(session: Session, method: Method, url: Result<Url, Error>) -> Self {
        Self {
            session,
            method,
            url,
            headers: HeaderMap::new(),
            body: Payload::Empty,
            timeout: None,
            answered: Vec::new(),
        }
    }

    /// Adds a header (replacing one of the same name). An `Authorization` header set here is
    /// replaced by the session's bearer token when authentication is on.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Appends query parameters, percent-encoded.
    pub fn query<K, V>(mut self, pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        if let Ok(url) = &mut self.url {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        self
    }

    /// Sets a JSON body (buffered, so it can be sent again on a retry).
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.body = Payload::Buffered(bytes.into());
            }
            Err(error) => self.url = Err(Error::Body(error)),
        }
        self
    }

    /// Sets a raw body (buffered, so it can be sent again on a retry).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Payload::Buffered(body.into());
        self
    }

    /// Sets a streaming body, e.g. a large upload read from disk. A stream can be sent only
    /// once, so such a request is never retried and never resent after a 401; the error says so.
    pub fn body_stream(mut self, body: reqwest::Body) -> Self {
        self.body = Payload::Stream(Some(body));
        self
    }

    /// Overrides `session.timeout` for each attempt of this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Hands a final response with one of `statuses` back as `Ok` instead of an error, for an API
    /// whose error bodies say what to do next (CDF names the `missing` and `duplicated` items of
    /// a 400 or 409 in full, longer than an error's excerpt). Only statuses the session would not
    /// retry are handed back; a `retry-on` status or a 401 goes through the loop as usual.
    pub fn answer(mut self, statuses: &[StatusCode]) -> Self {
        self.answered.extend_from_slice(statuses);
        self
    }

    /// Sends the request: each attempt carries the token current at that moment, failed
    /// attempts are retried per `session.retries`, a 401 refreshes the token and resends once.
    ///
    /// Returns the first successful (2xx or 3xx) response, or an [`Error`] saying what went
    /// wrong on the last attempt and how many attempts were made.
    pub async fn send(self) -> Result<reqwest::Response, Error> {
        let mut url = self.url?;
        let mut headers = self.headers;
        if let Some(basic) = take_userinfo(&mut url) {
            headers.entry(AUTHORIZATION).or_insert(basic);
        }
        let prepared = Prepared {
            method: self.method,
            url,
            headers,
            body: self.body,
            timeout: self.timeout,
            answered: self.answered,
        };
        self.session.send(prepared).await
    }
}

/// Moves a user name and password out of the URL into an `Authorization: Basic` header, as
/// reqwest's own request builder does. The URL then reaches the connection pool, hyper's logs
/// and our errors without them; with authentication on, the bearer token replaces the header.
fn take_userinfo(url: &mut Url) -> Option<HeaderValue> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
    let pair = format!(
        "{}:{}",
        decode(url.username()),
        decode(url.password().unwrap_or_default())
    );
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_becomes_basic_auth_and_leaves_the_url() {
        let mut url = Url::parse("http://us%65r:p%40ss+w@127.0.0.1:8080/api/?q=1").unwrap();
        let header = take_userinfo(&mut url).expect("a Basic header");
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/api/?q=1");
        let encoded = base64::engine::general_purpose::STANDARD.encode("user:p@ss+w");
        assert_eq!(header.to_str().unwrap(), format!("Basic {encoded}"));
        assert!(header.is_sensitive());
        let mut plain = Url::parse("https://api.example.com/v1/").unwrap();
        assert!(take_userinfo(&mut plain).is_none());
    }
}
