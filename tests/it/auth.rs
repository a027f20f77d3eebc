//! The credential providers and the token cache against the real identity provider.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};
use tapline::auth::{AccessToken, Credentials, Error, Provider};
use tapline::config::{ComponentConfig, SessionConfig};
use tapline::Registry;

use crate::harness::capture::Capture;
use crate::harness::cert::TestCert;
use crate::harness::idp::idp;
use crate::harness::jwt;
use crate::harness::unique;

/// The provider an `auth:` block names, built as `tapline run` builds it.
fn provider(yaml: &str) -> Arc<dyn Provider> {
    let block: ComponentConfig = serde_yaml::from_str(yaml).expect("an auth block");
    Registry::builtin()
        .provider_for(&block)
        .unwrap_or_else(|problems| panic!("the auth block has problems: {problems:?}"))
}

fn credentials(yaml: &str) -> Credentials {
    provider(yaml)
        .credentials(&SessionConfig::default())
        .expect("credentials build")
}

async fn token(credentials: &Credentials) -> Result<Arc<AccessToken>, Error> {
    credentials.token().await.map(|t| t.expect("a token"))
}

fn text(token: &AccessToken) -> &str {
    token.secret().expose_secret()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn client_secret_in_the_body_gets_a_verified_token() {
    let idp = idp();
    let client = idp.secret_client(false, 3600).await;
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: {}\nclient-secret: {}\nclient-auth: body\nscopes: api.read api.write\n",
        idp.token_url(), client.id, client.secret
    ));
    let token = token(&credentials).await.unwrap();
    let claims = jwt::verify(text(&token), &idp.jwks().await, &client.id);
    assert_eq!(claims["scope"], "api.read api.write");
    assert_eq!(idp.issued(&client.id).await, 1);
    // Debug output of everything holding the secret or the token shows neither.
    let debug = format!("{credentials:?} {token:?}");
    assert!(debug.contains("REDACTED"), "{debug}");
    assert!(!debug.contains(&client.secret), "{debug}");
    assert!(!debug.contains(text(&token)), "{debug}");
}

#[tokio::test]
async fn client_secret_with_http_basic_gets_a_verified_token() {
    let idp = idp();
    let client = idp.secret_client(true, 3600).await;
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: {}\nclient-secret: {}\nclient-auth: basic\n",
        idp.token_url(), client.id, client.secret
    ));
    let token = token(&credentials).await.unwrap();
    jwt::verify(text(&token), &idp.jwks().await, &client.id);
}

#[tokio::test]
async fn a_wrong_secret_is_rejected_at_once_with_the_providers_error() {
    let idp = idp();
    let client = idp.secret_client(false, 3600).await;
    let key = unique("wrong-secret");
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: {}\nclient-secret: not-the-secret\n",
        idp.faulty_token_url(&key),
        client.id
    ));
    let error = token(&credentials).await.unwrap_err();
    assert!(
        matches!(&error, Error::TokenRejected { error, .. } if error == "invalid_client"),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("client authentication failed"),
        "{error}"
    );
    assert!(!error.to_string().contains("not-the-secret"));
    assert_eq!(
        idp.arrivals(&key).await.len(),
        1,
        "a rejection is not retried"
    );
}

async fn certificate_client(cert: &TestCert) -> String {
    let id = unique("cert-client");
    idp()
        .register(json!({
            "client_id": id,
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": cert.jwks(),
        }))
        .await;
    id
}

async fn certificate_login(cert: &TestCert, files: &str) {
    let idp = idp();
    let id = certificate_client(cert).await;
    let credentials = credentials(&format!(
        "type: certificate\ntoken-url: {}\nclient-id: {id}\n{files}",
        idp.token_url()
    ));
    let token = token(&credentials).await.unwrap();
    jwt::verify(text(&token), &idp.jwks().await, &id);
    // A second request needs a fresh assertion (the provider refuses a reused jti).
    credentials.invalidate(&token);
    let again = token_again(&credentials).await;
    jwt::verify(text(&again), &idp.jwks().await, &id);
    assert_eq!(idp.issued(&id).await, 2);
}

async fn token_again(credentials: &Credentials) -> Arc<AccessToken> {
    token(credentials).await.unwrap()
}

