//! Components registered from outside the crate, named in YAML like the built-in ones: what a
//! library user does to add a credential provider of their own.

use std::path::PathBuf;
use std::sync::Arc;

use tapline::auth;
use tapline::config::SessionConfig;
use tapline::prelude::*;

use crate::harness::api::{Api, Reply};

/// `auth: {type: file-header, token-file: PATH}`: the bearer token is whatever the file holds.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileHeaderConfig {
    /// The file holding the token, read at every token fetch.
    token_file: PathBuf,
}

#[derive(Debug)]
struct FileHeader {
    token_file: PathBuf,
}

fn build(config: FileHeaderConfig) -> Result<FileHeader, BuildError> {
    if config.token_file.as_os_str().is_empty() {
        return Err(BuildError::at("token-file", "must not be empty"));
    }
    Ok(FileHeader {
        token_file: config.token_file,
    })
}

impl Provider for FileHeader {
    fn credentials(&self, _session: &SessionConfig) -> Result<Credentials, auth::Error> {
        let source = FileToken {
            path: self.token_file.clone(),
        };
        Ok(Credentials::from_source(Arc::new(source)))
    }
}

/// Reads the token from the file when the cache asks for one.
#[derive(Debug)]
struct FileToken {
    path: PathBuf,
}

#[async_trait]
impl TokenSource for FileToken {
    async fn fetch(&self) -> Result<FetchedToken, auth::Error> {
        Ok(FetchedToken {
            value: tapline::config::read_secret_file(&self.path)?,
            expires_at: None,
        })
    }
}

fn registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.provider("file-header", build);
    registry
}

/// A config file in `dir` with `auth` as its `auth:` block and one `http-poll` task that sends
/// the session's token to `api`.
fn write_config(dir: &tempfile::TempDir, auth: &str, api: &Api) -> PathBuf {
    let path = dir.path().join("tapline.yaml");
    let yaml = format!(
        r#"auth: {auth}
session: {{base-url: "{base}"}}
state: {{path: "{state}"}}
tasks:
  - name: items
    type: http-poll
    schedule: {{interval: 60s}}
    source: {{url: items, auth: session}}
    sink: {{type: jsonl, path: "{out}"}}
"#,
        base = api.base_url(),
        state = dir.path().join("state.json").display(),
        out = dir.path().join("out.jsonl").display(),
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test]
async fn a_provider_registered_outside_the_crate_authenticates_the_tasks_from_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    api.script("/items", [Reply::status(200).body(r#"[{"id": "a"}]"#)]);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "custom-token-7f3\n").unwrap();
    let auth = format!(
        "{{type: file-header, token-file: \"{}\"}}",
        token_file.display()
    );
    let path = write_config(&dir, &auth, &api);

    let registry = registry();
    let config = registry
        .load(&path)
        .unwrap_or_else(|error| panic!("{error}"));
    registry
        .runner(config)
        .unwrap()
        .once(true)
        .handle_signals(false)
        .run()
        .await
        .unwrap();

    let requests = api.requests_to("/items");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].authorization(), Some("Bearer custom-token-7f3"));
    let delivered = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(delivered.trim(), r#"{"id":"a"}"#);
}

#[tokio::test]
async fn a_misspelt_key_of_a_custom_provider_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start().await;
    let path = write_config(&dir, "{type: file-header, tokn-file: /run/token}", &api);

    let error = registry().load(&path).unwrap_err();
    let tapline::config::Error::Invalid { problems, .. } = &error else {
        panic!("not a list of problems: {error}");
    };
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    // The custom block's keys are checked like a built-in block's, and only they: the task is
    // fine.
    assert_eq!(
        problems,
        [
            "line 1: auth.tokn-file: unknown key \"tokn-file\"; did you mean \"token-file\"?",
            "line 1: auth.token-file: missing",
        ]
    );
    // Without the registration, `file-header` is no type at all.
    let error = Registry::builtin().load(&path).unwrap_err().to_string();
    assert!(
        error.contains("auth.type: unknown type \"file-header\""),
        "{error}"
    );
}
