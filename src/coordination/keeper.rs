//! [`LeaseKeeper`]: the loop that keeps this replica's leases, the same for every backend.
//!
//! Every renew period (a third of the lease duration) it heartbeats, renews every lease it
//! holds, releases the leases it gave up once their runs ended, and balances: it holds at most
//! ⌈tasks / live replicas⌉ leases, gives up the extras when a replica joins, and takes free ones
//! while it is below its share. Beside it a watchdog drops each lease when its time on this
//! replica's clock runs out, so that a replica that cannot reach the backend stops its tasks
//! before anyone else can take them over; it takes them back by the same rounds once the backend
//! answers again.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::balance::{extras, fair_share};
use super::coordinator::{Coordinator, Error};
use super::events::{self, Change};
use super::leases::Leases;
use crate::telemetry::logging::error_chain;
use crate::telemetry::Readiness;
use tokio_util::sync::CancellationToken;

/// The times a keeper works with, all derived from the lease duration.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a lease lasts in the backend without renewal.
    pub lease: Duration,
}

impl Timing {
    /// A round every third of the lease: two renewals may fail before the lease is in danger.
    pub fn renew_period(self) -> Duration {
        self.lease / 3
    }

    /// How long a lease counts as held on this replica after a renewal was sent: the lease
    /// minus half a renew period, the time its runs get to stop before the backend lets another
    /// replica take it.
    pub fn held_for(self) -> Duration {
        self.lease - self.renew_period() / 2
    }
}

/// Keeps the leases of one replica.
#[derive(Debug)]
pub struct LeaseKeeper {
    coordinator: Arc<dyn Coordinator>,
    leases: Leases,
    tasks: Vec<String>,
    timing: Timing,
    readiness: Readiness,
}

impl LeaseKeeper {
    /// A keeper of `leases` for `tasks` through `coordinator`.
    pub fn new(
        coordinator: Arc<dyn Coordinator>,
        leases: Leases,
        tasks: Vec<String>,
        timing: Timing,
        readiness: Readiness,
    ) -> Self {
        Self {
            coordinator,
            leases,
            tasks,
            timing,
            readiness,
        }
    }

    /// Rounds and the watchdog until `shutdown`, then gives every lease up.
    pub async fn run(self, shutdown: CancellationToken) {
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = self.rounds() => {}
            _ = watchdog(&self.leases, self.timing) => {}
        }
        self.leave().await;
    }

    async fn rounds(&self) {
        let mut joined = false;
        let mut first = true;
        loop {
            let started = Instant::now();
            let outcome = tokio::time::timeout(self.timing.renew_period(), async {
                if !joined {
                    self.coordinator.join(&self.tasks).await?;
                    joined = true;
                }
                self.round(first).await
            })
            .await;
            let outcome =
                outcome.unwrap_or_else(|_| Err(Error::Timeout(self.timing.renew_period())));
            match outcome {
                Ok(()) => {
                    first = false;
                    self.readiness.set_coordination_ok(true);
                }
                Err(error) => {
                    self.readiness.set_coordination_ok(false);
                    tracing::warn!(error = %error_chain(&error), "coordination round failed; leases not renewed in time will stop their tasks");
                }
            }
            tokio::time::sleep_until(started + self.timing.renew_period()).await;
        }
    }

    /// One round: heartbeat, renew, release, balance.
    async fn round(&self, first: bool) -> Result<(), Error> {
        let sent = Instant::now();
        let members = self.coordinator.heartbeat().await?;
        let held = self.leases.held();
        if !held.is_empty() {
            let renewed = self.coordinator.renew(&held).await?;
            self.leases.renewed(&renewed, sent + self.timing.held_for());
        }
        let idle = self.leases.take_idle_released();
        if !idle.is_empty() {
            self.coordinator.release(&idle).await?;
            events::changed(Change::Released, &idle);
        }
        let share = fair_share(self.tasks.len(), members);
        let keeping = self.leases.keeping();
        if keeping.len() > share {
            self.leases.give_up(&extras(keeping, share));
        } else if keeping.len() < share && !first && !self.leases.closing() {
            // Not in the first round: replicas that start together see each other first,
            // instead of the first one taking every task and handing most back.
            let free: Vec<String> = self
                .tasks
                .iter()
                .filter(|task| self.leases.lease(task).is_none())
                .cloned()
                .collect();
            let sent = Instant::now();
            let taken = self
                .coordinator
                .acquire(&free, share - keeping.len())
                .await?;
            if !taken.is_empty() {
                self.leases.granted(&taken, sent + self.timing.held_for());
            }
        }
        events::held(self.leases.len(), members);
        Ok(())
    }

    /// Drops every lease (cancelling the runs) and leaves, so the others take the tasks at once.
    async fn leave(&self) {
        self.leases.clear();
        let leave = tokio::time::timeout(self.timing.renew_period(), self.coordinator.leave());
        match leave.await {
            Ok(Ok(())) => tracing::info!("left the replicas; leases released"),
            Ok(Err(error)) => {
                tracing::warn!(error = %error_chain(&error), "could not release the leases; they expire by themselves")
            }
            Err(_) => {
                tracing::warn!("releasing the leases took too long; they expire by themselves")
            }
        }
        events::held(0, 0);
    }
}

/// Drops each lease when its time runs out, however the rounds fare.
async fn watchdog(leases: &Leases, timing: Timing) {
    loop {
        let next = leases
            .expire_due()
            .unwrap_or_else(|| Instant::now() + timing.renew_period());
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_counts_as_held_until_half_a_renew_period_before_it_can_expire() {
        let timing = Timing {
            lease: Duration::from_secs(15),
        };
        assert_eq!(timing.renew_period(), Duration::from_secs(5));
        assert_eq!(timing.held_for(), Duration::from_millis(12_500));
        // Two renewals may fail before the replica stops the task.
        assert!(timing.held_for() > 2 * timing.renew_period());
    }
}
