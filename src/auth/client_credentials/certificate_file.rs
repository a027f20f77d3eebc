//! Reading the certificate and private key of `type: certificate`: one PEM with both, a PEM
//! plus a `private-key` PEM (plain, or encrypted PKCS#8 with `password`), or a PKCS#12 file
//! (`.pfx`/`.p12`) with `password`.
//!
//! Apart from the signing (`certificate.rs`) so the file formats live in one place: PEM blocks,
//! PKCS#8 decryption, PKCS#12. The key is handed to jsonwebtoken as PEM, the form it reads.
//! Every message names the file and never shows key material or the password.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::EncodingKey;
use secrecy::{ExposeSecret, SecretString};

use super::certificate::CertificateConfig;
use crate::auth::Error;

/// The leaf certificate's DER bytes and the signing key.
pub(super) fn load(
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
}
