//! Every metric tapline exports, in one place: name, type, unit, labels and HELP text.
//!
//! Why one catalogue: a name typed at each call site drifts (a typo is a new series), and
//! Prometheus wants a `# HELP` line and one type per family, which only a single list can give.
//! Call sites record with a name from here, `metrics::counter!(catalogue::TASK_RUNS.name, …)`;
//! [`super::metrics::recorder`] describes every entry and gives each histogram its buckets.
//! A name recorded without an entry here would show up without HELP text, so don't.
//!
//! Names and labels are a public interface (dashboards, alerts, docs/deploy.md): rename nothing.

use metrics::Unit;

/// The Prometheus type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Only goes up (`_total`).
    Counter,
    /// A value that is set.
    Gauge,
    /// Observations counted into buckets with these upper bounds (plus `+Inf`). Buckets, not a
    /// summary, so that rates and quantiles can be aggregated across replicas.
    Histogram {
        /// Upper bounds, increasing.
        buckets: &'static [f64],
    },
}

impl Kind {
    /// The word on the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram { .. } => "histogram",
        }
    }
}

/// One metric family.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The exported name.
    pub name: &'static str,
    /// Its type (and buckets).
    pub kind: Kind,
    /// Its unit, when it has one.
    pub unit: Option<Unit>,
    /// The label keys every sample carries.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

/// HTTP attempts take milliseconds to a request timeout.
const HTTP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Task runs take from milliseconds (a small file) to many minutes (a long backfill).
const RUN_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Every attempt the session made (src/session/events.rs).
pub const HTTP_REQUESTS: Metric = Metric {
    name: "tapline_http_requests_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task", "method", "status"],
    help: "HTTP attempts sent through the session; status is the response code, or timeout, connect or transport when there was no response.",
};

/// How long each attempt took (src/session/events.rs).
pub const HTTP_REQUEST_DURATION: Metric = Metric {
    name: "tapline_http_request_duration_seconds",
    kind: Kind::Histogram {
        buckets: HTTP_BUCKETS,
    },
    unit: Some(Unit::Seconds),
    labels: &["task"],
    help: "Time from sending an HTTP attempt to its response headers or its failure.",
};

/// Retries and token refresh resends (src/session/events.rs).
pub const HTTP_RETRIES: Metric = Metric {
    name: "tapline_http_retries_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task", "reason"],
    help: "HTTP requests sent again; reason is the status code, timeout, connect, transport, or unauthorized (a 401 resent with a new token).",
};

/// Token endpoint calls (src/auth/token_endpoint.rs).
pub const TOKEN_REQUESTS: Metric = Metric {
    name: "tapline_token_requests_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["result"],
    help: "Requests to the identity provider's token endpoint, by result (success or failure).",
};

/// Set at each token refresh (src/auth/cache.rs).
pub const TOKEN_EXPIRY: Metric = Metric {
    name: "tapline_token_expiry_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &[],
    help: "Lifetime left on the access token when it was last obtained, in seconds.",
};

/// Lifetimes taken shorter or longer than the identity provider said (src/auth/token.rs).
pub const TOKEN_LIFETIME_CLAMPED: Metric = Metric {
    name: "tapline_token_lifetime_clamped_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["reason"],
    help: "Token lifetimes clamped: too_short (raised to the minimum, so the identity provider is not asked on every request) or too_long (capped at a year).",
};

/// Every run and skipped run (src/runner/supervisor.rs).
pub const TASK_RUNS: Metric = Metric {
    name: "tapline_task_runs_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task", "result"],
    help: "Task runs by result: success, failure, panic, cancelled, or skipped (the previous run was still going).",
};

/// How long each run took (src/runner/supervisor.rs).
pub const TASK_RUN_DURATION: Metric = Metric {
    name: "tapline_task_run_duration_seconds",
    kind: Kind::Histogram {
        buckets: RUN_BUCKETS,
    },
    unit: Some(Unit::Seconds),
    labels: &["task"],
    help: "How long task runs took, whatever their result.",
};

