//! Latency distributions: what each parameter means, the samplers they
//! compile into (on `libm`, so every platform draws the same bits), and
//! their means and medians in closed form (for routing costs and for
//! explaining a scenario).
//!
//! The samplers of the first five models (constant to exponential) are
//! pinned by the golden digests of the shipped scenarios: they must keep
//! drawing exactly the same numbers in the same order.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::rng::RngStream;
use crate::tagged::tagged_enum;
use crate::time::{ParseDurationError, SimDuration};
use crate::validate::Validator;

/// The probability mass [`Latency::bounds_ns`] leaves out of each tail of
/// an unbounded model.
pub const ADVERSARIAL_TAIL: f64 = 0.001;

/// How links draw their delays: from their latency models (the default), or
/// adversarially, to provoke reorderings (`[simulation] delays`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delays {
    /// Each delay is drawn from the link's latency model.
    #[default]
    Sampled,
    /// Exploration: each delay is either the smallest or the largest delay
    /// of the link's model ([`Latency::bounds_ns`]), picked by a fair coin
    /// from the link's own latency stream. Two messages sent close together
    /// on an `unordered` link then overtake each other as often as the
    /// model allows; on a `fifo` link the wait behind the message before
    /// still applies. Loss, duplication, reordering, bandwidth and faults
    /// are unchanged, and the run is as reproducible from its seed as a
    /// sampled one.
    Adversarial,
}