#[tokio::test]
async fn certificate_from_one_pem_with_certificate_and_key() {
    let cert = TestCert::generate();
    certificate_login(
        &cert,
        &format!("certificate: {}\n", cert.combined.display()),
    )
    .await;
}

/// cert-manager or a rotated Kubernetes secret replaces the PEM in place: the next token request
/// signs with the new key, without a restart. The client is re-registered with only the new
/// key's JWKS, so a token after the rotation proves the new key signed the assertion.
#[tokio::test]
async fn a_rotated_certificate_file_is_used_for_the_next_token_request() {
    let idp = idp();
    let (old, new) = (TestCert::generate(), TestCert::generate());
    let id = certificate_client(&old).await;
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("client.pem");
    std::fs::copy(&old.combined, &pem).unwrap();
    let credentials = credentials(&format!(
        "type: certificate\ntoken-url: {}\nclient-id: {id}\ncertificate: {}\n",
        idp.token_url(),
        pem.display()
    ));
    let first = token(&credentials).await.unwrap();
    jwt::verify(text(&first), &idp.jwks().await, &id);

    idp.register(json!({"client_id": id, "token_endpoint_auth_method": "private_key_jwt", "jwks": new.jwks()}))
        .await;
    std::fs::copy(&new.combined, &pem).unwrap();
    credentials.invalidate(&first);
    let second = token(&credentials)
        .await
        .expect("the rotated certificate was not loaded");
    jwt::verify(text(&second), &idp.jwks().await, &id);
}

#[tokio::test]
async fn certificate_with_a_separate_key_file() {
    let cert = TestCert::generate();
    certificate_login(
        &cert,
        &format!(
            "certificate: {}\nprivate-key: {}\n",
            cert.cert.display(),
            cert.key.display()
        ),
    )
    .await;
}

#[tokio::test]
async fn certificate_from_pkcs12_with_password() {
    let cert = TestCert::generate();
    certificate_login(
        &cert,
        &format!(
            "certificate: {}\npassword: {}\n",
            cert.p12.display(),
            TestCert::PASSWORD
        ),
    )
    .await;
}

#[tokio::test]
async fn certificate_with_an_encrypted_key_and_password() {
    let cert = TestCert::generate();
    certificate_login(
        &cert,
        &format!(
            "certificate: {}\nprivate-key: {}\npassword: {}\n",
            cert.cert.display(),
            cert.encrypted_key.display(),
            TestCert::PASSWORD
        ),
    )
    .await;
}

#[tokio::test]
async fn a_wrong_certificate_password_is_a_clear_error() {
    let cert = TestCert::generate();
    let error = provider(&format!(
        "type: certificate\ntoken-url: https://idp.test/token\nclient-id: x\ncertificate: {}\npassword: wrong-pw\n",
        cert.p12.display()
    ))
    .credentials(&SessionConfig::default())
    .unwrap_err();
    assert!(error.to_string().contains("password"), "{error}");
    assert!(!error.to_string().contains("wrong-pw"));
    let error = provider(&format!(
        "type: certificate\ntoken-url: https://idp.test/token\nclient-id: x\ncertificate: {}\nprivate-key: {}\npassword: wrong-pw\n",
        cert.cert.display(),
        cert.encrypted_key.display()
    ))
    .credentials(&SessionConfig::default())
    .unwrap_err();
    assert!(error.to_string().contains("password"), "{error}");
    assert!(!error.to_string().contains("wrong-pw"));
}

