//! A fake Kubernetes API server: exactly the Lease and ConfigMap endpoints tapline's Kubernetes
//! coordination backend uses (get, list by label, create, replace), with the API server's
//! `resourceVersion` semantics: every write gets a new version, a replace must carry the
//! current one (else 409 `Conflict`), a create of an existing name is 409 `AlreadyExists`, a
//! missing object 404; errors are `Status` objects.
//!
//! A fake, not a real part: no Kubernetes API server (nor Docker, nor kind) can run on these
//! machines. What it cannot show: admission, RBAC, watch, server-side field validation beyond
//! what is checked here, and the API server's own timing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::kube_discovery as discovery;
use super::loopback::{self, Loopback};

/// The objects, by (resource, namespace, name), and what was asked.
#[derive(Default)]
struct Store {
    objects: BTreeMap<(String, String, String), Value>,
    version: u64,
    /// Requests by "METHOD resource".
    requests: HashMap<String, usize>,
    /// While set, every request answers 503 (the API server unavailable).
    down: bool,
    /// The last body sent of each sort (resource, method, role label), for [`KubeApi::validate_sent`].
    sent: BTreeMap<(String, String, String), Value>,
}

type Shared = Arc<Mutex<Store>>;

/// The fake API server on a loopback port.
pub struct KubeApi {
    store: Shared,
    pub loopback: Loopback,
}

impl KubeApi {
    /// Starts the server.
    pub fn start() -> KubeApi {
        let store = Shared::default();
        let router = [LEASES, CONFIG_MAPS]
            .into_iter()
            .fold(Router::new(), routes)
            .route("/api", get(|| async { Json(discovery::core_versions()) }))
            .route("/apis", get(|| async { Json(discovery::groups()) }))
            .route(
                "/api/v1",
                get(|| async { Json(discovery::core_resources()) }),
            )
            .route(
                "/apis/coordination.k8s.io/v1",
                get(|| async { Json(discovery::coordination_resources()) }),
            )
            .with_state(store.clone());
        KubeApi {
            store,
            loopback: loopback::serve(router),
        }
    }

    /// A kubeconfig file in `dir` for this server, namespace `namespace`.
    pub fn kubeconfig(&self, dir: &Path, namespace: &str) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: '{}'}}\nusers:\n- name: fake\n  user: {{token: fake-token}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: {namespace}}}\ncurrent-context: fake\n",
            self.loopback.base()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Every object of `resource` (`leases`, `configmaps`) in `namespace`.
    pub fn objects(&self, resource: &str, namespace: &str) -> Vec<Value> {
        let store = self.store.lock().unwrap();
        store
            .objects
            .iter()
            .filter(|((r, ns, _), _)| r == resource && ns == namespace)
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// How many requests of `method` (`GET`, `PUT`, …) on `resource` were answered so far.
    pub fn requests(&self, method: &str, resource: &str) -> usize {
        let store = self.store.lock().unwrap();
        let key = format!("{method} {resource}");
        store.requests.get(&key).copied().unwrap_or(0)
    }

    /// Checks the last body of each sort the clients sent (a create or replace of a task Lease,
    /// a member Lease, a ConfigMap) against the official Kubernetes JSON schemas, with
    /// `kubernetes-validate --strict` (unknown fields fail too); returns how many were checked.
    pub fn validate_sent(&self, dir: &Path) -> usize {
        let sent: Vec<Value> = self.store.lock().unwrap().sent.values().cloned().collect();
        let files: Vec<PathBuf> = sent
            .iter()
            .enumerate()
            .map(|(index, body)| {
                let file = dir.join(format!("sent-{index}.json"));
                std::fs::write(&file, body.to_string()).unwrap();
                file
            })
            .collect();
        let out = std::process::Command::new(kubernetes_validate())
            .args(["--strict", "-k", "1.33"])
            .args(&files)
            .output()
            .expect("kubernetes-validate runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("INFO") && l.contains(" passed "))
                .count(),
            files.len(),
            "{text}"
        );
        files.len()
    }

    /// Makes every request fail with 503 (`true`) or answer again (`false`).
    pub fn set_down(&self, down: bool) {
        self.store.lock().unwrap().down = down;
    }

    /// Changes an object behind the replicas' backs (as `kubectl edit` would): `edit` on it,
    /// then a new `resourceVersion`.
    pub fn edit(&self, resource: &str, namespace: &str, name: &str, edit: impl FnOnce(&mut Value)) {
        let mut store = self.store.lock().unwrap();
        store.version += 1;
        let version = store.version.to_string();
        let key = (resource.into(), namespace.into(), name.into());
        let object = store.objects.get_mut(&key).expect("the object exists");
        edit(object);
        object["metadata"]["resourceVersion"] = json!(version);
    }
}

/// A `Status` error answer, as the API server sends it.
fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code.as_u16(),
    });
    (code, Json(body)).into_response()
}

/// What every request goes through: counted, and refused (the answer) while the server is
/// down.
fn enter(store: &Shared, method: Method, resource: &str) -> Option<Response> {
    let mut store = store.lock().unwrap();
    *store
        .requests
        .entry(format!("{method} {resource}"))
        .or_default() += 1;
    store.down.then(|| {
        status(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the fake API server is down".into(),
        )
    })
}

