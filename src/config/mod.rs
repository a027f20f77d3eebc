//! Configuration: the YAML file, `${VAR}` substitution, `TAPLINE_*` overrides and `*-file`
//! secrets, checked all at once so that one run of `tapline validate` lists every problem.
//!
//! Loading goes through these steps, each in its own module:
//! 1. read and parse the YAML (`load.rs`);
//! 2. replace `${VAR}` inside strings, then merge `TAPLINE_*` environment overrides (`env.rs`);
//! 3. check the shape against the JSON Schema derived from the types below (`shape.rs`), which
//!    collects every unknown key, missing key and wrong type with its key path;
//! 4. check the rules the schema cannot express (`rules.rs`) in every section whose shape is
//!    sound: URLs, cron expressions, task names, and each component's own rules (through
//!    [`Catalog`], which the registry implements: it builds every `auth:`, task and `sink:` block;
//!    the checks several components share, such as a secret given inline or as a file, are in
//!    `check.rs`); components that read a shared top-level block (`cdf:`) get it as
//!    [`Sections`];
//! 5. attach file lines to the problems (`locate.rs`), or deserialize into [`Config`].

mod buffer;
mod byte_size;
mod cdf;
mod changes;
pub(crate) mod check;
mod component;
mod coordination;
mod duration;
mod env;
mod error;
mod load;
mod locate;
mod path;
mod rules;
mod runtime;
mod secret;
mod sections;
mod session;
mod shape;
mod task;

use schemars::JsonSchema;
use serde::Deserialize;

pub use buffer::{BufferConfig, BufferKind, WhenFull};
pub use byte_size::{ByteSize, InvalidByteSize};
pub use cdf::REMOTE_CONFIG_KEYS;
pub use cdf::{CdfConfig, ExtractionPipelineConfig, SEGMENT};
pub use changes::{Changes, Tree, FIXED_SECTIONS};
pub(crate) use check::{check_token_url, expand_home};
pub use component::{BuildError, Catalog, ComponentConfig, Kind};
pub use coordination::{
    CoordinationConfig, CoordinationType, KubernetesTarget, PostgresConnection, Tls,
    DEFAULT_LEASE_PREFIX,
};
pub use duration::{HumanDuration, InvalidDuration};
pub(crate) use error::without_values;
pub use error::{Error, Problem};
pub use load::{config_path, load, parse_remote, LOCAL_KEYS};
pub use runtime::{
    LogFormat, LoggingConfig, ReloadConfig, ServerConfig, ShutdownConfig, StateConfig, StateType,
};
pub use secret::{read_secret_file, SecretFileError, SecretSource};
pub use sections::Sections;
pub use session::{RetryConfig, SessionConfig};
pub use task::{
    check_task_name, CronSchedule, IntervalSchedule, OnErrorMode, ScheduleConfig, ScheduleName,
    TaskConfig, CRON_HORIZON_YEARS, MAX_TASK_NAME_LEN,
};

/// The whole tapline configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "tapline configuration")]
pub struct Config {
    /// How requests are authenticated: a credential provider chosen by `type`.
    pub auth: ComponentConfig,
    /// The shared HTTP session.
    #[serde(default)]
    pub session: SessionConfig,
    /// The extractor tasks.
    #[serde(default)]
    pub tasks: Vec<TaskConfig>,
    /// Where task state is kept: a file, or PostgreSQL with `coordination:`.
    #[serde(default)]
    pub state: StateConfig,
    /// Several replicas sharing the tasks; off (`type: none`) when absent.
    #[serde(default)]
    pub coordination: CoordinationConfig,
    /// The telemetry server; off when absent.
    pub server: Option<ServerConfig>,
    /// Log output.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Graceful shutdown.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Reloading the config while running.
    #[serde(default)]
    pub reload: ReloadConfig,
    /// Cognite Data Fusion: the project the `cdf-*` sinks write to, and extraction pipeline runs.
    pub cdf: Option<CdfConfig>,
    /// The checked tree, to compare with a reloaded config ([`Changes`]).
    #[serde(skip)]
    #[schemars(skip)]
    pub tree: Tree,
}

/// The JSON Schema of the configuration file without its components (`auth:`, task types,
/// sinks), which the registry fills in.
pub fn base_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema is plain JSON")
}