/// For "no success for too long" alerts (src/runner/supervisor.rs).
pub const TASK_LAST_SUCCESS: Metric = Metric {
    name: "tapline_task_last_success_timestamp_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["task"],
    help: "Unix time at which the task's last successful run ended.",
};

/// Reported by tasks (src/runner/task.rs).
pub const TASK_RECORDS_EXTRACTED: Metric = Metric {
    name: "tapline_task_records_extracted_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task"],
    help: "Records the task read from its source.",
};

/// Reported by tasks (src/runner/task.rs).
pub const TASK_RECORDS_DELIVERED: Metric = Metric {
    name: "tapline_task_records_delivered_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task"],
    help: "Records the task delivered to its sink.",
};

/// Records given to a task's `transform:` (src/runner/output.rs).
pub const TASK_RECORDS_TRANSFORMED: Metric = Metric {
    name: "tapline_task_records_transformed_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task"],
    help: "Records the task's transform was run on.",
};

/// Records that never reached the sink (src/runner/output.rs, src/runner/on_error.rs).
pub const TASK_RECORDS_DROPPED: Metric = Metric {
    name: "tapline_task_records_dropped_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task", "reason"],
    help: "Records dropped on the way to the sink: reason filtered (the transform gave no output) or error (skipped or dead-lettered under on-error).",
};

/// Lines the `file` task passed over (src/tasks/file/events.rs).
pub const FILE_LINES_SKIPPED: Metric = Metric {
    name: "tapline_file_lines_skipped_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task", "reason"],
    help: "Lines the file task skipped, by reason: too-long (over source.max-line-bytes).",
};

/// Runs whose pages never had the configured cursor (src/tasks/http_poll/events.rs).
pub const HTTP_POLL_CURSOR_MISSING: Metric = Metric {
    name: "tapline_http_poll_cursor_missing_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task"],
    help: "http-poll runs that delivered records but found no cursor at source.cursor on any page; the next run reads them again.",
};

/// Records in a task's disk buffer, not yet delivered (src/runner/drain.rs).
pub const BUFFER_RECORDS: Metric = Metric {
    name: "tapline_buffer_records",
    kind: Kind::Gauge,
    unit: None,
    labels: &["task"],
    help: "Records in the task's disk buffer waiting for the sink.",
};

/// Their bytes (src/runner/drain.rs).
pub const BUFFER_BYTES: Metric = Metric {
    name: "tapline_buffer_bytes",
    kind: Kind::Gauge,
    unit: Some(Unit::Bytes),
    labels: &["task"],
    help: "Bytes of the records in the task's disk buffer (counted against buffer.max-size).",
};

/// The alert: a sink that has not taken records for too long (src/runner/drain.rs).
pub const BUFFER_OLDEST_AGE: Metric = Metric {
    name: "tapline_buffer_oldest_record_age_seconds",
    kind: Kind::Gauge,
    unit: Some(Unit::Seconds),
    labels: &["task"],
    help: "How long ago the oldest record in the task's disk buffer was appended; 0 when empty.",
};

/// Records the drain delivered (src/runner/drain.rs).
pub const BUFFER_DELIVERED: Metric = Metric {
    name: "tapline_buffer_delivered_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task"],
    help: "Records the sink accepted from the task's disk buffer.",
};

/// Damaged regions set aside (src/runner/drain.rs).
pub const BUFFER_CORRUPT: Metric = Metric {
    name: "tapline_buffer_corrupt_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["task"],
    help: "Damaged regions of the task's disk buffer moved to its corrupt/ directory; their records are lost.",
};

/// Task leases this replica holds (src/coordination/events.rs).
pub const COORDINATION_LEASES_HELD: Metric = Metric {
    name: "tapline_coordination_leases_held",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "Task leases this replica holds: the tasks it may run.",
};