fn list(store: Shared, kind: &Kind, ns: String, query: HashMap<String, String>) -> Response {
    let resource = kind.resource;
    if let Some(refused) = enter(&store, Method::GET, resource) {
        return refused;
    }
    let wanted: Vec<(String, String)> = query
        .get("labelSelector")
        .map(|selector| {
            selector
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let store = store.lock().unwrap();
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((r, n, _), _)| r == resource && *n == ns)
        .map(|(_, object)| object)
        .filter(|object| {
            wanted
                .iter()
                .all(|(k, v)| object["metadata"]["labels"][k].as_str() == Some(v))
        })
        .cloned()
        .collect();
    let body = json!({
        "kind": format!("{}List", kind.kind), "apiVersion": kind.api_version,
        "metadata": {"resourceVersion": store.version.to_string()},
        "items": items,
    });
    Json(body).into_response()
}

fn read(store: Shared, kind: &Kind, ns: String, name: String) -> Response {
    let resource = kind.resource;
    if let Some(refused) = enter(&store, Method::GET, resource) {
        return refused;
    }
    let store = store.lock().unwrap();
    match store.objects.get(&(resource.to_string(), ns, name.clone())) {
        Some(object) => Json(object.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{resource} \"{name}\" not found"),
        ),
    }
}

/// A create (`replace: false`) or a replace, with the API server's version checks.
fn write(
    store: Shared,
    kind: &Kind,
    ns: String,
    name: Option<String>,
    mut body: Value,
) -> Response {
    let (resource, api) = (kind.resource, kind.api_version);
    let method = if name.is_some() {
        Method::PUT
    } else {
        Method::POST
    };
    if let Some(refused) = enter(&store, method, resource) {
        return refused;
    }
    let Some(body_name) = body["metadata"]["name"].as_str().map(str::to_string) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "metadata.name: Required value".into(),
        );
    };
    if body["kind"] != kind.kind || body["apiVersion"] != api {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "expected {api} {}, got {} {}",
                kind.kind, body["apiVersion"], body["kind"]
            ),
        );
    }
    let mut store = store.lock().unwrap();
    let role = body["metadata"]["labels"]["tapline.io/role"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let sort = (resource.to_string(), name.is_some().to_string(), role);
    store.sent.insert(sort, body.clone());
    let key = (resource.to_string(), ns.clone(), body_name.clone());
    let current = store.objects.get(&key).cloned();
    match (&name, &current) {
        (Some(name), _) if *name != body_name => {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "the name in the URL and the body differ".into(),
            )
        }
        (Some(_), None) => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{resource} \"{body_name}\" not found"),
            )
        }
        (Some(_), Some(current)) => {
            let sent = &body["metadata"]["resourceVersion"];
            if !sent.is_null() && *sent != current["metadata"]["resourceVersion"] {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    format!("Operation cannot be fulfilled on {resource} \"{body_name}\": the object has been modified; please apply your changes to the latest version and try again"),
                );
            }
            body["metadata"]["uid"] = current["metadata"]["uid"].clone();
            body["metadata"]["creationTimestamp"] =
                current["metadata"]["creationTimestamp"].clone();
        }
        (None, Some(_)) => {
            return status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{resource} \"{body_name}\" already exists"),
            )
        }
        (None, None) => {
            body["metadata"]["uid"] = json!(format!("uid-{}", store.version + 1));
            body["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
    }
    store.version += 1;
    body["metadata"]["resourceVersion"] = json!(store.version.to_string());
    body["metadata"]["namespace"] = json!(ns);
    store.objects.insert(key, body.clone());
    let code = if name.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (code, Json(body)).into_response()
}

/// One sort of object the server keeps, and where its endpoints are.
struct Kind {
    /// The URL's resource name (`leases`).
    resource: &'static str,
    /// The objects' `kind` (`Lease`).
    kind: &'static str,
    /// The objects' `apiVersion`, which is also the URL's group path.
    api_version: &'static str,
}

const LEASES: &Kind = &Kind {
    resource: "leases",
    kind: "Lease",
    api_version: "coordination.k8s.io/v1",
};
const CONFIG_MAPS: &Kind = &Kind {
    resource: "configmaps",
    kind: "ConfigMap",
    api_version: "v1",
};

/// `router` with the list, create, get and replace endpoints of `kind`.
fn routes(router: Router<Shared>, kind: &'static Kind) -> Router<Shared> {
    let group = match kind.api_version {
        "v1" => "/api/v1".to_string(),
        group => format!("/apis/{group}"),
    };
    let all = format!("{group}/namespaces/{{ns}}/{}", kind.resource);
    let one = format!("{all}/{{name}}");
    type Named = UrlPath<(String, String)>;
    router
        .route(
            &all,
            get(
                move |State(s): State<Shared>,
                      UrlPath(ns): UrlPath<String>,
                      Query(q): Query<HashMap<String, String>>| async move {
                    list(s, kind, ns, q)
                },
            )
            .post(
                move |State(s): State<Shared>,
                      UrlPath(ns): UrlPath<String>,
                      Json(body): Json<Value>| async move {
                    write(s, kind, ns, None, body)
                },
            ),
        )
        .route(
            &one,
            get(
                move |State(s): State<Shared>, UrlPath((ns, name)): Named| async move {
                    read(s, kind, ns, name)
                },
            )
            .put(
                move |State(s): State<Shared>,
                      UrlPath((ns, name)): Named,
                      Json(body): Json<Value>| async move {
                    write(s, kind, ns, Some(name), body)
                },
            ),
        )
}

/// `kubernetes-validate`, installed in its venv on first use.
fn kubernetes_validate() -> &'static Path {
    static CLI: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CLI.get_or_init(|| {
        let requirements = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/kubernetes-validate-requirements.txt"
        );
        let ready = |venv: &Path| venv.join("bin/kubernetes-validate").exists();
        super::venv::install("kubernetes-validate-venv", requirements, &ready)
            .join("bin/kubernetes-validate")
    })
}
