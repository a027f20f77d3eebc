//! [`Coordination`]: what `coordination:` adds to a runner: the lease keeper beside the tasks,
//! the permit each run asks, and the state store fenced by the leases.
//!
//! Why apart from `runner.rs`: the runner only asks "which state store, which permit" at start
//! and "leave" at the end; everything about replicas stays here.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::permit::Permit;
use super::runner::Error;
use super::shutdown::Shutdown;
use super::state::StateStore;
use crate::config::{Config, CoordinationType, Problem};
use crate::coordination::{self, FencedState, LeaseKeeper, Leases, Timing};
use crate::telemetry::Readiness;

/// The state store and permit of a runner, and the keeper when replicas share the tasks.
pub(crate) struct Coordination {
    pub(crate) state: StateStore,
    pub(crate) permit: Permit,
    keeper: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Coordination {
    /// The file store and an unconditional permit without `coordination:`; with it, a running
    /// lease keeper for `tasks`.
    pub(crate) fn start(
        config: &Config,
        tasks: Vec<String>,
        once: bool,
        shutdown: &Shutdown,
        readiness: &Readiness,
    ) -> Result<Self, Error> {
        if config.coordination.kind == CoordinationType::None {
            return Ok(Self {
                state: StateStore::open(&config.state.path)?,
                permit: Permit::Always(shutdown.token()),
                keeper: None,
            });
        };
        if once {
            return Err(Error::Tasks {
                problems: vec![Problem {
                    path: "coordination.type".into(),
                    line: None,
                    message: "--once runs every task in this process; it does not share tasks with replicas (leave out coordination: for it)".into(),
                }],
            });
        }
        let replica = config
            .coordination
            .replica_id
            .clone()
            .unwrap_or_else(coordination::default_replica_id);
        let timing = Timing {
            lease: config.coordination.lease_duration.get(),
        };
        let (backend, shared) = coordination::backend(config, replica.clone(), timing.lease)
            .map_err(Error::Coordination)?
            .expect("checked: type postgres has a url");
        let leases = Leases::new(shutdown.token());
        let state = StateStore::shared(FencedState::new(shared, leases.clone()));
        readiness.set_coordination_ok(false);
        let keeper = LeaseKeeper::new(backend, leases.clone(), tasks, timing, readiness.clone());
        let stop = CancellationToken::new();
        let handle = tokio::spawn(keeper.run(stop.clone()));
        tracing::info!(replica = %replica, lease_duration = ?timing.lease, "sharing the tasks with the other replicas");
        Ok(Self {
            state,
            permit: Permit::Leased(leases),
            keeper: Some((stop, handle)),
        })
    }

    /// After the runs ended and the state was saved: gives every lease up and leaves.
    pub(crate) async fn leave(self) {
        if let Some((stop, handle)) = self.keeper {
            stop.cancel();
            let _ = handle.await;
        }
    }
}
