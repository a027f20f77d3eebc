//! The on-disk token cache of the interactive logins (`device-code`, `browser`).
//!
//! Why a file: a person signs in once (`tapline login`), and every later `tapline run` or
//! `tapline token` must find the refresh token without a prompt. Why this care: the file holds
//! refresh tokens, which are long-lived credentials.
//!
//! - It is written **as soon as a token changes**, not at exit (MSAL's atexit write loses a
//!   rotated refresh token when the process is killed), atomically: a temporary file in the same
//!   directory, created with mode 0600, fsynced, then renamed over the old one. It is never
//!   world-readable, not even for a moment; the directory is created with mode 0700.
//! - Two processes may share it: every write takes an exclusive lock (`flock` on `<file>.lock`),
//!   re-reads the file and replaces only its own entry, so one process never drops another's
//!   entry; every token request re-reads it, so a refresh token rotated by the other process is
//!   picked up instead of reusing a stale one.
//! - Entries are keyed by authority (or token URL), client id and scopes, so one file serves
//!   several configurations.
//! - Nothing read from it is ever logged, and a damaged file is treated as empty (with a
//!   warning): the worst case is one more login.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::atomic_file::{self, Access};
use crate::auth::token::MAX_LIFETIME;
use crate::auth::Error;

/// The file format version; a file with another version is treated as empty.
const VERSION: u32 = 1;

/// The token cache file.
#[derive(Clone)]
pub struct TokenCacheFile {
    path: PathBuf,
}

/// What one login left in the cache.
#[derive(Clone, Default)]
pub struct CachedLogin {
    /// The last access token.
    pub access_token: Option<SecretString>,
    /// When the access token expires, in seconds since the Unix epoch.
    pub expires_on: Option<u64>,
    /// The refresh token.
    pub refresh_token: Option<SecretString>,
}

impl fmt::Debug for CachedLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedLogin")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_on", &self.expires_on)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

/// The file's JSON. Plain strings only inside this module: they are wrapped in `SecretString`
/// on the way out, and this type has no `Debug`.
#[derive(Serialize, Deserialize, Default)]
struct FileData {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

#[derive(Serialize, Deserialize, Default)]
struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_on: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// When the entry was written, seconds since the epoch (for people reading the file).
    #[serde(default)]
    updated_at: u64,
}

impl TokenCacheFile {
    /// The cache at `path` (`~` expanded); nothing is read or created yet.
    pub fn new(path: &Path) -> Self {
        Self {
            path: crate::config::expand_home(path),
        }
    }

