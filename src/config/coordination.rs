//! `coordination:` and the shared-state keys of `state:`: how several replicas of one config
//! share its tasks, and the database connection they do it through.
//!
//! Why here and typed: the rules between the two blocks (a shared state needs coordination, both
//! name the same database) are config rules, reported with their key paths by `validate` like
//! every other problem, before anything connects.

use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use super::check::{self, Presence};
use super::component::BuildError;
use super::duration::HumanDuration;
use super::runtime::{StateConfig, StateType};
use super::secret::SecretSource;
use crate::redact;

/// Whether a database connection is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Tls {
    /// Encrypted, with the server's certificate and host name verified.
    Require,
    /// Encrypted when the server offers it, without verification; plain otherwise.
    Prefer,
    /// Never encrypted.
    Disable,
}

/// Which coordination backend shares the tasks between replicas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CoordinationType {
    /// One process runs every task (the default).
    #[default]
    None,
    /// Replicas share the tasks through lease rows in PostgreSQL.
    Postgres,
    /// Replicas share the tasks through `coordination.k8s.io` Lease objects.
    Kubernetes,
}

/// `coordination:`: several replicas of one config share its tasks; each task runs on exactly one
/// live replica, which holds its lease.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CoordinationConfig {
    /// `none` (default), `postgres` or `kubernetes`.
    #[serde(default, rename = "type")]
    pub kind: CoordinationType,
    /// `postgres://user@host:5432/db`. Give the password in `password` or `password-file`.
    pub url: Option<String>,
    /// The database password. Prefer `password-file` or `${VAR}`.
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// A file holding the password; read at start and again after a failed request, so a
    /// rotated secret is picked up without a restart.
    pub password_file: Option<PathBuf>,
    /// `require` (verified against `ca-bundle` or the public roots), `prefer` (the default) or
    /// `disable`.
    pub tls: Option<Tls>,
    /// PEM file of the CA certificates that sign the server's certificate.
    pub ca_bundle: Option<PathBuf>,
    /// This replica's name in the lease table (PostgreSQL) or the Leases' `holderIdentity`
    /// (Kubernetes); unique among the replicas. Default: the host name and the process id.
    pub replica_id: Option<String>,
    /// `type: kubernetes`: the namespace of the Leases and ConfigMaps. Default: the pod's own
    /// (from its service account), else that of the kubeconfig context.
    pub namespace: Option<String>,
    /// `type: kubernetes`: task leases are named `<lease-prefix>-<task>`, so `kubectl get
    /// leases` shows which replica runs what. Default: `tapline`.
    pub lease_prefix: Option<String>,
    /// `type: kubernetes`: a kubeconfig file, when running outside a cluster. Default: in-cluster
    /// (service account), else `$KUBECONFIG` or `~/.kube/config`, as kubectl does.
    pub kubeconfig: Option<PathBuf>,
    /// How long a lease lasts without renewal: a dead replica's tasks move after at most this
    /// plus a third of it. Leases are renewed every third of it.
    #[serde(default = "default_lease_duration")]
    pub lease_duration: HumanDuration,
}

fn default_lease_duration() -> HumanDuration {
    HumanDuration::from_secs(15)
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            kind: CoordinationType::None,
            url: None,
            password: None,
            password_file: None,
            tls: None,
            ca_bundle: None,
            replica_id: None,
            namespace: None,
            lease_prefix: None,
            kubeconfig: None,
            lease_duration: default_lease_duration(),
        }
    }
}

/// Hand-written: the URL may hold a password, and `password` is one.
impl fmt::Debug for CoordinationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinationConfig")
            .field("kind", &self.kind)
            .field("url", &self.url.as_deref().map(redact::url))
            .field("password", &self.password())
            .field("tls", &self.tls)
            .field("ca_bundle", &self.ca_bundle)
            .field("replica_id", &self.replica_id)
            .field("namespace", &self.namespace)
            .field("lease_prefix", &self.lease_prefix)
            .field("kubeconfig", &self.kubeconfig)
            .field("lease_duration", &self.lease_duration)
            .finish()
    }
}

