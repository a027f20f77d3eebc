//! The rules a JSON Schema cannot express in the config's own sections: URLs, readable files,
//! cron expressions, unique task names; and, through the [`Catalog`], every component's own
//! rules (each component checks its block when it is built).

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::buffer::{BufferConfig, BufferKind};
use super::cdf::CdfConfig;
use super::check;
use super::component::{BuildError, Catalog, ComponentConfig, Kind};
use super::coordination::{self, CoordinationConfig};
use super::error::Problem;
use super::load::LOCAL_KEYS;
use super::path::KeyPath;
use super::runtime::StateConfig;
use super::sections::Sections;
use super::session::SessionConfig;
use super::task::{check_task_name, OnErrorMode, ScheduleConfig, ScheduleName, TaskConfig};
use crate::transform::Program;

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
    let cdf = section::<CdfConfig>(tree, "cdf", &sound);
    if let Some(cdf) = &cdf {
        found(cdf.check(), &root.key("cdf"), &mut out);
    }
    if cdf.as_ref().is_some_and(|cdf| cdf.remote_config) {
        remote_only(tree, &mut out);
    }
    let sections = Sections { cdf };
    if let Some(block) = section::<ComponentConfig>(tree, "auth", &sound) {
        out.extend(catalog.check(Kind::Provider, &block, &sections, "auth"));
    }
    if let Some(config) = section::<SessionConfig>(tree, "session", &sound) {
        session(&config, &mut out);
    }
    let coordination = section::<CoordinationConfig>(tree, "coordination", &sound);
    let state = section::<StateConfig>(tree, "state", &sound);
    if let (Some(coordination), Some(state)) = (
        coordination.or_else(|| tree.get("coordination").is_none().then(Default::default)),
        state.or_else(|| tree.get("state").is_none().then(Default::default)),
    ) {
        for (at, error) in coordination::check(&coordination, &state) {
            found(Err(error), &root.key(&at), &mut out);
        }
    }
    let items = tree
        .get("tasks")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    task_names(items, &mut out);
    for (index, item) in items.iter().enumerate() {
        let path = root.key("tasks").index(index);
        let checks = Checks {
            unsound: &unsound,
            catalog,
            sections: &sections,
            cdf_written: tree.get("cdf").is_some(),
            coordinated: tree
                .pointer("/coordination/type")
                .and_then(Value::as_str)
                .is_some_and(|kind| kind != "none"),
        };
        task(item, &path, &checks, &mut out);
    }
    out
}

/// What the rules of a task item are checked with.
struct Checks<'a> {
    /// Whether a shape problem lies within a path (except within the second).
    unsound: &'a dyn Fn(&KeyPath, Option<&KeyPath>) -> bool,
    catalog: &'a dyn Catalog,
    sections: &'a Sections,
    /// Whether the file has a `cdf:` block at all (sound or not).
    cdf_written: bool,
    /// Whether replicas share the tasks (`coordination.type` other than `none`).
    coordinated: bool,
}

/// The rules of one task item, each checked where the shape it needs is sound: the schedule, the
/// task type's own keys (built by the catalog), the sink, and the extraction pipeline.
fn task(item: &Value, path: &KeyPath, checks: &Checks, out: &mut Vec<Problem>) {
    let (unsound, catalog) = (checks.unsound, checks.catalog);
    let schedule_path = path.key("schedule");
    let parsed = item
        .get("schedule")
        .filter(|_| !unsound(&schedule_path, None))
        .and_then(|value| serde_json::from_value::<ScheduleConfig>(value.clone()).ok());
    if let Some(parsed) = parsed {
        schedule(&parsed, &schedule_path, out);
        if checks.coordinated && parsed == ScheduleConfig::Named(ScheduleName::Startup) {
            out.push(Problem::new(&schedule_path, "a startup task runs once in each process before the others, which replicas sharing the tasks cannot do (no replica holds its lease yet); give it an interval or cron schedule"));
        }
    }
    let transform_path = path.key("transform");
    let program = item.get("transform").and_then(Value::as_str);
    if let Some(program) = program.filter(|_| !unsound(&transform_path, None)) {
        if let Err(error) = Program::compile(program) {
            out.push(Problem::new(&transform_path, error.to_string()));
        }
    }
    let sink_path = path.key("sink");
    if unsound(path, Some(&sink_path)) {
        return;
    }
    let Ok(task) = serde_json::from_value::<TaskConfig>(item.clone()) else {
        return;
    };
    records(&task, path, out);
    let buffered = task.buffer.as_ref().map(|buffer| buffer.kind) == Some(BufferKind::Disk);
    if checks.coordinated && buffered {
        out.push(Problem::new(&path.key("buffer").key("type"), "a disk buffer belongs to one replica: its records would go on being delivered there after the task moved, out of order with the new holder's and without the task's lease; use no buffer with coordination"));
    }
    let sections = checks.sections;
    let at = path.to_string();
    out.extend(catalog.check(Kind::Task, &task.component(), sections, &at));
    if let Some(sink) = task.sink.as_ref().filter(|_| !unsound(&sink_path, None)) {
        out.extend(catalog.check(Kind::Sink, sink, sections, &sink_path.to_string()));
    }
    if task.extraction_pipeline.is_some() && !checks.cdf_written {
        out.push(Problem::new(
            &path.key("extraction-pipeline"),
            "reports go to Cognite Data Fusion; add a top-level cdf: block",
        ));
    }
}

