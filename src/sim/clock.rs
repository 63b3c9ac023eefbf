//! Agent clocks (`[[clock]]`): an agent's own idea of the time, offset
//! from virtual time and drifting from it.
//!
//! An agent with a clock reads its local time from [`Context::now`]
//! (crate::Context::now), sets timers in local time, and sees the stamp a
//! sender's clock put on a message through
//! [`Context::stamp`](crate::Context::stamp); so deadlines and ages are
//! what the agent would compute. The trace, the metrics and the network keep
//! true virtual time.
//!
//! `local(t) = t + offset + round(t · drift_ppm / 10⁶)`, never below 0.
//! With `drift_ppm > 0` the clock runs fast. A timer set for local time `L`
//! fires at the first true time whose local time is at least `L`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::{SimDuration, SimTime};
use crate::validate::Validator;

/// The largest drift accepted, in parts per million (10 %).
pub const MAX_DRIFT_PPM: f64 = 100_000.0;

/// A signed offset, written like a duration with an optional minus sign:
/// `"5ms"`, `"-250us"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockOffset(pub i64);

impl fmt::Display for ClockOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            write!(f, "-{}", SimDuration(self.0.unsigned_abs()))
        } else {
            write!(f, "{}", SimDuration(self.0 as u64))
        }
    }
}

impl Serialize for ClockOffset {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockOffset {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let s = String::deserialize(d)?;
        let (neg, body) = match s.trim().strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.as_str()),
        };
        let d: SimDuration = body.parse().map_err(D::Error::custom)?;
        let ns = i64::try_from(d.0)
            .map_err(|_| D::Error::custom(format!("clock offset {s:?} is too large")))?;
        Ok(ClockOffset(if neg { -ns } else { ns }))
    }
}

/// One `[[clock]]`: the agents `agent` selects (a name, or a pattern where
/// `*` matches any run of characters) get this clock. Later entries win.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSpec {
    /// The agents: a name or pattern.
    pub agent: String,
    /// Local time minus true time at time 0 (may be negative). Default 0.
    #[serde(default)]
    pub offset: ClockOffset,
    /// How fast the clock runs, in parts per million: 50 gains 50 µs per
    /// second. In [-100 000, 100 000]. Default 0.
    #[serde(default)]
    pub drift_ppm: f64,
}

impl ClockSpec {
    /// Checks the parameters (keys relative to the `[[clock]]` table).
    pub fn validate(&self, v: &mut Validator) {
        v.check(
            self.drift_ppm.is_finite() && self.drift_ppm.abs() <= MAX_DRIFT_PPM,
            "drift_ppm",
            || {
                format!(
                    "drift_ppm must be within ±{MAX_DRIFT_PPM}, got {}",
                    self.drift_ppm
                )
            },
        );
    }
}

/// A resolved clock: local time as a function of true time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Clock {
    offset_ns: i64,
    /// Drift as a fraction (ppm / 10⁶).
    rate: f64,
}

impl Clock {
    pub(crate) fn new(spec: &ClockSpec) -> Clock {
        Clock {
            offset_ns: spec.offset.0,
            rate: spec.drift_ppm / 1e6,
        }
    }

    /// The local time at true time `t`.
    pub(crate) fn local(&self, t: SimTime) -> SimTime {
        let drift = SimDuration::from_nanos_f64((t.0 as f64 * self.rate).abs()).0 as i128;
        let drift = if self.rate < 0.0 { -drift } else { drift };
        let l = i128::from(t.0) + i128::from(self.offset_ns) + drift;
        SimTime(l.clamp(0, i128::from(u64::MAX)) as u64)
    }

    /// The first true time at or after `not_before` whose local time is at
    /// least `local`.
    pub(crate) fn true_time(&self, local: SimTime, not_before: SimTime) -> SimTime {
        if self.local(not_before) >= local {
            return not_before;
        }
        // Invert the line, then step to the exact first instant: local() is
        // monotone (|rate| ≤ 0.1), so a few steps of the remainder settle it.
        let guess = (local.0 as f64 - self.offset_ns as f64) / (1.0 + self.rate);
        let mut t = SimTime(SimDuration::from_nanos_f64(guess).0.max(not_before.0));
        while self.local(t) < local {
            let short = local.0 - self.local(t).0;
            t = SimTime(t.0.saturating_add(short.max(1)));
        }
        while t > not_before && self.local(SimTime(t.0 - 1)) >= local {
            t = SimTime(t.0 - 1);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(offset_ns: i64, drift_ppm: f64) -> Clock {
        Clock::new(&ClockSpec {
            agent: "a".into(),
            offset: ClockOffset(offset_ns),
            drift_ppm,
        })
    }

    #[test]
    fn local_time_is_offset_plus_drift() {
        let c = clock(5_000_000, 100.0);
        assert_eq!(c.local(SimTime(0)), SimTime(5_000_000));
        // 1 s at +100 ppm gains 100 us.
        assert_eq!(c.local(SimTime(1_000_000_000)), SimTime(1_005_100_000));
        let c = clock(-5_000_000, -100.0);
        assert_eq!(c.local(SimTime(0)), SimTime(0), "clamped at 0");
        assert_eq!(c.local(SimTime(1_000_000_000)), SimTime(994_900_000));
    }

    #[test]
    fn true_time_is_the_first_instant_the_local_clock_reaches() {
        for c in [
            clock(0, 0.0),
            clock(3_000_001, 37.5),
            clock(-7_000, -99_999.0),
            clock(12, 100_000.0),
        ] {
            for local in [0u64, 1, 999, 1_000_000_007, 86_400_000_000_000] {
                let t = c.true_time(SimTime(local), SimTime(0));
                assert!(c.local(t).0 >= local, "{c:?} {local}");
                if t.0 > 0 {
                    assert!(c.local(SimTime(t.0 - 1)).0 < local, "{c:?} {local}");
                }
            }
        }
        assert_eq!(
            clock(0, 0.0).true_time(SimTime(5), SimTime(9)),
            SimTime(9),
            "never before now"
        );
    }

    #[test]
    fn offsets_read_and_print_with_a_sign() {
        #[derive(Deserialize, Serialize)]
        struct T {
            o: ClockOffset,
        }
        let t: T = toml::from_str("o = \"-250us\"").unwrap();
        assert_eq!(t.o, ClockOffset(-250_000));
        assert_eq!(toml::to_string(&t).unwrap().trim(), "o = \"-250us\"");
        assert!(toml::from_str::<T>("o = \"5 parsecs\"").is_err());
    }
}
