//! The scope an OAuth provider asks for when a `cdf:` block is present and the `auth:` block
//! names none: `<base-url>/.default`, the scope Entra ID wants for a CDF cluster. It is filled in
//! here, once, for every provider whose keys include `scopes` (found in its config schema), so no
//! provider needs to know about CDF; a block that gives `scopes` (or the client-secret shortcut
//! `cluster`) keeps its own.

use serde_json::Value;

use super::Registry;
use crate::config::{ComponentConfig, Config};

impl Registry {
    /// `config`'s `auth:` block, with the CDF default scope when it applies.
    pub(super) fn auth_block(&self, config: &Config) -> ComponentConfig {
        let mut block = config.auth.clone();
        let Some(cdf) = &config.cdf else {
            return block;
        };
        let takes_scopes = self
            .providers
            .schema_of(&block.type_name)
            .is_some_and(|schema| schema["properties"].get("scopes").is_some());
        let given = ["scopes", "cluster"]
            .iter()
            .any(|key| block.keys.get(*key).is_some_and(|value| !is_empty(value)));
        if takes_scopes && !given {
            let scope = Value::from(vec![cdf.default_scope()]);
            block.keys.insert("scopes".into(), scope);
        }
        block
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(yaml: &str) -> Option<Value> {
        let config: Config = serde_yaml::from_str(yaml).unwrap();
        Registry::builtin()
            .auth_block(&config)
            .keys
            .get("scopes")
            .cloned()
    }

    const CDF: &str = "cdf: {project: p, base-url: 'https://westeurope-1.cognitedata.com/'}\n";

    #[test]
    fn an_oauth_provider_without_scopes_asks_for_the_cluster() {
        let yaml = format!(
            "auth: {{type: client-secret, token-url: https://idp/token, client-id: c}}\n{CDF}"
        );
        assert_eq!(
            scopes(&yaml),
            Some(serde_json::json!([
                "https://westeurope-1.cognitedata.com/.default"
            ]))
        );
    }

    #[test]
    fn given_scopes_a_cluster_or_no_cdf_block_are_left_alone() {
        let own = format!("auth: {{type: client-secret, client-id: c, scopes: [x]}}\n{CDF}");
        assert_eq!(scopes(&own), Some(serde_json::json!(["x"])));
        let cluster = format!("auth: {{type: client-secret, client-id: c, cluster: c1}}\n{CDF}");
        assert_eq!(scopes(&cluster), None);
        assert_eq!(scopes("auth: {type: client-secret, client-id: c}\n"), None);
        let token = format!("auth: {{type: token, token: t}}\n{CDF}");
        assert_eq!(scopes(&token), None, "a provider without scopes gets none");
    }
}
