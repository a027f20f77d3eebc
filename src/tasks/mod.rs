//! Built-in task types, one file each; `registry/builtin.rs` registers them.
//!
//! - `http-poll` ([`http_poll`]): poll a URL, follow pages, keep a cursor.
//! - `file` ([`mod@file`]): tail JSON-lines files matching a glob, keep byte offsets.
//! - `sql` ([`sql`]): page through a database query, keep the last row's cursor columns.
//!
//! All are sources: they deliver their records to the task's `sink:` through the run's
//! [`Output`](crate::runner::Output).

pub mod file;
pub mod http_poll;
pub mod sql;
