//! `type: certificate`: the client proves itself with a private_key_jwt assertion signed by its
//! certificate's key ([`CertificateAssertion`]), as Microsoft Entra ID expects for certificate
//! login. The files are read by `certificate_file.rs`.
//!
//! The certificate and key are loaded when the provider is built, so a bad file or password fails
//! at startup (and in `tapline validate --check-auth`), not at the first refresh. They are loaded
//! again before a token request when one of their files changed (cert-manager or a rotated
//! Kubernetes secret); a rotated file that cannot be loaded is logged and the old key kept, so a
//! half-written file does not stop the extractor. A new assertion is signed for every token
//! request: reusing one past its lifetime is the classic AADSTS700024 ("assertion not within
//! valid time range").
//!
//! The provider's config ([`CertificateConfig`]), its rules ([`build`]) and its credentials
//! ([`CertificateProvider`]) are here too.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Deserialize;
use sha1::{Digest, Sha1};

use crate::auth::provider::default_refresh_margin;
use crate::auth::{http_client, Credentials, Error, Provider, Scopes};
use crate::config::check::{self, Presence};
use crate::config::{BuildError, HumanDuration, SecretSource, SessionConfig};

use super::certificate_file;
use super::{ClientCredentials, ClientProof, Proof};

/// `type: certificate`: the OAuth 2.0 client credentials grant with a signed certificate
/// assertion (private_key_jwt), as Microsoft Entra ID expects it.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CertificateConfig {
    /// The OAuth client id.
    pub client_id: String,
    /// Authority; the token URL is this plus `/oauth2/v2.0/token`. Or give `token-url`.
    pub authority_url: Option<String>,
    /// The token endpoint, instead of `authority-url`.
    pub token_url: Option<String>,
    /// PEM with certificate and private key, or a .pfx/.p12 file.
    pub certificate: PathBuf,
    /// The private key in its own PEM file, when it is not in `certificate`.
    pub private_key: Option<PathBuf>,
    /// Password for a PKCS#12 file or an encrypted key.
    #[schemars(with = "Option<String>")]
    pub password: Option<SecretString>,
    /// A file holding the password.
    pub password_file: Option<PathBuf>,
    /// Scopes: a list, or one space-separated string.
    #[serde(default)]
    pub scopes: Scopes,
    /// Extra form fields sent with every token request.
    #[serde(default)]
    pub token_args: BTreeMap<String, String>,
    /// Refresh this long before expiry (clamped to half the token's lifetime).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin: HumanDuration,
}

impl CertificateConfig {
    /// The password's source, if any.
    pub fn password(&self) -> Option<SecretSource> {
        SecretSource::from_pair(self.password.as_ref(), self.password_file.as_deref())
    }

    /// The token URL, from `token-url` or `authority-url`.
    pub fn resolved_token_url(&self) -> Option<String> {
        self.token_url.clone().or_else(|| {
            self.authority_url
                .as_ref()
                .map(|authority| format!("{}/oauth2/v2.0/token", authority.trim_end_matches('/')))
        })
    }
}

/// The password is shown only as its source: a file's path, never an inline value.
impl fmt::Debug for CertificateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateConfig")
            .field("client_id", &self.client_id)
            .field(
                "authority_url",
                &self.authority_url.as_deref().map(crate::redact::url),
            )
            .field(
                "token_url",
                &self.token_url.as_deref().map(crate::redact::url),
            )
            .field("certificate", &self.certificate)
            .field("private_key", &self.private_key)
            .field("password", &self.password())
            .field("scopes", &self.scopes)
            .field("token_args", &self.token_args)
            .field("refresh_margin", &self.refresh_margin)
            .finish()
    }
}

/// A checked `certificate` block: it loads the certificate and builds the source.
#[derive(Debug)]
pub struct CertificateProvider {
    config: CertificateConfig,
}

/// Checks a `certificate` block: a client id, one of `token-url` and `authority-url` (https, or
/// http on loopback), readable certificate and key files, and at most one of `password` and
/// `password-file`. The files are read, not parsed: a wrong password shows when the
/// credentials are built.
pub fn build(config: CertificateConfig) -> Result<CertificateProvider, BuildError> {
    check::all([
        check::not_blank(&config.client_id, "client-id"),
        token_endpoint(&config),
        check::readable_file(&config.certificate, "certificate"),
        config
            .private_key
            .as_deref()
            .map_or(Ok(()), |key| check::readable_file(key, "private-key")),
        check::secret_pair(
            config.password.as_ref(),
            config.password_file.as_deref(),
            "password",
            Presence::Optional,
        ),
    ])?;
    Ok(CertificateProvider { config })
}

/// Exactly one of `token-url` and `authority-url`, and the token URL they give fit for a secret.
fn token_endpoint(config: &CertificateConfig) -> Result<(), BuildError> {
    let given = match (&config.token_url, &config.authority_url) {
        (Some(_), Some(_)) => Err(BuildError::at(
            "authority-url",
            "give either token-url or authority-url, not both",
        )),
        (None, None) => Err(BuildError::at(
            "authority-url",
            "missing; give authority-url (https://login.microsoftonline.com/<tenant>) or token-url",
        )),
        _ => Ok(()),
    };
    let key = match config.token_url {
        Some(_) => "token-url",
        None => "authority-url",
    };
    let usable = config
        .resolved_token_url()
        .map_or(Ok(()), |url| check::token_url(&url, key));
    check::all([given, usable])
}

