//! The one `reqwest::Client` (one connection pool) every task's requests go through, built from
//! the `session:` block.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Certificate, NoProxy, Proxy};

use super::Error;
use crate::config::SessionConfig;

/// `tapline/<version>`, so API owners can tell who is calling.
pub const USER_AGENT: &str = concat!("tapline/", env!("CARGO_PKG_VERSION"));

/// Builds the client: user agent, timeouts, gzip, default headers, proxy and extra CA roots.
///
/// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` are honoured by reqwest itself; an explicit
/// `session.proxy` takes precedence but still skips the `NO_PROXY` hosts.
pub(super) fn build(config: &SessionConfig) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(config.timeout.get())
        .connect_timeout(config.connect_timeout.get())
        .gzip(true)
        .default_headers(default_headers(config)?);
    if let Some(proxy) = &config.proxy {
        let proxy = Proxy::all(proxy.as_str()).map_err(Error::InvalidProxy)?;
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
    builder.build().map_err(Error::Client)
}

fn default_headers(config: &SessionConfig) -> Result<HeaderMap, Error> {
    config
        .headers
        .iter()
        .map(|(name, value)| {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(HeaderValue::from_str(value).ok());
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
