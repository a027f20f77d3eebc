//! The token cache shared by the whole process.
//!
//! Why it is more than an `Option<Token>` behind a lock: hundreds of concurrent requests ask for
//! the token, and the identity provider must see *one* token request for them (single flight),
//! while no request should wait on the provider as long as the current token is still usable.
//! So reading the token is a plain read of shared state; only a caller that finds no usable token
//! takes the fetch lock, and a token nearing the end of its use is renewed by a background task
//! while callers keep using the old one.
//!
//! A token is used only until a safety skew before it expires ([`AccessToken::usable_until`]);
//! past that, callers wait for the new one rather than send one that may expire on the way.
//!
//! Why the provider is never hammered, whatever it answers: token requests start at least
//! [`CacheOptions::min_fetch_interval`] apart (failed ones included), a token is used for at least
//! a second however short its lifetime, and callers that waited while a token was fetched take
//! that token instead of fetching another.
//!
//! The cache knows nothing about OAuth: it receives the fetch as a [`TokenSource`] and only
//! decides *when* to call it, retrying the errors the source marks as transient with a
//! [`Backoff`].

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use secrecy::ExposeSecret;

use super::token::now;
use super::{AccessToken, Error, FetchedToken, TokenSource};
use crate::backoff::{Backoff, Jitter};
use crate::telemetry::catalogue;

