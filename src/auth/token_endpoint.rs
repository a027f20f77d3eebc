//! The one OAuth 2.0 token request every provider makes: POST a form, read a token response.
//!
//! Providers differ only in the form fields and client authentication they send, so the wire
//! details live here once: the `http://` refusal, RFC 6749 Basic encoding, a body read only up to
//! [`MAX_BODY`], `expires_in` as a number or a numeric string, the expiry anchored to the moment
//! the request was *sent* (or the access token's own `exp`, when earlier), and the mapping of
//! answers to errors that the cache can classify (transient or not). Nothing here ever formats a
//! secret, an assertion or a token into a message.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::token::{earliest, expiry, jwt_expiry};
use super::{Error, FetchedToken};
use crate::config::SessionConfig;
use crate::telemetry::catalogue;
use crate::transport;
use crate::{redact, retry_after};

/// The most of an OAuth endpoint's answer that is read: a token response is a few kilobytes, and
/// a misbehaving or hostile endpoint must not make the process buffer gigabytes.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// A token endpoint and the HTTP client used only for token requests.
///
/// Token requests get their own client (same proxy, CA bundle and timeouts as the session, but no
/// auth layer), so fetching a token can never recurse into needing a token.
#[derive(Clone)]
pub(crate) struct TokenEndpoint {
    url: url::Url,
    http: reqwest::Client,
}

/// How the client proves who it is in one token request.
pub(crate) enum ClientAuthentication<'a> {
    /// Everything needed is already in the form (client_secret_post, private_key_jwt).
    InForm,
    /// HTTP Basic with the id and secret (client_secret_basic).
    Basic {
        /// The client id.
        id: &'a str,
        /// The client secret.
        secret: &'a SecretString,
    },
}

impl TokenEndpoint {
    /// Checks the URL (https, or http on loopback only) and keeps `http` for the requests.
    pub(crate) fn new(url: &str, http: reqwest::Client) -> Result<Self, Error> {
        let url = crate::config::check_token_url(url).map_err(|reason| Error::TokenUrl {
            url: redact::url(url),
            reason,
        })?;
        Ok(Self { url, http })
    }

