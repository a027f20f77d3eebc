//! `type: certificate`: the client credentials grant with a private_key_jwt client assertion,
//! as Microsoft Entra ID expects it for certificate login.
//!
//! The certificate and key are loaded when the provider is built, so a bad file or password fails
//! at startup (and in `tapline validate --check-auth`), not at the first refresh. They are loaded
//! again before a token request when one of their files changed (cert-manager or a rotated
//! Kubernetes secret); a rotated file that cannot be loaded is logged and the old key kept, so a
//! half-written file does not stop the extractor. A new assertion is signed for every token
//! request: reusing one past its lifetime is the classic AADSTS700024 ("assertion not within
//! valid time range").

use std::fmt;
use std::path::Path;
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use sha1::{Digest, Sha1};

use crate::config::CertificateConfig;

use super::token_endpoint::{
    client_assertion, client_credentials_form, ClientAuthentication, TokenEndpoint,
};
use super::{Error, FetchedToken, TokenSource};

/// How long an assertion is valid; Entra ID and MSAL use ten minutes.
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// Fetches tokens by signing a fresh client assertion with the client's certificate key.
pub struct Certificate {
    endpoint: TokenEndpoint,
    client_id: String,
    scope: String,
    token_args: Vec<(String, String)>,
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
        let (certificate_der, key) = load(config, password.as_ref())?;
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

impl Certificate {
    /// Loads the certificate and key (PEM with both, PEM plus `private-key`, or PKCS#12 with
    /// `password`) and checks the token URL.
    pub fn new(config: &CertificateConfig, http: reqwest::Client) -> Result<Self, Error> {
        let url = config.resolved_token_url().ok_or_else(|| {
            Error::Misconfigured("give auth.authority-url or auth.token-url".into())
        })?;
        if config.client_id.trim().is_empty() {
            return Err(Error::Misconfigured("auth.client-id is empty".into()));
        }
        let signer = Signer::load(config)?;
        Ok(Self {
            endpoint: TokenEndpoint::new(&url, http)?,
            client_id: config.client_id.clone(),
            scope: config.scopes.joined(),
            token_args: config
                .token_args
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            files: config.clone(),
            signer: RwLock::new(signer),
        })
    }

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

    /// Signs a new assertion for the token endpoint, valid from now for ten minutes.
    fn assertion(&self) -> Result<SecretString, Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let signer = self.signer.read().expect("not poisoned");
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".into());
        header.x5t = Some(signer.thumbprint.clone());
        let claims = serde_json::json!({
            "aud": self.endpoint.url(),
            "iss": self.client_id,
            "sub": self.client_id,
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
impl TokenSource for Certificate {
    async fn fetch(&self) -> Result<FetchedToken, Error> {
        self.reload_if_changed();
        let assertion = self.assertion()?;
        let mut form = client_credentials_form(&self.scope, &self.token_args);
        form.extend(client_assertion(&self.client_id, &assertion));
        self.endpoint
            .request(&form, ClientAuthentication::InForm)
            .await
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("certificate", &self.files.certificate)
            .finish_non_exhaustive()
    }
}

/// `x5t`. RFC 7515 says base64url, which JOSE writes without padding; MSAL happens to keep the
/// `=` and Entra ID accepts both, because it matches the decoded bytes. We send the unpadded form.
fn thumbprint(certificate_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha1::digest(certificate_der))
}

/// The leaf certificate's DER bytes and the signing key.
fn load(
    config: &CertificateConfig,
    password: Option<&SecretString>,
) -> Result<(Vec<u8>, EncodingKey), Error> {
    let path = &config.certificate;
    let bytes = std::fs::read(path)
        .map_err(|error| Error::Certificate(format!("cannot read {}: {error}", path.display())))?;
    if is_pkcs12(path) {
        return load_pkcs12(path, &bytes, password);
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Certificate(format!("{} is not a PEM file", path.display())))?;
    let certificate = pem_blocks(&text)
        .into_iter()
        .find(|block| block.label == "CERTIFICATE")
        .ok_or_else(|| Error::Certificate(format!("{} holds no certificate", path.display())))?;
    let certificate_der = STANDARD.decode(&certificate.base64).map_err(|_| {
        Error::Certificate(format!(
            "{}: the certificate is not valid base64",
            path.display()
        ))
    })?;
    let (key_path, key_text) = match &config.private_key {
        Some(key_path) => {
            let text = std::fs::read_to_string(key_path).map_err(|error| {
                Error::Certificate(format!("cannot read {}: {error}", key_path.display()))
            })?;
            (key_path.as_path(), text)
        }
        None => (path.as_path(), text),
    };
    let key = pem_blocks(&key_text)
        .into_iter()
        .find(|block| block.label.ends_with("PRIVATE KEY"))
        .ok_or_else(|| {
            Error::Certificate(format!("{} holds no private key", key_path.display()))
        })?;
    let key = match key.label {
        "PRIVATE KEY" | "RSA PRIVATE KEY" => EncodingKey::from_rsa_pem(key.pem.as_bytes()),
        "ENCRYPTED PRIVATE KEY" => {
            let password = password.ok_or_else(|| {
                Error::Certificate(format!(
                    "{}: the private key is encrypted; give auth.password",
                    key_path.display()
                ))
            })?;
            let pem = decrypt_pkcs8(&key.base64, password).ok_or_else(|| {
                Error::Certificate(format!(
                    "{}: cannot decrypt the private key; is auth.password right?",
                    key_path.display()
                ))
            })?;
            EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes())
        }
        other => {
            return Err(Error::Certificate(format!(
                "{}: a {other} is not an RSA key; certificate login needs RS256",
                key_path.display()
            )))
        }
    }
    .map_err(|_| {
        Error::Certificate(format!(
            "{}: the private key is not a valid RSA key",
            key_path.display()
        ))
    })?;
    Ok((certificate_der, key))
}

/// An encrypted PKCS#8 key (`openssl pkcs8 -topk8 -v2 aes-256-cbc`), decrypted to an unencrypted
/// PKCS#8 PEM held as a secret.
fn decrypt_pkcs8(base64: &str, password: &SecretString) -> Option<SecretString> {
    let der = STANDARD.decode(base64).ok()?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).ok()?;
    let document = encrypted.decrypt(password.expose_secret()).ok()?;
    Some(to_pem("PRIVATE KEY", document.as_bytes()))
}

fn is_pkcs12(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ext.eq_ignore_ascii_case("pfx") || ext.eq_ignore_ascii_case("p12"))
}

