//! Checks a token the way an API would: signature against the identity provider's JWKS, the
//! audience, and who it was issued to.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::Value;

/// The audience the test provider puts in client-credentials tokens.
pub const AUDIENCE: &str = "https://api.tapline.test";

/// Verifies `token` against `jwks` (signature, `exp`, `aud`) and that it was issued to
/// `client_id`; returns the claims.
pub fn verify(token: &str, jwks: &Value, client_id: &str) -> Value {
    let header = decode_header(token).expect("the token is a JWT");
    let set: JwkSet = serde_json::from_value(jwks.clone()).expect("a JWK set");
    let jwk = match &header.kid {
        Some(kid) => set.find(kid).expect("the token's kid is in the JWKS"),
        None => set.keys.first().expect("a key in the JWKS"),
    };
    let key = DecodingKey::from_jwk(jwk).expect("a usable JWK");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[AUDIENCE]);
    let claims = decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|error| panic!("token does not verify: {error}"))
        .claims;
    assert_eq!(
        claims["client_id"], client_id,
        "issued to the wrong client: {claims}"
    );
    claims
}

/// The claims of a JWT, unverified (for looking at who a token was issued to).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
