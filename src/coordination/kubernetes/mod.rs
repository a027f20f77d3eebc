//! The Kubernetes backend: task leases as `coordination.k8s.io/v1` Lease objects, membership as
//! one Lease per replica, task state as one ConfigMap per task (`state.rs`).
//!
//! - Task Lease `<prefix>-<task>`: `holderIdentity` is the replica, `leaseTransitions` the
//!   fencing generation; every write is a replace conditioned on the `resourceVersion` read, so
//!   of two replicas that take one Lease at the same moment one gets 409 and backs off.
//! - Member Lease `<prefix>.member.<replica>`: renewed each round; a replica counts the member
//!   Leases that changed within a lease duration to know its fair share. Why Leases and not
//!   annotations on one shared object: each replica writes only its own object, so heartbeats
//!   never conflict, and `kubectl get leases` shows the replicas too.
//! - A round is one replace of the member Lease, one `list` of the prefix's Leases (membership
//!   and the free task Leases in one answer), and one replace per held task Lease: requests per
//!   renew period = 2 + leases held.
//!
//! Expiry is judged as client-go does, on this replica's clock (`lease.rs`).

mod api;
mod lease;
mod names;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease as KubeLease;
use kube::api::{Api, ListParams, ObjectList, PostParams};
use rand::seq::SliceRandom;

use super::coordinator::{Coordinator, Error, Lease};
use crate::config::KubernetesTarget;
use api::{Connection, Failure};
use lease::{Observed, Role};
pub use state::KubernetesState;

/// Task Leases taken at once in a round (each take is a Lease write and a ConfigMap claim).
const TAKES_AT_ONCE: usize = 8;

/// Leases, membership and state in one namespace of a Kubernetes API.
#[derive(Debug)]
pub struct KubernetesCoordinator {
    connection: Arc<Connection>,
    state: KubernetesState,
    replica: String,
    lease: Duration,
    tables: Mutex<Tables>,
}

/// What this replica last saw of its Leases.
#[derive(Debug, Default)]
struct Tables {
    /// Lease object name → task, for the tasks of this config.
    tasks: HashMap<String, String>,
    /// Each task's Lease as last read or written.
    leases: HashMap<String, KubeLease>,
    /// This replica's member Lease as last written.
    member: Option<KubeLease>,
    observed: Observed,
}

impl KubernetesCoordinator {
    /// A coordinator for `replica` with leases of `lease`; connects at the first request.
    pub fn new(target: KubernetesTarget, replica: String, lease: Duration) -> Self {
        let connection = Arc::new(Connection::new(target));
        Self {
            state: KubernetesState::new(connection.clone(), replica.clone()),
            connection,
            replica,
            lease,
            tables: Mutex::default(),
        }
    }

    /// The ConfigMaps of the task state, claimed at each lease taken.
    pub fn state(&self) -> KubernetesState {
        self.state.clone()
    }

    /// The prefix's Leases (task and member), in one request.
    async fn list(&self) -> Result<ObjectList<KubeLease>, Error> {
        let selector = format!("{}={}", names::PREFIX_LABEL, self.connection.prefix());
        self.leases()
            .await?
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.connection.error(e))
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().expect("lease tables poisoned")
    }

    async fn leases(&self) -> Result<Api<KubeLease>, Error> {
        self.connection.api::<KubeLease>().await
    }

    /// Writes `lease`: a replace conditioned on its `resourceVersion`, or a create when it has
    /// none (a create of an existing name is a conflict too).
    async fn put(&self, lease: &KubeLease) -> Result<KubeLease, Failure> {
        let api = self.leases().await.map_err(Failure::Api)?;
        let name = lease.metadata.name.clone().unwrap_or_default();
        let written = match lease.metadata.resource_version {
            Some(_) => api.replace(&name, &PostParams::default(), lease).await,
            None => api.create(&PostParams::default(), lease).await,
        };
        written.map_err(|e| self.connection.failure(e))
    }

    /// Renews this replica's member Lease (reading it first when unknown or changed).
    async fn beat(&self) -> Result<(), Error> {
        let name = names::member_object(self.connection.prefix(), &self.replica);
        let known = self.tables().member.clone();
        if let Some(member) = known {
            match self.put(&lease::renewed(member, self.lease)).await {
                Ok(written) => return self.keep_member(written),
                Err(Failure::Api(error)) => return Err(error),
                Err(Failure::Conflict | Failure::Missing) => {}
            }
        }
        let api = self.leases().await?;
        let current = api
            .get_opt(&name)
            .await
            .map_err(|e| self.connection.error(e))?;
        let base = current.unwrap_or_else(|| {
            lease::blank(&name, self.connection.prefix(), Role::Member, &self.replica)
        });
        match self
            .put(&lease::taken(base, &self.replica, self.lease))
            .await
        {
            Ok(written) => self.keep_member(written),
            Err(Failure::Api(error)) => Err(error),
            // Written by someone else in between: the next round tries again.
            Err(Failure::Conflict | Failure::Missing) => Ok(()),
        }
    }

    fn keep_member(&self, written: KubeLease) -> Result<(), Error> {
        self.tables().member = Some(written);
        Ok(())
    }

    /// Lists the prefix's Leases: notes each, keeps the task Leases, counts the live members.
    async fn survey(&self) -> Result<usize, Error> {
        let listed = self.list().await?;
        let own = names::member_object(self.connection.prefix(), &self.replica);
        let mut tables = self.tables();
        let mut members = 1;
        for item in listed.items {
            tables.observed.saw(&item);
            let name = item.metadata.name.clone().unwrap_or_default();
            match lease::role(&item) {
                Some(Role::Member) if name != own => {
                    members += usize::from(tables.observed.alive(&item, self.lease));
                }
                Some(Role::Task) => {
                    if let Some(task) = tables.tasks.get(&name).cloned() {
                        tables.leases.insert(task, item);
                    }
                }
                _ => {}
            }
        }
        Ok(members)
    }

    /// Renews one held Lease; `None` when it is no longer this replica's.
    async fn renew_one(&self, task: &str) -> Result<Option<Lease>, Error> {
        let known = self.tables().leases.get(task).cloned();
        let Some(known) = known.filter(|l| lease::holder(l) == Some(self.replica.as_str())) else {
            return Ok(None);
        };
        match self.put(&lease::renewed(known, self.lease)).await {
            Ok(written) => Ok(Some(self.keep(task, written))),
            Err(failure) => failure.lost(),
        }
    }

    /// Takes one Lease; `None` when another replica won it. The task's ConfigMap is claimed
    /// before the lease is reported taken, so no state write of the previous holder lands after.
    async fn take(&self, task: &str) -> Result<Option<Lease>, Error> {
        let base = self.tables().leases.get(task).cloned().unwrap_or_else(|| {
            let name = names::task_object(self.connection.prefix(), task);
            lease::blank(&name, self.connection.prefix(), Role::Task, task)
        });
        let written = match self
            .put(&lease::taken(base, &self.replica, self.lease))
            .await
        {
            Ok(written) => written,
            Err(failure) => return failure.lost(),
        };
        let taken = self.keep(task, written);
        if let Err(error) = self.state.claim(task, taken.generation).await {
            let _ = self.release(&[task.to_string()]).await;
            return Err(error);
        }
        Ok(Some(taken))
    }

    fn keep(&self, task: &str, written: KubeLease) -> Lease {
        let generation = lease::generation(&written);
        self.tables().leases.insert(task.to_string(), written);
        Lease {
            task: task.to_string(),
            generation,
        }
    }

    /// Gives up `lease` if it is this replica's (a conflict means it already is not); the
    /// released Lease as written.
    async fn give_back(&self, lease: KubeLease) -> Result<Option<KubeLease>, Error> {
        if lease::holder(&lease) != Some(self.replica.as_str()) {
            return Ok(None);
        }
        match self.put(&lease::released(lease)).await {
            Ok(written) => Ok(Some(written)),
            Err(failure) => failure.lost(),
        }
    }
}

