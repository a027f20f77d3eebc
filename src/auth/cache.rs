//! The token cache shared by the whole process.
//!
//! Why it is more than an `Option<Token>` behind a lock: hundreds of concurrent requests ask for
//! the token, and the identity provider must see *one* token request for them (single flight),
//! while no request should wait on the provider as long as the current token is still valid.
//! So reading the token is a plain read of shared state; only a caller that finds no valid token
//! takes the fetch lock, and a token nearing its expiry is renewed by a background task while
//! callers keep using the old one.
//!
//! The cache knows nothing about OAuth: it receives the fetch as a [`TokenSource`] and only
//! decides *when* to call it, retrying the errors the source marks as transient with a
//! [`Backoff`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use super::{AccessToken, Error, FetchedToken, TokenSource};
use crate::backoff::{Backoff, Jitter};

/// When the cache refreshes and how it retries.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Refresh this long before expiry; clamped to half the token's lifetime, so a 59 s token
    /// with a 60 s margin is not "always expired".
    pub refresh_margin: Duration,
    /// For tokens that do not expire (a `token-file`): look again this often, so a rotated file
    /// is picked up. `None` means never.
    pub recheck: Option<Duration>,
    /// Delays between retries of transient failures (connection errors, timeouts, 408, 429,
    /// 5xx); also the cap on a server's `Retry-After`.
    pub backoff: Backoff,
    /// Retries after the first attempt.
    pub max_retries: u32,
}

/// The token endpoint's retries: 250 ms doubling to 10 s, each pause its ceiling plus up to as
/// much again. One process makes at most one token request at a time, so a guaranteed, growing
/// pause matters more here than spreading a herd (the session's full jitter).
pub const FETCH_BACKOFF: Backoff = Backoff::new(
    Duration::from_millis(250),
    Duration::from_secs(10),
    Jitter::Additive,
);

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(30),
            recheck: None,
            backoff: FETCH_BACKOFF,
            max_retries: 5,
        }
    }
}

/// Holds the current token and decides when to fetch a new one.
#[derive(Debug, Clone)]
pub struct TokenCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: Arc<dyn TokenSource>,
    options: CacheOptions,
    /// The hot path reads this and nothing else; writers hold it only to swap a pointer.
    current: RwLock<Option<Current>>,
    /// Held across a fetch: at most one token request at a time (single flight).
    fetching: tokio::sync::Mutex<()>,
    /// A background refresh is scheduled or running.
    refreshing: AtomicBool,
}

#[derive(Debug, Clone)]
struct Current {
    token: Arc<AccessToken>,
    /// From then on, a background refresh is due; `None` for tokens never refreshed ahead.
    refresh_at: Option<Instant>,
}

impl TokenCache {
    /// A cache over `source` with default options, empty until first use.
    pub fn new(source: Arc<dyn TokenSource>) -> Self {
        Self::with_options(source, CacheOptions::default())
    }

    /// A cache over `source`, empty until first use.
    pub fn with_options(source: Arc<dyn TokenSource>, options: CacheOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                source,
                options,
                current: RwLock::new(None),
                fetching: tokio::sync::Mutex::new(()),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// A valid token: the current one when it has not expired (starting a background refresh
    /// when it is due), otherwise a new one fetched now, shared with every concurrent caller.
    pub async fn token(&self) -> Result<Arc<AccessToken>, Error> {
        if let Some(token) = self.inner.valid(super::token::now(), true) {
            return Ok(token);
        }
        let _fetching = self.inner.fetching.lock().await;
        // Whoever held the lock before us may have fetched already.
        if let Some(token) = self.inner.valid(super::token::now(), false) {
            return Ok(token);
        }
        tracing::debug!("no valid token; fetching one");
        self.inner.fetch().await
    }

    /// Drops `token` if it is still the current one (pointer identity), so that only the first
    /// of many requests rejected with the same token causes a new fetch.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if current
            .as_ref()
            .is_some_and(|held| std::ptr::eq(Arc::as_ptr(&held.token), token))
        {
            tracing::debug!("token invalidated");
            *current = None;
        }
    }
}

