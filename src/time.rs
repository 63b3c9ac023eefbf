//! Virtual time: integer nanoseconds, never floating point, never the wall clock.
//!
//! [`SimTime`] is an instant since the start of a run; [`SimDuration`] a span.
//! Both are plain `u64` nanoseconds so that arithmetic is exact and identical
//! on every platform. Durations parse from human strings such as `"250us"`,
//! `"5ms"`, `"1.5s"`, `"2m"` without going through a float, so `"0.1s"` is
//! exactly 100 000 000 ns.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant of virtual time, in nanoseconds since the start of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

/// A span of virtual time, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(pub u64);

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// The largest representable instant; used as "never".
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// Nanoseconds since the start of the run.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`SimTime::MAX`] instead of wrapping.
    pub const fn saturating_add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }

    /// The span from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl SimDuration {
    /// No time at all.
    pub const ZERO: SimDuration = SimDuration(0);

    /// A duration of `ns` nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }
    /// A duration of `us` microseconds.
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(us * 1_000)
    }
    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms * 1_000_000)
    }
    /// A duration of `s` seconds.
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(s * 1_000_000_000)
    }
    /// The duration in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// The duration in seconds as a float, for physics (SOC integration);
    /// never used to order events.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// Nanoseconds from a float count of nanoseconds, rounding to nearest and
    /// clamping negatives and NaN to zero. Samplers produce floats; this is the
    /// one place they become integer time.
    pub fn from_nanos_f64(ns: f64) -> Self {
        if ns.is_nan() || ns <= 0.0 {
            SimDuration(0)
        } else if ns >= u64::MAX as f64 {
            SimDuration(u64::MAX)
        } else {
            // Round half away from zero, exactly as `libm::round`, without
            // its bit twiddling and without u64 <-> f64 conversions (which
            // x86-64 emulates with branches): below 2^63 the truncation
            // `i` is exact as a float whenever `ns` has a fraction
            // (ns < 2^53), so `ns - i` is the exact fraction; from 2^53 on
            // `ns` is integral and the fraction is 0. (Pinned against
            // `libm::round` by a test.)
            if ns < 9.0e18 {
                let i = ns as i64;
                SimDuration(i as u64 + u64::from(ns - i as f64 >= 0.5))
            } else {
                SimDuration(ns as u64)
            }
        }
    }
}

impl std::ops::Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, d: SimDuration) -> SimTime {
        self.saturating_add(d)
    }
}

impl std::ops::Add for SimDuration {
    type Output = SimDuration;
    fn add(self, d: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(d.0))
    }
}

impl std::ops::Mul<u64> for SimDuration {
    type Output = SimDuration;
    fn mul(self, k: u64) -> SimDuration {
        SimDuration(self.0.saturating_mul(k))
    }
}

/// Why a duration string did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseDurationError {
    /// The string was empty. Write a number and a unit, e.g. `"5ms"`.
    #[error("empty duration; write a number and a unit, e.g. \"5ms\"")]
    Empty,
    /// A number without a unit.
    #[error("duration {0:?} needs a unit: ns, us, ms, s, m or h (e.g. \"250us\", \"1.5s\")")]
    BadUnit(String),
    /// A unit that is not one of `ns us ms s m h`.
    #[error(
        "duration {text:?} has unit {unit:?}, which is not one of ns, us, ms, s, m (or min), h{}",
        hint.as_ref().map(|h| format!("; write \"{h}\"")).unwrap_or_default()
    )]
    UnknownUnit {
        /// The whole string.
        text: String,
        /// The unit as written.
        unit: String,
        /// The spelling busbar reads, when the unit is a known long form
        /// (`"30 minutes"` → `"30m"`).
        hint: Option<String>,
    },
    /// A negative duration.
    #[error("duration {0:?} is negative; a duration is zero or more")]
    Negative(String),
    /// The number part is not a plain decimal number.
    #[error("duration {0:?} is not a non-negative decimal number followed by a unit")]
    BadNumber(String),
    /// The value has more decimal places than whole nanoseconds allow.
    #[error("duration {0:?} is finer than one nanosecond")]
    TooFine(String),
    /// The value does not fit in 64-bit nanoseconds (about 584 years).
    #[error("duration {0:?} is too long (the limit is about 584 years)")]
    Overflow(String),
}

