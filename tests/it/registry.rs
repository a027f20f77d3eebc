//! Components registered by name: custom task types and sinks from outside the crate, used from
//! YAML; the schema that describes every component's keys; every bad key reported at once; the
//! batching of a run's records; the jsonl sink under a failing write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Value};
use tapline::prelude::*;

use crate::harness::cli::{run, tapline, validate};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `type: counter`: a source that makes `count` records `{"n": i}` in pages of `page`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct CounterConfig {
    count: usize,
    page: usize,
}

struct Counter(CounterConfig);

#[async_trait]
impl Task for Counter {
    async fn run(&self, ctx: TaskContext) -> Result<(), TaskError> {
        let mut output = ctx.output()?;
        let records: Vec<Value> = (0..self.0.count).map(|n| json!({"n": n})).collect();
        for page in records.chunks(self.0.page) {
            output.extend(page.iter().cloned()).await?;
        }
        output.flush().await
    }
}

/// `sink: {type: memory, tag: ...}`: keeps every batch it is given, tagged.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct MemoryConfig {
    tag: String,
}

type Batches = Arc<Mutex<Vec<(String, Vec<Value>)>>>;

#[derive(Debug)]
struct Memory {
    tag: String,
    batches: Batches,
}

#[async_trait]
impl Sink for Memory {
    async fn deliver(&self, _: &TaskContext, batch: &[Value]) -> Result<(), TaskError> {
        let batch = (self.tag.clone(), batch.to_vec());
        self.batches.lock().unwrap().push(batch);
        Ok(())
    }
}

fn registry(batches: &Batches) -> Registry {
    let mut registry = Registry::builtin();
    let batches = batches.clone();
    registry
        .source("counter", |config: CounterConfig| {
            if config.page == 0 {
                return Err(BuildError::at("page", "must be at least 1"));
            }
            Ok(Counter(config))
        })
        .sink("memory", move |config: MemoryConfig| {
            Ok(Memory {
                tag: config.tag,
                batches: batches.clone(),
            })
        });
    registry
}

#[tokio::test]
async fn a_custom_source_and_sink_run_from_yaml_in_batches_that_span_pages() {
    let dir = tempfile::tempdir().unwrap();
    let batches = Batches::default();
    let registry = registry(&batches);
    let path = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {}}}\ntasks:\n  - name: count\n    type: counter\n    schedule: startup\n    count: 25\n    page: 3\n    sink: {{type: memory, tag: t1, batch-size: 10}}\n",
            dir.path().join("state.json").display()
        ),
    );
    let config = registry.load(&path).unwrap();
    registry
        .runner(config)
        .unwrap()
        .once(true)
        .handle_signals(false)
        .run()
        .await
        .unwrap();
    let batches = batches.lock().unwrap();
    let sizes: Vec<usize> = batches.iter().map(|(_, b)| b.len()).collect();
    // 25 records in pages of 3 reach the sink as full batches of 10, then the rest.
    assert_eq!(sizes, [10, 10, 5]);
    assert!(batches.iter().all(|(tag, _)| tag == "t1"));
    let numbers: Vec<u64> = batches
        .iter()
        .flat_map(|(_, b)| b.iter().map(|r| r["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(numbers, (0..25).collect::<Vec<u64>>());
}

#[test]
fn custom_components_are_checked_like_built_in_ones() {
    let dir = tempfile::tempdir().unwrap();
    let registry = registry(&Batches::default());
    let path = write(
        dir.path(),
        "tapline.yaml",
        "auth: {type: none}\ntasks:\n  - name: a\n    type: counter\n    schedule: startup\n    count: 1\n    page: 0\n    pag: 1\n    sink: {type: memory, tog: x}\n",
    );
    let error = registry.load(&path).unwrap_err().to_string();
    for expected in [
        "tasks[0].pag: unknown key \"pag\"; did you mean \"page\"?",
        "tasks[0].sink.tog: unknown key \"tog\"; did you mean \"tag\"?",
        "tasks[0].sink.tag: missing",
    ] {
        assert!(
            error.contains(expected),
            "missing {expected:?} in:\n{error}"
        );
    }
    // With the keys fixed, the task's own rule speaks.
    write(
        dir.path(),
        "tapline.yaml",
        "auth: {type: none}\ntasks:\n  - name: a\n    type: counter\n    schedule: startup\n    count: 1\n    page: 0\n    sink: {type: memory, tag: x}\n",
    );
    let error = registry.load(&path).unwrap_err().to_string();
    assert!(
        error.contains("line 7: tasks[0].page: must be at least 1"),
        "{error}"
    );
    // The schema describes the custom components too.
    let schema = registry.schema().to_string();
    assert!(schema.contains("\"counter\"") && schema.contains("\"memory\""));
}

#[test]
fn a_sink_is_refused_for_a_task_type_without_one_and_required_for_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "tapline.yaml",
        "auth: {type: none}\ntasks:\n  - name: a\n    type: file\n    schedule: startup\n    source: {path: 'x/*.jsonl'}\n",
    );
    let out = validate(&path);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("line 3: tasks[0].sink: missing"),
        "{}",
        out.stderr
    );
}