tagged_enum! {
    tag = "dist";
    /// A latency distribution: the delay a link adds to each message.
    ///
    /// In TOML, an inline table tagged by `dist`, e.g.
    /// `latency = { dist = "lognormal", median = "8ms", sigma = 0.6 }`.
    /// Durations are strings with a unit (`"250us"`, `"1.5s"`).
    ///
    /// What holds for every model:
    /// - A drawn delay is a whole number of nanoseconds: the model's real
    ///   value rounded half away from zero
    ///   ([`SimDuration::from_nanos_f64`]), never negative; values beyond
    ///   `u64::MAX` ns (about 584 years) saturate there.
    /// - [`Latency::mean_ns`] and [`Latency::median_ns`] are those of the
    ///   model's real-valued distribution (the rounding moves them by less
    ///   than a nanosecond).
    /// - The delay is drawn per message. On a `fifo` link (the default) a
    ///   message never overtakes the one sent before it, so its *observed*
    ///   delay can exceed its draw: it includes the wait behind the message
    ///   before. The delay distribution a receiver measures on a `fifo` link
    ///   is therefore shifted right of the model's whenever messages are sent
    ///   closer together than the spread of the delay.
    #[derive(Clone, Debug, PartialEq)]
    #[non_exhaustive]
    pub enum Latency {
        /// Every message takes exactly `value`. Draws nothing.
        Constant {
            /// The delay.
            value: SimDuration,
        },
        /// Uniform over the whole nanoseconds from `min` to `max`, both ends
        /// included (`min + below(max - min + 1)` ns). Mean and median
        /// `(min + max) / 2`.
        Uniform {
            /// Smallest delay (included).
            min: SimDuration,
            /// Largest delay (included); must be ≥ `min`.
            max: SimDuration,
        },
        /// Normal with `mean` and `std`, truncated at zero: a negative draw is
        /// drawn again (up to 64 times, then zero; with `mean` ≥ 0 the chance
        /// of reaching zero that way is below 2⁻⁶⁴), so the result is a true
        /// truncated normal rather than a spike at zero.
        ///
        /// `mean` and `std` are the parameters *before* truncation. The
        /// observed mean is `mean + std·φ(a)/Φ(a)` with `a = mean/std` (φ, Φ
        /// the standard normal density and distribution function): above
        /// `mean`, noticeably once `std` is more than about a third of
        /// `mean` (`mean = 5ms, std = 10ms` gives about 10.1 ms).
        /// [`Latency::mean_ns`] returns that observed mean.
        Normal {
            /// Mean of the normal before truncation.
            mean: SimDuration,
            /// Standard deviation of the normal before truncation (0: every
            /// delay is `mean`).
            std: SimDuration,
        },
        /// Log-normal with the given `median` and shape `sigma` (the standard
        /// deviation of the log): heavy right tail, typical of WAN and broker
        /// latency. Mean `median·exp(sigma²/2)`.
        Lognormal {
            /// Median delay (`exp(mu)`); > 0.
            median: SimDuration,
            /// Shape: standard deviation of `ln(delay)`; ≥ 0.
            sigma: f64,
        },
        /// Exponential with the given `mean`, shifted by `min` (default 0): a
        /// propagation floor plus memoryless queueing. `mean` is the mean of
        /// the exponential part only: the mean delay is `min + mean`, the
        /// median `min + mean·ln 2`.
        Exponential {
            /// Mean of the exponential part (excluding `min`).
            mean: SimDuration,
            /// Fixed floor added to every draw. Default 0.
            #[serde(default)]
            min: SimDuration,
        },
        /// Pareto (type I): `scale·U^(-1/shape)` with `U` uniform in (0, 1].
        /// Every delay is at least `scale`; the tail falls as a power,
        /// `P(delay > x) = (scale/x)^shape`, so rare delays are huge.
        /// Mean `shape·scale/(shape − 1)` when `shape` > 1 and infinite
        /// otherwise ([`Latency::mean_ns`] is then `None`); variance finite
        /// only when `shape` > 2. Median `scale·2^(1/shape)`.
        Pareto {
            /// The smallest delay, `x_m`; > 0.
            scale: SimDuration,
            /// The tail index α; > 0 (smaller: heavier tail).
            shape: f64,
        },
        /// Gamma with `shape` k and `scale` θ, shifted by `min` (default 0):
        /// `min + θ·G` where `G` has density `x^(k−1)·e^(−x)/Γ(k)`. Mean
        /// `min + k·θ`, variance `k·θ²`; `shape` 1 is the exponential, large
        /// `shape` tends to a normal. Drawn by Marsaglia and Tsang's method
        /// (2000); for k < 1 by their boost `G(k+1)·U^(1/k)`.
        Gamma {
            /// Shape k; > 0.
            shape: f64,
            /// Scale θ; > 0.
            scale: SimDuration,
            /// Fixed floor added to every draw. Default 0.
            #[serde(default)]
            min: SimDuration,
        },
        /// Weibull with `shape` k and `scale` λ, shifted by `min` (default
        /// 0): `min + λ·(−ln U)^(1/k)` with `U` uniform in (0, 1], so
        /// `P(delay − min > x) = exp(−(x/λ)^k)`. Mean `min + λ·Γ(1 + 1/k)`,
        /// median `min + λ·(ln 2)^(1/k)`; `shape` 1 is the exponential with
        /// mean λ, `shape` < 1 a heavier tail.
        Weibull {
            /// Shape k; > 0.
            shape: f64,
            /// Scale λ; > 0.
            scale: SimDuration,
            /// Fixed floor added to every draw. Default 0.
            #[serde(default)]
            min: SimDuration,
        },
        /// Measured delays read from a CSV file (see [`EmpiricalSamples`]
        /// for the format): a draw is the inverse of the samples' empirical
        /// distribution function with linear interpolation. With the `n`
        /// samples sorted as `x₀ ≤ … ≤ xₙ₋₁`, a uniform `u` in [0, 1) gives
        /// position `u·(n−1)`, and the delay is interpolated between the two
        /// samples around it. Every delay lies between the smallest and the
        /// largest sample. Its mean is the trapezoid mean
        /// `(Σxᵢ − (x₀ + xₙ₋₁)/2)/(n−1)`, which differs slightly from the
        /// plain average of the samples (the two end samples count half).
        ///
        /// The samples are read by [`Latency::load`] (the scenario loader
        /// calls it); until then the latency is not usable, and validation
        /// says so. In Rust, [`Latency::empirical_samples`] gives the samples
        /// directly.
        Empirical {
            /// The CSV file; a relative path is relative to the directory
            /// given to [`Latency::load`] (the scenario file's directory).
            path: PathBuf,
            /// The header of the column of delays; may be left out when the
            /// file has a single column.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            column: Option<String>,
            /// The samples; `None` until [`Latency::load`] succeeds.
            #[serde(skip)]
            data: Option<EmpiricalSamples>,
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
    /// An [`Empirical`](Latency::Empirical) latency whose samples are given
    /// here rather than read from a file (its `path` is empty, and
    /// [`Latency::load`] leaves it alone). Needs 1 to
    /// [`EmpiricalSamples::MAX_SAMPLES`] samples, in any order.
    pub fn empirical_samples(samples: Vec<SimDuration>) -> Result<Latency, SamplesError> {
        Ok(Latency::Empirical {
            path: PathBuf::new(),
            column: None,
            data: Some(EmpiricalSamples::new(samples)?),
        })
    }

    /// The file this latency reads, as written (relative paths are relative
    /// to the scenario's directory): the `path` of an `empirical` latency.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Latency::Empirical { path, .. } if !path.as_os_str().is_empty() => Some(path),
            _ => None,
        }
    }

    /// Reads the samples of an [`Empirical`](Latency::Empirical) latency
    /// (again, if already read), resolving a relative `path` against
    /// `base_dir`; a problem is reported at `path` (or at `column` when the
    /// column is at fault), with the file and line. Does nothing for the
    /// other models, nor for samples given with
    /// [`Latency::empirical_samples`] (an empty `path`).
    ///
    /// Call it before [`Latency::validate`], which reports an empirical
    /// latency whose samples are not loaded.
    pub fn load(&mut self, base_dir: &Path, v: &mut Validator) {
        let Latency::Empirical { path, column, data } = self else {
            return;
        };
        if path.as_os_str().is_empty() {
            return;
        }
        let full = if path.is_absolute() {
            path.clone()
        } else {
            base_dir.join(&*path)
        };
        match EmpiricalSamples::load(&full, column.as_deref()) {
            Ok(samples) => *data = Some(samples),
            Err(e) => {
                *data = None;
                let key = match e {
                    SamplesError::NoColumn { .. } | SamplesError::WhichColumn { .. } => "column",
                    _ => "path",
                };
                v.fail(key, e.to_string());
            }
        }
    }

    /// Checks the parameters (keys relative to the latency table), reporting
    /// every problem.
    pub fn validate(&self, v: &mut Validator) {
        match self {
            Latency::Constant { .. } | Latency::Normal { .. } | Latency::Exponential { .. } => {}
            Latency::Uniform { min, max } => {
                v.check(min <= max, "max", || {
                    format!("uniform latency needs min <= max (min {min}, max {max})")
                });
            }
            Latency::Lognormal { median, sigma } => {
                v.check(median.0 > 0, "median", || {
                    "lognormal latency needs a median > 0".into()
                });
                v.check(sigma.is_finite() && *sigma >= 0.0, "sigma", || {
                    format!("lognormal sigma must be a finite number >= 0, got {sigma}")
                });
            }
            Latency::Pareto { scale, shape } => {
                v.check(scale.0 > 0, "scale", || {
                    format!("pareto scale (the smallest delay) must be > 0, got {scale}")
                });
                positive_shape(v, "pareto", *shape);
            }
            Latency::Gamma { shape, scale, .. } => {
                positive_shape(v, "gamma", *shape);
                v.check(scale.0 > 0, "scale", || {
                    format!("gamma scale must be > 0, got {scale}")
                });
            }
            Latency::Weibull { shape, scale, .. } => {
                positive_shape(v, "weibull", *shape);
                v.check(scale.0 > 0, "scale", || {
                    format!("weibull scale must be > 0, got {scale}")
                });
            }
            Latency::Empirical { path, column, data } => {
                // A failed load has already said why the samples are
                // missing; do not pile on.
                let told = {
                    let (p, c) = (v.path().key("path"), v.path().key("column"));
                    v.issues().iter().any(|i| i.path == p || i.path == c)
                };
                if let Some(c) = column {
                    v.check(!c.trim().is_empty(), "column", || {
                        "column must name a column of the CSV file, or be left out".into()
                    });
                }
                if data.is_none() {
                    if path.as_os_str().is_empty() {
                        v.fail(
                            "path",
                            "empirical latency needs `path`, a CSV file of delays",
                        );
                    } else if !told {
                        v.fail(
                            "path",
                            format!(
                                "the delays of {} are not loaded (Latency::load reads them)",
                                path.display()
                            ),
                        );
                    }
                }
            }
        }
    }

    /// The mean delay in nanoseconds, in closed form: for `normal` the mean
    /// of the truncated distribution (what is observed, not the `mean`
    /// parameter). `None` when the mean is infinite (`pareto` with
    /// `shape` ≤ 1), too large for an `f64`, or unknown (an `empirical`
    /// latency not loaded).
    pub fn mean_ns(&self) -> Option<f64> {
        let m = match self {
            Latency::Constant { value } => value.0 as f64,
            Latency::Uniform { min, max } => (min.0 as f64 + max.0 as f64) / 2.0,
            Latency::Normal { mean, std } => {
                let (mu, sd) = (mean.0 as f64, std.0 as f64);
                if sd == 0.0 {
                    mu
                } else {
                    let a = mu / sd;
                    mu + sd * std_normal_pdf(a) / std_normal_cdf(a)
                }
            }
            Latency::Lognormal { median, sigma } => {
                median.0 as f64 * libm::exp(sigma * sigma / 2.0)
            }
            Latency::Exponential { mean, min } => min.0 as f64 + mean.0 as f64,
            Latency::Pareto { scale, shape } => {
                if *shape <= 1.0 {
                    return None;
                }
                shape * scale.0 as f64 / (shape - 1.0)
            }
            Latency::Gamma { shape, scale, min } => min.0 as f64 + shape * scale.0 as f64,
            Latency::Weibull { shape, scale, min } => {
                min.0 as f64 + scale.0 as f64 * libm::tgamma(1.0 + 1.0 / shape)
            }
            Latency::Empirical { data, .. } => data.as_ref()?.mean_ns(),
        };
        m.is_finite().then_some(m)
    }

    /// The median delay in nanoseconds (of the truncated distribution for
    /// `normal`; the middle of the range for `uniform`). `NaN` for an
    /// `empirical` latency not loaded.
    pub fn median_ns(&self) -> f64 {
        match self {
            Latency::Constant { value } => value.0 as f64,
            Latency::Uniform { min, max } => (min.0 as f64 + max.0 as f64) / 2.0,
            Latency::Normal { mean, std } => {
                let (mu, sd) = (mean.0 as f64, std.0 as f64);
                if sd == 0.0 {
                    return mu;
                }
                // Half the kept mass lies below the median:
                // Φ((x − μ)/σ) = 1 − Φ(μ/σ)/2, and that z is in [0, 0.68].
                let target = 1.0 - std_normal_cdf(mu / sd) / 2.0;
                mu + sd * bisect(0.0, 1.0, target, std_normal_cdf)
            }
            Latency::Lognormal { median, .. } => median.0 as f64,
            Latency::Exponential { mean, min } => {
                min.0 as f64 + mean.0 as f64 * std::f64::consts::LN_2
            }
            Latency::Pareto { scale, shape } => scale.0 as f64 * libm::pow(2.0, 1.0 / shape),
            Latency::Gamma { shape, scale, min } => {
                let k = *shape;
                if !(k > 0.0 && k.is_finite()) {
                    // Not a gamma (validation refuses it); never a slow
                    // search that cannot converge.
                    return f64::NAN;
                }
                let g = if k > 1e5 {
                    // Wilson–Hilferty: exact to O(1/k²), where the series
                    // below would need ~√k terms per evaluation.
                    let c = 1.0 - 1.0 / (9.0 * k);
                    k * c * c * c
                } else {
                    // P(k, hi) > 1/2 well before k + 10·√k + 10.
                    let hi = k + 10.0 * libm::sqrt(k) + 10.0;
                    bisect(0.0, hi, 0.5, |x| gamma_p(k, x))
                };
                min.0 as f64 + scale.0 as f64 * g
            }
            Latency::Weibull { shape, scale, min } => {
                min.0 as f64 + scale.0 as f64 * libm::pow(std::f64::consts::LN_2, 1.0 / shape)
            }
            Latency::Empirical { data, .. } => {
                data.as_ref().map_or(f64::NAN, |d| d.quantile_ns(0.5))
            }
        }
    }

    /// The delay at probability `p` in [0, 1] of the model's real-valued
    /// distribution function, in nanoseconds: the `x` with
    /// `P(delay ≤ x) = p` (for `normal`, of the distribution truncated at
    /// zero; for `empirical`, of the interpolated samples; for `uniform`,
    /// of the continuous uniform from `min` to `max`). `NaN` for an
    /// `empirical` latency not loaded.
    pub fn quantile_ns(&self, p: f64) -> f64 {
        let p = p.clamp(0.0, 1.0);
        // The standard normal's inverse, by bisection on erfc (exact to
        // the last bit, which closed-form approximations are not).
        let probit = |p: f64| bisect(-40.0, 40.0, p, std_normal_cdf);
        match self {
            Latency::Constant { value } => value.0 as f64,
            Latency::Uniform { min, max } => min.0 as f64 + p * (max.0 as f64 - min.0 as f64),
            Latency::Normal { mean, std } => {
                let (mu, sd) = (mean.0 as f64, std.0 as f64);
                if sd == 0.0 {
                    return mu;
                }
                // The mass below zero is cut: p of the kept mass lies
                // below mu + sd·z where Φ(z) = Φ(−mu/sd) + p·(1 − Φ(−mu/sd)).
                let cut = std_normal_cdf(-mu / sd);
                (mu + sd * probit(cut + p * (1.0 - cut))).max(0.0)
            }
            Latency::Lognormal { median, sigma } => median.0 as f64 * libm::exp(sigma * probit(p)),
            Latency::Exponential { mean, min } => min.0 as f64 - mean.0 as f64 * libm::log1p(-p),
            Latency::Pareto { scale, shape } => scale.0 as f64 * libm::pow(1.0 - p, -1.0 / shape),
            Latency::Gamma { shape, scale, min } => {
                let k = *shape;
                if !(k > 0.0 && k.is_finite()) {
                    return f64::NAN;
                }
                let g = if k > 1e5 {
                    // Wilson–Hilferty, as for the median.
                    let c = 1.0 - 1.0 / (9.0 * k) + probit(p) * libm::sqrt(1.0 / (9.0 * k));
                    k * c * c * c
                } else {
                    // P(k, hi) is within 1e-15 of 1 well before this.
                    let hi = k + 40.0 * libm::sqrt(k) + 80.0;
                    bisect(0.0, hi, p, |x| gamma_p(k, x))
                };
                min.0 as f64 + scale.0 as f64 * g
            }
            Latency::Weibull { shape, scale, min } => {
                min.0 as f64 + scale.0 as f64 * libm::pow(-libm::log1p(-p), 1.0 / shape)
            }
            Latency::Empirical { data, .. } => data.as_ref().map_or(f64::NAN, |d| d.quantile_ns(p)),
        }
    }

    /// The range adversarial delays are picked from
    /// ([`Delays::Adversarial`]), in nanoseconds: the whole support for the
    /// bounded models (`constant`, `uniform`, `empirical`: its smallest and
    /// largest sample), and for the others the quantiles at
    /// [`ADVERSARIAL_TAIL`] and `1 − ADVERSARIAL_TAIL` (an unbounded model
    /// has no largest delay; these are the delays one message in a thousand
    /// is below, or above).
    pub fn bounds_ns(&self) -> (f64, f64) {
        match self {
            Latency::Constant { .. } | Latency::Uniform { .. } | Latency::Empirical { .. } => {
                (self.quantile_ns(0.0), self.quantile_ns(1.0))
            }
            _ => (
                self.quantile_ns(ADVERSARIAL_TAIL),
                self.quantile_ns(1.0 - ADVERSARIAL_TAIL),
            ),
        }
    }

    /// The sampler of [`Delays::Adversarial`]: each draw is one end of
    /// [`Latency::bounds_ns`] or the other, picked by a fair coin from the
    /// link's latency stream.
    pub(crate) fn compile_adversarial(&self) -> LatencySampler {
        let (lo, hi) = self.bounds_ns();
        LatencySampler::Extremes {
            lo: SimDuration::from_nanos_f64(lo),
            hi: SimDuration::from_nanos_f64(hi),
        }
    }

    /// The sampler. Reached only through a validated model (the builder
    /// validates before it builds links), so an `empirical` latency has its
    /// samples.
    pub(crate) fn compile(&self) -> LatencySampler {
        match self {
            Latency::Constant { value } => LatencySampler::Constant(*value),
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
                sigma: *sigma,
            },
            Latency::Exponential { mean, min } => LatencySampler::Exponential {
                mean_ns: mean.0 as f64,
                min_ns: min.0 as f64,
            },
            Latency::Pareto { scale, shape } => LatencySampler::Pareto {
                scale_ns: scale.0 as f64,
                neg_inv_shape: -1.0 / shape,
            },
            Latency::Gamma { shape, scale, min } => {
                // Below shape 1 draw G(k+1) and boost it by U^(1/k).
                let (k, inv_boost) = if *shape < 1.0 {
                    (shape + 1.0, 1.0 / shape)
                } else {
                    (*shape, 0.0)
                };
                let d = k - 1.0 / 3.0;
                LatencySampler::Gamma {
                    d,
                    c: 1.0 / libm::sqrt(9.0 * d),
                    inv_boost,
                    scale_ns: scale.0 as f64,
                    min_ns: min.0 as f64,
                }
            }
            Latency::Weibull { shape, scale, min } => LatencySampler::Weibull {
                inv_shape: 1.0 / shape,
                scale_ns: scale.0 as f64,
                min_ns: min.0 as f64,
            },
            Latency::Empirical { path, data, .. } => {
                LatencySampler::Empirical(data.clone().unwrap_or_else(|| {
                    panic!(
                        "empirical latency {} compiled without its samples; \
                         validation refuses it, so this is a bug",
                        path.display()
                    )
                }))
            }
        }
    }
}

