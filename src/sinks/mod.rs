//! The built-in sinks, one file each; this module only registers them.
//!
//! - `http` ([`http`]): POST batches through the shared session.
//! - `jsonl` ([`jsonl`]): append to a local JSON-lines file.
//! - `stdout` ([`stdout`]): one JSON object per line on standard output.
//!
//! Every sink block also takes `batch-size` (records per batch), which the registry reads.

pub mod http;
pub mod jsonl;
pub mod stdout;

use crate::registry::Registry;

/// Registers every built-in sink in `registry`.
pub fn register(registry: &mut Registry) {
    registry.sink("http", http::build);
    registry.sink("jsonl", jsonl::build);
    registry.sink("stdout", stdout::build);
}
