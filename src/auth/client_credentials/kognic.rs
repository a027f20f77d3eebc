//! `type: kognic`: Kognic API credentials, resolved as `kognic-auth` does.
//!
//! Resolution order: `auth.credentials` (a kognic-auth credentials JSON file, `~` expanded), else
//! `$KOGNIC_CREDENTIALS` (a path; its errors are reported, with no fall-through), else
//! `$KOGNIC_CLIENT_ID` + `$KOGNIC_CLIENT_SECRET`. What is resolved is a client id and a
//! [`ClientSecret`] sent in the form (client_secret_post): Kognic's token request is the plain
//! client credentials grant, at `server` + `/v1/auth/oauth/token`.
//!
//! The provider's config ([`KognicConfig`]), its rules ([`build`]) and its credentials
//! ([`KognicProvider`]) are here too.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;

use crate::auth::provider::default_refresh_margin;
use crate::auth::{http_client, Credentials, Error, Provider, Scopes};
use crate::config::{check, expand_home, BuildError, HumanDuration, SessionConfig};

use super::{ClientCredentials, ClientSecret};

/// The Kognic token path, joined to the server as a string (the server needs no trailing slash).
const TOKEN_PATH: &str = "/v1/auth/oauth/token";

/// `type: kognic`: Kognic API credentials (a kognic-auth credentials file or environment
/// variables).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KognicConfig {
    /// A kognic-auth credentials JSON file; else `$KOGNIC_CREDENTIALS`, else
    /// `$KOGNIC_CLIENT_ID` + `$KOGNIC_CLIENT_SECRET`. `~` is expanded.
    pub credentials: Option<PathBuf>,
    /// The Kognic auth server; the token URL is this plus `/v1/auth/oauth/token`.
    #[serde(default = "default_server")]
    pub server: String,
    /// Scopes; when empty, those in the credentials file are used.
    #[serde(default)]
    pub scopes: Scopes,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: HumanDuration,
}

fn default_server() -> String {
    "https://auth.app.kognic.com".to_string()
}

impl KognicConfig {
    /// The token URL: `server` plus the Kognic token path.
    fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.server.trim_end_matches('/'))
    }
}

/// A checked `kognic` block: it resolves the credentials when the credentials are built.
#[derive(Debug)]
pub struct KognicProvider {
    config: KognicConfig,
}

/// Checks a `kognic` block: a readable `credentials` file when one is given, and a server whose
/// token URL is https (or http on loopback). The environment is read when the credentials are
/// built, not here.
pub fn build(config: KognicConfig) -> Result<KognicProvider, BuildError> {
    check::all([
        config.credentials.as_deref().map_or(Ok(()), |file| {
            check::readable_file(&expand_home(file), "credentials")
        }),
        check::token_url(&config.token_url(), "server"),
    ])?;
    Ok(KognicProvider { config })
}

impl Provider for KognicProvider {
    fn credentials(&self, session: &SessionConfig) -> Result<Credentials, Error> {
        let source = ClientCredentials::kognic(
            &self.config,
            &KognicEnv::from_process(),
            http_client(session)?,
        )?;
        Ok(Credentials::with_refresh_margin(
            source,
            self.config.refresh_margin.get(),
        ))
    }
}

/// The `KOGNIC_*` environment variables, captured once so resolution is testable without
/// touching the process environment.
#[derive(Clone, Default)]
pub struct KognicEnv {
    /// `$KOGNIC_CREDENTIALS`: path to a credentials file.
    pub credentials: Option<PathBuf>,
    /// `$KOGNIC_CLIENT_ID`.
    pub client_id: Option<String>,
    /// `$KOGNIC_CLIENT_SECRET`.
    pub client_secret: Option<SecretString>,
}

impl KognicEnv {
    /// Reads the variables from this process's environment; empty values count as unset.
    pub fn from_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            credentials: var("KOGNIC_CREDENTIALS").map(PathBuf::from),
            client_id: var("KOGNIC_CLIENT_ID"),
            client_secret: var("KOGNIC_CLIENT_SECRET").map(SecretString::from),
        }
    }
}

impl fmt::Debug for KognicEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KognicEnv")
            .field("credentials", &self.credentials)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// The fields of a kognic-auth credentials file. The required ones are required here too, so a