fn positive_shape(v: &mut Validator, model: &str, shape: f64) {
    v.check(shape.is_finite() && shape > 0.0, "shape", || {
        format!("{model} shape must be a finite number > 0, got {shape}")
    });
}

/// A [`Latency`] with its parameters precomputed for drawing.
#[derive(Clone, Debug)]
pub(crate) enum LatencySampler {
    Constant(SimDuration),
    Uniform {
        min_ns: u64,
        span: u64,
    },
    Normal {
        mean_ns: f64,
        std_ns: f64,
    },
    Lognormal {
        mu: f64,
        sigma: f64,
    },
    Exponential {
        mean_ns: f64,
        min_ns: f64,
    },
    Pareto {
        scale_ns: f64,
        neg_inv_shape: f64,
    },
    /// Marsaglia–Tsang for shape `d + 1/3` ≥ 1, `c = 1/√(9d)`; `inv_boost`
    /// is `1/k` when the shape k asked for was below 1, else 0.
    Gamma {
        d: f64,
        c: f64,
        inv_boost: f64,
        scale_ns: f64,
        min_ns: f64,
    },
    Weibull {
        inv_shape: f64,
        scale_ns: f64,
        min_ns: f64,
    },
    Empirical(EmpiricalSamples),
    /// [`Delays::Adversarial`]: `lo` or `hi`, one coin flip per draw.
    Extremes {
        lo: SimDuration,
        hi: SimDuration,
    },
}

impl LatencySampler {
    /// One draw. The cheap models are inlined into the link; the ones that
    /// call `libm` or loop stay out of line so the hot path stays small.
    #[inline(always)]
    pub(crate) fn sample(&self, rng: &mut RngStream) -> SimDuration {
        match *self {
            LatencySampler::Constant(d) => d,
            LatencySampler::Uniform { min_ns, span } => SimDuration(min_ns + rng.below(span)),
            _ => self.sample_slow(rng),
        }
    }

    #[inline(never)]
    fn sample_slow(&self, rng: &mut RngStream) -> SimDuration {
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
            LatencySampler::Pareto {
                scale_ns,
                neg_inv_shape,
            } => SimDuration::from_nanos_f64(
                scale_ns * libm::pow(rng.uniform_open0(), neg_inv_shape),
            ),
            LatencySampler::Gamma {
                d,
                c,
                inv_boost,
                scale_ns,
                min_ns,
            } => {
                let mut g = marsaglia_tsang(rng, d, c);
                if inv_boost > 0.0 {
                    g *= libm::pow(rng.uniform_open0(), inv_boost);
                }
                SimDuration::from_nanos_f64(min_ns + scale_ns * g)
            }
            LatencySampler::Weibull {
                inv_shape,
                scale_ns,
                min_ns,
            } => {
                let e = -libm::log(rng.uniform_open0());
                SimDuration::from_nanos_f64(min_ns + scale_ns * libm::pow(e, inv_shape))
            }
            LatencySampler::Empirical(ref samples) => samples.quantile(rng.uniform()),
            LatencySampler::Extremes { lo, hi } => {
                if rng.below(2) == 0 {
                    lo
                } else {
                    hi
                }
            }
        }
    }
}

/// A standard gamma draw of shape `d + 1/3` ≥ 1 (Marsaglia and Tsang,
/// "A simple method for generating gamma variables", 2000).
fn marsaglia_tsang(rng: &mut RngStream, d: f64, c: f64) -> f64 {
    // Each try is accepted with probability above 0.95, so the cap (there
    // only so that no input can loop forever) is never reached in practice:
    // 0.05^256 is far below anything a run can draw.
    for _ in 0..256 {
        let x = rng.standard_normal();
        let t = 1.0 + c * x;
        if t <= 0.0 {
            continue;
        }
        let v = t * t * t;
        let u = rng.uniform_open0();
        let x2 = x * x;
        if u < 1.0 - 0.0331 * x2 * x2 || libm::log(u) < 0.5 * x2 + d * (1.0 - v + libm::log(v)) {
            return d * v;
        }
    }
    d
}

/// The standard normal density.
fn std_normal_pdf(x: f64) -> f64 {
    libm::exp(-0.5 * x * x) / libm::sqrt(2.0 * std::f64::consts::PI)
}

