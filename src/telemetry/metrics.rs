//! The Prometheus recorder behind the `metrics` facade: every module records through
//! `metrics::counter!` and friends with a name from the [`catalogue`], and `/metrics` renders what
//! this recorder holds.
//!
//! The recorder is built from the catalogue, so each family gets its `# HELP` line (promtool
//! rejects families without one) and each histogram its buckets: without buckets the exporter
//! renders summaries, whose quantiles cannot be added up across replicas.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{KeyName, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use super::catalogue::{self, Kind};

/// Installs the process-wide Prometheus recorder on first call and returns its handle; `None`
/// when another recorder was installed first (then `/metrics` is empty).
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "cannot install the Prometheus recorder; /metrics will be empty");
                    None
                }
            }
        })
        .clone()
}

/// A recorder that knows every metric in the [`catalogue`]: its HELP text and unit, and for
/// histograms the buckets. [`install`] makes one process-wide; tests can use one locally.
pub fn recorder() -> PrometheusRecorder {
    let builder = catalogue::ALL
        .iter()
        .fold(PrometheusBuilder::new(), |builder, metric| {
            match metric.kind {
                Kind::Histogram { buckets } => builder
                    .set_buckets_for_metric(Matcher::Full(metric.name.into()), buckets)
                    // Only an empty bucket list fails, and the catalogue's tests rule that out.
                    .expect("catalogue histograms have buckets"),
                Kind::Counter | Kind::Gauge => builder,
            }
        });
    let recorder = builder.build_recorder();
    for metric in catalogue::ALL {
        let name = KeyName::from_const_str(metric.name);
        let help = SharedString::const_str(metric.help);
        match metric.kind {
            Kind::Counter => recorder.describe_counter(name, metric.unit, help),
            Kind::Gauge => recorder.describe_gauge(name, metric.unit, help),
            Kind::Histogram { .. } => recorder.describe_histogram(name, metric.unit, help),
        }
    }
    recorder
}

/// Keeps the recorder's histograms drained; run it on the runtime for as long as the process
/// serves metrics.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut ticks = tokio::time::interval(Duration::from_secs(10));
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample of every catalogue entry, through a local recorder.
    fn render_one_of_each() -> String {
        let recorder = recorder();
        metrics::with_local_recorder(&recorder, || {
            for metric in catalogue::ALL {
                let labels: Vec<metrics::Label> = metric
                    .labels
                    .iter()
                    .map(|key| metrics::Label::new(*key, "x"))
                    .collect();
                match metric.kind {
                    Kind::Counter => metrics::counter!(metric.name, labels).increment(1),
                    Kind::Gauge => metrics::gauge!(metric.name, labels).set(1.0),
                    Kind::Histogram { .. } => metrics::histogram!(metric.name, labels).record(0.2),
                }
            }
        });
        recorder.handle().render()
    }

    #[test]
    fn every_catalogue_entry_renders_with_help_type_and_buckets() {
        let text = render_one_of_each();
        for metric in catalogue::ALL {
            let name = metric.name;
            let help = format!("# HELP {name} {}\n", metric.help);
            assert!(text.contains(&help), "{help:?} missing from:\n{text}");
            let kind = format!("# TYPE {name} {}\n", metric.kind.as_str());
            assert!(text.contains(&kind), "{kind:?} missing from:\n{text}");
            if let Kind::Histogram { buckets } = metric.kind {
                let labels: String = metric
                    .labels
                    .iter()
                    .map(|key| format!("{key}=\"x\","))
                    .collect();
                for bound in buckets.iter().map(f64::to_string).chain(["+Inf".into()]) {
                    let bucket = format!("{name}_bucket{{{labels}le=\"{bound}\"}}");
                    assert!(text.contains(&bucket), "{bucket} missing from:\n{text}");
                }
            }
        }
    }
}
