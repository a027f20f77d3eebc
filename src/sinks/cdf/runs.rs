//! [`ExtractionPipelineRuns`]: reports task runs to CDF extraction pipelines, as Cognite's
//! extractor frameworks do. After each run: `success`, or `failure` with the task's name and
//! error (at most 1,000 characters, CDF's limit); every `heartbeat` while the process runs:
//! `seen` to every pipeline in use. A task's runs go to its own `extraction-pipeline:` or to
//! `cdf.extraction-pipeline.external-id`.
//!
//! Reports are queued by the run and sent by [`RunObserver::watch`], in requests of at most
//! 1,000 (CDF's limit), so a CDF outage never holds back or fails a task. A report that cannot
//! be sent is logged and kept for the next round, so the pipeline's history stays complete once
//! CDF is back (up to [`MAX_PENDING`] reports, the oldest dropped first). Reports to a pipeline
//! CDF does not know (yet) are kept the same way, while the others are sent.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use super::api::{CdfApi, Items};
use super::chunk::{self, ITEMS};
use super::error::CdfError;
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
    pending: Mutex<VecDeque<Value>>,
    /// Woken when a run queued a report.
    queued: Notify,
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
            pending: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, VecDeque<Value>> {
        self.pending.lock().expect("not poisoned")
    }

    /// Queues `reports` after the pending ones, dropping the oldest beyond [`MAX_PENDING`].
    fn queue(&self, reports: impl IntoIterator<Item = Value>) {
        let mut pending = self.pending();
        pending.extend(reports);
        let excess = pending.len().saturating_sub(MAX_PENDING);
        pending.drain(..excess);
    }

    /// Sends every pending report, in requests CDF takes. What cannot be sent now stays
    /// pending, ahead of reports queued meanwhile: all of it when CDF cannot be reached, only
    /// the reports to unknown pipelines when CDF names some `missing` (the rest are sent).
    async fn flush(&self, session: &Session) {
        let items: Vec<Value> = self.pending().drain(..).collect();
        let mut requests: VecDeque<Vec<Value>> =
            chunk::split(items, ITEMS, usize::MAX, |_| 1).into();
        let mut unsent = Vec::new();
        while let Some(request) = requests.pop_front() {
            let body = Items { items: &request };
            let sent = self
                .api
                .send(session, Method::POST, "extpipes/runs", Some(&body))
                .await;
            let error = match sent {
                Ok(_) => continue,
                Err(error) => error,
            };
            if let Some((unknown, known)) = split_unknown(&error, &request) {
                tracing::warn!(pipelines = ?unknown.iter().filter_map(|i| i["externalId"].as_str()).collect::<BTreeSet<_>>(), "CDF knows no extraction pipeline of this external id; its run reports are kept for later");
                unsent.extend(unknown);
                if !known.is_empty() {
                    requests.push_front(known);
                }
                continue;
            }
            tracing::warn!(error = %crate::runner::error_chain(&error), reports = request.len(), "reporting to the extraction pipeline failed; trying again later");
            unsent.extend(request.into_iter().chain(requests.into_iter().flatten()));
            break;
        }
        let newer = std::mem::replace(&mut *self.pending(), unsent.into());
        self.queue(newer);
    }
}

/// The items of `request` to the pipelines CDF named `missing` in `error`, and the others;
/// `None` when the error names none of them.
fn split_unknown(error: &CdfError, request: &[Value]) -> Option<(Vec<Value>, Vec<Value>)> {
    let CdfError::Api(refused) = error else {
        return None;
    };
    let unknown: HashSet<String> = refused.missing_external_ids().into_iter().collect();
    let (missing, known): (Vec<Value>, Vec<Value>) = request.iter().cloned().partition(|item| {
        item["externalId"]
            .as_str()
            .is_some_and(|id| unknown.contains(id))
    });
    (!missing.is_empty()).then_some((missing, known))
}

#[async_trait::async_trait]
impl RunObserver for ExtractionPipelineRuns {
    fn run_ended(&self, report: &RunReport<'_>) {
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
        self.queue([item(pipeline, status, &message)]);
        self.queued.notify_one();
    }

    async fn watch(&self, sessions: watch::Receiver<Session>, shutdown: Shutdown) {
        let in_use: BTreeSet<&String> = self.pipelines.values().collect();
        let start = tokio::time::Instant::now() + self.heartbeat;
        let mut ticks = tokio::time::interval_at(start, self.heartbeat);
        loop {
            let last = tokio::select! {
                _ = shutdown.wait() => true,
                _ = self.queued.notified() => false,
                _ = ticks.tick() => {
                    self.queue(in_use.iter().map(|p| item(p, "seen", "")));
                    false
                }
            };
            let session = sessions.borrow().clone();
            self.flush(&session).await;
            if last {
                return;
            }
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
