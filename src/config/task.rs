//! The `tasks:` list: which extractor tasks run, and when.

use schemars::JsonSchema;
use serde::Deserialize;

use super::component::ComponentConfig;
use super::duration::Duration;

/// One extractor task. Keys other than `name`, `type`, `schedule` and `sink` belong to the task
/// type, which parses them itself.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct TaskConfig {
    /// A unique name; it labels logs, metrics and the task's state namespace.
    pub name: String,
    /// The task type, built-in or registered by a library user.
    #[serde(rename = "type")]
    pub task_type: String,
    /// When the task runs.
    pub schedule: Schedule,
    /// Where the records go, for task types that deliver records (sources).
    pub sink: Option<ComponentConfig>,
    /// The task type's own keys.
    #[serde(flatten)]
    pub options: serde_json::Map<String, serde_json::Value>,
}

impl TaskConfig {
    /// The task type's block: its `type` and own keys.
    pub fn component(&self) -> ComponentConfig {
        ComponentConfig::new(&self.task_type, self.options.clone())
    }
}

/// When a task runs: `{interval: 30s}`, `{cron: "..."}`, `continuous` or `startup`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Schedule {
    /// `continuous` (runs for as long as it goes on, restarted with backoff) or `startup` (once,
    /// before the other tasks).
    Named(ScheduleName),
    /// Every `interval`, the first run at start (after `initial-delay`, if given).
    Interval(IntervalSchedule),
    /// On a cron expression.
    Cron(CronSchedule),
}

/// The schedules that are a single word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleName {
    /// Runs for as long as it goes on; restarted with backoff when it ends or fails.
    Continuous,
    /// Runs once before the other tasks start; a failure stops the process.
    Startup,
}

/// `{interval: 30s, initial-delay: 5s}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IntervalSchedule {
    /// Time between the starts of two runs.
    pub interval: Duration,
    /// Wait this long before the first run.
    pub initial_delay: Option<Duration>,
}

/// `{cron: "*/5 * * * *"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CronSchedule {
    /// A cron expression: five fields, or six with seconds first; evaluated in UTC.
    pub cron: String,
}

impl CronSchedule {
    /// Parses the expression: five fields (minute first) or six (seconds first), as croner
    /// accepts them, including `L`, `W`, `#` and names such as `MON`.
    pub fn parse(&self) -> Result<croner::Cron, String> {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(&self.cron)
            .map_err(|error| format!("invalid cron expression {:?}: {error}", self.cron))
    }
}
