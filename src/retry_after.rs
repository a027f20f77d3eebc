//! The server's own answer to "when may I retry?": the `Retry-After` header.
//!
//! RFC 9110 §10.2.3 allows either a number of seconds or an HTTP date. The clock is passed in, so
//! the date form is testable and the caller decides what "now" is.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

/// The wait the response's `Retry-After` header asks for; `None` when there is none or it is not
/// understood. Both the session (API responses) and the token endpoint client use it.
pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers.get(RETRY_AFTER).and_then(|value| parse(value, now))
}

/// The wait a `Retry-After` value asks for, relative to `now`; `None` when the header is not
/// understood. A date in the past means "retry now" (zero).
pub fn parse(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn seconds() {
        let now = SystemTime::now();
        assert_eq!(parse(&header("2"), now), Some(Duration::from_secs(2)));
        assert_eq!(parse(&header(" 0 "), now), Some(Duration::ZERO));
    }

    #[test]
    fn http_date_relative_to_now() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let later = header("Sun, 06 Nov 1994 08:49:40 GMT");
        assert_eq!(parse(&later, now), Some(Duration::from_secs(3)));
        let earlier = header("Sun, 06 Nov 1994 08:49:00 GMT");
        assert_eq!(parse(&earlier, now), Some(Duration::ZERO));
    }

    #[test]
    fn garbage_and_negative_are_ignored() {
        let now = SystemTime::now();
        assert_eq!(parse(&header("soon"), now), None);
        assert_eq!(parse(&header("-5"), now), None);
        assert_eq!(parse(&header("1.5"), now), None);
    }
}
