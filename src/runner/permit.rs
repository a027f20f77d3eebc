//! [`Permit`]: whether a task may run on this process now, and the token that stops its run.
//!
//! Without coordination every task may always run, until shutdown. With it, a task runs only
//! while this replica holds its lease; the run's token is cancelled when the lease goes, and
//! the lease is not handed to another replica before the run has ended.

use tokio_util::sync::CancellationToken;

use crate::coordination::{Leases, RunGuard};

/// Whether a task may run now.
#[derive(Clone, Debug)]
pub(crate) enum Permit {
    /// Every task, always; the token is shutdown's.
    Always(CancellationToken),
    /// The tasks whose lease this replica holds.
    Leased(Leases),
}

impl Permit {
    /// A guard for a run of `task` now, or `None` when another replica runs it.
    pub(crate) fn enter(&self, task: &str) -> Option<RunGuard> {
        match self {
            Self::Always(token) => Some(RunGuard::unconditional(token.clone())),
            Self::Leased(leases) => leases.enter(task),
        }
    }

    /// Waits until `task` may run (a continuous task waits for its lease).
    pub(crate) async fn wait_for(&self, task: &str) {
        if let Self::Leased(leases) = self {
            drop(leases.wait_for(task).await);
        }
    }
}