/// The standard normal distribution function, through `erfc` (accurate in
/// both tails).
fn std_normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// The `x` in `[lo, hi]` where the increasing `f` reaches `target`, by
/// bisection to the last bit (or 200 halvings).
fn bisect(mut lo: f64, mut hi: f64, target: f64, f: impl Fn(f64) -> f64) -> f64 {
    for _ in 0..200 {
        let mid = lo + (hi - lo) / 2.0;
        if mid <= lo || mid >= hi {
            break;
        }
        if f(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo + (hi - lo) / 2.0
}

/// The regularised lower incomplete gamma function `P(a, x)`: the
/// probability that a standard gamma of shape `a` is at most `x`. A series
/// below `x = a + 1`, Lentz's continued fraction for `1 − P` above it.
fn gamma_p(a: f64, x: f64) -> f64 {
    if !(a > 0.0 && a.is_finite()) || x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 0.0;
    }
    if x == f64::INFINITY {
        return 1.0;
    }
    let front = libm::exp(a * libm::log(x) - x - libm::lgamma(a));
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..100_000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term < sum * 1e-16 {
                break;
            }
        }
        (sum * front).min(1.0)
    } else {
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..100_000 {
            let an = -f64::from(i) * (f64::from(i) - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let step = d * c;
            h *= step;
            if (step - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (1.0 - front * h).max(0.0)
    }
}

// ---------------------------------------------------------------------------
// Empirical samples
// ---------------------------------------------------------------------------

/// Measured delays for an [`Empirical`](Latency::Empirical) latency: 1 to
/// [`MAX_SAMPLES`](EmpiricalSamples::MAX_SAMPLES) whole-nanosecond values,
/// kept sorted and shared (a clone costs a reference count).
///
/// # The CSV format
///
/// ```text
/// # uplink one-way delays, LTE, 2024-05-02
/// time_s,delay_ms
/// 0.0,31.2
/// 1.0,28.75
/// ```
///
/// - The first line that is not blank and not a `#` comment is the header;
///   blank lines and lines starting with `#` are skipped everywhere, and
///   fields are trimmed. Every row has as many fields as the header.
/// - The delay column is the one named by `column`, or, when `column` is
///   left out, the only column of the file.
/// - Its header ends with its unit: `_ns`, `_us`, `_ms` or `_s` (`delay_ms`,
///   `owd_us`). Every value in it is in that unit.
/// - A value is a non-negative decimal number written without sign or
///   exponent (`12`, `12.5`, `.5`), converted exactly (no floating point) and
///   not finer than one nanosecond: `12.5` in `delay_ms` is 12 500 000 ns,
///   `0.1` in `delay_ns` is refused.
/// - Rows may come in any order; other columns are ignored.
///
/// Anything else is refused with an error naming the file and the line.
#[derive(Clone, PartialEq, Eq)]
pub struct EmpiricalSamples {
    sorted: Arc<[SimDuration]>,
}

impl fmt::Debug for EmpiricalSamples {
    // Not the samples themselves: there may be millions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmpiricalSamples")
            .field("len", &self.sorted.len())
            .field("min", &self.sorted[0])
            .field("max", &self.sorted[self.sorted.len() - 1])
            .finish()
    }
}

/// The units a column header may end with, and their nanoseconds.
const UNIT_SUFFIXES: [(&str, &str); 4] = [("_ns", "ns"), ("_us", "us"), ("_ms", "ms"), ("_s", "s")];

impl EmpiricalSamples {
    /// The most samples kept (ten million: 80 MB in memory).
    pub const MAX_SAMPLES: usize = 10_000_000;

    /// Samples given directly, in any order: 1 to
    /// [`MAX_SAMPLES`](EmpiricalSamples::MAX_SAMPLES) of them.
    pub fn new(mut samples: Vec<SimDuration>) -> Result<EmpiricalSamples, SamplesError> {
        if samples.is_empty() {
            return Err(SamplesError::NoSamples);
        }
        if samples.len() > Self::MAX_SAMPLES {
            return Err(SamplesError::TooManySamples {
                count: samples.len(),
            });
        }
        samples.sort_unstable();
        Ok(EmpiricalSamples {
            sorted: samples.into(),
        })
    }

    /// Reads the samples of the CSV file at `path` (see the type's docs for
    /// the format), through [`crate::files`] with the profile bound
    /// ([`MAX_PROFILE_BYTES`](crate::files::MAX_PROFILE_BYTES)).
    pub fn load(path: &Path, column: Option<&str>) -> Result<EmpiricalSamples, SamplesError> {
        let text = crate::files::read_text(path, "delay sample", crate::files::MAX_PROFILE_BYTES)
            .map_err(SamplesError::File)?;
        EmpiricalSamples::parse_csv(&text, column, path)
    }

    /// Parses samples in the CSV format; `path` only names the source in
    /// errors.
    pub fn parse_csv(
        text: &str,
        column: Option<&str>,
        path: &Path,
    ) -> Result<EmpiricalSamples, SamplesError> {
        let at = || path.to_path_buf();
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        // The reader's own line numbers miss blank lines, and its
        // positions are where it began looking for a record (before the
        // blank and comment lines it skipped), so count lines here.
        let line_at =
            |pos: Option<&csv::Position>| Lines::default().of(text, pos.map_or(0, |p| p.byte()));
        let malformed = |e: csv::Error| SamplesError::Malformed {
            path: at(),
            line: line_at(e.position()),
            message: e.to_string(),
        };
        let headers = rdr.headers().map_err(malformed)?.clone();
        if headers.is_empty() || headers.iter().all(str::is_empty) {
            return Err(SamplesError::Empty { path: at() });
        }
        // Comments and blank lines may come before the header.
        let header_line = line_at(headers.position());
        let idx = match column {
            Some(c) => {
                headers
                    .iter()
                    .position(|h| h == c)
                    .ok_or_else(|| SamplesError::NoColumn {
                        path: at(),
                        line: header_line,
                        column: c.to_string(),
                        available: headers.iter().collect::<Vec<_>>().join(", "),
                    })?
            }
            None if headers.len() == 1 => 0,
            None => {
                return Err(SamplesError::WhichColumn {
                    path: at(),
                    line: header_line,
                    available: headers.iter().collect::<Vec<_>>().join(", "),
                });
            }
        };
        let name = &headers[idx];
        let Some(&(_, unit)) = UNIT_SUFFIXES.iter().find(|(s, _)| name.ends_with(s)) else {
            return Err(SamplesError::NoUnit {
                path: at(),
                line: header_line,
                column: name.to_string(),
            });
        };
        let mut samples = Vec::new();
        let mut lines = Lines::default();
        for record in rdr.records() {
            let record = record.map_err(malformed)?;
            let line = lines.of(text, record.position().map_or(0, |p| p.byte()));
            if samples.len() == Self::MAX_SAMPLES {
                return Err(SamplesError::TooMany { path: at(), line });
            }
            // The reader refuses rows of another length, so the cell exists.
            let text = record.get(idx).unwrap_or("");
            let bad = |reason: &str| SamplesError::BadValue {
                path: at(),
                line,
                column: name.to_string(),
                value: text.to_string(),
                reason: reason.to_string(),
            };
            let decimal = text.bytes().any(|b| b.is_ascii_digit())
                && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if !decimal {
                return Err(bad(&format!(
                    "not a non-negative decimal number of {unit} (no sign, no exponent)"
                )));
            }
            let d = format!("{text}{unit}")
                .parse::<SimDuration>()
                .map_err(|e| {
                    bad(match e {
                        ParseDurationError::TooFine(_) => "finer than one nanosecond",
                        ParseDurationError::Overflow(_) => "longer than about 584 years",
                        _ => "not a non-negative decimal number",
                    })
                })?;
            samples.push(d);
        }
        if samples.is_empty() {
            return Err(SamplesError::Empty { path: at() });
        }
        samples.sort_unstable();
        Ok(EmpiricalSamples {
            sorted: samples.into(),
        })
    }

    /// The samples, smallest first.
    pub fn sorted(&self) -> &[SimDuration] {
        &self.sorted
    }

    /// How many samples there are (at least 1).
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Always false: there is at least one sample.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The delay at `u` in [0, 1] of the interpolated inverse distribution
    /// function, rounded to whole nanoseconds: position `u·(n−1)` in the
    /// sorted samples, interpolated linearly between its neighbours.
    pub fn quantile(&self, u: f64) -> SimDuration {
        let (a, b, frac) = self.segment(u);
        // b ≥ a: the samples are sorted.
        SimDuration(a) + SimDuration::from_nanos_f64((b - a) as f64 * frac)
    }

    /// [`EmpiricalSamples::quantile`] before rounding.
    fn quantile_ns(&self, u: f64) -> f64 {
        let (a, b, frac) = self.segment(u);
        a as f64 + (b - a) as f64 * frac
    }

    /// The two samples around position `u·(n−1)` and the fraction between.
    fn segment(&self, u: f64) -> (u64, u64, f64) {
        let x = &self.sorted;
        let last = x.len() - 1;
        let pos = u.clamp(0.0, 1.0) * last as f64;
        let i = (pos as usize).min(last);
        if i == last {
            return (x[last].0, x[last].0, 0.0);
        }
        (x[i].0, x[i + 1].0, pos - i as f64)
    }

    /// The mean of the interpolated distribution: the trapezoid mean
    /// `(Σxᵢ − (x₀ + xₙ₋₁)/2)/(n−1)`, or the sample itself when there is one.
    pub fn mean_ns(&self) -> f64 {
        let x = &self.sorted;
        let n = x.len();
        if n == 1 {
            return x[0].0 as f64;
        }
        // Exact sum: 10⁷ samples of up to 2⁶⁴ fit in u128.
        let sum: u128 = x.iter().map(|d| u128::from(d.0)).sum();
        let ends = (x[0].0 as f64 + x[n - 1].0 as f64) / 2.0;
        (sum as f64 - ends) / (n - 1) as f64
    }
}

/// Line numbers of CSV records from the reader's byte positions, counted
/// incrementally (positions only grow).
#[derive(Default)]
struct Lines {
    /// Bytes looked at so far, and the line number at that byte.
    counted: usize,
    line: u64,
}

impl Lines {
    /// The line of the record the reader found from byte `from`: the first
    /// line there that is neither blank nor a `#` comment (the ones the
    /// reader skips).
    fn of(&mut self, text: &str, from: u64) -> u64 {
        let b = text.as_bytes();
        let mut i = usize::try_from(from).unwrap_or(usize::MAX).min(b.len());
        while i < b.len() && matches!(b[i], b'\n' | b'\r' | b'#') {
            if b[i] == b'#' {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| i + n);
            } else {
                i += 1;
            }
        }
        let start = self.counted.min(i);
        self.line += b[start..i].iter().filter(|&&c| c == b'\n').count() as u64;
        self.counted = i;
        self.line + 1
    }
}

