//! [`KubernetesState`]: each task's state in one ConfigMap, fenced by the task's Lease.
//!
//! Kubernetes has no transaction over two objects, so the fence is in the ConfigMap itself: a
//! replica that takes a task's Lease first *claims* the ConfigMap (writes its name and the
//! Lease's new generation into its annotations, with the `resourceVersion` it read). A state
//! write carries the `resourceVersion` of the ConfigMap as this replica last read or wrote it,
//! and is made only while the claim is this replica's at this generation. A claim by another
//! replica changes the `resourceVersion`, so the stale replica's write gets 409; it reads the
//! ConfigMap again, sees the other claim, and the write is refused ([`Error::Fenced`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use serde_json::Value;

use super::api::{Connection, Failure};
use super::names::{task_object, PREFIX_LABEL, ROLE_LABEL, TASK_ANNOTATION};
use crate::coordination::coordinator::{Error, Lease, SharedState};

/// The data key holding the state (JSON).
const STATE_KEY: &str = "state.json";
/// The replica whose claim the ConfigMap carries.
const HOLDER_ANNOTATION: &str = "tapline.io/holder";
/// The generation of that claim (the Lease's `leaseTransitions` when it was taken).
const GENERATION_ANNOTATION: &str = "tapline.io/generation";
/// How often a claim is tried again after a conflict (another writer between read and write).
const CLAIM_ATTEMPTS: usize = 5;

/// Task state as ConfigMaps beside the Leases.
#[derive(Debug, Clone)]
pub struct KubernetesState {
    connection: Arc<Connection>,
    replica: String,
    /// Each ConfigMap as this replica last read or wrote it: its `resourceVersion` is what the
    /// next write is conditioned on.
    known: Arc<Mutex<HashMap<String, ConfigMap>>>,
}

impl KubernetesState {
    pub(super) fn new(connection: Arc<Connection>, replica: String) -> Self {
        Self {
            connection,
            replica,
            known: Arc::default(),
        }
    }

    /// Marks `task`'s ConfigMap as this replica's at `generation` (right after taking the
    /// Lease), so that the previous holder's writes are refused from now on.
    pub(super) async fn claim(&self, task: &str, generation: i64) -> Result<(), Error> {
        let api = self.connection.api::<ConfigMap>().await?;
        let name = task_object(self.connection.prefix(), task);
        for _ in 0..CLAIM_ATTEMPTS {
            let current = api
                .get_opt(&name)
                .await
                .map_err(|e| self.connection.error(e))?;
            let exists = current.is_some();
            let mut map = current.unwrap_or_else(|| self.blank(&name, task));
            let annotations = map.metadata.annotations.get_or_insert_with(BTreeMap::new);
            annotations.insert(HOLDER_ANNOTATION.into(), self.replica.clone());
            annotations.insert(GENERATION_ANNOTATION.into(), generation.to_string());
            let written = match exists {
                true => api.replace(&name, &PostParams::default(), &map).await,
                false => api.create(&PostParams::default(), &map).await,
            };
            match written.map_err(|e| self.connection.failure(e)) {
                Ok(map) => {
                    self.remember(task, map);
                    return Ok(());
                }
                Err(Failure::Conflict | Failure::Missing) => continue,
                Err(Failure::Api(error)) => return Err(error),
            }
        }
        Err(self.connection.error(format!(
            "the ConfigMap {name} kept changing while this replica claimed it"
        )))
    }

    fn blank(&self, name: &str, task: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(BTreeMap::from([
                    (PREFIX_LABEL.into(), self.connection.prefix().to_string()),
                    (ROLE_LABEL.into(), "state".into()),
                ])),
                annotations: Some(BTreeMap::from([(TASK_ANNOTATION.into(), task.into())])),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn remember(&self, task: &str, map: ConfigMap) {
        self.known
            .lock()
            .expect("state cache poisoned")
            .insert(task.to_string(), map);
    }

    fn known(&self, task: &str) -> Option<ConfigMap> {
        self.known
            .lock()
            .expect("state cache poisoned")
            .get(task)
            .cloned()
    }

    /// Whether `map` carries this replica's claim at `lease`'s generation.
    fn claimed(&self, map: &ConfigMap, lease: &Lease) -> bool {
        let annotation = |key: &str| {
            map.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .cloned()
        };
        annotation(HOLDER_ANNOTATION).as_deref() == Some(self.replica.as_str())
            && annotation(GENERATION_ANNOTATION) == Some(lease.generation.to_string())
    }

    fn fenced(lease: &Lease) -> Error {
        Error::Fenced {
            task: lease.task.clone(),
        }
    }
}

#[async_trait::async_trait]
impl SharedState for KubernetesState {
    async fn load(&self, task: &str) -> Result<Option<Value>, Error> {
        let api = self.connection.api::<ConfigMap>().await?;
        let name = task_object(self.connection.prefix(), task);
        let Some(map) = api
            .get_opt(&name)
            .await
            .map_err(|e| self.connection.error(e))?
        else {
            return Ok(None);
        };
        let state = map
            .data
            .as_ref()
            .and_then(|data| data.get(STATE_KEY))
            .map(|text| serde_json::from_str(text))
            .transpose()
            .map_err(|e| self.connection.error(format!("ConfigMap {name}: {e}")))?;
        self.remember(task, map);
        Ok(state)
    }

    /// One conditional replace; after a conflict, the ConfigMap is read again and written once
    /// more only if the claim is still this replica's (a conflict from another writer, such as
    /// `kubectl edit`).
    async fn store(&self, lease: &Lease, namespace: &Value) -> Result<(), Error> {
        let api = self.connection.api::<ConfigMap>().await?;
        let name = task_object(self.connection.prefix(), &lease.task);
        let text = serde_json::to_string(namespace).map_err(|e| self.connection.error(e))?;
        let mut map = match self.known(&lease.task) {
            Some(map) => map,
            None => api
                .get_opt(&name)
                .await
                .map_err(|e| self.connection.error(e))?
                .ok_or_else(|| Self::fenced(lease))?,
        };
        for attempt in 0..2 {
            if !self.claimed(&map, lease) {
                return Err(Self::fenced(lease));
            }
            map.data
                .get_or_insert_with(BTreeMap::new)
                .insert(STATE_KEY.into(), text.clone());
            match api.replace(&name, &PostParams::default(), &map).await {
                Ok(written) => {
                    self.remember(&lease.task, written);
                    return Ok(());
                }
                Err(error) => match self.connection.failure(error) {
                    Failure::Conflict if attempt == 0 => {
                        map = api
                            .get_opt(&name)
                            .await
                            .map_err(|e| self.connection.error(e))?
                            .ok_or_else(|| Self::fenced(lease))?;
                    }
                    Failure::Conflict | Failure::Missing => return Err(Self::fenced(lease)),
                    Failure::Api(error) => return Err(error),
                },
            }
        }
        Err(Self::fenced(lease))
    }
}
