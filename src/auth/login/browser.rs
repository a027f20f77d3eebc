//! `type: browser`: the authorization code grant with PKCE (S256) in the person's browser.
//!
//! Why a local listener: a native app receives the authorization code on a loopback redirect
//! (RFC 8252 section 7.3), `http://localhost:<redirect-port>`, which is what Entra ID and MSAL
//! use for public clients. The flow: bind the listener, send the browser to the authorization
//! endpoint with a fresh `state` and PKCE challenge, wait for the one redirect that carries the
//! code, check `state` (a mismatch means the redirect was not caused by this login: refused),
//! and exchange the code with the verifier. The refresh token that comes back is kept by
//! [`super::InteractiveLogin`].
//!
//! The provider's config ([`BrowserConfig`]), its rules ([`build`]) and its credentials
//! ([`BrowserProvider`]) are here too.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::discovery::InteractiveEndpoints;
use super::interactive_login::{InteractiveLogin, LoginRequest};
use super::prompt::LoginOptions;
use crate::auth::provider::default_refresh_margin;
use crate::auth::token_endpoint::{ClientAuthentication, FormValue, TokenResponse};
use crate::auth::{http_client, Credentials, Error, Provider, Scopes};
use crate::config::{check, BuildError, SessionConfig};

/// `type: browser`: the OAuth 2.0 authorization code grant with PKCE in the user's browser,
/// redirected to a local listener; the refresh token is kept in the token cache file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct BrowserConfig {
    /// The authority, e.g. `https://login.microsoftonline.com/<tenant>` (Entra ID endpoints are
    /// derived from it) or an OIDC issuer (endpoints found by discovery). Or give `token-url`.
    pub authority_url: Option<String>,
    /// The token endpoint, instead of `authority-url`; needs `authorization-url`.
    pub token_url: Option<String>,
    /// The authorization endpoint, with `token-url`.
    pub authorization_url: Option<String>,
    /// The OAuth client id (a public client registered with redirect URI `http://localhost`).
    pub client_id: String,
    /// Scopes: a list, or one space-separated string. `openid` and `offline_access` are added to
    /// the login request so that a refresh token is issued.
    #[serde(default)]
    pub scopes: Scopes,
    /// Extra form fields sent with the token requests (audience, resource, ...).
    #[serde(default)]
    pub token_args: BTreeMap<String, String>,
    /// The local port of the redirect listener, `http://localhost:<port>`.
    #[serde(default = "default_redirect_port")]
    pub redirect_port: u16,
    /// Try to open the system browser; the URL is printed on stderr either way.
    #[serde(default = "default_true")]
    pub open_browser: bool,
    /// The token cache file (mode 0600); default `$XDG_CACHE_HOME/tapline/tokens.json`, else
    /// `~/.cache/tapline/tokens.json`.
    pub token_cache: Option<PathBuf>,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: crate::config::HumanDuration,
}

fn default_redirect_port() -> u16 {
    53000
}

fn default_true() -> bool {
    true
}

impl BrowserConfig {
    /// The configured endpoints.
    pub fn endpoints(&self) -> InteractiveEndpoints {
        InteractiveEndpoints {
            authority_url: self.authority_url.clone(),
            token_url: self.token_url.clone(),
            login_url: self.authorization_url.clone(),
        }
    }
}

/// A checked `browser` block.
#[derive(Debug)]
pub struct BrowserProvider {
    config: BrowserConfig,
}

/// Checks a `browser` block: a client id, and an authority or a token URL with an
/// authorization URL, all https (or loopback).
pub fn build(config: BrowserConfig) -> Result<BrowserProvider, BuildError> {
    check::all([
        check::not_blank(&config.client_id, "client-id"),
        config.endpoints().check("authorization-url"),
    ])?;
    Ok(BrowserProvider { config })
}

impl BrowserProvider {
    fn source(
        &self,
        session: &SessionConfig,
        options: LoginOptions,
    ) -> Result<InteractiveLogin, Error> {
        InteractiveLogin::browser(&self.config, http_client(session)?, options)
    }
}

/// A new login starts only when stdin and stderr are terminals; otherwise the refresh token
/// `tapline login` cached must do.
#[async_trait::async_trait]
impl Provider for BrowserProvider {
    fn credentials(&self, session: &SessionConfig) -> Result<Credentials, Error> {
        let options = LoginOptions::terminal(self.config.open_browser);
        Ok(Credentials::with_refresh_margin(
            self.source(session, options)?,
            self.config.refresh_margin.get(),
        ))
    }

    async fn login(&self, session: &SessionConfig) -> Result<PathBuf, Error> {
        let options = LoginOptions::login_command(self.config.open_browser);
        self.source(session, options)?.login_to_cache().await
    }
}

/// How long the listener waits for the browser to come back.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The authorization code grant with PKCE and a loopback redirect.
#[derive(Debug)]
pub(crate) struct Browser {
    /// The listener's port; 0 picks a free one.
    redirect_port: u16,
}

/// What the redirect brought back.
enum Redirect {
    Code(SecretString),
    Refused(String),
}

