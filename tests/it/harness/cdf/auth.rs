//! The token check every request passes: a JWT signed by the test identity provider, for its
//! audience and issuer, unexpired at arrival (to the millisecond), carrying the cluster scope.

use axum::response::Response;
use serde_json::{json, Value};

use super::reply::ok;

/// Checks bearer tokens: the test API's checks (`harness::api::Verifier`), plus the scope.
pub struct Verifier {
    tokens: crate::harness::api::Verifier,
    scope: String,
}

impl Verifier {
    /// Tokens of the identity provider (its JWKS and issuer) carrying `scope`.
    pub fn new(jwks: Value, issuer: &str, scope: &str) -> Self {
        Self {
            tokens: crate::harness::api::Verifier::new(jwks, issuer),
            scope: scope.to_string(),
        }
    }

    /// The token's claims, or why it is refused.
    pub fn check(&self, authorization: Option<&str>) -> Result<Value, String> {
        let claims = self.tokens.check(authorization)?;
        let scopes = claims["scope"].as_str().unwrap_or("");
        if !scopes.split(' ').any(|scope| scope == self.scope) {
            return Err(format!("the token lacks the scope {}", self.scope));
        }
        Ok(claims)
    }
}

/// `GET /api/v1/token/inspect`: who the token is, and its project with two groups.
pub fn inspect(claims: Option<Value>, project: &str) -> Response {
    let subject = claims
        .as_ref()
        .and_then(|claims| claims["sub"].as_str().or(claims["client_id"].as_str()))
        .unwrap_or("anonymous")
        .to_string();
    let body = json!({
        "subject": subject,
        "projects": [{"projectUrlName": project, "groups": [101, 102]}],
        "capabilities": [],
    });
    ok(axum::http::StatusCode::OK, body)
}
