//! A request being built through the session.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use url::Url;

use super::{Error, Session};

/// Built by [`Session::get`] and friends; [`RequestBuilder::send`] sends it.
#[derive(Debug)]
pub struct RequestBuilder {
    session: Session,
    method: Method,
    url: Result<Url, Error>,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl RequestBuilder {
    pub(super) fn new(session: Session, method: Method, url: Result<Url, Error>) -> Self {
        Self {
            session,
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Sets a JSON body (buffered, so it can be sent again on a retry).
    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                self.body = Some(bytes.into());
            }
            Err(error) => self.url = Err(Error::Body(error)),
        }
        self
    }

    /// Sets a raw body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sends the request with the current bearer token.
    pub async fn send(self) -> Result<reqwest::Response, Error> {
        let url = self.url?;
        let shared = &self.session.shared;
        let mut request = shared
            .client
            .request(self.method.clone(), url.clone())
            .headers(self.headers);
        if let Some(token) = shared.credentials.token().await? {
            request = request.header(AUTHORIZATION, token.header().clone());
        }
        if let Some(body) = self.body {
            request = request.body(body);
        }
        request.send().await.map_err(|source| Error::Transport {
            method: self.method,
            url: without_query(&url),
            source: source.without_url(),
        })
    }
}

/// The URL as it may appear in errors and logs: query strings can carry secrets.
fn without_query(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}
