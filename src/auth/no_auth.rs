//! `type: none`: requests carry no Authorization header, for APIs that need none (or that the
//! tasks authenticate to themselves).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{BuildError, SessionConfig};

use super::{Credentials, Error, Provider};

/// `type: none`: no authentication; requests carry no Authorization header. The block has no
/// other keys.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoneConfig {}

/// The `none` provider.
#[derive(Debug)]
pub struct NoneProvider;

/// A `none` block has nothing to check.
pub fn build(_config: NoneConfig) -> Result<NoneProvider, BuildError> {
    Ok(NoneProvider)
}

impl Provider for NoneProvider {
    fn credentials(&self, _session: &SessionConfig) -> Result<Credentials, Error> {
        Ok(Credentials::none())
    }
}
