//! The one authenticated HTTP session that every task shares.
//!
//! PLACEHOLDER: sends each request once with the current bearer token. Retries with backoff,
//! `Retry-After`, 401 recovery, `max-in-flight`, proxy and CA settings land with the session issue;
//! the public API below (`Session::get/post/request`, `RequestBuilder::json/body/header/send`) is
//! the contract tasks are written against.

mod error;
mod request;

use std::sync::Arc;

use reqwest::Method;
use url::Url;

pub use error::Error;
pub use request::RequestBuilder;

use crate::auth::Credentials;
use crate::config::SessionConfig;

/// A cheap-to-clone handle on the shared client, its base URL and the process's credentials.
#[derive(Clone, Debug)]
pub struct Session {
    shared: Arc<Shared>,
    task: Option<Arc<str>>,
}

#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    base_url: Option<Url>,
    credentials: Credentials,
}

impl Session {
    /// Builds the session from the `session:` config block.
    pub fn new(config: &SessionConfig, credentials: Credentials) -> Result<Self, Error> {
        let base_url = config
            .base_url
            .as_deref()
            .map(|base| Url::parse(base).map_err(|_| Error::InvalidUrl(base.to_string())))
            .transpose()?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("tapline/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.get())
            .connect_timeout(config.connect_timeout.get())
            .build()
            .map_err(Error::Client)?;
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                base_url,
                credentials,
            }),
            task: None,
        })
    }

    /// The same session, labelling its requests' metrics and logs with `task`.
    pub fn for_task(&self, task: &str) -> Self {
        Self {
            shared: self.shared.clone(),
            task: Some(task.into()),
        }
    }

    /// The task this handle labels its requests with, if any.
    pub fn task(&self) -> Option<&str> {
        self.task.as_deref()
    }

    /// The credentials whose tokens this session sends.
    pub fn credentials(&self) -> &Credentials {
        &self.shared.credentials
    }

    /// A GET request to `path` (absolute, or relative to `base-url`).
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// A POST request to `path` (absolute, or relative to `base-url`).
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// A request with any method to `path` (absolute, or relative to `base-url`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, self.resolve(path))
    }

    fn resolve(&self, path: &str) -> Result<Url, Error> {
        let joined = match &self.shared.base_url {
            Some(base) => base.join(path),
            None => Url::parse(path),
        };
        joined.map_err(|_| Error::InvalidUrl(path.to_string()))
    }
}