impl Inner {
    /// The current token if it has not expired. With `schedule`, starts a background refresh
    /// when one is due.
    fn valid(self: &Arc<Self>, now: Instant, schedule: bool) -> Option<Arc<AccessToken>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        if current.token.expires_at().is_some_and(|at| now >= at) {
            return None;
        }
        if schedule && current.refresh_at.is_some_and(|at| now >= at) {
            self.spawn_refresh();
        }
        Some(current.token)
    }

    fn spawn_refresh(self: &Arc<Self>) {
        if self
            .refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let inner = Arc::clone(self);
        runtime.spawn(async move {
            inner.refresh().await;
            inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// The background refresh: callers keep the current token meanwhile.
    async fn refresh(self: &Arc<Self>) {
        let _fetching = self.fetching.lock().await;
        let due = {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            current
                .as_ref()
                .is_some_and(|c| c.refresh_at.is_some_and(|at| super::token::now() >= at))
        };
        if !due {
            return; // someone fetched while we waited for the lock
        }
        tracing::debug!("refreshing the token ahead of expiry");
        if let Err(error) = self.fetch().await {
            tracing::warn!(error = %error, "background token refresh failed; keeping the current token");
            // Try again halfway to expiry rather than on every request.
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            if let Some(current) = current.as_mut() {
                let now = super::token::now();
                current.refresh_at = Some(match current.token.expires_at() {
                    Some(at) => {
                        now + (at.saturating_duration_since(now) / 2).max(Duration::from_secs(1))
                    }
                    None => now + self.options.recheck.unwrap_or(Duration::from_secs(30)),
                });
            }
        }
    }

    /// Fetches with retries and makes the result current. The caller holds `fetching`.
    async fn fetch(&self) -> Result<Arc<AccessToken>, Error> {
        let started = super::token::now();
        let fetched = self.fetch_with_retries().await?;
        let now = super::token::now();
        let refresh_at = match fetched.expires_at {
            Some(expires_at) => {
                let lifetime = expires_at.saturating_duration_since(started);
                let margin = self.options.refresh_margin.min(lifetime / 2);
                metrics::gauge!("tapline_token_expiry_seconds")
                    .set(expires_at.saturating_duration_since(now).as_secs_f64());
                Some(expires_at - margin)
            }
            None => self.options.recheck.map(|every| now + every),
        };
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        // A re-read token-file that did not change keeps its identity, so `invalidate` with a
        // token handed out earlier still works.
        let token = match current.as_ref() {
            Some(held)
                if held.token.expires_at().is_none()
                    && fetched.expires_at.is_none()
                    && held.token.secret().expose_secret() == fetched.value.expose_secret() =>
            {
                Arc::clone(&held.token)
            }
            _ => Arc::new(AccessToken::new(fetched)?),
        };
        *current = Some(Current {
            token: Arc::clone(&token),
            refresh_at,
        });
        Ok(token)
    }

    /// Asks the source, retrying transient errors after [`CacheOptions::backoff`] delays (or the
    /// server's `Retry-After`, up to the backoff's maximum).
    async fn fetch_with_retries(&self) -> Result<FetchedToken, Error> {
        let mut delays = self.options.backoff.delays();
        let mut retries = 0;
        loop {
            let error = match self.source.fetch().await {
                Ok(fetched) => return Ok(fetched),
                Err(error) if error.is_transient() && retries < self.options.max_retries => error,
                Err(error) => return Err(error),
            };
            retries += 1;
            let backoff = delays.next().unwrap_or_default();
            let delay = error
                .retry_after()
                .map_or(backoff, |after| after.min(self.options.backoff.max()));
            tracing::info!(error = %error, retry_in_ms = delay.as_millis() as u64, "token request failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use secrecy::SecretString;

    use super::*;

    /// Counts fetches; each returns `token-<n>` living `lifetime`, after `delay`, or the next
    /// queued error.
    #[derive(Debug)]
    struct Fake {
        fetches: AtomicUsize,
        lifetime: Option<Duration>,
        delay: Duration,
        errors: Mutex<Vec<Error>>,
    }

    impl Fake {
        fn new(lifetime: Option<Duration>) -> Arc<Self> {
            Arc::new(Self {
                fetches: AtomicUsize::new(0),
                lifetime,
                delay: Duration::from_millis(50),
                errors: Mutex::new(Vec::new()),
            })
        }
        fn count(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl TokenSource for Fake {
        async fn fetch(&self) -> Result<FetchedToken, Error> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            let sent = crate::auth::token::now();
            tokio::time::sleep(self.delay).await;
            if let Some(error) = self.errors.lock().unwrap().pop() {
                return Err(error);
            }
            Ok(FetchedToken {
                value: SecretString::from(format!("token-{n}")),
                expires_at: self.lifetime.map(|l| sent + l),
            })
        }
    }

    fn make_cache(fake: &Arc<Fake>, margin: Duration) -> TokenCache {
        TokenCache::with_options(
            fake.clone(),
            CacheOptions {
                refresh_margin: margin,
                ..CacheOptions::default()
            },
        )
    }

    fn value(token: &AccessToken) -> String {
        token.secret().expose_secret().to_string()
    }

    fn unavailable() -> Error {
        Error::TokenEndpointStatus {
            url: "https://idp.test/token".into(),
            status: 503,
            retry_after: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch() {
        let fake = Fake::new(Some(Duration::from_secs(3600)));
        let cache = make_cache(&fake, Duration::from_secs(30));
        let calls = (0..100).map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await.unwrap() })
        });
        let tokens = futures::future::join_all(calls).await;
        assert_eq!(fake.count(), 1);
        let first = tokens[0].as_ref().unwrap();
        assert!(tokens
            .iter()
            .all(|t| Arc::ptr_eq(t.as_ref().unwrap(), first)));
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_in_the_background_while_callers_keep_the_valid_token() {
        let fake = Fake::new(Some(Duration::from_secs(100)));
        // A 60 s margin on a 100 s token is clamped to 50 s.
        let cache = make_cache(&fake, Duration::from_secs(60));
        let first = cache.token().await.unwrap();
        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(
            value(&cache.token().await.unwrap()),
            "token-1",
            "not due yet"
        );
        assert_eq!(fake.count(), 1);
        tokio::time::advance(Duration::from_secs(6)).await;
        // Due: the caller gets the still-valid token at once, and a refresh starts.
        let during = cache.token().await.unwrap();
        assert!(Arc::ptr_eq(&during, &first));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fake.count(), 2);
        assert_eq!(value(&cache.token().await.unwrap()), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_token_is_never_served() {
        let fake = Fake::new(Some(Duration::from_secs(10)));
        let cache = make_cache(&fake, Duration::from_secs(1));
        cache.token().await.unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;
        let token = cache.token().await.unwrap();
        assert_eq!(value(&token), "token-2");
        assert!(token.expires_at().unwrap() > crate::auth::token::now());
    }

    #[tokio::test(start_paused = true)]
    async fn invalidate_drops_only_the_current_token() {
        let fake = Fake::new(Some(Duration::from_secs(3600)));
        let cache = make_cache(&fake, Duration::from_secs(30));
        let first = cache.token().await.unwrap();
        cache.invalidate(&first);
        let second = cache.token().await.unwrap();
        assert_eq!(fake.count(), 2);
        cache.invalidate(&first); // stale: a no-op
        assert!(Arc::ptr_eq(&cache.token().await.unwrap(), &second));
        assert_eq!(fake.count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_and_rejections_are_not() {
        let fake = Fake::new(Some(Duration::from_secs(3600)));
        fake.errors
            .lock()
            .unwrap()
            .extend([unavailable(), unavailable()]);
        let cache = make_cache(&fake, Duration::from_secs(30));
        assert_eq!(value(&cache.token().await.unwrap()), "token-3");

        let fake = Fake::new(Some(Duration::from_secs(3600)));
        fake.errors.lock().unwrap().push(Error::TokenRejected {
            status: 401,
            error: "invalid_client".into(),
            description: None,
        });
        let cache = make_cache(&fake, Duration::from_secs(30));
        let error = cache.token().await.unwrap_err();
        assert!(matches!(error, Error::TokenRejected { .. }));
        assert_eq!(fake.count(), 1);
        // Errors are not cached: the next call asks again.
        assert_eq!(value(&cache.token().await.unwrap()), "token-2");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_give_up_after_the_limit() {
        let fake = Fake::new(Some(Duration::from_secs(3600)));
        fake.errors
            .lock()
            .unwrap()
            .extend((0..10).map(|_| unavailable()));
        let cache = make_cache(&fake, Duration::from_secs(30));
        assert!(cache.token().await.unwrap_err().is_transient());
        assert_eq!(
            fake.count(),
            1 + CacheOptions::default().max_retries as usize
        );
    }

    #[tokio::test(start_paused = true)]
    async fn non_expiring_tokens_are_rechecked_and_keep_identity_when_unchanged() {
        #[derive(Debug)]
        struct File(Mutex<String>, AtomicUsize);
        #[async_trait::async_trait]
        impl TokenSource for File {
            async fn fetch(&self) -> Result<FetchedToken, Error> {
                self.1.fetch_add(1, Ordering::SeqCst);
                Ok(FetchedToken {
                    value: SecretString::from(self.0.lock().unwrap().clone()),
                    expires_at: None,
                })
            }
        }
        let file = Arc::new(File(Mutex::new("a".into()), AtomicUsize::new(0)));
        let cache = TokenCache::with_options(
            file.clone(),
            CacheOptions {
                recheck: Some(Duration::from_secs(5)),
                ..CacheOptions::default()
            },
        );
        let first = cache.token().await.unwrap();
        tokio::time::advance(Duration::from_secs(6)).await;
        cache.token().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(file.1.load(Ordering::SeqCst), 2);
        assert!(Arc::ptr_eq(&cache.token().await.unwrap(), &first));
        *file.0.lock().unwrap() = "b".into();
        tokio::time::advance(Duration::from_secs(6)).await;
        cache.token().await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(value(&cache.token().await.unwrap()), "b");
    }
}
