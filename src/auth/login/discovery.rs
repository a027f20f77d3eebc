//! Where an interactive login sends the person and redeems the code: the token endpoint and the
//! device authorization or authorization endpoint.
//!
//! Explicit URLs win; an Entra ID authority gets its well-known v2.0 paths without a request;
//! any other authority is an OIDC issuer whose discovery document
//! (`/.well-known/openid-configuration`) names the endpoints. Every URL found is held to the same
//! rule as a configured one (https, or http on loopback), since the client id and codes go there.

use serde_json::Value;

use crate::auth::token_endpoint::TokenEndpoint;
use crate::auth::Error;
use crate::config::{check, BuildError};

/// The endpoints of an interactive login as configured: an authority, or a token URL plus the
/// flow's own endpoint (device authorization or authorization).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractiveEndpoints {
    /// `authority-url`.
    pub authority_url: Option<String>,
    /// `token-url`.
    pub token_url: Option<String>,
    /// `device-authorization-url` or `authorization-url`.
    pub login_url: Option<String>,
}

impl InteractiveEndpoints {
    /// The rule of both logins' blocks: an authority, or a token URL plus the flow's own
    /// endpoint (written at `login_key`); every URL that will see the client id or a code must be
    /// https (or loopback).
    pub(crate) fn check(&self, login_key: &str) -> Result<(), BuildError> {
        let given = match (&self.authority_url, &self.token_url) {
            (Some(_), Some(_)) => Err(BuildError::at(
                "authority-url",
                "give either authority-url or token-url, not both",
            )),
            (None, None) => Err(BuildError::at(
                "authority-url",
                format!("missing; give authority-url (https://login.microsoftonline.com/<tenant>, or an OIDC issuer), or token-url with {login_key}"),
            )),
            (None, Some(_)) if self.login_url.is_none() => Err(BuildError::at(
                login_key,
                format!("missing; token-url needs {login_key}, or give authority-url instead"),
            )),
            _ => Ok(()),
        };
        let urls = [
            ("authority-url", &self.authority_url),
            ("token-url", &self.token_url),
            (login_key, &self.login_url),
        ]
        .into_iter()
        .filter_map(|(key, url)| url.as_deref().map(|url| check::token_url(url, key)));
        check::all(std::iter::once(given).chain(urls))
    }
}

/// The endpoints a login uses, once resolved.
pub(crate) struct Endpoints {
    /// The token endpoint.
    pub(crate) token: TokenEndpoint,
    /// The device authorization endpoint or the authorization endpoint.
    pub(crate) login: url::Url,
}

/// Which endpoint besides the token endpoint a flow needs.
#[derive(Clone, Copy)]
pub(super) enum LoginEndpoint {
    /// The device authorization endpoint (RFC 8628).
    DeviceAuthorization,
    /// The authorization endpoint (authorization code grant).
    Authorization,
}

impl LoginEndpoint {
    fn discovery_field(self) -> &'static str {
        match self {
            Self::DeviceAuthorization => "device_authorization_endpoint",
            Self::Authorization => "authorization_endpoint",
        }
    }

    fn entra_path(self) -> &'static str {
        match self {
            Self::DeviceAuthorization => "oauth2/v2.0/devicecode",
            Self::Authorization => "oauth2/v2.0/authorize",
        }
    }
}

