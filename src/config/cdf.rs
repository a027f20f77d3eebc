//! The `cdf:` block: which Cognite Data Fusion project the CDF sinks write to, and the extraction
//! pipeline the runs are reported to. It is a top-level block, not a sink key, because several
//! sinks, the run reports, `validate --check-auth` and the default auth scope all need the same
//! project and cluster.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use url::Url;

use super::component::BuildError;
use super::duration::HumanDuration;

/// `cdf: {project: my-project, base-url: https://westeurope-1.cognitedata.com}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CdfConfig {
    /// The CDF project.
    pub project: String,
    /// The cluster's URL, such as `https://westeurope-1.cognitedata.com`. Give this or `cluster`.
    pub base_url: Option<String>,
    /// The cluster's name, such as `westeurope-1`: base URL `https://{cluster}.cognitedata.com`.
    pub cluster: Option<String>,
    /// The extraction pipeline every task's runs are reported to (a task may name its own with
    /// `extraction-pipeline:`).
    pub extraction_pipeline: Option<ExtractionPipelineConfig>,
    /// Take everything but `auth:`, `cdf:`, `server:`, `logging:` and `reload:` from the config
    /// of the extraction pipeline (`extraction-pipeline.external-id`), read again every
    /// `remote-config-refresh`.
    #[serde(default)]
    pub remote_config: bool,
    /// How often the pipeline's config is read again.
    #[serde(default = "default_refresh")]
    pub remote_config_refresh: HumanDuration,
    /// Where the last good remote config is kept (mode 0600), so that a start while CDF is
    /// unreachable still starts. Default: `./state/tapline-remote-config.json`, beside the
    /// default state file.
    pub remote_config_cache: Option<PathBuf>,
}

/// The keys of the `cdf:` block that only the local file has: they are left out of the config
/// built from the pipeline's.
pub const REMOTE_CONFIG_KEYS: [&str; 3] = [
    "remote-config",
    "remote-config-refresh",
    "remote-config-cache",
];

fn default_refresh() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// `extraction-pipeline: {external-id: plant-a-readings, heartbeat: 10m}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExtractionPipelineConfig {
    /// The pipeline's external id.
    pub external_id: String,
    /// How often a `seen` report goes to every pipeline in use while the process runs.
    #[serde(default = "default_heartbeat")]
    pub heartbeat: HumanDuration,
}

fn default_heartbeat() -> HumanDuration {
    HumanDuration::from_secs(600)
}

impl CdfConfig {
    /// The pipeline whose config is used, with `remote-config`.
    pub fn remote_pipeline(&self) -> Option<&str> {
        let pipeline = self.extraction_pipeline.as_ref()?;
        self.remote_config.then_some(pipeline.external_id.as_str())
    }

    /// `remote-config-cache`, or its default.
    pub fn remote_config_cache(&self) -> PathBuf {
        self.remote_config_cache
            .clone()
            .unwrap_or_else(|| PathBuf::from("./state/tapline-remote-config.json"))
    }

    /// The cluster's URL without a trailing `/`, from `base-url` or `cluster`.
    pub fn base_url(&self) -> String {
        match (&self.base_url, &self.cluster) {
            (Some(base), _) => base.trim_end_matches('/').to_string(),
            (None, Some(cluster)) => format!("https://{cluster}.cognitedata.com"),
            (None, None) => String::new(),
        }
    }

    /// The URL of `path` (such as `timeseries/data`) under `/api/v1/projects/{project}/`.
    pub fn project_url(&self, path: &str) -> String {
        let project = percent_encoding::utf8_percent_encode(&self.project, SEGMENT);
        format!("{}/api/v1/projects/{project}/{path}", self.base_url())
    }

    /// The scope an OAuth provider asks for when its block gives none: `<base-url>/.default`.
    pub fn default_scope(&self) -> String {
        format!("{}/.default", self.base_url())
    }

    /// The rules serde cannot express; key paths are relative to the block.
    pub fn check(&self) -> Result<(), BuildError> {
        let mut problems = Vec::new();
        if self.project.trim().is_empty() {
            problems.push(BuildError::at("project", "must not be empty"));
        }
        match (&self.base_url, &self.cluster) {
            (Some(_), Some(_)) => problems.push(BuildError::at(
                "cluster",
                "give base-url or cluster, not both",
            )),
            (None, None) => problems.push(BuildError::new(
                "give base-url (such as https://westeurope-1.cognitedata.com) or cluster (such as westeurope-1)",
            )),
            (Some(base), None) => {
                let usable = Url::parse(base)
                    .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
                if !usable {
                    problems.push(BuildError::at("base-url", "not an http(s) URL"));
                }
            }
            (None, Some(cluster)) => {
                let plain = !cluster.is_empty()
                    && cluster.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !plain {
                    problems.push(BuildError::at(
                        "cluster",
                        "a cluster name is letters, digits and '-', such as westeurope-1",
                    ));
                }
            }
        }
        if let Some(pipeline) = &self.extraction_pipeline {
            if pipeline.external_id.trim().is_empty() {
                let key = "extraction-pipeline.external-id";
                problems.push(BuildError::at(key, "must not be empty"));
            }
            if pipeline.heartbeat.get().is_zero() {
                let key = "extraction-pipeline.heartbeat";
                problems.push(BuildError::at(key, "must be longer than 0s"));
            }
        }
        if self.remote_config && self.extraction_pipeline.is_none() {
            problems.push(BuildError::at(
                "remote-config",
                "the config comes from an extraction pipeline: give extraction-pipeline.external-id",
            ));
        }
        if self.remote_config_refresh.get().is_zero() {
            problems.push(BuildError::at(
                "remote-config-refresh",
                "must be longer than 0s",
            ));
        }
        BuildError::all(problems).map_or(Ok(()), Err)
    }
}

/// Characters escaped in a URL path segment (a project, database or table name).
pub const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    fn cdf(yaml: &str) -> CdfConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_cluster_name_means_its_cognitedata_url() {
        let config = cdf("project: p\ncluster: westeurope-1\n");
        assert_eq!(config.base_url(), "https://westeurope-1.cognitedata.com");
        assert_eq!(
            config.default_scope(),
            "https://westeurope-1.cognitedata.com/.default"
        );
        assert_eq!(
            config.project_url("timeseries/data"),
            "https://westeurope-1.cognitedata.com/api/v1/projects/p/timeseries/data"
        );
        config.check().unwrap();
    }

    #[test]
    fn a_base_url_keeps_its_port_and_loses_its_slash() {
        let config = cdf("project: my proj\nbase-url: http://127.0.0.1:8080/\n");
        assert_eq!(
            config.project_url("rows"),
            "http://127.0.0.1:8080/api/v1/projects/my%20proj/rows"
        );
    }

    #[test]
    fn every_problem_is_named_with_its_key() {
        let error = cdf("project: ''\nbase-url: x\ncluster: 'a b'\nextraction-pipeline: {external-id: '', heartbeat: 0s}\n")
            .check()
            .unwrap_err();
        let paths: Vec<String> = error.locate("cdf").into_iter().map(|p| p.path).collect();
        assert_eq!(
            paths,
            [
                "cdf.project",
                "cdf.cluster",
                "cdf.extraction-pipeline.external-id",
                "cdf.extraction-pipeline.heartbeat"
            ]
        );
        let neither = cdf("project: p\n").check().unwrap_err();
        assert_eq!(neither.locate("cdf")[0].path, "cdf");
        let bad_url = cdf("project: p\nbase-url: not a url\n")
            .check()
            .unwrap_err();
        assert_eq!(bad_url.key(), Some("base-url"));
    }
}
