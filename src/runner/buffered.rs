//! Tasks with `buffer: {type: disk}`: at start, each one's disk buffer is opened (and mended,
//! see `crate::buffer`), its runs are given a [`BufferSink`] in place of the real sink, and its
//! [`Drain`] starts beside its schedule, delivering what earlier starts left and what the runs
//! append.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::buffer_sink::BufferSink;
use super::drain::{report_corrupt, report_level, Drain};
use super::runner::{Error, TaskSpec};
use super::sink::Destination;
use super::supervisor::Host;
use super::task::TaskContext;
use crate::backoff::{Backoff, Jitter};
use crate::buffer::{DiskBuffer, Limits, Recovery};
use crate::config::{BufferConfig, Config};

/// A running drain: stopping it cancels a delivery in progress (that batch stays in the buffer
/// and is delivered again), and the buffer directory is free once it has ended.
pub(crate) struct DrainHandle {
    stop: CancellationToken,
    ended: tokio::task::JoinHandle<()>,
}

impl DrainHandle {
    /// Stops the drain now and waits until it has let go of the buffer (a reload that stops
    /// or changes the task; at shutdown the drain stops by itself after the grace period).
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.ended.await;
    }
}

/// Opens `spec`'s buffer, if it has one, and starts its drain; returns the spec its runs use,
/// and the drain.
pub(crate) fn attach(
    mut spec: TaskSpec,
    config: &Config,
    host: &Host,
) -> Result<(TaskSpec, Option<DrainHandle>), Error> {
    let (Some(buffer), Some(destination)) = (&spec.buffer, &spec.destination) else {
        return Ok((spec, None));
    };
    let dir = directory(buffer, &config.state.path, &spec.name);
    let limits = Limits::new(buffer.max_size.bytes());
    let (disk, recovery) = DiskBuffer::open(&dir, limits).map_err(|source| Error::Buffer {
        task: spec.name.clone(),
        source,
    })?;
    let disk = Arc::new(disk);
    let ctx = TaskContext::new(
        &spec.name,
        &host.sessions.borrow(),
        host.state.handle(&spec.name),
        CancellationToken::new(),
    )
    .with_transform(None, spec.on_error.clone());
    tell(&ctx, &recovery, &disk);
    let retries = &config.session.retries;
    let drain = Drain {
        buffer: disk.clone(),
        destination: destination.clone(),
        ctx,
        sessions: host.sessions.clone(),
        flush_interval: buffer.flush_interval.get(),
        retry: Backoff::new(
            retries.initial_backoff.get(),
            retries.max_backoff.get(),
            Jitter::Full,
        ),
        shutdown: host.shutdown.clone(),
        grace: config.shutdown.grace_period.get(),
    };
    let stop = drain.ctx.cancellation().clone();
    let ended = host.tracker.spawn(drain.run());
    spec.destination = Some(Destination {
        sink: Arc::new(BufferSink {
            buffer: disk,
            when_full: buffer.when_full,
        }),
        batch_size: destination.batch_size,
    });
    Ok((spec, Some(DrainHandle { stop, ended })))
}

/// `buffer.path`, or `buffer/<task>` beside the state file.
fn directory(buffer: &BufferConfig, state: &Path, task: &str) -> PathBuf {
    match &buffer.path {
        Some(path) => path.clone(),
        None => state
            .parent()
            .unwrap_or(Path::new(""))
            .join("buffer")
            .join(task),
    }
}

/// Logs what opening the buffer mended, and reports its level.
fn tell(ctx: &TaskContext, recovery: &Recovery, disk: &DiskBuffer) {
    let _span = ctx.span().enter();
    for (segment, bytes) in &recovery.torn {
        tracing::warn!(segment = %segment.display(), bytes, "cut off a torn write at the end of the disk buffer (a crash during an append that never completed)");
    }
    if recovery.ledger_unreadable {
        tracing::error!(buffer = %disk.dir().display(), "the buffer ledger is unreadable; delivering from the oldest record kept, so some records may be delivered twice");
    }
    drop(_span);
    for corrupt in &recovery.corrupt {
        report_corrupt(ctx, corrupt);
    }
    let level = disk.level();
    if level.records > 0 {
        ctx.span().in_scope(|| {
            tracing::info!(
                records = level.records,
                "records left in the disk buffer; delivering them"
            )
        });
    }
    report_level(ctx.name(), disk);
}
