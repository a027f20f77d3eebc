//! The state store: what tasks must remember between runs (cursors, file offsets), one namespace
//! per task, kept in memory and written out to one JSON file, or, with `coordination:`, to the
//! coordination backend under each task's lease ([`FencedState`]).
//!
//! Why one store with two places to write, not two stores: tasks see the same [`StateHandle`]
//! either way, and the file store keeps exactly its behaviour. With shared state a namespace is
//! loaded when this replica takes the task's lease (another replica may have moved the cursor)
//! and written alone, under that lease; a write the backend refuses is [`StateError::Fenced`].
//!
//! Why one file, rewritten whole: state is small, and a single atomic rename is the simplest way to
//! never leave half a write behind. The file is written to a temporary file in the same directory,
//! fsynced, renamed over the old one, and the directory is fsynced, so a crash at any moment leaves
//! either the old or the new content. A file that exists but cannot be read or parsed stops the
//! process: replacing it would silently lose every cursor.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::atomic_file::{self, Access};
use crate::coordination::{self, FencedState};

/// Reading, parsing or writing the state file failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file exists but cannot be read.
    #[error("cannot read the state file {path}; fix its permissions or move it away (tapline never replaces it)")]
    Unreadable {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the JSON tapline writes.
    #[error("the state file {path} is corrupt ({reason}); restore it from a backup or move it away to start over (tapline never replaces it)")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Saving failed.
    #[error("cannot save the state file {path}")]
    Write {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The shared state could not be read or written.
    #[error("cannot read or write the state of task {task:?} in the coordination backend")]
    Shared {
        /// The task.
        task: String,
        /// What failed.
        #[source]
        source: coordination::Error,
    },
    /// The write was refused: another replica holds the task's lease now.
    #[error(transparent)]
    Fenced(coordination::Error),
    /// A value could not be converted to or from JSON.
    #[error("state value {key:?} of task {task:?} does not have the expected shape")]
    Value {
        /// The task namespace.
        task: String,
        /// The key.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// The process's task state: the state file (loaded once at start, then [`StateHandle`]s read
/// and write it in memory and [`StateStore::save_if_changed`] writes it out), or with
/// coordination the shared state (each namespace loaded under its lease, written alone).
#[derive(Clone, Debug)]
pub struct StateStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    tasks: Mutex<Map<String, Value>>,
    changed: AtomicBool,
    // Serialises writers so two saves never race on the temporary file.
    save: Mutex<()>,
    /// With coordination: where namespaces are written instead of the file.
    shared: Option<Shared>,
}

/// The shared state of a coordinated process, and what this replica knows of it.
#[derive(Debug)]
struct Shared {
    backend: FencedState,
    /// Tasks changed since their last write.
    dirty: Mutex<std::collections::HashSet<String>>,
    /// Held by each task's write, so that one task's writes follow one another (see
    /// [`StateStore::store_shared`]).
    writing: Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The lease generation under which each task's namespace was loaded.
    loaded: Mutex<std::collections::HashMap<String, i64>>,
}

const VERSION: u64 = 1;

impl StateStore {
    /// Opens the state at `path`: empty when the file does not exist yet, an error when it exists
    /// but cannot be read or is not valid state.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StateError> {
        let path = path.into();
        let tasks = match fs::read(&path) {
            Ok(bytes) => parse(&path, &bytes)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(StateError::Unreadable { path, source }),
        };
        Ok(Self::with(path, tasks))
    }

    /// A store that starts empty and is saved to `path` (which it does not read).
    pub fn empty(path: impl Into<PathBuf>) -> Self {
        Self::with(path.into(), Map::new())
    }

    /// A store whose namespaces live in the coordination backend, each loaded when this
    /// replica takes the task's lease and written under it.
    pub fn shared(backend: FencedState) -> Self {
        Self::new(PathBuf::new(), Map::new(), Some(backend))
    }

    fn with(path: PathBuf, tasks: Map<String, Value>) -> Self {
        Self::new(path, tasks, None)
    }

    fn new(path: PathBuf, tasks: Map<String, Value>, shared: Option<FencedState>) -> Self {
        Self {
            inner: Arc::new(Inner {
                path,
                tasks: Mutex::new(tasks),
                changed: AtomicBool::new(false),
                save: Mutex::new(()),
                shared: shared.map(|backend| Shared {
                    backend,
                    dirty: Mutex::default(),
                    writing: Mutex::default(),
                    loaded: Mutex::default(),
                }),
            }),
        }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A handle on the namespace of task `task`.
    pub fn handle(&self, task: &str) -> StateHandle {
        StateHandle {
            store: self.clone(),
            task: task.into(),
        }
    }

    /// Whether something changed since the last save.
    pub fn is_changed(&self) -> bool {
        self.inner.changed.load(Ordering::Acquire)
    }

    /// Saves the state file if it changed since the last save (shared state is written by
    /// [`Self::save`]). Blocking file I/O: call it from `spawn_blocking` in async code.
    pub fn save_if_changed(&self) -> Result<(), StateError> {
        if self.inner.shared.is_some() {
            return Ok(());
        }
        let _writer = self.inner.save.lock().unwrap_or_else(|e| e.into_inner());
        if !self.inner.changed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let document = {
            let tasks = self.lock();
            serde_json::json!({"version": VERSION, "tasks": Value::Object(tasks.clone())})
        };
        let bytes = serde_json::to_vec_pretty(&document).expect("state is plain JSON");
        write_atomically(&self.inner.path, &bytes).map_err(|source| {
            self.inner.changed.store(true, Ordering::Release);
            StateError::Write {
                path: self.inner.path.clone(),
                source,
            }
        })
    }

    /// Before a run under the lease of `generation`: loads `task`'s namespace from the shared
    /// state unless it was loaded under this generation already (nothing to do for the file).
    pub async fn prepare(&self, task: &str, generation: Option<i64>) -> Result<(), StateError> {
        let (Some(shared), Some(generation)) = (&self.inner.shared, generation) else {
            return Ok(());
        };
        if lock(&shared.loaded).get(task) == Some(&generation) {
            return Ok(());
        }
        let value = shared
            .backend
            .load(task)
            .await
            .map_err(|source| StateError::Shared {
                task: task.to_string(),
                source,
            })?;
        {
            let mut tasks = self.lock();
            match value {
                Some(value) => tasks.insert(task.to_string(), value),
                None => tasks.remove(task),
            };
        }
        lock(&shared.dirty).remove(task);
        lock(&shared.loaded).insert(task.to_string(), generation);
        Ok(())
    }

    /// Writes what changed of `task`: its namespace in the shared state, or the whole file.
    pub async fn save_task(&self, task: &str) -> Result<(), StateError> {
        let Some(shared) = &self.inner.shared else {
            return match self.is_changed() {
                true => self.save_file().await,
                false => Ok(()),
            };
        };
        self.store_shared(shared, task).await
    }

    /// Writes `task`'s namespace if it changed. One write per task at a time: two overlapping
    /// writes (a run's save still going when the runner saves after it) could otherwise commit
    /// in the wrong order, an older namespace last; one after another, the later always sends
    /// what the store holds by then.
    async fn store_shared(&self, shared: &Shared, task: &str) -> Result<(), StateError> {
        let writing = lock(&shared.writing)
            .entry(task.to_string())
            .or_default()
            .clone();
        let _writing = writing.lock().await;
        if !lock(&shared.dirty).remove(task) {
            return Ok(());
        }
        let namespace = self.lock().get(task).cloned().unwrap_or(Value::Null);
        let stored = shared.backend.store(task, &namespace).await;
        stored.map_err(|source| {
            lock(&shared.dirty).insert(task.to_string());
            match source {
                coordination::Error::Fenced { .. } => StateError::Fenced(source),
                source => StateError::Shared {
                    task: task.to_string(),
                    source,
                },
            }
        })
    }

    fn touched(&self, task: &str) {
        self.inner.changed.store(true, Ordering::Release);
        if let Some(shared) = &self.inner.shared {
            lock(&shared.dirty).insert(task.to_string());
        }
    }

    /// Writes everything that changed: [`Self::save_if_changed`] off the async worker threads,
    /// or each changed namespace to the shared state.
    pub async fn save(&self) -> Result<(), StateError> {
        if let Some(shared) = &self.inner.shared {
            let dirty: Vec<String> = lock(&shared.dirty).iter().cloned().collect();
            let mut result = Ok(());
            for task in dirty {
                result = result.and(self.store_shared(shared, &task).await);
            }
            return result;
        }
        self.save_file().await
    }

    async fn save_file(&self) -> Result<(), StateError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.save_if_changed())
            .await
            .expect("saving the state does not panic")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map<String, Value>> {
        lock(&self.inner.tasks)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Map<String, Value>, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let document: Value =
        serde_json::from_slice(bytes).map_err(|error| corrupt(format!("not JSON: {error}")))?;
    match document.get("version").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(other) => return Err(corrupt(format!("unknown version {other}"))),
        None => return Err(corrupt("no \"version\"".into())),
    }
    match document.get("tasks") {
        Some(Value::Object(tasks)) => Ok(tasks.clone()),
        _ => Err(corrupt("no \"tasks\" object".into())),
    }
}

/// Creates the directory if needed, then replaces the file atomically.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    atomic_file::replace(path, bytes, Access::Default)
}

