//! [`Roster`]: the tasks running now, by name. A reload stops, starts and restarts tasks here;
//! at shutdown the runner waits for all of them.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::buffered::{self, DrainHandle};
use super::runner::Error;
use super::schedule::Schedule;
use super::supervisor::{Host, Supervisor};
use super::TaskSpec;
use crate::config::Config;

/// One running task: its supervisor, what drives it along its schedule, and the drain of its
/// disk buffer, if it has one.
struct Entry {
    supervisor: Arc<Supervisor>,
    driver: JoinHandle<()>,
    drain: Option<DrainHandle>,
}

/// A task built and ready to run: its supervisor, and its drain when it has a disk buffer.
pub(crate) type Prepared = (Arc<Supervisor>, Option<DrainHandle>);

/// The running tasks, in the order they were started.
#[derive(Default)]
pub(crate) struct Roster {
    tasks: Vec<Entry>,
}

impl Roster {
    /// Builds `spec` into a supervisor (opening its disk buffer, with the settings of `started`,
    /// the config the process started with), to be run by [`Roster::add`]'s rules.
    pub(crate) fn prepare(
        spec: TaskSpec,
        started: &Config,
        host: &Host,
    ) -> Result<Prepared, Error> {
        let (spec, drain) = buffered::attach(spec, started, host)?;
        Ok((Supervisor::new(spec, host), drain))
    }

    /// Drives `supervisor` along `schedule`. A startup task runs once, now, unless `ran`
    /// (its startup run already happened, before the other tasks started).
    pub(crate) fn add(&mut self, (supervisor, drain): Prepared, schedule: Schedule, ran: bool) {
        let driver = match schedule {
            Schedule::Startup if ran => tokio::spawn(async {}),
            Schedule::Startup => {
                let supervisor = supervisor.clone();
                tokio::spawn(async move {
                    supervisor.run_now().await;
                })
            }
            schedule => tokio::spawn(supervisor.clone().drive(schedule)),
        };
        self.tasks.push(Entry {
            supervisor,
            driver,
            drain,
        });
    }

    /// Stops the tasks named in `names`, all at once, and returns when their runs and drains
    /// have ended.
    pub(crate) async fn stop(&mut self, names: &[String]) {
        let (stopping, kept) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|entry| names.iter().any(|name| **name == *entry.supervisor.name));
        self.tasks = kept;
        let stops = stopping.into_iter().map(|entry: Entry| async move {
            entry.supervisor.stop().await;
            let _ = entry.driver.await;
            if let Some(drain) = entry.drain {
                drain.stop().await;
            }
        });
        futures::future::join_all(stops).await;
    }

    /// After shutdown: waits until every driver has returned (drains end on their own, after
    /// the grace period at the latest, and are waited for with the runs).
    pub(crate) async fn join(self) {
        for entry in self.tasks {
            let _ = entry.driver.await;
        }
    }
}
