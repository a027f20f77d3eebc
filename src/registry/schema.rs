//! The JSON Schema of the whole config file: the config's own sections, with `auth:`, every
//! task and every `sink:` described by the registered components, one `oneOf` branch per `type`.
//! `tapline schema` prints it for editors, and `validate` checks every file against it, so a
//! misspelt key of any component is reported with its path.

use serde_json::{json, Map, Value};

use super::Registry;

/// The schema of a config file that may use the components in `registry`.
pub(super) fn assemble(registry: &Registry) -> Value {
    let mut root = crate::config::base_schema();
    let mut defs = match root.get_mut("$defs").map(Value::take) {
        Some(Value::Object(defs)) => defs,
        _ => Map::new(),
    };
    let task = defs.remove("TaskConfig").unwrap_or_default();
    defs.remove("ComponentConfig");

    let batch_size = json!({
        "batch-size": {
            "description": "Records per batch delivered to the sink (default 500).",
            "type": "integer", "format": "uint", "minimum": 1
        }
    });
    let sinks = registry
        .sinks
        .schemas()
        .map(|(name, schema)| branch("sink", name, schema, &batch_size, &[], &mut defs))
        .collect();
    defs.insert("Sink".into(), union(sinks, "sink type"));

    let providers = registry
        .providers
        .schemas()
        .map(|(name, schema)| branch("auth", name, schema, &json!({}), &[], &mut defs))
        .collect();
    root["properties"]["auth"] = union(providers, "type");

    let common = |source: bool| {
        let mut properties = Map::new();
        let record_keys: &[&str] = match source {
            true => &["transform", "on-error", "dead-letter", "buffer"],
            false => &[],
        };
        for key in ["name", "schedule", "timeout", "extraction-pipeline"]
            .iter()
            .chain(record_keys)
        {
            properties.insert(key.to_string(), task["properties"][key].clone());
        }
        if source {
            properties.insert("sink".into(), json!({"$ref": "#/$defs/Sink"}));
        }
        Value::Object(properties)
    };
    let tasks = registry
        .tasks
        .schemas()
        .map(|(name, schema)| {
            let source = registry.sources.contains(name);
            let required: &[&str] = if source {
                &["name", "schedule", "sink"]
            } else {
                &["name", "schedule"]
            };
            branch("task", name, schema, &common(source), required, &mut defs)
        })
        .collect();
    defs.insert("Task".into(), union(tasks, "task type"));
    root["properties"]["tasks"]["items"] = json!({"$ref": "#/$defs/Task"});
    root["$defs"] = Value::Object(defs);
    root
}

/// A choice by `type`; `noun` names the choice in messages ("unknown task type").
fn union(branches: Vec<Value>, noun: &str) -> Value {
    json!({"oneOf": branches, "x-tapline-type-noun": noun})
}

/// One component's branch: `type: <name>`, the `common` keys of its kind, and the keys of its
/// config struct, nothing else. The struct's own `$defs` move into `defs` under a prefix, so two
/// components may both have a type named `Source`.
fn branch(
    kind: &str,
    name: &str,
    schema: &Value,
    common: &Value,
    common_required: &[&str],
    defs: &mut Map<String, Value>,
) -> Value {
    let prefix = format!("{kind}.{name}.");
    let mut schema = schema.clone();
    prefix_refs(&mut schema, &prefix);
    if let Some(Value::Object(own)) = schema.as_object_mut().and_then(|s| s.remove("$defs")) {
        defs.extend(
            own.into_iter()
                .map(|(key, def)| (format!("{prefix}{key}"), def)),
        );
    }
    let mut properties = Map::new();
    properties.insert("type".into(), json!({"const": name}));
    if let Value::Object(common) = common {
        properties.extend(common.clone());
    }
    if let Some(Value::Object(own)) = schema.get("properties") {
        properties.extend(own.clone());
    }
    let mut required: Vec<Value> = std::iter::once("type")
        .chain(common_required.iter().copied())
        .map(Value::from)
        .collect();
    if let Some(Value::Array(own)) = schema.get("required") {
        required.extend(own.iter().cloned());
    }
    let mut out = json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    });
    if let Some(description) = schema.get("description") {
        out["description"] = description.clone();
    }
    out
}

/// Points every `#/$defs/X` reference of `schema` at `#/$defs/<prefix>X`.
fn prefix_refs(schema: &mut Value, prefix: &str) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => {
                        if let Some(name) = target.strip_prefix("#/$defs/") {
                            *target = format!("#/$defs/{prefix}{name}");
                        }
                    }
                    (_, value) => prefix_refs(value, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| prefix_refs(item, prefix)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_move_with_their_definitions() {
        let mut defs = Map::new();
        let schema = json!({
            "type": "object",
            "properties": {"source": {"$ref": "#/$defs/Source"}},
            "required": ["source"],
            "$defs": {"Source": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Next"}}}, "Next": {"type": "string"}}
        });
        let out = branch("task", "poll", &schema, &json!({}), &[], &mut defs);
        assert_eq!(
            out["properties"]["source"]["$ref"],
            "#/$defs/task.poll.Source"
        );
        assert_eq!(
            defs["task.poll.Source"]["properties"]["next"]["$ref"],
            "#/$defs/task.poll.Next"
        );
        assert_eq!(out["required"], json!(["type", "source"]));
        assert_eq!(out["additionalProperties"], json!(false));
    }
}
