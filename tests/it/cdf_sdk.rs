//! The CDF test server against Cognite's official Python SDK: what the SDK writes, it reads
//! back unchanged, through the same endpoints, limits and token checks tapline meets.

use serde_json::json;

use crate::harness::cdf::CdfServer;
use crate::harness::cognite_sdk::Sdk;
use crate::harness::idp::idp;

/// A server that checks tokens, and the SDK with a valid token for it.
pub async fn server_and_sdk() -> (CdfServer, Sdk) {
    let server = CdfServer::start("tapline-test", None)
        .await
        .verifying(idp())
        .await;
    let client = idp().secret_client(false, 3600).await;
    let sdk = Sdk {
        base_url: server.base_url(),
        project: server.project.clone(),
        token: server.token_for(&client).await,
    };
    (server, sdk)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_reads_back_what_it_wrote() {
    let (server, sdk) = server_and_sdk().await;
    server.pipeline("sdk-pipe");
    sdk.run("write-all", &[]).await;

    let rows = sdk.run("rows", &["sdk-db", "sdk-table"]).await;
    assert_eq!(rows, json!({"r1": {"a": 1}, "r2": {"b": "two"}}));
    let points = sdk.run("datapoints", &["sdk-num", "sdk-str"]).await;
    assert_eq!(
        points,
        json!({"sdk-num": [[1000, 1.5], [2000, -2.0], [3000, 1e100]], "sdk-str": [[1000, "a"], [2000, "b"]]})
    );
    let series = sdk.run("series", &["sdk-num", "sdk-str"]).await;
    assert_eq!(series["sdk-str"]["isString"], true);
    assert_eq!(series["sdk-num"]["isString"], false);
    let events = sdk.run("events", &["sdk-e1"]).await;
    let event = &events["sdk-e1"];
    assert_eq!(
        (
            &event["startTime"],
            &event["endTime"],
            &event["type"],
            &event["metadata"]
        ),
        (&json!(10), &json!(20), &json!("t"), &json!({"k": "v"}))
    );
    let runs = sdk.run("runs", &["sdk-pipe"]).await;
    assert_eq!(
        runs,
        json!([{"status": "failure", "message": "broke"}, {"status": "success", "message": null}])
    );
    assert_eq!(
        server.unauthorized(),
        0,
        "every SDK request carried a valid token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_cluster_scope_is_refused() {
    let server = CdfServer::start("tapline-test", None)
        .await
        .verifying(idp())
        .await;
    let client = idp().secret_client(false, 3600).await;
    let other = CdfServer::start("tapline-test", None).await;
    let sdk = Sdk {
        base_url: server.base_url(),
        project: server.project.clone(),
        token: other.token_for(&client).await,
    };
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::harness::cognite_sdk::python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/cognite/sdk_client.py"
            ))
            .args(["rows", "db", "table"])
            .env("COGNITE_BASE_URL", &sdk.base_url)
            .env("COGNITE_PROJECT", &sdk.project)
            .env("COGNITE_TOKEN", &sdk.token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    assert!(server.unauthorized() >= 1, "{:?}", server.seen());
}
