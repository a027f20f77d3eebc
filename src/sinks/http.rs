//! `sink.type: http`: POST `{"<wrap>": [records]}` to `sink.path` through the shared session.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::BuildError;
use crate::runner::{Sink, TaskContext, TaskError};

/// `sink: {type: http, path: timeseries/data, wrap: items, batch-size: 500}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Path relative to `session.base-url`, or an absolute URL.
    pub path: String,
    /// The key the batch array is wrapped in.
    #[serde(default = "default_wrap")]
    pub wrap: String,
}

fn default_wrap() -> String {
    "items".to_string()
}

/// The built sink.
#[derive(Debug)]
pub struct HttpSink {
    config: HttpSinkConfig,
}

/// Builds an `http` sink.
pub fn build(config: HttpSinkConfig) -> Result<HttpSink, BuildError> {
    if config.path.trim().is_empty() {
        return Err(BuildError::at("path", "must not be empty"));
    }
    Ok(HttpSink { config })
}

#[async_trait::async_trait]
impl Sink for HttpSink {
    async fn deliver(&self, ctx: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let mut body = Map::new();
        body.insert(self.config.wrap.clone(), Value::Array(batch.to_vec()));
        let path = &self.config.path;
        let response = tokio::select! {
            response = ctx.session().post(path).json(&body).send() => response?,
            _ = ctx.cancelled() => return Err(TaskError::Cancelled),
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(300).collect();
            return Err(TaskError::msg(format!(
                "POST {path} answered {status}: {snippet}"
            )));
        }
        Ok(())
    }
}
