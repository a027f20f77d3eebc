//! Durations written the way operators write them: `250ms`, `30s`, `5m`, `1h`, `1d`, or sums such
//! as `1h30m`.
//!
//! A deliberately small grammar: free-form text such as `5 minutes` is rejected, so a typo is an
//! error at load time instead of a surprise at run time.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration parsed from a compact string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(std::time::Duration);

/// The text did not follow the `<number><unit>` grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: use a number and a unit, such as 250ms, 30s, 5m, 1h")]
pub struct InvalidDuration(pub String);

impl HumanDuration {
    /// Wraps a standard duration.
    pub const fn new(inner: std::time::Duration) -> Self {
        Self(inner)
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    /// A duration of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    /// The standard library value.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl From<HumanDuration> for std::time::Duration {
    fn from(value: HumanDuration) -> Self {
        value.0
    }
}

impl FromStr for HumanDuration {
    type Err = InvalidDuration;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidDuration(text.to_string());
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(invalid());
        }
        let mut total = std::time::Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(invalid)?;
            if digits == 0 {
                return Err(invalid());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let millis_per_unit = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(invalid()),
            };
            rest = &rest[unit_len..];
            let millis = number.checked_mul(millis_per_unit).ok_or_else(invalid)?;
            total = total
                .checked_add(std::time::Duration::from_millis(millis))
                .ok_or_else(invalid)?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for HumanDuration {
    /// Prints the largest unit that divides the value exactly, so `Display` round-trips.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.0.as_millis();
        let units = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        for (size, unit) in units {
            if millis != 0 && millis.is_multiple_of(size) {
                return write!(f, "{}{unit}", millis / size);
            }
        }
        write!(f, "{millis}ms")
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "duration",
            "pattern": "^([0-9]+(ms|s|m|h|d))+$",
            "description": "A duration such as 250ms, 30s, 5m, 1h or 1h30m.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit_and_sums() {
        let cases = [
            ("250ms", 250),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("1h30m", 5_400_000),
        ];
        for (text, millis) in cases {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.get().as_millis(), millis, "{text}");
        }
    }

    #[test]
    fn rejects_free_text_and_missing_units() {
        for text in ["", "5 minutes", "30", "s", "1.5s", "-1s", "10x", "1h 30m"] {
            assert!(
                text.parse::<HumanDuration>().is_err(),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["250ms", "30s", "5m", "1h", "2d", "0ms", "90s"] {
            let parsed: HumanDuration = text.parse().unwrap();
            assert_eq!(parsed.to_string().parse::<HumanDuration>().unwrap(), parsed);
        }
        assert_eq!(HumanDuration::from_secs(90).to_string(), "90s");
    }
}
