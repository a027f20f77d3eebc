//! `sink.type: http`: POST `{"<wrap>": [records]}` to `sink.path` through the shared session.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::runner::{TaskContext, TaskError};

/// `sink: {type: http, path: timeseries/data, wrap: items, batch-size: 500}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Path relative to `session.base-url`, or an absolute URL.
    pub path: String,
    /// The key the batch array is wrapped in.
    #[serde(default = "default_wrap")]
    pub wrap: String,
    /// Records per request.
    #[serde(default = "super::default_batch_size")]
    pub batch_size: usize,
}

fn default_wrap() -> String {
    "items".to_string()
}

impl HttpSinkConfig {
    pub(super) async fn deliver(
        &self,
        ctx: &TaskContext,
        batch: &[Value],
    ) -> Result<(), TaskError> {
        let mut body = Map::new();
        body.insert(self.wrap.clone(), Value::Array(batch.to_vec()));
        let response = tokio::select! {
            response = ctx.session().post(&self.path).json(&body).send() => response?,
            _ = ctx.cancelled() => return Err(TaskError::Cancelled),
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let snippet: String = text.chars().take(300).collect();
            return Err(TaskError::msg(format!(
                "POST {} answered {status}: {snippet}",
                self.path
            )));
        }
        Ok(())
    }
}
