//! Caps the telemetry server's open connections without locking out the health checks.
//!
//! Why not a plain semaphore: at the cap it would refuse every new connection, so a few hundred
//! clients that never finish a request would keep the kubelet's `/healthz` out until the header
//! timeout frees a slot, and a slowloris client simply opens new ones. Instead, at the cap a new
//! connection displaces the *oldest idle* one: a connection still sending its request head, or
//! waiting between requests. Such a connection has no request in hand, so closing it costs the
//! client a reconnect and nothing more. Only when every connection is busy answering a request is
//! the new one refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

/// The open connections, up to a cap.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    cap: usize,
    table: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    /// By admission order, so the first idle entry is the oldest idle connection.
    open: BTreeMap<u64, Slot>,
}

#[derive(Debug)]
struct Slot {
    /// Requests in progress on the connection.
    busy: usize,
    /// Cancelled when the connection is displaced.
    displaced: CancellationToken,
}

impl ConnectionLimit {
    /// Allows `cap` open connections (at least one).
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            table: Arc::default(),
        }
    }

    /// Admits a new connection; at the cap it displaces the oldest idle one first. `None` when
    /// the cap is reached and every connection is busy: then close the new one.
    pub fn admit(&self) -> Option<Admission> {
        let mut table = lock(&self.table);
        if table.open.len() >= self.cap {
            let oldest_idle = table
                .open
                .iter()
                .find(|(_, slot)| slot.busy == 0)
                .map(|(id, _)| *id)?;
            if let Some(slot) = table.open.remove(&oldest_idle) {
                slot.displaced.cancel();
            }
        }
        let id = table.next;
        table.next += 1;
        let displaced = CancellationToken::new();
        table.open.insert(
            id,
            Slot {
                busy: 0,
                displaced: displaced.clone(),
            },
        );
        Some(Admission {
            id,
            table: self.table.clone(),
            displaced,
        })
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // The table stays consistent even if a holder panicked: every change is one map operation.
    table
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Admission {
    id: u64,
    table: Arc<Mutex<Table>>,
    displaced: CancellationToken,
}

impl Admission {
    /// Resolves once a newer connection took this one's slot; the server then closes it.
    pub async fn displaced(&self) {
        self.displaced.cancelled().await;
    }

    /// Marks a request in progress until the guard drops; a busy connection is not displaced.
    pub fn busy(&self) -> Busy {
        if let Some(slot) = lock(&self.table).open.get_mut(&self.id) {
            slot.busy += 1;
        }
        Busy {
            id: self.id,
            table: self.table.clone(),
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        lock(&self.table).open.remove(&self.id);
    }
}

/// A request in progress (see [`Admission::busy`]).
#[derive(Debug)]
pub struct Busy {
    id: u64,
    table: Arc<Mutex<Table>>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(slot) = lock(&self.table).open.get_mut(&self.id) {
            slot.busy = slot.busy.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(limit: &ConnectionLimit) -> usize {
        lock(&limit.table).open.len()
    }

    fn is_displaced(admission: &Admission) -> bool {
        admission.displaced.is_cancelled()
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let limit = ConnectionLimit::new(2);
        let first = limit.admit().unwrap();
        let second = limit.admit().unwrap();

        let third = limit.admit().expect("an idle connection makes room");

        assert!(is_displaced(&first));
        assert!(!is_displaced(&second) && !is_displaced(&third));
        assert_eq!(open(&limit), 2);
    }

    #[test]
    fn busy_connections_are_kept_and_a_new_one_is_refused_when_all_are_busy() {
        let limit = ConnectionLimit::new(2);
        let first = limit.admit().unwrap();
        let second = limit.admit().unwrap();
        let first_busy = first.busy();

        let third = limit.admit().expect("the second connection is idle");
        assert!(!is_displaced(&first), "a busy connection was displaced");
        assert!(is_displaced(&second));

        let _third_busy = third.busy();
        assert!(limit.admit().is_none(), "all busy: refuse the newcomer");
        assert_eq!(open(&limit), 2);

        drop(first_busy);
        assert!(limit.admit().is_some(), "the first is idle again");
        assert!(is_displaced(&first));
    }

    #[test]
    fn a_closed_connection_frees_its_slot() {
        let limit = ConnectionLimit::new(1);
        let first = limit.admit().unwrap();
        let _busy = first.busy();
        assert!(limit.admit().is_none());

        drop(first);

        assert_eq!(open(&limit), 0);
        assert!(limit.admit().is_some());
    }
}
