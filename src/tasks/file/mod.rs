//! `type: file`: new lines of JSON-lines files matching a glob, delivered to a sink, with each
//! file's byte offset kept in state. It shares its sinks with `http-poll`, so the two form one
//! family: a source (`http-poll` polls a URL, `file` tails files) and a sink.
//!
//! ```yaml
//! - name: local-readings
//!   type: file
//!   schedule: {interval: 10s}
//!   source: {path: "examples/data/*.jsonl"}
//!   sink: {type: jsonl, path: out/quickstart.jsonl}
//! ```
//!
//! Only complete lines (ending in a newline) are read, so a line being written is picked up by a
//! later run. A file that shrank below its saved offset is read again from the start. Offsets move
//! only after every batch of the run was delivered.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::sink::SinkConfig;
use crate::runner::{BuildError, Task, TaskContext, TaskError};

/// The keys of a `file` task.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    /// Which files to read.
    pub source: FileSourceConfig,
    /// Where the records go.
    pub sink: SinkConfig,
}

/// `source:` of a `file` task.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileSourceConfig {
    /// A glob such as `data/*.jsonl` (relative to the working directory); every match is read.
    pub path: String,
}

/// The built task.
#[derive(Debug)]
pub struct FileTail {
    config: FileConfig,
}

/// Builds a `file` task, checking the glob.
pub fn build(config: FileConfig) -> Result<FileTail, BuildError> {
    glob::Pattern::new(&config.source.path)
        .map_err(|error| BuildError::at("source.path", format!("not a valid glob: {error}")))?;
    config.sink.check()?;
    Ok(FileTail { config })
}

/// What one file holds past its offset.
struct Chunk {
    path: String,
    new_offset: u64,
    records: Vec<Value>,
}

fn read_new(path: PathBuf, offset: u64) -> Result<Chunk, TaskError> {
    let shown = path.display().to_string();
    let io = |error| TaskError::with(format!("cannot read {shown}"), error);
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut offset = offset;
    if len < offset {
        tracing::warn!(file = %shown, "file is shorter than its saved offset; reading it again from the start");
        offset = 0;
    }
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut records = Vec::new();
    let mut at = offset;
    for line in bytes[..complete].split(|b| *b == b'\n') {
        let start = at;
        at += line.len() as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record = serde_json::from_slice(line).map_err(|error| {
            TaskError::with(
                format!("{shown}: the line at byte {start} is not JSON"),
                error,
            )
        })?;
        records.push(record);
    }
    Ok(Chunk {
        path: shown,
        new_offset: offset + complete as u64,
        records,
    })
}

#[async_trait::async_trait]
impl Task for FileTail {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let mut offsets: BTreeMap<String, u64> = ctx.state().get("offsets")?.unwrap_or_default();
        let pattern = self.config.source.path.clone();
        let paths = tokio::task::spawn_blocking(move || -> Result<Vec<PathBuf>, String> {
            let mut paths: Vec<PathBuf> = glob::glob(&pattern)
                .map_err(|e| e.to_string())?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            paths.sort();
            Ok(paths)
        })
        .await
        .expect("globbing does not panic")
        .map_err(TaskError::msg)?;
        let mut total = 0;
        for path in paths {
            if ctx.is_cancelled() {
                return Err(TaskError::Cancelled);
            }
            let key = path.display().to_string();
            let offset = offsets.get(&key).copied().unwrap_or(0);
            let chunk = tokio::task::spawn_blocking(move || read_new(path, offset))
                .await
                .expect("reading does not panic")?;
            ctx.records_extracted(chunk.records.len() as u64);
            self.config.sink.deliver(&ctx, &chunk.records).await?;
            total += chunk.records.len();
            offsets.insert(chunk.path, chunk.new_offset);
        }
        // Every batch was delivered: only now may the offsets move.
        ctx.state().set("offsets", &offsets)?;
        tracing::info!(records = total, "files read");
        Ok(())
    }
}
