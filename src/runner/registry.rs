//! Task types by name: the built-in ones and those a library user registers.
//!
//! A task type is a config struct (the task's own keys, parsed with serde) plus a build function
//! that turns it into a [`Task`]. Building only checks and prepares: it opens no files and sends
//! no requests, so `tapline validate` can build every task to check its keys.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::task::Task;
use crate::config::{without_values, Config, Problem, TaskConfig};

type Factory =
    Arc<dyn Fn(&Map<String, Value>, &str) -> Result<Arc<dyn Task>, Vec<Problem>> + Send + Sync>;

/// A task's keys are valid for serde but not for the task, e.g. a URL that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// The key it is about, relative to the task (`source.url`); `None` for the task as a whole.
    pub key: Option<String>,
    /// What is wrong, worded for the person who wrote the config.
    pub message: String,
}

impl BuildError {
    /// A problem with the key `key` (relative to the task, such as `source.url`).
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    /// A problem with the task as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            key: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// The task types the runner can build, by name.
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("types", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// A registry with no types at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A registry with the built-in types (`http-poll`, `file`).
    pub fn with_builtins() -> Self {
        let mut registry = Self::empty();
        crate::tasks::register_builtins(&mut registry);
        registry
    }

    /// Registers the type `name`: the task's keys are parsed into `C` (unknown keys are errors
    /// when `C` uses `#[serde(deny_unknown_fields)]`), then `build` makes the task. A later
    /// registration under the same name replaces the earlier one.
    pub fn register<C, T, F>(&mut self, name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + 'static,
        T: Task,
        F: Fn(C) -> Result<T, BuildError> + Send + Sync + 'static,
    {
        let factory: Factory = Arc::new(move |options, prefix| {
            let value = Value::Object(options.clone());
            let config: C = serde_path_to_error::deserialize(value).map_err(|error| {
                let inner = error.path().to_string();
                let path = if inner == "." {
                    prefix.to_string()
                } else {
                    format!("{prefix}.{inner}")
                };
                vec![problem(
                    path,
                    without_values(&error.into_inner().to_string()),
                )]
            })?;
            let task = build(config).map_err(|error| {
                let path = match &error.key {
                    Some(key) => format!("{prefix}.{key}"),
                    None => prefix.to_string(),
                };
                vec![problem(path, error.message)]
            })?;
            Ok(Arc::new(task) as Arc<dyn Task>)
        });
        self.factories.insert(name.to_string(), factory);
        self
    }

    /// The names of the registered types, sorted.
    pub fn type_names(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }

    /// Builds `task`, which is `tasks[index]` in the config.
    pub fn build_task(
        &self,
        index: usize,
        task: &TaskConfig,
    ) -> Result<Arc<dyn Task>, Vec<Problem>> {
        let prefix = format!("tasks[{index}]");
        match self.factories.get(&task.task_type) {
            Some(factory) => factory(&task.options, &prefix),
            None => Err(vec![problem(
                format!("{prefix}.type"),
                format!(
                    "unknown task type {:?}; known types: {}",
                    task.task_type,
                    self.type_names().join(", ")
                ),
            )]),
        }
    }

    /// Builds every task of `config`, or returns every problem found.
    pub fn build(&self, config: &Config) -> Result<Vec<Arc<dyn Task>>, Vec<Problem>> {
        let mut tasks = Vec::new();
        let mut problems = Vec::new();
        for (index, task) in config.tasks.iter().enumerate() {
            match self.build_task(index, task) {
                Ok(built) => tasks.push(built),
                Err(found) => problems.extend(found),
            }
        }
        if problems.is_empty() {
            Ok(tasks)
        } else {
            Err(problems)
        }
    }
}

/// Lets `config::load` check each task's own keys with the factories, so task option problems
/// come with the file lines and in the same run as every other config problem.
impl crate::config::TaskTypes for Registry {
    fn names(&self) -> Vec<String> {
        self.type_names()
    }

    fn check(&self, index: usize, task: &TaskConfig) -> Vec<Problem> {
        self.build_task(index, task).err().unwrap_or_default()
    }
}

fn problem(path: String, message: String) -> Problem {
    Problem {
        path,
        line: None,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{TaskContext, TaskError};

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    struct Keys {
        #[allow(dead_code)]
        source: Source,
    }

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    struct Source {
        #[allow(dead_code)]
        url: String,
    }

    struct Nothing;

    #[async_trait::async_trait]
    impl Task for Nothing {
        async fn run(&self, _: TaskContext) -> Result<(), TaskError> {
            Ok(())
        }
    }

    fn task(options: Value) -> TaskConfig {
        serde_json::from_value(serde_json::json!({
            "name": "t", "type": "mine", "schedule": "startup",
        }))
        .map(|mut t: TaskConfig| {
            t.options = options.as_object().unwrap().clone();
            t
        })
        .unwrap()
    }

    #[test]
    fn errors_carry_the_key_path() {
        let mut registry = Registry::empty();
        registry.register("mine", |_: Keys| Ok(Nothing));
        let problems = registry
            .build_task(2, &task(serde_json::json!({"source": {"url": 5}})))
            .err()
            .unwrap();
        assert_eq!(problems[0].path, "tasks[2].source.url");
        let problems = registry
            .build_task(
                0,
                &task(serde_json::json!({"source": {"url": "x", "extra": 1}})),
            )
            .err()
            .unwrap();
        assert!(
            problems[0].message.contains("unknown field `extra`"),
            "{problems:?}"
        );
    }

    #[test]
    fn build_errors_carry_the_key_path() {
        let mut registry = Registry::empty();
        registry.register("mine", |_: Keys| -> Result<Nothing, _> {
            Err(BuildError::at("source.url", "bad"))
        });
        let problems = registry
            .build_task(1, &task(serde_json::json!({"source": {"url": "x"}})))
            .err()
            .unwrap();
        assert_eq!(problems[0].path, "tasks[1].source.url");
    }
}
