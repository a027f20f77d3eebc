//! The blocks that shape the running process: `state:`, `server:`, `logging:`, `shutdown:`.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::duration::HumanDuration;

/// Where task state (cursors, offsets) is kept between runs.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct StateConfig {
    /// The JSON state file; written atomically.
    #[serde(default = "default_state_path")]
    pub path: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            path: default_state_path(),
        }
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
