//! A whole extractor binary with a sink of its own: `csv` writes chosen fields of each record as
//! one CSV line, so any built-in source (`file`, `http-poll`) can feed a spreadsheet.
//!
//! ```yaml
//! tasks:
//!   - name: readings
//!     type: file
//!     schedule: {interval: 10s}
//!     source: {path: "examples/data/*.jsonl"}
//!     sink: {type: csv, path: out/readings.csv, columns: [sensor, value], batch-size: 1000}
//! ```
//!
//! `cargo run --example custom_sink -- run -c my.yaml --once`

use std::io::Write;
use std::path::PathBuf;

use tapline::prelude::*;

/// `sink: {type: csv, ...}`: append chosen fields as CSV lines.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct CsvSinkConfig {
    /// The file to append to; its directory must exist.
    path: PathBuf,
    /// The top-level fields to write, in this order; a missing field is an empty cell.
    columns: Vec<String>,
}

#[derive(Debug)]
struct CsvSink {
    config: CsvSinkConfig,
}

fn build(config: CsvSinkConfig) -> Result<CsvSink, BuildError> {
    if config.columns.is_empty() {
        return Err(BuildError::at("columns", "name at least one field"));
    }
    Ok(CsvSink { config })
}

impl CsvSink {
    fn line(&self, record: &Value) -> String {
        let cells: Vec<String> = self
            .config
            .columns
            .iter()
            .map(|column| match record.get(column) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => quote(text),
                Some(other) => quote(&other.to_string()),
            })
            .collect();
        cells.join(",") + "\n"
    }
}

/// RFC 4180 quoting: a cell with a comma, quote or line break is quoted, quotes doubled.
fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[async_trait]
impl Sink for CsvSink {
    async fn deliver(&self, _: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let text: String = batch.iter().map(|record| self.line(record)).collect();
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.config.path)?;
            file.write_all(text.as_bytes())?;
            file.sync_data()
        };
        write().map_err(|error| TaskError::with("cannot append to the CSV file", error))
    }
}

fn main() -> std::process::ExitCode {
    let mut registry = Registry::builtin();
    registry.sink("csv", build);
    cli::main("csv-extractor", registry)
}
