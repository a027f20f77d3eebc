//! Secret values from the config file, the environment, or a file beside the config.
//!
//! A secret key `x` may be written inline (`x: ...`, usually `x: ${VAR}`) or as `x-file: PATH`. A
//! file is read again every time the secret is needed, so a rotated Kubernetes secret is picked
//! up at the next token refresh without a restart. Only a regular file of at most 64 KiB is read
//! (see [`read_secret_file`]).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

/// Where one secret comes from.
#[derive(Clone)]
pub enum SecretSource {
    /// Given in the config itself (after `${VAR}` substitution or an environment override).
    Inline(SecretString),
    /// Read from this file at every use, trailing newline trimmed.
    File(PathBuf),
}

/// A secret file could not be read. Carries the path, never the content.
#[derive(Debug, thiserror::Error)]
#[error("cannot read secret file {path}: {source}")]
pub struct SecretFileError {
    /// The file that was asked for.
    pub path: PathBuf,
    /// Why it could not be read.
    #[source]
    pub source: std::io::Error,
}

impl SecretSource {
    /// Builds the source from the inline and `-file` forms of one key; `None` when neither is set.
    /// Having both is rejected earlier, by config validation.
    pub fn from_pair(inline: Option<&SecretString>, file: Option<&Path>) -> Option<Self> {
        match (inline, file) {
            (Some(value), _) => Some(Self::Inline(value.clone())),
            (None, Some(path)) => Some(Self::File(path.to_path_buf())),
            (None, None) => None,
        }
    }

    /// The current value: the inline one, or the file's content read now.
    pub fn read(&self) -> Result<SecretString, SecretFileError> {
        match self {
            Self::Inline(value) => Ok(value.clone()),
            Self::File(path) => read_secret_file(path),
        }
    }
}

/// The largest secret file tapline reads. A client secret, password or token is a few KiB at
/// most (a JWT with many claims); the bound keeps a wrong path (a log file, `/dev/zero`) from
/// filling memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret file, trimming one trailing newline (`\n` or `\r\n`) as editors and
/// `kubectl create secret --from-file` leave them.
///
/// Only a regular file is read, after following symlinks (Kubernetes mounts secrets as symlinks
/// into a `..data` directory), and only up to `MAX_SECRET_FILE_BYTES` (64 KiB): a FIFO would hang the
/// token refresh and a device would never end.
pub fn read_secret_file(path: &Path) -> Result<SecretString, SecretFileError> {
    let error = |source| SecretFileError {
        path: path.to_path_buf(),
        source,
    };
    let file = open_regular_file(path).map_err(error)?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(error)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        // The size checked at open was smaller: the file grew since (or is a /proc-like file).
        return Err(error(too_large()));
    }
    let mut text = String::from_utf8(bytes).map_err(|_| {
        error(io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(SecretString::from(text))
}

/// Opens `path` if it is, or links to, a regular file of at most [`MAX_SECRET_FILE_BYTES`].
///
/// The type is checked on the opened file, not on the path before opening, so nothing can be
/// swapped in between. `O_NONBLOCK` lets the open of a FIFO return at once instead of waiting
/// for a writer; for a regular file it changes nothing.
fn open_regular_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        let message = format!(
            "not a regular file ({}); give the file that holds the secret",
            kind_of(&metadata.file_type())
        );
        return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
    }
    if metadata.len() > MAX_SECRET_FILE_BYTES {
        return Err(too_large());
    }
    Ok(file)
}

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "larger than {} KiB, too large for a secret; give the file that holds only the secret",
            MAX_SECRET_FILE_BYTES / 1024
        ),
    )
}

/// What a file that is not a regular file is, in words.
fn kind_of(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("SecretSource::Inline([REDACTED])"),
            Self::File(path) => f.debug_tuple("SecretSource::File").field(path).finish(),
        }
    }
}

/// True when the secret is present and not empty, without exposing it anywhere else.
pub(crate) fn is_blank(value: &SecretString) -> bool {
    value.expose_secret().trim().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_content_is_trimmed_of_one_newline_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "first\n").unwrap();
        let source = SecretSource::File(path.clone());
        assert_eq!(source.read().unwrap().expose_secret(), "first");
        std::fs::write(&path, "second\r\n").unwrap();
        assert_eq!(source.read().unwrap().expose_secret(), "second");
    }

    #[test]
    fn a_symlink_to_a_regular_file_is_read_as_kubernetes_mounts_it() {
        // Kubernetes: secret/key -> ..data/key, ..data -> ..2024_01_01_00_00_00.1/
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("..2024_01_01_00_00_00.1");
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("key"), "mounted\n").unwrap();
        std::os::unix::fs::symlink(&version, dir.path().join("..data")).unwrap();
        let link = dir.path().join("key");
        std::os::unix::fs::symlink("..data/key", &link).unwrap();
        assert_eq!(read_secret_file(&link).unwrap().expose_secret(), "mounted");
    }

    fn refused(path: &Path) -> String {
        let error = read_secret_file(path).expect_err("refused");
        assert_eq!(error.path, path);
        error.source.to_string()
    }

    #[test]
    fn a_device_is_refused_even_through_a_symlink() {
        assert!(refused(Path::new("/dev/zero")).starts_with("not a regular file (a device)"));
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("secret");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert!(refused(&link).starts_with("not a regular file (a device)"));
    }

    /// Before the check, the read opened the FIFO, waited for the writer and returned what it
    /// wrote; in production nobody writes, and the token refresh hangs.
    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("secret");
        let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let _ = std::fs::write(fifo, "from-a-pipe\n");
            })
        };
        let result = read_secret_file(&fifo);
        // A read end kept open lets the writer finish whether or not the read above opened it.
        let _reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        writer.join().unwrap();
        let error = result.expect_err("a FIFO is refused");
        assert!(
            error
                .source
                .to_string()
                .starts_with("not a regular file (a FIFO)"),
            "{error}"
        );
    }

    #[test]
    fn a_file_over_64_kib_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let limit = MAX_SECRET_FILE_BYTES as usize;
        std::fs::write(&path, "x".repeat(limit)).unwrap();
        assert_eq!(
            read_secret_file(&path).unwrap().expose_secret().len(),
            limit
        );
        std::fs::write(&path, "x".repeat(limit + 1)).unwrap();
        let message = refused(&path);
        assert!(message.starts_with("larger than 64 KiB"), "{message}");
    }

    #[test]
    fn debug_hides_inline_values() {
        let source = SecretSource::Inline(SecretString::from("hunter2"));
        assert!(!format!("{source:?}").contains("hunter2"));
    }
}
