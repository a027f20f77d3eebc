//! Every built-in component, by the `type` name a config uses for it. One line each: adding a
//! provider, task type or sink is one new file plus one line here.

use super::Registry;
use crate::auth::client_credentials::{certificate, federated, kognic, secret};
use crate::auth::login::{browser, device_code};
use crate::auth::{no_auth, static_token};
use crate::{sinks, tasks};

/// Registers the built-in components in `registry`. Providers are listed in this order by
/// `validate` when a `type` is unknown.
pub(super) fn register(registry: &mut Registry) {
    registry
        .provider("client-secret", secret::build)
        .provider("certificate", certificate::build)
        .provider("kognic", kognic::build)
        .provider("token", static_token::build)
        .provider("device-code", device_code::build)
        .provider("browser", browser::build)
        .provider("workload-identity", federated::build)
        .provider("none", no_auth::build);
    registry
        .source("file", tasks::file::build)
        .source("http-poll", tasks::http_poll::build)
        .source("sql", tasks::sql::builder());
    registry
        .sink("http", sinks::http::build)
        .sink("jsonl", sinks::jsonl::build)
        .sink("stdout", sinks::stdout::build)
        .sink_with_sections("cdf-raw", sinks::cdf::raw::build)
        .sink_with_sections("cdf-datapoints", sinks::cdf::datapoints::build)
        .sink_with_sections("cdf-events", sinks::cdf::events::build);
}
