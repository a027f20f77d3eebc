//! [`Sections`]: the top-level blocks a component may read besides its own. A CDF sink needs the
//! `cdf:` block's project and cluster, which every CDF sink, the run reports and the default
//! auth scope share; passing the checked blocks to the build keeps components free of globals
//! and lets `validate` say "this sink needs `cdf:`" with the sink's key path.

use super::cdf::CdfConfig;
use super::Config;

/// The shared top-level blocks, as checked (a block with problems of its own is absent here, and
/// reported where it is written).
#[derive(Debug, Clone, Default)]
pub struct Sections {
    /// `cdf:`.
    pub cdf: Option<CdfConfig>,
}

impl Sections {
    /// The shared blocks of a loaded config.
    pub fn of(config: &Config) -> Self {
        Self {
            cdf: config.cdf.clone(),
        }
    }
}
