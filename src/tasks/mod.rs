//! Built-in task types.

/// Names of the built-in task types.
pub const BUILTIN: &[&str] = &["http-poll"];
