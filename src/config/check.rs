//! The checks that several components' build functions share: a secret given inline or as a
//! file, a file that must be readable, a value that must not be blank, a token URL that must be
//! https (or loopback).
//!
//! Why here, once: each component checks its own keys, but the wording of these problems should
//! not depend on which component found them. Each check returns a [`BuildError`] keyed relative
//! to the component's block (`client-secret-file`, `token-url`), and [`all`] gathers the results
//! so one `validate` lists every problem of a block.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use url::Url;

use super::component::BuildError;
use super::secret::{is_blank, read_secret_file};

/// Whether a `x` / `x-file` secret must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// One of the two must be given, and the secret must not be empty.
    Required,
    /// Neither may be given; an empty secret is allowed (a certificate exported with an empty
    /// password is opened with just that).
    Optional,
}

/// Every problem among `checks`, or `Ok` when there are none.
pub(crate) fn all(
    checks: impl IntoIterator<Item = Result<(), BuildError>>,
) -> Result<(), BuildError> {
    match BuildError::all(checks.into_iter().filter_map(Result::err)) {
        None => Ok(()),
        Some(error) => Err(error),
    }
}

/// A token endpoint must use https, except on loopback where tests and local proxies live:
/// a client secret sent over plain http to another host is a leak.
pub fn check_token_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|error| format!("invalid URL: {error}"))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err("plain http:// is refused for a token endpoint unless the host is loopback; use https://".into()),
        other => Err(format!("unsupported URL scheme {other:?}; use https://")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The URL at `key` is fit for a token endpoint ([`check_token_url`]).
pub(crate) fn token_url(url: &str, key: &str) -> Result<(), BuildError> {
    check_token_url(url)
        .map(drop)
        .map_err(|message| BuildError::at(key, message))
}

/// The value at `key` is not empty or only whitespace.
pub(crate) fn not_blank(value: &str, key: &str) -> Result<(), BuildError> {
    if value.trim().is_empty() {
        return Err(BuildError::at(key, "must not be empty"));
    }
    Ok(())
}

/// `key` and `key-file`: at most one, at least one when [`Presence::Required`], and the file
/// readable now. A required secret must not be empty.
pub(crate) fn secret_pair(
    inline: Option<&SecretString>,
    file: Option<&Path>,
    key: &str,
    presence: Presence,
) -> Result<(), BuildError> {
    let required = presence == Presence::Required;
    let file_key = format!("{key}-file");
    match (inline, file) {
        (Some(_), Some(_)) => Err(BuildError::at(
            key,
            format!("give either {key} or {key}-file, not both"),
        )),
        (None, None) if required => Err(BuildError::at(
            key,
            format!("missing; give {key} (e.g. {key}: ${{VAR}}) or {key}-file"),
        )),
        (Some(value), None) if required && is_blank(value) => Err(BuildError::at(key, "is empty")),
        (None, Some(file)) => match read_secret_file(file) {
            Ok(value) if required && is_blank(&value) => Err(BuildError::at(
                &file_key,
                format!("{} is empty", file.display()),
            )),
            Ok(_) => Ok(()),
            Err(error) => Err(BuildError::at(&file_key, io_message(file, &error.source))),
        },
        _ => Ok(()),
    }
}

/// The file at `key` can be opened now.
pub(crate) fn readable_file(file: &Path, key: &str) -> Result<(), BuildError> {
    std::fs::File::open(file)
        .map(drop)
        .map_err(|error| BuildError::at(key, io_message(file, &error)))
}

fn io_message(file: &Path, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => format!("file {} does not exist", file.display()),
        std::io::ErrorKind::PermissionDenied => {
            format!(
                "file {} is not readable (permission denied)",
                file.display()
            )
        }
        _ => format!("cannot read {}: {error}", file.display()),
    }
}

/// Expands a leading `~` to the home directory, as kognic-auth does for credential paths.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(result: Result<(), BuildError>) -> Vec<String> {
        result
            .err()
            .map(|error| error.locate("auth"))
            .unwrap_or_default()
            .into_iter()
            .map(|problem| format!("{}: {}", problem.path, problem.message))
            .collect()
    }

    #[test]
    fn a_secret_file_problem_is_reported_at_the_file_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let found = keys(secret_pair(
            None,
            Some(&missing),
            "client-secret",
            Presence::Required,
        ));
        assert_eq!(
            found,
            [format!(
                "auth.client-secret-file: file {} does not exist",
                missing.display()
            )]
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let found = keys(secret_pair(None, Some(&empty), "token", Presence::Required));
        assert_eq!(
            found,
            [format!("auth.token-file: {} is empty", empty.display())]
        );
        // An optional secret may be empty, but not given twice.
        let blank = SecretString::from("");
        assert!(secret_pair(Some(&blank), None, "password", Presence::Optional).is_ok());
        let found = keys(secret_pair(
            Some(&blank),
            Some(&empty),
            "password",
            Presence::Optional,
        ));
        assert_eq!(
            found,
            ["auth.password: give either password or password-file, not both"]
        );
    }

    #[test]
    fn all_keeps_every_problem_in_order() {
        let found = keys(all([
            not_blank(" ", "client-id"),
            Ok(()),
            token_url("http://idp.example.com/token", "token-url"),
        ]));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0], "auth.client-id: must not be empty");
        assert!(
            found[1].starts_with("auth.token-url: plain http:// is refused"),
            "{found:?}"
        );
        assert!(all([Ok(()), Ok(())]).is_ok());
    }

    #[test]
    fn loopback_token_urls_may_be_plain_http() {
        assert!(check_token_url("http://127.0.0.1:8080/token").is_ok());
        assert!(check_token_url("http://localhost/token").is_ok());
        assert!(check_token_url("http://[::1]/token").is_ok());
        assert!(check_token_url("http://idp.example.com/token").is_err());
        assert!(check_token_url("ftp://idp.example.com/token").is_err());
    }
}