/// One task's namespace in the [`StateStore`].
#[derive(Clone, Debug)]
pub struct StateHandle {
    store: StateStore,
    task: Arc<str>,
}

impl StateHandle {
    /// The value under `key`, or `None` when nothing was saved yet.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StateError> {
        let tasks = self.store.lock();
        let Some(value) = tasks.get(&*self.task).and_then(|ns| ns.get(key)) else {
            return Ok(None);
        };
        T::deserialize(value)
            .map(Some)
            .map_err(|source| self.value_error(key, source))
    }

    /// Writes the task's state now if anything changed (the whole file, or its namespace in the
    /// shared state): for a task that moves its cursor several times in one run, so that a crash
    /// loses at most the step in progress.
    pub async fn save(&self) -> Result<(), StateError> {
        self.store.save_task(&self.task).await
    }

    /// Sets `key` to `value`; the store is saved after the run (or at shutdown), or earlier by
    /// [`Self::save`].
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), StateError> {
        let value = serde_json::to_value(value).map_err(|source| self.value_error(key, source))?;
        let mut tasks = self.store.lock();
        let namespace = tasks
            .entry(self.task.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !namespace.is_object() {
            *namespace = Value::Object(Map::new());
        }
        let map = namespace.as_object_mut().expect("made an object above");
        if map.get(key) != Some(&value) {
            map.insert(key.to_string(), value);
            drop(tasks);
            self.store.touched(&self.task);
        }
        Ok(())
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) {
        let mut tasks = self.store.lock();
        if let Some(Value::Object(map)) = tasks.get_mut(&*self.task) {
            if map.remove(key).is_some() {
                drop(tasks);
                self.store.touched(&self.task);
            }
        }
    }

    fn value_error(&self, key: &str, source: serde_json::Error) -> StateError {
        StateError::Value {
            task: self.task.to_string(),
            key: key.to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_namespaces_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let store = StateStore::open(&path).unwrap();
        store.handle("a").set("cursor", "c1").unwrap();
        store.handle("b").set("cursor", &7).unwrap();
        assert!(store.is_changed());
        store.save_if_changed().unwrap();
        assert!(!store.is_changed());
        let again = StateStore::open(&path).unwrap();
        assert_eq!(
            again
                .handle("a")
                .get::<String>("cursor")
                .unwrap()
                .as_deref(),
            Some("c1")
        );
        assert_eq!(again.handle("b").get::<u64>("cursor").unwrap(), Some(7));
        assert_eq!(again.handle("c").get::<u64>("cursor").unwrap(), None);
    }

    #[test]
    fn setting_the_same_value_is_not_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path().join("s.json")).unwrap();
        store.handle("a").set("k", &1).unwrap();
        store.save_if_changed().unwrap();
        store.handle("a").set("k", &1).unwrap();
        assert!(!store.is_changed());
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, b"{\"version\": 1, \"tasks\": {").unwrap();
        let error = StateStore::open(&path).unwrap_err();
        assert!(matches!(error, StateError::Corrupt { .. }), "{error}");
        assert!(error.to_string().contains("never replaces"));
        assert_eq!(fs::read(&path).unwrap(), b"{\"version\": 1, \"tasks\": {");
    }

    /// A shared-state backend whose first write takes 200 ms and the others none; it keeps the
    /// namespace that was written last. (Stands in for PostgreSQL, whose commit order cannot be
    /// steered from a test.)
    #[derive(Debug, Default)]
    struct SlowFirstWrite {
        writes: std::sync::atomic::AtomicUsize,
        last: Mutex<Option<Value>>,
    }

    #[async_trait::async_trait]
    impl coordination::SharedState for SlowFirstWrite {
        async fn load(&self, _: &str) -> Result<Option<Value>, coordination::Error> {
            Ok(None)
        }

        async fn store(
            &self,
            _: &coordination::Lease,
            namespace: &Value,
        ) -> Result<(), coordination::Error> {
            if self.writes.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            *self.last.lock().unwrap() = Some(namespace.clone());
            Ok(())
        }
    }

    /// A save that starts while an older one of the same task is still being written waits for
    /// it, so the newer namespace is the one written last.
    #[tokio::test(start_paused = true)]
    async fn one_tasks_shared_writes_follow_one_another() {
        let backend = Arc::new(SlowFirstWrite::default());
        let leases = coordination::Leases::new(tokio_util::sync::CancellationToken::new());
        let lease = coordination::Lease {
            task: "a".into(),
            generation: 1,
        };
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        leases.granted(&[lease], until);
        let store = StateStore::shared(coordination::FencedState::new(backend.clone(), leases));
        let handle = store.handle("a");
        handle.set("cursor", &1).unwrap();
        let older = tokio::spawn({
            let handle = handle.clone();
            async move { handle.save().await }
        });
        // The older save takes its namespace and is in the backend's slow write.
        tokio::task::yield_now().await;
        handle.set("cursor", &2).unwrap();
        handle.save().await.unwrap();
        older.await.unwrap().unwrap();
        assert_eq!(
            *backend.last.lock().unwrap(),
            Some(serde_json::json!({"cursor": 2}))
        );
    }
}
