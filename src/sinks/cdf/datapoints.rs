//! `sink.type: cdf-datapoints`: each record is one datapoint of a CDF time series, found by its
//! external id.
//!
//! Points are checked before anything is sent, with the limits CDF enforces (and
//! extractor-utils checks): values within ±1e100, no NaN or infinity, strings at most 1,023
//! bytes, timestamps from 1900-01-01 to the end of 2099. A failing record goes to the task's
//! `on-error`. A batch becomes requests of at most 100,000 points and 10,000 series. When CDF
//! names series that do not exist (`missing`), `create-missing` creates them (string or numeric
//! after each one's first value) and sends again; without it their points go to `on-error` and
//! the rest is sent. Writing a point again overwrites it, so a batch sent twice leaves the same
//! data.

use std::collections::{HashMap, HashSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{CdfApi, Items};
use super::chunk::{self, DATAPOINTS, ITEMS, SERIES};
use super::error::CdfError;
use super::pointer::Pointer;
use crate::config::{BuildError, Sections};
use crate::runner::{Sink, TaskContext, TaskError};

/// `sink: {type: cdf-datapoints, external-id: /tag, timestamp: /ts, value: /value}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CdfDatapointsConfig {
    /// JSON pointer to the time series' external id (a string).
    pub external_id: Pointer,
    /// JSON pointer to the timestamp: milliseconds since the epoch, or an RFC 3339 string.
    pub timestamp: Pointer,
    /// JSON pointer to the value: a number, or a string for string time series.
    pub value: Pointer,
    /// Create the time series CDF says are missing, then send their points again.
    #[serde(default)]
    pub create_missing: bool,
    /// The data set the created time series belong to (with `create-missing`).
    pub data_set_id: Option<i64>,
}

/// The built sink.
#[derive(Debug)]
pub struct CdfDatapointsSink {
    api: CdfApi,
    config: CdfDatapointsConfig,
}

/// Builds a `cdf-datapoints` sink.
pub fn build(
    config: CdfDatapointsConfig,
    sections: &Sections,
) -> Result<CdfDatapointsSink, BuildError> {
    let mut problems = vec![
        config.external_id.check("external-id").err(),
        config.timestamp.check("timestamp").err(),
        config.value.check("value").err(),
        CdfApi::from_sections(sections).err(),
    ];
    if config.data_set_id.is_some() && !config.create_missing {
        let message = "only used for the series create-missing creates; set create-missing: true";
        problems.push(Some(BuildError::at("data-set-id", message)));
    }
    if let Some(error) = BuildError::all(problems.into_iter().flatten()) {
        return Err(error);
    }
    Ok(CdfDatapointsSink {
        api: CdfApi::from_sections(sections)?,
        config,
    })
}

/// The earliest timestamp CDF stores: 1900-01-01T00:00:00Z.
pub const MIN_TIMESTAMP: i64 = -2_208_988_800_000;
/// The latest timestamp CDF stores: 2099-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP: i64 = 4_102_444_799_999;
/// The largest magnitude of a numeric value.
pub const MAX_ABS_VALUE: f64 = 1e100;
/// The longest string value, in bytes.
pub const MAX_STRING_BYTES: usize = 1023;

/// One point as sent, with the index of its record in the batch.
#[derive(Debug, Serialize)]
struct Point {
    timestamp: i64,
    value: Value,
    #[serde(skip)]
    record: usize,
}

/// One series' points of a request.
#[derive(Debug, Serialize)]
struct Series {
    #[serde(rename = "externalId")]
    external_id: String,
    datapoints: Vec<Point>,
}

