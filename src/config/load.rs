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
    let mut tree = yaml(text, path)?;
    let mut problems = Vec::new();
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
