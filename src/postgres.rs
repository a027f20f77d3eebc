//! The PostgreSQL connect options every client of PostgreSQL in tapline uses: the `sql` source,
//! and the coordination and shared state of replicas.
//!
//! Why one place: TLS modes, the CA bundle, the password read at connect time and quiet
//! statement logging must mean the same in each, and a fix to one must reach all.

use std::path::Path;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::ConnectOptions;

use crate::config::Tls;

/// The options for `url` (which may hold a password: never shown), encrypted as `tls` says
/// (`prefer` when absent), with `password` when given.
pub fn connect_options(
    url: &str,
    tls: Option<Tls>,
    ca_bundle: Option<&Path>,
    password: Option<&SecretString>,
) -> Result<PgConnectOptions, sqlx::Error> {
    let mut options = PgConnectOptions::from_str(url)?
        .ssl_mode(match tls {
            Some(Tls::Require) => PgSslMode::VerifyFull,
            Some(Tls::Disable) => PgSslMode::Disable,
            Some(Tls::Prefer) | None => PgSslMode::Prefer,
        })
        .disable_statement_logging();
    if let Some(bundle) = ca_bundle {
        options = options.ssl_root_cert(bundle);
    }
    if let Some(password) = password {
        options = options.password(password.expose_secret());
    }
    Ok(options)
}