impl CdfDatapointsSink {
    /// The point of `record`, or why it cannot be sent.
    fn point<'a>(&self, record: &'a Value, index: usize) -> Result<(&'a str, Point), String> {
        let external_id = match self.config.external_id.get(record) {
            Some(Value::String(id)) if !id.is_empty() => id.as_str(),
            _ => {
                return Err(format!(
                    "no external id (a string) at {:?}",
                    self.config.external_id.as_str()
                ))
            }
        };
        let timestamp = timestamp(self.config.timestamp.get(record)).map_err(|why| {
            format!(
                "{external_id}: timestamp at {:?} {why}",
                self.config.timestamp.as_str()
            )
        })?;
        let value = value(self.config.value.get(record)).map_err(|why| {
            format!(
                "{external_id}: value at {:?} {why}",
                self.config.value.as_str()
            )
        })?;
        Ok((
            external_id,
            Point {
                timestamp,
                value,
                record: index,
            },
        ))
    }

    /// The batch's points by series, in order of first appearance; rejected records go to
    /// `on-error` before anything is sent.
    async fn group(&self, ctx: &TaskContext, batch: &[Value]) -> Result<Vec<Series>, TaskError> {
        let mut series: Vec<Series> = Vec::new();
        let mut at: HashMap<&str, usize> = HashMap::new();
        for (index, record) in batch.iter().enumerate() {
            let (external_id, point) = match self.point(record, index) {
                Ok(found) => found,
                Err(error) => {
                    ctx.reject(record, &error).await?;
                    continue;
                }
            };
            let slot = *at.entry(external_id).or_insert_with(|| {
                series.push(Series {
                    external_id: external_id.to_string(),
                    datapoints: Vec::new(),
                });
                series.len() - 1
            });
            series[slot].datapoints.push(point);
        }
        Ok(series)
    }

    /// Sends one request's series, dealing with the ones CDF says are missing.
    async fn send(
        &self,
        ctx: &TaskContext,
        mut series: Vec<Series>,
        batch: &[Value],
    ) -> Result<(), TaskError> {
        let mut created = false;
        while !series.is_empty() {
            let body = Items { items: &series };
            let answer = self.api.post(ctx, "timeseries/data", &body).await;
            let error = match answer {
                Ok(_) => return Ok(()),
                Err(CdfError::Api(error)) if !error.missing.is_empty() => error,
                Err(error) => return Err(error.into()),
            };
            let missing: HashSet<String> = error.missing_external_ids().into_iter().collect();
            if missing.is_empty() || (self.config.create_missing && created) {
                return Err(CdfError::Api(error).into());
            }
            if self.config.create_missing {
                self.create(ctx, &series, &missing).await?;
                created = true;
                continue;
            }
            let (gone, kept): (Vec<Series>, Vec<Series>) = series
                .into_iter()
                .partition(|s| missing.contains(&s.external_id));
            if gone.is_empty() {
                // CDF named series this request does not hold: sending it again would not help.
                return Err(CdfError::Api(error).into());
            }
            for lost in gone {
                let why = format!("time series {:?} does not exist in CDF (set create-missing: true to create it)", lost.external_id);
                for point in &lost.datapoints {
                    ctx.reject(&batch[point.record], &why).await?;
                }
            }
            series = kept;
        }
        Ok(())
    }

    /// Creates the `missing` series of `series`, each string or numeric after its first value;
    /// a series created meanwhile by someone else (`duplicated`) is fine.
    async fn create(
        &self,
        ctx: &TaskContext,
        series: &[Series],
        missing: &HashSet<String>,
    ) -> Result<(), TaskError> {
        let items: Vec<Value> = series
            .iter()
            .filter(|s| missing.contains(&s.external_id))
            .map(|s| {
                let is_string = s.datapoints.first().is_some_and(|p| p.value.is_string());
                let mut item = json!({"externalId": s.external_id, "isString": is_string});
                if let Some(data_set) = self.config.data_set_id {
                    item["dataSetId"] = data_set.into();
                }
                item
            })
            .collect();
        for mut chunk in chunk::split(items, ITEMS, usize::MAX, |_| 1) {
            while !chunk.is_empty() {
                match self
                    .api
                    .post(ctx, "timeseries", &json!({"items": &chunk}))
                    .await
                {
                    Ok(_) => break,
                    Err(CdfError::Api(error)) if !error.duplicated.is_empty() => {
                        let exists: HashSet<String> =
                            error.duplicated_external_ids().into_iter().collect();
                        chunk.retain(|item| {
                            !item["externalId"]
                                .as_str()
                                .is_some_and(|id| exists.contains(id))
                        });
                    }
                    Err(error) => return Err(error.into()),
                }
            }
        }
        tracing::info!(series = missing.len(), "created missing time series");
        Ok(())
    }
}

