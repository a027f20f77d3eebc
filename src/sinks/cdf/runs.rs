//! [`ExtractionPipelineRuns`]: reports task runs to CDF extraction pipelines, as Cognite's
//! extractor frameworks do. After each run: `success`, or `failure` with the task's name and
//! error (at most 1,000 characters, CDF's limit); every `heartbeat` while the process runs:
//! `seen` to every pipeline in use. A task's runs go to its own `extraction-pipeline:` or to
//! `cdf.extraction-pipeline.external-id`.
//!
//! A report that cannot be sent is logged and kept, and goes with the next report: a CDF outage
//! never fails a task, and the pipeline's history stays complete once CDF is back (up to
//! [`MAX_PENDING`] reports, the oldest dropped first).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use super::api::CdfApi;
use crate::config::{CdfConfig, Config};
use crate::runner::{RunObserver, RunOutcome, RunReport, Shutdown};
use crate::session::Session;

/// CDF's limit on a run's message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Reports kept while CDF cannot be reached.
pub const MAX_PENDING: usize = 1000;

/// Run reports to extraction pipelines.
#[derive(Debug)]
pub struct ExtractionPipelineRuns {
    api: CdfApi,
    /// Task name → pipeline external id.
    pipelines: HashMap<String, String>,
    heartbeat: Duration,
    /// Reports not yet accepted by CDF, oldest first.
    pending: Mutex<Vec<Value>>,
}

impl ExtractionPipelineRuns {
    /// The reports `config` asks for, if any task has a pipeline.
    pub fn of(config: &Config) -> Option<Self> {
        let cdf: &CdfConfig = config.cdf.as_ref()?;
        let default = cdf.extraction_pipeline.as_ref();
        let pipelines: HashMap<String, String> = config
            .tasks
            .iter()
            .filter_map(|task| {
                let pipeline = task
                    .extraction_pipeline
                    .clone()
                    .or_else(|| default.map(|p| p.external_id.clone()))?;
                Some((task.name.clone(), pipeline))
            })
            .collect();
        if pipelines.is_empty() {
            return None;
        }
        let heartbeat = default.map_or(Duration::from_secs(600), |p| p.heartbeat.get());
        Some(Self {
            api: CdfApi::new(cdf),
            pipelines,
            heartbeat,
            pending: Mutex::new(Vec::new()),
        })
    }

    /// Sends `reports` after the ones still pending; keeps them all for later if CDF refuses.
    async fn send(&self, session: &Session, reports: Vec<Value>) {
        let items = {
            let mut pending = self.pending.lock().expect("not poisoned");
            pending.extend(reports);
            std::mem::take(&mut *pending)
        };
        if items.is_empty() {
            return;
        }
        let body = json!({"items": &items});
        let sent = self
            .api
            .send(session, Method::POST, "extpipes/runs", Some(&body))
            .await;
        if let Err(error) = sent {
            tracing::warn!(error = %crate::runner::error_chain(&error), reports = items.len(), "reporting to the extraction pipeline failed; retrying with the next report");
            let mut pending = self.pending.lock().expect("not poisoned");
            let newer = std::mem::take(&mut *pending);
            pending.extend(items);
            pending.extend(newer);
            let excess = pending.len().saturating_sub(MAX_PENDING);
            pending.drain(..excess);
        }
    }
}

#[async_trait::async_trait]
impl RunObserver for ExtractionPipelineRuns {
    async fn run_ended(&self, session: &Session, report: &RunReport<'_>) {
        let Some(pipeline) = self.pipelines.get(report.task) else {
            return;
        };
        let (status, message) = match report.outcome {
            RunOutcome::Success => ("success", format!("task {}", report.task)),
            RunOutcome::Failure | RunOutcome::Panic => (
                "failure",
                format!("task {}: {}", report.task, report.error.unwrap_or("failed")),
            ),
            RunOutcome::Cancelled | RunOutcome::Skipped => return,
        };
        self.send(session, vec![item(pipeline, status, &message)])
            .await;
    }

    async fn watch(&self, session: Session, shutdown: Shutdown) {
        let in_use: BTreeSet<&String> = self.pipelines.values().collect();
        let start = tokio::time::Instant::now() + self.heartbeat;
        let mut ticks = tokio::time::interval_at(start, self.heartbeat);
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = ticks.tick() => {}
            }
            let seen = in_use.iter().map(|p| item(p, "seen", "")).collect();
            self.send(&session, seen).await;
        }
    }
}

/// One run report; the message cut to CDF's limit, left out when empty.
pub(crate) fn item(pipeline: &str, status: &str, message: &str) -> Value {
    let created = chrono::Utc::now().timestamp_millis();
    let mut item = json!({"externalId": pipeline, "status": status, "createdTime": created});
    if !message.is_empty() {
        item["message"] = truncate(message, MAX_MESSAGE_CHARS).into();
    }
    item
}

/// The first `max` characters of `text`, ending in `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some(_) => {
            let mut cut: String = text.chars().take(max - 1).collect();
            cut.push('…');
            cut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fit_cdf_in_characters_not_bytes() {
        let long = "é".repeat(1500);
        let cut = truncate(&long, MAX_MESSAGE_CHARS);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short", MAX_MESSAGE_CHARS), "short");
        assert!(item("p", "seen", "").get("message").is_none());
    }
}