    /// The token URL (the audience of a client assertion).
    pub(crate) fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs `form` and returns the token, with its expiry measured from just before sending.
    /// Secret form values are exposed only while the body is written.
    pub(crate) async fn request(
        &self,
        form: &[(&str, FormValue<'_>)],
        auth: ClientAuthentication<'_>,
    ) -> Result<FetchedToken, Error> {
        self.request_grant(form, auth)
            .await
            .map(|response| response.token)
    }

    /// Like [`Self::request`], but also returns the refresh token the endpoint issued, for the
    /// interactive flows that keep one.
    pub(crate) async fn request_grant(
        &self,
        form: &[(&str, FormValue<'_>)],
        auth: ClientAuthentication<'_>,
    ) -> Result<TokenResponse, Error> {
        let result = self.request_once(form, auth).await;
        let label = if result.is_ok() { "success" } else { "failure" };
        metrics::counter!(catalogue::TOKEN_REQUESTS.name, "result" => label).increment(1);
        result
    }

    async fn request_once(
        &self,
        form: &[(&str, FormValue<'_>)],
        auth: ClientAuthentication<'_>,
    ) -> Result<TokenResponse, Error> {
        tracing::debug!(url = %redact::url(self.url.as_str()), "requesting a token");
        let answer = post_form(&self.http, &self.url, form, auth).await?;
        let token = parse_token_response(
            &answer.bytes,
            answer.sent_at,
            super::token::now(),
            SystemTime::now(),
        )
        .map_err(|problem| Error::MalformedResponse {
            url: redact::url(self.url.as_str()),
            problem,
        })?;
        tracing::debug!(
            url = %redact::url(self.url.as_str()),
            expires_in_secs = token.token.expires_at.map(|at| at.saturating_duration_since(super::token::now()).as_secs()),
            refresh_token = token.refresh_token.is_some(),
            "token obtained"
        );
        Ok(token)
    }

    /// The HTTP client for token requests, for the flows' other OAuth endpoints.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

/// A 2xx answer to a form POST, with the moment the request left.
pub(crate) struct FormAnswer {
    /// The body; never logged, it may hold a token.
    pub(crate) bytes: bytes::Bytes,
    /// Just before sending, on the monotonic clock.
    pub(crate) sent_at: Instant,
}

/// POSTs a form to an OAuth endpoint and returns a 2xx body; any other answer becomes the same
/// [`Error`] a token request would give (an OAuth `error` on a 4xx is a rejection, 408/429/5xx
/// are transient), so the device authorization endpoint is classified like the token endpoint.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    url: &url::Url,
    form: &[(&str, FormValue<'_>)],
    auth: ClientAuthentication<'_>,
) -> Result<FormAnswer, Error> {
    let unreachable = |source: reqwest::Error| Error::Unreachable {
        url: redact::url(url.as_str()),
        source: source.without_url(),
    };
    let body = encode_form(form);
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let ClientAuthentication::Basic { id, secret } = auth {
        headers.insert(AUTHORIZATION, basic_header(id, secret)?);
    }
    let sent_at = super::token::now();
    let response = http
        .post(url.clone())
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    let retry_after = retry_after::from_headers(response.headers(), SystemTime::now());
    let success = (200..300).contains(&status);
    let bytes = match read_body(response).await {
        Ok(bytes) => bytes,
        Err(BodyError::Transport(source)) => return Err(unreachable(source)),
        Err(BodyError::TooLarge) if success => {
            return Err(Error::MalformedResponse {
                url: url.to_string(),
                problem: "the body is larger than 1 MiB",
            })
        }
        // An error status still counts as one; its body is not needed for that.
        Err(BodyError::TooLarge) => bytes::Bytes::new(),
    };
    if success {
        return Ok(FormAnswer { bytes, sent_at });
    }
    tracing::debug!(url = %redact::url(url.as_str()), status, "OAuth request failed");
    Err(error_response(url, status, &bytes, retry_after))
}

/// Why a body was not read.
enum BodyError {
    /// The connection failed or timed out while reading.
    Transport(reqwest::Error),
    /// It is longer than [`MAX_BODY`].
    TooLarge,
}

/// The body, refused as soon as it is known to exceed [`MAX_BODY`]: from `Content-Length` before
/// reading, else while streaming, so a huge or endless body is never held in memory.
async fn read_body(mut response: reqwest::Response) -> Result<bytes::Bytes, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY as u64)
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// A token response: the access token and, when the endpoint issued one, a refresh token.
pub(crate) struct TokenResponse {
    /// The access token and its expiry.
    pub(crate) token: FetchedToken,
    /// The refresh token, kept only by the interactive flows.
    pub(crate) refresh_token: Option<SecretString>,
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("url", &redact::url(self.url.as_str()))
            .finish_non_exhaustive()
    }
}

/// A form field value: plain, or a secret exposed only when the body is written.
pub(crate) enum FormValue<'a> {
    /// Not secret (grant type, client id, scope, ...).
    Plain(&'a str),
    /// A secret (client secret, client assertion).
    Secret(&'a SecretString),
}

impl FormValue<'_> {
    fn expose(&self) -> &str {
        match self {
            Self::Plain(value) => value,
            Self::Secret(value) => value.expose_secret(),
        }
    }
}

/// The form body; the serializer is not `Send`, so it lives only in this function.
fn encode_form(form: &[(&str, FormValue<'_>)]) -> String {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in form {
        body.append_pair(name, value.expose());
    }
    body.finish()
}

/// The HTTP client for token requests, honouring the session's proxy, CA bundle and timeouts.
pub fn http_client(session: &SessionConfig) -> Result<reqwest::Client, Error> {
    let builder = transport::builder(session)?
        // A token endpoint has no business redirecting a POST with credentials elsewhere.
        .redirect(reqwest::redirect::Policy::none());
    Ok(transport::build(builder)?)
}

/// `Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 section 2.3.1 asks (a plain
/// `id:secret` breaks secrets holding `:` or non-ASCII characters on strict servers).
fn basic_header(id: &str, secret: &SecretString) -> Result<HeaderValue, Error> {
    let encode =
        |text: &str| url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(id), encode(secret.expose_secret()));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut header = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| Error::Misconfigured("client id or secret cannot be sent".into()))?;
    header.set_sensitive(true);
    Ok(header)
}

/// Reads a 2xx token response to a request sent at `sent_at` and answered at `now` (`wall` on the
/// wall clock). The problem text never quotes the body.
fn parse_token_response(
    bytes: &[u8],
    sent_at: Instant,
    now: Instant,
    wall: SystemTime,
) -> Result<TokenResponse, &'static str> {
    let body: Value = serde_json::from_slice(bytes).map_err(|_| "the body is not JSON")?;
    let Value::Object(body) = body else {
        return Err("the body is not a JSON object");
    };
    let value = match body.get("access_token") {
        Some(Value::String(token)) if !token.is_empty() => SecretString::from(token.clone()),
        Some(_) => return Err("access_token is not a non-empty string"),
        None => return Err("access_token is missing"),
    };
    let expires_in = match body.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(value) => Some(expires_in(value).ok_or("expires_in is not a number of seconds")?),
    };
    if let Some(kind) = body.get("token_type").and_then(Value::as_str) {
        if !kind.eq_ignore_ascii_case("bearer") {
            tracing::warn!(token_type = kind, "the token endpoint returned a token that is not a Bearer token; sending it as Bearer");
        }
    }
    let refresh_token = match body.get("refresh_token") {
        Some(Value::String(token)) if !token.is_empty() => Some(SecretString::from(token.clone())),
        _ => None,
    };
    // Anchored to when the request left, not when the answer came: the provider's clock started
    // no later than that, so we can never believe a token lives longer than it says. Its own
    // `exp`, in whole seconds, may say less.
    let expires_at = earliest(
        expires_in.map(|lifetime| expiry(sent_at, lifetime)),
        jwt_expiry(&value, sent_at, now, wall),
    );
    Ok(TokenResponse {
        token: FetchedToken { value, expires_at },
        refresh_token,
    })
}

/// `expires_in` as a JSON number or a numeric string (Entra's v1 endpoint sends `"3599"`); one too
/// large for a `Duration` is the longest one (and then taken as a year).
fn expires_in(value: &Value) -> Option<Duration> {
    let seconds = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => text.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

fn error_response(
    url: &url::Url,
    status: u16,
    bytes: &[u8],
    retry_after: Option<Duration>,
) -> Error {
    let transient = matches!(status, 408 | 429) || status >= 500;
    if !transient {
        if let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(bytes) {
            if let Some(error) = body.get("error").and_then(Value::as_str) {
                return Error::TokenRejected {
                    status,
                    error: error.to_string(),
                    description: body
                        .get("error_description")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                };
            }
        }
    }
    Error::TokenEndpointStatus {
        url: redact::url(url.as_str()),
        status,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_at(body: &str, sent: Instant) -> Result<FetchedToken, &'static str> {
        parse_token_response(body.as_bytes(), sent, sent, SystemTime::now())
            .map(|response| response.token)
    }

    fn parse(body: &str) -> Result<FetchedToken, &'static str> {
        parse_at(body, Instant::now())
    }

    #[test]
    fn expires_in_may_be_a_number_or_a_numeric_string() {
        let sent = Instant::now();
        for body in [
            r#"{"access_token":"t","expires_in":3599}"#,
            r#"{"access_token":"t","expires_in":"3599"}"#,
            r#"{"access_token":"t","expires_in":3599.0}"#,
        ] {
            let token = parse_at(body, sent).unwrap();
            assert_eq!(
                token.expires_at,
                Some(sent + Duration::from_secs(3599)),
                "{body}"
            );
        }
        assert_eq!(parse(r#"{"access_token":"t"}"#).unwrap().expires_at, None);
    }

    #[test]
    fn huge_lifetimes_are_taken_as_a_year_without_panicking() {
        let sent = Instant::now();
        for expires_in in [
            "9300000000000000000",
            "1e19",
            "1e308",
            r#""1e19""#,
            r#""1e308""#,
            "18446744073709551615",
        ] {
            let body = format!(r#"{{"access_token":"t","expires_in":{expires_in}}}"#);
            let token = parse_at(&body, sent).unwrap();
            assert_eq!(
                token.expires_at,
                Some(sent + super::super::token::MAX_LIFETIME),
                "{expires_in}"
            );
        }
    }

    #[test]
    fn a_jwt_access_token_expires_by_its_own_exp_when_that_is_earlier() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let wall = SystemTime::now();
        let epoch = wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let jwt = |exp: u64| {
            let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"iat":{epoch},"exp":{exp}}}"#));
            format!("eyJhbGciOiJSUzI1NiJ9.{payload}.sig")
        };
        let sent = Instant::now();
        let body = |exp, expires_in| {
            format!(
                r#"{{"access_token":"{}","expires_in":{expires_in}}}"#,
                jwt(exp)
            )
        };
        let parsed = |text: String| {
            parse_token_response(text.as_bytes(), sent, sent, wall)
                .unwrap()
                .token
                .expires_at
                .unwrap()
        };
        // exp is whole seconds: the token dies before `expires_in` from sending says.
        let whole_seconds = parsed(body(epoch + 3, 3));
        assert!(whole_seconds <= sent + Duration::from_secs(3));
        assert!(whole_seconds > sent + Duration::from_secs(2));
        // A lying expires_in: exp wins.
        let lying = parsed(body(epoch + 60, 3600));
        assert!(lying <= sent + Duration::from_secs(60));
        // exp later than expires_in: expires_in wins.
        assert_eq!(
            parsed(body(epoch + 3600, 60)),
            sent + Duration::from_secs(60)
        );
    }

    #[test]
    fn bad_responses_are_named_without_quoting_the_body() {
        assert_eq!(
            parse("not json <secret-token>").unwrap_err(),
            "the body is not JSON"
        );
        assert_eq!(
            parse(r#"{"token":"x"}"#).unwrap_err(),
            "access_token is missing"
        );
        assert_eq!(
            parse(r#"{"access_token":"abc","expires_in":"soon"}"#).unwrap_err(),
            "expires_in is not a number of seconds"
        );
    }

    #[test]
    fn four_hundreds_with_an_oauth_error_are_rejections_and_not_transient() {
        let url = url::Url::parse("https://idp.test/token").unwrap();
        let body =
            br#"{"error":"invalid_client","error_description":"client authentication failed"}"#;
        let error = error_response(&url, 401, body, None);
        assert!(!error.is_transient());
        assert_eq!(
            error.to_string(),
            "the identity provider rejected the token request (HTTP 401): invalid_client: client authentication failed"
        );
        for status in [408, 429, 500, 503] {
            assert!(
                error_response(&url, status, body, None).is_transient(),
                "{status}"
            );
        }
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let header = basic_header("my id", &SecretString::from("a:b+c")).unwrap();
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "my+id:a%3Ab%2Bc");
        assert!(header.is_sensitive());
    }
}