#[tokio::test]
async fn certificate_assertion_carries_the_entra_header_and_claims() {
    let cert = TestCert::generate();
    let mut capture = Capture::start(r#"{"access_token":"captured","expires_in":3600}"#).await;
    let credentials = credentials(&format!(
        "type: certificate\ntoken-url: {}\nclient-id: my-client\ncertificate: {}\nscopes: [https://api.tapline.test/.default]\n",
        capture.url,
        cert.combined.display()
    ));
    let first = token(&credentials).await.unwrap();
    let form = capture.next_form().await;
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "my-client");
    assert_eq!(form["scope"], "https://api.tapline.test/.default");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let assertion = &form["client_assertion"];

    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_eq!(
        header.x5t.as_deref(),
        Some(URL_SAFE_NO_PAD.encode(Sha1::digest(&cert.der)).as_str())
    );

    // The signature verifies with the certificate's public key.
    let key = DecodingKey::from_rsa_pem(&cert.public_pem).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[capture.url.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["aud"], capture.url);
    assert_eq!(claims["iss"], "my-client");
    assert_eq!(claims["sub"], "my-client");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let iat = claims["iat"].as_u64().unwrap();
    assert!(iat <= now && iat + 60 >= now, "iat {iat} is now");
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
    assert_eq!(claims["exp"].as_u64(), Some(iat + 600));
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(jti).unwrap().get_version_num(), 4);

    // A fresh assertion for every request.
    credentials.invalidate(&first);
    token(&credentials).await.unwrap();
    let second = capture.next_form().await;
    assert_ne!(&second["client_assertion"], assertion);
}

#[tokio::test]
async fn kognic_credentials_file_gets_a_verified_token_from_the_kognic_path() {
    let idp = idp();
    let client = idp.secret_client(false, 3600).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials.json");
    std::fs::write(
        &file,
        json!({"clientId": client.id, "clientSecret": client.secret, "email": "a@b.c",
               "userId": 1, "issuer": "kognic", "scopes": ["api.read"]})
        .to_string(),
    )
    .unwrap();
    let key = unique("kognic");
    let credentials = credentials(&format!(
        "type: kognic\ncredentials: {}\nserver: {}/fault/{key}/\n",
        file.display(),
        idp.base
    ));
    let token = token(&credentials).await.unwrap();
    let claims = jwt::verify(text(&token), &idp.jwks().await, &client.id);
    assert_eq!(claims["scope"], "api.read");
    // It went to <server>/v1/auth/oauth/token (the only path under the fault prefix used here).
    assert_eq!(idp.arrivals(&key).await.len(), 1);
}

/// 200 callers at a time, three times: at start, while a refresh is due (token still usable), and
/// after the token expired unused. Each wave costs exactly one token request, and no caller
/// ever gets a token past the end of its use, nor one the provider considers expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_callers_cause_one_token_request_per_refresh() {
    let idp = idp();
    let client = idp.secret_client(false, 6).await;
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: {}\nclient-secret: {}\nrefresh-margin: 30s\n",
        idp.token_url(), client.id, client.secret
    ));
    let wave = || async {
        let calls = (0..200).map(|_| {
            let credentials = credentials.clone();
            tokio::spawn(async move {
                let token = token(&credentials).await.unwrap();
                let (at, wall) = (Instant::now(), now_ms());
                (token, at, wall)
            })
        });
        let results = futures::future::join_all(calls).await;
        for result in &results {
            let (token, at, wall) = result.as_ref().unwrap();
            assert!(
                token.usable_until().unwrap() > *at,
                "served a token past the end of its use"
            );
            // The provider's `exp` is whole seconds from a rounded-down `iat`, so it may be up to
            // a second earlier than `expires_in` from the request's departure; it is honoured,
            // with a skew of at least a second to spare.
            let exp = jwt::claims(text(token))["exp"].as_u64().unwrap();
            assert!(
                exp * 1000 > *wall + 1000,
                "served a token the provider considers (nearly) expired"
            );
        }
        results
            .into_iter()
            .map(|r| r.unwrap().0)
            .collect::<Vec<_>>()
    };

    let first = wave().await;
    assert_eq!(
        idp.issued(&client.id).await,
        1,
        "one request for 200 callers at start"
    );

    // A 6 s token is used until a 1.5 s skew before it expires (3.5 to 4.5 s after the request,
    // as `exp` is whole seconds), and the 30 s margin is clamped to half of that: from 2.25 s at
    // the latest a refresh is due, but the token is still usable, so callers get it at once and
    // one background refresh runs.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let during = wave().await;
    // The first callers of the wave get the still-valid token at once; callers that come after
    // the background refresh finished (a busy machine spreads the wave out) get the new one.
    assert!(
        Arc::ptr_eq(&during[0], &first[0]),
        "callers kept the valid token"
    );
    let refreshed: Vec<_> = during
        .iter()
        .filter(|t| !Arc::ptr_eq(t, &first[0]))
        .collect();
    assert!(
        refreshed.iter().all(|t| Arc::ptr_eq(t, refreshed[0])),
        "one refreshed token for everybody"
    );
    for _ in 0..50 {
        if idp.issued(&client.id).await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(idp.issued(&client.id).await, 2, "one background refresh");

    // Let the refreshed token expire with nobody asking, then 200 callers at once.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let after = wave().await;
    assert_eq!(
        idp.issued(&client.id).await,
        3,
        "one request for 200 callers after expiry"
    );
    assert!(after.iter().all(|t| Arc::ptr_eq(t, &after[0])));
    assert!(during.iter().all(|t| !Arc::ptr_eq(&after[0], t)));
}