impl FromStr for SimDuration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ParseDurationError::Empty);
        }
        if t.starts_with('-') {
            return Err(ParseDurationError::Negative(s.to_string()));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .ok_or_else(|| ParseDurationError::BadUnit(s.to_string()))?;
        let (num, unit) = t.split_at(split);
        let unit = unit.trim();
        let unit_ns: u64 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" | "min" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ if num.is_empty() || unit.starts_with(['e', 'E', '+']) => {
                return Err(ParseDurationError::BadNumber(s.to_string()));
            }
            _ => {
                let short = match unit.to_ascii_lowercase().as_str() {
                    "nanosecond" | "nanoseconds" | "nsec" => Some("ns"),
                    "microsecond" | "microseconds" | "usec" => Some("us"),
                    "millisecond" | "milliseconds" | "msec" | "millis" => Some("ms"),
                    "second" | "seconds" | "sec" | "secs" => Some("s"),
                    "minute" | "minutes" | "mins" => Some("m"),
                    "hour" | "hours" | "hr" | "hrs" => Some("h"),
                    _ => None,
                };
                return Err(ParseDurationError::UnknownUnit {
                    text: s.to_string(),
                    unit: unit.to_string(),
                    hint: short.map(|u| format!("{}{u}", num.trim())),
                });
            }
        };
        let num: String = num.chars().filter(|&c| c != '_').collect();
        let (int_part, frac_part) = match num.split_once('.') {
            Some((i, f)) => (i, f),
            None => (num.as_str(), ""),
        };
        if (int_part.is_empty() && frac_part.is_empty())
            || frac_part.contains('.')
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ParseDurationError::BadNumber(s.to_string()));
        }
        let overflow = || ParseDurationError::Overflow(s.to_string());
        let int: u64 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut ns = int.checked_mul(unit_ns).ok_or_else(overflow)?;
        // Exact decimal fraction: frac digits d1 d2 ... contribute unit_ns * 0.d1d2...
        let mut scale = unit_ns;
        let mut frac_ns: u64 = 0;
        for (i, b) in frac_part.bytes().enumerate() {
            let digit = u64::from(b - b'0');
            if !scale.is_multiple_of(10) {
                // Any further non-zero digit is below one nanosecond.
                if frac_part.as_bytes()[i..].iter().any(|&b| b != b'0') {
                    return Err(ParseDurationError::TooFine(s.to_string()));
                }
                break;
            }
            scale /= 10;
            frac_ns += digit * scale;
        }
        ns = ns.checked_add(frac_ns).ok_or_else(overflow)?;
        Ok(SimDuration(ns))
    }
}

impl fmt::Display for SimDuration {
    /// The shortest exact form in the largest unit that divides it:
    /// `5ms`, `1500us`, `2s`. Round-trips through [`FromStr`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let units: [(u64, &str); 6] = [
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
            (1_000, "us"),
            (1, "ns"),
        ];
        if ns == 0 {
            return write!(f, "0s");
        }
        for (u, name) in units {
            if ns.is_multiple_of(u) {
                return write!(f, "{}{}", ns / u, name);
            }
        }
        unreachable!("1 divides every integer")
    }
}

/// A duration written for people, still exact: a decimal number in the
/// largest of `s`, `ms`, `us`, `ns` that is at most the duration, with the
/// trailing zeros dropped (`1.078648076s`, `18.313041ms`, `750ns`).
/// Round-trips through [`FromStr`]. See [`SimDuration::decimal`].
#[derive(Clone, Copy, Debug)]
pub struct Decimal(u64);

impl SimDuration {
    /// This duration as an exact decimal for people ([`Decimal`]), where
    /// `Display` prints the largest unit that divides it (often `ns`).
    pub fn decimal(self) -> Decimal {
        Decimal(self.0)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let (unit, name, digits) = match ns {
            1_000_000_000.. => (1_000_000_000, "s", 9),
            1_000_000.. => (1_000_000, "ms", 6),
            1_000.. => (1_000, "us", 3),
            _ => return write!(f, "{ns}ns"),
        };
        let (whole, frac) = (ns / unit, ns % unit);
        if frac == 0 {
            return write!(f, "{whole}{name}");
        }
        let frac = format!("{frac:0digits$}");
        write!(f, "{whole}.{}{name}", frac.trim_end_matches('0'))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t={}", SimDuration(self.0))
    }
}