/// When the cache refreshes and how it retries.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Refresh this long before the token's use ends; clamped to half its usable lifetime, so a
    /// 59 s token with a 60 s margin is not "always due".
    pub refresh_margin: Duration,
    /// For tokens that do not expire (a `token-file`): look again this often, so a rotated file
    /// is picked up. `None` means never.
    pub recheck: Option<Duration>,
    /// Delays between retries of transient failures (connection errors, timeouts, 408, 429,
    /// 5xx); also the cap on a server's `Retry-After`.
    pub backoff: Backoff,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Token requests start at least this far apart, so that nothing (a zero `expires_in`, an
    /// API rejecting every token, a failing provider) turns into a flood of token requests.
    pub min_fetch_interval: Duration,
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
            min_fetch_interval: Duration::from_secs(1),
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
    /// Held across a fetch: at most one token request at a time (single flight). Holds when the
    /// last fetch started.
    fetching: tokio::sync::Mutex<Option<Instant>>,
    /// Successful fetches so far: a caller that waited for `fetching` takes the token of any fetch
    /// that ended meanwhile.
    fetched: AtomicU64,
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
                fetching: tokio::sync::Mutex::new(None),
                fetched: AtomicU64::new(0),
                refreshing: AtomicBool::new(false),
            }),
        }
    }

    /// A usable token: the current one when its use has not ended (starting a background refresh
    /// when one is due), otherwise a new one fetched now, shared with every concurrent caller.
    pub async fn token(&self) -> Result<Arc<AccessToken>, Error> {
        if let Some(token) = self.inner.usable(now(), true) {
            return Ok(token);
        }
        let seen = self.inner.fetched.load(Ordering::Acquire);
        let mut last_fetch = self.inner.fetching.lock().await;
        // Whoever held the lock before us may have fetched already; a token fetched while we
        // waited is as fresh as any we could get.
        if let Some(token) = self.inner.usable(now(), false).or_else(|| {
            (self.inner.fetched.load(Ordering::Acquire) != seen)
                .then(|| self.inner.current_token())
                .flatten()
        }) {
            return Ok(token);
        }
        tracing::debug!("no usable token; fetching one");
        self.inner.fetch(&mut last_fetch).await
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
    fn current(&self) -> Option<Current> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn current_token(&self) -> Option<Arc<AccessToken>> {
        self.current().map(|current| current.token)
    }

    /// The current token if its use has not ended. With `schedule`, starts a background refresh
    /// when one is due.
    fn usable(self: &Arc<Self>, now: Instant, schedule: bool) -> Option<Arc<AccessToken>> {
        let current = self.current()?;
        if current
            .token
            .usable_until()
            .is_some_and(|until| now >= until)
        {
            return None;
        }
        if schedule && current.refresh_at.is_some_and(|at| now >= at) {
            self.spawn_refresh();
        }
        Some(current.token)
    }

    /// Starts the background refresh unless one is going. Should it panic, that is logged and the
    /// flag cleared, so the next caller past the refresh time starts another: a refresh never
    /// dies silently for good.
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
            if AssertUnwindSafe(inner.refresh())
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(
                    "the background token refresh panicked; the next request starts another"
                );
            }
            inner.refreshing.store(false, Ordering::Release);
        });
    }

    /// The background refresh: callers keep the current token meanwhile.
    async fn refresh(self: &Arc<Self>) {
        let mut last_fetch = self.fetching.lock().await;
        let due = self
            .current()
            .is_some_and(|c| c.refresh_at.is_some_and(|at| now() >= at));
        if !due {
            return; // someone fetched while we waited for the lock
        }
        tracing::debug!("refreshing the token ahead of expiry");
        if let Err(error) = self.fetch(&mut last_fetch).await {
            tracing::warn!(error = %error, "background token refresh failed; keeping the current token");
            self.retry_refresh_later();
        }
    }

    /// After a failed background refresh: try again halfway to the end of the token's use rather
    /// than on every request.
    fn retry_refresh_later(&self) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = current.as_mut() {
            let now = now();
            let wait = match current.token.usable_until() {
                Some(until) => {
                    (until.saturating_duration_since(now) / 2).max(Duration::from_secs(1))
                }
                None => self.options.recheck.unwrap_or(Duration::from_secs(30)),
            };
            current.refresh_at = now.checked_add(wait);
        }
    }

    /// Fetches with retries, no sooner than `min_fetch_interval` after the last fetch started,
    /// and makes the result current. The caller holds `fetching`, whose value is `last_fetch`.
    async fn fetch(&self, last_fetch: &mut Option<Instant>) -> Result<Arc<AccessToken>, Error> {
        if let Some(next) =
            last_fetch.and_then(|last| last.checked_add(self.options.min_fetch_interval))
        {
            tokio::time::sleep_until(next.into()).await;
        }
        *last_fetch = Some(now());
        let (fetched, requested_at) = self.fetch_with_retries().await?;
        let token = self.install(fetched, requested_at)?;
        self.fetched.fetch_add(1, Ordering::AcqRel);
        Ok(token)
    }

    /// Asks the source, retrying transient errors after [`CacheOptions::backoff`] delays (or the
    /// server's `Retry-After`, up to the backoff's maximum). Returns the token and when the
    /// request that got it started.
    async fn fetch_with_retries(&self) -> Result<(FetchedToken, Instant), Error> {
        let mut delays = self.options.backoff.delays();
        let mut retries = 0;
        loop {
            let requested_at = now();
            let error = match self.source.fetch().await {
                Ok(fetched) => return Ok((fetched, requested_at)),
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

    /// Makes `fetched` the current token and schedules its refresh.
    fn install(
        &self,
        fetched: FetchedToken,
        requested_at: Instant,
    ) -> Result<Arc<AccessToken>, Error> {
        let now = now();
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
            _ => Arc::new(AccessToken::with_request_time(fetched, requested_at)?),
        };
        let refresh_at = match (token.expires_at(), token.usable_until()) {
            (Some(expires_at), Some(until)) => {
                metrics::gauge!(catalogue::TOKEN_EXPIRY.name)
                    .set(expires_at.saturating_duration_since(now).as_secs_f64());
                let margin = self
                    .options
                    .refresh_margin
                    .min(until.saturating_duration_since(requested_at) / 2);
                until.checked_sub(margin)
            }
            _ => self
                .options
                .recheck
                .and_then(|every| now.checked_add(every)),
        };
        *current = Some(Current {
            token: Arc::clone(&token),
            refresh_at,
        });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use secrecy::SecretString;

    use super::*;
    use crate::auth::FetchedToken;

    /// Counts fetches; each returns `token-<n>` living `lifetime`, after `delay`, or the next
    /// queued error; fetch number `panic_on` panics.
    #[derive(Debug)]
    struct Fake {
        fetches: AtomicUsize,
        lifetime: Option<Duration>,
        delay: Duration,
        errors: Mutex<Vec<Error>>,
        panic_on: Option<usize>,
    }

    impl Fake {
        fn new(lifetime: Option<Duration>) -> Arc<Self> {
            Arc::new(Self::with_delay(lifetime, Duration::from_millis(50)))
        }
        fn with_delay(lifetime: Option<Duration>, delay: Duration) -> Self {
            Self {
                fetches: AtomicUsize::new(0),
                lifetime,
                delay,
                errors: Mutex::new(Vec::new()),
                panic_on: None,
            }
        }
        fn count(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl TokenSource for Fake {
        async fn fetch(&self) -> Result<FetchedToken, Error> {
            let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            assert_ne!(Some(n), self.panic_on, "scripted panic");
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
        assert!(token.usable_until().unwrap() > crate::auth::token::now());
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

    #[tokio::test(start_paused = true)]
    async fn a_token_is_not_sent_within_its_skew_before_expiry() {
        let fake = Fake::new(Some(Duration::from_secs(3)));
        let cache = make_cache(&fake, Duration::from_secs(30));
        let first = cache.token().await.unwrap();
        // A 3 s token is sent until 1 s before it expires.
        assert_eq!(
            first.usable_until().unwrap() + Duration::from_secs(1),
            first.expires_at().unwrap()
        );
        tokio::time::advance(Duration::from_millis(2100)).await;
        // Still valid for most of a second, but a request with it could arrive too late: the
        // caller waits for a new one.
        let next = cache.token().await.unwrap();
        assert_eq!(value(&next), "token-2");
        assert!(next.usable_until().unwrap() > crate::auth::token::now());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_second_tokens_cost_at_most_about_one_fetch_a_second() {
        let fake = Fake::new(Some(Duration::ZERO));
        let cache = make_cache(&fake, Duration::from_secs(30));
        let start = crate::auth::token::now();
        for _ in 0..200 {
            cache.token().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seconds = (crate::auth::token::now() - start).as_secs() as usize;
        assert!(seconds >= 10, "{seconds}");
        assert!(
            fake.count() <= seconds + 1,
            "{} fetches in {seconds} s",
            fake.count()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn callers_that_waited_for_a_fetch_take_its_token_even_if_already_short() {
        // Expired on arrival (a slow provider and a zero lifetime): every waiting caller still
        // takes the one token fetched for them rather than each fetching again.
        let fake = Arc::new(Fake::with_delay(
            Some(Duration::ZERO),
            Duration::from_secs(3),
        ));
        let cache = make_cache(&fake, Duration::from_secs(30));
        let calls = (0..50).map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await.unwrap() })
        });
        let tokens = futures::future::join_all(calls).await;
        assert_eq!(fake.count(), 1);
        assert!(tokens
            .iter()
            .all(|t| value(t.as_ref().unwrap()) == "token-1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_provider_is_asked_at_most_about_once_a_second() {
        let fake = Fake::new(Some(Duration::from_secs(3600)));
        fake.errors
            .lock()
            .unwrap()
            .extend((0..1000).map(|_| Error::TokenRejected {
                status: 401,
                error: "invalid_client".into(),
                description: None,
            }));
        let cache = make_cache(&fake, Duration::from_secs(30));
        let start = crate::auth::token::now();
        while crate::auth::token::now() < start + Duration::from_secs(5) {
            assert!(cache.token().await.is_err());
        }
        assert!(fake.count() <= 6, "{} fetches in 5 s", fake.count());
    }

    #[tokio::test(start_paused = true)]
    async fn a_background_refresh_that_panics_is_started_again() {
        let fake = Arc::new(Fake {
            panic_on: Some(2),
            ..Fake::with_delay(Some(Duration::from_secs(100)), Duration::from_millis(50))
        });
        let cache = make_cache(&fake, Duration::from_secs(60));
        cache.token().await.unwrap();
        tokio::time::advance(Duration::from_secs(50)).await;
        cache.token().await.unwrap(); // due: the refresh starts, and panics
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(fake.count(), 2);
        assert_eq!(value(&cache.token().await.unwrap()), "token-1");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(fake.count(), 3, "the refresh was started again");
        assert_eq!(value(&cache.token().await.unwrap()), "token-3");
    }
}
