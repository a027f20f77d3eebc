//! A task's `buffer:` block: a durable disk buffer between its source and its sink, so that a
//! destination outage does not stop extraction (the records wait on disk, up to `max-size`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::byte_size::ByteSize;
use super::duration::HumanDuration;

/// `buffer: {type: disk, path: ..., max-size: 1GiB, when-full: block, flush-interval: 1s}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BufferConfig {
    /// `disk`: runs append their records to the buffer (fsynced) and are done; a drain loop
    /// delivers them to the sink. `none` (the default): runs deliver to the sink themselves.
    #[serde(rename = "type", default)]
    pub kind: BufferKind,
    /// The buffer's directory, one per task. Default: `buffer/<task>` beside the state file.
    pub path: Option<PathBuf>,
    /// The most bytes of undelivered records on disk (KiB, MiB, GiB); a run that brings more
    /// appends in pieces as the sink takes them.
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
    /// When `max-size` is reached: `block` stops reading the source until there is room,
    /// `fail` fails the run (its position does not move past what was not appended).
    #[serde(default)]
    pub when_full: WhenFull,
    /// A batch smaller than the sink's `batch-size` is delivered once it has waited this long.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: HumanDuration,
}

/// `buffer.type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BufferKind {
    /// No buffer: runs deliver to the sink.
    #[default]
    None,
    /// A durable buffer on local disk.
    Disk,
}

/// `buffer.when-full`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Wait for room: the source is not read meanwhile.
    #[default]
    Block,
    /// Fail the run.
    Fail,
}

fn default_max_size() -> ByteSize {
    ByteSize::new(1 << 30)
}

fn default_flush_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
