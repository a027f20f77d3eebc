//! Where the bearer token may go: `session.base-url`'s origin (scheme, host and port), plus the
//! origins a caller explicitly allowed for its own handle.
//!
//! Why in the session and not in each task: URLs come from data too (a `next` link in a page, an
//! `href` in a record), and a task that forgets to check one would hand the API's token to
//! whatever host the data names. reqwest strips `Authorization` on a cross-origin *redirect*,
//! but a URL the caller resolved itself is a fresh request to reqwest. So the send loop refuses
//! to attach the token to any URL outside [`TokenOrigins`], whoever built the URL.

use std::fmt;
use std::sync::Arc;

use url::{Origin, Url};

/// The origins a session handle's token may be sent to.
#[derive(Clone, Debug, Default)]
pub(super) struct TokenOrigins {
    allowed: Arc<[Origin]>,
}

impl TokenOrigins {
    /// Only `base`'s origin; none without a base URL.
    pub(super) fn of_base(base: Option<&Url>) -> Self {
        Self {
            allowed: base.map(Url::origin).into_iter().collect(),
        }
    }

    /// These origins and `more`.
    pub(super) fn with(&self, more: impl IntoIterator<Item = Origin>) -> Self {
        let mut allowed = self.allowed.to_vec();
        for origin in more {
            if !allowed.contains(&origin) {
                allowed.push(origin);
            }
        }
        Self {
            allowed: allowed.into(),
        }
    }

    /// Whether `url` is at one of the allowed origins.
    pub(super) fn allows(&self, url: &Url) -> bool {
        let origin = url.origin();
        origin.is_tuple() && self.allowed.contains(&origin)
    }

    /// The allowed origins, for an error message.
    pub(super) fn describe(&self) -> String {
        match &*self.allowed {
            [] => "no origin (set session.base-url)".to_string(),
            allowed => allowed
                .iter()
                .map(Origin::ascii_serialization)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// An origin as written in config (`https://api.example.com:8443`) is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOrigin {
    /// Not a URL at all, or not http(s).
    #[error("{0:?} is not an origin; write it as scheme://host or scheme://host:port, e.g. https://api.example.com:8443")]
    NotAnOrigin(String),
    /// A URL with more than an origin: the token would go to the whole origin anyway, so a path
    /// there would only mislead the reader.
    #[error(
        "{0:?} has a path, query, fragment or user name; an origin is only scheme://host[:port]"
    )]
    MoreThanAnOrigin(String),
}

/// Parses an origin written as `scheme://host[:port]` (a trailing `/` is accepted).
pub fn parse_origin(text: &str) -> Result<Origin, InvalidOrigin> {
    let url = Url::parse(text.trim())
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| InvalidOrigin::NotAnOrigin(text.to_string()))?;
    if url.path() != "/"
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(InvalidOrigin::MoreThanAnOrigin(text.to_string()));
    }
    Ok(url.origin())
}

/// `scheme://host:port` of `url`, as it may appear in errors: no path, no query.
pub(crate) struct OriginOf<'a>(pub &'a Url);

impl fmt::Display for OriginOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.origin() {
            origin @ Origin::Tuple(..) => f.write_str(&origin.ascii_serialization()),
            Origin::Opaque(_) => write!(f, "{}:", self.0.scheme()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn only_the_base_origin_by_default() {
        let origins = TokenOrigins::of_base(Some(&url("https://api.example.com/api/v1/")));
        assert!(origins.allows(&url("https://api.example.com/other?x=1")));
        assert!(
            origins.allows(&url("https://api.example.com:443/x")),
            "default port"
        );
        for other in [
            "http://api.example.com/api/v1/",
            "https://api.example.com:8443/api/v1/",
            "https://evil.example.com/api/v1/",
            "https://api.example.com.evil.example/",
            "file:///etc/passwd",
        ] {
            assert!(!origins.allows(&url(other)), "{other}");
        }
    }

    #[test]
    fn no_base_allows_nothing_until_origins_are_added() {
        let none = TokenOrigins::of_base(None);
        assert!(!none.allows(&url("https://api.example.com/")));
        assert_eq!(none.describe(), "no origin (set session.base-url)");
        let some = none.with([parse_origin("https://api.example.com:8443").unwrap()]);
        assert!(some.allows(&url("https://api.example.com:8443/x")));
        assert!(!some.allows(&url("https://api.example.com/x")));
        assert_eq!(some.describe(), "https://api.example.com:8443");
    }

    #[test]
    fn parses_origins_and_rejects_more_or_less() {
        assert_eq!(
            parse_origin("https://api.example.com/").unwrap(),
            url("https://api.example.com").origin()
        );
        for text in ["api.example.com", "ftp://host", "https://", "mailto:a@b"] {
            assert!(
                matches!(parse_origin(text), Err(InvalidOrigin::NotAnOrigin(_))),
                "{text}"
            );
        }
        for text in [
            "https://api.example.com/v1",
            "https://api.example.com/?a=1",
            "https://user@api.example.com",
        ] {
            assert!(
                matches!(parse_origin(text), Err(InvalidOrigin::MoreThanAnOrigin(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn origin_of_shows_neither_path_nor_query() {
        let shown = OriginOf(&url("http://127.0.0.1:9999/page?api_key=s3cret")).to_string();
        assert_eq!(shown, "http://127.0.0.1:9999");
    }
}
