//! [`Leases`]: the task leases this replica holds, as the runner and the state store see them.
//!
//! Why a table of its own between the keeper and the runner: the runner asks one question
//! before each run (may this task start now?) and needs one signal (stop, the lease is going),
//! whatever the backend. A lease counts as held only until `valid_until`, measured on this
//! process's monotonic clock from the moment its last renewal was sent and ending a safety margin
//! before the backend can let it expire; a paused process that wakes up past it holds nothing,
//! even before the keeper runs again. A lease being given up (rebalancing) first cancels its run
//! and is released in the backend only once the run has ended ([`RunGuard`]), so the next holder
//! never overlaps it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::coordinator::Lease;
use super::events::{self, Change};

/// The leases of this replica; cheap to clone.
#[derive(Clone, Debug)]
pub struct Leases {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    table: Mutex<HashMap<String, Held>>,
    /// Every lease token is a child of this (shutdown cancels all runs).
    parent: CancellationToken,
    /// Bumped at every change, so waiters for a lease wake up.
    version: watch::Sender<u64>,
}

#[derive(Debug)]
struct Held {
    generation: i64,
    valid_until: Instant,
    token: CancellationToken,
    /// One clone per run in progress.
    runs: Arc<()>,
    releasing: bool,
}

/// Held by a run of a task while it goes: its token is cancelled when the lease goes, and the
/// lease is not released to other replicas before every guard is dropped.
#[derive(Debug, Clone)]
pub struct RunGuard {
    token: CancellationToken,
    generation: Option<i64>,
    _run: Option<Arc<()>>,
    /// Whether the lease is still valid at this very moment.
    validity: Validity,
}

/// Asks whether a run's lease is valid at this very moment (on this replica's clock). Not the
/// same as the run's token: after the process was paused, the timer that cancels the token
/// and the run's own next step wake together, in any order; this check does not wait for it.
#[derive(Clone, Debug, Default)]
pub struct Validity(Option<(Leases, String)>);

impl Validity {
    /// Whether the run may still act: always without coordination.
    pub fn holds(&self) -> bool {
        match &self.0 {
            Some((leases, task)) => leases.current(task).is_some(),
            None => true,
        }
    }
}

impl RunGuard {
    /// A guard that is always granted: a process without coordination; `token` is shutdown's.
    pub fn unconditional(token: CancellationToken) -> Self {
        Self {
            token,
            generation: None,
            _run: None,
            validity: Validity::default(),
        }
    }

    /// The check of the run's lease at each step (see [`Validity`]).
    pub fn validity(&self) -> Validity {
        self.validity.clone()
    }

    /// Whether the run's lease went (lost, expired, fenced, given up, or shutdown): never
    /// without coordination.
    pub fn lease_gone(&self) -> bool {
        self.generation.is_some() && self.token.is_cancelled()
    }

    /// The lease generation the run holds (`None` without coordination).
    pub fn generation(&self) -> Option<i64> {
        self.generation
    }

