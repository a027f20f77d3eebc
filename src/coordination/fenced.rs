//! [`FencedState`]: a task's state read and written under the lease this replica holds.

use std::sync::Arc;

use serde_json::Value;

use super::coordinator::{Error, SharedState};
use super::leases::Leases;

/// The shared state of a coordinated process: writes carry the task's lease generation, and a
/// refused write drops the lease here too, which cancels the task's run.
#[derive(Clone, Debug)]
pub struct FencedState {
    backend: Arc<dyn SharedState>,
    leases: Leases,
}

impl FencedState {
    /// State in `backend`, fenced by `leases`.
    pub fn new(backend: Arc<dyn SharedState>, leases: Leases) -> Self {
        Self { backend, leases }
    }

    /// The saved namespace of `task`.
    pub async fn load(&self, task: &str) -> Result<Option<Value>, Error> {
        self.backend.load(task).await
    }

    /// Writes `task`'s namespace under its lease; refused when this replica no longer holds it
    /// (a lease the backend refuses is dropped here, its run cancelled; one already gone here
    /// was counted when it went).
    pub async fn store(&self, task: &str, namespace: &Value) -> Result<(), Error> {
        let Some(lease) = self.leases.lease(task) else {
            return Err(Error::Fenced {
                task: task.to_string(),
            });
        };
        let result = self.backend.store(&lease, namespace).await;
        if let Err(Error::Fenced { .. }) = &result {
            self.leases.fenced(task);
        }
        result
    }
}
