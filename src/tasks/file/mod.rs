//! `type: file`: new lines of JSON-lines files matching a glob, delivered to a sink, with each
//! file's progress kept in state. It shares its sinks with `http-poll`, so the two form one
//! family: a source (`http-poll` polls a URL, `file` tails files) and a sink.
//!
//! ```yaml
//! - name: local-readings
//!   type: file
//!   schedule: {interval: 10s}
//!   source:
//!     path: "examples/data/*.jsonl"
//!     max-line-bytes: 1048576   # longer lines are skipped and counted
//!     forget-after: 24h         # drop the offset of a file gone this long
//!   sink: {type: jsonl, path: out/quickstart.jsonl}
//! ```
//!
//! A run finds the files (`walk`), recognises them by identity rather than by name
//! (`identity`), decides where each one is read from (`plan`), then streams each one
//! (`reader`) a sink batch at a time: every batch is delivered and only then is its offset
//! saved to the state file (`checkpoint`), so memory holds one batch, and a crash or a failed
//! batch sends again only the batch in progress.

mod checkpoint;
mod events;
mod identity;
mod plan;
mod reader;
mod walk;

use std::time::{SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;

use self::checkpoint::Checkpoints;
use self::events::FileEvent;
use self::identity::Observed;
use self::plan::{Clock, Plan, Read};
use self::reader::{Batch, LineReader, ReadError, Resume};
use self::walk::Pattern;
use crate::config::{BuildError, HumanDuration};
use crate::runner::{Mark, Output, Task, TaskContext, TaskError};

/// `type: file`: tail JSON-lines files; the records go to the task's `sink:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// Which files to read.
    pub source: FileSourceConfig,
}

/// `source:` of a `file` task.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileSourceConfig {
    /// A glob such as `data/*.jsonl` or `logs/**/*.jsonl` (relative to the working directory);
    /// every match is read. `*` and `?` stay within one directory; `**` crosses directories
    /// and follows symlinks, each real directory and file once.
    pub path: String,
    /// The longest line read, in bytes (without the newline). A longer line is skipped with a
    /// warning and counted in `tapline_file_lines_skipped_total{reason="too-long"}`: one line
    /// must not hold up the file, nor the memory. Default 1 MiB.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// How long the offset of a file that is gone is kept (in case it comes back, under its
    /// name or another). Without a limit, dated file names would grow the state for ever.
    /// Default 24h.
    #[serde(default = "default_forget_after")]
    pub forget_after: HumanDuration,
}

fn default_max_line_bytes() -> usize {
    1024 * 1024
}

fn default_forget_after() -> HumanDuration {
    HumanDuration::from_secs(24 * 60 * 60)
}

/// The built task.
#[derive(Debug)]
pub struct FileTail {
    config: FileConfig,
    pattern: Pattern,
}

/// Builds a `file` task, checking the glob and the limits.
pub fn build(config: FileConfig) -> Result<FileTail, BuildError> {
    let pattern = Pattern::parse(&config.source.path)
        .map_err(|error| BuildError::at("source.path", format!("not a valid glob: {error}")))?;
    if config.source.max_line_bytes == 0 {
        return Err(BuildError::at(
            "source.max-line-bytes",
            "must be at least 1",
        ));
    }
    Ok(FileTail { config, pattern })
}

#[async_trait::async_trait]
impl Task for FileTail {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let checkpoints = Checkpoints::load(ctx.state())?;
        let (mut checkpoints, plan) = self.discover(&ctx, checkpoints).await?;
        for path in &plan.forgotten {
            FileEvent::Forgotten { path }.emit(ctx.name());
        }
        // The plan's changes (new, truncated, renamed and forgotten files) even if nothing is read.
        checkpoints.store(ctx.state())?;
        let mut total = 0;
        let mut output = ctx.output()?;
        for read in &plan.reads {
            total += self
                .read_file(&ctx, &mut output, &mut checkpoints, read)
                .await?;
        }
        tracing::info!(records = total, "files read");
        Ok(())
    }
}

