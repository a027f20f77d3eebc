//! Checks a config tree against the JSON Schema derived from the config types and reports
//! *every* mismatch with its key path.
//!
//! Why not let serde report errors? serde stops at the first one, so a user would fix one key per
//! run. This walker covers the part of JSON Schema that `schemars` emits for our types (objects,
//! lists, scalars, `$ref`, `oneOf`/`anyOf`, `const`, the `duration` format), and it also turns
//! text into the number or boolean a key wants (`TAPLINE_*` overrides are always text). A YAML
//! number where text is wanted is an error instead: YAML has already changed it (see [`coerce`]).
//!
//! Messages never quote the value of a plain string key, so a secret in the wrong place is not
//! echoed back; they quote only enum choices and durations, which are never secret.

use serde_json::{Map, Value};

use super::duration::HumanDuration;
use super::error::Problem;
use super::path::KeyPath;

/// Checks `instance` against `schema` (a root schema with `$defs`), normalising scalars in place.
pub(crate) fn check(schema: &Value, instance: &mut Value) -> Vec<Problem> {
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut problems = Vec::new();
    Walker { defs }.node(schema, instance, &KeyPath::root(), &mut problems);
    problems
}

struct Walker<'a> {
    defs: &'a Map<String, Value>,
}

impl<'a> Walker<'a> {
    /// Follows `$ref` to the definition it names.
    fn resolve(&self, schema: &'a Value) -> &'a Value {
        let target = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|reference| reference.strip_prefix("#/$defs/"))
            .and_then(|name| self.defs.get(name));
        match target {
            Some(target) => self.resolve(target),
            None => schema,
        }
    }

    fn node(&self, schema: &'a Value, value: &mut Value, path: &KeyPath, out: &mut Vec<Problem>) {
        let schema = self.resolve(schema);
        if let Some(branches) = alternatives(schema) {
            let noun = schema
                .get("x-tapline-type-noun")
                .and_then(Value::as_str)
                .unwrap_or("type");
            return self.alternatives(branches, noun, value, path, out);
        }
        if let Some(expected) = schema.get("const") {
            if value != expected {
                out.push(Problem::new(path, format!("expected {expected}")));
            }
            return;
        }
        let types = allowed_types(schema);
        if !types.is_empty() {
            coerce(value, &types, is_duration(schema));
            if !types.contains(&json_type(value)) {
                out.push(Problem::new(path, mismatch(&types, value)));
                return;
            }
        }
        match value {
            Value::Object(map) => self.object(schema, map, path, out),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (index, item) in items.iter_mut().enumerate() {
                        self.node(item_schema, item, &path.index(index), out);
                    }
                }
            }
            Value::String(text) if is_duration(schema) => {
                if let Err(error) = text.parse::<HumanDuration>() {
                    out.push(Problem::new(path, error.to_string()));
                }
            }
            Value::Number(number) => check_bounds(schema, number, path, out),
            _ => {}
        }
    }

    fn object(
        &self,
        schema: &'a Value,
        map: &mut Map<String, Value>,
        path: &KeyPath,
        out: &mut Vec<Problem>,
    ) {
        let empty = Map::new();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (key, child) in map.iter_mut() {
            let child_path = path.key(key);
            match (properties.get(key), schema.get("additionalProperties")) {
                (Some(child_schema), _) => self.node(child_schema, child, &child_path, out),
                (None, Some(Value::Bool(false))) => {
                    out.push(Problem::new(&child_path, unknown_key(key, properties)));
                }
                (None, Some(extra @ Value::Object(_))) => self.node(extra, child, &child_path, out),
                (None, _) => {}
            }
        }
        let required = schema.get("required").and_then(Value::as_array);
        for key in required.into_iter().flatten().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                out.push(Problem::new(&path.key(key), "missing"));
            }
        }
    }

    /// `oneOf` / `anyOf`: a tagged union picks its branch by `type`, an enum of constants lists
    /// the choices, anything else takes the first branch that fits, or reports the closest one.
    fn alternatives(
        &self,
        branches: &'a [Value],
        noun: &str,
        value: &mut Value,
        path: &KeyPath,
        out: &mut Vec<Problem>,
    ) {
        let branches: Vec<&Value> = branches.iter().map(|b| self.resolve(b)).collect();
        if let Some(tags) = tags(&branches) {
            return self.tagged(&branches, &tags, noun, value, path, out);
        }
        if let Some(choices) = constants(&branches) {
            if !choices.iter().any(|choice| value == *choice) {
                let list: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                out.push(Problem::new(
                    path,
                    format!(
                        "expected one of {}, found {}",
                        list.join(", "),
                        short(value)
                    ),
                ));
            }
            return;
        }
        let mut best: Option<(Vec<Problem>, Value, bool)> = None;
        for branch in branches {
            let mut attempt = value.clone();
            let mut problems = Vec::new();
            self.node(branch, &mut attempt, path, &mut problems);
            if problems.is_empty() {
                *value = attempt;
                return;
            }
            let same_type = branch_accepts_type(self, branch, json_type(value));
            let better = match &best {
                None => true,
                Some((best_problems, _, best_same_type)) => {
                    (same_type, std::cmp::Reverse(problems.len()))
                        > (*best_same_type, std::cmp::Reverse(best_problems.len()))
                }
            };
            if better {
                best = Some((problems, attempt, same_type));
            }
        }
        if let Some((problems, _, _)) = best {
            out.extend(problems);
        }
    }

    fn tagged(
        &self,
        branches: &[&'a Value],
        tags: &[&str],
        noun: &str,
        value: &mut Value,
        path: &KeyPath,
        out: &mut Vec<Problem>,
    ) {
        let known = tags.join(", ");
        let Value::Object(map) = value else {
            let message = format!(
                "expected a mapping with a `type` key ({known}), found {}",
                describe(json_type(value))
            );
            return out.push(Problem::new(path, message));
        };
        let type_path = path.key("type");
        let Some(tag) = map.get("type").and_then(Value::as_str).map(str::to_owned) else {
            return out.push(Problem::new(
                &type_path,
                format!("missing; one of: {known}"),
            ));
        };
        match tags.iter().position(|candidate| *candidate == tag) {
            Some(index) => self.node(branches[index], value, path, out),
            None => out.push(Problem::new(
                &type_path,
                format!("unknown {noun} {tag:?}; known types: {known}"),
            )),
        }
    }
}

