//! The API's limits per request, and splitting a batch to fit them. A sink block's `batch-size`
//! is the user's choice; these are CDF's, so a large batch becomes several requests and a small
//! one stays one.

use std::collections::HashMap;

/// Rows per `POST /raw/dbs/{db}/tables/{table}/rows`.
pub const RAW_ROWS: usize = 10_000;
/// Datapoints per `POST /timeseries/data`, over all its series.
pub const DATAPOINTS: usize = 100_000;
/// Series per `POST /timeseries/data`.
pub const SERIES: usize = 10_000;
/// Items per `POST /events`, `/events/update` and `/timeseries`.
pub const ITEMS: usize = 1_000;

/// Splits `items` in order into requests of at most `max_items` items whose `weight`s add up to
/// at most `max_weight` (an item heavier than that goes alone).
pub fn split<T>(
    items: Vec<T>,
    max_items: usize,
    max_weight: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut load = 0;
    for item in items {
        let heavy = weight(&item);
        if !current.is_empty() && (current.len() >= max_items || load + heavy > max_weight) {
            out.push(std::mem::take(&mut current));
            load = 0;
        }
        load += heavy;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Keyed items with one item per key: the last of a key replaces the earlier ones, at the
/// place the key first appeared. CDF refuses (events) or needlessly rewrites (RAW rows) a key
/// twice in one request, and the last record is the one that would have won anyway.
#[derive(Debug)]
pub struct LastWins<T> {
    items: Vec<(String, T)>,
    at: HashMap<String, usize>,
}

impl<T> LastWins<T> {
    /// Room for `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            items: Vec::with_capacity(capacity),
            at: HashMap::with_capacity(capacity),
        }
    }

    /// Adds `item` under `key`, replacing an earlier one.
    pub fn put(&mut self, key: String, item: T) {
        match self.at.get(&key) {
            Some(&index) => self.items[index].1 = item,
            None => {
                self.at.insert(key.clone(), self.items.len());
                self.items.push((key, item));
            }
        }
    }

    /// The items, in order of their keys' first appearance.
    pub fn into_items(self) -> Vec<(String, T)> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_item_of_a_key_wins_in_its_first_place() {
        let mut items = LastWins::with_capacity(3);
        for (key, value) in [("a", 1), ("b", 2), ("a", 3)] {
            items.put(key.to_string(), value);
        }
        assert_eq!(
            items.into_items(),
            [("a".to_string(), 3), ("b".to_string(), 2)]
        );
    }

    #[test]
    fn requests_respect_both_limits() {
        let by_count = split((0..25).collect(), 10, usize::MAX, |_| 1);
        assert_eq!(
            by_count.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let by_weight = split(vec![60, 50, 40, 10, 100], 10, 100, |w| *w);
        assert_eq!(by_weight, [vec![60], vec![50, 40, 10], vec![100]]);
        assert!(split(Vec::<u8>::new(), 1, 1, |_| 1).is_empty());
    }
}
