//! A throwaway certificate authority and a server certificate it signed for `127.0.0.1` and
//! `localhost`, for servers the tests start with TLS.
//!
//! Two certificates rather than one self-signed: rustls refuses a CA certificate presented as
//! the server's own, as a real PKI would never issue one.

use std::path::PathBuf;

use super::cert::openssl;

/// The files; removed on drop.
pub struct ServerCert {
    /// Holds the files.
    pub dir: tempfile::TempDir,
    /// The CA's certificate (PEM): what a client trusts (`ca-bundle`).
    pub ca: PathBuf,
    /// The server's certificate (PEM), for 127.0.0.1 and localhost.
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
}

impl ServerCert {
    /// A new CA and server certificate (EC P-256: quick to make).
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let ca = [
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ];
        openssl(
            dir.path(),
            &[
                &ca.concat()[..],
                &["-days", "2", "-subj", "/CN=tapline test CA"],
            ]
            .concat(),
        );
        let request = [
            &["req"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
        ];
        openssl(
            dir.path(),
            &[&request.concat()[..], &["-subj", "/CN=localhost"]].concat(),
        );
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n",
        )
        .unwrap();
        openssl(
            dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        let path = |name: &str| dir.path().join(name);
        ServerCert {
            ca: path("ca.pem"),
            cert: path("server.pem"),
            key: path("server.key"),
            dir,
        }
    }
}
