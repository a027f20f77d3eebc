//! Every built-in component, by the `type` name a config uses for it. One line each: adding a
//! provider, task type or sink is one new file plus one line here.

use schemars::JsonSchema;
use serde::Deserialize;

use super::Registry;
use crate::config::{self, AuthConfig, BuildError};
use crate::{sinks, tasks};

/// Registers the built-in components in `registry`.
pub(super) fn register(registry: &mut Registry) {
    registry
        .provider("client-secret", |c| checked(AuthConfig::ClientSecret(c)))
        .provider("certificate", |c| checked(AuthConfig::Certificate(c)))
        .provider("kognic", |c| checked(AuthConfig::Kognic(c)))
        .provider("token", |c| checked(AuthConfig::Token(c)))
        .provider("device-code", |c| checked(AuthConfig::DeviceCode(c)))
        .provider("browser", |c| checked(AuthConfig::Browser(c)))
        .provider("workload-identity", |c| {
            checked(AuthConfig::WorkloadIdentity(c))
        })
        .provider("none", |_: NoAuthConfig| checked(AuthConfig::None));
    registry
        .source("file", tasks::file::build)
        .source("http-poll", tasks::http_poll::build);
    registry
        .sink("http", sinks::http::build)
        .sink("jsonl", sinks::jsonl::build)
        .sink("stdout", sinks::stdout::build);
}

/// `auth: {type: none}`: requests carry no Authorization header.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoAuthConfig {}

fn checked(auth: AuthConfig) -> Result<AuthConfig, BuildError> {
    match config::auth_rules(&auth) {
        None => Ok(auth),
        Some(error) => Err(error),
    }
}
