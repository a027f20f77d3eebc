//! tapline: a configuration-driven extractor framework.
//!
//! One YAML file chooses how to authenticate and which extractor tasks to run; every task talks
//! to the target API through one shared HTTP session that keeps a valid bearer token. The binary
//! (`src/main.rs`) is a thin command line over this library, which library users can also call to
//! run tasks of their own.
//!
//! - [`config`]: loading and checking the YAML configuration.
//! - [`auth`]: credential providers and the shared token cache.
//! - [`backoff`]: the one backoff of retries and restarts.
//! - [`session`]: the shared authenticated HTTP session.
//! - [`coordination`]: replicas sharing the tasks through leases, and the state fenced by them.
//! - [`runner`]: tasks, sinks, schedules, state, shutdown.
//! - [`registry`]: the components a config names by `type` (providers, task types, sinks).
//! - [`reload`]: the config read again on SIGHUP or when its file changes, applied while running.
//! - [`tasks`], [`sinks`]: the built-in task types and sinks.
//! - [`telemetry`]: logging, metrics and the health server.
//! - [`transport`]: what every HTTP client shares (user agent, timeouts, proxy, CA bundle); below
//!   both `auth` and `session`.
//! - [`postgres`]: the PostgreSQL connect options of the `sql` source and of coordination.
//! - [`redact`]: URLs as errors and logs may show them.

mod atomic_file;
pub mod auth;
pub mod backoff;
pub(crate) mod buffer;
pub mod cli;
pub mod config;
pub mod coordination;
mod cores;
mod error;
mod jsonl_file;
pub mod postgres;
pub mod prelude;
pub mod redact;
pub mod registry;
pub mod reload;
mod retry_after;
pub mod runner;
pub mod session;
pub mod sinks;
pub mod tasks;
pub mod telemetry;
pub mod transform;
pub mod transport;

pub use error::Error;
pub use registry::Registry;
