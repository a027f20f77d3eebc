//! The runner: hosts extractor tasks built from the `tasks:` config.
//!
//! - [`Task`] and [`TaskContext`] ([`task`]): what an extractor implements and what each run gets
//!   (the shared session, its state namespace, a cancellation token, a span, progress counters).
//! - [`Registry`] ([`registry`]): task types by name, built-in and user-registered.
//! - [`Schedule`] ([`schedule`]): interval, cron (UTC), continuous (restarted after [`RESTART_BACKOFF`]), startup.
//! - `supervisor`: spawns runs, catches panics, skips overlapping runs, counts outcomes.
//! - [`Shutdown`] ([`shutdown`]): SIGTERM/SIGINT, cancellation, grace period.
//! - [`StateStore`] ([`state`]): the atomically written JSON state file.
//! - [`Runner`]: ties them together.

pub mod registry;
#[allow(clippy::module_inception)]
mod runner;
pub mod schedule;
pub mod shutdown;
pub mod state;
mod supervisor;
pub mod task;

pub use registry::{BuildError, Registry};
pub use runner::{Error, Runner, RunnerBuilder};
pub use schedule::{restart_delay, Schedule, HEALTHY_RUN, RESTART_BACKOFF};
pub use shutdown::Shutdown;
pub use state::{StateError, StateHandle, StateStore};
pub use supervisor::Outcome;
pub use task::{Task, TaskContext, TaskError};