impl FileTail {
    /// Walks the glob, looks for the missing known files under other names, and plans the run.
    /// Blocking file system work, off the async threads; it stops at shutdown.
    async fn discover(
        &self,
        ctx: &TaskContext,
        mut checkpoints: Checkpoints,
    ) -> Result<(Checkpoints, Plan), TaskError> {
        let pattern = self.pattern.clone();
        let cancel = ctx.cancellation().clone();
        let span = ctx.span().clone();
        let clock = Clock {
            now: unix_now(),
            forget_after: self.config.source.forget_after.get(),
        };
        let discovered = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let found = observe(walk::walk(&pattern, &cancel)?);
                let (dirs, ids) = plan::missing(&checkpoints, &found);
                let renamed = observe(walk::find_renamed(&dirs, &ids, &cancel)?);
                let plan = plan::plan(&mut checkpoints, found, renamed, clock);
                Ok((checkpoints, plan))
            })
        })
        .await
        .expect("walking the files does not panic");
        discovered.map_err(|walk::Cancelled| TaskError::Cancelled)
    }

    /// Reads one file batch by batch from where the plan says; returns the records delivered.
    async fn read_file(
        &self,
        ctx: &TaskContext,
        output: &mut Output,
        checkpoints: &mut Checkpoints,
        read: &Read,
    ) -> Result<u64, TaskError> {
        let shown = read.path.display().to_string();
        FileEvent::Reading {
            path: &shown,
            start: &read.start,
        }
        .emit(ctx.name());
        let Some(checkpoint) = checkpoints.get(read.id) else {
            return Ok(0);
        };
        let resume = Resume {
            offset: checkpoint.offset,
            in_long_line: checkpoint.in_long_line,
            max_line_bytes: self.config.source.max_line_bytes,
        };
        let (path, id) = (read.path.clone(), read.id);
        let opened = blocking(move || LineReader::open(&path, id, resume)).await?;
        let Some(reader) = opened else {
            tracing::debug!(file = %shown, "file changed since it was found; the next run reads it");
            return Ok(0);
        };
        let size = output.batch_size();
        let mut delivered = 0;
        let mut next = read_ahead(reader, size);
        // The batch pushed to the output but not yet delivered, with where it ends.
        let mut previous: Option<(Mark, Batch)> = None;
        loop {
            if ctx.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            let (reader, batch) = next.await.expect("reading a file does not panic");
            let mut batch = batch.map_err(read_failed)?;
            let records = std::mem::take(&mut batch.records);
            // The next batch is read and parsed while this one is transformed, and this one is
            // transformed while the previous one goes to the sink.
            let ahead = (!batch.done).then(|| read_ahead(reader, size));
            ctx.records_extracted(records.len() as u64);
            delivered += records.len() as u64;
            output.stage(records);
            let mark = output.mark();
            if let Some((mark, done)) = previous.replace((mark, batch)) {
                self.commit(ctx, output, checkpoints, read, mark, done)
                    .await?;
            }
            let Some(ahead) = ahead else {
                let (mark, last) = previous.take().expect("set above");
                self.commit(ctx, output, checkpoints, read, mark, last)
                    .await?;
                return Ok(delivered);
            };
            next = ahead;
        }
    }

    /// Delivers the records pushed before `mark` (the batch `batch` ends there), then records the
    /// file's new offset and saves the state file: a crash or a failed batch later on never sends
    /// this one again.
    async fn commit(
        &self,
        ctx: &TaskContext,
        output: &mut Output,
        checkpoints: &mut Checkpoints,
        read: &Read,
        mark: Mark,
        batch: Batch,
    ) -> Result<(), TaskError> {
        output.flush_to(mark).await?;
        checkpoints.advance(read.id, batch.offset, batch.in_long_line);
        checkpoints.store(ctx.state())?;
        ctx.save_state().await?;
        let path = read.path.display().to_string();
        for offset in batch.too_long {
            FileEvent::LineTooLong {
                path: &path,
                offset,
                max_line_bytes: self.config.source.max_line_bytes,
            }
            .emit(ctx.name());
        }
        Ok(())
    }
}

/// Opens each path and reads its identity; a file gone or unreadable meanwhile is passed over
/// (it is missing this run, like a file not found).
fn observe(paths: Vec<std::path::PathBuf>) -> Vec<Observed> {
    paths
        .into_iter()
        .filter_map(|path| match Observed::read(path.clone()) {
            Ok(seen) => Some(seen),
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot open the file; passed over this run");
                None
            }
        })
        .collect()
}

/// Runs blocking file I/O off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, TaskError> {
    tokio::task::spawn_blocking(work)
        .await
        .expect("reading a file does not panic")
        .map_err(read_failed)
}

/// Starts reading the next batch of `reader` on a blocking thread.
fn read_ahead(
    mut reader: LineReader,
    size: usize,
) -> tokio::task::JoinHandle<(LineReader, Result<Batch, ReadError>)> {
    tokio::task::spawn_blocking(move || {
        let batch = reader.next_batch(size);
        (reader, batch)
    })
}

fn read_failed(error: ReadError) -> TaskError {
    TaskError::with("reading the files failed", error)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.as_secs())
}
