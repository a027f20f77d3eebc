//! `tapline token` and `tapline validate --check-auth`, run as users run them.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::harness::cli::{run, tapline, Run};
use crate::harness::idp::{idp, Client};
use crate::harness::jwt;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn secret_config(dir: &Path, client: &Client, secret: &str, basic: bool) -> PathBuf {
    let auth = if basic { "basic" } else { "body" };
    write(
        dir,
        "tapline.yaml",
        &format!(
            "auth:\n  type: client-secret\n  token-url: {}\n  client-id: {}\n  client-secret: {secret}\n  client-auth: {auth}\n",
            idp().token_url(),
            client.id
        ),
    )
}

fn token_with(config: &Path) -> Run {
    run(tapline().arg("token").arg("-c").arg(config))
}

/// stdout is the token and one newline, nothing else; returns the token.
fn printed_token(run: &Run) -> String {
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let token = run.stdout.strip_suffix('\n').expect("ends with a newline");
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "{:?}",
        run.stdout
    );
    token.to_string()
}

#[tokio::test]
async fn token_prints_only_the_token_with_body_auth() {
    let client = idp().secret_client(false, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let run = token_with(&secret_config(dir.path(), &client, &client.secret, false));
    let token = printed_token(&run);
    assert_eq!(run.stderr, "");
    jwt::verify(&token, &idp().jwks().await, &client.id);
}

#[tokio::test]
async fn token_prints_only_the_token_with_basic_auth() {
    let client = idp().secret_client(true, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let run = token_with(&secret_config(dir.path(), &client, &client.secret, true));
    jwt::verify(&printed_token(&run), &idp().jwks().await, &client.id);
}

#[tokio::test]
async fn a_wrong_secret_exits_1_with_the_providers_error() {
    let client = idp().secret_client(false, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let run = token_with(&secret_config(
        dir.path(),
        &client,
        "wrong-Secret-123",
        false,
    ));
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("invalid_client"), "{}", run.stderr);
    assert!(
        run.stderr.contains("client authentication failed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("wrong-Secret-123"));
}

#[tokio::test]
async fn a_bad_config_still_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "tapline.yaml",
        "auth:\n  type: client-secret\n  client-id: x\n",
    );
    assert_eq!(token_with(&config).code, 2);
}

#[tokio::test]
async fn validate_check_auth_reports_the_token_or_the_providers_error() {
    let client = idp().secret_client(false, 600).await;
    let dir = tempfile::tempdir().unwrap();
    let config = secret_config(dir.path(), &client, &client.secret, false);
    let ok = run(tapline()
        .args(["validate", "--check-auth", "-c"])
        .arg(&config));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stdout.contains("auth OK: token obtained (expires in"),
        "{}",
        ok.stdout
    );
    assert_eq!(idp().issued(&client.id).await, 1);

    let config = secret_config(dir.path(), &client, "nope", false);
    let bad = run(tapline()
        .args(["validate", "--check-auth", "-c"])
        .arg(&config));
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("invalid_client"), "{}", bad.stderr);
}

/// Three Kognic clients, one per place credentials can come from, so the token tells which won.
struct Kognic {
    dir: tempfile::TempDir,
    config_file: PathBuf,
    env_file: PathBuf,
    config_client: Client,
    env_file_client: Client,
    env_pair_client: Client,
}

impl Kognic {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_client = idp().secret_client(false, 3600).await;
        let env_file_client = idp().secret_client(false, 3600).await;
        let env_pair_client = idp().secret_client(false, 3600).await;
        let file = |name: &str, client: &Client| {
            write(
                dir.path(),
                name,
                &json!({"clientId": client.id, "clientSecret": client.secret, "email": "e@x.test",
                        "userId": 42, "issuer": "kognic"})
                .to_string(),
            )
        };
        Self {
            config_file: file("config-credentials.json", &config_client),
            env_file: file("env-credentials.json", &env_file_client),
            dir,
            config_client,
            env_file_client,
            env_pair_client,
        }
    }

    /// `tapline token --kognic --server <idp>` with the chosen environment.
    fn command(&self, env_file: bool, env_pair: bool) -> std::process::Command {
        let mut command = tapline();
        command.args(["token", "--kognic", "--server", &idp().base]);
        if env_file {
            command.env("KOGNIC_CREDENTIALS", &self.env_file);
        }
        if env_pair {
            command
                .env("KOGNIC_CLIENT_ID", &self.env_pair_client.id)
                .env("KOGNIC_CLIENT_SECRET", &self.env_pair_client.secret);
        }
        command
    }
}

