//! tapline against Kognic's own reference client: the same credentials file and the same
//! environment variables give both a token from the same identity provider.

use std::process::Command;

use serde_json::json;

use crate::harness::cli::{run, tapline, Run};
use crate::harness::idp::idp;
use crate::harness::jwt;
use crate::harness::kognic_auth::get_access_token;

/// The token a CLI printed: stdout is the token and one newline.
fn token(run: &Run, who: &str) -> String {
    assert_eq!(run.code, 0, "{who} failed: {}", run.stderr);
    run.stdout.trim_end_matches('\n').to_string()
}

fn both(reference: &mut Command, ours: &mut Command) -> (String, String) {
    (
        token(&run(reference), "kognic-auth"),
        token(&run(ours), "tapline"),
    )
}

#[tokio::test]
async fn one_credentials_file_and_one_environment_work_in_both() {
    let client = idp().secret_client(false, 3600).await;
    let jwks = idp().jwks().await;
    let dir = tempfile::tempdir().unwrap();
    // The file as kognic-auth writes it: every key it requires, plus an expiry in the future.
    let credentials = dir.path().join("credentials.json");
    std::fs::write(
        &credentials,
        json!({
            "clientId": client.id, "clientSecret": client.secret, "email": "robot@example.com",
            "userId": 7, "issuer": "auth.app.kognic.com", "name": "API Credentials",
            "expires": "2999-01-01T00:00:00Z",
        })
        .to_string(),
    )
    .unwrap();
    let server = &idp().base;

    // --credentials FILE
    let (reference, ours) = both(
        get_access_token(server)
            .arg("--credentials")
            .arg(&credentials),
        tapline()
            .args(["token", "--kognic", "--server", server, "--credentials"])
            .arg(&credentials),
    );
    // $KOGNIC_CREDENTIALS
    let (reference_env_file, ours_env_file) = both(
        get_access_token(server).env("KOGNIC_CREDENTIALS", &credentials),
        tapline()
            .args(["token", "--kognic", "--server", server])
            .env("KOGNIC_CREDENTIALS", &credentials),
    );
    // $KOGNIC_CLIENT_ID + $KOGNIC_CLIENT_SECRET
    let (reference_env_pair, ours_env_pair) = both(
        get_access_token(server)
            .env("KOGNIC_CLIENT_ID", &client.id)
            .env("KOGNIC_CLIENT_SECRET", &client.secret),
        tapline()
            .args(["token", "--kognic", "--server", server])
            .env("KOGNIC_CLIENT_ID", &client.id)
            .env("KOGNIC_CLIENT_SECRET", &client.secret),
    );
    for token in [
        reference,
        ours,
        reference_env_file,
        ours_env_file,
        reference_env_pair,
        ours_env_pair,
    ] {
        jwt::verify(&token, &jwks, &client.id);
    }
    assert_eq!(
        idp().issued(&client.id).await,
        6,
        "each CLI call made one token request"
    );
}

#[tokio::test]
async fn a_wrong_secret_fails_in_both_with_exit_code_1() {
    let client = idp().secret_client(false, 3600).await;
    let server = &idp().base;
    let reference = run(get_access_token(server)
        .env("KOGNIC_CLIENT_ID", &client.id)
        .env("KOGNIC_CLIENT_SECRET", "wrong-secret-Zq8"));
    let ours = run(tapline()
        .args(["token", "--kognic", "--server", server])
        .env("KOGNIC_CLIENT_ID", &client.id)
        .env("KOGNIC_CLIENT_SECRET", "wrong-secret-Zq8"));
    assert_eq!(
        (reference.code, ours.code),
        (1, 1),
        "{}\n{}",
        reference.stderr,
        ours.stderr
    );
    assert!(reference.stdout.is_empty() && ours.stdout.is_empty());
    assert!(ours.stderr.contains("invalid_client"), "{}", ours.stderr);
    assert!(
        !ours.all_output().contains("wrong-secret-Zq8"),
        "{}",
        ours.all_output()
    );
}
