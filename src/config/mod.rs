//! Configuration: the YAML file, `${VAR}` substitution, `TAPLINE_*` overrides and `*-file`
//! secrets, checked all at once so that one run of `tapline validate` lists every problem.
//!
//! Loading goes through these steps, each in its own module:
//! 1. read and parse the YAML (`load.rs`);
//! 2. replace `${VAR}` inside strings, then merge `TAPLINE_*` environment overrides (`env.rs`);
//! 3. check the shape against the JSON Schema derived from the types below (`shape.rs`), which
//!    collects every unknown key, missing key and wrong type with its key path;
//! 4. check the rules the schema cannot express (`rules.rs`) in every section whose shape is
//!    sound: conflicting keys, unreadable files, URLs, cron expressions, task names and types, and
//!    each task type's own keys (through [`TaskTypes`], which the runner's registry implements);
//! 5. attach file lines to the problems (`locate.rs`), or deserialize into [`Config`].

mod auth;
mod byte_size;
mod duration;
mod env;
mod error;
mod load;
mod locate;
mod path;
mod rules;
mod runtime;
mod secret;
mod session;
mod shape;
mod task;

use schemars::JsonSchema;
use serde::Deserialize;

pub use auth::{
    AuthConfig, BrowserConfig, CertificateConfig, ClientAuth, ClientSecretConfig, DeviceCodeConfig,
    InteractiveEndpoints, KognicConfig, Scopes, TokenConfig, WorkloadIdentityConfig,
};
pub use byte_size::{ByteSize, InvalidByteSize};
pub use duration::{Duration, InvalidDuration};
pub use error::{without_values, Error, Problem};
pub use load::{config_path, load, Options, TaskTypes};
pub use rules::{check_token_url, expand_home};
pub use runtime::{LogFormat, LoggingConfig, ServerConfig, ShutdownConfig, StateConfig};
pub use secret::{read_secret_file, SecretFileError, SecretSource};
pub use session::{RetryConfig, SessionConfig};
pub use task::{CronSchedule, IntervalSchedule, Schedule, ScheduleName, TaskConfig};

/// The whole tapline configuration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "tapline configuration")]
pub struct Config {
    /// How requests are authenticated; chosen by `type`.
    pub auth: AuthConfig,
    /// The shared HTTP session.
    #[serde(default)]
    pub session: SessionConfig,
    /// The extractor tasks.
    #[serde(default)]
    pub tasks: Vec<TaskConfig>,
    /// The state file.
    #[serde(default)]
    pub state: StateConfig,
    /// The telemetry server; off when absent.
    pub server: Option<ServerConfig>,
    /// Log output.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// Graceful shutdown.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
}

/// The JSON Schema of the configuration file, for editors and CI.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("a schema is plain JSON")
}
