//! Record transforms: a task's `transform:` is a jq program (run by jaq) applied to each record
//! between the source and the sink. It may drop a record (`select(...)`), reshape it, or explode
//! it into many; order is kept.
//!
//! This module knows nothing of tasks or sinks: it compiles programs and runs them on values. The
//! runner's `Output` decides when records pass through and what an error costs (`on-error`).

mod program;
mod value;

pub use program::{Bound, CompileError, Failed, Program, RecordError};

use serde_json::{Map, Value};

/// The values of the variables a program sees, fixed for one run.
#[derive(Clone, Default)]
pub struct Bindings {
    /// `$task`: the task's name.
    pub task: String,
    /// `$now`: milliseconds since the Unix epoch when the run started.
    pub now: i64,
    /// `$cursor`: the cursor the run started from, as saved (null for tasks without one).
    pub cursor: Value,
    /// `$env` and `$ENV`: the process environment.
    pub env: Map<String, Value>,
}

/// The environment's names only: its values may be secrets.
impl std::fmt::Debug for Bindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bindings")
            .field("task", &self.task)
            .field("now", &self.now)
            .field("cursor", &self.cursor)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Bindings {
    /// The bindings of a run of `task` starting now, from `cursor`, in this process's
    /// environment (variables whose name or value is not Unicode are left out).
    pub fn for_run(task: &str, now: i64, cursor: Value) -> Self {
        let env = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .map(|(name, value)| (name, Value::String(value)))
            .collect();
        Self {
            task: task.to_string(),
            now,
            cursor,
            env,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_environment_variables_without_their_values() {
        let bindings = Bindings {
            env: [("DB_PASSWORD".to_string(), Value::from("s3cr3t-value"))]
                .into_iter()
                .collect(),
            ..Bindings::default()
        };
        let shown = format!("{bindings:?}");
        assert!(shown.contains("DB_PASSWORD"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }
}