/// Leases taken or given up (src/coordination/events.rs).
pub const COORDINATION_LEASE_CHANGES: Metric = Metric {
    name: "tapline_coordination_lease_changes_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["reason"],
    help: "Task leases taken or given up by this replica; reason is acquired, released (rebalancing or shutdown), lost (another replica holds it), expired (not renewed in time, e.g. the database was unreachable) or fenced (a state write was refused).",
};

/// Live replicas (src/coordination/events.rs).
pub const COORDINATION_MEMBERS: Metric = Metric {
    name: "tapline_coordination_members",
    kind: Kind::Gauge,
    unit: None,
    labels: &[],
    help: "Live replicas sharing the tasks, this one included, as of its last heartbeat.",
};

/// Config reloads (src/reload/).
pub const CONFIG_RELOADS: Metric = Metric {
    name: "tapline_config_reloads_total",
    kind: Kind::Counter,
    unit: None,
    labels: &["result"],
    help: "Config reloads (SIGHUP, a changed file with --watch); result is applied, or rejected (the new config has problems or gets no token: nothing changed).",
};

/// The whole catalogue.
pub const ALL: &[Metric] = &[
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    HTTP_RETRIES,
    TOKEN_REQUESTS,
    TOKEN_EXPIRY,
    TOKEN_LIFETIME_CLAMPED,
    TASK_RUNS,
    TASK_RUN_DURATION,
    TASK_LAST_SUCCESS,
    TASK_RECORDS_EXTRACTED,
    TASK_RECORDS_DELIVERED,
    TASK_RECORDS_TRANSFORMED,
    TASK_RECORDS_DROPPED,
    FILE_LINES_SKIPPED,
    HTTP_POLL_CURSOR_MISSING,
    BUFFER_RECORDS,
    BUFFER_BYTES,
    BUFFER_OLDEST_AGE,
    BUFFER_DELIVERED,
    BUFFER_CORRUPT,
    COORDINATION_LEASES_HELD,
    COORDINATION_LEASE_CHANGES,
    COORDINATION_MEMBERS,
    CONFIG_RELOADS,
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn entries_follow_the_prometheus_naming_rules() {
        let mut names = HashSet::new();
        for metric in ALL {
            let name = metric.name;
            assert!(names.insert(name), "{name} is in the catalogue twice");
            assert!(
                name.starts_with("tapline_")
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}: tapline_, then lower-case words"
            );
            assert_eq!(
                name.ends_with("_total"),
                metric.kind == Kind::Counter,
                "{name}: counters, and only counters, end in _total"
            );
            if metric.unit == Some(Unit::Seconds) {
                assert!(name.ends_with("_seconds"), "{name}: unit in the name");
            }
            assert!(
                !metric.help.is_empty() && !metric.help.contains(['\n', '\\']),
                "{name}: HELP is one plain line"
            );
            if let Kind::Histogram { buckets } = metric.kind {
                assert!(
                    !buckets.is_empty() && buckets.windows(2).all(|pair| pair[0] < pair[1]),
                    "{name}: buckets increase"
                );
            }
        }
    }

    /// Every Rust file under `dir`, recursively.
    fn rust_files(dir: &Path, into: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, into);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                into.push(path);
            }
        }
    }

    #[test]
    fn no_metric_name_is_spelled_out_outside_the_catalogue() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let here = src.join("telemetry/catalogue.rs");
        let offenders: Vec<String> = files
            .iter()
            .filter(|path| **path != here)
            .flat_map(|path| {
                let text = std::fs::read_to_string(path).unwrap();
                let lines: Vec<String> = text
                    .lines()
                    .enumerate()
                    .filter(|(_, line)| line.contains("\"tapline_"))
                    .map(|(number, line)| {
                        format!("{}:{}: {}", path.display(), number + 1, line.trim())
                    })
                    .collect();
                lines
            })
            .collect();
        assert!(
            offenders.is_empty(),
            "metric names belong in src/telemetry/catalogue.rs; found:\n{}",
            offenders.join("\n")
        );
    }
}
