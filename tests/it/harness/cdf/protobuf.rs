//! The protobuf answer of `POST /timeseries/data/list`, which the official SDK asks for
//! (`accept: application/protobuf`): `DataPointListResponse` from the SDK's own `.proto`
//! (items = 1; item: id = 1, externalId = 2, numericDatapoints = 3, stringDatapoints = 4,
//! isString = 6, nextCursor = 9; datapoints = 1; datapoint: timestamp = 1, value = 2). Written by
//! hand: a few varints and length-prefixed fields, not worth a code generator in the tests.

use serde_json::Value;

/// One series of an answer.
pub struct ListItem<'a> {
    pub id: i64,
    pub external_id: &'a str,
    pub is_string: bool,
    pub points: Vec<(i64, &'a Value)>,
    pub next_cursor: Option<String>,
}

/// The encoded `DataPointListResponse`.
pub fn encode(items: &[ListItem]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        message(&mut out, 1, &encode_item(item));
    }
    out
}

fn encode_item(item: &ListItem) -> Vec<u8> {
    let mut out = Vec::new();
    key(&mut out, 1, 0);
    varint(&mut out, item.id as u64);
    message(&mut out, 2, item.external_id.as_bytes());
    let mut points = Vec::new();
    for (timestamp, value) in &item.points {
        let mut point = Vec::new();
        key(&mut point, 1, 0);
        varint(&mut point, *timestamp as u64);
        match value {
            Value::String(text) => message(&mut point, 2, text.as_bytes()),
            value => {
                key(&mut point, 2, 1);
                point.extend_from_slice(&value.as_f64().unwrap_or(f64::NAN).to_le_bytes());
            }
        }
        message(&mut points, 1, &point);
    }
    message(&mut out, if item.is_string { 4 } else { 3 }, &points);
    if item.is_string {
        key(&mut out, 6, 0);
        varint(&mut out, 1);
    }
    if let Some(cursor) = &item.next_cursor {
        message(&mut out, 9, cursor.as_bytes());
    }
    out
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn message(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}
