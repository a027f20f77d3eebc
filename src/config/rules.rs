//! The rules a JSON Schema cannot express: keys that exclude each other, files that must be
//! readable, URLs, cron expressions, unique task names; and, through the [`Catalog`], every
//! component's own rules.

use std::collections::HashSet;
use std::path::Path;

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::auth::{
    AuthConfig, CertificateConfig, ClientSecretConfig, InteractiveEndpoints, KognicConfig,
    TokenConfig, WorkloadIdentityConfig,
};
use super::component::{BuildError, Catalog, ComponentConfig, Kind};
use super::error::Problem;
use super::path::KeyPath;
use super::secret::{is_blank, read_secret_file};
use super::session::SessionConfig;
use super::task::{check_task_name, Schedule, TaskConfig};

/// Checks every section of the tree whose shape is sound, so that one run reports the rule
/// problems of a section even while another section has shape problems.
pub(crate) fn check(
    tree: &Value,
    shape_problems: &[Problem],
    catalog: &dyn Catalog,
) -> Vec<Problem> {
    let unsound = |path: &KeyPath, except: Option<&KeyPath>| {
        let (path, except) = (path.to_string(), except.map(KeyPath::to_string));
        shape_problems.iter().any(|problem| {
            is_within(&problem.path, &path)
                && !except
                    .as_deref()
                    .is_some_and(|e| is_within(&problem.path, e))
        })
    };
    let sound = |path: &KeyPath| !unsound(path, None);
    let mut out = Vec::new();
    let root = KeyPath::root();
    if let Some(block) = section::<ComponentConfig>(tree, "auth", &sound) {
        out.extend(catalog.check(Kind::Provider, &block, "auth"));
    }
    if let Some(config) = section::<SessionConfig>(tree, "session", &sound) {
        session(&config, &mut out);
    }
    let items = tree
        .get("tasks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    task_names(items, &mut out);
    for (index, item) in items.iter().enumerate() {
        let path = root.key("tasks").index(index);
        task(item, &path, &unsound, catalog, &mut out);
    }
    out
}

/// The rules of one task item, each checked where the shape it needs is sound: the schedule, the
/// task type's own keys (built by the catalog), and the sink.
fn task(
    item: &Value,
    path: &KeyPath,
    unsound: &dyn Fn(&KeyPath, Option<&KeyPath>) -> bool,
    catalog: &dyn Catalog,
    out: &mut Vec<Problem>,
) {
    let schedule_path = path.key("schedule");
    let parsed = item
        .get("schedule")
        .filter(|_| !unsound(&schedule_path, None))
        .and_then(|value| serde_json::from_value::<Schedule>(value.clone()).ok());
    if let Some(parsed) = parsed {
        schedule(&parsed, &schedule_path, out);
    }
    let sink_path = path.key("sink");
    if unsound(path, Some(&sink_path)) {
        return;
    }
    let Ok(task) = serde_json::from_value::<TaskConfig>(item.clone()) else {
        return;
    };
    out.extend(catalog.check(Kind::Task, &task.component(), &path.to_string()));
    if let Some(sink) = task.sink.as_ref().filter(|_| !unsound(&sink_path, None)) {
        out.extend(catalog.check(Kind::Sink, sink, &sink_path.to_string()));
    }
}

/// The rules of a built-in `auth:` block, with key paths relative to the block.
pub(crate) fn auth_rules(config: &AuthConfig) -> Option<BuildError> {
    let mut out = Vec::new();
    auth(config, &KeyPath::root(), &mut out);
    BuildError::all(
        out.into_iter()
            .map(|problem| BuildError::at(&problem.path, problem.message)),
    )
}

/// Deserializes one top-level section when no shape problem lies within it.
fn section<T: DeserializeOwned>(
    tree: &Value,
    key: &str,
    sound: &dyn Fn(&KeyPath) -> bool,
) -> Option<T> {
    let value = tree.get(key)?;
    sound(&KeyPath::root().key(key))
        .then(|| serde_json::from_value(value.clone()).ok())
        .flatten()
}

fn is_within(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// A token endpoint must use https, except on loopback where tests and local proxies live:
/// a client secret sent over plain http to another host is a leak.
pub fn check_token_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("invalid URL: {error}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err("plain http:// is refused for a token endpoint unless the host is loopback; use https://".into()),
        other => Err(format!("unsupported URL scheme {other:?}; use https://")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn auth(auth: &AuthConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    match auth {
        AuthConfig::ClientSecret(config) => client_secret(config, path, out),
        AuthConfig::Certificate(config) => certificate(config, path, out),
        AuthConfig::Kognic(config) => kognic(config, path, out),
        AuthConfig::Token(config) => token(config, path, out),
        AuthConfig::DeviceCode(config) => {
            not_blank(&config.client_id, &path.key("client-id"), out);
            interactive(&config.endpoints(), "device-authorization-url", path, out);
        }
        AuthConfig::Browser(config) => {
            not_blank(&config.client_id, &path.key("client-id"), out);
            interactive(&config.endpoints(), "authorization-url", path, out);
        }
        AuthConfig::WorkloadIdentity(config) => workload_identity(config, path, out),
        AuthConfig::None => {}
    }
}

fn client_secret(config: &ClientSecretConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    not_blank(&config.client_id, &path.key("client-id"), out);
    match (&config.token_url, &config.tenant) {
        (Some(_), Some(_)) => out.push(Problem::new(
            &path.key("tenant"),
            "give either token-url or tenant, not both",
        )),
        (None, None) => out.push(Problem::new(
            &path.key("token-url"),
            "missing; give token-url, or tenant for Microsoft Entra ID",
        )),
        (Some(url), None) => token_url(url, &path.key("token-url"), out),
        (None, Some(tenant)) => not_blank(tenant, &path.key("tenant"), out),
    }
    secret_pair(
        config.client_secret.as_ref(),
        config.client_secret_file.as_deref(),
        &path.key("client-secret"),
        true,
        out,
    );
}

fn certificate(config: &CertificateConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    not_blank(&config.client_id, &path.key("client-id"), out);
    match (&config.token_url, &config.authority_url) {
        (Some(_), Some(_)) => out.push(Problem::new(
            &path.key("authority-url"),
            "give either token-url or authority-url, not both",
        )),
        (None, None) => out.push(Problem::new(
            &path.key("authority-url"),
            "missing; give authority-url (https://login.microsoftonline.com/<tenant>) or token-url",
        )),
        _ => {}
    }
    if let Some(url) = config.resolved_token_url() {
        let key = if config.token_url.is_some() {
            "token-url"
        } else {
            "authority-url"
        };
        token_url(&url, &path.key(key), out);
    }
    readable_file(&config.certificate, &path.key("certificate"), out);
    if let Some(key) = &config.private_key {
        readable_file(key, &path.key("private-key"), out);
    }
    secret_pair(
        config.password.as_ref(),
        config.password_file.as_deref(),
        &path.key("password"),
        false,
        out,
    );
}

fn kognic(config: &KognicConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    if let Some(file) = &config.credentials {
        readable_file(&expand_home(file), &path.key("credentials"), out);
    }
    let server = format!(
        "{}/v1/auth/oauth/token",
        config.server.trim_end_matches('/')
    );
    token_url(&server, &path.key("server"), out);
}

/// An interactive login needs an authority, or a token URL plus the flow's own endpoint
/// (`login_key`); every URL that will see the client id or a code must be https (or loopback).
fn interactive(
    endpoints: &InteractiveEndpoints,
    login_key: &str,
    path: &KeyPath,
    out: &mut Vec<Problem>,
) {
    match (&endpoints.authority_url, &endpoints.token_url) {
        (Some(_), Some(_)) => out.push(Problem::new(
            &path.key("authority-url"),
            "give either authority-url or token-url, not both",
        )),
        (None, None) => out.push(Problem::new(
            &path.key("authority-url"),
            format!("missing; give authority-url (https://login.microsoftonline.com/<tenant>, or an OIDC issuer), or token-url with {login_key}"),
        )),
        (None, Some(_)) if endpoints.login_url.is_none() => out.push(Problem::new(
            &path.key(login_key),
            format!("missing; token-url needs {login_key}, or give authority-url instead"),
        )),
        _ => {}
    }
    for (key, url) in [
        ("authority-url", &endpoints.authority_url),
        ("token-url", &endpoints.token_url),
        (login_key, &endpoints.login_url),
    ] {
        if let Some(url) = url {
            token_url(url, &path.key(key), out);
        }
    }
}

fn workload_identity(config: &WorkloadIdentityConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    let given: Vec<&str> = [
        ("tenant", config.tenant.is_some()),
        ("authority-url", config.authority_url.is_some()),
        ("token-url", config.token_url.is_some()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    if given.len() > 1 {
        out.push(Problem::new(
            &path.key(given[1]),
            format!(
                "give only one of tenant, authority-url and token-url (found {})",
                given.join(", ")
            ),
        ));
    }
    for (key, value) in [("client-id", &config.client_id), ("tenant", &config.tenant)] {
        if let Some(value) = value {
            not_blank(value, &path.key(key), out);
        }
    }
    if let Some(url) = &config.token_url {
        token_url(url, &path.key("token-url"), out);
    }
    if let Some(url) = &config.authority_url {
        token_url(url, &path.key("authority-url"), out);
    }
}

fn token(config: &TokenConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    secret_pair(
        config.token.as_ref(),
        config.token_file.as_deref(),
        &path.key("token"),
        true,
        out,
    );
}

fn session(session: &SessionConfig, out: &mut Vec<Problem>) {
    let path = KeyPath::root().key("session");
    if let Some(base) = &session.base_url {
        if let Err(error) = Url::parse(base) {
            out.push(Problem::new(
                &path.key("base-url"),
                format!("invalid URL: {error}"),
            ));
        }
    }
    if let Some(proxy) = &session.proxy {
        // The value is not quoted: a proxy URL may carry a password.
        let usable = Url::parse(proxy).is_ok_and(|url| {
            matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") && url.has_host()
        });
        if !usable {
            out.push(Problem::new(
                &path.key("proxy"),
                "not a proxy URL; write http://host:port, https://host:port or socks5://host:port",
            ));
        }
    }
    if let Some(bundle) = &session.ca_bundle {
        readable_file(bundle, &path.key("ca-bundle"), out);
    }
    if session.max_in_flight == 0 {
        out.push(Problem::new(
            &path.key("max-in-flight"),
            "must be at least 1",
        ));
    }
    let retries = path.key("retries");
    if session.retries.initial_backoff > session.retries.max_backoff {
        out.push(Problem::new(
            &retries.key("initial-backoff"),
            "must not be longer than max-backoff",
        ));
    }
    for (index, status) in session.retries.retry_on.iter().enumerate() {
        if !(100..=599).contains(status) {
            out.push(Problem::new(
                &retries.key("retry-on").index(index),
                format!("{status} is not an HTTP status"),
            ));
        }
    }
}

/// Names are read from the raw items, so they are checked even in an item whose other keys have
/// shape problems.
fn task_names(items: &[Value], out: &mut Vec<Problem>) {
    let mut names = HashSet::new();
    for (index, item) in items.iter().enumerate() {
        let path = KeyPath::root().key("tasks").index(index);
        if let Some(name) = item.get("name").and_then(Value::as_str) {
            if let Err(message) = check_task_name(name) {
                out.push(Problem::new(&path.key("name"), message));
            }
            if !names.insert(name) {
                let message = format!("another task is already named {name:?}");
                out.push(Problem::new(&path.key("name"), message));
            }
        }
    }
}

fn schedule(schedule: &Schedule, path: &KeyPath, out: &mut Vec<Problem>) {
    match schedule {
        Schedule::Interval(every) if every.interval.get().is_zero() => {
            out.push(Problem::new(
                &path.key("interval"),
                "must be longer than 0s",
            ));
        }
        Schedule::Cron(cron) => {
            if let Err(message) = cron.check(chrono::Utc::now()) {
                out.push(Problem::new(&path.key("cron"), message));
            }
        }
        _ => {}
    }
}

fn token_url(url: &str, path: &KeyPath, out: &mut Vec<Problem>) {
    if let Err(message) = check_token_url(url) {
        out.push(Problem::new(path, message));
    }
}

fn not_blank(value: &str, path: &KeyPath, out: &mut Vec<Problem>) {
    if value.trim().is_empty() {
        out.push(Problem::new(path, "must not be empty"));
    }
}

/// `x` and `x-file`: at most one, at least one when `required`, and the file readable now. A
/// required secret must not be empty; an optional one may be, since a certificate exported with
/// an empty password (`password: ""`, or `${CERT_PASSWORD:-}` unset) is opened with just that.
fn secret_pair(
    inline: Option<&SecretString>,
    file: Option<&Path>,
    path: &KeyPath,
    required: bool,
    out: &mut Vec<Problem>,
) {
    let key = path.last_key().unwrap_or_default();
    match (inline, file) {
        (Some(_), Some(_)) => out.push(Problem::new(
            path,
            format!("give either {key} or {key}-file, not both"),
        )),
        (None, None) if required => out.push(Problem::new(
            path,
            format!("missing; give {key} (e.g. {key}: ${{VAR}}) or {key}-file"),
        )),
        (Some(value), None) if required && is_blank(value) => {
            out.push(Problem::new(path, "is empty"));
        }
        (None, Some(file)) => {
            let file_path = file_key(path, key);
            match read_secret_file(file) {
                Ok(value) if required && is_blank(&value) => out.push(Problem::new(
                    &file_path,
                    format!("{} is empty", file.display()),
                )),
                Ok(_) => {}
                Err(error) => out.push(Problem::new(&file_path, io_message(file, &error.source))),
            }
        }
        _ => {}
    }
}

fn file_key(path: &KeyPath, key: &str) -> KeyPath {
    let mut parent = path.clone();
    parent = parent.parent();
    parent.key(&format!("{key}-file"))
}

fn readable_file(file: &Path, path: &KeyPath, out: &mut Vec<Problem>) {
    if let Err(error) = std::fs::File::open(file) {
        out.push(Problem::new(path, io_message(file, &error)));
    }
}

fn io_message(file: &Path, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => format!("file {} does not exist", file.display()),
        std::io::ErrorKind::PermissionDenied => {
            format!(
                "file {} is not readable (permission denied)",
                file.display()
            )
        }
        _ => format!("cannot read {}: {error}", file.display()),
    }
}

/// Expands a leading `~` to the home directory, as kognic-auth does for credential paths.
pub fn expand_home(path: &Path) -> std::path::PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => path.to_path_buf(),
    }
}