fn load_pkcs12(
    path: &Path,
    bytes: &[u8],
    password: Option<&SecretString>,
) -> Result<(Vec<u8>, EncodingKey), Error> {
    let password = password.map_or("", |p| p.expose_secret());
    let store = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|_| {
        Error::Certificate(format!(
            "cannot open PKCS#12 file {}; is auth.password right?",
            path.display()
        ))
    })?;
    let (_, chain) = store.private_key_chain().ok_or_else(|| {
        Error::Certificate(format!(
            "{} holds no private key with its certificate",
            path.display()
        ))
    })?;
    let certificate = chain.certs().first().ok_or_else(|| {
        Error::Certificate(format!(
            "{} holds no certificate for its key",
            path.display()
        ))
    })?;
    // The key comes out as PKCS#8 DER; jsonwebtoken reads PKCS#8 through PEM.
    let pem = to_pem("PRIVATE KEY", chain.key().as_der());
    let key = EncodingKey::from_rsa_pem(pem.expose_secret().as_bytes()).map_err(|_| {
        Error::Certificate(format!(
            "{}: the private key is not an RSA key",
            path.display()
        ))
    })?;
    Ok((certificate.as_der().to_vec(), key))
}

fn to_pem(label: &str, der: &[u8]) -> SecretString {
    let encoded = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    SecretString::from(pem)
}

/// One `-----BEGIN <label>-----` block of a PEM file.
struct PemBlock<'a> {
    label: &'a str,
    /// The whole block, markers included.
    pem: &'a str,
    /// The base64 body without whitespace.
    base64: String,
}

fn pem_blocks(text: &str) -> Vec<PemBlock<'_>> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let Some(label_end) = after.find("-----") else {
            break;
        };
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            break;
        };
        let block_end = start + end + end_marker.len();
        let pem = &rest[start..block_end];
        let body = &after[label_end + "-----".len()..end - "-----BEGIN ".len()];
        let base64 = body
            .lines()
            .filter(|line| !line.contains(':')) // legacy "Proc-Type:" headers
            .collect::<String>()
            .split_whitespace()
            .collect();
        blocks.push(PemBlock { label, pem, base64 });
        rest = &rest[block_end..];
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_found_in_order() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nQUJD\nREVG\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nR0hJ\n-----END PRIVATE KEY-----\n";
        let blocks = pem_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].label, "CERTIFICATE");
        assert_eq!(blocks[0].base64, "QUJDREVG");
        assert_eq!(blocks[1].label, "PRIVATE KEY");
        assert_eq!(blocks[1].base64, "R0hJ");
        assert!(blocks[1].pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(blocks[1].pem.ends_with("-----END PRIVATE KEY-----"));
    }

    #[test]
    fn thumbprint_is_unpadded_base64url_sha1() {
        // SHA-1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d
        assert_eq!(thumbprint(b"abc"), "qZk-NkcGgWq6PiVxeFDCbJzQ2J0");
    }
}
