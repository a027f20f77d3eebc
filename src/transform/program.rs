//! A jq program, compiled once when the config is loaded and run on every record.

use std::fmt;
use std::sync::Arc;

use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{compile, data, Compiler, Ctx, Vars};
use jaq_json::Val;
use serde_json::Value;

use super::value::{to_jaq, to_json};
use super::Bindings;

type Data = data::JustLut<Val>;

/// The variables every program may use, in the order their values are bound.
const GLOBALS: [&str; 5] = ["$task", "$now", "$cursor", "$env", "$ENV"];

/// A compiled jq program. Cheap to clone; shared by every run of its task.
#[derive(Clone)]
pub struct Program {
    filter: Arc<jaq_core::Filter<Data>>,
    text: Arc<str>,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Program").field(&self.text).finish()
    }
}

/// A program that does not compile: each problem with its line and column in the program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the jq program does not compile: {}", problems.join("; "))]
pub struct CompileError {
    /// `line 1, column 8: undefined filter foo/0`, one per problem.
    pub problems: Vec<String>,
}

/// Why a record produced no output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The program raised an error on it (`.a + 1` on a string, `error("…")`).
    #[error("{0}")]
    Program(String),
    /// The run was cancelled while the program was still producing outputs.
    #[error("cancelled")]
    Cancelled,
}

impl Program {
    /// Parses and compiles `code` with jq's core, jaq-std (dates, regexes, math) and the JSON
    /// functions; `$task`, `$now`, `$cursor`, `$env` and `$ENV` are defined.
    pub fn compile(code: &str) -> Result<Self, CompileError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs::<Data>()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errors| load_problems(code, errors))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(GLOBALS)
            .compile(modules)
            .map_err(|errors| compile_problems(code, errors))?;
        Ok(Self {
            filter: Arc::new(filter),
            text: code.into(),
        })
    }

    /// The program's text, as written in the config.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Binds the run's variables, for running the program on that run's records. The result is
    /// not `Send`: make it on the thread that runs the records.
    pub fn bind(&self, bindings: &Bindings) -> Bound<'_> {
        let env = to_jaq(Value::Object(bindings.env.clone()));
        let vars = Vars::new([
            Val::from(bindings.task.clone()),
            Val::from(bindings.now as isize),
            to_jaq(bindings.cursor.clone()),
            env.clone(),
            env,
        ]);
        Bound {
            program: self,
            vars,
        }
    }
}

/// A program with one run's variables bound.
pub struct Bound<'p> {
    program: &'p Program,
    vars: Vars<Val>,
}

impl Bound<'_> {
    /// Runs the program on `record`, appending its outputs to `out` in order. On an error the
    /// record's outputs so far are taken back (a record yields all of its outputs or none) and
    /// the record is handed back with the error. `cancelled` is asked between outputs, so an
    /// endless stream stops with the run.
    pub fn apply(
        &self,
        record: Value,
        out: &mut Vec<Value>,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), Failed> {
        let before = out.len();
        let input = to_jaq(record);
        let result = self.outputs(input.clone(), out, cancelled);
        result.map_err(|error| {
            out.truncate(before);
            let record = to_json(&input).unwrap_or_default();
            Failed { error, record }
        })
    }

    fn outputs(
        &self,
        input: Val,
        out: &mut Vec<Value>,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<(), RecordError> {
        let filter = &self.program.filter;
        let ctx = Ctx::<Data>::new(&filter.lut, self.vars.clone());
        for output in filter.id.run((ctx, input)) {
            if cancelled() {
                return Err(RecordError::Cancelled);
            }
            let value = output.map_err(|exn| RecordError::Program(exception(exn)))?;
            out.push(to_json(&value).map_err(RecordError::Program)?);
        }
        Ok(())
    }
}

/// A record the program failed on, as it was given.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// Why.
    pub error: RecordError,
    /// The record.
    pub record: Value,
}

/// The text of an error raised by the program. `halt` ends jq itself; here it ends the record
/// only (jaq would exit the process).
fn exception(exn: jaq_core::Exn<'_, Val>) -> String {
    match exn.get_err() {
        Ok(error) => match error.into_val() {
            Val::TStr(text) => String::from_utf8_lossy(&text).into_owned(),
            value => value.to_string(),
        },
        Err(exn) => match exn.get_halt() {
            Ok(code) => format!("the program called halt (exit code {code})"),
            Err(_) => "the program stopped abnormally".into(),
        },
    }
}

fn load_problems(code: &str, errors: load::Errors<&str, ()>) -> CompileError {
    let mut problems = Vec::new();
    for (_, error) in errors {
        match error {
            load::Error::Io(io) => problems.extend(io.into_iter().map(|(path, error)| {
                at(code, path, &format!("cannot load module {path}: {error}"))
            })),
            load::Error::Lex(lex) => problems.extend(
                lex.into_iter()
                    .map(|(expected, found)| syntax(code, expected.as_str(), found)),
            ),
            load::Error::Parse(parse) => problems.extend(
                parse
                    .into_iter()
                    .map(|(expected, found)| syntax(code, expected.as_str(), found)),
            ),
        }
    }
    CompileError { problems }
}

