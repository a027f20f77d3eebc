//! The one `reqwest::Client` (one connection pool) every task's requests go through, built from
//! the `session:` block.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::Error;
use crate::config::SessionConfig;
use crate::transport;

/// Builds the session's client: the [`transport`] settings plus the configured default
/// headers.
pub(super) fn build(config: &SessionConfig) -> Result<reqwest::Client, Error> {
    let builder = transport::builder(config)?.default_headers(default_headers(config)?);
    Ok(transport::build(builder)?)
}

fn default_headers(config: &SessionConfig) -> Result<HeaderMap, Error> {
    config
        .headers
        .iter()
        .map(|(name, value)| {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(HeaderValue::from_str(value).ok())
                // Configured headers often carry API keys: keep them out of `Debug` output.
                .map(|(name, mut value)| {
                    value.set_sensitive(true);
                    (name, value)
                });
            parsed.ok_or_else(|| Error::InvalidHeader(name.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_header_names_the_key_only() {
        let mut config = SessionConfig::default();
        config
            .headers
            .insert("x-team".into(), "bad\nvalue-secret".into());
        let error = build(&config).unwrap_err().to_string();
        assert_eq!(
            error,
            "session.headers.x-team: not a valid HTTP header name or value"
        );
    }
}
