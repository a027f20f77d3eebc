//! The one authenticated HTTP session that every task shares.
//!
//! Why one: a token per process (one token request, not one per task), one connection pool, one
//! place that decides about retries, and one `max-in-flight` budget that keeps a busy task from
//! starving the others or flooding the API.
//!
//! What a request goes through ([`RequestBuilder::send`]):
//! 1. wait for a slot under `max-in-flight` (a semaphore shared by all tasks, first come first
//!    served);
//! 2. take the token that is current *now* from [`Credentials`](crate::auth::Credentials), so a
//!    retry after a refresh carries the new token; a request outside `session.base-url`'s origin
//!    (and the origins the handle was allowed, [`Session::allowing_origins`]) is refused instead
//!    of carrying it, wherever its URL came from;
//! 3. send; then ask `RetryPolicy` what the outcome means (a `Decision`):
//!    - done: the response is returned;
//!    - 401: exactly the token that was sent is invalidated, the shared cache fetches one fresh
//!      token for everyone who saw the same 401, and the request is resent once. A second 401 is
//!      an error, never a loop;
//!    - connection error, timeout or a `retry-on` status: wait the server's `Retry-After` (capped
//!      by `max-retry-after`, default `max-backoff`) or a [`Backoff`](crate::backoff::Backoff)
//!      delay (exponential, full jitter), at most `max-retries` times;
//!    - anything else: an [`Error`] naming the URL (without query), status, attempts and, for
//!      4xx, the start of the body.
//!
//! [`Session::unauthenticated`] goes through the same loop with neither the token nor
//! `session.headers`, for third-party sources: they get the same retries, backoff, `Retry-After`
//! and `max-in-flight` slots. [`read_body`] reads a response body with a size limit.
//!
//! Bodies are buffered ([`RequestBuilder::json`], [`RequestBuilder::body`]) so every attempt sends
//! the same bytes; a stream ([`RequestBuilder::body_stream`]) is sent once and never retried.
//!
//! Each attempt counts `tapline_http_requests_total{task,method,status}` and
//! `tapline_http_request_duration_seconds{task}`, each retry `tapline_http_retries_total{task,reason}`,
//! and logs under an `http` span with method, host and path. Header values are never logged: the
//! `Authorization` value is marked sensitive, and no event records headers.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tapline::{auth::Credentials, config::SessionConfig, session::Session};
//!
//! let config = SessionConfig {
//!     base_url: Some("https://api.example.com/api/v1/".into()),
//!     ..SessionConfig::default()
//! };
//! let session = Session::new(&config, Credentials::none())?.for_task("readings");
//! let items: serde_json::Value = session.get("items").send().await?.json().await?;
//! session.post("items").json(&items).send().await?;
//! # Ok(()) }
//! ```

mod body;
mod client;
mod error;
mod events;
mod limit;
mod origin;
mod request;
mod retry;
mod send;

/// `tapline/<version>`, the user agent of every request (defined by the transport).
pub use crate::transport::USER_AGENT;
pub use body::read_body;
pub(crate) use error::excerpt;
pub use error::Error;
pub(crate) use origin::OriginOf;
pub use origin::{parse_origin, InvalidOrigin};
pub use request::RequestBuilder;
pub use send::Session;
pub use url::Origin;

use error::BODY_EXCERPT_BYTES;
