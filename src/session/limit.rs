//! `max-in-flight`: one semaphore shared by every task's requests.
//!
//! Tokio's semaphore hands out permits in the order they were asked for, so a busy task cannot
//! starve a quiet one: each waits its turn. A permit is held for one attempt, from taking the
//! token until the response head arrives or the attempt fails, and never across a backoff sleep,
//! so a request waiting to retry does not hold a slot. Reading the body happens after the permit
//! is returned.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The cap on concurrent attempts, shared by all clones of a session.
#[derive(Clone, Debug)]
pub(super) struct InFlightLimit {
    permits: Arc<Semaphore>,
}

impl InFlightLimit {
    /// At most `max` attempts at once (at least one).
    pub(super) fn new(max: u32) -> Self {
        let max = usize::try_from(max.max(1)).unwrap_or(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Waits for a slot, first come first served.
    pub(super) async fn acquire(&self) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}