/// file kognic-auth would refuse is refused with the same complaint.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // email, user_id and issuer are checked for presence only, as kognic-auth does
struct CredentialsFile {
    client_id: String,
    client_secret: SecretString,
    email: String,
    user_id: i64,
    issuer: String,
    expires: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

impl ClientCredentials<ClientSecret> {
    /// `type: kognic`: resolves the credentials (config path, then `env`) and checks the token
    /// URL.
    pub fn kognic(
        config: &KognicConfig,
        env: &KognicEnv,
        http: reqwest::Client,
    ) -> Result<Self, Error> {
        let (client_id, secret, file_scopes, origin) = if let Some(path) = &config.credentials {
            let file = read_file(&expand_home(path))?;
            (
                file.client_id,
                file.client_secret,
                file.scopes,
                path.display().to_string(),
            )
        } else if let Some(path) = &env.credentials {
            let file = read_file(&expand_home(path))?;
            (
                file.client_id,
                file.client_secret,
                file.scopes,
                format!("$KOGNIC_CREDENTIALS ({})", path.display()),
            )
        } else if let (Some(id), Some(secret)) = (&env.client_id, &env.client_secret) {
            (
                id.clone(),
                secret.clone(),
                None,
                "$KOGNIC_CLIENT_ID and $KOGNIC_CLIENT_SECRET".into(),
            )
        } else {
            return Err(Error::Kognic(
                "none found; give auth.credentials, or set $KOGNIC_CREDENTIALS, or $KOGNIC_CLIENT_ID and $KOGNIC_CLIENT_SECRET".into(),
            ));
        };
        let scopes = if config.scopes.is_empty() {
            file_scopes.unwrap_or_default()
        } else {
            config.scopes.0.clone()
        };
        let url = config.token_url();
        tracing::debug!(origin = %origin, "using Kognic credentials");
        let proof = ClientSecret::in_form(secret);
        Self::from_parts(&url, client_id, &scopes, &BTreeMap::new(), proof, http)
    }
}

fn read_file(path: &Path) -> Result<CredentialsFile, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| Error::Kognic(format!("cannot read {}: {error}", path.display())))?;
    // serde quotes a value of the wrong type, and that value may be the client secret.
    let file: CredentialsFile = serde_json::from_str(&text).map_err(|error| {
        Error::Kognic(format!(
            "{} is not a valid credentials file: {}",
            path.display(),
            crate::config::without_values(&error.to_string())
        ))
    })?;
    if let Some(expires) = file.expires.as_deref().and_then(parse_time) {
        if expires < chrono::Utc::now() {
            return Err(Error::Kognic(format!(
                "the credentials in {} expired at {expires}; create new ones",
                path.display()
            )));
        }
    }
    Ok(file)
}

/// An ISO-8601 time as kognic-auth writes it; unparseable values are ignored, as there.
fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(credentials: Option<&Path>) -> KognicConfig {
        KognicConfig {
            credentials: credentials.map(Path::to_path_buf),
            server: "http://127.0.0.1:1".into(),
            scopes: Default::default(),
            refresh_margin: crate::config::HumanDuration::from_secs(30),
        }
    }

    fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, json).unwrap();
        path
    }

    const FILE: &str = r#"{"clientId":"from-file","clientSecret":"s3cret-file","email":"a@b.c","userId":7,"issuer":"x","scopes":["a","b"]}"#;

    #[test]
    fn build_checks_the_credentials_file_and_the_servers_token_url() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let plain_http = KognicConfig {
            server: "http://auth.kognic.example.com/".into(),
            ..config(Some(&missing))
        };
        let found: Vec<String> = build(plain_http)
            .unwrap_err()
            .locate("auth")
            .into_iter()
            .map(|problem| problem.to_string())
            .collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("auth.credentials: file "), "{found:?}");
        assert!(
            found[1].starts_with("auth.server: plain http:// is refused"),
            "{found:?}"
        );
        assert!(build(config(None)).is_ok(), "loopback http is allowed");
    }

    #[test]
    fn config_path_wins_then_env_file_then_env_pair() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "c.json", FILE);
        let other = write(
            dir.path(),
            "o.json",
            &FILE.replace("from-file", "from-env-file"),
        );
        let env = KognicEnv {
            credentials: Some(other),
            client_id: Some("from-env".into()),
            client_secret: Some(SecretString::from("s")),
        };
        let http = reqwest::Client::new();
        let k = ClientCredentials::kognic(&config(Some(&file)), &env, http.clone()).unwrap();
        assert_eq!(k.client_id(), "from-file");
        assert_eq!(k.scope, "a b");
        let k = ClientCredentials::kognic(&config(None), &env, http.clone()).unwrap();
        assert_eq!(k.client_id(), "from-env-file");
        let env = KognicEnv {
            credentials: None,
            ..env
        };
        let k = ClientCredentials::kognic(&config(None), &env, http.clone()).unwrap();
        assert_eq!(k.client_id(), "from-env");
        assert!(ClientCredentials::kognic(&config(None), &KognicEnv::default(), http).is_err());
    }

    #[test]
    fn missing_fields_and_past_expiry_are_errors_without_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let http = reqwest::Client::new();
        let no_issuer = write(dir.path(), "a.json", &FILE.replace(r#","issuer":"x""#, ""));
        let error = ClientCredentials::kognic(
            &config(Some(&no_issuer)),
            &KognicEnv::default(),
            http.clone(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("issuer"), "{error}");
        let expired = write(
            dir.path(),
            "b.json",
            &FILE.replace(
                r#""issuer":"x""#,
                r#""issuer":"x","expires":"2020-01-01T00:00:00Z""#,
            ),
        );
        let error =
            ClientCredentials::kognic(&config(Some(&expired)), &KognicEnv::default(), http.clone())
                .unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
        assert!(!error.to_string().contains("s3cret"));
        // A secret of the wrong type: serde would quote it.
        let numeric = write(
            dir.path(),
            "c.json",
            &FILE.replace(r#""s3cret-file""#, "987654321012"),
        );
        let error = ClientCredentials::kognic(&config(Some(&numeric)), &KognicEnv::default(), http)
            .unwrap_err();
        assert!(
            error.to_string().contains("invalid type: integer"),
            "{error}"
        );
        assert!(!error.to_string().contains("987654321012"), "{error}");
    }
}