    /// Cancelled when the lease goes (or at shutdown).
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

impl Leases {
    /// No lease yet; every lease token will be a child of `parent`.
    pub fn new(parent: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                table: Mutex::new(HashMap::new()),
                parent,
                version: watch::Sender::new(0),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn changed(&self) {
        self.inner.version.send_modify(|v| *v += 1);
    }

    /// The generation of `task`'s lease while it is held and valid. A lease found past its time
    /// is dropped here and now (its runs cancelled), not at the watchdog's next wake-up: after a
    /// pause the two wake together in any order, and every check must agree at once.
    fn current(&self, task: &str) -> Option<i64> {
        let expired = {
            let mut table = self.lock();
            let held = table.get(task)?;
            if Instant::now() < held.valid_until {
                return Some(held.generation);
            }
            table.remove(task).map(|held| held.token.cancel())
        };
        if expired.is_some() {
            self.announce(Change::Expired, &[task.to_string()]);
        }
        None
    }

    /// A guard for a run of `task` when this replica holds its lease now and is not giving it
    /// up; `None` otherwise.
    pub fn enter(&self, task: &str) -> Option<RunGuard> {
        self.current(task)?;
        let table = self.lock();
        let held = table.get(task)?;
        (!held.releasing).then(|| RunGuard {
            token: held.token.clone(),
            generation: Some(held.generation),
            _run: Some(held.runs.clone()),
            validity: Validity(Some((self.clone(), task.to_string()))),
        })
    }

    /// Waits until [`Self::enter`] grants a guard for `task`.
    pub async fn wait_for(&self, task: &str) -> RunGuard {
        let mut version = self.inner.version.subscribe();
        loop {
            if let Some(guard) = self.enter(task) {
                return guard;
            }
            // The sender lives in `self`, so this only returns on a change.
            let _ = version.changed().await;
        }
    }

    /// The lease of `task` while it is held and valid: what a state write carries.
    pub fn lease(&self, task: &str) -> Option<Lease> {
        self.current(task).map(|generation| Lease {
            task: task.to_string(),
            generation,
        })
    }

    /// Every lease in the table (those being given up too: they are renewed until released).
    pub fn held(&self) -> Vec<Lease> {
        let table = self.lock();
        let mut leases: Vec<Lease> = table
            .iter()
            .map(|(task, held)| Lease {
                task: task.clone(),
                generation: held.generation,
            })
            .collect();
        leases.sort_by(|a, b| a.task.cmp(&b.task));
        leases
    }

    /// The tasks held and not being given up.
    pub fn keeping(&self) -> Vec<String> {
        let table = self.lock();
        table
            .iter()
            .filter(|(_, held)| !held.releasing)
            .map(|(task, _)| task.clone())
            .collect()
    }

    /// How many leases are in the table.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the process is shutting down: no lease is taken any more.
    pub fn closing(&self) -> bool {
        self.inner.parent.is_cancelled()
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Newly taken leases, valid until `valid_until`.
    pub(crate) fn granted(&self, leases: &[Lease], valid_until: Instant) {
        {
            let mut table = self.lock();
            for lease in leases {
                let held = Held {
                    generation: lease.generation,
                    valid_until,
                    token: self.inner.parent.child_token(),
                    runs: Arc::new(()),
                    releasing: false,
                };
                if let Some(old) = table.insert(lease.task.clone(), held) {
                    old.token.cancel();
                }
            }
        }
        let tasks: Vec<String> = leases.iter().map(|l| l.task.clone()).collect();
        events::changed(Change::Acquired, &tasks);
        self.changed();
    }

    /// The answer to a renewal: leases in it are valid until `valid_until`, the others in the
    /// table are lost.
    pub(crate) fn renewed(&self, renewed: &[Lease], valid_until: Instant) {
        let lost: Vec<String> = {
            let mut table = self.lock();
            for lease in renewed {
                if let Some(held) = table.get_mut(&lease.task) {
                    if held.generation == lease.generation {
                        held.valid_until = held.valid_until.max(valid_until);
                    }
                }
            }
            let keep = |task: &str, held: &Held| {
                renewed
                    .iter()
                    .any(|l| l.task == task && l.generation == held.generation)
            };
            let lost: Vec<String> = table
                .iter()
                .filter(|(task, held)| !keep(task, held))
                .map(|(task, _)| task.clone())
                .collect();
            lost
        };
        self.drop_leases(&lost, Change::Lost);
    }

    /// Drops every lease whose time ran out: their runs are cancelled. Returns the earliest
    /// `valid_until` left, for the next check.
    pub(crate) fn expire_due(&self) -> Option<Instant> {
        let now = Instant::now();
        let due: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, held)| held.valid_until <= now)
            .map(|(task, _)| task.clone())
            .collect();
        self.drop_leases(&due, Change::Expired);
        self.lock().values().map(|held| held.valid_until).min()
    }

    /// A state write under `task`'s lease was refused: the lease is gone.
    pub(crate) fn fenced(&self, task: &str) {
        self.drop_leases(&[task.to_string()], Change::Fenced);
    }

    /// Starts giving up `tasks`: their runs are cancelled now; [`Self::take_idle_released`]
    /// hands them over once the runs have ended.
    pub(crate) fn give_up(&self, tasks: &[String]) {
        let mut table = self.lock();
        for task in tasks {
            if let Some(held) = table.get_mut(task) {
                held.releasing = true;
                held.token.cancel();
            }
        }
        drop(table);
        self.changed();
    }

