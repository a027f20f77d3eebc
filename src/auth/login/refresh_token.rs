//! The refresh-token grant both interactive logins use, and the scope rules around it.
//!
//! Why its own module: getting this wrong is the classic device-code bug (cognite-sdk-python
//! PRs #2585/#2602): refresh tokens were ignored, and sending the OIDC scopes (`openid`,
//! `profile`, `email`, `offline_access`) with the refresh grant made Entra ID answer
//! `invalid_grant`. So the login asks for `openid offline_access` on top of the configured scopes
//! (without `offline_access`, Entra ID issues no refresh token), and the refresh sends the
//! configured scopes without any OIDC scope.

use secrecy::SecretString;

use crate::auth::token_endpoint::{ClientAuthentication, FormValue, TokenEndpoint, TokenResponse};
use crate::auth::Error;

/// Scopes that belong to OpenID Connect rather than to the API.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The scopes of the login request: the configured ones plus `openid offline_access`.
pub(crate) fn login_scope(scopes: &[String]) -> String {
    let mut all: Vec<&str> = scopes.iter().map(String::as_str).collect();
    for extra in ["openid", "offline_access"] {
        if !all.contains(&extra) {
            all.push(extra);
        }
    }
    all.join(" ")
}

/// The scopes of a refresh request: the configured ones without any OIDC scope.
pub(crate) fn refresh_scope(scopes: &[String]) -> String {
    scopes
        .iter()
        .map(String::as_str)
        .filter(|scope| !OIDC_SCOPES.contains(scope))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True for the refresh errors that only a new login cures: the refresh token expired, was
/// revoked or was already used (`invalid_grant`), or the provider wants the person back
/// (`interaction_required`, Entra ID's conditional access). Other rejections (`invalid_client`,
/// `invalid_scope`) are configuration problems a new login would not fix.
pub(crate) fn needs_new_login(error: &str) -> bool {
    matches!(
        error,
        "invalid_grant" | "interaction_required" | "login_required" | "consent_required"
    )
}

/// Redeems `refresh_token` for a new access token (and maybe a rotated refresh token).
pub(crate) async fn redeem(
    endpoint: &TokenEndpoint,
    client_id: &str,
    refresh_token: &SecretString,
    scope: &str,
    token_args: &[(String, String)],
) -> Result<TokenResponse, Error> {
    let mut form = vec![
        ("grant_type", FormValue::Plain("refresh_token")),
        ("client_id", FormValue::Plain(client_id)),
        ("refresh_token", FormValue::Secret(refresh_token)),
    ];
    if !scope.is_empty() {
        form.push(("scope", FormValue::Plain(scope)));
    }
    for (name, value) in token_args {
        form.push((name, FormValue::Plain(value)));
    }
    endpoint
        .request_grant(&form, ClientAuthentication::InForm)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_login_adds_openid_and_offline_access_once() {
        assert_eq!(
            login_scope(&scopes("api.read")),
            "api.read openid offline_access"
        );
        assert_eq!(
            login_scope(&scopes("offline_access api.read")),
            "offline_access api.read openid"
        );
    }

    #[test]
    fn the_refresh_drops_every_oidc_scope() {
        assert_eq!(
            refresh_scope(&scopes(
                "openid profile https://x/user_impersonation email offline_access"
            )),
            "https://x/user_impersonation"
        );
        assert_eq!(refresh_scope(&scopes("openid")), "");
    }
}