#[tokio::test]
async fn a_token_endpoint_failing_three_times_is_retried_with_growing_delays() {
    let idp = idp();
    let client = idp.secret_client(false, 3600).await;
    let key = unique("flaky");
    idp.queue_faults(
        &key,
        json!([
            {"status": 503, "body": "down"},
            {"status": 503, "body": "down"},
            {"status": 503, "body": "down"},
        ]),
    )
    .await;
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: {}\nclient-secret: {}\n",
        idp.faulty_token_url(&key),
        client.id,
        client.secret
    ));
    let token = token(&credentials).await.unwrap();
    jwt::verify(text(&token), &idp.jwks().await, &client.id);
    let arrivals = idp.arrivals(&key).await;
    assert_eq!(arrivals.len(), 4, "three failures, then the success");
    let gaps: Vec<u64> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    // Exponential backoff from 250 ms: each delay at least doubles the floor of the one before
    // (ms timestamps, so allow a millisecond of rounding).
    for (i, gap) in gaps.iter().enumerate() {
        let floor = 250 << i;
        assert!(
            *gap + 1 >= floor,
            "gap {i} was {gap} ms, expected at least {floor} ms: {gaps:?}"
        );
    }
    assert!(gaps[2] > gaps[0], "delays grow: {gaps:?}");
}

async fn malformed(body: Value) -> Error {
    let idp = idp();
    let client = idp.secret_client(false, 3600).await;
    let key = unique("malformed");
    idp.queue_faults(&key, json!([{"status": 200, "body": body}]))
        .await;
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: {}\nclient-secret: {}\n",
        idp.faulty_token_url(&key),
        client.id,
        client.secret
    ));
    let error = token(&credentials).await.unwrap_err();
    assert_eq!(
        idp.arrivals(&key).await.len(),
        1,
        "a malformed answer is not retried"
    );
    error
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    let error = malformed(json!("not json at all")).await;
    assert!(
        matches!(error, Error::MalformedResponse { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("not JSON"), "{error}");
}

#[tokio::test]
async fn a_missing_access_token_is_a_clear_error() {
    let error = malformed(json!({"token_type": "Bearer", "expires_in": 3600})).await;
    assert!(
        error.to_string().contains("access_token is missing"),
        "{error}"
    );
}

#[tokio::test]
async fn a_non_numeric_expires_in_is_a_clear_error_that_hides_the_token() {
    let error =
        malformed(json!({"access_token": "eyJ.secret-token.sig", "expires_in": "soon"})).await;
    assert!(error.to_string().contains("expires_in"), "{error}");
    assert!(!error.to_string().contains("secret-token"));
    assert!(!format!("{error:?}").contains("secret-token"));
}

#[tokio::test]
async fn a_numeric_string_expires_in_is_accepted() {
    let mut capture =
        Capture::start(r#"{"access_token":"abc","expires_in":"120","token_type":"Bearer"}"#).await;
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: c\nclient-secret: s\n",
        capture.url
    ));
    let token = token(&credentials).await.unwrap();
    capture.next_form().await;
    let left = token.expires_at().unwrap() - Instant::now();
    assert!(
        left <= Duration::from_secs(120) && left > Duration::from_secs(100),
        "{left:?}"
    );
}

