//! The Cognite Data Fusion sinks, with what they share. Each request goes through the task's
//! shared session ([`api`]), so the token, retries, `Retry-After` and 401 recovery are the
//! session's; this folder adds CDF's URLs, limits and answers.
//!
//! - `cdf-raw` ([`raw`]): rows of a RAW table;
//! - `cdf-datapoints` ([`datapoints`]): datapoints of time series, optionally creating them;
//! - `cdf-events` ([`events`]): events, upserted or created;
//! - [`runs`]: extraction pipeline run reports after each task run, and the `seen` heartbeat
//!   (a [`RunObserver`](crate::runner::RunObserver) the registry adds when `cdf:` asks for it);
//! - [`inspect`]: `GET /api/v1/token/inspect` for `tapline validate --check-auth`.
//!
//! Shared: [`error`] (CDF's error body), `request_id.rs` (`x-request-id`), [`mod@pointer`] (the
//! JSON pointer keys) and `chunk.rs` (the API limits per request). Records that cannot be sent
//! go to the task's `on-error` ([`TaskContext::reject`](crate::runner::TaskContext::reject)).
//! Each sink reads the top-level `cdf:` block it is built with ([`crate::config::Sections`]).

pub mod api;
mod chunk;
pub mod datapoints;
pub mod error;
pub mod events;
pub mod inspect;
pub mod pointer;
pub mod raw;
mod request_id;
pub mod runs;

pub use api::CdfApi;
pub use error::{ApiError, CdfError};