/// Explicit URLs win; an Entra ID authority gets its well-known v2.0 paths; any other authority
/// is an OIDC issuer whose discovery document names the endpoints.
pub(super) async fn resolve(
    configured: &InteractiveEndpoints,
    kind: LoginEndpoint,
    http: &reqwest::Client,
) -> Result<Endpoints, Error> {
    let checked = |url: &str| {
        crate::config::check_token_url(url).map_err(|reason| Error::TokenUrl {
            url: crate::redact::url(url),
            reason,
        })
    };
    if let (Some(token), Some(login)) = (&configured.token_url, &configured.login_url) {
        return Ok(Endpoints {
            token: TokenEndpoint::new(token, http.clone())?,
            login: checked(login)?,
        });
    }
    let authority = configured
        .authority_url
        .as_deref()
        .ok_or_else(|| Error::Misconfigured("give auth.authority-url or auth.token-url".into()))?
        .trim_end_matches('/');
    let (token, login) = if is_entra(authority) {
        (
            format!("{authority}/oauth2/v2.0/token"),
            format!("{authority}/{}", kind.entra_path()),
        )
    } else {
        discover(authority, kind, http).await?
    };
    let token = configured.token_url.clone().unwrap_or(token);
    let login = configured.login_url.clone().unwrap_or(login);
    Ok(Endpoints {
        token: TokenEndpoint::new(&token, http.clone())?,
        login: checked(&login)?,
    })
}

fn is_entra(authority: &str) -> bool {
    url::Url::parse(authority)
        .ok()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|host| {
            host.starts_with("login.microsoftonline.")
                || host == "login.chinacloudapi.cn"
                || host == "login.partner.microsoftonline.cn"
        })
}

/// OIDC discovery: `<issuer>/.well-known/openid-configuration`.
async fn discover(
    issuer: &str,
    kind: LoginEndpoint,
    http: &reqwest::Client,
) -> Result<(String, String), Error> {
    let url = format!("{issuer}/.well-known/openid-configuration");
    // Errors name the URL without a password or query it might carry.
    let shown = crate::redact::url(&url);
    crate::config::check_token_url(&url).map_err(|reason| Error::TokenUrl {
        url: shown.clone(),
        reason,
    })?;
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|source| Error::Unreachable {
            url: shown.clone(),
            source: source.without_url(),
        })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(Error::TokenEndpointStatus {
            url: shown,
            status,
            retry_after: None,
        });
    }
    let document: Value = response
        .json()
        .await
        .map_err(|_| Error::MalformedResponse {
            url: shown.clone(),
            problem: "the discovery document is not JSON",
        })?;
    let field = |name: &'static str, problem: &'static str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(Error::MalformedResponse {
                url: shown.clone(),
                problem,
            })
    };
    let token = field(
        "token_endpoint",
        "the discovery document names no token_endpoint",
    )?;
    let login = field(
        kind.discovery_field(),
        match kind {
            LoginEndpoint::DeviceAuthorization => {
                "the discovery document names no device_authorization_endpoint; give device-authorization-url"
            }
            LoginEndpoint::Authorization => {
                "the discovery document names no authorization_endpoint; give authorization-url"
            }
        },
    )?;
    Ok((token, login))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_authorities_are_recognised() {
        assert!(is_entra("https://login.microsoftonline.com/tenant"));
        assert!(is_entra("https://login.microsoftonline.us/tenant"));
        assert!(!is_entra("https://idp.example.com/realms/x"));
    }

    #[test]
    fn the_configured_endpoints_are_checked_together() {
        let endpoints = InteractiveEndpoints {
            authority_url: None,
            token_url: Some("http://idp.example.com/token".into()),
            login_url: None,
        };
        let found: Vec<String> = endpoints
            .check("device-authorization-url")
            .unwrap_err()
            .locate("auth")
            .into_iter()
            .map(|problem| problem.to_string())
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[0],
            "auth.device-authorization-url: missing; token-url needs device-authorization-url, or give authority-url instead"
        );
        assert!(
            found[1].starts_with("auth.token-url: plain http:// is refused"),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn entra_endpoints_need_no_discovery() {
        let configured = InteractiveEndpoints {
            authority_url: Some("https://login.microsoftonline.com/t1/".into()),
            token_url: None,
            login_url: None,
        };
        let endpoints = resolve(
            &configured,
            LoginEndpoint::DeviceAuthorization,
            &reqwest::Client::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            endpoints.token.url(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(
            endpoints.login.as_str(),
            "https://login.microsoftonline.com/t1/oauth2/v2.0/devicecode"
        );
    }
}
