//! A library user's own task type, registered with the runner beside the built-in ones.
//!
//! The task `heartbeat` reads its own typed keys and POSTs a heartbeat through the shared
//! session (so it carries the bearer token and gets the session's retries), counting its beats in
//! the state store:
//!
//! ```yaml
//! tasks:
//!   - name: beat
//!     type: heartbeat
//!     schedule: {interval: 30s}
//!     path: heartbeats          # relative to session.base-url
//!     site: plant-a
//! ```
//!
//! Run it with `cargo run --example custom_task -- -c my.yaml [--once]`.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;
use tapline::config;
use tapline::runner::{BuildError, Registry, Runner, Task, TaskContext, TaskError};

/// The task's own keys; unknown keys are errors with their key path.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct HeartbeatConfig {
    /// Where to POST, relative to `session.base-url`.
    path: String,
    /// Sent in each heartbeat.
    site: String,
}

struct Heartbeat {
    config: HeartbeatConfig,
}

fn build(config: HeartbeatConfig) -> Result<Heartbeat, BuildError> {
    if config.site.is_empty() {
        return Err(BuildError::at("site", "must not be empty"));
    }
    Ok(Heartbeat { config })
}

#[async_trait::async_trait]
impl Task for Heartbeat {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let beats: u64 = ctx.state().get("beats")?.unwrap_or(0) + 1;
        let body = serde_json::json!({"site": self.config.site, "task": ctx.name(), "beat": beats});
        let response = ctx
            .session()
            .post(&self.config.path)
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(TaskError::msg(format!(
                "heartbeat answered {}",
                response.status()
            )));
        }
        ctx.records_delivered(1);
        ctx.state().set("beats", &beats)?;
        tracing::info!(beats, "heartbeat sent");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut once = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-c" | "--config" => path = args.next().map(PathBuf::from),
            "--once" => once = true,
            other => {
                eprintln!("unknown argument {other:?}; usage: custom_task [-c FILE] [--once]");
                return ExitCode::from(2);
            }
        }
    }
    let mut registry = Registry::with_builtins();
    registry.register("heartbeat", build);
    let options = config::Options {
        task_types: &registry,
    };
    let path = config::config_path(path.as_deref());
    let config = match config::load(&path, &options) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    tapline::telemetry::logging::init(&config.logging);
    match Runner::builder(config)
        .registry(registry)
        .once(once)
        .run()
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
