//! [`Backend`]: which database a URL names, and what follows from it (how it writes bind
//! parameters). Each database's name in messages is its module's `NAME`.

use super::placeholders::Style;

/// The databases the `sql` task reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `postgres://` or `postgresql://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    MySql,
    /// `sqlite://`.
    Sqlite,
}

impl Backend {
    /// The backend of `url`, from its scheme.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme);
        match scheme.map(str::to_ascii_lowercase).as_deref() {
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            Some("sqlite") => Ok(Self::Sqlite),
            _ => Err(
                "not a database URL; write postgres://user@host:5432/db, mysql://user@host:3306/db \
                 or sqlite:///path/file.db"
                    .into(),
            ),
        }
    }

    /// How its queries write bind parameters.
    pub fn style(self) -> Style {
        match self {
            Self::Postgres => Style::Dollar,
            Self::MySql => Style::Question,
            Self::Sqlite => Style::QuestionNumbered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_names_the_backend() {
        assert_eq!(
            Backend::from_url("postgresql://h/db"),
            Ok(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mariadb://h/db"), Ok(Backend::MySql));
        assert_eq!(Backend::from_url("sqlite:///tmp/x.db"), Ok(Backend::Sqlite));
        assert!(Backend::from_url("oracle://h/db").is_err());
        assert!(Backend::from_url("no scheme").is_err());
    }
}
