//! What a component author needs, in one import: `use tapline::prelude::*;`.
//!
//! A task type, sink or credential provider is a config struct (`Deserialize` + `JsonSchema`)
//! and a build function, registered by name in a [`Registry`]; [`cli::main`] then gives the
//! extractor the whole `tapline` command line.

pub use crate::auth::{self, Credentials, FetchedToken, Provider, TokenSource};
pub use crate::cli;
pub use crate::config::{BuildError, Sections, SessionConfig};
pub use crate::runner::{Output, Sink, Task, TaskContext, TaskError};
pub use crate::Registry;
pub use async_trait::async_trait;
pub use schemars::JsonSchema;
pub use serde::Deserialize;
pub use serde_json::Value;
