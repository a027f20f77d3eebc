//! What every HTTP client of the process shares: user agent, timeouts, gzip, proxy and extra CA
//! roots, built from the `session:` block.
//!
//! Why its own module, below both `auth` and `session`: the session's client, the token
//! endpoint's client and the unauthenticated client for third-party sources must all go through
//! the same corporate proxy and trust the same CA bundle, and the session depends on auth (it
//! sends tokens). Had the token endpoint borrowed the session's builder, the import would run back
//! up; here both reach down instead.
//!
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` are honoured by reqwest itself; an explicit
//! `session.proxy` takes precedence but still skips the `NO_PROXY` hosts.

use std::path::PathBuf;

use reqwest::{Certificate, NoProxy, Proxy};

use crate::config::SessionConfig;

/// `tapline/<version>`, so API owners can tell who is calling.
pub const USER_AGENT: &str = concat!("tapline/", env!("CARGO_PKG_VERSION"));

/// The transport could not be set up from the `session:` block.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `session.proxy` is not a usable proxy URL. The value is not repeated: it may hold a
    /// password.
    #[error("session.proxy is not a valid proxy URL")]
    InvalidProxy(#[source] reqwest::Error),
    /// `session.ca-bundle` could not be read.
    #[error("session.ca-bundle: cannot read {}", path.display())]
    CaBundleUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `session.ca-bundle` holds no usable PEM certificate.
    #[error("session.ca-bundle: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    CaBundleInvalid {
        /// The file.
        path: PathBuf,
    },
    /// The HTTP client could not be built (the TLS backend refused the settings).
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// A client builder with the shared settings, for callers that add their own (default headers,
/// redirect policy) before [`build`].
pub fn builder(config: &SessionConfig) -> Result<reqwest::ClientBuilder, Error> {
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
        for certificate in ca_bundle(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder)
}

/// Builds `builder`, mapping the failure to [`Error::Build`].
pub fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, Error> {
    builder
        .build()
        .map_err(|error| Error::Build(error.without_url()))
}

/// A client with the shared settings and nothing else.
pub fn client(config: &SessionConfig) -> Result<reqwest::Client, Error> {
    build(builder(config)?)
}

/// The certificates of a PEM bundle; one without any is refused rather than silently trusting
/// only the system roots.
fn ca_bundle(path: &std::path::Path) -> Result<Vec<Certificate>, Error> {
    let pem = std::fs::read(path).map_err(|source| Error::CaBundleUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|certificates| !certificates.is_empty())
        .ok_or_else(|| Error::CaBundleInvalid {
            path: path.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_bundle_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-ca.pem");
        std::fs::write(&path, "hello").unwrap();
        let config = SessionConfig {
            ca_bundle: Some(path),
            ..SessionConfig::default()
        };
        assert!(matches!(
            client(&config),
            Err(Error::CaBundleInvalid { .. })
        ));
        let config = SessionConfig {
            ca_bundle: Some(dir.path().join("missing.pem")),
            ..SessionConfig::default()
        };
        assert!(matches!(
            client(&config),
            Err(Error::CaBundleUnreadable { .. })
        ));
    }

    #[test]
    fn proxy_error_does_not_echo_the_url() {
        let config = SessionConfig {
            proxy: Some("http://user:hunter2@[bad".into()),
            ..SessionConfig::default()
        };
        let error = client(&config).unwrap_err();
        assert!(matches!(error, Error::InvalidProxy(_)), "{error:?}");
        assert!(
            !format!("{error} {error:?}").contains("hunter2"),
            "{error:?}"
        );
    }
}
