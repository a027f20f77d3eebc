//! The project's data, as the endpoints keep it.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

/// Everything the server holds.
#[derive(Default, Debug)]
pub struct Store {
    /// RAW: (database, table) → its rows.
    pub raw: BTreeMap<(String, String), Table>,
    /// Time series by external id.
    pub series: BTreeMap<String, Series>,
    /// Events by external id.
    pub events: BTreeMap<String, Event>,
    /// Registered extraction pipelines.
    pub pipelines: HashSet<String>,
    /// Reported runs, in arrival order.
    pub runs: Vec<Run>,
    /// Extraction pipeline config revisions by pipeline, oldest first: (revision, YAML text).
    pub configs: BTreeMap<String, Vec<(i64, String)>>,
    /// The last id handed out.
    pub last_id: i64,
}

/// A RAW table: key → (columns, lastUpdatedTime).
pub type Table = BTreeMap<String, (Map<String, Value>, i64)>;

/// A time series and its points.
#[derive(Debug, Clone)]
pub struct Series {
    pub id: i64,
    pub is_string: bool,
    pub data_set_id: Option<i64>,
    pub created: i64,
    /// timestamp → value.
    pub points: BTreeMap<i64, Value>,
}

/// An event: its fields as CDF returns them.
#[derive(Debug, Clone)]
pub struct Event {
    pub fields: Map<String, Value>,
}

/// One reported run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: i64,
    pub external_id: String,
    pub status: String,
    pub message: Option<String>,
    pub created_time: i64,
}

impl Store {
    /// Adds a config revision to `pipeline`; returns its number (1, 2, …).
    pub fn add_config(&mut self, pipeline: &str, text: &str) -> i64 {
        let revisions = self.configs.entry(pipeline.to_string()).or_default();
        let revision = revisions.last().map_or(1, |(n, _)| n + 1);
        revisions.push((revision, text.to_string()));
        revision
    }

    /// A new id.
    pub fn next_id(&mut self) -> i64 {
        self.last_id += 1;
        self.last_id
    }

    /// The rows of a RAW table, key → columns.
    pub fn rows(&self, db: &str, table: &str) -> BTreeMap<String, Map<String, Value>> {
        self.raw
            .get(&(db.to_string(), table.to_string()))
            .map(|rows| {
                rows.iter()
                    .map(|(k, (c, _))| (k.clone(), c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Creates a time series directly (setting up a test).
    pub fn add_series(&mut self, external_id: &str, is_string: bool) {
        let id = self.next_id();
        let created = super::reply::now_ms();
        let series = Series {
            id,
            is_string,
            data_set_id: None,
            created,
            points: BTreeMap::new(),
        };
        self.series.insert(external_id.to_string(), series);
    }

    /// The runs of one pipeline, their statuses in order.
    pub fn statuses(&self, external_id: &str) -> Vec<String> {
        self.runs
            .iter()
            .filter(|run| run.external_id == external_id)
            .map(|run| run.status.clone())
            .collect()
    }
}
