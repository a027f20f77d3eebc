//! [`Registry`]: the components a config can name by `type`: credential providers (`auth:`),
//! task types (`tasks[]`) and sinks (`tasks[].sink`).
//!
//! A component is a config struct (its keys, with serde and schemars derives; kebab-case and
//! `deny_unknown_fields` give users "unknown key" errors) plus a build function that checks what
//! serde cannot and makes the component. Building opens no files and sends no requests, so
//! `tapline validate` builds every component to check it. The registry:
//! - describes every component's keys in the config's JSON Schema (`tapline schema`), so one
//!   `validate` reports every misspelt key of every task and sink with its path;
//! - builds the components of a loaded config into the runner's [`Plan`].
//!
//! The built-in components are listed in `builtin.rs`; a library user adds their own with
//! [`Registry::provider`], [`Registry::task`], [`Registry::source`] and [`Registry::sink`].

mod builtin;
mod default_scope;
mod schema;
mod table;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::auth::Provider;
use crate::config::{
    self, BufferKind, BuildError, Catalog, ComponentConfig, Config, Kind, OnErrorMode, Problem,
    Sections, TaskConfig,
};
use crate::runner::{
    self, Destination, OnError, Plan, Runner, RunnerBuilder, Sink, Task, TaskSpec,
};
use crate::transform::Program;
use table::Table;

/// Records per batch when a sink block gives no `batch-size`.
const DEFAULT_BATCH_SIZE: u64 = 500;

/// Credential providers, task types and sinks by name.
#[derive(Default)]
pub struct Registry {
    providers: Table<dyn Provider>,
    tasks: Table<dyn Task>,
    /// The task types that deliver records, and so take a `sink:`.
    sources: BTreeSet<String>,
    sinks: Table<dyn Sink>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("providers", &self.providers.names())
            .field("tasks", &self.tasks.names())
            .field("sinks", &self.sinks.names())
            .finish()
    }
}

impl Registry {
    /// A registry with no components at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A registry with every built-in provider, task type and sink.
    pub fn builtin() -> Self {
        let mut registry = Self::empty();
        builtin::register(&mut registry);
        registry
    }

