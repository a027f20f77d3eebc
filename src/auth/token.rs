//! An access token, held so that it never reaches a log line.

use std::fmt;
use std::time::Instant;

use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::Error;

/// A token as a provider returned it, before the cache stamps it.
pub struct FetchedToken {
    /// The access token.
    pub value: SecretString,
    /// When it stops being valid, on the monotonic clock; `None` when it does not expire.
    pub expires_at: Option<Instant>,
}

impl fmt::Debug for FetchedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedToken")
            .field("value", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The bearer token requests carry, with its ready-made `Authorization` header value so the hot
/// path does not format a header per request.
pub struct AccessToken {
    value: SecretString,
    header: HeaderValue,
    expires_at: Option<Instant>,
}

impl AccessToken {
    /// Wraps a fetched token, building its header value (marked sensitive).
    pub fn new(fetched: FetchedToken) -> Result<Self, Error> {
        let mut header = HeaderValue::from_str(&format!("Bearer {}", fetched.value.expose_secret()))
            .map_err(|_| Error::InvalidToken)?;
        header.set_sensitive(true);
        Ok(Self {
            value: fetched.value,
            header,
            expires_at: fetched.expires_at,
        })
    }

    /// The raw token, for `tapline token`.
    pub fn secret(&self) -> &SecretString {
        &self.value
    }

    /// `Bearer <token>`, marked sensitive.
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// When the token expires, if it does.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
