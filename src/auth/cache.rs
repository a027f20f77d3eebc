//! The token cache shared by the whole process.
//!
//! PLACEHOLDER: fetches when empty; single flight, refresh ahead of expiry and backoff land with
//! the credential providers.

use std::sync::{Arc, Mutex};

use super::{AccessToken, Error, TokenSource};

/// Holds the current token and decides when to fetch a new one.
#[derive(Debug)]
pub struct TokenCache {
    source: Arc<dyn TokenSource>,
    current: Mutex<Option<Arc<AccessToken>>>,
}

impl TokenCache {
    /// A cache over `source`, empty until first use.
    pub fn new(source: Arc<dyn TokenSource>) -> Self {
        Self {
            source,
            current: Mutex::new(None),
        }
    }

    /// The current token, fetching one if there is none.
    pub async fn token(&self) -> Result<Arc<AccessToken>, Error> {
        if let Some(token) = self.current.lock().expect("not poisoned").clone() {
            return Ok(token);
        }
        let token = Arc::new(AccessToken::new(self.source.fetch().await?)?);
        *self.current.lock().expect("not poisoned") = Some(token.clone());
        Ok(token)
    }

    /// Drops `token` if it is still the current one.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut current = self.current.lock().expect("not poisoned");
        if current.as_deref().is_some_and(|held| std::ptr::eq(held, token)) {
            *current = None;
        }
    }
}
