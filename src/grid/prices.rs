//! The built-in daily price curve the environment publishes in its actions.
//!
//! A three-tier time-of-use tariff, the same every day, in $/MWh:
//!
//! | period          | hours         | price |
//! |-----------------|---------------|-------|
//! | off-peak        | 23:00 – 07:00 | 22    |
//! | mid-peak        | 07:00 – 17:00 | 45    |
//! | on-peak         | 17:00 – 21:00 | 85    |
//! | mid-peak        | 21:00 – 23:00 | 45    |
//!
//! Each tier starts at the first second of its hour (the curve is a step
//! function, as tariffs are). With the default policy thresholds
//! (charge below 30, discharge above 60) batteries charge overnight, shave
//! peaks during the day and discharge through the evening peak.

/// Seconds in a day: the curve repeats with this period.
const DAY_S: f64 = 86_400.0;

/// Off-peak price, $/MWh.
pub const OFF_PEAK_PER_MWH: f64 = 22.0;
/// Mid-peak price, $/MWh.
pub const MID_PEAK_PER_MWH: f64 = 45.0;
/// On-peak price, $/MWh.
pub const ON_PEAK_PER_MWH: f64 = 85.0;

/// The price in force during each hour of the day (index = hour).
pub const HOURLY_PER_MWH: [f64; 24] = {
    let mut table = [MID_PEAK_PER_MWH; 24];
    let mut h = 0;
    while h < 24 {
        table[h] = if h < 7 || h >= 23 {
            OFF_PEAK_PER_MWH
        } else if h >= 17 && h < 21 {
            ON_PEAK_PER_MWH
        } else {
            MID_PEAK_PER_MWH
        };
        h += 1;
    }
    table
};

/// The price, $/MWh, at `t_s` seconds since midnight. Any time is accepted
/// and wrapped into one day (so the caller may pass the start-of-day offset
/// plus the time since the start); a non-finite time gives the mid-peak
/// price.
pub fn price_at(t_s: f64) -> f64 {
    if !t_s.is_finite() {
        return MID_PEAK_PER_MWH;
    }
    let r = libm::fmod(t_s, DAY_S);
    let s = if r < 0.0 { r + DAY_S } else { r };
    let hour = libm::floor(s / 3600.0);
    // `s < DAY_S` except when a tiny negative remainder rounds up to a
    // whole day, which is midnight, hour 0.
    let idx = if hour >= 24.0 { 0 } else { hour as usize };
    HOURLY_PER_MWH[idx]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_by_hour() {
        let at = |h: f64| price_at(h * 3600.0);
        assert_eq!(at(0.0), OFF_PEAK_PER_MWH);
        assert_eq!(at(3.5), OFF_PEAK_PER_MWH);
        assert_eq!(at(6.999), OFF_PEAK_PER_MWH);
        assert_eq!(at(7.0), MID_PEAK_PER_MWH);
        assert_eq!(at(12.0), MID_PEAK_PER_MWH);
        assert_eq!(at(17.0), ON_PEAK_PER_MWH);
        assert_eq!(at(20.99), ON_PEAK_PER_MWH);
        assert_eq!(at(21.0), MID_PEAK_PER_MWH);
        assert_eq!(at(23.0), OFF_PEAK_PER_MWH);
    }

    #[test]
    fn wraps_every_day() {
        for t in [0.0, 1234.5, 50_000.0, 70_000.0] {
            assert_eq!(price_at(t), price_at(t + 3.0 * DAY_S));
            assert_eq!(price_at(t), price_at(t - DAY_S));
        }
        assert_eq!(price_at(-1e-300), OFF_PEAK_PER_MWH);
        assert_eq!(price_at(f64::NAN), MID_PEAK_PER_MWH);
    }

    #[test]
    fn evening_peak_is_the_most_expensive_and_night_the_cheapest() {
        let max = HOURLY_PER_MWH.iter().copied().fold(f64::MIN, f64::max);
        let min = HOURLY_PER_MWH.iter().copied().fold(f64::MAX, f64::min);
        assert_eq!(max, price_at(19.0 * 3600.0));
        assert_eq!(min, price_at(2.0 * 3600.0));
        // Against the default policy thresholds: night charges, evening
        // discharges, day is in the band.
        assert!(min < 30.0 && max > 60.0);
        assert!((30.0..=60.0).contains(&price_at(12.0 * 3600.0)));
    }
}