    /// The default location: `$XDG_CACHE_HOME/tapline/tokens.json`, else
    /// `~/.cache/tapline/tokens.json`; `None` when neither variable is set.
    pub fn default_path() -> Option<PathBuf> {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".cache")))
            .map(|dir| dir.join("tapline").join("tokens.json"))
    }

    /// The configured path, or the default one.
    pub fn configured(path: Option<&Path>) -> Result<Self, Error> {
        match path {
            Some(path) => Ok(Self::new(path)),
            None => Self::default_path().map(|path| Self::new(&path)).ok_or_else(|| {
                Error::Misconfigured(
                    "auth.token-cache is not set and neither $XDG_CACHE_HOME nor $HOME is; give auth.token-cache".into(),
                )
            }),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cache key of one login configuration: authority (or token URL), client id and the
    /// sorted scopes.
    pub fn key(authority: &str, client_id: &str, scopes: &[String]) -> String {
        let mut scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        scopes.sort_unstable();
        scopes.dedup();
        format!(
            "{}|{client_id}|{}",
            authority.trim_end_matches('/'),
            scopes.join(" ")
        )
    }

    /// The entry under `key`, read from the file now.
    pub fn load(&self, key: &str) -> Result<Option<CachedLogin>, Error> {
        let data = self.read()?;
        Ok(data.entries.get(key).map(|entry| CachedLogin {
            access_token: entry.access_token.clone().map(SecretString::from),
            expires_on: entry.expires_on.map(believable_expiry),
            refresh_token: entry.refresh_token.clone().map(SecretString::from),
        }))
    }

    /// Replaces the entry under `key` (`None` removes it), keeping every other entry as the file
    /// holds it now, under the lock.
    pub fn store(&self, key: &str, login: Option<&CachedLogin>) -> Result<(), Error> {
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            private_dir_builder()
                .create(dir)
                .map_err(|source| self.io("cannot create its directory", source))?;
        }
        let _lock = self.lock()?;
        let mut data = self.read()?;
        data.version = VERSION;
        match login {
            Some(login) => {
                data.entries.insert(
                    key.to_string(),
                    Entry {
                        access_token: login
                            .access_token
                            .as_ref()
                            .map(|token| token.expose_secret().to_string()),
                        expires_on: login.expires_on,
                        refresh_token: login
                            .refresh_token
                            .as_ref()
                            .map(|token| token.expose_secret().to_string()),
                        updated_at: epoch_now(),
                    },
                );
            }
            None => {
                data.entries.remove(key);
            }
        }
        self.write(&data)?;
        tracing::debug!(path = %self.path.display(), "token cache file updated");
        Ok(())
    }

    /// Removes the entry under `key` if its refresh token is still `used` (the one the identity
    /// provider just rejected); returns false when another process has replaced it meanwhile,
    /// whose new refresh token is then worth a try instead.
    pub fn forget_refresh_token(&self, key: &str, used: &SecretString) -> Result<bool, Error> {
        if !self.path.exists() {
            return Ok(true);
        }
        let _lock = self.lock()?;
        let mut data = self.read()?;
        let still_used = data.entries.get(key).is_none_or(|entry| {
            entry.refresh_token.as_deref() == Some(used.expose_secret())
                || entry.refresh_token.is_none()
        });
        if still_used && data.entries.remove(key).is_some() {
            data.version = VERSION;
            self.write(&data)?;
        }
        Ok(still_used)
    }

    /// The whole file; missing means empty, damaged means empty with a warning.
    fn read(&self) -> Result<FileData, Error> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileData::default())
            }
            Err(source) => return Err(self.io("cannot read it", source)),
        };
        match serde_json::from_slice::<FileData>(&bytes) {
            Ok(data) if data.version == VERSION => Ok(data),
            _ => {
                tracing::warn!(path = %self.path.display(), "the token cache file is damaged or from another version; ignoring its content");
                Ok(FileData::default())
            }
        }
    }

    /// Temporary file (0600) in the same directory, fsync, rename, fsync the directory.
    fn write(&self, data: &FileData) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(data).expect("the cache is plain JSON");
        atomic_file::replace(&self.path, &json, Access::OwnerOnly)
            .map_err(|source| self.io("cannot write it", source))
    }

    /// An exclusive `flock` on `<file>.lock`, released when the returned file is dropped.
    fn lock(&self) -> Result<File, Error> {
        let mut lock_path = self.path.clone().into_os_string();
        lock_path.push(".lock");
        let file = private(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
        )
        .open(&lock_path)
        .map_err(|source| self.io("cannot open its lock file", source))?;
        lock_exclusive(&file).map_err(|source| self.io("cannot lock it", source))?;
        Ok(file)
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> Error {
        Error::TokenCacheFile {
            path: self.path.clone(),
            action,
            source,
        }
    }
}

impl fmt::Debug for TokenCacheFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCacheFile")
            .field("path", &self.path)
            .finish()
    }
}

/// Files only the owner may read and write (0600).
#[cfg(unix)]
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600)
}

#[cfg(not(unix))]
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    options // the user's profile directory is private on Windows
}

/// Directories only the owner may enter (0700).
fn private_dir_builder() -> std::fs::DirBuilder {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
}

/// Blocks until this process holds the exclusive `flock` on `file`.
#[cfg(unix)]
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor that `file` keeps open for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Without `flock`, the re-read before every write still keeps other entries; two writers of
/// the same entry race as last-writer-wins.
#[cfg(not(unix))]
fn lock_exclusive(_file: &File) -> std::io::Result<()> {
    Ok(())
}

/// An `expires_on` read from the file, at most [`MAX_LIFETIME`] from now: the file may have been
/// edited or damaged, and an expiry centuries away must neither be believed nor overflow the
/// arithmetic that turns it into an instant.
fn believable_expiry(expires_on: u64) -> u64 {
    let latest = epoch_now().saturating_add(MAX_LIFETIME.as_secs());
    if expires_on > latest {
        tracing::warn!(expires_on, "the token cache file gives an access token an expiry more than a year away; taking it as one year");
    }
    expires_on.min(latest)
}

