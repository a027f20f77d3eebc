//! [`Triggers`]: when to read the config again: SIGHUP, (with `watch`) a change of the file's
//! content, or (with a remote config) its refresh period.
//!
//! Why poll the content rather than watch the file with inotify: Kubernetes updates a mounted
//! ConfigMap by writing a new directory and swapping the `..data` symlink, which a watch on the
//! file (or its directory) does not see; reading the path through its symlinks every few
//! seconds and comparing the bytes sees every change, whatever the mechanism. Config files are
//! small, so keeping the last content costs nothing.

use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{Interval, MissedTickBehavior};

/// Why the config is read again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cause {
    /// SIGHUP.
    Signal,
    /// The file's content changed.
    Changed,
    /// Time to look for a new revision of the remote config.
    Refresh,
}

impl Cause {
    /// For log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signal => "SIGHUP",
            Self::Changed => "file changed",
            Self::Refresh => "remote config",
        }
    }
}

/// SIGHUP, and the file's content when watched.
pub struct Triggers {
    hangup: Signal,
    watch: Option<Watch>,
    refresh: Option<Interval>,
}

/// The watched file and its last content.
struct Watch {
    path: PathBuf,
    every: Interval,
    last: Option<Vec<u8>>,
}

impl Triggers {
    /// Listens for SIGHUP; with `watch`, reads `path` at that interval; with `refresh`, asks
    /// for the remote config at that interval.
    pub fn new(
        path: PathBuf,
        watch: Option<Duration>,
        refresh: Option<Duration>,
    ) -> std::io::Result<Self> {
        let watch = watch.map(|period| {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let last = std::fs::read(&path).ok();
            Watch { path, every, last }
        });
        let refresh = refresh.map(|period| {
            let start = tokio::time::Instant::now() + period;
            let mut every = tokio::time::interval_at(start, period);
            every.set_missed_tick_behavior(MissedTickBehavior::Delay);
            every
        });
        Ok(Self {
            hangup: signal(SignalKind::hangup())?,
            watch,
            refresh,
        })
    }

    /// Waits for the next reason to read the config again.
    pub async fn next(&mut self) -> Cause {
        let changed = async {
            match &mut self.watch {
                Some(watch) => watch.changed().await,
                None => std::future::pending().await,
            }
        };
        let refresh = async {
            match &mut self.refresh {
                Some(every) => drop(every.tick().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.hangup.recv() => Cause::Signal,
            () = changed => Cause::Changed,
            () = refresh => Cause::Refresh,
        }
    }
}

impl Watch {
    /// Returns once the file's content differs from the last seen. A file that cannot be read
    /// for a moment (being replaced) is not a change; the next read tells.
    async fn changed(&mut self) {
        loop {
            self.every.tick().await;
            let Ok(now) = tokio::fs::read(&self.path).await else {
                continue;
            };
            if self.last.as_ref() != Some(&now) {
                self.last = Some(now);
                return;
            }
        }
    }
}
