//! What can go wrong with a buffer directory.

use std::io;
use std::path::PathBuf;

use super::segment::VERSION;

/// A buffer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, worded for the operator ("write to", "open").
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("the buffer directory {} is in use by another tapline process; give each process its own buffer path", path.display())]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The directory holds a format this tapline cannot read.
    #[error("{} was written by a newer tapline (buffer format {found}; this one reads format {VERSION}); run that version until the buffer is empty, or move the directory away", path.display())]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
    },
    /// The records do not fit under `max-size` now.
    #[error("the buffer is full (max-size)")]
    Full,
}

/// An [`Error::Io`] for `action` on `path`.
pub(super) fn io(
    action: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}