#[async_trait::async_trait]
impl Coordinator for KubernetesCoordinator {
    /// Lists the prefix's Leases, changing nothing: what `tapline validate --check-auth` asks
    /// (it needs the client config, the token and the `list` permission); returns a line to show.
    async fn check(&self) -> Result<String, Error> {
        let listed = self.list().await?;
        Ok(format!(
            "coordination OK: {} ({} Leases)",
            self.connection.shown(),
            listed.items.len()
        ))
    }

    /// Nothing to create ahead: a task's Lease is created by the first replica that takes it.
    async fn join(&self, tasks: &[String]) -> Result<(), Error> {
        let prefix = self.connection.prefix().to_string();
        self.tables().tasks = tasks
            .iter()
            .map(|task| (names::task_object(&prefix, task), task.clone()))
            .collect();
        Ok(())
    }

    async fn heartbeat(&self) -> Result<usize, Error> {
        self.beat().await?;
        self.survey().await
    }

    async fn renew(&self, held: &[Lease]) -> Result<Vec<Lease>, Error> {
        let renewed =
            futures::future::join_all(held.iter().map(|lease| self.renew_one(&lease.task))).await;
        let mut kept = Vec::new();
        for outcome in renewed {
            kept.extend(outcome?);
        }
        Ok(kept)
    }

    async fn acquire(&self, tasks: &[String], max: usize) -> Result<Vec<Lease>, Error> {
        let mut free: Vec<String> = {
            let tables = self.tables();
            tasks
                .iter()
                .filter(|task| match tables.leases.get(*task) {
                    None => true,
                    Some(known) => tables.observed.free(known, self.lease),
                })
                .cloned()
                .collect()
        };
        free.shuffle(&mut rand::rng());
        free.truncate(max);
        // Side by side, so that a round takes many tasks within its time; a take that loses a
        // race (`None`) leaves its place to the next round. A failed take does not undo the
        // others: those Leases are written, and only kept if reported.
        let takes: Vec<_> = free.iter().map(|task| self.take(task)).collect();
        let takes = futures::stream::iter(takes)
            .buffer_unordered(TAKES_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut taken = Vec::new();
        let mut failed = None;
        for take in takes {
            match take {
                Ok(lease) => taken.extend(lease),
                Err(error) => failed = Some(error),
            }
        }
        match failed {
            Some(error) if taken.is_empty() => Err(error),
            Some(error) => {
                tracing::warn!(error = %error, taken = taken.len(), "taking some task leases failed");
                Ok(taken)
            }
            None => Ok(taken),
        }
    }

    async fn release(&self, tasks: &[String]) -> Result<(), Error> {
        for task in tasks {
            let known = self.tables().leases.get(task).cloned();
            let Some(known) = known else { continue };
            if let Some(written) = self.give_back(known).await? {
                self.tables().leases.insert(task.clone(), written);
            }
        }
        Ok(())
    }

    async fn leave(&self) -> Result<(), Error> {
        let held: Vec<KubeLease> = self.tables().leases.values().cloned().collect();
        for known in held {
            self.give_back(known).await?;
        }
        let member = self.tables().member.take();
        if let Some(member) = member {
            self.give_back(member).await?;
        }
        Ok(())
    }
}