#[test]
fn three_bad_task_keys_in_two_tasks_are_reported_in_one_validate() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "tapline.yaml",
        "auth: {type: none}\ntasks:\n  - name: a\n    type: http-poll\n    schedule: {interval: 1m}\n    source: {url: 'http://127.0.0.1/x', curser: /c}\n    sink: {type: jsonl, pth: out.jsonl}\n  - name: b\n    type: file\n    schedule: startup\n    sorce: {path: 'x/*.jsonl'}\n    sink: {type: stdout}\n",
    );
    let out = validate(&path);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for expected in [
        "line 6: tasks[0].source.curser: unknown key \"curser\"; did you mean \"cursor\"?",
        "line 7: tasks[0].sink.pth: unknown key \"pth\"; did you mean \"path\"?",
        "line 11: tasks[1].sorce: unknown key \"sorce\"; did you mean \"source\"?",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn the_printed_schema_rejects_misspelt_task_and_sink_keys() {
    let out = run(tapline().arg("schema"));
    assert_eq!(out.code, 0);
    let schema: Value = serde_json::from_str(&out.stdout).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let config = |task: Value| json!({"auth": {"type": "none"}, "tasks": [task]});
    let good = json!({"name": "a", "type": "file", "schedule": "startup",
        "source": {"path": "x/*.jsonl"}, "sink": {"type": "jsonl", "path": "o.jsonl", "batch-size": 10}});
    assert!(validator.is_valid(&config(good.clone())));
    let mut task_key = good.clone();
    task_key["sorce"] = task_key["source"].clone();
    assert!(
        !validator.is_valid(&config(task_key)),
        "a misspelt task key passed"
    );
    let mut sink_key = good.clone();
    sink_key["sink"]["pth"] = json!("o.jsonl");
    assert!(
        !validator.is_valid(&config(sink_key)),
        "a misspelt sink key passed"
    );
    let mut source_key = good;
    source_key["source"]["paht"] = json!("y");
    assert!(
        !validator.is_valid(&config(source_key)),
        "a misspelt source key passed"
    );
}

/// A batch that fails part-way (the file size limit of `ulimit -f` cuts a write short) is cut
/// back, so the file never holds a torn line; the run fails and the offsets stay.
#[test]
fn a_jsonl_write_cut_short_leaves_no_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let record = format!("{{\"pad\": \"{}\"}}\n", "x".repeat(90));
    write(dir.path(), "in.jsonl", &record.repeat(200));
    let out = dir.path().join("out.jsonl");
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth: {{type: none}}\nstate: {{path: {}}}\ntasks:\n  - name: copy\n    type: file\n    schedule: startup\n    source: {{path: '{}/in.jsonl'}}\n    sink: {{type: jsonl, path: {}, batch-size: 10}}\n",
            dir.path().join("state.json").display(),
            dir.path().display(),
            out.display()
        ),
    );
    // 4 KiB: the fifth batch of ~1 KiB crosses the limit in the middle of a line.
    let script = format!(
        "trap '' XFSZ; ulimit -f 4; exec {} run --once -c {}",
        env!("CARGO_BIN_EXE_tapline"),
        config.display()
    );
    let result = run(std::process::Command::new("bash").args(["-c", &script]));
    assert_ne!(result.code, 0, "the run must fail: {}", result.stderr);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.ends_with('\n'),
        "torn line at the end: {:?}",
        &text[text.len().saturating_sub(40)..]
    );
    let lines = text.lines().count();
    assert_eq!(lines % 10, 0, "only whole batches: {lines} lines");
    assert!(lines >= 10, "the first batches were written: {lines}");
    for line in text.lines() {
        serde_json::from_str::<Value>(line).expect("every line is whole JSON");
    }
}
