//! Finds the line of each key in the YAML text, so problems can point at the file.
//!
//! serde_yaml keeps no positions, so this replays the document through yaml-rust2's event
//! parser and records where each key path starts.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::path::KeyPath;

/// Line numbers (1-based) by key path, as displayed (`tasks[1].schedule`).
pub(crate) struct Lines(HashMap<String, usize>);

impl Lines {
    /// Indexes `text`; a document that does not parse yields no lines.
    pub(crate) fn of(text: &str) -> Self {
        let mut recorder = Recorder::default();
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut recorder, false);
        Self(recorder.lines)
    }

    /// The line of `path`, or of its closest ancestor written in the file.
    pub(crate) fn find(&self, path: &str) -> Option<usize> {
        let mut candidate = path;
        loop {
            if let Some(line) = self.0.get(candidate) {
                return Some(*line);
            }
            let cut = candidate.rfind(['.', '['])?;
            candidate = &candidate[..cut];
        }
    }
}

enum Frame {
    Map { path: KeyPath, key: Option<String> },
    List { path: KeyPath, index: usize },
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Recorder {
    /// The path of the value about to be read.
    fn value_path(&self) -> Option<KeyPath> {
        match self.stack.last() {
            None => Some(KeyPath::root()),
            Some(Frame::Map { path, key }) => key.as_ref().map(|key| path.key(key)),
            Some(Frame::List { path, index }) => Some(path.index(*index)),
        }
    }

    fn record(&mut self, path: &KeyPath, mark: Marker) {
        self.lines.entry(path.to_string()).or_insert(mark.line());
    }

    /// After a value: a mapping waits for its next key, a list moves to its next item.
    fn finish_value(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map { key, .. }) => *key = None,
            Some(Frame::List { index, .. }) => *index += 1,
            None => {}
        }
    }

    fn open(&mut self, mark: Marker, make: impl FnOnce(KeyPath) -> Frame) {
        let path = self.value_path().unwrap_or_default();
        self.record(&path, mark);
        self.stack.push(make(path));
    }
}

impl MarkedEventReceiver for Recorder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::MappingStart(..) => self.open(mark, |path| Frame::Map { path, key: None }),
            Event::SequenceStart(..) => self.open(mark, |path| Frame::List { path, index: 0 }),
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                self.finish_value();
            }
            Event::Scalar(text, ..) => {
                if let Some(Frame::Map { path, key: key @ None }) = self.stack.last_mut() {
                    let key_path = path.key(&text);
                    *key = Some(text);
                    self.record(&key_path, mark);
                } else {
                    if let Some(path) = self.value_path() {
                        self.record(&path, mark);
                    }
                    self.finish_value();
                }
            }
            Event::Alias(_) => self.finish_value(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_keys_and_list_items() {
        let text = "auth:\n  type: none\ntasks:\n  - name: a\n    schedule: {interval: 30s}\n  - name: b\n    schedule:\n      interval: 5m\n";
        let lines = Lines::of(text);
        assert_eq!(lines.find("auth.type"), Some(2));
        assert_eq!(lines.find("tasks[0].schedule.interval"), Some(5));
        assert_eq!(lines.find("tasks[1].name"), Some(6));
        assert_eq!(lines.find("tasks[1].schedule.interval"), Some(8));
        assert_eq!(lines.find("tasks[1].type"), Some(6), "a missing key points at its item");
        assert_eq!(lines.find("session.timeout"), None);
    }
}