#[async_trait::async_trait]
impl Sink for CdfDatapointsSink {
    async fn deliver(&self, ctx: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let series = self.group(ctx, batch).await?;
        let pieces = series.into_iter().flat_map(split_long).collect();
        for request in chunk::split(pieces, SERIES, DATAPOINTS, |s| s.datapoints.len()) {
            self.send(ctx, request, batch).await?;
        }
        Ok(())
    }
}

/// A series with more points than one request takes, as several.
fn split_long(mut series: Series) -> Vec<Series> {
    let mut pieces = Vec::new();
    while series.datapoints.len() > DATAPOINTS {
        let rest = series.datapoints.split_off(DATAPOINTS);
        let head = std::mem::replace(&mut series.datapoints, rest);
        pieces.push(Series {
            external_id: series.external_id.clone(),
            datapoints: head,
        });
    }
    pieces.push(series);
    pieces
}

/// Milliseconds since the epoch from a number or an RFC 3339 string, within CDF's range.
fn timestamp(found: Option<&Value>) -> Result<i64, String> {
    let ms = match found {
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(ms), _) => ms,
            (None, Some(ms)) if ms.is_finite() && ms.fract() == 0.0 && ms.abs() < 9.0e15 => {
                ms as i64
            }
            _ => return Err("is not a whole number of milliseconds".into()),
        },
        Some(Value::String(text)) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|_| "is not an RFC 3339 time".to_string())?
            .timestamp_millis(),
        _ => return Err("is missing (milliseconds since the epoch, or RFC 3339)".into()),
    };
    match (MIN_TIMESTAMP..=MAX_TIMESTAMP).contains(&ms) {
        true => Ok(ms),
        false => Err(format!(
            "{ms} is outside 1900-01-01..2099-12-31, which CDF stores"
        )),
    }
}

/// A number within ±1e100 (no NaN or infinity; JSON has none anyway) or a string of at most
/// 1,023 bytes.
fn value(found: Option<&Value>) -> Result<Value, String> {
    match found {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && v.abs() <= MAX_ABS_VALUE => Ok(Value::Number(n.clone())),
            _ => Err(format!("{n} is outside ±1e100")),
        },
        Some(Value::String(text)) if text.len() <= MAX_STRING_BYTES => {
            Ok(Value::String(text.clone()))
        }
        Some(Value::String(text)) => Err(format!(
            "is a string of {} bytes; CDF takes at most {MAX_STRING_BYTES}",
            text.len()
        )),
        _ => Err("is missing (a number or a string)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_milliseconds_or_rfc3339_within_range() {
        assert_eq!(timestamp(Some(&json!(1700000000000i64))), Ok(1700000000000));
        assert_eq!(timestamp(Some(&json!("1970-01-01T00:00:01.5Z"))), Ok(1500));
        assert_eq!(timestamp(Some(&json!(MIN_TIMESTAMP))), Ok(MIN_TIMESTAMP));
        assert!(timestamp(Some(&json!(MIN_TIMESTAMP - 1))).is_err());
        assert!(timestamp(Some(&json!(MAX_TIMESTAMP + 1))).is_err());
        assert!(timestamp(Some(&json!("yesterday"))).is_err());
        assert!(timestamp(Some(&json!(1.5))).is_err());
        assert!(timestamp(None).is_err());
    }

    #[test]
    fn values_are_bounded_numbers_or_short_strings() {
        assert_eq!(value(Some(&json!(1e100))), Ok(json!(1e100)));
        assert!(value(Some(&json!(-1.1e100))).is_err());
        assert!(value(Some(&json!("x".repeat(1023)))).is_ok());
        assert!(value(Some(&json!("é".repeat(512)))).is_err(), "1,024 bytes");
        assert!(value(Some(&json!(true))).is_err());
        assert!(value(Some(&Value::Null)).is_err());
    }

    #[test]
    fn a_long_series_is_cut_at_the_request_limit() {
        let points = (0..DATAPOINTS * 2 + 1)
            .map(|n| Point {
                timestamp: n as i64,
                value: json!(1),
                record: n,
            })
            .collect();
        let pieces = split_long(Series {
            external_id: "a".into(),
            datapoints: points,
        });
        let sizes: Vec<usize> = pieces.iter().map(|s| s.datapoints.len()).collect();
        assert_eq!(sizes, [DATAPOINTS, DATAPOINTS, 1]);
        assert_eq!(pieces[2].datapoints[0].timestamp, (DATAPOINTS * 2) as i64);
    }
}