impl Serialize for SimDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SimDuration {
    /// A duration string such as `"5ms"`; an integer is rejected so that a
    /// bare `5` (seconds? milliseconds?) can never be misread.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SimDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string with a unit, e.g. \"5ms\" or \"1.5s\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SimDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_nanos_f64_rounds_exactly_like_libm() {
        let mut cases = vec![
            0.0,
            0.5,
            0.49999999999999994,
            1.5,
            2.5,
            4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            9_007_199_254_740_993.0,
            1e19,
            18_446_744_073_709_549_568.0,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Random doubles over many magnitudes, and values near .5.
            let mag = f64::from((x % 64) as u32);
            let v = (x >> 11) as f64 / (1u64 << 53) as f64 * libm::exp2(mag);
            cases.push(v);
            cases.push(libm::floor(v) + 0.5);
        }
        for v in cases {
            let want = libm::round(v) as u64;
            assert_eq!(SimDuration::from_nanos_f64(v).0, want, "{v:e}");
        }
    }

    fn p(s: &str) -> u64 {
        s.parse::<SimDuration>().unwrap().0
    }

    #[test]
    fn decimals_are_exact_readable_and_round_trip() {
        for (ns, text) in [
            (0, "0ns"),
            (750, "750ns"),
            (1_000, "1us"),
            (1_500, "1.5us"),
            (18_313_041, "18.313041ms"),
            (1_078_648_076, "1.078648076s"),
            (120_000_000_000, "120s"),
            (u64::MAX, "18446744073.709551615s"),
        ] {
            let d = SimDuration(ns);
            assert_eq!(d.decimal().to_string(), text);
            assert_eq!(text.parse::<SimDuration>().unwrap(), d, "{text}");
        }
    }

    #[test]
    fn parses_units_exactly() {
        assert_eq!(p("250us"), 250_000);
        assert_eq!(p("5ms"), 5_000_000);
        assert_eq!(p("1.5s"), 1_500_000_000);
        assert_eq!(p("2m"), 120_000_000_000);
        assert_eq!(p("1h"), 3_600_000_000_000);
        assert_eq!(p("0.1s"), 100_000_000);
        assert_eq!(p("7ns"), 7);
        assert_eq!(p(".5ms"), 500_000);
        assert_eq!(p("1_000ms"), 1_000_000_000);
        assert_eq!(p("0s"), 0);
        assert_eq!(p("1.000000000s"), 1_000_000_000);
    }

    #[test]
    fn rejects_bad_strings() {
        use ParseDurationError::*;
        assert_eq!("".parse::<SimDuration>(), Err(Empty));
        assert!(matches!("5".parse::<SimDuration>(), Err(BadUnit(_))));
        assert!(matches!(
            "5 parsecs".parse::<SimDuration>(),
            Err(UnknownUnit { hint: None, .. })
        ));
        assert!(matches!("1.2.3s".parse::<SimDuration>(), Err(BadNumber(_))));
        assert!(matches!("1e3ms".parse::<SimDuration>(), Err(BadNumber(_))));
        assert!(matches!("ms".parse::<SimDuration>(), Err(BadNumber(_))));
        assert!(matches!("1.5ns".parse::<SimDuration>(), Err(TooFine(_))));
        assert!(matches!(
            "99999999999999h".parse::<SimDuration>(),
            Err(Overflow(_))
        ));
    }

    #[test]
    fn a_negative_duration_says_negative_not_unitless() {
        let e = "-5ms".parse::<SimDuration>().unwrap_err();
        assert_eq!(e, ParseDurationError::Negative("-5ms".into()));
        assert!(e.to_string().contains("negative"), "{e}");
    }

    #[test]
    fn a_spelled_out_unit_names_the_unit_and_the_spelling_to_use() {
        let e = "30 minutes".parse::<SimDuration>().unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("\"minutes\"") && msg.contains("write \"30m\""),
            "{msg}"
        );
        let e = "1.5 Seconds".parse::<SimDuration>().unwrap_err();
        assert!(e.to_string().contains("write \"1.5s\""), "{e}");
    }

    #[test]
    fn display_round_trips() {
        for s in ["5ms", "1500us", "2s", "3m", "1h", "7ns", "0s"] {
            let d: SimDuration = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
            assert_eq!(d.to_string().parse::<SimDuration>().unwrap(), d);
        }
    }

    #[test]
    fn float_conversion_clamps() {
        assert_eq!(SimDuration::from_nanos_f64(-3.0), SimDuration(0));
        assert_eq!(SimDuration::from_nanos_f64(f64::NAN), SimDuration(0));
        assert_eq!(SimDuration::from_nanos_f64(2.5), SimDuration(3));
        assert_eq!(SimDuration::from_nanos_f64(1e30), SimDuration(u64::MAX));
    }
}
