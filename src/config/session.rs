//! The `session:` block: the one HTTP client every task shares.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::duration::HumanDuration;

/// Settings of the shared, authenticated HTTP session.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SessionConfig {
    /// Base URL that relative request paths are resolved against. A user name and password in
    /// it (`https://user:pass@host/`) are sent as HTTP Basic when `auth` sends no token.
    pub base_url: Option<String>,
    /// Whole-request timeout, per attempt.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Timeout for establishing a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Requests in flight across all tasks.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// When and how failed requests are retried.
    #[serde(default)]
    pub retries: RetryConfig,
    /// Proxy for all requests; `HTTPS_PROXY` and `NO_PROXY` are honoured too.
    pub proxy: Option<String>,
    /// Extra PEM certificates to trust, e.g. a corporate CA.
    pub ca_bundle: Option<PathBuf>,
    /// Headers added to every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Hand-written: a proxy URL may hold a password and a header an API key, so `Debug` shows
/// whether they are set and the header names, never their values; the base URL is redacted.
impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field(
                "base_url",
                &self.base_url.as_deref().map(crate::redact::url),
            )
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("retries", &self.retries)
            .field("proxy", &self.proxy.as_ref().map(|_| "[REDACTED]"))
            .field("ca_bundle", &self.ca_bundle)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            max_in_flight: default_max_in_flight(),
            retries: RetryConfig::default(),
            proxy: None,
            ca_bundle: None,
            headers: BTreeMap::new(),
        }
    }
}

/// Retry policy of the session.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Upper bound of the first backoff (full jitter).
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: HumanDuration,
    /// Upper bound of the computed (jittered, exponential) backoff.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// Upper bound of a wait asked for by the server's `Retry-After` header; longer requests are
    /// shortened to this. Unset: `max-backoff`. Rate-limiting APIs often ask for a minute or
    /// more, longer than a sensible jittered backoff, so this is a separate knob.
    #[serde(default)]
    pub max_retry_after: Option<HumanDuration>,
    /// Response statuses that are retried.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<u16>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: default_max_retries(),
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            max_retry_after: None,
            retry_on: default_retry_on(),
        }
    }
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_max_in_flight() -> u32 {
    64
}

fn default_max_retries() -> u32 {
    10
}

fn default_initial_backoff() -> HumanDuration {
    HumanDuration::from_millis(250)
}

fn default_max_backoff() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_retry_on() -> Vec<u16> {
    vec![408, 429, 500, 502, 503, 504]
}
