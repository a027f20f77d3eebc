//! The one `reqwest::Client` (one connection pool) every task's requests go through, built from
//! the `session:` block.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Certificate, NoProxy, Proxy};

use super::Error;
use crate::config::SessionConfig;

/// `tapline/<version>`, so API owners can tell who is calling.
pub const USER_AGENT: &str = concat!("tapline/", env!("CARGO_PKG_VERSION"));

/// Builds the session's client: the [`transport`] plus the configured default headers.
pub(super) fn build(config: &SessionConfig) -> Result<reqwest::Client, Error> {
    transport(config)?
        .default_headers(default_headers(config)?)
        .build()
        .map_err(Error::Client)
}

/// What every HTTP client of the process shares, whether it authenticates or not (the session,
/// the token endpoint, unauthenticated sources): user agent, timeouts, gzip, proxy and extra CA
/// roots. One place, so a corporate proxy or CA applies to every request tapline makes.
///
/// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` are honoured by reqwest itself; an explicit
/// `session.proxy` takes precedence but still skips the `NO_PROXY` hosts.
pub(crate) fn transport(config: &SessionConfig) -> Result<reqwest::ClientBuilder, Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(config.timeout.get())
        .connect_timeout(config.connect_timeout.get())
        .gzip(true);
    if let Some(proxy) = &config.proxy {
        // reqwest's error repeats the URL, which may hold a password: keep only its kind.
        let proxy =
            Proxy::all(proxy.as_str()).map_err(|error| Error::InvalidProxy(error.without_url()))?;
        builder = builder.proxy(proxy.no_proxy(NoProxy::from_env()));
    }
    if let Some(path) = &config.ca_bundle {
        let pem = std::fs::read(path).map_err(|source| Error::CaBundleUnreadable {
            path: path.clone(),
            source,
        })?;
        let certificates = Certificate::from_pem_bundle(&pem)
            .ok()
            .filter(|certificates| !certificates.is_empty())
            .ok_or_else(|| Error::CaBundleInvalid { path: path.clone() })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder)
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

    #[test]
    fn bad_ca_bundle_is_reported() {
        let dir = std::env::temp_dir().join(format!("tapline-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-ca.pem");
        std::fs::write(&path, "hello").unwrap();
        let config = SessionConfig {
            ca_bundle: Some(path),
            ..SessionConfig::default()
        };
        assert!(matches!(build(&config), Err(Error::CaBundleInvalid { .. })));
        let config = SessionConfig {
            ca_bundle: Some(dir.join("missing.pem")),
            ..SessionConfig::default()
        };
        assert!(matches!(
            build(&config),
            Err(Error::CaBundleUnreadable { .. })
        ));
    }

    #[test]
    fn proxy_error_does_not_echo_the_url() {
        let config = SessionConfig {
            proxy: Some("http://user:hunter2@[bad".into()),
            ..SessionConfig::default()
        };
        let error = build(&config).unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
