//! [`Roster`]: the tasks running now, by name. A reload stops, starts and restarts tasks here;
//! at shutdown the runner waits for all of them.

use std::sync::Arc;

use tokio::task::JoinHandle;

use super::schedule::Schedule;
use super::supervisor::{Host, Supervisor};
use super::TaskSpec;

/// The running tasks, in the order they were started.
#[derive(Default)]
pub(crate) struct Roster {
    tasks: Vec<(Arc<Supervisor>, JoinHandle<()>)>,
}

impl Roster {
    /// Starts `spec` along `schedule`. A startup task started by a reload runs once, now.
    pub(crate) fn start(&mut self, spec: TaskSpec, schedule: Schedule, host: &Host) {
        let supervisor = Supervisor::new(spec, host);
        let driver = match schedule {
            Schedule::Startup => {
                let supervisor = supervisor.clone();
                tokio::spawn(async move {
                    supervisor.run_now().await;
                })
            }
            schedule => tokio::spawn(supervisor.clone().drive(schedule)),
        };
        self.tasks.push((supervisor, driver));
    }

    /// Adds a task whose startup run has already happened, to be driven along `schedule`.
    pub(crate) fn drive(&mut self, supervisor: Arc<Supervisor>, schedule: Schedule) {
        let driver = tokio::spawn(supervisor.clone().drive(schedule));
        self.tasks.push((supervisor, driver));
    }

    /// Stops the tasks named in `names`, all at once, and returns when their runs have ended.
    pub(crate) async fn stop(&mut self, names: &[String]) {
        let (stopping, kept) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|(supervisor, _)| names.iter().any(|name| **name == *supervisor.name));
        self.tasks = kept;
        let stops = stopping.into_iter().map(|(supervisor, driver)| async move {
            supervisor.stop().await;
            let _ = driver.await;
        });
        futures::future::join_all(stops).await;
    }

    /// After shutdown: waits until every driver has returned.
    pub(crate) async fn join(self) {
        for (_, driver) in self.tasks {
            let _ = driver.await;
        }
    }
}
