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

use std::fmt;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::SecretString;
use sha1::{Digest, Sha1};

use crate::auth::Error;
use crate::config::CertificateConfig;

use super::certificate_file;
use super::{ClientCredentials, ClientProof, Proof};

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
    fn thumbprint_is_unpadded_base64url_sha1() {
        // SHA-1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d
        assert_eq!(thumbprint(b"abc"), "qZk-NkcGgWq6PiVxeFDCbJzQ2J0");
    }
}
