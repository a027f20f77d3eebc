//! A throwaway client certificate for the certificate login tests, made with the `openssl` CLI.
//!
//! The CLI rather than a Rust crate: it writes PKCS#12 files exactly as users get them from their
//! PKI (OpenSSL 3 defaults: AES-256-CBC, PBKDF2, SHA-256 MAC), which is what tapline must read.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// The files of one generated certificate and what the tests check against.
pub struct TestCert {
    /// Holds the files; removed on drop.
    pub dir: tempfile::TempDir,
    /// The certificate alone (PEM).
    pub cert: PathBuf,
    /// The private key alone (PKCS#8 PEM).
    pub key: PathBuf,
    /// Certificate and key in one PEM file.
    pub combined: PathBuf,
    /// The private key as encrypted PKCS#8 PEM (AES-256-CBC, PBKDF2), password
    /// [`TestCert::PASSWORD`].
    pub encrypted_key: PathBuf,
    /// PKCS#12 with [`TestCert::PASSWORD`].
    pub p12: PathBuf,
    /// The certificate's DER bytes.
    pub der: Vec<u8>,
    /// The public key as PEM (SubjectPublicKeyInfo).
    pub public_pem: Vec<u8>,
}

/// [`TestCert`]'s key exported with an empty password.
pub struct EmptyPassword {
    /// PKCS#12 with the empty password.
    pub p12: PathBuf,
    /// Encrypted PKCS#8 PEM (AES-256-CBC, PBKDF2) with the empty password.
    pub encrypted_key: PathBuf,
}

impl TestCert {
    /// The PKCS#12 password.
    pub const PASSWORD: &'static str = "p12-Pass-w0rd";

    /// A new 2048-bit RSA self-signed certificate.
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=tapline-test",
            ],
        );
        openssl(
            dir.path(),
            &[
                "pkcs12",
                "-export",
                "-in",
                "cert.pem",
                "-inkey",
                "key.pem",
                "-out",
                "client.p12",
                "-passout",
                &format!("pass:{}", Self::PASSWORD),
            ],
        );
        let pass = format!("pass:{}", Self::PASSWORD);
        let topk8 = [
            "pkcs8",
            "-topk8",
            "-in",
            "key.pem",
            "-out",
            "key-encrypted.pem",
        ];
        let cipher = ["-v2", "aes-256-cbc", "-passout", &pass];
        openssl(dir.path(), &[&topk8[..], &cipher[..]].concat());
        openssl(
            dir.path(),
            &[
                "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
            ],
        );
        openssl(
            dir.path(),
            &[
                "x509",
                "-in",
                "cert.pem",
                "-pubkey",
                "-noout",
                "-out",
                "public.pem",
            ],
        );
        let combined = format!(
            "{}{}",
            std::fs::read_to_string(path("cert.pem")).unwrap(),
            std::fs::read_to_string(path("key.pem")).unwrap()
        );
        std::fs::write(path("combined.pem"), combined).unwrap();
        Self {
            cert: path("cert.pem"),
            key: path("key.pem"),
            combined: path("combined.pem"),
            encrypted_key: path("key-encrypted.pem"),
            p12: path("client.p12"),
            der: std::fs::read(path("cert.der")).unwrap(),
            public_pem: std::fs::read(path("public.pem")).unwrap(),
            dir,
        }
    }

    /// The same key exported with an empty password (`-passout pass:`), as some PKIs and
    /// `openssl pkcs12 -export` at an empty prompt write it: a PKCS#12 file and an encrypted
    /// PKCS#8 key.
    pub fn with_empty_password(&self) -> EmptyPassword {
        let dir = self.dir.path();
        openssl(
            dir,
            &[
                "pkcs12",
                "-export",
                "-in",
                "cert.pem",
                "-inkey",
                "key.pem",
                "-out",
                "empty-password.p12",
                "-passout",
                "pass:",
            ],
        );
        openssl(
            dir,
            &[
                "pkcs8",
                "-topk8",
                "-in",
                "key.pem",
                "-out",
                "key-encrypted-empty-password.pem",
                "-v2",
                "aes-256-cbc",
                "-passout",
                "pass:",
            ],
        );
        EmptyPassword {
            p12: dir.join("empty-password.p12"),
            encrypted_key: dir.join("key-encrypted-empty-password.pem"),
        }
    }

    /// The public key as a JWKS, for registering a private_key_jwt client.
    pub fn jwks(&self) -> Value {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-modulus", "-in"])
            .arg(&self.cert)
            .output()
            .expect("openssl runs");
        let text = String::from_utf8(out.stdout).unwrap();
        let hex = text.trim().strip_prefix("Modulus=").expect("a modulus");
        let modulus: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        json!({"keys": [{
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(modulus),
            "e": "AQAB",
        }]})
    }
}

/// Runs the `openssl` CLI in `dir`; panics with its stderr when it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the tests need the openssl command line tool");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