fn issued_to(run: &Run) -> String {
    let token = printed_token(run);
    jwt::claims(&token)["client_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn kognic_credentials_flag_wins_over_the_environment() {
    let k = Kognic::new().await;
    let run = run(k
        .command(true, true)
        .arg("--credentials")
        .arg(&k.config_file));
    jwt::verify(
        &printed_token(&run),
        &idp().jwks().await,
        &k.config_client.id,
    );
}

#[tokio::test]
async fn kognic_config_credentials_win_over_the_environment() {
    let k = Kognic::new().await;
    let config = write(
        k.dir.path(),
        "tapline.yaml",
        &format!(
            "auth:\n  type: kognic\n  credentials: {}\n  server: {}\n",
            k.config_file.display(),
            idp().base
        ),
    );
    let mut command = tapline();
    command
        .args(["token", "-c"])
        .arg(&config)
        .env("KOGNIC_CREDENTIALS", &k.env_file)
        .env("KOGNIC_CLIENT_ID", &k.env_pair_client.id)
        .env("KOGNIC_CLIENT_SECRET", &k.env_pair_client.secret);
    assert_eq!(issued_to(&run(&mut command)), k.config_client.id);
}

#[tokio::test]
async fn kognic_env_credentials_file_wins_over_env_id_and_secret() {
    let k = Kognic::new().await;
    let run = run(&mut k.command(true, true));
    jwt::verify(
        &printed_token(&run),
        &idp().jwks().await,
        &k.env_file_client.id,
    );
}

#[tokio::test]
async fn kognic_env_id_and_secret_are_the_last_resort() {
    let k = Kognic::new().await;
    let run = run(&mut k.command(false, true));
    jwt::verify(
        &printed_token(&run),
        &idp().jwks().await,
        &k.env_pair_client.id,
    );
}

#[tokio::test]
async fn kognic_with_no_credentials_anywhere_exits_1_and_says_where_to_put_them() {
    let k = Kognic::new().await;
    let run = run(&mut k.command(false, false));
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("KOGNIC_CREDENTIALS"), "{}", run.stderr);
}

#[tokio::test]
async fn kognic_home_is_expanded_in_the_credentials_path() {
    let k = Kognic::new().await;
    let home = k.dir.path();
    let run = run(k
        .command(false, false)
        .env("HOME", home)
        .args(["--credentials", "~/config-credentials.json"]));
    assert_eq!(issued_to(&run), k.config_client.id);
}

#[tokio::test]
async fn trace_logs_hold_no_secret_and_no_token() {
    // Basic auth, body auth, Kognic and a rejected secret: every path that handles a secret.
    let dir = tempfile::tempdir().unwrap();
    for basic in [false, true] {
        let client = idp().secret_client(basic, 3600).await;
        let config = secret_config(dir.path(), &client, &client.secret, basic);
        let run = run(tapline()
            .args(["token", "-c"])
            .arg(&config)
            .env("RUST_LOG", "trace"));
        let token = printed_token(&run);
        assert!(
            run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
            "logs were captured"
        );
        assert!(run.stderr.contains("token obtained"), "{}", run.stderr);
        assert!(!run.stderr.contains(&client.secret), "secret in the logs");
        assert!(!run.stderr.contains(&token), "token in the logs");
        // Not even the token's signature, should something print a part of it.
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !run.stderr.contains(signature),
            "token signature in the logs"
        );

        let check = run_check(&config);
        assert!(!check.all_output().contains(&client.secret));
    }
    let k = Kognic::new().await;
    let run = run(k.command(false, true).env("RUST_LOG", "trace"));
    let token = printed_token(&run);
    assert!(!run.stderr.contains(&k.env_pair_client.secret));
    assert!(!run.stderr.contains(&token));

    let client = idp().secret_client(false, 3600).await;
    let config = secret_config(dir.path(), &client, "Wrong-secret-in-logs", false);
    let run = run_trace(&config);
    assert_eq!(run.code, 1);
    assert!(!run.all_output().contains("Wrong-secret-in-logs"));
}

fn run_check(config: &Path) -> Run {
    run(tapline()
        .args(["validate", "--check-auth", "-c"])
        .arg(config)
        .env("RUST_LOG", "trace"))
}

fn run_trace(config: &Path) -> Run {
    run(tapline()
        .args(["token", "-c"])
        .arg(config)
        .env("RUST_LOG", "trace"))
}

#[tokio::test]
async fn certificate_login_from_the_cli_logs_no_key_and_no_assertion() {
    let cert = crate::harness::cert::TestCert::generate();
    let id = crate::harness::unique("cert-cli");
    idp()
        .register(json!({"client_id": id, "token_endpoint_auth_method": "private_key_jwt", "jwks": cert.jwks()}))
        .await;
    let config = write(
        cert.dir.path(),
        "tapline.yaml",
        &format!(
            "auth:\n  type: certificate\n  token-url: {}\n  client-id: {id}\n  certificate: {}\n  password: {}\n",
            idp().token_url(),
            cert.p12.display(),
            crate::harness::cert::TestCert::PASSWORD
        ),
    );
    let run = run_trace(&config);
    let token = printed_token(&run);
    jwt::verify(&token, &idp().jwks().await, &id);
    assert!(!run.stderr.contains(&token));
    assert!(!run
        .stderr
        .contains(crate::harness::cert::TestCert::PASSWORD));
    assert!(
        !run.stderr.contains("client_assertion="),
        "assertion in the logs"
    );
    let key = std::fs::read_to_string(&cert.key).unwrap();
    let key_line = key.lines().nth(1).unwrap();
    assert!(!run.stderr.contains(key_line), "key material in the logs");
}