impl CoordinationConfig {
    /// The Kubernetes API the leases (and the shared state) live in, when `type: kubernetes`.
    pub fn kubernetes(&self) -> Option<KubernetesTarget> {
        (self.kind == CoordinationType::Kubernetes).then(|| KubernetesTarget {
            namespace: self.namespace.clone(),
            lease_prefix: self
                .lease_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_LEASE_PREFIX.into()),
            kubeconfig: self.kubeconfig.clone(),
        })
    }

    /// Where the password comes from, if anywhere.
    pub fn password(&self) -> Option<SecretSource> {
        SecretSource::from_pair(self.password.as_ref(), self.password_file.as_deref())
    }

    /// The PostgreSQL database of the leases (and of the shared state), when `type: postgres`.
    pub fn postgres(&self, state: &StateConfig) -> Option<PostgresConnection> {
        let url = self
            .url
            .clone()
            .filter(|_| self.kind == CoordinationType::Postgres)?;
        Some(PostgresConnection {
            url,
            password: state.password().or_else(|| self.password()),
            tls: self.tls,
            ca_bundle: self.ca_bundle.clone(),
        })
    }
}

/// How to reach one PostgreSQL database: what the coordination backend, the shared state and
/// the `sql` source connect with.
#[derive(Clone)]
pub struct PostgresConnection {
    /// The URL as configured (shown only through [`redact::url`]).
    pub url: String,
    /// The password, read whenever a connection is opened.
    pub password: Option<SecretSource>,
    /// Encryption.
    pub tls: Option<Tls>,
    /// CA certificates for `tls: require`.
    pub ca_bundle: Option<PathBuf>,
}

/// Hand-written: the URL may hold a password.
impl fmt::Debug for PostgresConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConnection")
            .field("url", &redact::url(&self.url))
            .field("password", &self.password)
            .field("tls", &self.tls)
            .field("ca_bundle", &self.ca_bundle)
            .finish()
    }
}

/// The lease prefix when `lease-prefix` is left out.
pub const DEFAULT_LEASE_PREFIX: &str = "tapline";

/// Where the Kubernetes backend keeps its Leases and ConfigMaps.
#[derive(Debug, Clone)]
pub struct KubernetesTarget {
    /// The namespace; `None`: the service account's, else the kubeconfig context's.
    pub namespace: Option<String>,
    /// The first part of every object name.
    pub lease_prefix: String,
    /// A kubeconfig file; `None`: in-cluster, else `$KUBECONFIG` / `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
}

/// The rules of `coordination:` and of `state:` together, keyed from the root.
pub(crate) fn check(
    coordination: &CoordinationConfig,
    state: &StateConfig,
) -> Vec<(String, BuildError)> {
    let mut out = Vec::new();
    let mut push = |at: &str, result: Result<(), BuildError>| {
        if let Err(error) = result {
            out.push((at.to_string(), error));
        }
    };
    push("coordination", coordination_rules(coordination));
    push("state", state_rules(state, coordination));
    out
}

fn coordination_rules(config: &CoordinationConfig) -> Result<(), BuildError> {
    let postgres_keys = [
        ("url", config.url.is_some()),
        ("password", config.password().is_some()),
        ("tls", config.tls.is_some()),
        ("ca-bundle", config.ca_bundle.is_some()),
    ];
    let kubernetes_keys = [
        ("namespace", config.namespace.is_some()),
        ("lease-prefix", config.lease_prefix.is_some()),
        ("kubeconfig", config.kubeconfig.is_some()),
    ];
    match config.kind {
        CoordinationType::None => check::all([
            only_with(&postgres_keys, "postgres"),
            only_with(&kubernetes_keys, "kubernetes"),
            only_with(
                &[("replica-id", config.replica_id.is_some())],
                "postgres or kubernetes",
            ),
        ]),
        CoordinationType::Postgres => {
            let mut checks = vec![
                only_with(&kubernetes_keys, "kubernetes"),
                url(config.url.as_deref(), "url"),
                check::secret_pair(
                    config.password.as_ref(),
                    config.password_file.as_deref(),
                    "password",
                    Presence::Optional,
                ),
            ];
            if let Some(bundle) = &config.ca_bundle {
                checks.push(check::readable_file(bundle, "ca-bundle"));
            }
            checks.extend(common_rules(config));
            check::all(checks)
        }
        CoordinationType::Kubernetes => {
            let mut checks = vec![only_with(&postgres_keys, "postgres")];
            if let Some(namespace) = &config.namespace {
                checks.push(dns_label(namespace, "namespace", 63));
            }
            if let Some(prefix) = &config.lease_prefix {
                checks.push(dns_label(prefix, "lease-prefix", MAX_PREFIX));
            }
            if let Some(file) = &config.kubeconfig {
                checks.push(check::readable_file(file, "kubeconfig"));
            }
            checks.extend(common_rules(config));
            check::all(checks)
        }
    }
}

/// The longest `lease-prefix`: object names are at most 253 characters, and the task part
/// (with its hash) needs the rest.
const MAX_PREFIX: usize = 40;

