//! An access token, held so that it never reaches a log line, and the rules for how long one is
//! sent.
//!
//! Why rules: the lifetime comes from the network (`expires_in`, a JWT's `exp`) or from a file
//! (`expires_on` in the login token cache), so it can be anything.
//! - **Too long** (`1e19` seconds): taken as [`MAX_LIFETIME`], so that no `Instant` arithmetic can
//!   overflow and panic.
//! - **Expired on arrival**: `exp` is whole seconds of the provider's clock, and a request sent an
//!   instant before expiry reaches the API after it. So a token is sent only until a skew before
//!   its expiry (a quarter of its lifetime, between 1 s and 5 s), and a JWT's own `exp` counts
//!   when it is earlier than `expires_in` says.
//! - **Too short** (`expires_in: 0`): a token is sent for at least [`MIN_USE`] after it was
//!   requested, else every API request would need a token request of its own.
//!
//! Every clamp counts `tapline_token_lifetime_clamped_total{reason}`.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use super::Error;
use crate::telemetry::catalogue;

/// No token is believed to live longer than a year.
pub(crate) const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A token is sent for at least this long after it was requested, whatever it says about itself.
pub(crate) const MIN_USE: Duration = Duration::from_secs(1);

/// The skew before expiry is a quarter of the lifetime, within these bounds: at least a second for
/// the provider's whole-second `exp`, at most five so long tokens are not renewed needlessly early.
const MIN_SKEW: Duration = Duration::from_secs(1);
const MAX_SKEW: Duration = Duration::from_secs(5);

/// How far our clock may be from the provider's (judged by a JWT's `iat`) for its `exp` to be
/// read against our clock; further off, the JWT's own `exp - iat` counts from the request instead.
const CLOCK_TOLERANCE: Duration = Duration::from_secs(5);

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
    usable_until: Option<Instant>,
}

impl AccessToken {
    /// Wraps a token fetched just now, building its header value (marked sensitive).
    pub fn new(fetched: FetchedToken) -> Result<Self, Error> {
        Self::with_request_time(fetched, now())
    }