/// A PKCS#12 file or an encrypted key exported with an empty password is common. `password: ""`,
/// `${CERT_PASSWORD:-}` with the variable unset, or an empty `password-file` all mean that empty
/// password: the config is valid and the key opens.
#[tokio::test]
async fn an_empty_certificate_password_opens_files_exported_with_one() {
    let cert = crate::harness::cert::TestCert::generate();
    let empty = cert.with_empty_password();
    let id = crate::harness::unique("cert-empty-password");
    idp()
        .register(json!({"client_id": id, "token_endpoint_auth_method": "private_key_jwt", "jwks": cert.jwks()}))
        .await;
    let password_file = write(cert.dir.path(), "password", "");
    for files in [
        format!(
            "certificate: {}\n  password: \"${{CERT_PASSWORD:-}}\"",
            empty.p12.display()
        ),
        format!(
            "certificate: {}\n  private-key: {}\n  password: \"\"",
            cert.cert.display(),
            empty.encrypted_key.display()
        ),
        format!(
            "certificate: {}\n  password-file: {}",
            empty.p12.display(),
            password_file.display()
        ),
    ] {
        let config = write(
            cert.dir.path(),
            "tapline.yaml",
            &format!(
                "auth:\n  type: certificate\n  token-url: {}\n  client-id: {id}\n  {files}\n",
                idp().token_url()
            ),
        );
        let run = run(tapline()
            .arg("token")
            .arg("-c")
            .arg(&config)
            .env_remove("CERT_PASSWORD"));
        assert_eq!(run.code, 0, "{files}: {}", run.stderr);
        jwt::verify(&printed_token(&run), &idp().jwks().await, &id);
    }
}

#[tokio::test]
async fn a_static_token_file_is_printed_as_is() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "token", "static-token-value\n");
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!("auth:\n  type: token\n  token-file: {}\n", file.display()),
    );
    let run = token_with(&config);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "static-token-value\n");
}

#[test]
fn a_plain_http_token_url_off_loopback_is_refused() {
    let run = run(tapline()
        .args(["token", "--kognic", "--server", "http://auth.example.com"])
        .env("KOGNIC_CLIENT_ID", "id")
        .env("KOGNIC_CLIENT_SECRET", "Secret-not-sent"));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("plain http://"), "{}", run.stderr);
    assert!(!run.all_output().contains("Secret-not-sent"));
}

#[tokio::test]
async fn a_huge_expires_in_neither_panics_token_nor_validate() {
    let client = idp().secret_client(false, 3600).await;
    let key = crate::harness::unique("huge-expires-in");
    let answer = json!({"status": 200, "body": {"access_token": "long-lived", "expires_in": 1e19}});
    idp()
        .queue_faults(&key, json!([answer.clone(), answer]))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth:\n  type: client-secret\n  token-url: {}\n  client-id: {}\n  client-secret: {}\n",
            idp().faulty_token_url(&key),
            client.id,
            client.secret
        ),
    );
    prints_a_token_for_a_year(&config, "long-lived");
}

#[test]
fn a_huge_expires_on_in_the_login_token_cache_is_taken_as_a_year() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("tokens.json");
    let authority = "http://127.0.0.1:9/";
    // The cache file as `tapline login` writes it: entries keyed by authority, client and scopes.
    let file = json!({"version": 1, "entries": {"http://127.0.0.1:9|cli-client|api.read": {
        "access_token": "cached-token", "expires_on": u64::MAX}}});
    std::fs::write(&cache, file.to_string()).unwrap();
    let config = write(
        dir.path(),
        "tapline.yaml",
        &format!(
            "auth:\n  type: device-code\n  authority-url: {authority}\n  client-id: cli-client\n  scopes: api.read\n  token-cache: {}\n",
            cache.display()
        ),
    );
    prints_a_token_for_a_year(&config, "cached-token");
}

/// `tapline token` prints `token` and `validate --check-auth` sees it expire in a year (the
/// clamp), both without panicking.
fn prints_a_token_for_a_year(config: &Path, token: &str) {
    assert_eq!(printed_token(&token_with(config)), token);
    let check = run_check(config);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check.stdout.contains("token obtained (expires in 3153"),
        "{}",
        check.stdout
    );
}

/// `tapline token | consumer` where the consumer is gone: exit 1 with a message, never the
/// panic (exit 101) of `println!` on a broken pipe.
#[test]
fn a_reader_that_went_away_is_an_error_not_a_panic() {
    use std::os::fd::{FromRawFd, OwnedFd};
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "tapline.yaml",
        "auth: {type: token, token: t0ken}\n",
    );
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // The reading end is closed before tapline writes: its write meets a broken pipe.
    drop(unsafe { OwnedFd::from_raw_fd(fds[0]) });
    let write_end = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    let broken = run(tapline()
        .args(["token", "-c"])
        .arg(&config)
        .stdout(std::process::Stdio::from(write_end)));
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    assert!(
        broken.stderr.contains("cannot write to stdout"),
        "{}",
        broken.stderr
    );
    assert!(!broken.stderr.contains("panicked"), "{}", broken.stderr);
}