    /// Registers the credential provider `name` (`auth: {type: name, ...}`): the block's keys
    /// are read into `C`, then `build` checks them and makes the provider.
    pub fn provider<C, P, F>(&mut self, name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        P: Provider,
        F: Fn(C) -> Result<P, BuildError> + Send + Sync + 'static,
    {
        let build = move |config, _: &Sections| build(config);
        self.providers
            .insert(name, build, |p| Arc::new(p) as Arc<dyn Provider>);
        self
    }

    /// Registers the task type `name`, whose tasks do their own work (no `sink:`): the task's
    /// keys other than `name`, `type` and `schedule` are read into `C`, then `build` makes it.
    pub fn task<C, T, F>(&mut self, name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        T: Task,
        F: Fn(C) -> Result<T, BuildError> + Send + Sync + 'static,
    {
        self.sources.remove(name);
        let build = move |config, _: &Sections| build(config);
        self.tasks
            .insert(name, build, |t| Arc::new(t) as Arc<dyn Task>);
        self
    }

    /// Registers the task type `name` as a source: its tasks deliver records through the
    /// `sink:` block every such task must have ([`TaskContext::output`]).
    ///
    /// [`TaskContext::output`]: crate::runner::TaskContext::output
    pub fn source<C, T, F>(&mut self, name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        T: Task,
        F: Fn(C) -> Result<T, BuildError> + Send + Sync + 'static,
    {
        self.task(name, build);
        self.sources.insert(name.to_string());
        self
    }

    /// Registers the sink `name` (`sink: {type: name, batch-size: 500, ...}`): the block's keys
    /// other than `type` and `batch-size` are read into `C`, then `build` makes the sink.
    pub fn sink<C, S, F>(&mut self, name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        S: Sink,
        F: Fn(C) -> Result<S, BuildError> + Send + Sync + 'static,
    {
        self.sink_with_sections(name, move |config, _: &Sections| build(config))
    }

    /// Registers the sink `name` like [`Registry::sink`], for a sink that also reads a shared
    /// top-level block of the config file (the `cdf-*` sinks read `cdf:`): `build` gets the
    /// block's keys and the file's checked [`Sections`].
    pub fn sink_with_sections<C, S, F>(&mut self, name: &str, build: F) -> &mut Self
    where
        C: DeserializeOwned + JsonSchema + 'static,
        S: Sink,
        F: Fn(C, &Sections) -> Result<S, BuildError> + Send + Sync + 'static,
    {
        self.sinks
            .insert(name, build, |s| Arc::new(s) as Arc<dyn Sink>);
        self
    }

    /// The JSON Schema of a config file that uses these components.
    pub fn schema(&self) -> Value {
        schema::assemble(self)
    }

    /// Loads and checks the config file at `path` (every problem at once).
    pub fn load(&self, path: &Path) -> Result<Config, config::Error> {
        config::load(path, self)
    }

    /// Builds the provider an `auth:` block names.
    pub fn provider_for(&self, block: &ComponentConfig) -> Result<Arc<dyn Provider>, Vec<Problem>> {
        self.providers
            .build(block, &Sections::default())
            .map_err(|error| error.locate("auth"))
    }

    /// Builds the provider of `config`'s `auth:` block, which asks for the `cdf:` block's
    /// default scope when it names none (see `default_scope.rs`).
    pub fn provider_of(&self, config: &Config) -> Result<Arc<dyn Provider>, Vec<Problem>> {
        self.provider_for(&self.auth_block(config))
    }

    /// Builds the sink a `sink:` block names, with its `batch-size` (for running a source
    /// outside the runner, with [`TaskContext::with_sink`]), without the shared top-level blocks.
    ///
    /// [`TaskContext::with_sink`]: crate::runner::TaskContext::with_sink
    pub fn sink_for(&self, block: &ComponentConfig) -> Result<Destination, Vec<Problem>> {
        self.destination(block, &Sections::default())
            .map_err(|error| error.locate("sink"))
    }

    /// Builds the provider and every task of `config` for the runner, or returns every problem.
    pub fn plan(&self, config: &Config) -> Result<Plan, Vec<Problem>> {
        let mut problems = Vec::new();
        let provider = self
            .provider_of(config)
            .map_err(|found| problems.extend(found));
        let sections = Sections::of(config);
        let mut tasks = Vec::new();
        for (index, task) in config.tasks.iter().enumerate() {
            let at = format!("tasks[{index}]");
            let built = self.tasks.build(&task.component(), &sections);
            let destination = match &task.sink {
                Some(sink) => self.destination(sink, &sections).map(Some),
                None => Ok(None),
            };
            let transform = transform(task);
            match (built, destination, transform) {
                (Ok(built), Ok(destination), Ok(transform)) => tasks.push(TaskSpec {
                    name: task.name.clone(),
                    schedule: task.schedule.clone(),
                    task: built,
                    destination,
                    transform,
                    on_error: on_error(task),
                    timeout: task.timeout.map(|t| t.get()),
                    buffer: task.buffer.clone().filter(|b| b.kind == BufferKind::Disk),
                }),
                (built, destination, transform) => {
                    problems.extend(built.err().map(|e| e.locate(&at)).unwrap_or_default());
                    let sink_at = format!("{at}.sink");
                    let sink_problems = destination.err().map(|e| e.locate(&sink_at));
                    problems.extend(sink_problems.unwrap_or_default());
                    problems.extend(transform.err().map(|e| e.locate(&at)).unwrap_or_default());
                }
            }
        }
        match provider {
            Ok(provider) if problems.is_empty() => Ok(Plan { provider, tasks }),
            _ => Err(problems),
        }
    }

    /// Builds the components of `config` and returns a runner for them.
    pub fn runner(&self, config: Config) -> Result<RunnerBuilder, runner::Error> {
        let plan = self
            .plan(&config)
            .map_err(|problems| runner::Error::Tasks { problems })?;
        // Run reports to CDF extraction pipelines, when the `cdf:` block or a task names one.
        let pipelines = crate::sinks::cdf::runs::ExtractionPipelineRuns::of(&config);
        let mut builder = Runner::builder(config, plan);
        if let Some(pipelines) = pipelines {
            builder = builder.observer(Arc::new(pipelines));
        }
        Ok(builder)
    }

    /// A sink block: `batch-size` is read here, every other key by the sink.
    fn destination(
        &self,
        block: &ComponentConfig,
        sections: &Sections,
    ) -> Result<Destination, BuildError> {
        let mut block = block.clone();
        let batch_size = match block.keys.remove("batch-size") {
            None => DEFAULT_BATCH_SIZE,
            Some(value) => value.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
                BuildError::at("batch-size", "must be a whole number of at least 1")
            })?,
        };
        Ok(Destination {
            sink: self.sinks.build(&block, sections)?,
            batch_size: usize::try_from(batch_size).unwrap_or(usize::MAX),
        })
    }
}

/// The task's compiled `transform:`.
fn transform(task: &TaskConfig) -> Result<Option<Program>, BuildError> {
    task.transform
        .as_deref()
        .map(Program::compile)
        .transpose()
        .map_err(|error| BuildError::at("transform", error.to_string()))
}

/// The task's `on-error`, with its `dead-letter` file (the loader made sure there is one).
fn on_error(task: &TaskConfig) -> OnError {
    match (task.on_error, &task.dead_letter) {
        (OnErrorMode::Skip, _) => OnError::Skip,
        (OnErrorMode::DeadLetter, Some(path)) => OnError::DeadLetter(path.clone()),
        _ => OnError::Fail,
    }
}

impl Catalog for Registry {
    fn schema(&self) -> Value {
        Registry::schema(self)
    }

    fn check(
        &self,
        kind: Kind,
        block: &ComponentConfig,
        sections: &Sections,
        at: &str,
    ) -> Vec<Problem> {
        let errors = match kind {
            Kind::Provider => self.providers.build(block, sections).err(),
            Kind::Task => self.tasks.build(block, sections).err(),
            Kind::Sink => self.destination(block, sections).err(),
        };
        errors.map(|error| error.locate(at)).unwrap_or_default()
    }
}
