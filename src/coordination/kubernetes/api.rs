//! [`Connection`]: the Kubernetes API client, made at the first request, and what a failed
//! request means for a lease (another replica won, the object is gone, or the API failed).
//!
//! Why lazy: building the client reads the kubeconfig or the service account, which is async in
//! kube and may fail while the API server is unreachable; a failed round is retried like any
//! other, so a replica that starts before the API answers joins once it does.

use k8s_openapi::NamespaceResourceScope;
use kube::{Api, Client, Config};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::config::KubernetesTarget;
use crate::coordination::coordinator::Error;

/// The client and the namespace of the backend's objects.
pub struct Connection {
    target: KubernetesTarget,
    client: OnceCell<(Client, String)>,
}

/// Hand-written: `kube::Client` has no `Debug` (and would show no secret anyway).
impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("target", &self.target)
            .field("connected", &self.client.initialized())
            .finish()
    }
}

/// How a request failed.
#[derive(Debug)]
pub enum Failure {
    /// 409: the object changed since it was read (another replica wrote it), or exists already.
    Conflict,
    /// 404: no such object.
    Missing,
    /// Anything else: the round failed.
    Api(Error),
}

impl Connection {
    /// A connection to `target`, opened at the first request.
    pub fn new(target: KubernetesTarget) -> Self {
        Self {
            target,
            client: OnceCell::new(),
        }
    }

    /// The lease prefix.
    pub fn prefix(&self) -> &str {
        &self.target.lease_prefix
    }

    /// The objects of kind `K` in the backend's namespace.
    pub async fn api<K>(&self) -> Result<Api<K>, Error>
    where
        K: kube::Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned,
        K::DynamicType: Default,
    {
        let (client, namespace) = self.client.get_or_try_init(|| self.connect()).await?;
        Ok(Api::namespaced(client.clone(), namespace))
    }

    /// Where, for messages: the namespace and prefix (never a token).
    pub fn shown(&self) -> String {
        let namespace = self
            .client
            .get()
            .map(|(_, namespace)| namespace.as_str())
            .or(self.target.namespace.as_deref())
            .unwrap_or("(default namespace)");
        format!(
            "kubernetes namespace {namespace}, leases {}-*",
            self.prefix()
        )
    }

    /// What a kube error means here.
    pub fn failure(&self, error: kube::Error) -> Failure {
        match &error {
            kube::Error::Api(status) if status.code == 409 => Failure::Conflict,
            kube::Error::Api(status) if status.code == 404 => Failure::Missing,
            _ => Failure::Api(self.error(error)),
        }
    }

    /// A kube error as a backend error.
    pub fn error(&self, error: impl std::fmt::Display) -> Error {
        Error::Backend {
            backend: self.shown(),
            message: error.to_string(),
        }
    }

    /// In-cluster unless a kubeconfig is given; `$KUBECONFIG` or `~/.kube/config` otherwise.
    async fn connect(&self) -> Result<(Client, String), Error> {
        let config = match &self.target.kubeconfig {
            Some(path) => {
                let file = kube::config::Kubeconfig::read_from(path).map_err(|e| self.error(e))?;
                Config::from_custom_kubeconfig(file, &Default::default())
                    .await
                    .map_err(|e| self.error(e))?
            }
            None => Config::infer().await.map_err(|e| self.error(e))?,
        };
        // No retries inside a request (kube retries 429/503/504 up to 15 times by default, for
        // minutes): the lease keeper's next round is the retry, and a round that waited past
        // its renew period would hide that the leases were not renewed.
        let mut config = config;
        config.default_retry = false;
        let namespace = self
            .target
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| self.error(e))?;
        Ok((client, namespace))
    }
}

impl Failure {
    /// Conflicts and missing objects as `None` (the lease is not this replica's), API failures
    /// as the round's error.
    pub fn lost<T>(self) -> Result<Option<T>, Error> {
        match self {
            Failure::Conflict | Failure::Missing => Ok(None),
            Failure::Api(error) => Err(error),
        }
    }
}
