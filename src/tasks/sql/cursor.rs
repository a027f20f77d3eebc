//! [`Cursor`]: where the next page and the next run start: the cursor columns' values of the
//! last delivered row, and the database's type of each.
//!
//! Kept in the task's state as two keys: `cursor`, an object of the plain values (what a
//! transform sees as `$cursor`), and `cursor-types`, the type of each column as the database
//! named it, so a value is bound back as exactly what it was read as (a MySQL `DATETIME` as a
//! datetime, not as text).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::Error;
use super::fetch::{Bind, Column};
use super::placeholders::Param;
use crate::runner::{StateError, StateHandle};

const VALUES: &str = "cursor";
const TYPES: &str = "cursor-types";

/// The cursor columns' values, with their types where known.
#[derive(Debug, Clone, PartialEq)]
pub struct Cursor {
    values: Map<String, Value>,
    types: Map<String, Value>,
}

impl Cursor {
    /// The saved cursor, or `initial` before any was saved.
    pub fn start(state: &StateHandle, initial: &Map<String, Value>) -> Result<Self, StateError> {
        let saved: Option<Map<String, Value>> = state.get(VALUES)?;
        Ok(match saved {
            Some(values) => Self {
                values,
                types: state.get(TYPES)?.unwrap_or_default(),
            },
            None => Self {
                values: initial.clone(),
                types: Map::new(),
            },
        })
    }

    /// Saves it in the task's state.
    pub fn store(&self, state: &StateHandle) -> Result<(), StateError> {
        state.set(VALUES, &self.values)?;
        state.set(TYPES, &self.types)
    }

    /// The plain values, as a transform sees them.
    pub fn values(&self) -> Value {
        Value::Object(self.values.clone())
    }

    /// The cursor of `record`: its values of `columns` (each must be a column of the query).
    pub fn of(
        record: &Map<String, Value>,
        query_columns: &Arc<[Column]>,
        columns: &[String],
    ) -> Result<Self, Error> {
        let mut cursor = Self {
            values: Map::new(),
            types: Map::new(),
        };
        for name in columns {
            let column = query_columns
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| Error::CursorColumnMissing {
                    column: name.clone(),
                    columns: query_columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
            let value = record.get(name).cloned().unwrap_or(Value::Null);
            cursor.values.insert(name.clone(), value);
            cursor
                .types
                .insert(name.clone(), Value::String(column.type_name.clone()));
        }
        Ok(cursor)
    }

    /// The values of `params`, in order, for a page of `limit` rows.
    pub fn binds(&self, params: &[Param], limit: u32) -> Vec<Bind> {
        params
            .iter()
            .map(|param| match param {
                Param::Limit => Bind {
                    label: param.to_string(),
                    value: Value::from(limit),
                    type_name: None,
                },
                Param::Cursor(column) => Bind {
                    label: param.to_string(),
                    value: self.values.get(column).cloned().unwrap_or(Value::Null),
                    type_name: self
                        .types
                        .get(column)
                        .and_then(Value::as_str)
                        .map(str::to_string),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_gives_its_cursor_values_and_types_and_they_bind_in_placeholder_order() {
        let columns: Arc<[Column]> = vec![
            Column {
                name: "id".into(),
                type_name: "BIGINT".into(),
            },
            Column {
                name: "updated_at".into(),
                type_name: "DATETIME".into(),
            },
        ]
        .into();
        let record = json!({"id": 7, "updated_at": "2024-01-01T00:00:00.000001", "x": 1});
        let cursor = Cursor::of(
            record.as_object().unwrap(),
            &columns,
            &["updated_at".into(), "id".into()],
        )
        .unwrap();
        assert_eq!(
            cursor.values(),
            json!({"updated_at": "2024-01-01T00:00:00.000001", "id": 7})
        );
        let binds = cursor.binds(
            &[
                Param::Cursor("updated_at".into()),
                Param::Cursor("id".into()),
                Param::Limit,
            ],
            100,
        );
        assert_eq!(binds[0].type_name.as_deref(), Some("DATETIME"));
        assert_eq!(binds[1].value, json!(7));
        assert_eq!(binds[2].value, json!(100));
        let missing = Cursor::of(record.as_object().unwrap(), &columns, &["version".into()]);
        assert!(matches!(missing, Err(Error::CursorColumnMissing { .. })));
    }
}
