//! A whole extractor binary with a task type of its own, beside the built-in ones.
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
//! It has the full `tapline` command line: `cargo run --example custom_task -- run -c my.yaml`,
//! `... -- validate -c my.yaml`, `... -- schema` (which describes `heartbeat`'s keys too).

use tapline::prelude::*;

/// `type: heartbeat`: POST a heartbeat through the shared session.
#[derive(Debug, Deserialize, JsonSchema)]
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

#[async_trait]
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
            let status = response.status();
            return Err(TaskError::msg(format!("heartbeat answered {status}")));
        }
        ctx.records_delivered(1);
        ctx.state().set("beats", &beats)?;
        tracing::info!(beats, "heartbeat sent");
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    let mut registry = Registry::builtin();
    registry.task("heartbeat", build);
    cli::main("heartbeat-extractor", registry)
}