fn alternatives(schema: &Value) -> Option<&[Value]> {
    schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
}

/// The `type` constants of a tagged union, if every branch has one.
fn tags<'v>(branches: &[&'v Value]) -> Option<Vec<&'v str>> {
    branches
        .iter()
        .map(|branch| branch.pointer("/properties/type/const")?.as_str())
        .collect()
}

/// The choices of an enum written as `oneOf` constants.
fn constants<'v>(branches: &[&'v Value]) -> Option<Vec<&'v Value>> {
    branches.iter().map(|branch| branch.get("const")).collect()
}

fn branch_accepts_type(walker: &Walker<'_>, branch: &Value, found: &str) -> bool {
    let branch = walker.resolve(branch);
    if branch.get("const").is_some() {
        return found == "string";
    }
    if let Some(inner) = alternatives(branch) {
        return inner.iter().any(|b| branch_accepts_type(walker, b, found));
    }
    allowed_types(branch).contains(&found)
}

fn allowed_types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn describe(json_type: &str) -> &'static str {
    match json_type {
        "null" => "nothing",
        "boolean" => "true or false",
        "integer" => "a whole number",
        "number" => "a number",
        "string" => "a string",
        "array" => "a list",
        _ => "a mapping",
    }
}

/// Turns the environment's text into the number or `true`/`false` a key wants.
///
/// The other way round is refused: a YAML number or boolean where a string is wanted has already
/// been changed by YAML (`000042` is 42, `1.50` is 1.5, `0x10` is 16, `1e5` is 100000.0), so
/// making it a string again would send a client id or secret other than the one written. Only a
/// duration takes one, so that `interval: 30` gets the duration message that names the unit.
fn coerce(value: &mut Value, wanted: &[&str], duration: bool) {
    let found = json_type(value);
    if wanted.contains(&found) || (found == "integer" && wanted.contains(&"number")) {
        return;
    }
    let replacement = match value {
        Value::Number(_) if duration => Some(Value::String(value.to_string())),
        Value::String(text) if wanted.contains(&"integer") => {
            text.trim().parse::<i64>().ok().map(Value::from)
        }
        Value::String(text) if wanted.contains(&"number") => {
            text.trim().parse::<f64>().ok().map(Value::from)
        }
        Value::String(text) if wanted.contains(&"boolean") => {
            text.trim().parse::<bool>().ok().map(Value::from)
        }
        _ => None,
    };
    if let Some(replacement) = replacement {
        *value = replacement;
    }
}

/// "expected a string, found a number", with the fix when YAML took quoted text for a number.
/// The value itself is never quoted: it may be a secret.
fn mismatch(wanted: &[&str], value: &Value) -> String {
    let names: Vec<_> = wanted.iter().map(|t| describe(t)).collect();
    let mut message = format!(
        "expected {}, found {}",
        names.join(" or "),
        describe(json_type(value))
    );
    if wanted.contains(&"string") && matches!(value, Value::Number(_) | Value::Bool(_)) {
        message.push_str("; quote it (\"...\") so that YAML keeps it exactly as written");
    }
    message
}

fn is_duration(schema: &Value) -> bool {
    schema.get("format").and_then(Value::as_str) == Some("duration")
}

fn check_bounds(
    schema: &Value,
    number: &serde_json::Number,
    path: &KeyPath,
    out: &mut Vec<Problem>,
) {
    let Some(found) = number.as_f64() else { return };
    if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64) {
        if found < minimum {
            out.push(Problem::new(path, format!("must be at least {minimum}")));
        }
    }
    if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64) {
        if found > maximum {
            out.push(Problem::new(path, format!("must be at most {maximum}")));
        }
    }
}

