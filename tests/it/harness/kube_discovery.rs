//! The discovery documents of the fake Kubernetes API server (`kube_api.rs`): what `kubectl`
//! reads before it sends a request, naming only the two resources the fake serves.

use serde_json::{json, Value};

const VERBS: [&str; 5] = ["get", "list", "create", "update", "watch"];

/// `GET /api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
}

/// `GET /apis`.
pub fn groups() -> Value {
    let version = json!({"groupVersion": "coordination.k8s.io/v1", "version": "v1"});
    json!({
        "kind": "APIGroupList", "apiVersion": "v1",
        "groups": [{"name": "coordination.k8s.io", "versions": [version], "preferredVersion": version}],
    })
}

/// `GET /api/v1`.
pub fn core_resources() -> Value {
    resources("v1", "configmaps", "ConfigMap", "cm")
}

/// `GET /apis/coordination.k8s.io/v1`.
pub fn coordination_resources() -> Value {
    resources("coordination.k8s.io/v1", "leases", "Lease", "")
}

fn resources(group_version: &str, name: &str, kind: &str, short: &str) -> Value {
    let singular = kind.to_lowercase();
    let mut resource = json!({
        "name": name, "singularName": singular, "namespaced": true, "kind": kind, "verbs": VERBS,
    });
    if !short.is_empty() {
        resource["shortNames"] = json!([short]);
    }
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": [resource],
    })
}
