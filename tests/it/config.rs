//! `tapline validate` and `tapline schema` against real files: every kind of bad input gets a
//! clear message with its key path and exit code 2, and secrets never appear in the output.

use std::path::{Path, PathBuf};

use crate::harness::cli::{run as exec, tapline, validate, Run};

const SECRET: &str = "s3cr3t-Vx7-never-print-me";

/// Writes `text` as a config file in a fresh directory.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tapline.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn validate_text(text: &str) -> Run {
    let (_dir, path) = config_file(text);
    validate(&path)
}

/// Asserts exit code 2 and that stderr holds every expected fragment.
fn assert_invalid(run: &Run, expected: &[&str]) {
    assert_eq!(run.code, 2, "exit code; stderr:\n{}", run.stderr);
    for fragment in expected {
        assert!(
            run.stderr.contains(fragment),
            "missing {fragment:?} in:\n{}",
            run.stderr
        );
    }
}

#[test]
fn a_valid_config_prints_a_summary() {
    let run = validate_text(
        "auth: {type: none}\ntasks:\n  - {name: a, type: file, schedule: {interval: 30s}, source: {path: \"data/*.jsonl\"}, sink: {type: stdout}}\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "config OK: auth type none, 1 task");
}

#[test]
fn a_missing_file_is_named() {
    let run = validate(Path::new("/nonexistent/tapline.yaml"));
    assert_invalid(
        &run,
        &[
            "cannot read config file /nonexistent/tapline.yaml",
            "No such file",
        ],
    );
}

#[test]
fn an_empty_file_is_reported_as_empty() {
    assert_invalid(&validate_text(""), &["is empty"]);
    assert_invalid(&validate_text("# only a comment\n"), &["is empty"]);
}

#[test]
fn a_yaml_syntax_error_has_line_and_column() {
    let run = validate_text("auth:\n  type: none\n  scopes: [a, b\n");
    assert_invalid(&run, &["is not valid YAML", "line 4 column 1"]);
}

#[test]
fn an_unknown_key_is_named_with_the_closest_known_key() {
    let run = validate_text("auth:\n  type: token\n  token: abc\nsesion:\n  timeout: 5s\n");
    assert_invalid(
        &run,
        &["line 4: sesion: unknown key \"sesion\"; did you mean \"session\"?"],
    );
}

#[test]
fn a_wrong_type_names_what_was_expected() {
    let run = validate_text("auth: {type: none}\nsession:\n  max-in-flight: [1, 2]\n");
    assert_invalid(
        &run,
        &["line 3: session.max-in-flight: expected a whole number, found a list"],
    );
}

#[test]
fn unknown_auth_and_task_types_list_the_known_ones() {
    let run = validate_text(
        "auth: {type: oauth}\ntasks:\n  - name: a\n    type: ftp-poll\n    schedule: startup\n",
    );
    assert_invalid(
        &run,
        &[
            "auth.type: unknown type \"oauth\"; known types: client-secret, certificate, kognic, token, device-code, browser, workload-identity, none",
            "line 4: tasks[0].type: unknown task type \"ftp-poll\"; known types: file, http-poll",
        ],
    );
}

#[test]
fn an_unset_variable_names_the_variable_and_the_key() {
    let run = validate_text("auth:\n  type: token\n  token: ${TAPLINE_TEST_UNSET_VAR_1}\n");
    assert_invalid(
        &run,
        &["line 3: auth.token: ${TAPLINE_TEST_UNSET_VAR_1} is not set; export TAPLINE_TEST_UNSET_VAR_1"],
    );
}

#[test]
fn variables_defaults_and_literal_dollars() {
    let (_dir, path) = config_file(
        "auth: {type: none}\nsession:\n  base-url: https://${TEST_HOST}/${TEST_MISSING:-v1}/\n  headers: {x-note: \"$${NOT_A_VAR}\"}\n",
    );
    let run = exec(
        tapline()
            .args(["validate", "-c"])
            .arg(&path)
            .env("TEST_HOST", "api.example.com"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_missing_or_unreadable_secret_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-secret");
    let run = validate_text(&format!(
        "auth:\n  type: token\n  token-file: {}\n",
        missing.display()
    ));
    assert_invalid(
        &run,
        &[&format!(
            "line 3: auth.token-file: file {} does not exist",
            missing.display()
        )],
    );
    // A directory cannot be read as a file (tests may run as root, where permissions do not bite).
    let run = validate_text(&format!(
        "auth:\n  type: token\n  token-file: {}\n",
        dir.path().display()
    ));
    assert_invalid(
        &run,
        &[
            "auth.token-file: cannot read",
            &dir.path().display().to_string(),
        ],
    );
}

/// A device or FIFO as a secret file would never finish reading, or never start.
#[test]
fn a_secret_file_that_is_not_a_regular_file_is_refused() {
    let run = validate_text("auth:\n  type: token\n  token-file: /dev/zero\n");
    assert_invalid(
        &run,
        &["line 3: auth.token-file: cannot read /dev/zero: not a regular file (a device)"],
    );
}

#[test]
fn a_secret_and_its_file_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let run = validate_text(&format!(
        "auth:\n  type: client-secret\n  token-url: https://idp.example.com/token\n  client-id: c\n  client-secret: {SECRET}\n  client-secret-file: {}\n",
        file.display()
    ));
    assert_invalid(
        &run,
        &["line 5: auth.client-secret: give either client-secret or client-secret-file, not both"],
    );
    assert!(!run.all_output().contains(SECRET));
}

#[test]
fn every_problem_is_reported_in_one_run() {
    let run = validate_text(
        "auth:\n  type: client-secret\n  token-url: http://idp.example.com/token\n  clientid: c\n  client-secret: x\nsession:\n  timeout: 5 minutes\ntasks:\n  - name: a\n    type: http-poll\n    schedule: {interval: 30s}\n  - name: a\n    type: http-poll\n    schedule:\n      interval: 5 minutes\n",
    );
    assert_invalid(
        &run,
        &[
            "has 9 problems",
            "line 9: tasks[0].source: missing",
            "line 9: tasks[0].sink: missing",
            "line 12: tasks[1].source: missing",
            "auth.client-id: missing",
            "line 4: auth.clientid: unknown key \"clientid\"; did you mean \"client-id\"?",
            "line 7: session.timeout: invalid duration \"5 minutes\"",
            "line 12: tasks[1].name: another task is already named \"a\"",
            "line 15: tasks[1].schedule.interval: invalid duration \"5 minutes\"",
        ],
    );
}

#[test]
fn plain_http_token_urls_are_refused_unless_loopback() {
    let config = |url: &str| {
        format!(
            "auth: {{type: client-secret, token-url: \"{url}\", client-id: c, client-secret: x}}\n"
        )
    };
    let run = validate_text(&config("http://idp.example.com/token"));
    assert_invalid(&run, &["line 1: auth.token-url: plain http:// is refused for a token endpoint unless the host is loopback"]);
    for loopback in [
        "http://127.0.0.1:8080/token",
        "http://localhost/token",
        "http://[::1]/token",
    ] {
        let run = validate_text(&config(loopback));
        assert_eq!(run.code, 0, "{loopback}: {}", run.stderr);
    }
}

#[test]
fn a_bad_cron_expression_is_reported() {
    let run = validate_text(
        "auth: {type: none}\ntasks:\n  - name: a\n    type: http-poll\n    schedule: {cron: \"61 * * * *\"}\n",
    );
    assert_invalid(
        &run,
        &["line 5: tasks[0].schedule.cron: invalid cron expression \"61 * * * *\""],
    );
}

#[test]
fn a_cron_expression_that_never_fires_is_reported() {
    let run = validate_text(
        "auth: {type: none}\ntasks:\n  - name: a\n    type: http-poll\n    schedule: {cron: \"0 0 30 2 *\"}\n    source: {url: 'http://127.0.0.1/x'}\n    sink: {type: stdout}\n",
    );
    assert_invalid(
        &run,
        &["line 5: tasks[0].schedule.cron: cron expression \"0 0 30 2 *\" never fires"],
    );
}

/// Task names go into every log line of the task: a newline or an escape sequence in one could
/// forge a log line or recolour a terminal.
#[test]
fn a_task_name_with_control_characters_is_refused() {
    let run = validate_text(
        "auth: {type: none}\ntasks:\n  - name: \"ok\\nERROR forged\\e[31m\"\n    type: file\n    schedule: startup\n    source: {path: x}\n    sink: {type: stdout}\n",
    );
    assert_invalid(
        &run,
        &["line 3: tasks[0].name: \"ok\\nERROR forged\\u{1b}[31m\" is not a valid task name; use letters, digits, '.', '_' and '-', starting with a letter or digit"],
    );
    assert!(!run.stderr.contains("\nERROR forged"), "{}", run.stderr);
}

/// YAML reads `1.50` as 1.5, `0x10` as 16, `1e5` as 100000.0 and `0o17777` as 8191: the shape
/// check refuses a number where text is wanted rather than send a client id or secret other than
/// the one written. (`000042` stays text: YAML 1.2 reads leading zeros as a string.)
#[test]
fn a_number_where_text_is_wanted_must_be_quoted() {
    let run = validate_text(
        "auth:\n  type: client-secret\n  token-url: https://idp.example.com/token\n  client-id: 1.50\n  client-secret: 0x10\n  scopes: [1e5]\n  token-args: {audience: 0o17777}\n",
    );
    assert_invalid(
        &run,
        &[
            "has 4 problems",
            "line 4: auth.client-id: expected a string, found a number; quote it",
            "line 5: auth.client-secret: expected a string or nothing, found a whole number; quote it",
            "line 6: auth.scopes[0]: expected a string, found a number; quote it",
            "line 7: auth.token-args.audience: expected a string, found a whole number; quote it",
        ],
    );
    // The problems (not the first line, which names the temporary file) never show a value.
    let problems = run.stderr.split_once('\n').unwrap().1;
    for rewritten in ["1.5", "16", "100000", "8191"] {
        assert!(!problems.contains(rewritten), "{problems}");
    }
    let quoted = validate_text(
        "auth:\n  type: client-secret\n  token-url: https://idp.example.com/token\n  client-id: \"000042\"\n  client-secret: '0x10'\n",
    );
    assert_eq!(quoted.code, 0, "{}", quoted.stderr);
}

/// `TAPLINE_*` values are text as set: figment alone would send `0123456` as 123456 and `1.50`
/// as 1.5. A YAML `000042` is text too, and stays so.
#[tokio::test]
async fn environment_overrides_reach_the_token_endpoint_verbatim() {
    let mut capture = crate::harness::capture::Capture::start(
        r#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#,
    )
    .await;
    let (dir, path) = config_file(&format!(
        "auth: {{type: client-secret, token-url: \"{}\", client-id: 000042, client-secret: x}}\n",
        capture.url
    ));
    let run = tokio::task::spawn_blocking(move || {
        exec(
            tapline()
                .args(["token", "-c"])
                .arg(&path)
                .env("TAPLINE_AUTH__CLIENT_SECRET", "0123456")
                .env("TAPLINE_AUTH__SCOPES", "1.50"),
        )
    })
    .await
    .unwrap();
    drop(dir);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let form = capture.next_form().await;
    assert_eq!(form["client_id"], "000042");
    assert_eq!(form["client_secret"], "0123456");
    assert_eq!(form["scope"], "1.50");
}

#[test]
fn environment_overrides_set_nested_keys() {
    let (_dir, path) = config_file("auth: {type: none}\n");
    let run = exec(
        tapline()
            .args(["validate", "-c"])
            .arg(&path)
            .env("TAPLINE_AUTH__TYPE", "token")
            .env("TAPLINE_AUTH__TOKEN", "12345")
            .env("TAPLINE_SESSION__MAX_IN_FLIGHT", "8"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "config OK: auth type token, 0 tasks");
    let run = run_with_bad_override(&path);
    assert_invalid(
        &run,
        &["session.max-in-flight: expected a whole number, found a string"],
    );
}

fn run_with_bad_override(path: &Path) -> Run {
    exec(
        tapline()
            .args(["validate", "-c"])
            .arg(path)
            .env("TAPLINE_SESSION__MAX_IN_FLIGHT", "lots"),
    )
}

#[test]
fn the_config_path_comes_from_tapline_config_when_no_flag_is_given() {
    let (_dir, path) = config_file("auth: {type: none}\n");
    let run = exec(tapline().arg("validate").env("TAPLINE_CONFIG", &path));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let empty = tempfile::tempdir().unwrap();
    let run = exec(tapline().arg("validate").current_dir(empty.path()));
    assert_invalid(&run, &["cannot read config file tapline.yaml"]);
}

/// The secret arrives four ways, each in a config with problems around it; it must never appear
/// in `validate`'s output.
#[test]
fn secrets_never_appear_in_validate_output() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let broken = "session: {timeout: nope}\ntasks: [{name: a, type: nope, schedule: sometimes}]\n";
    let poll = |source: &str| {
        format!("auth: {{type: none}}\ntasks: [{{name: a, type: http-poll, schedule: startup, source: {source}, sink: {{type: stdout}}}}]\n")
    };
    /// A config, its environment, and the exit code `validate` must give.
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, i32);
    let cases: Vec<Case> = vec![
        (format!("auth: {{type: token, token: {SECRET}, extra: 1}}\n{broken}"), vec![], 2),
        (format!("auth: {{type: token, token: [{SECRET}]}}\n{broken}"), vec![], 2),
        (format!("auth: {{type: token, token: \"${{MY_SECRET}}\"}}\n{broken}"), vec![("MY_SECRET", SECRET)], 2),
        (format!("auth: {{type: token}}\n{broken}"), vec![("TAPLINE_AUTH__TOKEN", SECRET)], 2),
        (format!("auth: {{type: token, token: [1]}}\n{broken}"), vec![("TAPLINE_AUTH__TOKEN", SECRET)], 2),
        (format!("auth: {{type: token, token-file: {}, token: x}}\n{broken}", secret_file.display()), vec![], 2),
        (format!("auth: {{type: token, token-file: {}}}\n", secret_file.display()), vec![], 0),
        (format!("auth: {{type: client-secret, token-url: \"https://i/t\", client-id: c, client-secret: {SECRET}}}\n"), vec![], 0),
        (format!("auth: {{type: none}}\nsession: {{proxy: \"user:{SECRET}@proxy:99999\"}}\n"), vec![], 2),
        (format!("auth: {{type: none}}\nsession: {{proxy: \"ftp://user:{SECRET}@proxy\"}}\n"), vec![], 2),
        (poll(&format!("{{url: \"https://s/r\", headers: \"Authorization: Bearer {SECRET}\"}}")), vec![], 2),
        (poll(&format!("{{url: \"readings?api_key={SECRET}\"}}")), vec![], 2),
    ];
    for (text, env, expected) in cases {
        let (_dir, path) = config_file(&text);
        let mut command = tapline();
        command
            .args(["validate", "-c"])
            .arg(&path)
            .env("RUST_LOG", "trace");
        for (key, value) in env {
            command.env(key, value);
        }
        let run = exec(&mut command);
        assert!(
            !run.all_output().contains(SECRET),
            "secret leaked for {text:?}:\n{}",
            run.all_output()
        );
        assert_eq!(run.code, expected, "{text:?}:\n{}", run.stderr);
    }
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let registry = tapline::Registry::builtin();
    for text in [
        format!("auth: {{type: client-secret, token-url: \"https://i/t\", client-id: c, client-secret: {SECRET}}}\n"),
        format!("auth: {{type: token, token: {SECRET}}}\n"),
        format!("auth: {{type: none}}\nsession: {{proxy: \"http://u:{SECRET}@proxy:3128\", headers: {{x-api-key: {SECRET}}}}}\n"),
        format!("auth: {{type: certificate, client-id: c, token-url: \"https://i/t\", certificate: {}, password: {SECRET}}}\n", secret_file.display()),
    ] {
        let (_dir, path) = config_file(&text);
        let config = registry.load(&path).expect("valid config");
        let debug = format!("{config:?} {config:#?}");
        assert!(!debug.contains(SECRET), "{debug}");
        // The built provider holds the secret; its Debug says it is there, not what it is.
        let provider = registry.provider_for(&config.auth).unwrap();
        let session = format!("{:?}", config.session);
        let debug = format!("{provider:?} {provider:#?} {session}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }
}

#[test]
fn the_schema_is_json_schema_and_every_shipped_config_follows_it_and_loads() {
    let run = exec(tapline().arg("schema"));
    assert_eq!(run.code, 0);
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).expect("schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let fixtures = tempfile::tempdir().unwrap();
    let certificate = fixtures.path().join("client.pem");
    std::fs::write(
        &certificate,
        "placeholder: `validate` checks the file is readable",
    )
    .unwrap();
    let credentials = fixtures.path().join("credentials.json");
    std::fs::write(&credentials, "{}").unwrap();
    let db_password = fixtures.path().join("db-password");
    std::fs::write(&db_password, "placeholder\n").unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        seen += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let tree: serde_json::Value = serde_yaml::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&tree)
            .map(|e| e.to_string())
            .collect();
        // `${VAR}` strings are checked after substitution, so a schema error here would have to
        // be in a literal value.
        assert!(
            errors.is_empty(),
            "{} does not follow the schema: {errors:?}",
            path.display()
        );
        let run = exec(
            tapline()
                .args(["validate", "-c"])
                .arg(&path)
                .env("TENANT_ID", "tenant")
                .env("CLIENT_ID", "client")
                .env("CLIENT_SECRET", SECRET)
                .env("CERTIFICATE_PATH", &certificate)
                .env("KOGNIC_CREDENTIALS_FILE", &credentials)
                .env("DB_PASSWORD_FILE", &db_password),
        );
        assert_eq!(
            run.code,
            0,
            "{} does not load:\n{}",
            path.display(),
            run.stderr
        );
        assert!(run.stdout.starts_with("config OK"), "{}", run.stdout);
    }
    assert!(
        seen >= 4,
        "expected the shipped configs in config/, found {seen}"
    );
}

/// Only the certificate password may be empty (a key exported with an empty password); an empty
/// client secret or token is a misconfiguration and stays refused.
#[test]
fn an_empty_client_secret_or_token_is_refused() {
    let run = validate_text(
        "auth: {type: client-secret, token-url: \"https://i/t\", client-id: c, client-secret: \"${UNSET_SECRET_FOR_TEST:-}\"}\n",
    );
    assert_invalid(&run, &["auth.client-secret: is empty"]);
    let run = validate_text("auth: {type: token, token: \"\"}\n");
    assert_invalid(&run, &["auth.token: is empty"]);
}
