//! The Prometheus recorder behind the `metrics` facade: every module records through
//! `metrics::counter!` and friends, and `/metrics` renders what this recorder holds.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Installs the process-wide Prometheus recorder on first call and returns its handle; `None`
/// when another recorder was installed first (then `/metrics` is empty).
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Some(handle),
            Err(error) => {
                tracing::warn!(%error, "cannot install the Prometheus recorder; /metrics will be empty");
                None
            }
        })
        .clone()
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
