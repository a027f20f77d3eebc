//! Remote config: with `cdf.remote-config`, everything but the local file's `auth:`, `cdf:`,
//! `server:`, `logging:` and `reload:` comes from the config of an extraction pipeline in CDF
//! (`GET /extpipes/config?externalId=…`, YAML text with a revision number), read again every
//! `cdf.remote-config-refresh`.
//!
//! A revision goes through the same checks as a file. The last good one is cached on disk
//! (mode 0600: it may hold secrets) so that a start while CDF is unreachable still starts. A
//! revision with problems is reported to the pipeline as a `failure` run, with the problems in
//! its message, and is not tried again: only a newer revision is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, Access};
use crate::config::{self, CdfConfig, Config};
use crate::session::Session;
use crate::sinks::cdf::api::CdfApi;
use crate::sinks::cdf::runs::item;
use crate::sinks::cdf::CdfError;
use crate::telemetry::logging::error_chain;
use crate::Registry;

/// Reading the pipeline's config failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// CDF refused, or could not be reached.
    #[error(transparent)]
    Cdf(#[from] CdfError),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer has no `revision` and `config` text.
    #[error("the answer is not an extraction pipeline config (revision and config text)")]
    Shape,
}

/// One revision of the pipeline's config.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// Its number in CDF.
    pub revision: i64,
    /// The YAML text (it may hold secrets, as a config file may).
    pub config: String,
}

/// The revision's number and size; never its text.
impl std::fmt::Debug for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revision")
            .field("revision", &self.revision)
            .field("config", &format_args!("<{} bytes>", self.config.len()))
            .finish()
    }
}

/// The pipeline the config comes from, and what came of its revisions.
pub struct Remote {
    api: CdfApi,
    pipeline: String,
    /// The runner's session: replaced by each applied reload, so that new credentials reach
    /// the pipeline's config too.
    pub session: Session,
    cache: PathBuf,
    /// How often to look for a new revision.
    pub refresh: Duration,
    /// The revision in force.
    pub current: Option<Revision>,
    /// The newest revision refused, not tried again.
    refused: Option<i64>,
}

impl Remote {
    /// The remote config of `local` (the local file's config), if it asks for one, read with
    /// `session`.
    pub fn new(local: &Config, session: Session) -> Option<Self> {
        let cdf: &CdfConfig = local.cdf.as_ref()?;
        let pipeline = cdf.remote_pipeline()?.to_string();
        Some(Self {
            api: CdfApi::new(cdf),
            pipeline,
            session,
            cache: cdf.remote_config_cache(),
            refresh: cdf.remote_config_refresh.get(),
            current: None,
            refused: None,
        })
    }

    /// The newest revision in CDF. The session retries as for any request, but only for one
    /// refresh period (at least 1 s, at most 30 s): at start the cache is used after that, and
    /// later the next refresh tries again.
    pub async fn fetch(&self) -> Result<Revision, FetchError> {
        let id = url::form_urlencoded::byte_serialize(self.pipeline.as_bytes()).collect::<String>();
        let path = format!("extpipes/config?externalId={id}");
        let request = self
            .api
            .send(&self.session, Method::GET, &path, None::<&()>);
        let patience = self
            .refresh
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        let answer = tokio::time::timeout(patience, request)
            .await
            .map_err(|_| FetchError::Timeout(patience))??;
        serde_json::from_value(answer).map_err(|_| FetchError::Shape)
    }

    /// A revision to try: the newest in CDF when it is neither in force nor refused. A failed
    /// read is logged; the next refresh tries again.
    pub async fn poll(&self) -> Option<Revision> {
        match self.fetch().await {
            Ok(revision) => {
                let seen = [self.current.as_ref().map(|c| c.revision), self.refused];
                (!seen.contains(&Some(revision.revision))).then_some(revision)
            }
            Err(error) => {
                tracing::warn!(pipeline = %self.pipeline, error = %error_chain(&error), "cannot read the remote config; keeping the one in force");
                None
            }
        }
    }

    /// The config of `revision` with the local file at `path`, checked as `tapline validate`
    /// checks a file.
    pub fn build(
        &self,
        registry: &Registry,
        path: &Path,
        revision: &Revision,
    ) -> Result<Config, config::Error> {
        let local = std::fs::read_to_string(path).map_err(|source| config::Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let label = PathBuf::from(format!(
            "extraction pipeline {} revision {}",
            self.pipeline, revision.revision
        ));
        config::parse_remote(&local, path, &revision.config, &label, registry)
    }

    /// `revision` is in force: it becomes the cached one.
    pub fn accept(&mut self, revision: Revision) {
        if let Err(error) = self.write_cache(&revision) {
            tracing::warn!(cache = %self.cache.display(), %error, "cannot cache the remote config; a start while CDF is unreachable will not find it");
        }
        self.current = Some(revision);
    }

    /// `revision` was refused for `why`: reported to the pipeline as a failure run, and not
    /// tried again.
    pub async fn refuse(&mut self, revision: &Revision, why: &str) {
        self.refused = Some(revision.revision);
        let message = format!("config revision {} refused: {why}", revision.revision);
        let body = serde_json::json!({"items": [item(&self.pipeline, "failure", &message)]});
        let sent = self
            .api
            .send(&self.session, Method::POST, "extpipes/runs", Some(&body))
            .await;
        if let Err(error) = sent {
            tracing::warn!(error = %error_chain(&error), "cannot report the refused config revision to the extraction pipeline");
        }
    }

    /// The cached revision, if there is a readable one.
    pub fn cached(&self) -> Option<Revision> {
        let bytes = std::fs::read(&self.cache).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write_cache(&self, revision: &Revision) -> std::io::Result<()> {
        if let Some(dir) = self
            .cache
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec(revision).expect("a revision is JSON");
        atomic_file::replace(&self.cache, &bytes, Access::OwnerOnly)
    }
}

/// The remote config to start with: the newest revision, or the cached one when CDF cannot be
/// reached or the newest is refused (reported to the pipeline as with a running process).
pub(super) async fn first(
    registry: &Registry,
    path: &Path,
    remote: &mut Remote,
) -> Result<Config, super::StartError> {
    match remote.fetch().await {
        Ok(revision) => match super::checked(registry, path, Some(remote), Some(&revision)) {
            Ok((config, _)) => {
                remote.accept(revision);
                return Ok(config);
            }
            Err(error) => {
                tracing::error!(error = %error, "the remote config's newest revision is refused; trying the cached one");
                remote.refuse(&revision, &error.to_string()).await;
            }
        },
        Err(error) => {
            tracing::warn!(pipeline = %remote.pipeline, error = %error_chain(&error), "cannot read the remote config; starting with the cached one");
        }
    }
    let no_config = || super::StartError::NoConfig {
        pipeline: remote.pipeline.clone(),
        cache: remote.cache.clone(),
    };
    let cached = remote.cached().ok_or_else(no_config)?;
    let (config, _) = super::checked(registry, path, Some(remote), Some(&cached))?;
    tracing::info!(
        revision = cached.revision,
        "running the cached remote config"
    );
    remote.current = Some(cached);
    Ok(config)
}
