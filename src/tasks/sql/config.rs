//! The keys of a `sql` task and the rules serde cannot express: the URL's scheme, the
//! placeholders against `cursor:`, the initial cursor against the cursor columns.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::database::Backend;
use super::placeholders::{Param, Style, Template};
use crate::config::check::{self, Presence};
pub use crate::config::Tls;
use crate::config::{BuildError, HumanDuration, SecretSource};
use crate::redact;

/// `type: sql`: read a database incrementally; the rows go to the task's `sink:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SqlConfig {
    /// The database and the query.
    pub source: SqlSourceConfig,
}

/// `source:` of a `sql` task.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SqlSourceConfig {
    /// `postgres://user@host:5432/db`, `mysql://user@host:3306/db` (MariaDB too) or
    /// `sqlite:///path/to/file.db`. Tasks with the same URL, connection keys and `password-file`
    /// share one pool; a task with an inline `password` has its own.
    /// Give the password in `password` or `password-file`, not in the URL.
    pub url: String,
    /// The database password. Prefer `password-file` or `${VAR}`.
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// A file holding the password (read again at each run, so a rotated secret is picked up).
    pub password_file: Option<PathBuf>,
    /// The query. `{cursor.<column>}` and `{limit}` become bind parameters of the database
    /// (never text spliced into the query). With `cursor:`, it must select rows after the
    /// cursor in cursor order, `LIMIT {limit}`.
    pub query: String,
    /// The columns that order the rows and resume the next page and the next run, such as
    /// `[updated_at, id]`. Without it, each run reads the whole result once (a snapshot).
    #[serde(default)]
    pub cursor: Vec<String>,
    /// The cursor before any was saved, one value per cursor column.
    pub initial_cursor: Option<Map<String, Value>>,
    /// Rows per query with `cursor:` (`{limit}`); a shorter page ends the run.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Connections the pool may open (shared by the tasks of the pool).
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long to wait for a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// `require` (TLS, certificate and host name verified against `ca-bundle` or the public
    /// roots), `prefer` (TLS when the server offers it, unverified; the default) or `disable`.
    /// Not for SQLite.
    pub tls: Option<Tls>,
    /// PEM file of the CA certificates that sign the server's certificate.
    pub ca_bundle: Option<PathBuf>,
    /// Retries of a lost connection or a database restart within a run, with backoff (random
    /// waits of up to 0.5 s, doubling to at most 10 s) before the run fails.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

fn default_page_size() -> u32 {
    1000
}

fn default_max_connections() -> u32 {
    4
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn default_max_retries() -> u32 {
    5
}

impl SqlSourceConfig {
    /// Where the password comes from, if anywhere.
    pub fn password(&self) -> Option<SecretSource> {
        SecretSource::from_pair(self.password.as_ref(), self.password_file.as_deref())
    }
}

/// Hand-written: the URL may hold a password, and `password` is one.
impl fmt::Debug for SqlSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlSourceConfig")
            .field("url", &redact::url(&self.url))
            .field("password", &self.password())
            .field("query", &self.query)
            .field("cursor", &self.cursor)
            .field("initial_cursor", &self.initial_cursor)
            .field("page_size", &self.page_size)
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .field("ca_bundle", &self.ca_bundle)
            .field("max_retries", &self.max_retries)
            .finish()
    }
}

/// Every rule of a `source:` block; the backend and the parsed query when they hold.
pub(super) fn check(source: &SqlSourceConfig) -> Result<(Backend, Template), BuildError> {
    let backend = Backend::from_url(&source.url).map_err(|m| BuildError::at("source.url", m));
    // A URL that names no database is reported on its own; its query is read as PostgreSQL's.
    let style = backend
        .as_ref()
        .map_or(Style::Dollar, |backend| backend.style());
    let template = Template::parse(&source.query, style)
        .map_err(|error| BuildError::at("source.query", error.to_string()));
    let mut checks = vec![
        check::secret_pair(
            source.password.as_ref(),
            source.password_file.as_deref(),
            "source.password",
            Presence::Optional,
        ),
        check::not_blank(&source.query, "source.query"),
        cursor_columns(&source.cursor),
        at_least_one(source.page_size, "source.page-size"),
        at_least_one(source.max_connections, "source.max-connections"),
    ];
    if let Some(bundle) = &source.ca_bundle {
        checks.push(check::readable_file(bundle, "source.ca-bundle"));
    }
    if let Ok(backend) = &backend {
        checks.push(connection(source, *backend));
    }
    if let Ok(template) = &template {
        checks.push(placeholders(template, &source.cursor));
        checks.push(initial_cursor(source));
    }
    check::all(checks.into_iter().chain([
        backend.as_ref().map(drop).map_err(Clone::clone),
        template.as_ref().map(drop).map_err(Clone::clone),
    ]))?;
    Ok((backend?, template?))
}

