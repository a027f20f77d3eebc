//! The runner: hosts extractor tasks built from the `tasks:` config.
//!
//! - [`Task`] and [`TaskContext`] ([`task`]): what an extractor implements and what each run gets
//!   (the shared session, its state namespace, a cancellation token, a span, progress counters).
//! - [`Sink`] and [`Output`]: where a task's records go, in batches that span the whole run.
//! - [`Schedule`] ([`schedule`]): interval, cron (UTC), continuous (restarted after [`RESTART_BACKOFF`]), startup.
//! - `supervisor`: spawns runs, catches panics, skips overlapping runs, counts outcomes.
//! - [`Shutdown`] ([`shutdown`]): SIGTERM/SIGINT, cancellation, grace period.
//! - [`StateStore`] ([`state`]): the atomically written JSON state file.
//! - [`Runner`]: ties them together, running the [`Plan`] the registry built from the config.

mod output;
#[allow(clippy::module_inception)]
mod runner;
pub mod schedule;
pub mod shutdown;
mod sink;
pub mod state;
mod supervisor;
pub mod task;

pub use output::Output;
pub use runner::{Error, Plan, Runner, RunnerBuilder, TaskSpec};
pub use schedule::{restart_delay, Schedule, HEALTHY_RUN, RESTART_BACKOFF};
pub use shutdown::Shutdown;
pub use sink::{Destination, Sink};
pub use state::{StateError, StateHandle, StateStore};
pub use supervisor::Outcome;
pub use task::{Task, TaskContext, TaskError};
