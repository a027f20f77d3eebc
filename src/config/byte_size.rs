//! Sizes written the way operators write them: `64MiB`, `512KiB`, `10MB`, or a plain number of
//! bytes.
//!
//! Binary (`KiB`, `MiB`, `GiB`) and decimal (`KB`, `MB`, `GB`) units are both accepted, because
//! both are common and confusing one for the other is only a few percent off; free text such as
//! `64 megabytes` is rejected, so a typo is an error at load time.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A number of bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

/// The text did not follow the `<number><unit>` grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size {0:?}: use a number of bytes or a number and a unit, such as 512KiB, 64MiB, 10MB"
)]
pub struct InvalidByteSize(pub String);

const UNITS: [(&str, u64); 7] = [
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

impl ByteSize {
    /// `bytes` bytes.
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    /// `mib` mebibytes.
    pub const fn mib(mib: u64) -> Self {
        Self(mib << 20)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = InvalidByteSize;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidByteSize(text.to_string());
        let trimmed = text.trim();
        let digits = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = trimmed[..digits].parse().map_err(|_| invalid())?;
        let unit = &trimmed[digits..];
        let factor = match unit {
            "" => 1,
            _ => UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, factor)| *factor)
                .ok_or_else(invalid)?,
        };
        number.checked_mul(factor).map(Self).ok_or_else(invalid)
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the value exactly (binary units first), so `Display`
    /// round-trips: `64MiB`, `1500B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in UNITS {
            if self.0 != 0 && self.0.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.0 / factor);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of bytes or a size such as 64MiB")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom(InvalidByteSize(bytes.to_string())))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": ["integer", "string"],
            "minimum": 0,
            "pattern": "^[0-9]+(B|KB|MB|GB|KiB|MiB|GiB)?$",
            "description": "A number of bytes, or a size such as 512KiB, 64MiB or 10MB.",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_bytes_and_each_unit() {
        let cases = [
            ("0", 0),
            ("1500", 1500),
            ("100B", 100),
            ("2KB", 2_000),
            ("2KiB", 2_048),
            ("64MiB", 64 << 20),
            ("10MB", 10_000_000),
            ("1GiB", 1 << 30),
            ("3GB", 3_000_000_000),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<ByteSize>().unwrap().bytes(), bytes, "{text}");
        }
    }

    #[test]
    fn rejects_free_text_fractions_and_overflow() {
        for text in [
            "",
            "MiB",
            "64 megabytes",
            "1.5MiB",
            "-1",
            "64mib",
            "99999999999999999999",
            "99999999999GiB",
        ] {
            assert!(
                text.parse::<ByteSize>().is_err(),
                "{text:?} should be rejected"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for text in ["64MiB", "1500B", "2KB", "0B", "1GiB", "10MB"] {
            let parsed: ByteSize = text.parse().unwrap();
            assert_eq!(parsed.to_string().parse::<ByteSize>().unwrap(), parsed);
        }
        assert_eq!(ByteSize::mib(64).to_string(), "64MiB");
    }

    #[test]
    fn deserializes_numbers_and_strings() {
        let sizes: Vec<ByteSize> = serde_yaml::from_str("[1024, 4KiB, '10MB']").unwrap();
        assert_eq!(
            sizes,
            [
                ByteSize::new(1024),
                ByteSize::new(4096),
                ByteSize::new(10_000_000)
            ]
        );
        assert!(serde_yaml::from_str::<ByteSize>("-5").is_err());
        assert!(serde_yaml::from_str::<ByteSize>("lots").is_err());
    }
}