#[tokio::test]
async fn retry_after_from_the_token_endpoint_is_honoured() {
    let idp = idp();
    let client = idp.secret_client(false, 3600).await;
    let key = unique("retry-after");
    idp.queue_faults(
        &key,
        json!([{"status": 429, "body": {"error": "slow_down"}, "headers": {"retry-after": "1"}}]),
    )
    .await;
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: {}\nclient-secret: {}\n",
        idp.faulty_token_url(&key),
        client.id,
        client.secret
    ));
    token(&credentials).await.unwrap();
    let arrivals = idp.arrivals(&key).await;
    assert_eq!(arrivals.len(), 2);
    assert!(
        arrivals[1] - arrivals[0] >= 999,
        "waited {} ms",
        arrivals[1] - arrivals[0]
    );
}

/// The provider's answers to the next requests under a fresh fault key, and credentials that ask
/// it through that key.
async fn scripted(bodies: &[Value]) -> Credentials {
    let idp = idp();
    let client = idp.secret_client(false, 3600).await;
    let key = unique("scripted");
    let faults: Vec<Value> = bodies
        .iter()
        .map(|body| json!({"status": 200, "body": body}))
        .collect();
    idp.queue_faults(&key, Value::Array(faults)).await;
    credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: {}\nclient-secret: {}\n",
        idp.faulty_token_url(&key),
        client.id,
        client.secret
    ))
}

#[tokio::test]
async fn huge_lifetimes_are_taken_as_a_year_and_never_panic() {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    for expires_in in [
        json!(9.3e18),
        json!(1e19),
        json!(1e308),
        json!(u64::MAX),
        json!("1e19"),
        json!("1e308"),
    ] {
        let credentials =
            scripted(&[json!({"access_token": "huge", "expires_in": expires_in})]).await;
        let before = Instant::now();
        let token = token(&credentials).await.unwrap();
        let expires_at = token.expires_at().unwrap();
        assert!(
            expires_at >= before + YEAR - Duration::from_secs(1)
                && expires_at <= Instant::now() + YEAR,
            "{expires_in}: {:?}",
            expires_at - before
        );
    }
}

/// A loopback token endpoint answering a valid token response padded to `size` bytes, with a
/// `Content-Length` or streamed in chunks without one.
fn padded_token_endpoint(size: usize, content_length: bool) -> String {
    use axum::body::{Body, Bytes};
    let head = br#"{"access_token":"big","expires_in":3600,"pad":""#.to_vec();
    let answer = move || {
        let head = head.clone();
        async move {
            let pad = size - head.len() - 2;
            let body = if content_length {
                let mut whole = head;
                whole.extend(std::iter::repeat_n(b'a', pad));
                whole.extend_from_slice(b"\"}");
                Body::from(whole)
            } else {
                let chunks = std::iter::once(Bytes::from(head))
                    .chain((0..pad / 65536).map(|_| Bytes::from(vec![b'a'; 65536])))
                    .chain(std::iter::once(Bytes::from(vec![b'a'; pad % 65536])))
                    .chain(std::iter::once(Bytes::from_static(b"\"}")))
                    .map(Ok::<_, std::io::Error>);
                Body::from_stream(futures::stream::iter(chunks))
            };
            ([("content-type", "application/json")], body)
        }
    };
    let router = axum::Router::new().route("/token", axum::routing::post(answer));
    format!("{}/token", crate::harness::loopback::serve(router).base())
}

#[tokio::test]
async fn a_token_response_over_one_mebibyte_is_refused_while_reading() {
    for content_length in [true, false] {
        let credentials = credentials(&format!(
            "type: client-secret\ntoken-url: {}\nclient-id: c\nclient-secret: s\n",
            padded_token_endpoint(8 << 20, content_length)
        ));
        let error = token(&credentials).await.unwrap_err();
        assert!(
            matches!(error, Error::MalformedResponse { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("larger than 1 MiB"), "{error}");
    }
    // Exactly 1 MiB is still read.
    let credentials = credentials(&format!(
        "type: client-secret\ntoken-url: {}\nclient-id: c\nclient-secret: s\n",
        padded_token_endpoint(1 << 20, false)
    ));
    assert_eq!(text(&token(&credentials).await.unwrap()), "big");
}
