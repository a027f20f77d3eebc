//! Coordination: several replicas of one config share its tasks. Each task has a lease; a
//! replica runs a task only while it holds the task's lease, and writes the task's state only
//! under it (fencing).
//!
//! Why per-task leases and not one leader: a leader runs everything and leaves the others idle,
//! so neither the load nor a failure is spread. With one lease per task, each replica holds at
//! most ⌈tasks / live replicas⌉ of them, and a dead replica's tasks move to the others as soon
//! as its leases expire.
//!
//! Why leases and fencing, not locks: a paused or partitioned replica cannot know that it lost a
//! lease. Every lease carries a generation that goes up at each change of holder, and a state
//! write is accepted only under the generation it was read with, so a stale replica's cursor is
//! refused by the backend itself. Lease time is the backend's clock; a replica only measures,
//! on its own monotonic clock, how long ago it last renewed, and stops its tasks before the
//! lease can have expired.
//!
//! - [`Coordinator`] (`coordinator.rs`): what a backend does (membership, leases); [`SharedState`]:
//!   the state it keeps under the leases.
//! - [`Leases`] (`leases.rs`): the leases this replica holds, as the runner sees them: whether a
//!   task may start, a token cancelled when its lease goes.
//! - [`LeaseKeeper`] (`keeper.rs`): the loop that heartbeats, renews, balances and expires,
//!   the same for every backend; `balance.rs` is its arithmetic.
//! - [`FencedState`] (`fenced.rs`): state reads and writes of a task under its lease.
//! - `postgres/`: the PostgreSQL backend; `kubernetes/`: Leases and ConfigMaps.

mod balance;
mod coordinator;
mod events;
mod fenced;
mod keeper;
pub mod kubernetes;
mod leases;
pub mod postgres;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

pub use coordinator::{Coordinator, Error, Lease, SharedState};
pub use fenced::FencedState;
pub use keeper::{LeaseKeeper, Timing};
pub use leases::{Leases, RunGuard, Validity};

/// A coordination backend and the shared state it fences.
pub type Backend = (Arc<dyn Coordinator>, Arc<dyn SharedState>);

/// The backend `config.coordination` names, for `replica` with leases of `lease`; `None`
/// without coordination. Connects to nothing yet.
pub fn backend(
    config: &Config,
    replica: String,
    lease: Duration,
) -> Result<Option<Backend>, Error> {
    if let Some(target) = config.coordination.kubernetes() {
        let backend = kubernetes::KubernetesCoordinator::new(target, replica, lease);
        let state = Arc::new(backend.state());
        return Ok(Some((Arc::new(backend), state)));
    }
    let Some(connection) = config.coordination.postgres(&config.state) else {
        return Ok(None);
    };
    let backend = postgres::PostgresCoordinator::new(connection, replica, lease)?;
    let state = Arc::new(backend.state());
    Ok(Some((Arc::new(backend), state)))
}

/// This replica's default name: the host name and the process id, unique among replicas on
/// one host and across hosts.
pub fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "tapline".into());
    format!("{host}-{}", std::process::id())
}
