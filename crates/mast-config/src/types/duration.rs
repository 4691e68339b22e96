//! Durations as Istio accepts them: Go's `time.ParseDuration` syntax (`"1.5s"`, `"100ms"`,
//! `"1h30m"`, `"2us"`), which is a superset of protobuf JSON's `"<seconds>s"`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration parsed from Istio YAML (negative values are kept as an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// Parses Go duration syntax: a sequence of `<number><unit>` with units
    /// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; `0` alone is zero.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid duration {s:?}: expected a number with a unit, as in \"1.5s\", \"100ms\" or \"1m\""
            )
        };
        let t = s.trim();
        if t.starts_with('-') {
            return Err(format!("invalid duration {s:?}: must not be negative"));
        }
        let t = t.strip_prefix('+').unwrap_or(t);
        if t == "0" {
            return Ok(Self(std::time::Duration::ZERO));
        }
        if t.is_empty() {
            return Err(bad());
        }
        let mut rest = t;
        let mut total_ns: f64 = 0.0;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            if num_len == 0 {
                return Err(bad());
            }
            let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(bad()),
            };
            total_ns += number * scale;
            rest = &rest[unit_len..];
        }
        if !total_ns.is_finite() || total_ns > 1e19 {
            return Err(format!("invalid duration {s:?}: out of range"));
        }
        // Truncation to whole nanoseconds is intended.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Self(std::time::Duration::from_nanos(
            total_ns.round() as u64
        )))
    }

    /// Builds a duration from a standard one.
    pub fn from_std(d: std::time::Duration) -> Self {
        Self(d)
    }

    /// The standard duration.
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    /// Whether the duration is zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Duration {
    /// Protobuf JSON form: seconds with up to nine fractional digits, then `s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            write!(f, "{secs}s")
        } else {
            let frac = format!("{nanos:09}");
            write!(f, "{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn parses_go_syntax() {
        assert_eq!(
            Duration::parse("1.5s").unwrap().as_std(),
            Std::from_millis(1500)
        );
        assert_eq!(
            Duration::parse("100ms").unwrap().as_std(),
            Std::from_millis(100)
        );
        assert_eq!(
            Duration::parse("1h30m").unwrap().as_std(),
            Std::from_secs(5400)
        );
        assert_eq!(
            Duration::parse("2us").unwrap().as_std(),
            Std::from_micros(2)
        );
        assert_eq!(Duration::parse("0").unwrap().as_std(), Std::ZERO);
        assert_eq!(
            Duration::parse("0.001s").unwrap().as_std(),
            Std::from_millis(1)
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "1", "s", "1x", "-1s", "1.5", "abc", "1s2", "..s"] {
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_as_protobuf_json() {
        assert_eq!(Duration::parse("1500ms").unwrap().to_string(), "1.5s");
        assert_eq!(Duration::parse("2m").unwrap().to_string(), "120s");
    }
}
