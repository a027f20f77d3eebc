//! [`Error`]: what can go wrong reading a database, and which of it is worth a retry.
//!
//! Why the split matters: a database restarting or a connection cut is over in seconds, so the
//! run waits and goes on from the last row it has; bad SQL, a missing table or a wrong password
//! will be the same on the next try, so the run fails at once with the database's own message.

use crate::config::SecretFileError;

/// Reading the database failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL could not be turned into connection options, or TLS could not be set up.
    #[error("cannot connect to {url} as configured")]
    Configuration {
        /// The URL, without its password.
        url: String,
        /// What sqlx found wrong.
        #[source]
        source: sqlx::Error,
    },
    /// `password-file` could not be read.
    #[error("source.password-file")]
    Password(#[source] SecretFileError),
    /// The database could not be reached, or the connection was lost.
    #[error("cannot reach the database at {url}")]
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// The I/O, TLS or pool error.
        #[source]
        source: sqlx::Error,
    },
    /// The database refused the query or the login, in its own words.
    #[error("{database} answered: {message}{position}")]
    Database {
        /// `PostgreSQL`, `MySQL` or `SQLite`.
        database: &'static str,
        /// The database's message, with its code.
        message: String,
        /// `at line L, column C of source.query`, when the database says where.
        position: String,
        /// Whether it is worth another try (a restart, too many connections).
        transient: bool,
    },
    /// A cursor column is not among the query's result columns.
    #[error(
        "the cursor column {column:?} is not among the query's columns ({columns}); select it"
    )]
    CursorColumnMissing {
        /// The column.
        column: String,
        /// The query's columns.
        columns: String,
    },
    /// A column of a type there is no JSON conversion for.
    #[error("column {column:?} has type {type_name}, which tapline does not convert; cast it in the query (for example to text)")]
    Unsupported {
        /// The column.
        column: String,
        /// The database's name for its type.
        type_name: String,
    },
    /// A value could not be read as its column's type.
    #[error("column {column:?} ({type_name}) could not be read")]
    Decode {
        /// The column.
        column: String,
        /// The database's name for its type.
        type_name: String,
        /// sqlx's decoding error.
        #[source]
        source: sqlx::Error,
    },
    /// A cursor value cannot be bound as the query's parameter.
    #[error("cursor value {value} of {column:?} cannot be bound as {type_name}: {reason}")]
    Bind {
        /// The cursor column (or `{limit}`).
        column: String,
        /// The value, as saved.
        value: String,
        /// The parameter's type.
        type_name: String,
        /// Why not.
        reason: String,
    },
}

impl Error {
    /// Whether trying again later in the run may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Database { transient, .. } => *transient,
            _ => false,
        }
    }
}

/// A sqlx error in this crate's terms: `url` (already redacted) for connection failures, and a
/// database error's position mapped through `position`.
pub(super) fn from_sqlx(
    error: sqlx::Error,
    database: &'static str,
    url: &str,
    position: &dyn Fn(usize) -> String,
) -> Error {
    match error {
        sqlx::Error::Database(db) => {
            let transient = is_transient_code(db.code().as_deref().unwrap_or(""), db.as_ref());
            let at = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| match pg.position() {
                    Some(sqlx::postgres::PgErrorPosition::Original(at)) => Some(position(at)),
                    _ => None,
                })
                .unwrap_or_default();
            let code = db.code().map(|c| format!(" ({c})")).unwrap_or_default();
            Error::Database {
                database,
                message: format!("{}{code}", db.message()),
                position: at,
                transient,
            }
        }
        // A certificate or an option that is wrong stays wrong: no retry. A certificate the
        // TLS handshake refuses comes as an I/O error of kind `InvalidData` (rustls' own error
        // inside): bytes that make no sense do not get better by trying again.
        error @ (sqlx::Error::Tls(_) | sqlx::Error::Configuration(_)) => Error::Configuration {
            url: url.to_string(),
            source: error,
        },
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Error::Configuration {
                url: url.to_string(),
                source: sqlx::Error::Io(io),
            }
        }
        error => Error::Unreachable {
            url: url.to_string(),
            source: error,
        },
    }
}

/// SQLSTATE class 08 (connection exception), PostgreSQL's shutdown and start-up states and
/// "too many connections", MySQL's server shutdown and lost connection numbers.
fn is_transient_code(code: &str, error: &dyn sqlx::error::DatabaseError) -> bool {
    if code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300") {
        return true;
    }
    error
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|my| matches!(my.number(), 1040 | 1053 | 1927 | 2006 | 2013))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_transient_and_refusals_are_not() {
        let io = from_sqlx(
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
            "PostgreSQL",
            "postgres://u:***@h/db",
            &|_| String::new(),
        );
        assert!(io.is_transient());
        assert!(io.to_string().contains("postgres://u:***@h/db"));
        let missing = Error::CursorColumnMissing {
            column: "id".into(),
            columns: "a, b".into(),
        };
        assert!(!missing.is_transient());

        let refused = from_sqlx(
            sqlx::Error::Database(Box::new(Coded("28P01"))),
            "PostgreSQL",
            "postgres://u@h/db",
            &|_| String::new(),
        );
        assert!(!refused.is_transient(), "a refused login: {refused:?}");
        assert!(refused.to_string().contains("(28P01)"), "{refused}");
        let lost = from_sqlx(
            sqlx::Error::Database(Box::new(Coded("08006"))),
            "PostgreSQL",
            "postgres://u@h/db",
            &|_| String::new(),
        );
        assert!(lost.is_transient(), "a connection failure: {lost:?}");
        let garbled = from_sqlx(
            sqlx::Error::Io(std::io::ErrorKind::InvalidData.into()),
            "PostgreSQL",
            "postgres://u@h/db",
            &|_| String::new(),
        );
        assert!(!garbled.is_transient(), "{garbled:?}");
        assert!(
            matches!(garbled, Error::Configuration { .. }),
            "{garbled:?}"
        );
    }

    /// A database error with only a SQLSTATE, as any database's driver may give one.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            "refused"
        }

        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }

        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }

        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }

        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }

        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }
}
