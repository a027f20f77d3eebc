//! `coordination.k8s.io/v1` Lease objects as the Kubernetes client libraries keep them: holder,
//! `leaseDurationSeconds`, `acquireTime`/`renewTime` (MicroTime), `leaseTransitions`; and
//! [`Observed`], when this replica last saw each Lease change.
//!
//! Why expiry on the observer's clock (as client-go does): `renewTime` is the holder's clock, and
//! replicas' clocks differ. A Lease is expired for this replica when its `resourceVersion` has not
//! changed for a whole lease duration of this replica's monotonic clock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease as KubeLease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use super::names::{PREFIX_LABEL, ROLE_LABEL, TASK_ANNOTATION};

/// What a Lease stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A task's lease.
    Task,
    /// A replica's membership.
    Member,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Task => "task",
            Role::Member => "member",
        }
    }
}

/// A new Lease named `name`, held by nobody yet.
pub fn blank(name: &str, prefix: &str, role: Role, about: &str) -> KubeLease {
    KubeLease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                (PREFIX_LABEL.to_string(), prefix.to_string()),
                (ROLE_LABEL.to_string(), role.label().to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    "tapline".to_string(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(
                TASK_ANNOTATION.to_string(),
                about.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec::default()),
    }
}

/// `lease` taken by `holder` now: a new transition (the fencing generation goes up at every
/// take, also when the same replica takes its own expired lease back).
pub fn taken(mut lease: KubeLease, holder: &str, duration: Duration) -> KubeLease {
    let now = Some(MicroTime(Timestamp::now()));
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let had_holder = spec.holder_identity.is_some() || spec.acquire_time.is_some();
    spec.holder_identity = Some(holder.to_string());
    spec.lease_duration_seconds = Some(seconds(duration));
    spec.acquire_time = now.clone();
    spec.renew_time = now;
    spec.lease_transitions = Some(match had_holder {
        true => spec.lease_transitions.unwrap_or(0) + 1,
        false => spec.lease_transitions.unwrap_or(0),
    });
    lease
}

/// `lease` renewed now by its holder.
pub fn renewed(mut lease: KubeLease, duration: Duration) -> KubeLease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.lease_duration_seconds = Some(seconds(duration));
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    lease
}

/// `lease` given up, as client-go releases: no holder, a one-second duration, the transitions
/// kept.
pub fn released(mut lease: KubeLease) -> KubeLease {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    lease
}

/// Who holds `lease`, if anyone.
pub fn holder(lease: &KubeLease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// The fencing generation of `lease`: its transitions.
pub fn generation(lease: &KubeLease) -> i64 {
    lease
        .spec
        .as_ref()
        .and_then(|spec| spec.lease_transitions)
        .map_or(0, i64::from)
}

/// The role label of `lease`.
pub fn role(lease: &KubeLease) -> Option<Role> {
    let labels = lease.metadata.labels.as_ref()?;
    match labels.get(ROLE_LABEL)?.as_str() {
        "task" => Some(Role::Task),
        "member" => Some(Role::Member),
        _ => None,
    }
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// When this replica first saw each Lease at its current `resourceVersion`.
#[derive(Debug, Default)]
pub struct Observed {
    seen: HashMap<String, (String, Instant)>,
}

impl Observed {
    /// Notes `lease` as seen now; its clock restarts only when its `resourceVersion` changed.
    pub fn saw(&mut self, lease: &KubeLease) {
        let (Some(name), Some(version)) = (&lease.metadata.name, &lease.metadata.resource_version)
        else {
            return;
        };
        match self.seen.get(name) {
            Some((seen, _)) if seen == version => {}
            _ => {
                self.seen
                    .insert(name.clone(), (version.clone(), Instant::now()));
            }
        }
    }

    /// Whether `lease` is free to take: no holder, or unchanged for `duration` here.
    pub fn free(&self, lease: &KubeLease, duration: Duration) -> bool {
        if holder(lease).is_none() {
            return true;
        }
        self.unchanged_for(lease) >= duration
    }

    /// Whether `lease` (a membership) was renewed within `duration`.
    pub fn alive(&self, lease: &KubeLease, duration: Duration) -> bool {
        holder(lease).is_some() && self.unchanged_for(lease) < duration
    }

    fn unchanged_for(&self, lease: &KubeLease) -> Duration {
        lease
            .metadata
            .name
            .as_ref()
            .and_then(|name| self.seen.get(name))
            .map_or(Duration::ZERO, |(_, since)| since.elapsed())
    }
}
