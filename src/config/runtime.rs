//! The blocks that shape the running process: `state:`, `server:`, `logging:`, `shutdown:`.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::duration::HumanDuration;
use super::secret::SecretSource;

/// Where task state (cursors, offsets) is kept between runs.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StateConfig {
    /// `file` (default): one JSON file; `postgres`: a table beside the task leases, `kubernetes`:
    /// one ConfigMap per task; both written under the task's lease, and the one required by the
    /// `coordination:` of the same type.
    #[serde(default, rename = "type")]
    pub kind: StateType,
    /// The JSON state file (`type: file`); written atomically.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
    /// `type: postgres`: the database, which must be that of `coordination.url` (the default).
    pub url: Option<String>,
    /// `type: postgres`: the password, when not that of `coordination:`.
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// `type: postgres`: a file holding the password.
    pub password_file: Option<PathBuf>,
}

/// Where the state is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StateType {
    /// The JSON state file.
    #[default]
    File,
    /// PostgreSQL, fenced by the task leases.
    Postgres,
    /// One ConfigMap per task, fenced by the task leases (with `coordination: {type: kubernetes}`).
    Kubernetes,
}

impl StateConfig {
    /// Where the `type: postgres` password comes from, if given here.
    pub fn password(&self) -> Option<SecretSource> {
        SecretSource::from_pair(self.password.as_ref(), self.password_file.as_deref())
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            kind: StateType::File,
            path: default_state_path(),
            url: None,
            password: None,
            password_file: None,
        }
    }
}

/// Hand-written: the URL may hold a password, and `password` is one.
impl std::fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateConfig")
            .field("kind", &self.kind)
            .field("path", &self.path)
            .field("url", &self.url.as_deref().map(crate::redact::url))
            .field("password", &self.password())
            .finish()
    }
}

/// The telemetry server: `/healthz`, `/readyz`, `/metrics`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, such as `127.0.0.1:9090` or `0.0.0.0:9090` in a container.
    #[schemars(with = "String")]
    pub listen: SocketAddr,
}

/// Log output.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LoggingConfig {
    /// A level or a filter such as `info,tapline::session=debug`; `RUST_LOG` wins.
    #[serde(default = "default_level")]
    pub level: String,
    /// `pretty` for people, `json` for log collectors.
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: default_level(),
            format: LogFormat::default(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Reloading the config while running (SIGHUP always re-reads it).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReloadConfig {
    /// Re-read the config file whenever its content changes (as `tapline run --watch`). The
    /// file is read through its symlinks, so Kubernetes' ConfigMap updates are seen.
    #[serde(default)]
    pub watch: bool,
    /// How often the file is read to look for a change, with `watch`.
    #[serde(default = "default_watch_interval")]
    pub interval: HumanDuration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: false,
            interval: default_watch_interval(),
        }
    }
}

fn default_watch_interval() -> HumanDuration {
    HumanDuration::from_secs(3)
}

/// Graceful shutdown.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long running tasks get to finish after SIGTERM before they are abandoned.
    #[serde(default = "default_grace_period")]
    pub grace_period: HumanDuration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace_period: default_grace_period(),
        }
    }
}

fn default_state_path() -> PathBuf {
    PathBuf::from("./state/tapline-state.json")
}

fn default_level() -> String {
    "info".to_string()
}

fn default_grace_period() -> HumanDuration {
    HumanDuration::from_secs(30)
}