/// Names an unknown key and suggests the closest known one.
fn unknown_key(key: &str, properties: &Map<String, Value>) -> String {
    let closest = properties
        .keys()
        .map(|known| (strsim::levenshtein(key, known), known))
        .filter(|(distance, known)| *distance <= 3.max(known.len() / 3))
        .min();
    match closest {
        Some((_, known)) => format!("unknown key {key:?}; did you mean {known:?}?"),
        None => {
            let known: Vec<&str> = properties.keys().map(String::as_str).collect();
            format!("unknown key {key:?}; known keys: {}", known.join(", "))
        }
    }
}

/// A value for an enum mismatch message: a short string is quoted, anything else is named.
fn short(value: &Value) -> String {
    match value {
        Value::String(text) if text.len() <= 40 => format!("{text:?}"),
        other => describe(json_type(other)).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The keys a `file` task needs besides its name and schedule.
    fn file_task(mut task: Value) -> Value {
        task["type"] = json!("file");
        task["source"] = json!({"path": "in/*.jsonl"});
        task["sink"] = json!({"type": "stdout"});
        task
    }

    fn problems(instance: Value) -> Vec<String> {
        let mut instance = instance;
        check(&crate::Registry::builtin().schema(), &mut instance)
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn reports_every_problem_in_one_pass() {
        let found = problems(json!({
            "auth": {"type": "client-secret", "token-url": "https://idp/token", "clent-id": "x"},
            "tasks": [
                file_task(json!({"name": "a", "schedule": {"interval": "30s"}})),
                file_task(json!({"name": "b", "schedule": {"interval": "5 minutes"}})),
            ],
            "session": {"max-in-flight": "many"},
        }));
        assert!(
            found.contains(
                &"auth.clent-id: unknown key \"clent-id\"; did you mean \"client-id\"?".to_string()
            ),
            "{found:?}"
        );
        assert!(
            found.contains(&"auth.client-id: missing".to_string()),
            "{found:?}"
        );
        assert!(
            found.iter().any(
                |p| p.starts_with("tasks[1].schedule.interval: invalid duration \"5 minutes\"")
            ),
            "{found:?}"
        );
        assert!(
            found.contains(
                &"session.max-in-flight: expected a whole number, found a string".to_string()
            ),
            "{found:?}"
        );
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn unknown_auth_type_lists_the_known_ones() {
        let found = problems(json!({"auth": {"type": "magic"}}));
        assert_eq!(found, ["auth.type: unknown type \"magic\"; known types: client-secret, certificate, kognic, token, device-code, browser, workload-identity, none"]);
    }

    #[test]
    fn text_becomes_the_number_or_boolean_a_key_wants() {
        let mut instance = json!({"auth": {"type": "none"}, "session": {"max-in-flight": "8"}});
        assert!(check(&crate::Registry::builtin().schema(), &mut instance).is_empty());
        assert_eq!(instance["session"]["max-in-flight"], json!(8));
    }

    /// YAML reads `000042` as 42 and `1.50` as 1.5: turning them back into text would send
    /// another client id or secret than the one written.
    #[test]
    fn a_number_or_boolean_where_text_is_wanted_must_be_quoted() {
        for (key, value) in [
            ("client-id", json!(420042)),
            ("client-secret", json!(1.5)),
            ("client-secret", json!(false)),
        ] {
            let mut auth = json!({"type": "client-secret", "token-url": "https://i/t", "client-id": "c", "client-secret": "s"});
            auth[key] = value.clone();
            let found = problems(json!({ "auth": auth }));
            assert_eq!(found.len(), 1, "{found:?}");
            assert!(
                found[0].starts_with(&format!("auth.{key}: expected a string")),
                "{found:?}"
            );
            assert!(found[0].contains("quote it"), "{found:?}");
            if value.is_number() {
                assert!(!found[0].contains(&value.to_string()), "{found:?}");
            }
        }
        let found =
            problems(json!({"auth": {"type": "none"}, "session": {"headers": {"x-version": 2}}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "session.headers.x-version: expected a string, found a whole number; quote it"
            ),
            "{found:?}"
        );
    }

    #[test]
    fn a_bare_number_where_a_duration_is_wanted_names_the_unit() {
        let found = problems(json!({"auth": {"type": "none"}, "session": {"timeout": 30}}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .starts_with("session.timeout: invalid duration \"30\": use a number and a unit"),
            "{found:?}"
        );
    }

    #[test]
    fn schedule_names_and_shapes() {
        let task = |schedule| file_task(json!({"name": "a", "schedule": schedule}));
        assert!(
            problems(json!({"auth": {"type": "none"}, "tasks": [task("continuous")]})).is_empty()
        );
        let found = problems(json!({"auth": {"type": "none"}, "tasks": [task("continous")]}));
        assert_eq!(found, ["tasks[0].schedule: expected one of \"continuous\", \"startup\", found \"continous\""]);
    }

    #[test]
    fn wrong_type_of_a_secret_does_not_echo_it() {
        let found = problems(json!({"auth": {"type": "token", "token": ["hunter2"]}}));
        assert_eq!(
            found,
            ["auth.token: expected a string or nothing, found a list"]
        );
    }
}
