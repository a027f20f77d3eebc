//! The runner: hosts extractor tasks built from the `tasks:` config.
//!
//! - [`Task`] and [`TaskContext`] (`task.rs`): what an extractor implements and what each run gets
//!   (the shared session, its state namespace, a cancellation token, a span, progress counters).
//! - [`Sink`] and [`Output`]: where a task's records go, in batches that span the whole run,
//!   through the task's `transform:`; [`OnError`] (`on_error.rs`): what a failed record costs.
//! - [`Schedule`] (`schedule.rs`): interval, cron (UTC), continuous (restarted with a growing
//!   delay), startup.
//! - `supervisor`: spawns runs, catches panics, skips overlapping runs, counts outcomes and tells
//!   the [`RunObserver`]s how each run ended.
//! - [`Shutdown`] (`shutdown.rs`): SIGTERM/SIGINT, cancellation, grace period.
//! - [`StateStore`] (`state.rs`): the atomically written JSON state file, or the state shared by
//!   replicas under their task leases.
//! - `coordinated`, `permit`: with `coordination:`, the lease keeper beside the tasks, and the
//!   permit each run asks for (a task runs only while this replica holds its lease).
//! - [`Reload`] (`reload.rs`, `roster.rs`): a new config applied to the running tasks: the
//!   changed ones restarted, the others untouched; `token_watch.rs` keeps `/readyz` current.
//! - `buffered.rs`, `buffer_sink.rs`, `drain.rs`: tasks with `buffer: {type: disk}`; runs append
//!   to the task's disk buffer, and a drain loop per task delivers from it to the sink.
//! - [`Runner`]: ties them together, running the [`Plan`] the registry built from the config.

mod buffer_sink;
mod buffered;
mod coordinated;
mod drain;
mod observer;
mod on_error;
mod output;
mod permit;
mod reload;
mod roster;
#[allow(clippy::module_inception)]
mod runner;
mod schedule;
mod shutdown;
mod sink;
mod state;
mod supervisor;
mod task;
mod token_watch;

pub(crate) use crate::telemetry::logging::error_chain;
pub use observer::{RunObserver, RunReport};
pub use on_error::OnError;
pub use output::{Mark, Output};
pub use reload::{Applied, Reload, ReloadError};
pub use runner::{Error, Plan, Runner, RunnerBuilder, TaskSpec};
pub use schedule::Schedule;
pub use shutdown::Shutdown;
pub use sink::{Destination, Sink};
pub use state::{StateError, StateHandle, StateStore};
pub use supervisor::RunOutcome;
pub use task::{Task, TaskContext, TaskError};
