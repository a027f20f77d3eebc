//! `sink.type: cdf-events`: each record is a CDF event object with an `externalId`.
//!
//! `mode: upsert` (the default) does what the official SDK's `upsert` does, client-side:
//! `POST /events/update` with `set` for every field the record has (`metadata` and `assetIds`
//! replaced, not merged; a `null` field cleared), then `POST /events` for the ones CDF named
//! `missing`. A 409 `duplicated` on that create means an earlier attempt (or another writer) got
//! there first, so those are updated instead. Sending a batch again gives the same events.
//!
//! `mode: create` only creates; a 409 `duplicated` means those events were delivered before (a
//! retried run), so they count as delivered and the rest is sent again.
//!
//! Records are checked before anything is sent: an object, a string `externalId`, and only the
//! fields CDF events have (anything else would fail the whole request). Within a batch the last
//! record of an external id wins; at most 1,000 events go in one request.

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::api::CdfApi;
use super::chunk::{self, LastWins, ITEMS};
use super::error::CdfError;
use crate::config::{BuildError, Sections};
use crate::runner::{Sink, TaskContext, TaskError};

/// `sink: {type: cdf-events, mode: upsert}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CdfEventsConfig {
    /// `upsert`: update the events that exist, create the others. `create`: create only; events
    /// that already exist count as delivered.
    #[serde(default)]
    pub mode: Mode,
}

/// How events are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Update, then create the missing ones.
    #[default]
    Upsert,
    /// Create; existing ones are left as they are.
    Create,
}

/// The fields of a CDF event a record may have.
pub const FIELDS: [&str; 10] = [
    "externalId",
    "startTime",
    "endTime",
    "type",
    "subtype",
    "description",
    "metadata",
    "assetIds",
    "dataSetId",
    "source",
];

/// How many update-then-create rounds a request gets before the sink gives up: a second round
/// only happens when events were created by someone else between our update and our create.
const ROUNDS: usize = 3;

/// The built sink.
#[derive(Debug)]
pub struct CdfEventsSink {
    api: CdfApi,
    mode: Mode,
}

/// Builds a `cdf-events` sink.
pub fn build(config: CdfEventsConfig, sections: &Sections) -> Result<CdfEventsSink, BuildError> {
    Ok(CdfEventsSink {
        api: CdfApi::from_sections(sections)?,
        mode: config.mode,
    })
}

/// An event as sent, keyed by its external id.
type Event = (String, Map<String, Value>);

#[async_trait::async_trait]
impl Sink for CdfEventsSink {
    async fn deliver(&self, ctx: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let mut events = LastWins::with_capacity(batch.len());
        for record in batch {
            match event(record) {
                Ok((id, fields)) => events.put(id, fields),
                Err(error) => ctx.reject(record, &error).await?,
            }
        }
        for request in chunk::split(events.into_items(), ITEMS, usize::MAX, |_| 1) {
            match self.mode {
                Mode::Upsert => self.upsert(ctx, request).await?,
                Mode::Create => {
                    self.create(ctx, request).await?;
                }
            }
        }
        Ok(())
    }
}

impl CdfEventsSink {
    /// Updates the events that exist and creates the others.
    async fn upsert(&self, ctx: &TaskContext, mut update: Vec<Event>) -> Result<(), TaskError> {
        for _ in 0..ROUNDS {
            let missing = self.update(ctx, &mut update).await?;
            let (mut create, rest): (Vec<Event>, Vec<Event>) = std::mem::take(&mut update)
                .into_iter()
                .partition(|(id, _)| missing.contains(id));
            debug_assert!(rest.is_empty() || missing.len() < rest.len() + create.len());
            update = self.create_some(ctx, &mut create).await?;
            if update.is_empty() {
                return Ok(());
            }
        }
        Err(TaskError::msg(format!(
            "events kept appearing and disappearing between update and create after {ROUNDS} rounds"
        )))
    }

