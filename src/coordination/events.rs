//! What coordination logs and counts, each in one place so that logs and metrics agree.

use crate::telemetry::catalogue;

/// Why a lease was taken or given up: the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Taken.
    Acquired,
    /// Given up on purpose (rebalancing, shutdown).
    Released,
    /// Another replica holds it now (found when renewing).
    Lost,
    /// Not renewed in time: this replica stopped its run before the lease could expire.
    Expired,
    /// A state write under it was refused.
    Fenced,
}

impl Change {
    fn label(self) -> &'static str {
        match self {
            Self::Acquired => "acquired",
            Self::Released => "released",
            Self::Lost => "lost",
            Self::Expired => "expired",
            Self::Fenced => "fenced",
        }
    }
}

/// Logs and counts lease changes of one kind.
pub(crate) fn changed(change: Change, tasks: &[String]) {
    if tasks.is_empty() {
        return;
    }
    metrics::counter!(catalogue::COORDINATION_LEASE_CHANGES.name, "reason" => change.label())
        .increment(tasks.len() as u64);
    match change {
        Change::Acquired | Change::Released => {
            tracing::info!(reason = change.label(), tasks = ?tasks, "task leases changed")
        }
        Change::Lost | Change::Expired | Change::Fenced => {
            tracing::warn!(reason = change.label(), tasks = ?tasks, "task leases gone; their runs are cancelled")
        }
    }
}

/// Sets the gauges after a round.
pub(crate) fn held(leases: usize, members: usize) {
    metrics::gauge!(catalogue::COORDINATION_LEASES_HELD.name).set(leases as f64);
    metrics::gauge!(catalogue::COORDINATION_MEMBERS.name).set(members as f64);
}