fn at_least_one(value: u32, key: &str) -> Result<(), BuildError> {
    if value == 0 {
        return Err(BuildError::at(key, "must be at least 1"));
    }
    Ok(())
}

fn cursor_columns(columns: &[String]) -> Result<(), BuildError> {
    let mut seen = BTreeSet::new();
    for (index, column) in columns.iter().enumerate() {
        if column.trim().is_empty() || !seen.insert(column) {
            return Err(BuildError::at(
                &format!("source.cursor[{index}]"),
                format!("{column:?} is empty or named twice"),
            ));
        }
    }
    Ok(())
}

/// A password in the URL and in `password` both; TLS keys where there is no network.
fn connection(source: &SqlSourceConfig, backend: Backend) -> Result<(), BuildError> {
    let in_url = url::Url::parse(&source.url)
        .ok()
        .is_some_and(|url| url.password().is_some());
    if in_url && source.password().is_some() {
        return Err(BuildError::at(
            "source.url",
            "has a password and so has source.password(-file); keep it only in password or password-file",
        ));
    }
    if backend == Backend::Sqlite {
        let network = [
            ("source.tls", source.tls.is_some()),
            ("source.ca-bundle", source.ca_bundle.is_some()),
            ("source.password", source.password().is_some()),
        ];
        if let Some((key, _)) = network.iter().find(|(_, set)| *set) {
            return Err(BuildError::at(key, "does not apply to a SQLite file"));
        }
    }
    Ok(())
}

/// `{cursor.x}` only for cursor columns, every cursor column used, and `{limit}` exactly when
/// there is a cursor (a page without one could not be resumed).
fn placeholders(template: &Template, cursor: &[String]) -> Result<(), BuildError> {
    let at = |message: String| BuildError::at("source.query", message);
    let mut used = BTreeSet::new();
    let mut limit = false;
    for param in template.params() {
        match param {
            Param::Limit => limit = true,
            Param::Cursor(column) if cursor.contains(column) => {
                used.insert(column.as_str());
            }
            Param::Cursor(column) if cursor.is_empty() => {
                return Err(at(format!(
                    "{param} needs source.cursor, the columns that resume the query; add cursor: [{column}, ...]"
                )))
            }
            Param::Cursor(column) => {
                return Err(at(format!(
                    "{param}: {column:?} is not one of the cursor columns [{}]",
                    cursor.join(", ")
                )))
            }
        }
    }
    if let Some(unused) = cursor.iter().find(|c| !used.contains(c.as_str())) {
        return Err(at(format!(
            "the cursor column {unused:?} is not used; compare every cursor column, as in \
             WHERE ({cols}) > ({{cursor.{}}}, ...)",
            cursor[0],
            cols = cursor.join(", ")
        )));
    }
    match (cursor.is_empty(), limit) {
        (false, false) => Err(at(
            "with source.cursor the query must end in LIMIT {limit}, so a page stays page-size rows".into(),
        )),
        (true, true) => Err(at(
            "{limit} is for paging with source.cursor; without a cursor the query runs once, whole".into(),
        )),
        _ => Ok(()),
    }
}

/// With a cursor, the initial cursor gives a value for each cursor column and nothing else.
fn initial_cursor(source: &SqlSourceConfig) -> Result<(), BuildError> {
    let key = "source.initial-cursor";
    match (&source.initial_cursor, source.cursor.is_empty()) {
        (None, true) => Ok(()),
        (Some(_), true) => Err(BuildError::at(key, "only applies with source.cursor")),
        (None, false) => Err(BuildError::at(
            key,
            format!(
                "missing; give the cursor before the first row, such as {{{}}}",
                source
                    .cursor
                    .iter()
                    .map(|c| format!("{c}: ..."))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        (Some(initial), false) => {
            let missing = source.cursor.iter().find(|c| !initial.contains_key(*c));
            let extra = initial.keys().find(|k| !source.cursor.contains(k));
            match (missing, extra) {
                (Some(column), _) => Err(BuildError::at(key, format!("has no {column:?}"))),
                (_, Some(column)) => Err(BuildError::at(
                    &format!("{key}.{column}"),
                    "is not a cursor column",
                )),
                _ => Ok(()),
            }
        }
    }
}