impl Provider for CertificateProvider {
    fn credentials(&self, session: &SessionConfig) -> Result<Credentials, Error> {
        let source = Certificate::new(&self.config, http_client(session)?)?;
        Ok(Credentials::with_refresh_margin(
            source,
            self.config.refresh_margin.get(),
        ))
    }
}

/// `type: certificate`: the client credentials grant with a signed certificate assertion.
pub type Certificate = ClientCredentials<CertificateAssertion>;

/// How long an assertion is valid; Entra ID and MSAL use ten minutes.
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// Signs a fresh client assertion with the client's certificate key for every token request.
pub struct CertificateAssertion {
    /// Where the certificate, key and password come from, to load them again when they change.
    files: CertificateConfig,
    signer: RwLock<Signer>,
}

/// The loaded key and certificate, and the files' modification times they were loaded from.
struct Signer {
    /// The RSA private key; `EncodingKey` has no `Debug`, and it is never printed.
    key: EncodingKey,
    /// `x5t`: base64url of the SHA-1 of the certificate's DER bytes.
    thumbprint: String,
    loaded_from: Vec<Option<SystemTime>>,
}

impl Signer {
    fn load(config: &CertificateConfig) -> Result<Self, Error> {
        let loaded_from = modified(config);
        let password = config.password().map(|source| source.read()).transpose()?;
        let (certificate_der, key) = certificate_file::load(config, password.as_ref())?;
        Ok(Self {
            key,
            thumbprint: thumbprint(&certificate_der),
            loaded_from,
        })
    }
}

/// Modification times of the certificate, the key and the password file.
fn modified(config: &CertificateConfig) -> Vec<Option<SystemTime>> {
    [
        Some(config.certificate.as_path()),
        config.private_key.as_deref(),
        config.password_file.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
    .collect()
}

impl ClientCredentials<CertificateAssertion> {
    /// `type: certificate`: loads the certificate and key (PEM with both, PEM plus
    /// `private-key`, or PKCS#12 with `password`) and checks the token URL.
    pub fn new(config: &CertificateConfig, http: reqwest::Client) -> Result<Self, Error> {
        let url = config.resolved_token_url().ok_or_else(|| {
            Error::Misconfigured("give auth.authority-url or auth.token-url".into())
        })?;
        if config.client_id.trim().is_empty() {
            return Err(Error::Misconfigured("auth.client-id is empty".into()));
        }
        let proof = CertificateAssertion {
            signer: RwLock::new(Signer::load(config)?),
            files: config.clone(),
        };
        Self::from_parts(
            &url,
            config.client_id.clone(),
            &config.scopes.0,
            &config.token_args,
            proof,
            http,
        )
    }
}

impl CertificateAssertion {
    /// Loads the certificate and key again if one of their files changed since the last load.
    fn reload_if_changed(&self) {
        let now = modified(&self.files);
        if self.signer.read().expect("not poisoned").loaded_from == now {
            return;
        }
        match Signer::load(&self.files) {
            Ok(signer) => {
                tracing::info!(certificate = %self.files.certificate.display(), "certificate files changed; loaded them again");
                *self.signer.write().expect("not poisoned") = signer;
            }
            Err(error) => {
                tracing::warn!(%error, "certificate files changed but cannot be loaded; keeping the previous key");
                // Do not try again for every request until the files change once more.
                self.signer.write().expect("not poisoned").loaded_from = now;
            }
        }
    }

    /// Signs a new assertion by `client_id` for `token_url`, valid from now for ten minutes.
    fn assertion(&self, client_id: &str, token_url: &str) -> Result<SecretString, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let signer = self.signer.read().expect("not poisoned");
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.x5t = Some(signer.thumbprint.clone());
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(&header, &claims, &signer.key)
            .map(SecretString::from)
            .map_err(Error::Signing)
    }
}

#[async_trait::async_trait]
impl ClientProof for CertificateAssertion {
    async fn prove(&self, client_id: &str, token_url: &str) -> Result<Proof, Error> {
        self.reload_if_changed();
        self.assertion(client_id, token_url).map(Proof::Assertion)
    }
}

impl fmt::Debug for CertificateAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAssertion")
            .field("certificate", &self.files.certificate)
            .finish_non_exhaustive()
    }
}

/// `x5t`. RFC 7515 says base64url, which JOSE writes without padding; MSAL happens to keep the
/// `=` and Entra ID accepts both, because it matches the decoded bytes. We send the unpadded form.
fn thumbprint(certificate_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha1::digest(certificate_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_reports_every_problem_and_debug_hides_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("client.pem");
        let yaml = format!(
            "client-id: c\ntoken-url: https://idp.test/token\nauthority-url: https://login.microsoftonline.com/t\ncertificate: {}\npassword: hunter2-pw\n",
            missing.display()
        );
        let config: CertificateConfig = serde_yaml::from_str(&yaml).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        let found: Vec<String> = build(config)
            .unwrap_err()
            .locate("auth")
            .into_iter()
            .map(|problem| format!("{}: {}", problem.path, problem.message))
            .collect();
        assert_eq!(
            found,
            [
                "auth.authority-url: give either token-url or authority-url, not both".to_string(),
                format!(
                    "auth.certificate: file {} does not exist",
                    missing.display()
                ),
            ]
        );
    }

    #[test]
    fn thumbprint_is_unpadded_base64url_sha1() {
        // SHA-1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d
        assert_eq!(thumbprint(b"abc"), "qZk-NkcGgWq6PiVxeFDCbJzQ2J0");
    }
}
