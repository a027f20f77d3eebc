//! [`Table`]: the components of one kind by `type` name, each with its schema and its build.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::config::{without_values, BuildError, ComponentConfig, Sections};

/// Reads a block's keys into the component's config and builds the component, with the config
/// file's shared blocks.
type Build<T> =
    Arc<dyn Fn(&Map<String, Value>, &Sections) -> Result<Arc<T>, BuildError> + Send + Sync>;

/// One registered component.
struct Entry<T: ?Sized> {
    name: String,
    /// The JSON Schema of its config struct (a root schema, with its own `$defs`).
    schema: Value,
    build: Build<T>,
}

/// Components of one kind, in registration order (the order `validate` lists them in).
pub(crate) struct Table<T: ?Sized> {
    entries: Vec<Entry<T>>,
}

impl<T: ?Sized> Default for Table<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T: ?Sized + 'static> Table<T> {
    /// Registers `name`: a block's keys are read into `C` (its serde attributes decide what is
    /// accepted), then `build` makes the component from them and the file's shared [`Sections`];
    /// `wrap` erases its type. A later registration
    /// under the same name replaces the earlier one.
    pub(crate) fn insert<C, B, F>(&mut self, name: &str, build: F, wrap: fn(B) -> Arc<T>)
    where
        C: DeserializeOwned + JsonSchema + 'static,
        B: 'static,
        F: Fn(C, &Sections) -> Result<B, BuildError> + Send + Sync + 'static,
    {
        let build: Build<T> = Arc::new(move |keys, sections| {
            let config: C =
                serde_path_to_error::deserialize(Value::Object(keys.clone())).map_err(|error| {
                    let key = error.path().to_string();
                    let message = without_values(&error.into_inner().to_string());
                    match key.as_str() {
                        "." => BuildError::new(message),
                        key => BuildError::at(key, message),
                    }
                })?;
            build(config, sections).map(wrap)
        });
        let entry = Entry {
            name: name.to_string(),
            schema: serde_json::to_value(schemars::schema_for!(C)).expect("a schema is JSON"),
            build,
        };
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(existing) => *existing = entry,
            None => self.entries.push(entry),
        }
    }

    /// Builds the component `block` names.
    pub(crate) fn build(
        &self,
        block: &ComponentConfig,
        sections: &Sections,
    ) -> Result<Arc<T>, BuildError> {
        match self.find(&block.type_name) {
            Some(entry) => (entry.build)(&block.keys, sections),
            None => Err(BuildError::at(
                "type",
                format!(
                    "unknown type {:?}; known types: {}",
                    block.type_name,
                    self.names().join(", ")
                ),
            )),
        }
    }

    /// The entry registered as `name`.
    fn find(&self, name: &str) -> Option<&Entry<T>> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The config schema of the component registered as `name`.
    pub(crate) fn schema_of(&self, name: &str) -> Option<&Value> {
        self.find(name).map(|entry| &entry.schema)
    }

    /// The registered names, in registration order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    /// Each component's name and config schema.
    pub(crate) fn schemas(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|e| (e.name.as_str(), &e.schema))
    }
}
