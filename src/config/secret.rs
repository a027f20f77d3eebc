//! Secret values from the config file, the environment, or a file beside the config.
//!
//! A secret key `x` may be written inline (`x: ...`, usually `x: ${VAR}`) or as `x-file: PATH`. A
//! file is read again every time the secret is needed, so a rotated Kubernetes secret is picked
//! up at the next token refresh without a restart.

use std::fmt;
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

/// Reads a secret file, trimming one trailing newline (`\n` or `\r\n`) as editors and
/// `kubectl create secret --from-file` leave them.
pub fn read_secret_file(path: &Path) -> Result<SecretString, SecretFileError> {
    let mut text = std::fs::read_to_string(path).map_err(|source| SecretFileError {
        path: path.to_path_buf(),
        source,
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(SecretString::from(text))
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
    fn debug_hides_inline_values() {
        let source = SecretSource::Inline(SecretString::from("hunter2"));
        assert!(!format!("{source:?}").contains("hunter2"));
    }
}
