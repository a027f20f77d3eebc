//! [`Coordinator`]: what a coordination backend does, in the few requests each lease needs;
//! [`SharedState`]: the task state it keeps beside the leases.
//!
//! Why this cut: the balancing, the expiry on the replica's own clock and the metrics are the
//! same for every backend (`keeper.rs`); a backend only says how to heartbeat, renew, take and
//! give up leases, each as one request where it can (PostgreSQL renews every lease of a replica
//! in one statement; a Kubernetes backend replaces one `Lease` object per task).

use std::fmt;

use serde_json::Value;

/// A lease this replica holds: the task, and the generation that fences its state writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The task's name.
    pub task: String,
    /// Goes up each time the lease changes holder; a state write carries the one it was taken
    /// with.
    pub generation: i64,
}

/// What a coordination backend could not do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend could not be reached or refused a request.
    #[error("coordination backend {backend} failed: {message}")]
    Backend {
        /// Where, without credentials.
        backend: String,
        /// What failed (never a password: connection errors are formatted by the driver from
        /// the redacted options).
        message: String,
    },
    /// A round got no answer within the renew period (a hung connection, a partition).
    #[error("no answer from the coordination backend within {0:?}")]
    Timeout(std::time::Duration),
    /// The schema could not be created or is newer than this tapline knows.
    #[error("coordination schema in {backend}: {message}")]
    Schema {
        /// Where, without credentials.
        backend: String,
        /// What is wrong.
        message: String,
    },
    /// The password could not be read.
    #[error("cannot read the coordination password")]
    Password(#[source] crate::config::SecretFileError),
    /// A state write was refused: another replica holds the task's lease now.
    #[error("state write of task {task:?} refused: this replica no longer holds its lease (another replica may run it now)")]
    Fenced {
        /// The task.
        task: String,
    },
}

/// A coordination backend: membership and one lease per task.
#[async_trait::async_trait]
pub trait Coordinator: Send + Sync + fmt::Debug {
    /// Prepares the backend (schema, one lease record per task) so that [`Self::acquire`] can
    /// take `tasks`. Safe when replicas do it at the same moment.
    async fn join(&self, tasks: &[String]) -> Result<(), Error>;

    /// Records that this replica is alive for one more lease duration; returns how many
    /// replicas are alive, this one included.
    async fn heartbeat(&self) -> Result<usize, Error>;

    /// Extends the leases in `held` that this replica still holds; returns those. A lease
    /// missing from the answer is lost (it expired and another replica took it).
    async fn renew(&self, held: &[Lease]) -> Result<Vec<Lease>, Error>;

    /// Takes up to `max` leases among `tasks` that nobody holds or whose holder let them
    /// expire, each with a new generation.
    async fn acquire(&self, tasks: &[String], max: usize) -> Result<Vec<Lease>, Error>;

    /// Gives up these leases now, so another replica can take them without waiting for expiry.
    async fn release(&self, tasks: &[String]) -> Result<(), Error>;

    /// Leaves: membership ends and every lease is released (at shutdown).
    async fn leave(&self) -> Result<(), Error>;

    /// Reaches the backend changing nothing (what `tapline validate --check-auth` asks); a line
    /// to show.
    async fn check(&self) -> Result<String, Error>;
}

/// Task state kept by the coordination backend, each write checked against the task's lease.
#[async_trait::async_trait]
pub trait SharedState: Send + Sync + fmt::Debug {
    /// The saved namespace of `task`, if any.
    async fn load(&self, task: &str) -> Result<Option<Value>, Error>;

    /// Writes `task`'s namespace if `lease` is still this replica's, in one transaction with
    /// the check; [`Error::Fenced`] when it is not.
    async fn store(&self, lease: &Lease, namespace: &Value) -> Result<(), Error>;
}
