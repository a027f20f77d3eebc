//! `sink.type: cdf-raw`: each record becomes a row of a CDF RAW table.
//!
//! RAW overwrites a row with the same key, so delivering a batch again (after a failed run)
//! writes the same rows again: no duplicates. Within a batch the last record of a key wins, as
//! it would have had the rows been sent one by one; the request carries each key once.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::CdfApi;
use super::chunk::{self, LastWins, RAW_ROWS};
use super::pointer::Pointer;
use crate::config::{BuildError, Sections, SEGMENT};
use crate::runner::{Sink, TaskContext, TaskError};

/// `sink: {type: cdf-raw, database: plant-a, table: readings, key: /id}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CdfRawConfig {
    /// The RAW database; created with the table when missing.
    pub database: String,
    /// The RAW table.
    pub table: String,
    /// JSON pointer to the row key in each record: a string, or a number (written as a string).
    pub key: Pointer,
    /// JSON pointer to the row's columns (an object); the whole record when absent.
    #[serde(default = "whole_record")]
    pub columns: Pointer,
}

fn whole_record() -> Pointer {
    Pointer::new("")
}

/// The built sink.
#[derive(Debug)]
pub struct CdfRawSink {
    api: CdfApi,
    config: CdfRawConfig,
    /// `raw/dbs/{db}/tables/{table}/rows?ensureParent=true`, escaped.
    path: String,
}

/// Builds a `cdf-raw` sink.
pub fn build(config: CdfRawConfig, sections: &Sections) -> Result<CdfRawSink, BuildError> {
    let problems = [
        crate::config::check::not_blank(&config.database, "database").err(),
        crate::config::check::not_blank(&config.table, "table").err(),
        config.key.check("key").err(),
        config.columns.check("columns").err(),
        CdfApi::from_sections(sections).err(),
    ];
    if let Some(error) = BuildError::all(problems.into_iter().flatten()) {
        return Err(error);
    }
    let segment = |text: &str| percent_encoding::utf8_percent_encode(text, SEGMENT).to_string();
    let path = format!(
        "raw/dbs/{}/tables/{}/rows?ensureParent=true",
        segment(&config.database),
        segment(&config.table)
    );
    Ok(CdfRawSink {
        api: CdfApi::from_sections(sections)?,
        config,
        path,
    })
}

impl CdfRawSink {
    /// The row of `record`, or why it has none.
    fn row(&self, record: &Value) -> Result<(String, Map<String, Value>), String> {
        let key = match self.config.key.get(record) {
            Some(Value::String(key)) if !key.is_empty() => key.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => {
                return Err(format!(
                    "the record has no string or number key at {:?}",
                    self.config.key.as_str()
                ))
            }
        };
        match self.config.columns.get(record) {
            Some(Value::Object(columns)) => Ok((key, columns.clone())),
            _ => Err(format!(
                "the record has no object of columns at {:?}",
                self.config.columns.as_str()
            )),
        }
    }
}

#[async_trait::async_trait]
impl Sink for CdfRawSink {
    async fn deliver(&self, ctx: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let mut rows = LastWins::with_capacity(batch.len());
        for record in batch {
            match self.row(record) {
                Ok((key, columns)) => rows.put(key, columns),
                Err(error) => ctx.reject(record, &error).await?,
            }
        }
        for chunk in chunk::split(rows.into_items(), RAW_ROWS, usize::MAX, |_| 1) {
            let items: Vec<Value> = chunk
                .into_iter()
                .map(|(key, columns)| json!({"key": key, "columns": columns}))
                .collect();
            self.api
                .post(ctx, &self.path, &json!({"items": items}))
                .await?;
        }
        Ok(())
    }
}
