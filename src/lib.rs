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
//! - [`runner`]: tasks, schedules, state, shutdown.
//! - [`tasks`]: the built-in task types.
//! - [`telemetry`]: logging, metrics and the health server.

mod atomic_file;
pub mod auth;
pub mod backoff;
pub mod config;
mod error;
mod retry_after;
pub mod runner;
pub mod session;
pub mod tasks;
pub mod telemetry;

pub use error::Error;