    /// Wraps a token whose request left at `requested_at`, which its shortest use counts from.
    pub(crate) fn with_request_time(
        fetched: FetchedToken,
        requested_at: Instant,
    ) -> Result<Self, Error> {
        let mut header =
            HeaderValue::from_str(&format!("Bearer {}", fetched.value.expose_secret()))
                .map_err(|_| Error::InvalidToken)?;
        header.set_sensitive(true);
        Ok(Self {
            value: fetched.value,
            header,
            expires_at: fetched.expires_at,
            usable_until: fetched
                .expires_at
                .map(|expires_at| usable_until(requested_at, expires_at)),
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

    /// Until when it is sent: a skew before [`Self::expires_at`], so that it still holds when the
    /// request arrives.
    pub fn usable_until(&self) -> Option<Instant> {
        self.usable_until
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .field("usable_until", &self.usable_until)
            .finish()
    }
}

/// Now, on the monotonic clock tokio keeps: the same as `Instant::now()` in production, and
/// movable with `tokio::time::pause`/`advance` in tests.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// `from + lifetime`, a lifetime beyond [`MAX_LIFETIME`] taken as that (and counted); never
/// panics, whatever the lifetime.
pub(crate) fn expiry(from: Instant, lifetime: Duration) -> Instant {
    let lifetime = if lifetime > MAX_LIFETIME {
        clamped("too_long");
        MAX_LIFETIME
    } else {
        lifetime
    };
    // A year always fits an Instant; should it not, the token counts as expired.
    from.checked_add(lifetime).unwrap_or(from)
}

/// Until when a token requested at `requested_at` that expires at `expires_at` is sent: a skew
/// before expiry, but never less than [`MIN_USE`] after the request.
pub(crate) fn usable_until(requested_at: Instant, expires_at: Instant) -> Instant {
    let lifetime = expires_at.saturating_duration_since(requested_at);
    let skew = (lifetime / 4).clamp(MIN_SKEW, MAX_SKEW);
    let earliest = requested_at + MIN_USE;
    match expires_at.checked_sub(skew) {
        Some(until) if until >= earliest => until,
        _ => {
            clamped("too_short");
            earliest
        }
    }
}

/// The earlier of two expiries, either of which may be unknown.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When a JWT access token expires by its own `exp`, on the monotonic clock; `None` when the token
/// is not a JWT with a numeric `exp`. The payload is decoded without verifying it (the API
/// verifies) and never logged.
///
/// `exp` is read against our wall clock `wall` (taken with `now`), unless the token's `iat` shows
/// that clock to be more than [`CLOCK_TOLERANCE`] off the provider's: then its lifetime `exp - iat`
/// counts from `requested_at`, so a skewed clock neither makes every token look expired nor
/// keeps an expired one.
pub(crate) fn jwt_expiry(
    token: &SecretString,
    requested_at: Instant,
    now: Instant,
    wall: SystemTime,
) -> Option<Instant> {
    let claims = jwt_claims(token.expose_secret())?;
    let exp = claims.get("exp").and_then(epoch_time)?;
    let iat = claims.get("iat").and_then(epoch_time);
    let asked = wall
        .checked_sub(now.saturating_duration_since(requested_at))
        .unwrap_or(wall);
    let (low, high) = (
        asked.checked_sub(CLOCK_TOLERANCE),
        wall.checked_add(CLOCK_TOLERANCE),
    );
    let clock_agrees = iat
        .is_none_or(|iat| low.is_none_or(|low| iat >= low) && high.is_none_or(|high| iat <= high));
    if clock_agrees {
        return Some(match exp.duration_since(wall) {
            Ok(left) => expiry(now, left),
            Err(_) => now, // its own claim says it has expired
        });
    }
    let lifetime = iat.and_then(|iat| exp.duration_since(iat).ok())?;
    tracing::debug!("this machine's clock disagrees with the identity provider's; timing the token from its lifetime");
    Some(expiry(requested_at, lifetime))
}

/// The claims of a JWT, or `None` for anything else.
fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut parts = token.split('.');
    let (_header, payload) = (parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// A NumericDate claim as a time; `None` for a negative, non-finite or absurd value.
fn epoch_time(value: &serde_json::Value) -> Option<SystemTime> {
    let seconds = Duration::try_from_secs_f64(value.as_f64()?).ok()?;
    UNIX_EPOCH.checked_add(seconds)
}

fn clamped(reason: &'static str) {
    metrics::counter!(catalogue::TOKEN_LIFETIME_CLAMPED.name, "reason" => reason).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn jwt(claims: serde_json::Value) -> SecretString {
        let part = |json: &serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());
        SecretString::from(format!(
            "{}.{}.sig",
            part(&serde_json::json!({"alg": "RS256"})),
            part(&claims)
        ))
    }

    fn epoch(at: SystemTime) -> u64 {
        at.duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn huge_lifetimes_are_a_year_and_never_panic() {
        let from = Instant::now();
        for lifetime in [
            Duration::from_secs(9_300_000_000_000_000_000),
            Duration::MAX,
            MAX_LIFETIME + S,
        ] {
            assert_eq!(expiry(from, lifetime), from + MAX_LIFETIME);
        }
        assert_eq!(expiry(from, 60 * S), from + 60 * S);
    }

    #[test]
    fn the_skew_is_a_quarter_of_the_lifetime_between_one_and_five_seconds() {
        let at = Instant::now();
        assert_eq!(usable_until(at, at + 3600 * S), at + 3595 * S);
        assert_eq!(usable_until(at, at + 12 * S), at + 9 * S);
        assert_eq!(usable_until(at, at + 3 * S), at + 2 * S);
        assert_eq!(usable_until(at, at + 2 * S), at + S);
    }

    #[test]
    fn a_token_is_used_for_at_least_a_second() {
        let at = Instant::now();
        assert_eq!(usable_until(at, at), at + MIN_USE);
        assert_eq!(usable_until(at, at + S / 2), at + MIN_USE);
        // Even one that expired before it was asked for (a JWT from a clock far ahead).
        let later = at + 10 * S;
        assert_eq!(usable_until(later, at), later + MIN_USE);
    }

    #[test]
    fn a_jwts_exp_is_read_against_the_wall_clock() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let exp = epoch(wall) + 3;
        let token = jwt(serde_json::json!({"iat": epoch(wall), "exp": exp}));
        let at = jwt_expiry(&token, now, now, wall).unwrap();
        let expected = now
            + (UNIX_EPOCH + Duration::from_secs(exp))
                .duration_since(wall)
                .unwrap();
        assert_eq!(at, expected);
        // Whole seconds: up to a second sooner than "3 s from now".
        assert!(at <= now + 3 * S && at > now + 2 * S);
    }

    #[test]
    fn an_expired_exp_means_now_and_a_skewed_clock_falls_back_to_the_lifetime() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let expired = jwt(serde_json::json!({"exp": epoch(wall) - 10}));
        assert_eq!(jwt_expiry(&expired, now, now, wall), Some(now));
        // Our clock an hour ahead of the provider's: the token lives its 300 s from the request.
        let behind = epoch(wall) - 3600;
        let skewed = jwt(serde_json::json!({"iat": behind, "exp": behind + 300}));
        assert_eq!(jwt_expiry(&skewed, now, now, wall), Some(now + 300 * S));
    }

    #[test]
    fn anything_but_a_jwt_with_a_sane_exp_has_no_jwt_expiry() {
        let now = Instant::now();
        let wall = SystemTime::now();
        for token in [
            SecretString::from("opaque-token"),
            SecretString::from("a.b.c"),
            jwt(serde_json::json!({"sub": "x"})),
            jwt(serde_json::json!({"exp": "soon"})),
            jwt(serde_json::json!({"exp": -5})),
            jwt(serde_json::json!([1, 2])),
        ] {
            assert_eq!(jwt_expiry(&token, now, now, wall), None);
        }
        // An absurd exp is clamped like any lifetime, not a panic.
        let far = jwt(serde_json::json!({"exp": 1e300}));
        assert_eq!(jwt_expiry(&far, now, now, wall), None);
        let big = jwt(serde_json::json!({"exp": 9.0e18}));
        assert_eq!(jwt_expiry(&big, now, now, wall), Some(now + MAX_LIFETIME));
    }

    #[test]
    fn clamps_are_counted() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let at = Instant::now();
            expiry(at, Duration::MAX);
            usable_until(at, at);
            usable_until(at, at + 3600 * S);
        });
        let text = handle.render();
        let name = catalogue::TOKEN_LIFETIME_CLAMPED.name;
        for reason in ["too_long", "too_short"] {
            let sample = format!("{name}{{reason=\"{reason}\"}} 1");
            assert!(text.contains(&sample), "{text}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let token = AccessToken::new(FetchedToken {
            value: SecretString::from("tok-secret"),
            expires_at: Some(Instant::now() + 60 * S),
        })
        .unwrap();
        assert!(!format!("{token:?}").contains("tok-secret"));
    }
}