impl Browser {
    pub(crate) fn new(redirect_port: u16) -> Self {
        Self { redirect_port }
    }

    /// Runs one browser login to the end.
    pub(crate) async fn login(&self, request: &LoginRequest<'_>) -> Result<TokenResponse, Error> {
        let listener = TcpListener::bind(("127.0.0.1", self.redirect_port))
            .await
            .map_err(|error| {
                Error::LoginFailed(format!(
                    "cannot listen on 127.0.0.1:{} for the login redirect ({error}); set auth.redirect-port to a free port registered with the identity provider",
                    self.redirect_port
                ))
            })?;
        let port = listener
            .local_addr()
            .map_err(|error| Error::LoginFailed(format!("the redirect listener: {error}")))?
            .port();
        // `localhost` may resolve to ::1 first; listen there too when we can.
        let listener_v6 = TcpListener::bind(("::1", port)).await.ok();
        let redirect_uri = format!("http://localhost:{port}");
        let verifier = random_text(32);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()));
        let state = random_text(16);

        let mut url = request.endpoints.login.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", request.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", &redirect_uri)
                .append_pair("scope", request.scope)
                .append_pair("state", state.expose_secret())
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            for (name, value) in request.token_args {
                query.append_pair(name, value);
            }
        }
        request.prompt.open_browser(url.as_str());

        let redirect = tokio::time::timeout(
            LOGIN_TIMEOUT,
            wait_for_redirect(&listener, listener_v6.as_ref(), &state),
        )
        .await
        .map_err(|_| {
            Error::LoginFailed(format!(
                "no login came back to {redirect_uri} within {} minutes",
                LOGIN_TIMEOUT.as_secs() / 60
            ))
        })??;
        let code = match redirect {
            Redirect::Code(code) => code,
            Redirect::Refused(reason) => return Err(Error::LoginFailed(reason)),
        };
        let mut form = vec![
            ("grant_type", FormValue::Plain("authorization_code")),
            ("client_id", FormValue::Plain(request.client_id)),
            ("code", FormValue::Secret(&code)),
            ("redirect_uri", FormValue::Plain(&redirect_uri)),
            ("code_verifier", FormValue::Secret(&verifier)),
        ];
        for (name, value) in request.token_args {
            form.push((name, FormValue::Plain(value)));
        }
        request
            .endpoints
            .token
            .request_grant(&form, ClientAuthentication::InForm)
            .await
    }
}

/// Random bytes as unpadded base64url (PKCE verifier, state).
fn random_text(bytes: usize) -> SecretString {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    SecretString::from(URL_SAFE_NO_PAD.encode(buffer))
}

/// Serves the loopback listener until a request to `/` carries `code` or `error`; other paths
/// (a browser's `/favicon.ico`) get a 404 and the wait goes on.
async fn wait_for_redirect(
    listener: &TcpListener,
    listener_v6: Option<&TcpListener>,
    state: &SecretString,
) -> Result<Redirect, Error> {
    loop {
        let accepted = match listener_v6 {
            Some(v6) => tokio::select! {
                accepted = listener.accept() => accepted,
                accepted = v6.accept() => accepted,
            },
            None => listener.accept().await,
        };
        let Ok((mut socket, _)) = accepted else {
            continue;
        };
        let Some(target) = read_request_target(&mut socket).await else {
            continue;
        };
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path != "/" {
            respond(&mut socket, "404 Not Found", "Not found.").await;
            continue;
        }
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        if params.get("state").map(String::as_bytes) != Some(state.expose_secret().as_bytes()) {
            respond(
                &mut socket,
                "400 Bad Request",
                "This sign-in response does not belong to the login tapline started (state mismatch). Start the login again.",
            )
            .await;
            return Ok(Redirect::Refused(
                "the redirect's state does not match the login tapline started; refused (a stale or forged redirect)".into(),
            ));
        }
        if let Some(error) = params.get("error") {
            respond(
                &mut socket,
                "200 OK",
                "The sign-in failed; see the terminal.",
            )
            .await;
            let description = params
                .get("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            return Ok(Redirect::Refused(format!(
                "the identity provider refused the sign-in: {error}{description}"
            )));
        }
        match params.get("code") {
            Some(code) if !code.is_empty() => {
                respond(
                    &mut socket,
                    "200 OK",
                    "Signed in to tapline. You can close this window.",
                )
                .await;
                return Ok(Redirect::Code(SecretString::from(code.clone())));
            }
            _ => respond(&mut socket, "400 Bad Request", "No authorization code.").await,
        }
    }
}

/// The request target of an HTTP/1 request line, reading no more than the head.
async fn read_request_target(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = head.split(|byte| *byte == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let mut parts = line.split(' ');
    let (method, target) = (parts.next()?, parts.next()?);
    (method == "GET").then(|| target.to_string())
}

async fn respond(socket: &mut TcpStream, status: &str, message: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tapline</title></head><body><p>{message}</p></body></html>"
    );
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(reply.as_bytes()).await;
    let _ = socket.shutdown().await;
}