    /// The leases being given up whose runs have all ended, removed from the table: the
    /// caller releases them in the backend.
    pub(crate) fn take_idle_released(&self) -> Vec<String> {
        let mut table = self.lock();
        let idle: Vec<String> = table
            .iter()
            .filter(|(_, held)| held.releasing && Arc::strong_count(&held.runs) == 1)
            .map(|(task, _)| task.clone())
            .collect();
        for task in &idle {
            table.remove(task);
        }
        idle
    }

    /// Drops every lease (shutdown, or before leaving): runs are cancelled.
    pub(crate) fn clear(&self) -> Vec<String> {
        let tasks: Vec<String> = self.lock().keys().cloned().collect();
        self.drop_leases(&tasks, Change::Released);
        tasks
    }

    /// Removes `tasks`' leases and cancels their runs; only those that were held are counted
    /// and logged as `change`.
    fn drop_leases(&self, tasks: &[String], change: Change) {
        let dropped: Vec<String> = {
            let mut table = self.lock();
            tasks
                .iter()
                .filter(|task| {
                    table
                        .remove(*task)
                        .map(|held| held.token.cancel())
                        .is_some()
                })
                .cloned()
                .collect()
        };
        self.announce(change, &dropped);
    }

    /// Logs and counts `change` of `tasks` and wakes the waiters for a lease.
    fn announce(&self, change: Change, tasks: &[String]) {
        if tasks.is_empty() {
            return;
        }
        events::changed(change, tasks);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn lease(task: &str, generation: i64) -> Lease {
        Lease {
            task: task.into(),
            generation,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_held_only_until_it_is_valid_and_then_cancels_its_run() {
        let leases = Leases::new(CancellationToken::new());
        assert!(leases.enter("a").is_none());
        leases.granted(&[lease("a", 3)], Instant::now() + Duration::from_secs(2));
        let guard = leases.enter("a").expect("held");
        assert_eq!(leases.lease("a"), Some(lease("a", 3)));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            leases.enter("a").is_none(),
            "past valid_until nothing may start"
        );
        assert_eq!(leases.lease("a"), None, "nor may state be written");
        assert_eq!(leases.expire_due(), None);
        assert!(guard.token().is_cancelled());
    }

    /// After a pause, the run's next step may come before the watchdog cancels its token: the
    /// validity check says no at once, the token not yet.
    #[tokio::test(start_paused = true)]
    async fn a_runs_validity_ends_with_its_lease_before_any_watchdog() {
        let leases = Leases::new(CancellationToken::new());
        leases.granted(&[lease("a", 1)], Instant::now() + Duration::from_secs(2));
        let guard = leases.enter("a").expect("held");
        let validity = guard.validity();
        assert!(validity.holds());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!guard.token().is_cancelled(), "no watchdog has run");
        assert!(!validity.holds(), "the run may act past its lease");
        assert!(
            guard.token().is_cancelled(),
            "the check that found it expired dropped it: every other check agrees"
        );
        assert!(leases.is_empty());
        assert!(RunGuard::unconditional(CancellationToken::new())
            .validity()
            .holds());
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_without_a_lease_loses_it() {
        let leases = Leases::new(CancellationToken::new());
        let until = Instant::now() + Duration::from_secs(2);
        leases.granted(&[lease("a", 1), lease("b", 1)], until);
        let a = leases.enter("a").unwrap();
        leases.renewed(&[lease("b", 1)], until + Duration::from_secs(1));
        assert!(a.token().is_cancelled());
        assert_eq!(leases.held(), [lease("b", 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_given_up_is_released_only_after_its_run_ended() {
        let leases = Leases::new(CancellationToken::new());
        leases.granted(&[lease("a", 1)], Instant::now() + Duration::from_secs(2));
        let run = leases.enter("a").unwrap();
        leases.give_up(&["a".to_string()]);
        assert!(run.token().is_cancelled());
        assert!(leases.enter("a").is_none());
        assert!(leases.take_idle_released().is_empty(), "the run still goes");
        drop(run);
        assert_eq!(leases.take_idle_released(), ["a"]);
        assert!(leases.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_when_the_lease_is_granted() {
        let leases = Leases::new(CancellationToken::new());
        let waiting = tokio::spawn({
            let leases = leases.clone();
            async move { leases.wait_for("a").await }
        });
        tokio::task::yield_now().await;
        leases.granted(&[lease("a", 1)], Instant::now() + Duration::from_secs(2));
        let guard = waiting.await.unwrap();
        assert!(!guard.token().is_cancelled());
    }
}
