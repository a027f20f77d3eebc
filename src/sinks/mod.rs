//! The built-in sinks, one file each; `registry/builtin.rs` registers them.
//!
//! - `http` ([`http`]): POST batches through the shared session.
//! - `jsonl` ([`jsonl`]): append to a local JSON-lines file.
//! - `stdout` ([`stdout`]): one JSON object per line on standard output.
//! - `cdf-raw`, `cdf-datapoints`, `cdf-events` ([`cdf`]): Cognite Data Fusion, with the
//!   top-level `cdf:` block.
//!
//! Every sink block also takes `batch-size` (records per batch), which the registry reads.

pub mod cdf;
pub mod http;
pub mod jsonl;
pub mod stdout;
