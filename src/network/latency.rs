//! Latency distributions: what each parameter means, and the samplers
//! they compile into (on `libm`, so every platform draws the same bits).

use crate::rng::RngStream;
use crate::tagged::tagged_enum;
use crate::time::SimDuration;
use crate::validate::Validator;

tagged_enum! {
    tag = "dist";
    /// A latency distribution. Samples are whole nanoseconds, never negative.
    #[derive(Clone, Debug, PartialEq)]
    #[non_exhaustive]
    pub enum Latency {
        /// Every message takes exactly `value`. Draws nothing.
        Constant {
            /// The delay.
            value: SimDuration,
        },
        /// Uniform between `min` and `max` (inclusive of `min`).
        Uniform {
            /// Smallest delay.
            min: SimDuration,
            /// Largest delay; must be ≥ `min`.
            max: SimDuration,
        },
        /// Normal with `mean` and `std`, truncated at zero: negative draws are
        /// drawn again (up to 64 times, then zero), so the result is a true
        /// truncated normal rather than a spike at zero.
        Normal {
            /// Mean delay.
            mean: SimDuration,
            /// Standard deviation.
            std: SimDuration,
        },
        /// Log-normal with the given `median` and shape `sigma` (the standard
        /// deviation of the log): heavy right tail, typical of WAN and broker
        /// latency.
        Lognormal {
            /// Median delay (`exp(mu)`).
            median: SimDuration,
            /// Shape: standard deviation of `ln(delay)`; ≥ 0.
            sigma: f64,
        },
        /// Exponential with the given `mean`, shifted by `min` (default 0): a
        /// propagation floor plus memoryless queueing.
        Exponential {
            /// Mean of the exponential part.
            mean: SimDuration,
            /// Fixed floor added to every draw.
            #[serde(default)]
            min: SimDuration,
        },
    }
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Constant {
            value: SimDuration::from_millis(1),
        }
    }
}

impl Latency {
    /// Checks the parameters (keys relative to the latency table).
    pub fn validate(&self, v: &mut Validator) {
        match *self {
            Latency::Uniform { min, max } => {
                v.check(min <= max, "max", || {
                    format!("uniform latency needs min <= max (min {min}, max {max})")
                });
            }
            Latency::Lognormal { median, sigma } => {
                v.check(median.0 > 0, "median", || {
                    "lognormal latency needs a median > 0".into()
                });
                v.check(sigma.is_finite() && sigma >= 0.0, "sigma", || {
                    format!("lognormal sigma must be a finite number >= 0, got {sigma}")
                });
            }
            _ => {}
        }
    }

    pub(crate) fn compile(&self) -> LatencySampler {
        match *self {
            Latency::Constant { value } => LatencySampler::Constant(value),
            Latency::Uniform { min, max } => LatencySampler::Uniform {
                min_ns: min.0,
                // Saturating: `max` may be the largest duration there is.
                span: max.0.saturating_sub(min.0).saturating_add(1),
            },
            Latency::Normal { mean, std } => LatencySampler::Normal {
                mean_ns: mean.0 as f64,
                std_ns: std.0 as f64,
            },
            Latency::Lognormal { median, sigma } => LatencySampler::Lognormal {
                mu: libm::log(median.0 as f64),
                sigma,
            },
            Latency::Exponential { mean, min } => LatencySampler::Exponential {
                mean_ns: mean.0 as f64,
                min_ns: min.0 as f64,
            },
        }
    }
}

/// A [`Latency`] with its parameters precomputed for drawing.
#[derive(Clone, Debug)]
pub(crate) enum LatencySampler {
    Constant(SimDuration),
    Uniform { min_ns: u64, span: u64 },
    Normal { mean_ns: f64, std_ns: f64 },
    Lognormal { mu: f64, sigma: f64 },
    Exponential { mean_ns: f64, min_ns: f64 },
}

impl LatencySampler {
    #[inline]
    pub(crate) fn sample(&self, rng: &mut RngStream) -> SimDuration {
        match *self {
            LatencySampler::Constant(d) => d,
            LatencySampler::Uniform { min_ns, span } => SimDuration(min_ns + rng.below(span)),
            LatencySampler::Normal { mean_ns, std_ns } => {
                for _ in 0..64 {
                    let x = rng.normal(mean_ns, std_ns);
                    if x >= 0.0 {
                        return SimDuration::from_nanos_f64(x);
                    }
                }
                SimDuration::ZERO
            }
            LatencySampler::Lognormal { mu, sigma } => {
                SimDuration::from_nanos_f64(rng.lognormal(mu, sigma))
            }
            LatencySampler::Exponential { mean_ns, min_ns } => {
                SimDuration::from_nanos_f64(min_ns + rng.exponential(mean_ns))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_samples_stay_in_their_support() {
        let mut rng = RngStream::new(5, 0, "t");
        let uni = Latency::Uniform {
            min: SimDuration(10),
            max: SimDuration(20),
        }
        .compile();
        let normal = Latency::Normal {
            mean: SimDuration(5),
            std: SimDuration(50),
        }
        .compile();
        let expo = Latency::Exponential {
            mean: SimDuration(100),
            min: SimDuration(1000),
        }
        .compile();
        for _ in 0..10_000 {
            assert!((10..=20).contains(&uni.sample(&mut rng).0));
            let _ = normal.sample(&mut rng); // u64: never negative by construction
            assert!(expo.sample(&mut rng).0 >= 1000);
        }
    }
}
