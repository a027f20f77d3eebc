//! [`Provider`]: a credential provider as configured, one per `auth.type`. Providers are
//! components: each type has its own config and is registered by name
//! (`tapline::Registry::provider`), so a library user can add one without touching the crate.
//!
//! Each built-in provider is one file holding its config struct (whose doc comments are the
//! schema), its `build` (the rules serde cannot express, every problem at once) and its
//! `impl Provider`; `src/registry/builtin.rs` registers them.

use std::path::PathBuf;

use super::{Credentials, Error};
use crate::config::{HumanDuration, SessionConfig};

/// A configured credential provider: it builds the process's [`Credentials`].
#[async_trait::async_trait]
pub trait Provider: std::fmt::Debug + Send + Sync + 'static {
    /// Builds the credentials every request of the process uses. Token requests are made as
    /// `session` describes (proxy, CA bundle, timeouts); building sends no request.
    fn credentials(&self, session: &SessionConfig) -> Result<Credentials, Error>;

    /// Runs the provider's interactive login once (`tapline login`) and returns where the
    /// tokens were cached. Providers without one refuse.
    async fn login(&self, session: &SessionConfig) -> Result<PathBuf, Error> {
        let _ = session;
        Err(Error::Misconfigured(
            "this auth type has no interactive login; `tapline login` is for device-code and browser"
                .into(),
        ))
    }
}

/// `refresh-margin` when a provider's block gives none: refresh this long before expiry
/// (the cache clamps it to half the token's lifetime).
pub(crate) fn default_refresh_margin() -> HumanDuration {
    HumanDuration::from_secs(30)
}