/// `on-error` and `dead-letter` go together; a zero `timeout` would fail every run; a buffer
/// needs room.
fn records(task: &TaskConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    match (task.on_error, &task.dead_letter) {
        (OnErrorMode::DeadLetter, None) => out.push(Problem::new(
            &path.key("dead-letter"),
            "is required with on-error: dead-letter; name the file failed records go to",
        )),
        (OnErrorMode::DeadLetter, Some(file)) if file.as_os_str().is_empty() => {
            out.push(Problem::new(&path.key("dead-letter"), "must not be empty"))
        }
        (mode, Some(_)) if mode != OnErrorMode::DeadLetter => out.push(Problem::new(
            &path.key("dead-letter"),
            "is only used with on-error: dead-letter; set that, or remove this key",
        )),
        _ => {}
    }
    if task.timeout.is_some_and(|t| t.get().is_zero()) {
        out.push(Problem::new(&path.key("timeout"), "must be longer than 0s"));
    }
    if let Some(buffer) = &task.buffer {
        self::buffer(buffer, &path.key("buffer"), out);
    }
}

/// A buffer needs room for a record, and a directory name if it is given one.
fn buffer(buffer: &BufferConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    if buffer.max_size.bytes() < MIN_BUFFER_SIZE {
        out.push(Problem::new(
            &path.key("max-size"),
            "must be at least 64KiB; it bounds the records waiting on disk",
        ));
    }
    if buffer
        .path
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        out.push(Problem::new(&path.key("path"), "must not be empty"));
    }
}

/// The smallest `buffer.max-size`: below it, few records would fit.
const MIN_BUFFER_SIZE: u64 = 64 << 10;

/// Deserializes one top-level section when no shape problem lies within it.
/// With `cdf.remote-config`, the local file holds only what the remote config cannot: each
/// other top-level key is a problem.
fn remote_only(tree: &Value, out: &mut Vec<Problem>) {
    let keys = tree.as_object().into_iter().flat_map(|map| map.keys());
    for key in keys.filter(|key| !LOCAL_KEYS.contains(&key.as_str())) {
        out.push(Problem::new(
            &KeyPath::root().key(key),
            "with cdf.remote-config this comes from the extraction pipeline's config; move it there",
        ));
    }
}

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
        found(check::readable_file(bundle, "ca-bundle"), &path, out);
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

fn schedule(schedule: &ScheduleConfig, path: &KeyPath, out: &mut Vec<Problem>) {
    match schedule {
        ScheduleConfig::Interval(every) if every.interval.get().is_zero() => {
            out.push(Problem::new(
                &path.key("interval"),
                "must be longer than 0s",
            ));
        }
        ScheduleConfig::Cron(cron) => {
            if let Err(message) = cron.check(chrono::Utc::now()) {
                out.push(Problem::new(&path.key("cron"), message));
            }
        }
        _ => {}
    }
}

/// Adds the problems a shared check found in the section at `at` (its keys are relative).
fn found(checked: Result<(), BuildError>, at: &KeyPath, out: &mut Vec<Problem>) {
    if let Err(error) = checked {
        out.extend(error.locate(&at.to_string()));
    }
}