/// The rules of every backend: the lease duration and the replica's name.
fn common_rules(config: &CoordinationConfig) -> Vec<Result<(), BuildError>> {
    let mut checks = vec![lease_duration(config.lease_duration)];
    if let Some(id) = &config.replica_id {
        checks.push(check::not_blank(id, "replica-id"));
    }
    checks
}

/// The first key of `keys` that is set, reported as belonging to another `type`.
fn only_with(keys: &[(&str, bool)], kind: &str) -> Result<(), BuildError> {
    match keys.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(BuildError::at(
            key,
            format!("applies only with type: {kind}"),
        )),
        None => Ok(()),
    }
}

/// A Kubernetes name part: lower-case letters, digits and `-`, starting and ending with a
/// letter or digit (RFC 1123 label), so that every object name built from it is valid.
fn dns_label(value: &str, key: &str, max: usize) -> Result<(), BuildError> {
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = !value.starts_with('-') && !value.ends_with('-');
    if value.is_empty() || value.len() > max || !chars_ok || !ends_ok {
        return Err(BuildError::at(
            key,
            format!("{value:?} is not a Kubernetes name: use 1 to {max} lower-case letters, digits and '-', starting and ending with a letter or digit"),
        ));
    }
    Ok(())
}

/// A lease shorter than 1 s leaves no time to renew it; leases are renewed every third.
fn lease_duration(duration: HumanDuration) -> Result<(), BuildError> {
    if duration.get() < std::time::Duration::from_secs(1) {
        return Err(BuildError::at("lease-duration", "must be at least 1s"));
    }
    Ok(())
}

fn url(url: Option<&str>, key: &str) -> Result<(), BuildError> {
    let Some(url) = url else {
        return Err(BuildError::at(
            key,
            "missing; write postgres://user@host:5432/db",
        ));
    };
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("postgres" | "postgresql")) {
        return Err(BuildError::at(
            key,
            "not a PostgreSQL URL; write postgres://user@host:5432/db",
        ));
    }
    Ok(())
}

fn state_rules(state: &StateConfig, coordination: &CoordinationConfig) -> Result<(), BuildError> {
    let postgres_keys = [
        ("url", state.url.is_some()),
        ("password", state.password().is_some()),
    ];
    match state.kind {
        StateType::File => {
            only_with(&postgres_keys, "postgres")?;
            match coordination.kind {
                CoordinationType::None => Ok(()),
                CoordinationType::Postgres => Err(needs_shared("postgres")),
                CoordinationType::Kubernetes => Err(needs_shared("kubernetes")),
            }
        }
        StateType::Postgres => {
            if coordination.kind != CoordinationType::Postgres {
                return Err(BuildError::at(
                    "type",
                    "postgres needs coordination: {type: postgres}; the state is written under the task's lease",
                ));
            }
            let same = state.url.is_none() || state.url == coordination.url;
            check::all([
                check::secret_pair(
                    state.password.as_ref(),
                    state.password_file.as_deref(),
                    "password",
                    Presence::Optional,
                ),
                match same {
                    true => Ok(()),
                    false => Err(BuildError::at(
                        "url",
                        "must name the database of coordination.url (a cursor is written in the transaction that checks its lease); leave it out to use coordination.url",
                    )),
                },
            ])
        }
        StateType::Kubernetes => {
            only_with(&postgres_keys, "postgres")?;
            if coordination.kind != CoordinationType::Kubernetes {
                return Err(BuildError::at(
                    "type",
                    "kubernetes needs coordination: {type: kubernetes}; the state is written under the task's lease",
                ));
            }
            Ok(())
        }
    }
}

/// `state: {type: file}` under coordination: a replica taking a task over needs its cursor.
fn needs_shared(kind: &str) -> BuildError {
    BuildError::at(
        "type",
        format!("must be {kind} with coordination: {{type: {kind}}}: a replica that takes over a task needs its cursor"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_password() {
        let coordination = CoordinationConfig {
            kind: CoordinationType::Postgres,
            url: Some("postgres://u:url-Secret-1@db/x".into()),
            password: Some(SecretString::from("inline-Secret-2")),
            ..CoordinationConfig::default()
        };
        let state = StateConfig {
            kind: StateType::Postgres,
            url: Some("postgres://u:url-Secret-3@db/x".into()),
            password: Some(SecretString::from("inline-Secret-4")),
            ..StateConfig::default()
        };
        let connection = coordination.postgres(&state).unwrap();
        let shown = format!("{coordination:?} {state:?} {connection:?}");
        for secret in [
            "url-Secret-1",
            "inline-Secret-2",
            "url-Secret-3",
            "inline-Secret-4",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("db/x"), "{shown}");
    }
}
