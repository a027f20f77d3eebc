//! What differs between the running config and a reloaded one: which tasks to start, stop or
//! restart, whether the session must be rebuilt, and which settings keep their old value until
//! a restart.
//!
//! Why compare the checked trees rather than the typed config: a task's own keys are opaque to
//! this module (the task type parses them), and `${VAR}` values are already substituted in the
//! tree, so a changed variable counts as a changed key.

use std::fmt;

use serde_json::Value;

use super::Config;

/// A config as it was checked, section by section; kept to compare with the next one. Its
/// `Debug` shows no values: they may be secrets.
#[derive(Clone, Default, PartialEq)]
pub struct Tree(Value);

impl Tree {
    pub(super) fn new(tree: Value) -> Self {
        Self(tree)
    }

    fn section(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Each task's block by name.
    fn task(&self, name: &str) -> Option<&Value> {
        let tasks = self.section("tasks")?.as_array()?;
        tasks.iter().find(|task| task["name"] == name)
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tree(..)")
    }
}

/// Settings read once at start: a change is reported and waits for a restart.
pub const FIXED_SECTIONS: [&str; 6] = [
    "server",
    "state",
    "coordination",
    "logging",
    "shutdown",
    "reload",
];

/// What a reload changes.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Tasks only in the new config: started.
    pub added: Vec<String>,
    /// Tasks only in the old config: stopped.
    pub removed: Vec<String>,
    /// Tasks in both whose block (or the `cdf:` block their sinks read) differs: stopped, then
    /// started with the new config.
    pub changed: Vec<String>,
    /// `auth:`, `session:` or CDF's URL differ: new credentials and session for the runs from
    /// now on.
    pub session: bool,
    /// Sections that differ but cannot change while running (see [`FIXED_SECTIONS`]; also
    /// `cdf.extraction-pipeline` and a task's own `extraction-pipeline`, whose reports are set
    /// up at start).
    pub fixed: Vec<&'static str>,
}

impl Changes {
    /// From `old` (running) to `new`.
    pub fn between(old: &Config, new: &Config) -> Self {
        let (before, after) = (&old.tree, &new.tree);
        let differs = |key: &str| before.section(key) != after.section(key);
        let names = |config: &Config| -> Vec<String> {
            config.tasks.iter().map(|task| task.name.clone()).collect()
        };
        let (old_names, new_names) = (names(old), names(new));
        let mut changes = Changes {
            added: new_names
                .iter()
                .filter(|name| !old_names.contains(name))
                .cloned()
                .collect(),
            removed: old_names
                .iter()
                .filter(|name| !new_names.contains(name))
                .cloned()
                .collect(),
            // The default scope of an OAuth `auth:` comes from CDF's URL.
            session: differs("auth") || differs("session") || cdf_url(before) != cdf_url(after),
            ..Changes::default()
        };
        let cdf_changed = differs("cdf");
        changes.changed = new_names
            .iter()
            .filter(|name| old_names.contains(name))
            .filter(|name| cdf_changed || before.task(name) != after.task(name))
            .cloned()
            .collect();
        changes.fixed = FIXED_SECTIONS
            .into_iter()
            .filter(|key| differs(key))
            .collect();
        let pipeline = |tree: &Tree| {
            tree.section("cdf")
                .and_then(|cdf| cdf.get("extraction-pipeline"))
                .cloned()
        };
        if pipeline(before) != pipeline(after) {
            changes.fixed.push("cdf.extraction-pipeline");
        }
        let reported: Vec<(&String, &Option<String>)> = old
            .tasks
            .iter()
            .map(|task| (&task.name, &task.extraction_pipeline))
            .collect();
        let newly_reported = new.tasks.iter().any(|task| {
            task.extraction_pipeline.is_some()
                && !reported.contains(&(&task.name, &task.extraction_pipeline))
        });
        if newly_reported {
            changes.fixed.push("tasks[].extraction-pipeline");
        }
        changes
    }
}

/// CDF's `base-url` and `cluster`, as written.
fn cdf_url(tree: &Tree) -> [Option<&serde_json::Value>; 2] {
    let cdf = tree.section("cdf");
    ["base-url", "cluster"].map(|key| cdf.and_then(|cdf| cdf.get(key)))
}

impl fmt::Display for Changes {
    /// `added [a], removed [b], restarted [c], new session`: the log line of an applied reload.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (what, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("restarted", &self.changed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what} [{}]", names.join(", ")));
            }
        }
        if self.session {
            parts.push("new credentials and session".into());
        }
        if parts.is_empty() {
            parts.push("no task changed".into());
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn config(tree: Value) -> Config {
        let mut config: Config = serde_json::from_value(tree.clone()).unwrap();
        config.tree = Tree::new(tree);
        config
    }

    fn task(name: &str, url: &str) -> Value {
        json!({"name": name, "type": "http-poll", "schedule": {"interval": "1m"}, "source": {"url": url}})
    }

    #[test]
    fn tasks_are_added_removed_changed_or_left_alone() {
        let old = config(
            json!({"auth": {"type": "none"}, "tasks": [task("a", "/a"), task("b", "/b"), task("c", "/c")]}),
        );
        let new = config(
            json!({"auth": {"type": "none"}, "tasks": [task("a", "/a"), task("c", "/c2"), task("d", "/d")]}),
        );
        let changes = Changes::between(&old, &new);
        assert_eq!(changes.added, ["d"]);
        assert_eq!(changes.removed, ["b"]);
        assert_eq!(changes.changed, ["c"]);
        assert!(!changes.session && changes.fixed.is_empty());
        assert_eq!(changes.to_string(), "added [d]; removed [b]; restarted [c]");
        assert_eq!(Changes::between(&old, &old), Changes::default());
    }

    #[test]
    fn cdf_restarts_every_task_and_settings_read_at_start_are_named() {
        let cdf = |project: &str, pipeline: &str| json!({"project": project, "base-url": "https://cdf.test", "extraction-pipeline": {"external-id": pipeline}});
        let old = config(
            json!({"auth": {"type": "none"}, "cdf": cdf("p", "x"), "tasks": [task("a", "/a")]}),
        );
        let new = config(json!({
            "auth": {"type": "token", "token": "t"}, "cdf": cdf("q", "y"),
            "state": {"path": "/elsewhere.json"}, "tasks": [task("a", "/a")]
        }));
        let changes = Changes::between(&old, &new);
        assert_eq!(changes.changed, ["a"]);
        assert!(changes.session);
        assert_eq!(changes.fixed, ["state", "cdf.extraction-pipeline"]);
        assert!(
            !format!("{:?}", new.tree).contains("/elsewhere"),
            "Debug shows values"
        );
    }

    #[test]
    fn another_cdf_cluster_needs_new_credentials_and_new_pipelines_a_restart() {
        let at = |url: &str| json!({"project": "p", "base-url": url});
        let old = config(
            json!({"auth": {"type": "none"}, "cdf": at("https://a.test"), "tasks": [task("a", "/a")]}),
        );
        let mut reported = task("b", "/b");
        reported["extraction-pipeline"] = json!("pipe-b");
        let new = config(json!({
            "auth": {"type": "none"}, "cdf": at("https://b.test"), "tasks": [task("a", "/a"), reported]
        }));
        let changes = Changes::between(&old, &new);
        assert!(changes.session, "the default scope follows the cluster");
        assert_eq!(changes.fixed, ["tasks[].extraction-pipeline"]);
        let same = Changes::between(&new, &new);
        assert!(!same.session && same.fixed.is_empty());
    }
}