/// Seconds since the Unix epoch.
pub(crate) fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn login(refresh: &str) -> CachedLogin {
        CachedLogin {
            access_token: Some(SecretString::from("at-secret")),
            expires_on: Some(42),
            refresh_token: Some(SecretString::from(refresh.to_string())),
        }
    }

    #[test]
    fn entries_round_trip_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCacheFile::new(&dir.path().join("sub/tokens.json"));
        assert!(cache.load("k").unwrap().is_none());
        cache.store("k", Some(&login("rt-1"))).unwrap();
        let loaded = cache.load("k").unwrap().unwrap();
        assert_eq!(
            loaded.refresh_token.as_ref().unwrap().expose_secret(),
            "rt-1"
        );
        assert_eq!(loaded.expires_on, Some(42));
        let mode = std::fs::metadata(cache.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("sub"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o077, 0);
        assert!(!format!("{loaded:?}").contains("at-secret"));
    }

    #[test]
    fn a_store_keeps_the_entries_of_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let one = TokenCacheFile::new(&path);
        let two = TokenCacheFile::new(&path);
        one.store("a", Some(&login("rt-a"))).unwrap();
        two.store("b", Some(&login("rt-b"))).unwrap();
        one.store("a", Some(&login("rt-a2"))).unwrap();
        let b = one.load("b").unwrap().unwrap();
        assert_eq!(b.refresh_token.unwrap().expose_secret(), "rt-b");
        two.store("a", None).unwrap();
        assert!(one.load("a").unwrap().is_none());
        assert!(one.load("b").unwrap().is_some());
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let cache = TokenCacheFile::new(&path);
                std::thread::spawn(move || {
                    for round in 0..5 {
                        cache
                            .store(&format!("k{i}"), Some(&login(&format!("rt-{i}-{round}"))))
                            .unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let cache = TokenCacheFile::new(&path);
        for i in 0..8 {
            let entry = cache.load(&format!("k{i}")).unwrap().unwrap();
            assert_eq!(
                entry.refresh_token.unwrap().expose_secret(),
                format!("rt-{i}-4")
            );
        }
    }

    #[test]
    fn a_rejected_refresh_token_is_forgotten_only_if_nobody_replaced_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCacheFile::new(&dir.path().join("tokens.json"));
        cache.store("k", Some(&login("rt-new"))).unwrap();
        assert!(!cache
            .forget_refresh_token("k", &SecretString::from("rt-old"))
            .unwrap());
        assert!(cache.load("k").unwrap().is_some());
        assert!(cache
            .forget_refresh_token("k", &SecretString::from("rt-new"))
            .unwrap());
        assert!(cache.load("k").unwrap().is_none());
    }

    #[test]
    fn an_expiry_beyond_a_year_is_read_as_a_year() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let cache = TokenCacheFile::new(&path);
        for huge in [u64::MAX, 9_300_000_000_000_000_000] {
            let entry = CachedLogin {
                expires_on: Some(huge),
                ..login("rt")
            };
            cache.store("k", Some(&entry)).unwrap();
            let before = epoch_now();
            let read = cache.load("k").unwrap().unwrap().expires_on.unwrap();
            let year = MAX_LIFETIME.as_secs();
            assert!(
                read >= before + year && read <= epoch_now() + year,
                "{read}"
            );
        }
        // Ordinary values are kept as they are.
        cache.store("k", Some(&login("rt"))).unwrap();
        assert_eq!(cache.load("k").unwrap().unwrap().expires_on, Some(42));
    }

    #[test]
    fn a_damaged_file_counts_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, "{not json").unwrap();
        let cache = TokenCacheFile::new(&path);
        assert!(cache.load("k").unwrap().is_none());
        cache.store("k", Some(&login("rt"))).unwrap();
        assert!(cache.load("k").unwrap().is_some());
    }

    #[test]
    fn keys_ignore_scope_order() {
        let a = TokenCacheFile::key("https://idp/", "c", &["b".into(), "a".into()]);
        let b = TokenCacheFile::key("https://idp", "c", &["a".into(), "b".into()]);
        assert_eq!(a, b);
    }
}
