//! Reading a config file end to end: YAML, substitution, overrides, shape, rules, lines.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::component::Catalog;
use super::env::{apply_overrides, substitute};
use super::error::{Error, Problem};
use super::locate::Lines;
use super::path::KeyPath;
use super::{rules, shape, Config, Tree};

/// The config file to use: `-c/--config`, else `$TAPLINE_CONFIG`, else `./tapline.yaml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TAPLINE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("tapline.yaml"))
}

/// Loads and checks the config at `path`, reporting every problem at once; `catalog` knows the
/// registered components (`tapline::Registry`).
pub fn load(path: &Path, catalog: &dyn Catalog) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path, catalog)
}

/// Checks config text; `path` is only used in messages.
pub(crate) fn parse(text: &str, path: &Path, catalog: &dyn Catalog) -> Result<Config, Error> {
    check(yaml(text, path)?, Vec::new(), text, path, catalog)
}

/// The top-level keys the local file keeps with `cdf.remote-config`; the pipeline's config
/// gives the rest.
pub const LOCAL_KEYS: [&str; 5] = ["auth", "cdf", "server", "logging", "reload"];

/// Checks the config made of an extraction pipeline's config (`remote_text`, named `label` in
/// messages) and the [`LOCAL_KEYS`] of the local file (`local_text` at `local_path`), as
/// [`load`] checks a file. Problems in the remote part have the remote text's lines.
pub fn parse_remote(
    local_text: &str,
    local_path: &Path,
    remote_text: &str,
    label: &Path,
    catalog: &dyn Catalog,
) -> Result<Config, Error> {
    let local = yaml(local_text, local_path)?;
    let mut tree = yaml(remote_text, label)?;
    let mut problems = Vec::new();
    let Value::Object(remote) = &mut tree else {
        let problem = Problem::new(&KeyPath::root(), "must be a mapping of config keys");
        return Err(Error::Invalid {
            path: label.to_path_buf(),
            problems: vec![problem],
        });
    };
    for key in LOCAL_KEYS {
        if remote.contains_key(key) {
            let message = "comes from the local config file with cdf.remote-config";
            problems.push(Problem::new(&KeyPath::root().key(key), message));
        }
        if let Some(value) = local.get(key) {
            remote.insert(key.to_string(), value.clone());
        }
    }
    if let Some(Value::Object(cdf)) = remote.get_mut("cdf") {
        for key in super::cdf::REMOTE_CONFIG_KEYS {
            cdf.remove(key);
        }
    }
    check(tree, problems, remote_text, label, catalog)
}

/// Substitution, overrides, shape and rules on a parsed `tree` (from `text`, whose lines the
/// problems get), after the `problems` already found.
fn check(
    mut tree: Value,
    mut problems: Vec<Problem>,
    text: &str,
    path: &Path,
    catalog: &dyn Catalog,
) -> Result<Config, Error> {
    let invalid = |mut problems: Vec<Problem>| {
        let lines = Lines::of(text);
        for problem in &mut problems {
            problem.line = lines.find(&problem.path);
        }
        problems.sort_by_key(|problem| problem.line.unwrap_or(usize::MAX));
        Error::Invalid {
            path: path.to_path_buf(),
            problems,
        }
    };
    substitute(
        &mut tree,
        &KeyPath::root(),
        &|name| std::env::var(name).ok(),
        &mut problems,
    );
    let mut tree = match apply_overrides(tree) {
        Ok(tree) => tree,
        Err(problem) => {
            problems.push(problem);
            return Err(invalid(problems));
        }
    };
    problems.extend(shape::check(&catalog.schema(), &mut tree));
    problems.extend(rules::check(&tree, &problems, catalog));
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let mut config: Config = serde_json::from_value(tree.clone()).map_err(|error| {
        // The shape check passed, so this is a rule serde knows and the schema does not.
        invalid(vec![Problem::new(
            &KeyPath::root(),
            super::without_values(&error.to_string()),
        )])
    })?;
    config.tree = Tree::new(tree);
    Ok(config)
}

/// Parses the YAML into a JSON tree; an empty document and a syntax error are reported as such.
fn yaml(text: &str, path: &Path) -> Result<Value, Error> {
    if text.trim().is_empty() {
        return Err(Error::Empty {
            path: path.to_path_buf(),
        });
    }
    let tree: Value = serde_yaml::from_str(text).map_err(|error| Error::Syntax {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    match tree {
        Value::Null => Err(Error::Empty {
            path: path.to_path_buf(),
        }),
        tree => Ok(tree),
    }
}