    /// `POST /events/update` for `events` (all of them, also the missing, which are returned):
    /// CDF applies none of a request that names a missing event, so those leave and the rest is
    /// sent again.
    async fn update(
        &self,
        ctx: &TaskContext,
        events: &mut [Event],
    ) -> Result<HashSet<String>, TaskError> {
        let mut missing = HashSet::new();
        loop {
            let items: Vec<Value> = events
                .iter()
                .filter(|(id, _)| !missing.contains(id))
                .map(|(id, fields)| update_item(id, fields))
                .collect();
            if items.is_empty() {
                return Ok(missing);
            }
            match self
                .api
                .post(ctx, "events/update", &json!({"items": items}))
                .await
            {
                Ok(_) => return Ok(missing),
                Err(CdfError::Api(error)) if !error.missing_external_ids().is_empty() => {
                    let before = missing.len();
                    missing.extend(error.missing_external_ids());
                    if missing.len() == before {
                        // Named before and left out since: CDF is not answering about this
                        // request, and sending it again would not change that.
                        return Err(CdfError::Api(error).into());
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// `POST /events` for `events`; returns the ones that already existed (409 `duplicated`),
    /// after creating the rest.
    async fn create_some(
        &self,
        ctx: &TaskContext,
        events: &mut Vec<Event>,
    ) -> Result<Vec<Event>, TaskError> {
        let mut existing = Vec::new();
        while !events.is_empty() {
            let items: Vec<&Map<String, Value>> = events.iter().map(|(_, fields)| fields).collect();
            match self.api.post(ctx, "events", &json!({"items": items})).await {
                Ok(_) => break,
                Err(CdfError::Api(error)) if !error.duplicated_external_ids().is_empty() => {
                    let duplicated: HashSet<String> =
                        error.duplicated_external_ids().into_iter().collect();
                    let (dup, rest): (Vec<Event>, Vec<Event>) = std::mem::take(events)
                        .into_iter()
                        .partition(|(id, _)| duplicated.contains(id));
                    if dup.is_empty() {
                        *events = rest;
                        return Err(CdfError::Api(error).into());
                    }
                    existing.extend(dup);
                    *events = rest;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(existing)
    }

    /// `mode: create`: events that already exist count as delivered.
    async fn create(&self, ctx: &TaskContext, mut events: Vec<Event>) -> Result<(), TaskError> {
        let existing = self.create_some(ctx, &mut events).await?;
        if !existing.is_empty() {
            tracing::debug!(
                events = existing.len(),
                "events already in CDF; counted as delivered"
            );
        }
        Ok(())
    }
}

/// The event of `record`, or why it is not one.
fn event(record: &Value) -> Result<Event, String> {
    let Value::Object(fields) = record else {
        return Err("an event record must be a JSON object".into());
    };
    let Some(Value::String(id)) = fields.get("externalId") else {
        return Err("the event has no string externalId".into());
    };
    if let Some(unknown) = fields.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(format!(
            "{id}: {unknown:?} is not a field of a CDF event (fields: {})",
            FIELDS.join(", ")
        ));
    }
    Ok((id.clone(), fields.clone()))
}

/// `{"externalId", "update": {field: {"set": value}}}`; a `null` field is cleared.
fn update_item(id: &str, fields: &Map<String, Value>) -> Value {
    let update: Map<String, Value> = fields
        .iter()
        .filter(|(key, _)| key.as_str() != "externalId")
        .map(|(key, value)| {
            let change = match value {
                Value::Null => json!({"setNull": true}),
                value => json!({"set": value}),
            };
            (key.clone(), change)
        })
        .collect();
    json!({"externalId": id, "update": update})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_set_and_null_clears() {
        let fields = json!({"externalId": "e1", "metadata": {"a": "1"}, "description": null});
        let item = update_item("e1", fields.as_object().unwrap());
        assert_eq!(
            item,
            json!({"externalId": "e1", "update": {"metadata": {"set": {"a": "1"}}, "description": {"setNull": true}}})
        );
    }

    #[test]
    fn records_must_be_events() {
        assert!(event(&json!({"externalId": "e", "startTime": 1})).is_ok());
        assert!(event(&json!([1])).is_err());
        assert!(event(&json!({"externalId": 7})).is_err());
        let unknown = event(&json!({"externalId": "e", "colour": "red"})).unwrap_err();
        assert!(unknown.contains("\"colour\""), "{unknown}");
    }
}
