//! Built-in task types, one file each; this module only registers them.
//!
//! - `http-poll` ([`http_poll`]): poll a URL, follow pages, keep a cursor.
//! - `file` ([`mod@file`]): tail JSON-lines files matching a glob, keep byte offsets.
//!
//! Both deliver to a [`sink`]: `http`, `jsonl` or `stdout`.

pub mod file;
pub mod http_poll;
pub mod sink;

use crate::runner::Registry;

/// Registers every built-in type in `registry`.
pub fn register_builtins(registry: &mut Registry) {
    registry.register("http-poll", http_poll::build);
    registry.register("file", file::build);
}
