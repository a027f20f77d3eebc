//! How the environment gets into the config: `${VAR}` inside YAML strings, and `TAPLINE_*`
//! variables that override keys.
//!
//! An unset `${VAR}` without a default is an error that names the variable and the key. Leaving
//! the text in place (as some extractor frameworks do) or turning it into an empty string (as
//! others do) both make a misconfigured deployment look configured.

use figment::providers::{Env, Serialized};
use figment::Figment;
use serde_json::Value;

use super::error::Problem;
use super::path::KeyPath;

/// Prefix of the variables that override config keys.
pub const OVERRIDE_PREFIX: &str = "TAPLINE_";

/// Variables with the prefix that are not overrides.
const NOT_OVERRIDES: &[&str] = &["CONFIG"];

/// Replaces `${VAR}` and `${VAR:-default}` in every string of the tree; `$${` is a literal `${`.
pub(crate) fn substitute(
    value: &mut Value,
    path: &KeyPath,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Vec<Problem>,
) {
    match value {
        Value::String(text) => match expand(text, lookup) {
            Ok(expanded) => *text = expanded,
            Err(errors) => out.extend(errors.into_iter().map(|e| Problem::new(path, e))),
        },
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                substitute(item, &path.index(index), lookup, out);
            }
        }
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                substitute(child, &path.key(key), lookup, out);
            }
        }
        _ => {}
    }
}

/// Expands one string, collecting every unset variable rather than stopping at the first.
fn expand(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut output = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        output.push_str(&rest[..start]);
        let tail = &rest[start..];
        if let Some(after) = tail.strip_prefix("$${") {
            output.push_str("${");
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                errors.push("`${` without a closing `}`; write `$${` for a literal `${`".into());
                return Err(errors);
            };
            let (name, default) = match body[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&body[..end], None),
            };
            if !is_variable_name(name) {
                errors.push(format!("`${{{name}}}` is not a valid variable name"));
            } else {
                match (lookup(name), default) {
                    (Some(found), _) => output.push_str(&found),
                    (None, Some(default)) => output.push_str(default),
                    (None, None) => errors.push(format!(
                        "${{{name}}} is not set; export {name}, or give a default with ${{{name}:-value}}"
                    )),
                }
            }
            rest = &body[end + 1..];
        } else {
            output.push('$');
            rest = &tail[1..];
        }
    }
    output.push_str(rest);
    if errors.is_empty() {
        Ok(output)
    } else {
        Err(errors)
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Merges `TAPLINE_*` variables over the tree: `TAPLINE_AUTH__CLIENT_SECRET` sets
/// `auth.client-secret` (double underscore between levels, single underscore for a dash).
pub(crate) fn apply_overrides(tree: Value) -> Result<Value, Problem> {
    let variables = Env::prefixed(OVERRIDE_PREFIX)
        .filter(|key| {
            !NOT_OVERRIDES
                .iter()
                .any(|skip| key.as_str().eq_ignore_ascii_case(skip))
        })
        .map(|key| key.as_str().replace("__", ".").replace('_', "-").into());
    let merged = variables.iter().fold(
        Figment::from(Serialized::defaults(tree)),
        |figment, (key, raw)| figment.merge(Serialized::default(key.as_str(), override_value(raw))),
    );
    merged.extract::<Value>().map_err(|error| {
        // figment's message names the key and the kind of value, never an override's content.
        let message = format!(
            "cannot apply {OVERRIDE_PREFIX}* environment overrides: {}",
            error.kind
        );
        Problem::new(&KeyPath::root(), message)
    })
}

/// An override's value: the variable's text exactly as set, unless it is a list (`[a, b]`) or a
/// mapping (`{k=v}`).
///
/// Why not let figment parse every value? It reads `0123456` as the number 123456 and `1.50` as
/// 1.5, and a client secret or id would then be sent changed. The text stays a string here, and
/// the shape check turns it into a number or `true`/`false` only where the key wants one.
fn override_value(raw: String) -> figment::value::Value {
    use figment::value::Value as Parsed;
    match raw.parse::<Parsed>() {
        Ok(structured @ (Parsed::Array(..) | Parsed::Dict(..))) => structured,
        _ => Parsed::from(raw),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_anywhere_in_a_string() {
        assert_eq!(
            expand("https://${HOST}/api", &lookup).unwrap(),
            "https://example.com/api"
        );
        assert_eq!(expand("${MISSING:-fallback}", &lookup).unwrap(), "fallback");
        assert_eq!(expand("${EMPTY:-fallback}", &lookup).unwrap(), "");
        assert_eq!(
            expand("cost: $5 and $${HOST}", &lookup).unwrap(),
            "cost: $5 and ${HOST}"
        );
    }

    #[test]
    fn names_every_unset_variable() {
        let errors = expand("${A}-${HOST}-${B}", &lookup).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("${A} is not set"), "{errors:?}");
        assert!(errors[1].starts_with("${B} is not set"), "{errors:?}");
    }

    #[test]
    fn override_values_are_the_text_as_set() {
        use figment::value::Value as Parsed;
        for text in [
            "0123456",
            "1.50",
            "0x10",
            "1e5",
            "true",
            " padded ",
            "\"quoted\"",
        ] {
            assert_eq!(
                override_value(text.to_string()),
                Parsed::from(text.to_string()),
                "{text}"
            );
        }
        assert!(matches!(
            override_value("[429, 503]".into()),
            Parsed::Array(..)
        ));
        assert!(matches!(override_value("{a=1}".into()), Parsed::Dict(..)));
    }

    #[test]
    fn rejects_unterminated_and_bad_names() {
        assert!(expand("${HOST", &lookup).is_err());
        assert!(expand("${1X}", &lookup).is_err());
    }
}
