//! The `tasks:` list: which extractor tasks run, and when.

use std::path::PathBuf;

use chrono::{DateTime, Months, Utc};
use schemars::JsonSchema;
use serde::Deserialize;

use super::buffer::BufferConfig;
use super::component::ComponentConfig;
use super::duration::HumanDuration;

/// One extractor task. Keys other than `name`, `type`, `schedule`, `timeout`,
/// `extraction-pipeline` and the record keys (`sink`, `transform`, `on-error`, `dead-letter`,
/// `buffer`) belong to the task type, which parses them itself.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct TaskConfig {
    /// A unique name; it labels logs, metrics and the task's state namespace. Letters, digits,
    /// `.`, `_` and `-`, starting with a letter or digit; at most 64 characters.
    pub name: String,
    /// The task type, built-in or registered by a library user.
    #[serde(rename = "type")]
    pub task_type: String,
    /// When the task runs.
    pub schedule: ScheduleConfig,
    /// A run that takes longer is cancelled and counts as failed; nothing it had not delivered
    /// moves. Default: no limit.
    pub timeout: Option<HumanDuration>,
    /// Where the records go, for task types that deliver records (sources).
    pub sink: Option<ComponentConfig>,
    /// The CDF extraction pipeline this task's runs are reported to, instead of
    /// `cdf.extraction-pipeline.external-id` (needs the `cdf:` block).
    pub extraction_pipeline: Option<String>,
    /// A jq program run on every record before the sink: it may drop a record (`select(...)`),
    /// reshape it, or turn it into several. `$task`, `$now` (ms since epoch, fixed per run),
    /// `$cursor` (the cursor the run started from) and `$env` are defined.
    pub transform: Option<String>,
    /// What a record the transform (or the sink) fails on costs: `fail` the run (default),
    /// `skip` it, or write it to the `dead-letter` file.
    #[serde(default)]
    pub on_error: OnErrorMode,
    /// The JSON-lines file failed records are appended to, with `on-error: dead-letter`.
    pub dead_letter: Option<PathBuf>,
    /// A durable disk buffer between the source and the sink (default: none).
    pub buffer: Option<BufferConfig>,
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

/// A task's `on-error`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnErrorMode {
    /// The run fails; nothing moves, so the next run reads the same records again.
    #[default]
    Fail,
    /// The record is dropped, counted and logged (once per run, with the count).
    Skip,
    /// The record is appended to the `dead-letter` file with its error, then dropped.
    DeadLetter,
}

/// The longest task name: names label every log line and metric series and key the state file,
/// so they stay short (and fit a Kubernetes label value, 63 characters, with room to spare).
pub const MAX_TASK_NAME_LEN: usize = 64;

/// A task name is ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit, at
/// most [`MAX_TASK_NAME_LEN`] long. It is written into log lines, metric labels and the state
/// file as it is, so a newline or an escape sequence in it could forge or garble a log line.
pub fn check_task_name(name: &str) -> Result<(), String> {
    const RULE: &str = "letters, digits, '.', '_' and '-', starting with a letter or digit";
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return Err("must not be empty".into());
    };
    if name.len() > MAX_TASK_NAME_LEN {
        return Err(format!(
            "is {} characters long; use at most {MAX_TASK_NAME_LEN}",
            name.chars().count()
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !first.is_ascii_alphanumeric() || !chars.all(allowed) {
        return Err(format!("{name:?} is not a valid task name; use {RULE}"));
    }
    Ok(())
}

/// When a task runs: `{interval: 30s}`, `{cron: "..."}`, `continuous` or `startup`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ScheduleConfig {
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
    pub interval: HumanDuration,
    /// Wait this long before the first run.
    pub initial_delay: Option<HumanDuration>,
}

/// `{cron: "*/5 * * * *"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CronSchedule {
    /// A cron expression: five fields, or six with seconds first; evaluated in UTC.
    pub cron: String,
}

/// How soon a cron expression must fire: `0 0 29 2 *` (29 February) fires every four years and
/// passes; `0 0 30 2 *` parses but never fires, and would leave its task idle without a word.
pub const CRON_HORIZON_YEARS: u32 = 5;

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

    /// Parses the expression and checks that it fires within [`CRON_HORIZON_YEARS`] of `now`.
    pub fn check(&self, now: DateTime<Utc>) -> Result<croner::Cron, String> {
        let cron = self.parse()?;
        let horizon = now + Months::new(12 * CRON_HORIZON_YEARS);
        match cron.find_next_occurrence(&now, false) {
            Ok(next) if next <= horizon => Ok(cron),
            _ => Err(format!(
                "cron expression {:?} never fires: it has no time in the next {CRON_HORIZON_YEARS} years",
                self.cron
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cron: &str) -> Result<croner::Cron, String> {
        let now = DateTime::parse_from_rfc3339("2025-03-01T00:00:00Z").unwrap();
        CronSchedule { cron: cron.into() }.check(now.to_utc())
    }

    #[test]
    fn task_names_are_short_and_plain() {
        for good in [
            "readings",
            "a",
            "Sensor-7.raw_v2",
            &"x".repeat(MAX_TASK_NAME_LEN),
        ] {
            assert_eq!(check_task_name(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "-lead",
            ".hidden",
            "two words",
            "a\nb",
            "ok\u{1b}[31m",
            "naïve",
            "a/b",
        ] {
            assert!(check_task_name(bad).is_err(), "{bad:?}");
        }
        let long = check_task_name(&"x".repeat(MAX_TASK_NAME_LEN + 1)).unwrap_err();
        assert!(long.contains("at most 64"), "{long}");
        let control = check_task_name("a\nforged line").unwrap_err();
        assert!(!control.contains('\n'), "{control:?}");
    }

    #[test]
    fn a_cron_expression_that_never_fires_is_refused() {
        for never in ["0 0 30 2 *", "0 0 31 4 *", "0 0 0 31 11 *"] {
            let error = check(never).unwrap_err();
            assert!(error.contains("never fires"), "{never}: {error}");
        }
    }

    #[test]
    fn rare_cron_expressions_still_pass() {
        for rare in ["0 0 29 2 *", "0 0 1 1 *", "*/5 * * * *", "0 0 L 2 *"] {
            assert!(check(rare).is_ok(), "{rare}");
        }
    }
}