fn syntax(code: &str, expected: &str, found: &str) -> String {
    let found_text = match found.chars().next() {
        None => "the end of the program".to_string(),
        Some(c) => format!("{c:?}"),
    };
    at(
        code,
        found,
        &format!("expected {expected}, found {found_text}"),
    )
}

fn compile_problems(code: &str, errors: compile::Errors<&str, ()>) -> CompileError {
    let problems = errors
        .into_iter()
        .flat_map(|(_, errors)| errors)
        .map(|(name, undefined)| {
            let what = match undefined {
                compile::Undefined::Filter(arity) => format!("filter {name}/{arity}"),
                other => format!("{} {name}", other.as_str()),
            };
            at(code, name, &format!("undefined {what}"))
        })
        .collect();
    CompileError { problems }
}

/// `line L, column C: message`, for `part`, a slice of `code`.
fn at(code: &str, part: &str, message: &str) -> String {
    let offset = load::span(code, part).start.min(code.len());
    let before = &code[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("line {line}, column {column}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(code: &str, record: Value) -> Result<Vec<Value>, RecordError> {
        let bindings = Bindings {
            task: "readings".into(),
            now: 1_700_000_000_000,
            cursor: json!({"id": 7}),
            env: [("SITE".to_string(), json!("plant-a"))]
                .into_iter()
                .collect(),
        };
        let program = Program::compile(code).unwrap();
        let bound = program.bind(&bindings);
        let mut out = vec![json!("earlier")];
        bound
            .apply(record, &mut out, &|| false)
            .map(|()| out.split_off(1))
            .map_err(|failed| failed.error)
    }

    #[test]
    fn a_record_may_become_none_one_or_many_in_order() {
        assert_eq!(run("select(.v != null)", json!({"v": null})), Ok(vec![]));
        assert_eq!(
            run("{key: (.id|tostring), columns: .}", json!({"id": 3})),
            Ok(vec![json!({"key": "3", "columns": {"id": 3}})])
        );
        assert_eq!(
            run(".r[] | {t}", json!({"r": [{"t": 1}, {"t": 2}, {"t": 3}]})),
            Ok(vec![json!({"t": 1}), json!({"t": 2}), json!({"t": 3})])
        );
    }

    #[test]
    fn the_run_variables_are_bound() {
        let out = run(
            "[$task, $now, $cursor.id, $env.SITE, $ENV.SITE]",
            json!(null),
        );
        assert_eq!(
            out,
            Ok(vec![json!([
                "readings",
                1_700_000_000_000i64,
                7,
                "plant-a",
                "plant-a"
            ])])
        );
    }

    #[test]
    fn a_failing_record_takes_back_its_partial_outputs() {
        let mut out = Vec::new();
        let program = Program::compile(".[] | (. + 1)").unwrap();
        let bound = program.bind(&Bindings::default());
        let failed = bound
            .apply(json!([1, 2, "three"]), &mut out, &|| false)
            .unwrap_err();
        assert!(
            failed.error.to_string().contains("cannot calculate"),
            "{failed:?}"
        );
        assert_eq!(
            failed.record,
            json!([1, 2, "three"]),
            "the record is handed back whole"
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            run(r#"error("bad reading")"#, json!(1)),
            Err(RecordError::Program("bad reading".into()))
        );
        assert!(matches!(
            run("halt", json!(1)),
            Err(RecordError::Program(_))
        ));
    }

    #[test]
    fn an_endless_stream_stops_when_the_run_is_cancelled() {
        let program = Program::compile("repeat(.)").unwrap();
        let bound = program.bind(&Bindings::default());
        let calls = std::cell::Cell::new(0);
        let cancelled = || {
            calls.set(calls.get() + 1);
            calls.get() > 1000
        };
        let mut out = Vec::new();
        let result = bound.apply(json!(1), &mut out, &cancelled);
        assert_eq!(result.unwrap_err().error, RecordError::Cancelled);
        assert!(out.is_empty());
    }

    #[test]
    fn date_helpers_work() {
        assert_eq!(
            run(".t | fromdate", json!({"t": "2024-01-02T03:04:05Z"})),
            Ok(vec![json!(1_704_164_645)])
        );
        assert_eq!(
            run("0 | todate", json!(null)),
            Ok(vec![json!("1970-01-01T00:00:00Z")])
        );
    }

    #[test]
    fn compile_errors_say_where() {
        let error = Program::compile("{a: .b").unwrap_err();
        assert!(error.problems[0].starts_with("line 1, column"), "{error}");
        let error = Program::compile(".a |\n  nosuchfn(1)").unwrap_err();
        assert_eq!(
            error.problems,
            vec!["line 2, column 3: undefined filter nosuchfn/1".to_string()]
        );
        let error = Program::compile("$nope").unwrap_err();
        assert!(error.to_string().contains("undefined variable"), "{error}");
    }
}