/// Why empirical delay samples could not be read or made. Every variant
/// about a file names it, and the line where it applies (1-based, the
/// header counts).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamplesError {
    /// The file could not be opened or read (missing, not a regular file,
    /// too large). Check the path: a relative one is relative to the
    /// scenario file.
    #[error("{}: cannot read the delay samples: {}", .0.path().display(), .0.detail())]
    File(crate::files::FileError),
    /// Not well-formed CSV (a row with another number of fields than the
    /// header, text that is not UTF-8). Fix the line.
    #[error("{}:{line}: malformed CSV: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// What the CSV reader reported.
        message: String,
    },
    /// No header, or no data row.
    #[error("{}: no delay samples; the file needs a header such as `delay_ms` and at least one row", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// `column` names no column of the header.
    #[error("{}:{line}: no column `{column}`; the header has: {available}", path.display())]
    NoColumn {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: u64,
        /// The column asked for.
        column: String,
        /// The header's columns, comma-separated.
        available: String,
    },
    /// `column` was left out but the file has several columns.
    #[error("{}:{line}: the file has several columns ({available}); say which holds the delays with `column`", path.display())]
    WhichColumn {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: u64,
        /// The header's columns, comma-separated.
        available: String,
    },
    /// The delay column's header does not end with a unit.
    #[error("{}:{line}: column `{column}` does not say its unit; end its name with _ns, _us, _ms or _s (e.g. `delay_ms`)", path.display())]
    NoUnit {
        /// The file.
        path: PathBuf,
        /// The header's line.
        line: u64,
        /// The column's header.
        column: String,
    },
    /// A value is not a delay in the column's unit.
    #[error("{}:{line}: column `{column}`: `{value}` is {reason}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
        /// The column's header.
        column: String,
        /// The cell's text.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More rows than [`EmpiricalSamples::MAX_SAMPLES`].
    #[error("{}:{line}: more than {} delay samples; keep a subsample", path.display(), EmpiricalSamples::MAX_SAMPLES)]
    TooMany {
        /// The file.
        path: PathBuf,
        /// The first line over the bound.
        line: u64,
    },
    /// [`EmpiricalSamples::new`] was given no sample.
    #[error("an empirical latency needs at least one sample")]
    NoSamples,
    /// [`EmpiricalSamples::new`] was given more than
    /// [`EmpiricalSamples::MAX_SAMPLES`] samples.
    #[error(
        "{count} delay samples, more than the {} an empirical latency keeps",
        EmpiricalSamples::MAX_SAMPLES
    )]
    TooManySamples {
        /// How many were given.
        count: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> SimDuration {
        SimDuration::from_millis(x)
    }

    /// The model's distribution function before rounding: the test's
    /// reference, written from the textbook forms independently of the
    /// samplers.
    fn cdf(l: &Latency, x: f64) -> f64 {
        let step = |v: f64| if x >= v { 1.0 } else { 0.0 };
        match l {
            Latency::Constant { value } => step(value.0 as f64),
            Latency::Uniform { min, max } => {
                let n = (max.0 - min.0 + 1) as f64;
                ((libm::floor(x) - min.0 as f64 + 1.0) / n).clamp(0.0, 1.0)
            }
            Latency::Normal { mean, std } => {
                let (mu, sd) = (mean.0 as f64, std.0 as f64);
                if x < 0.0 {
                    return 0.0;
                }
                let lo = std_normal_cdf(-mu / sd);
                (std_normal_cdf((x - mu) / sd) - lo) / (1.0 - lo)
            }
            Latency::Lognormal { median, sigma } => {
                if x <= 0.0 {
                    return 0.0;
                }
                std_normal_cdf((libm::log(x) - libm::log(median.0 as f64)) / sigma)
            }
            Latency::Exponential { mean, min } => {
                let y = x - min.0 as f64;
                if y < 0.0 {
                    0.0
                } else {
                    1.0 - libm::exp(-y / mean.0 as f64)
                }
            }
            Latency::Pareto { scale, shape } => {
                if x < scale.0 as f64 {
                    0.0
                } else {
                    1.0 - libm::pow(scale.0 as f64 / x, *shape)
                }
            }
            Latency::Gamma { shape, scale, min } => {
                gamma_p(*shape, (x - min.0 as f64) / scale.0 as f64)
            }
            Latency::Weibull { shape, scale, min } => {
                let y = x - min.0 as f64;
                if y < 0.0 {
                    0.0
                } else {
                    1.0 - libm::exp(-libm::pow(y / scale.0 as f64, *shape))
                }
            }
            Latency::Empirical { data, .. } => {
                let s = data.as_ref().unwrap().sorted();
                let v = |i: usize| s[i].0 as f64;
                let last = s.len() - 1;
                if x < v(0) {
                    return 0.0;
                }
                if x >= v(last) {
                    return 1.0;
                }
                // The last sample at or below x; the next is above it.
                let i = s.partition_point(|d| d.0 as f64 <= x) - 1;
                (i as f64 + (x - v(i)) / (v(i + 1) - v(i))) / last as f64
            }
        }
    }

    /// The model's variance in ns², in closed form (infinite for a pareto
    /// with shape ≤ 2).
    fn variance(l: &Latency) -> f64 {
        match l {
            Latency::Constant { .. } => 0.0,
            Latency::Uniform { min, max } => {
                let n = (max.0 - min.0 + 1) as f64;
                (n * n - 1.0) / 12.0
            }
            Latency::Normal { mean, std } => {
                let (mu, sd) = (mean.0 as f64, std.0 as f64);
                let a = mu / sd;
                let lambda = std_normal_pdf(a) / std_normal_cdf(a);
                sd * sd * (1.0 - a * lambda - lambda * lambda)
            }
            Latency::Lognormal { median, sigma } => {
                let m = median.0 as f64;
                let s2 = sigma * sigma;
                m * m * libm::exp(s2) * (libm::exp(s2) - 1.0)
            }
            Latency::Exponential { mean, .. } => (mean.0 as f64).powi(2),
            Latency::Pareto { scale, shape } => {
                if *shape <= 2.0 {
                    return f64::INFINITY;
                }
                let (xm, a) = (scale.0 as f64, *shape);
                xm * xm * a / ((a - 1.0) * (a - 1.0) * (a - 2.0))
            }
            Latency::Gamma { shape, scale, .. } => shape * (scale.0 as f64).powi(2),
            Latency::Weibull { shape, scale, .. } => {
                let g1 = libm::tgamma(1.0 + 1.0 / shape);
                let g2 = libm::tgamma(1.0 + 2.0 / shape);
                (scale.0 as f64).powi(2) * (g2 - g1 * g1)
            }
            Latency::Empirical { data, .. } => {
                let s: Vec<f64> = data
                    .as_ref()
                    .unwrap()
                    .sorted()
                    .iter()
                    .map(|d| d.0 as f64)
                    .collect();
                let n = s.len() - 1;
                // E[X²] over the linear segments: (a² + ab + b²)/3 each.
                let m2 = s
                    .windows(2)
                    .map(|w| (w[0] * w[0] + w[0] * w[1] + w[1] * w[1]) / 3.0)
                    .sum::<f64>()
                    / n as f64;
                let m = l.mean_ns().unwrap();
                m2 - m * m
            }
        }
    }

    /// Draws `n` delays on a fixed seed, sorted.
    fn draws(l: &Latency, n: usize) -> Vec<u64> {
        let sampler = l.compile();
        let mut rng = RngStream::new(2024, 0, "latency-test");
        let mut x: Vec<u64> = (0..n).map(|_| sampler.sample(&mut rng).0).collect();
        x.sort_unstable();
        x
    }

    /// Draws this many per check: 100k draws take well under a second in a
    /// debug build, and give a DKW band of ±0.0085 and a mean within
    /// 5 standard errors = 1.6 % of a standard deviation.
    const N: usize = 100_000;

    /// The sample mean within 5 standard errors of the closed-form mean (plus
    /// the half nanosecond rounding can move it), and the empirical
    /// distribution function within the Dvoretzky–Kiefer–Wolfowitz band of
    /// the model's everywhere (false alarm probability 1e-6).
    ///
    /// Draws are whole nanoseconds, the model rounded half away from zero, so
    /// P(draw ≤ k) = F(k + 1/2) at every integer k; both functions step only
    /// at integers, so checking at each distinct draw `k` and just before
    /// the next one (`k' − 1`) checks the supremum.
    fn check(l: &Latency, moments: bool) {
        let x = draws(l, N);
        let n = N as f64;
        if moments {
            let mean = l.mean_ns().expect("finite mean");
            let var = variance(l);
            assert!(var.is_finite(), "{l:?}");
            let got = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let tol = 5.0 * (var / n).sqrt() + 0.5;
            assert!(
                (got - mean).abs() <= tol,
                "{l:?}: mean {got} vs {mean} (± {tol})"
            );
        }
        let alpha: f64 = 1e-6;
        let eps = (libm::log(2.0 / alpha) / (2.0 * n)).sqrt();
        let mut worst: (f64, f64) = (0.0, 0.0);
        let mut see = |k: f64, f_n: f64| {
            let d = (f_n - cdf(l, k + 0.5)).abs();
            if d > worst.0 {
                worst = (d, k);
            }
        };
        see(x[0] as f64 - 1.0, 0.0);
        let mut i = 0;
        while i < x.len() {
            let k = x[i];
            let j = x.partition_point(|&v| v <= k);
            let f_n = j as f64 / n;
            see(k as f64, f_n);
            if j < x.len() && x[j] > k + 1 {
                see(x[j] as f64 - 1.0, f_n);
            }
            i = j;
        }
        assert!(
            worst.0 <= eps,
            "{l:?}: sup |F_n - F| = {} at {} ns > {eps}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn quantiles_invert_the_distribution_function() {
        for (l, _) in models() {
            if matches!(l, Latency::Constant { .. } | Latency::Uniform { .. }) {
                continue; // steps: no inverse to check against
            }
            for p in [ADVERSARIAL_TAIL, 0.1, 0.5, 0.9, 1.0 - ADVERSARIAL_TAIL] {
                let x = l.quantile_ns(p);
                let back = cdf(&l, x);
                assert!((back - p).abs() < 1e-9, "{l:?}: F(q({p})) = {back}");
            }
            let m = l.median_ns();
            let q = l.quantile_ns(0.5);
            assert!(
                (q - m).abs() <= 1e-6 * m.max(1.0),
                "{l:?}: {q} vs median {m}"
            );
        }
        let u = Latency::Uniform {
            min: ms(1),
            max: ms(50),
        };
        assert_eq!(u.bounds_ns(), (1e6, 50e6));
        let c = Latency::Constant { value: ms(3) };
        assert_eq!(c.bounds_ns(), (3e6, 3e6));
    }

    #[test]
    fn adversarial_draws_are_the_two_ends_half_and_half() {
        let l = Latency::Lognormal {
            median: ms(8),
            sigma: 0.6,
        };
        let (lo, hi) = l.bounds_ns();
        // median·exp(∓σ·3.0902): the 0.1% and 99.9% quantiles.
        let z = 3.090_232_306_167_813;
        assert!((lo - 8e6 * libm::exp(-0.6 * z)).abs() < 1.0, "{lo}");
        assert!((hi - 8e6 * libm::exp(0.6 * z)).abs() < 1.0, "{hi}");
        let s = l.compile_adversarial();
        let mut rng = RngStream::new(1, 0, "t");
        let (mut n_lo, mut n_hi) = (0u32, 0u32);
        for _ in 0..10_000 {
            let d = s.sample(&mut rng);
            if d == SimDuration::from_nanos_f64(lo) {
                n_lo += 1;
            } else {
                assert_eq!(d, SimDuration::from_nanos_f64(hi));
                n_hi += 1;
            }
        }
        // A fair coin: 5000 ± 4.5 standard deviations.
        assert!(n_lo.abs_diff(5000) < 225 && n_lo + n_hi == 10_000, "{n_lo}");
    }

    fn models() -> Vec<(Latency, bool)> {
        vec![
            (Latency::Constant { value: ms(3) }, true),
            (
                Latency::Uniform {
                    min: ms(1),
                    max: ms(50),
                },
                true,
            ),
            (
                Latency::Uniform {
                    min: SimDuration(10),
                    max: SimDuration(13),
                },
                true,
            ),
            (
                Latency::Normal {
                    mean: ms(20),
                    std: ms(3),
                },
                true,
            ),
            // Heavily truncated: the observed mean is far above `mean`.
            (
                Latency::Normal {
                    mean: ms(5),
                    std: ms(10),
                },
                true,
            ),
            (
                Latency::Lognormal {
                    median: ms(8),
                    sigma: 0.6,
                },
                true,
            ),
            (
                Latency::Exponential {
                    mean: ms(4),
                    min: ms(2),
                },
                true,
            ),
            (
                Latency::Pareto {
                    scale: ms(2),
                    shape: 3.5,
                },
                true,
            ),
            // Heavy tails: infinite variance and infinite mean; quantiles only.
            (
                Latency::Pareto {
                    scale: ms(2),
                    shape: 1.5,
                },
                false,
            ),
            (
                Latency::Pareto {
                    scale: ms(2),
                    shape: 0.8,
                },
                false,
            ),
            (
                Latency::Gamma {
                    shape: 2.5,
                    scale: ms(3),
                    min: ms(1),
                },
                true,
            ),
            (
                Latency::Gamma {
                    shape: 0.4,
                    scale: ms(10),
                    min: SimDuration::ZERO,
                },
                true,
            ),
            (
                Latency::Gamma {
                    shape: 40.0,
                    scale: ms(1),
                    min: SimDuration::ZERO,
                },
                true,
            ),
            (
                Latency::Weibull {
                    shape: 1.7,
                    scale: ms(6),
                    min: ms(1),
                },
                true,
            ),
            (
                Latency::Weibull {
                    shape: 0.6,
                    scale: ms(6),
                    min: SimDuration::ZERO,
                },
                true,
            ),
        ]
    }

    /// Checks the models of one family (a test each, so each stays under a
    /// second in a debug build).
    fn check_family(family: fn(&Latency) -> bool) {
        let mut seen = 0;
        for (l, moments) in models().into_iter().filter(|(l, _)| family(l)) {
            let mut v = Validator::new();
            l.validate(&mut v);
            assert!(v.is_ok(), "{l:?}: {:?}", v.issues());
            check(&l, moments);
            seen += 1;
        }
        assert!(seen > 0);
    }

    #[test]
    fn constant_and_uniform_match_their_closed_forms() {
        check_family(|l| matches!(l, Latency::Constant { .. } | Latency::Uniform { .. }));
    }

    #[test]
    fn truncated_normal_matches_its_closed_form() {
        check_family(|l| matches!(l, Latency::Normal { .. }));
    }

    #[test]
    fn lognormal_and_exponential_match_their_closed_forms() {
        check_family(|l| matches!(l, Latency::Lognormal { .. } | Latency::Exponential { .. }));
    }

    #[test]
    fn pareto_matches_its_closed_form_even_with_a_heavy_tail() {
        check_family(|l| matches!(l, Latency::Pareto { .. }));
    }

    #[test]
    fn gamma_matches_its_closed_form_from_shape_one() {
        check_family(|l| matches!(l, Latency::Gamma { shape, .. } if *shape >= 1.0));
    }

    #[test]
    fn gamma_matches_its_closed_form_below_shape_one() {
        check_family(|l| matches!(l, Latency::Gamma { shape, .. } if *shape < 1.0));
    }

    #[test]
    fn weibull_matches_its_closed_form() {
        check_family(|l| matches!(l, Latency::Weibull { .. }));
    }

    #[test]
    fn empirical_matches_its_closed_form_mean_and_distribution() {
        // An irregular set with repeats, in no order.
        let mut rng = RngStream::new(9, 0, "samples");
        let mut samples: Vec<SimDuration> = (0..300)
            .map(|_| SimDuration(1_000_000 + rng.below(40_000_000)))
            .collect();
        samples.extend([ms(7), ms(7), ms(7), ms(90)]);
        let l = Latency::empirical_samples(samples).unwrap();
        check(&l, true);
    }

    #[test]
    fn gamma_medians_of_extreme_shapes_are_quick_and_sound() {
        let g = |shape: f64| Latency::Gamma {
            shape,
            scale: SimDuration(1),
            min: SimDuration::ZERO,
        };
        // Shapes validation refuses: NaN at once (a fuzzed scenario with
        // `shape = -nan` once took 20 s to be refused).
        for bad in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            assert!(g(bad).median_ns().is_nan(), "{bad}");
        }
        // Either side of the switch to Wilson–Hilferty the medians agree
        // to far better than a nanosecond's worth at this scale.
        let below = g(1e5 * (1.0 - 1e-12)).median_ns();
        let above = g(1e5 * (1.0 + 1e-12)).median_ns();
        assert!((below - above).abs() < 1e-3, "{below} vs {above}");
        // Median ≈ k − 1/3 for large k.
        let k = 1e12;
        assert!((g(k).median_ns() - (k - 1.0 / 3.0)).abs() < 1e-2 * k.sqrt());
    }

    #[test]
    fn medians_are_where_the_distribution_function_is_one_half() {
        for (l, _) in models() {
            if matches!(l, Latency::Constant { .. } | Latency::Uniform { .. }) {
                continue;
            }
            let m = l.median_ns();
            assert!(
                (cdf(&l, m) - 0.5).abs() < 1e-9,
                "{l:?}: F({m}) = {}",
                cdf(&l, m)
            );
        }
        let u = Latency::Uniform {
            min: ms(1),
            max: ms(3),
        };
        assert_eq!(u.median_ns(), 2e6);
        assert_eq!(Latency::Constant { value: ms(3) }.median_ns(), 3e6);
    }

    #[test]
    fn closed_form_means() {
        let mean = |l: Latency| l.mean_ns();
        assert_eq!(
            mean(Latency::Pareto {
                scale: ms(2),
                shape: 1.0
            }),
            None
        );
        assert_eq!(
            mean(Latency::Pareto {
                scale: ms(2),
                shape: 0.5
            }),
            None
        );
        assert_eq!(
            mean(Latency::Pareto {
                scale: ms(2),
                shape: 2.0
            }),
            Some(4e6)
        );
        assert_eq!(
            mean(Latency::Exponential {
                mean: ms(4),
                min: ms(2)
            }),
            Some(6e6)
        );
        assert_eq!(
            mean(Latency::Gamma {
                shape: 2.0,
                scale: ms(3),
                min: ms(1)
            }),
            Some(7e6)
        );
        // Weibull shape 1 is the exponential: mean λ.
        let w = mean(Latency::Weibull {
            shape: 1.0,
            scale: ms(6),
            min: ms(1),
        })
        .unwrap();
        assert!((w - 7e6).abs() < 1e-3, "{w}");
        // Half-normal: σ·√(2/π).
        let h = mean(Latency::Normal {
            mean: SimDuration::ZERO,
            std: ms(1),
        })
        .unwrap();
        assert!(
            (h - 1e6 * (2.0 / std::f64::consts::PI).sqrt()).abs() < 1e-6,
            "{h}"
        );
        assert_eq!(
            mean(Latency::Normal {
                mean: ms(5),
                std: SimDuration::ZERO
            }),
            Some(5e6)
        );
        let unloaded = Latency::Empirical {
            path: "d.csv".into(),
            column: None,
            data: None,
        };
        assert_eq!(unloaded.mean_ns(), None);
        assert!(unloaded.median_ns().is_nan());
    }

    #[test]
    fn the_incomplete_gamma_function_matches_its_closed_forms() {
        // Both branches (series below a + 1, continued fraction above).
        for x in [0.01, 0.3, 0.9, 1.5, 2.0, 4.0, 7.5, 20.0, 60.0] {
            let e = libm::exp(-x);
            let exact = [
                (1.0, 1.0 - e),
                (3.0, 1.0 - e * (1.0 + x + x * x / 2.0)),
                (0.5, libm::erf(libm::sqrt(x))),
            ];
            for (a, want) in exact {
                let got = gamma_p(a, x);
                assert!(
                    (got - want).abs() < 1e-13,
                    "P({a}, {x}) = {got}, want {want}"
                );
            }
        }
        assert_eq!(gamma_p(2.0, 0.0), 0.0);
        assert_eq!(gamma_p(2.0, f64::INFINITY), 1.0);
    }

    #[test]
    fn empirical_interpolates_between_sorted_samples() {
        let l = Latency::empirical_samples(vec![ms(30), ms(10), ms(20)]).unwrap();
        let Latency::Empirical { data: Some(s), .. } = &l else {
            unreachable!()
        };
        assert_eq!(s.sorted(), [ms(10), ms(20), ms(30)]);
        for (u, want) in [
            (0.0, ms(10)),
            (0.25, ms(15)),
            (0.5, ms(20)),
            (0.75, ms(25)),
            (1.0, ms(30)),
        ] {
            assert_eq!(s.quantile(u), want, "u = {u}");
        }
        assert_eq!(l.mean_ns(), Some(20e6));
        assert_eq!(l.median_ns(), 20e6);
        // The end samples count half: (10 + 20)/2 and (20 + 60)/2, averaged.
        let l = Latency::empirical_samples(vec![ms(10), ms(20), ms(60)]).unwrap();
        assert_eq!(l.mean_ns(), Some(27.5e6));
        let one = Latency::empirical_samples(vec![ms(4)]).unwrap();
        assert_eq!((one.mean_ns(), one.median_ns()), (Some(4e6), 4e6));
        assert_eq!(draws(&one, 10), [4_000_000; 10]);
        // Draws stay between the smallest and the largest sample.
        let x = draws(&l, 10_000);
        assert!(x[0] >= 10_000_000 && x[x.len() - 1] <= 60_000_000);
        assert!(matches!(
            Latency::empirical_samples(vec![]),
            Err(SamplesError::NoSamples)
        ));
    }

    fn parse(text: &str, column: Option<&str>) -> Result<EmpiricalSamples, SamplesError> {
        EmpiricalSamples::parse_csv(text, column, Path::new("d.csv"))
    }

    #[test]
    fn the_csv_header_says_the_unit() {
        let s = parse("# measured\ndelay_ms\n12.5\n\n3\n.5\n", None).unwrap();
        assert_eq!(
            s.sorted(),
            [
                SimDuration(500_000),
                SimDuration(3_000_000),
                SimDuration(12_500_000)
            ]
        );
        for (header, ns) in [
            ("d_ns", 7),
            ("d_us", 7_000),
            ("d_ms", 7_000_000),
            ("d_s", 7_000_000_000),
        ] {
            let s = parse(&format!("{header}\n7\n"), None).unwrap();
            assert_eq!(s.sorted(), [SimDuration(ns)], "{header}");
        }
        let s = parse(
            "time_s, owd_us ,note\n0, 250 ,a\n1,1000,b\n",
            Some("owd_us"),
        )
        .unwrap();
        assert_eq!(s.sorted(), [SimDuration(250_000), SimDuration(1_000_000)]);
    }

    #[test]
    fn bad_csv_is_refused_at_its_file_and_line() {
        let err = |text: &str, column: Option<&str>| parse(text, column).unwrap_err().to_string();
        let cases: [(&str, Option<&str>, &str); 12] = [
            (
                "delay_ms\n1\n-2\n",
                None,
                "d.csv:3: column `delay_ms`: `-2` is not a non-negative decimal",
            ),
            (
                "delay_ms\n1e3\n",
                None,
                "d.csv:2: column `delay_ms`: `1e3` is not",
            ),
            (
                "delay_ms\n1\n\n\nfast\n",
                None,
                "d.csv:5: column `delay_ms`: `fast`",
            ),
            ("delay_ms\nNaN\n", None, "d.csv:2:"),
            ("delay_ms\n\"\"\n", None, "d.csv:2:"),
            (
                "delay_ns\n0.5\n",
                None,
                "d.csv:2: column `delay_ns`: `0.5` is finer than one nanosecond",
            ),
            (
                "delay_s\n99999999999\n",
                None,
                "d.csv:2: column `delay_s`: `99999999999` is longer",
            ),
            (
                "delay\n5\n",
                None,
                "d.csv:1: column `delay` does not say its unit",
            ),
            (
                "# c\nt_s,d_ms\n1,2\n",
                None,
                "d.csv:2: the file has several columns (t_s, d_ms)",
            ),
            (
                "t_s,d_ms\n1,2\n",
                Some("x_ms"),
                "d.csv:1: no column `x_ms`; the header has: t_s, d_ms",
            ),
            ("t_s,d_ms\n1,2\n3\n", Some("d_ms"), "d.csv:3: malformed CSV"),
            ("delay_ms\n", None, "d.csv: no delay samples"),
        ];
        for (text, column, want) in cases {
            let e = err(text, column);
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        // Lines count blank lines, comments and CRLF endings.
        let e = err("# a\r\n\r\ndelay_ms\r\n1\r\n\r\n# b\r\n\r\nfast\r\n", None);
        assert!(e.starts_with("d.csv:8: column `delay_ms`: `fast`"), "{e}");
        let e = err("# a\n\nd\n1\n", None);
        assert!(
            e.starts_with("d.csv:3: column `d` does not say its unit"),
            "{e}"
        );
        assert!(err("", None).starts_with("d.csv: no delay samples"));
        assert!(err("# only a comment\n", None).starts_with("d.csv: no delay samples"));
    }

    #[test]
    fn loading_reads_the_file_and_names_it_in_every_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.csv"), "delay_ms\n30\n10\n20\n").unwrap();
        std::fs::write(dir.path().join("bad.csv"), "delay_ms\n30\nsoon\n").unwrap();
        std::fs::write(dir.path().join("empty.csv"), "").unwrap();
        let load = |file: &str, column: Option<&str>| {
            let mut l = Latency::Empirical {
                path: file.into(),
                column: column.map(str::to_string),
                data: None,
            };
            let mut v =
                Validator::at_path(crate::validate::KeyPath::parse("network.default.latency"));
            l.load(dir.path(), &mut v);
            l.validate(&mut v);
            (l, v.issues().to_vec())
        };
        let (l, issues) = load("good.csv", None);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(l.file(), Some(Path::new("good.csv")));
        assert_eq!(l.mean_ns(), Some(20e6));
        // Clones share the samples.
        let Latency::Empirical { data: Some(a), .. } = &l else {
            unreachable!()
        };
        let Latency::Empirical { data: Some(b), .. } = l.clone() else {
            unreachable!()
        };
        assert!(std::ptr::eq(a.sorted().as_ptr(), b.sorted().as_ptr()));

        let full = |f: &str| dir.path().join(f).display().to_string();
        for (file, column, key, want) in [
            (
                "bad.csv",
                None,
                "path",
                format!("{}:3: column `delay_ms`: `soon`", full("bad.csv")),
            ),
            (
                "missing.csv",
                None,
                "path",
                format!("{}: cannot read the delay samples", full("missing.csv")),
            ),
            (
                "empty.csv",
                None,
                "path",
                format!("{}: no delay samples", full("empty.csv")),
            ),
            (
                "good.csv",
                Some("x_ms"),
                "column",
                format!("{}:1: no column `x_ms`", full("good.csv")),
            ),
        ] {
            let (l, issues) = load(file, column);
            // One issue, where the user fixes it, and the latency stays unusable.
            assert_eq!(issues.len(), 1, "{file}: {issues:?}");
            assert_eq!(
                issues[0].path.to_string(),
                format!("network.default.latency.{key}")
            );
            assert!(
                issues[0].message.starts_with(&want),
                "{}",
                issues[0].message
            );
            assert_eq!(l.mean_ns(), None);
        }
        // A directory is not a file: refused before reading.
        let (_, issues) = load(".", None);
        assert!(
            issues[0].message.contains("not a regular file"),
            "{issues:?}"
        );
    }

    #[test]
    fn validation_reports_every_problem_at_its_key() {
        let paths = |l: Latency| {
            let mut v = Validator::new();
            l.validate(&mut v);
            v.issues()
                .iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(Latency::Pareto {
                scale: SimDuration::ZERO,
                shape: -1.0
            }),
            [
                "scale: pareto scale (the smallest delay) must be > 0, got 0s",
                "shape: pareto shape must be a finite number > 0, got -1",
            ]
        );
        assert_eq!(
            paths(Latency::Gamma {
                shape: f64::NAN,
                scale: SimDuration::ZERO,
                min: ms(1)
            }),
            [
                "shape: gamma shape must be a finite number > 0, got NaN",
                "scale: gamma scale must be > 0, got 0s"
            ]
        );
        assert_eq!(
            paths(Latency::Weibull {
                shape: f64::INFINITY,
                scale: SimDuration::ZERO,
                min: ms(1)
            }),
            [
                "shape: weibull shape must be a finite number > 0, got inf",
                "scale: weibull scale must be > 0, got 0s"
            ]
        );
        assert_eq!(
            paths(Latency::Empirical {
                path: "d.csv".into(),
                column: Some(" ".into()),
                data: None
            }),
            [
                "column: column must name a column of the CSV file, or be left out",
                "path: the delays of d.csv are not loaded (Latency::load reads them)",
            ]
        );
        assert_eq!(
            paths(Latency::Empirical {
                path: "".into(),
                column: None,
                data: None
            }),
            ["path: empirical latency needs `path`, a CSV file of delays"]
        );
        assert!(paths(Latency::empirical_samples(vec![ms(1)]).unwrap()).is_empty());
    }

    #[test]
    #[should_panic(expected = "compiled without its samples")]
    fn an_unloaded_empirical_latency_never_samples_zero() {
        let l = Latency::Empirical {
            path: "d.csv".into(),
            column: None,
            data: None,
        };
        let _ = l.compile();
    }

    #[test]
    fn models_read_and_write_their_toml() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct T {
            latency: Latency,
        }
        for text in [
            r#"latency = { dist = "pareto", scale = "2ms", shape = 1.5 }"#,
            r#"latency = { dist = "gamma", shape = 2.0, scale = "3ms", min = "1ms" }"#,
            r#"latency = { dist = "weibull", shape = 0.7, scale = "6ms" }"#,
            r#"latency = { dist = "empirical", path = "d.csv", column = "delay_ms" }"#,
            r#"latency = { dist = "empirical", path = "d.csv" }"#,
        ] {
            let t: T = toml::from_str(text).unwrap();
            let again: T = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
            assert_eq!(t.latency, again.latency, "{text}");
        }
        let t: T = toml::from_str(r#"latency = { dist = "weibull", shape = 0.7, scale = "6ms" }"#)
            .unwrap();
        assert_eq!(
            t.latency,
            Latency::Weibull {
                shape: 0.7,
                scale: ms(6),
                min: SimDuration::ZERO
            }
        );
        let e =
            toml::from_str::<T>(r#"latency = { dist = "gamma", shape = "big", scale = "3ms" }"#)
                .err()
                .unwrap()
                .to_string();
        assert!(e.contains("at key `shape`"), "{e}");
        let e =
            toml::from_str::<T>(r#"latency = { dist = "empirical", path = "d.csv", data = 1 }"#)
                .err()
                .unwrap()
                .to_string();
        assert!(e.contains("unknown field `data`"), "{e}");
    }

    #[test]
    fn the_shipped_samplers_draw_what_they_always_drew() {
        // Pins the number of draws of the first five models (the golden
        // digests pin their values): after one sample, the stream is where
        // this many draws leave it.
        let cases = [
            (Latency::Constant { value: ms(1) }, 0),
            (
                Latency::Uniform {
                    min: ms(1),
                    max: ms(2),
                },
                1,
            ),
            (
                Latency::Normal {
                    mean: ms(10),
                    std: ms(1),
                },
                2,
            ),
            (
                Latency::Lognormal {
                    median: ms(10),
                    sigma: 0.5,
                },
                2,
            ),
            (
                Latency::Exponential {
                    mean: ms(10),
                    min: ms(1),
                },
                1,
            ),
            (
                Latency::Pareto {
                    scale: ms(10),
                    shape: 2.0,
                },
                1,
            ),
            (
                Latency::Weibull {
                    shape: 2.0,
                    scale: ms(10),
                    min: ms(1),
                },
                1,
            ),
            (Latency::empirical_samples(vec![ms(1), ms(2)]).unwrap(), 1),
        ];
        for (l, n) in cases {
            let mut a = RngStream::new(1, 0, "pin");
            let mut b = a.clone();
            let _ = l.compile().sample(&mut a);
            for _ in 0..n {
                b.next_u64();
            }
            assert_eq!(a.next_u64(), b.next_u64(), "{l:?}");
        }
    }
}
