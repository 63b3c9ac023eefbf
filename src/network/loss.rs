//! Loss models: which messages a link loses. A scenario writes a plain
//! number (`loss = 0.01`, independent Bernoulli loss) or a table naming a
//! model (`loss = { model = "gilbert_elliott", p = 0.01, r = 0.3 }`).
//!
//! Every model draws from the one stream it is given (the link's `loss`
//! stream), so its draws never move another process's. Bernoulli's draws
//! are pinned by the golden digests: one number per message, none when
//! `p` is 0.

use serde::{Deserialize, Serialize};

use crate::rng::RngStream;
use crate::tagged::tagged_enum;
use crate::validate::Validator;

tagged_enum! {
    tag = "model";
    /// The table form of a loss model (the mirror of [`Loss`] for serde).
    #[derive(Clone, Debug, PartialEq)]
    enum LossTable {
        /// Independent loss with probability `p`.
        Bernoulli {
            /// Loss probability in [0, 1].
            p: f64,
        },
        /// See [`Loss::GilbertElliott`].
        GilbertElliott {
            /// Good → Bad.
            p: f64,
            /// Bad → Good.
            r: f64,
            /// Loss probability in Good.
            #[serde(default)]
            loss_good: f64,
            /// Loss probability in Bad.
            #[serde(default = "one")]
            loss_bad: f64,
        },
        /// See [`Loss::Markov4`].
        Markov4 {
            /// 1 → 3.
            p13: f64,
            /// 3 → 1.
            p31: f64,
            /// 3 → 2.
            p32: f64,
            /// 2 → 3.
            p23: f64,
            /// 1 → 4.
            p14: f64,
        },
    }
}

fn one() -> f64 {
    1.0
}

/// Which messages a link loses.
///
/// Every probability is a number in [0, 1] (not a percentage). A model
/// decides one message at a time, in the order the link sends them, and
/// its state (for the bursty models) belongs to the link: each directed
/// link has its own.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Loss {
    /// Each message is lost independently with probability `p` (in [0, 1]).
    /// Written as a plain number, `loss = 0.01`, or as
    /// `{ model = "bernoulli", p = 0.01 }`; it is written back as the
    /// number. Loss rate `p`; loss bursts have mean length `1/(1 − p)`.
    Bernoulli {
        /// Loss probability.
        p: f64,
    },
    /// The Gilbert–Elliott model: bursty loss from a two-state Markov
    /// chain, `{ model = "gilbert_elliott", p, r, loss_good = 0,
    /// loss_bad = 1 }`.
    ///
    /// The link is in state Good or Bad, starting in Good. For each message,
    /// first the state moves (Good → Bad with probability `p`, Bad → Good
    /// with probability `r`), then the message is lost with the new state's
    /// loss probability (`loss_good` or `loss_bad`).
    ///
    /// In the long run the link is Bad a fraction `π_B = p/(p + r)` of the
    /// messages (Good `π_G = r/(p + r)`), and the loss rate is
    /// `π_G·loss_good + π_B·loss_bad` ([`Loss::mean_rate`]). A Bad period
    /// lasts `1/r` messages on average and a Good one `1/p`; with the
    /// defaults (`loss_good = 0`, `loss_bad = 1`, the "simple Gilbert"
    /// model) a Bad period is a burst of losses, so the mean loss-burst
    /// length is `1/r` and the loss rate `p/(p + r)`.
    ///
    /// Linux netem's `loss gemodel p r 1-h 1-k` (in percent) is
    /// `p`, `r`, `loss_bad = 1-h` and `loss_good = 1-k`. netem decides a
    /// message's fate by the state before the move rather than after it;
    /// the long-run loss rate and burst lengths are the same, only the
    /// first message of a run differs.
    ///
    /// Draws: one number per message for the move, and one more when the
    /// new state's loss probability is strictly between 0 and 1.
    GilbertElliott {
        /// Probability of moving from Good to Bad at a message.
        p: f64,
        /// Probability of moving from Bad to Good at a message.
        r: f64,
        /// Loss probability in Good. Default 0.
        loss_good: f64,
        /// Loss probability in Bad. Default 1.
        loss_bad: f64,
    },
    /// The four-state Markov model of Salsano et al., as Linux netem's
    /// `loss state p13 p31 p32 p23 p14` (there in percent, here in
    /// [0, 1]): `{ model = "markov4", p13, p31, p32, p23, p14 }`, every
    /// key required.
    ///
    /// States: 1 = good reception in a gap period, 2 = good reception in a
    /// burst period, 3 = loss in a burst, 4 = isolated loss (in a gap).
    /// Starting in state 1, for each message the state moves first:
    ///
    /// | from | to |
    /// |---|---|
    /// | 1 | 3 with `p13`, 4 with `p14`, else stays 1 |
    /// | 2 | 3 with `p23`, else stays 2 |
    /// | 3 | 2 with `p32`, 1 with `p31`, else stays 3 |
    /// | 4 | 1 always |
    ///
    /// then the message is lost if the new state is 3 or 4. So each state's
    /// outgoing probabilities must sum to at most 1 (`p13 + p14`,
    /// `p31 + p32`). Gaps (states 1 and 4) hold isolated losses; bursts
    /// (states 2 and 3) alternate good receptions and losses.
    ///
    /// With the chain irreducible, the long-run state probabilities are
    /// proportional to `1 : p13·p32/(p31·p23) : p13/p31 : p14` (states 1,
    /// 2, 3, 4) and the loss rate is `π₃ + π₄` ([`Loss::mean_rate`], which
    /// also handles the chains where some state is never left).
    ///
    /// Draws: one number per message.
    Markov4 {
        /// 1 → 3: a burst starts with a loss.
        p13: f64,
        /// 3 → 1: a burst ends.
        p31: f64,
        /// 3 → 2: a good reception inside a burst.
        p32: f64,
        /// 2 → 3: a loss inside a burst.
        p23: f64,
        /// 1 → 4: an isolated loss.
        p14: f64,
    },
}

impl Default for Loss {
    fn default() -> Self {
        Loss::Bernoulli { p: 0.0 }
    }
}

impl Serialize for Loss {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            // The plain number, so a scenario's effective text reads as written.
            Loss::Bernoulli { p } => s.serialize_f64(p),
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => LossTable::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            }
            .serialize(s),
            Loss::Markov4 {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => LossTable::Markov4 {
                p13,
                p31,
                p32,
                p23,
                p14,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Loss {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match toml::Value::deserialize(d)? {
            toml::Value::Float(p) => Ok(Loss::Bernoulli { p }),
            toml::Value::Integer(p) => Ok(Loss::Bernoulli { p: p as f64 }),
            v @ toml::Value::Table(_) => {
                let t = LossTable::deserialize(v).map_err(D::Error::custom)?;
                Ok(match t {
                    LossTable::Bernoulli { p } => Loss::Bernoulli { p },
                    LossTable::GilbertElliott {
                        p,
                        r,
                        loss_good,
                        loss_bad,
                    } => Loss::GilbertElliott {
                        p,
                        r,
                        loss_good,
                        loss_bad,
                    },
                    LossTable::Markov4 {
                        p13,
                        p31,
                        p32,
                        p23,
                        p14,
                    } => Loss::Markov4 {
                        p13,
                        p31,
                        p32,
                        p23,
                        p14,
                    },
                })
            }
            other => Err(D::Error::custom(format!(
                "loss is a probability (a number) or a table with a `model`, got {}",
                other.type_str()
            ))),
        }
    }
}

/// Slack for the sums of outgoing probabilities: decimal inputs such as
/// 0.7 + 0.3 may add up to a hair above 1 in binary.
const SUM_SLACK: f64 = 1e-12;

impl Loss {
    /// Independent loss with probability `p`.
    pub fn bernoulli(p: f64) -> Loss {
        Loss::Bernoulli { p }
    }

    /// Gilbert–Elliott loss with the defaults `loss_good = 0`,
    /// `loss_bad = 1`: every message in Bad is lost.
    pub fn gilbert(p: f64, r: f64) -> Loss {
        Loss::GilbertElliott {
            p,
            r,
            loss_good: 0.0,
            loss_bad: 1.0,
        }
    }

    /// The long-run fraction of messages lost, exactly (for the chains that
    /// never leave some state, the fraction of the class the chain ends in,
    /// starting from Good or state 1).
    pub fn mean_rate(&self) -> f64 {
        match *self {
            Loss::Bernoulli { p } => p,
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => {
                // p = r = 0: the link stays Good.
                let bad = if p + r > 0.0 { p / (p + r) } else { 0.0 };
                (1.0 - bad) * loss_good + bad * loss_bad
            }
            Loss::Markov4 {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => markov4_stationary(p13, p31, p32, p23, p14).map_or(0.0, |pi| pi[2] + pi[3]),
        }
    }

    /// True if the model never loses anything (it then draws nothing).
    pub fn is_none(&self) -> bool {
        match *self {
            Loss::Bernoulli { p } => p <= 0.0,
            // Never lost in Good, and Bad is never reached or loses nothing.
            Loss::GilbertElliott {
                p,
                loss_good,
                loss_bad,
                ..
            } => loss_good <= 0.0 && (p <= 0.0 || loss_bad <= 0.0),
            // States 3 and 4 are reached only from state 1, where it starts.
            Loss::Markov4 { p13, p14, .. } => p13 <= 0.0 && p14 <= 0.0,
        }
    }

    /// Checks the parameters (keys relative to the `loss` key's parent:
    /// a plain number, Bernoulli's `p` written as a table, or a constraint
    /// between keys is reported at `loss`, any other field at
    /// `loss.<field>`). Every problem is reported.
    pub fn validate(&self, v: &mut Validator) {
        let prob = |v: &mut Validator, key: &str, p: f64| {
            v.at("loss", |v| {
                v.check((0.0..=1.0).contains(&p), key, || {
                    format!("{key} is a probability in [0, 1], got {p}")
                });
            });
        };
        match *self {
            Loss::Bernoulli { p } => {
                v.check((0.0..=1.0).contains(&p), "loss", || {
                    format!("loss is a probability in [0, 1], got {p}")
                });
            }
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => {
                for (key, x) in [
                    ("p", p),
                    ("r", r),
                    ("loss_good", loss_good),
                    ("loss_bad", loss_bad),
                ] {
                    prob(v, key, x);
                }
            }
            Loss::Markov4 {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => {
                for (key, x) in [
                    ("p13", p13),
                    ("p31", p31),
                    ("p32", p32),
                    ("p23", p23),
                    ("p14", p14),
                ] {
                    prob(v, key, x);
                }
                for (state, (a, x), (b, y)) in [
                    (1, ("p13", p13), ("p14", p14)),
                    (3, ("p31", p31), ("p32", p32)),
                ] {
                    v.check(x + y <= 1.0 + SUM_SLACK, "loss", || {
                        format!(
                            "the probabilities of leaving state {state} sum to more than 1: \
                             {a} + {b} = {x} + {y} = {}",
                            x + y
                        )
                    });
                }
            }
        }
    }

    pub(crate) fn compile(&self) -> LossState {
        if self.is_none() {
            return LossState::Bernoulli { p: 0.0 };
        }
        match *self {
            Loss::Bernoulli { p } => LossState::Bernoulli { p },
            Loss::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => LossState::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
                bad: false,
            },
            Loss::Markov4 {
                p13,
                p31,
                p32,
                p23,
                p14,
            } => LossState::Markov4 {
                p13,
                p13_p14: p13 + p14,
                p32,
                p32_p31: p32 + p31,
                p23,
                state: 1,
            },
        }
    }
}

/// The long-run fraction of messages in each state (1 to 4, at indices 0 to
/// 3) of the four-state chain started in state 1: the stationary
/// distribution of the closed class it ends in. `None` only for NaN input.
fn markov4_stationary(p13: f64, p31: f64, p32: f64, p23: f64, p14: f64) -> Option<[f64; 4]> {
    if [p13, p31, p32, p23, p14].iter().any(|x| x.is_nan()) {
        return None;
    }
    // Balance: π₄ = p14·π₁ (4 always returns to 1); into and out of 1,
    // p13·π₁ = p31·π₃; into and out of 2, p23·π₂ = p32·π₃.
    if p13 <= 0.0 {
        // Never leaves {1, 4}.
        let w = [1.0, 0.0, 0.0, p14];
        return Some(normalise(w));
    }
    if p31 <= 0.0 {
        // State 3 is reached and 1 never again: the chain ends in {2, 3}.
        return Some(if p32 <= 0.0 {
            [0.0, 0.0, 1.0, 0.0] // 3 is never left
        } else if p23 <= 0.0 {
            [0.0, 1.0, 0.0, 0.0] // 2 is reached and never left
        } else {
            let s = p23 + p32;
            [0.0, p32 / s, p23 / s, 0.0]
        });
    }
    // 1, 3 (and 4 if p14 > 0) communicate; 2 joins if reached (p32 > 0).
    if p32 <= 0.0 {
        return Some(normalise([1.0, 0.0, p13 / p31, p14]));
    }
    if p23 <= 0.0 {
        return Some([0.0, 1.0, 0.0, 0.0]); // 2 is reached and never left
    }
    Some(normalise([1.0, p13 * p32 / (p31 * p23), p13 / p31, p14]))
}

fn normalise(w: [f64; 4]) -> [f64; 4] {
    let s: f64 = w.iter().sum();
    w.map(|x| x / s)
}

/// A [`Loss`] with its state (for the models that have one).
#[derive(Clone, Debug)]
pub(crate) enum LossState {
    Bernoulli {
        p: f64,
    },
    GilbertElliott {
        p: f64,
        r: f64,
        loss_good: f64,
        loss_bad: f64,
        bad: bool,
    },
    /// Cumulative thresholds, compared with one uniform draw.
    Markov4 {
        p13: f64,
        p13_p14: f64,
        p32: f64,
        p32_p31: f64,
        p23: f64,
        state: u8,
    },
}

impl LossState {
    /// Whether the next message is lost. A Bernoulli probability of 0 draws
    /// nothing (and a model that never loses compiles to that).
    #[inline(always)]
    pub(crate) fn lose(&mut self, rng: &mut RngStream) -> bool {
        match self {
            LossState::Bernoulli { p } => *p > 0.0 && rng.bernoulli(*p),
            _ => self.lose_bursty(rng),
        }
    }

    /// The models with a state, out of line.
    #[inline(never)]
    fn lose_bursty(&mut self, rng: &mut RngStream) -> bool {
        match self {
            LossState::Bernoulli { p } => *p > 0.0 && rng.bernoulli(*p),
            LossState::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
                bad,
            } => {
                let leave = if *bad { *r } else { *p };
                if rng.bernoulli(leave) {
                    *bad = !*bad;
                }
                let h = if *bad { *loss_bad } else { *loss_good };
                if h <= 0.0 {
                    false
                } else if h >= 1.0 {
                    true
                } else {
                    rng.bernoulli(h)
                }
            }
            LossState::Markov4 {
                p13,
                p13_p14,
                p32,
                p32_p31,
                p23,
                state,
            } => {
                let u = rng.uniform();
                *state = match *state {
                    1 if u < *p13 => 3,
                    1 if u < *p13_p14 => 4,
                    1 => 1,
                    2 if u < *p23 => 3,
                    2 => 2,
                    3 if u < *p32 => 2,
                    3 if u < *p32_p31 => 1,
                    3 => 3,
                    _ => 1,
                };
                *state >= 3
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct T {
        loss: Loss,
    }

    #[test]
    fn a_number_or_a_table() {
        let t: T = toml::from_str("loss = 0.25").unwrap();
        assert_eq!(t.loss, Loss::bernoulli(0.25));
        let t: T = toml::from_str("loss = { model = \"bernoulli\", p = 0.5 }").unwrap();
        assert_eq!(t.loss, Loss::bernoulli(0.5));
        assert_eq!(toml::to_string(&t).unwrap().trim(), "loss = 0.5");
        let e = toml::from_str::<T>("loss = \"high\"")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a probability (a number) or a table"), "{e}");
    }

    #[test]
    fn bursty_models_read_their_tables_and_write_them_back() {
        let t: T =
            toml::from_str("loss = { model = \"gilbert_elliott\", p = 0.01, r = 0.3 }").unwrap();
        assert_eq!(t.loss, Loss::gilbert(0.01, 0.3));
        let text = "loss = { model = \"gilbert_elliott\", p = 0.01, r = 0.3, loss_good = 0.001, loss_bad = 0.8 }";
        let t: T = toml::from_str(text).unwrap();
        let again: T = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(again.loss, t.loss);
        let text = "loss = { model = \"markov4\", p13 = 0.1, p31 = 0.7, p32 = 0.2, p23 = 0.5, p14 = 0.01 }";
        let t: T = toml::from_str(text).unwrap();
        assert_eq!(
            t.loss,
            Loss::Markov4 {
                p13: 0.1,
                p31: 0.7,
                p32: 0.2,
                p23: 0.5,
                p14: 0.01
            }
        );
        let again: T = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(again.loss, t.loss);
        // Errors inside a table keep their key; markov4 has no defaults.
        for (text, want) in [
            (
                "loss = { model = \"gilbert_elliott\", p = \"x\", r = 0.1 }",
                "at key `p`",
            ),
            (
                "loss = { model = \"gilbert_elliott\", p = 0.1, r = 0.1, h = 1 }",
                "unknown field `h`",
            ),
            (
                "loss = { model = \"markov4\", p13 = 0.1, p31 = 0.7, p32 = 0.2, p23 = 0.5 }",
                "missing field `p14`",
            ),
            ("loss = { model = \"gilbert\", p = 0.1 }", "at key `model`"),
        ] {
            let e = toml::from_str::<T>(text).err().unwrap().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    fn issues(l: &Loss) -> Vec<String> {
        let mut v = Validator::new();
        l.validate(&mut v);
        v.issues()
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    #[test]
    fn validation_reports_every_key_at_its_path() {
        assert_eq!(
            issues(&Loss::bernoulli(1.5)),
            ["loss: loss is a probability in [0, 1], got 1.5"]
        );
        let ge = Loss::GilbertElliott {
            p: -0.1,
            r: 2.0,
            loss_good: f64::NAN,
            loss_bad: 0.5,
        };
        assert_eq!(
            issues(&ge),
            [
                "loss.p: p is a probability in [0, 1], got -0.1",
                "loss.r: r is a probability in [0, 1], got 2",
                "loss.loss_good: loss_good is a probability in [0, 1], got NaN",
            ]
        );
        let m = Loss::Markov4 {
            p13: 0.7,
            p31: 0.6,
            p32: 0.5,
            p23: 1.2,
            p14: 0.4,
        };
        assert_eq!(
            issues(&m),
            [
                "loss.p23: p23 is a probability in [0, 1], got 1.2",
                "loss: the probabilities of leaving state 1 sum to more than 1: p13 + p14 = 0.7 + 0.4 = 1.1",
                "loss: the probabilities of leaving state 3 sum to more than 1: p31 + p32 = 0.6 + 0.5 = 1.1",
            ]
        );
        // Decimal sums that are 1 on paper pass.
        assert!(
            issues(&Loss::Markov4 {
                p13: 0.7,
                p31: 0.1,
                p32: 0.9,
                p23: 0.2,
                p14: 0.3
            })
            .is_empty()
        );
    }

    /// `n` decisions of `loss` on a fixed seed.
    fn run(loss: &Loss, n: usize) -> Vec<bool> {
        let mut state = loss.compile();
        let mut rng = RngStream::new(77, 0, "loss-test");
        (0..n).map(|_| state.lose(&mut rng)).collect()
    }

    /// The asymptotic variance of the number of losses per message,
    /// `lim Var(ΣLₜ)/n`, of a chain with transition matrix `p` (rows: from),
    /// stationary `pi`, and loss probability `h` per state: the Bernoulli
    /// noise `E_π[h(1−h)]` plus the chain's `Var_π(h) + 2·Σₖ Cov_π(h(X₀),
    /// h(Xₖ))`, the covariances summed until they vanish.
    fn asymptotic_var<const S: usize>(p: [[f64; S]; S], pi: [f64; S], h: [f64; S]) -> f64 {
        let dot = |a: &[f64; S], b: &[f64; S]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mean = dot(&pi, &h);
        let noise: f64 = (0..S).map(|i| pi[i] * h[i] * (1.0 - h[i])).sum();
        let pih: [f64; S] = std::array::from_fn(|i| pi[i] * h[i]);
        let mut var = dot(&pih, &h) - mean * mean;
        let mut g = h;
        for _ in 0..100_000 {
            g = std::array::from_fn(|i| dot(&p[i], &g));
            let cov = dot(&pih, &g) - mean * mean;
            var += 2.0 * cov;
            if cov.abs() < 1e-16 {
                break;
            }
        }
        var + noise
    }

    /// The fraction lost within 5 standard errors of [`Loss::mean_rate`].
    fn check_rate(loss: &Loss, lost: &[bool], var: f64) {
        let n = lost.len() as f64;
        let got = lost.iter().filter(|&&l| l).count() as f64 / n;
        let tol = 5.0 * (var / n).sqrt();
        let want = loss.mean_rate();
        assert!(
            (got - want).abs() <= tol,
            "{loss:?}: {got} vs {want} (± {tol})"
        );
    }

    /// Lengths of the runs of losses, without the one the sample ends in.
    fn bursts(lost: &[bool]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut run = 0;
        for &l in lost {
            if l {
                run += 1;
            } else if run > 0 {
                out.push(run);
                run = 0;
            }
        }
        out
    }

    const N: usize = 200_000;

    #[test]
    fn bernoulli_loses_at_its_rate() {
        let loss = Loss::bernoulli(0.1);
        check_rate(&loss, &run(&loss, N), 0.1 * 0.9);
    }

    #[test]
    fn gilbert_elliott_loses_at_its_stationary_rate_in_bursts_of_one_over_r() {
        let (p, r) = (0.1, 0.25);
        let loss = Loss::gilbert(p, r);
        assert!((loss.mean_rate() - p / (p + r)).abs() < 1e-15);
        let matrix = [[1.0 - p, p], [r, 1.0 - r]];
        let pi = [r / (p + r), p / (p + r)];
        let lost = run(&loss, N);
        // Closed form for two states: π_G·π_B·(1 + λ)/(1 − λ), λ = 1 − p − r.
        let lambda = 1.0 - p - r;
        let var = pi[0] * pi[1] * (1.0 + lambda) / (1.0 - lambda);
        assert!((asymptotic_var(matrix, pi, [0.0, 1.0]) - var).abs() < 1e-9);
        check_rate(&loss, &lost, var);
        // A burst is a Bad period: geometric with mean 1/r, variance (1−r)/r².
        let b = bursts(&lost);
        let mean = b.iter().sum::<usize>() as f64 / b.len() as f64;
        let tol = 5.0 * ((1.0 - r) / (r * r) / b.len() as f64).sqrt();
        assert!(
            (mean - 1.0 / r).abs() <= tol,
            "burst {mean} vs {} (± {tol})",
            1.0 / r
        );

        // Some loss in both states.
        let (lg, lb) = (0.01, 0.6);
        let loss = Loss::GilbertElliott {
            p,
            r,
            loss_good: lg,
            loss_bad: lb,
        };
        let want = pi[0] * lg + pi[1] * lb;
        assert!((loss.mean_rate() - want).abs() < 1e-15);
        check_rate(&loss, &run(&loss, N), asymptotic_var(matrix, pi, [lg, lb]));
    }

    /// The four-state chain's transition matrix (rows: from state 1 to 4).
    fn markov4_matrix(p13: f64, p31: f64, p32: f64, p23: f64, p14: f64) -> [[f64; 4]; 4] {
        [
            [1.0 - p13 - p14, 0.0, p13, p14],
            [0.0, 1.0 - p23, p23, 0.0],
            [p31, p32, 1.0 - p31 - p32, 0.0],
            [1.0, 0.0, 0.0, 0.0],
        ]
    }

    #[test]
    fn markov4_loses_at_its_stationary_rate() {
        let (p13, p31, p32, p23, p14) = (0.05, 0.3, 0.4, 0.2, 0.02);
        let loss = Loss::Markov4 {
            p13,
            p31,
            p32,
            p23,
            p14,
        };
        let pi = markov4_stationary(p13, p31, p32, p23, p14).unwrap();
        let var = asymptotic_var(
            markov4_matrix(p13, p31, p32, p23, p14),
            pi,
            [0.0, 0.0, 1.0, 1.0],
        );
        check_rate(&loss, &run(&loss, N), var);
    }

    /// The long-run fraction of time in each state from state 1, by
    /// averaging the distribution over many steps (exact arithmetic on the
    /// matrix, no sampling; right for reducible and periodic chains too).
    fn cesaro<const S: usize>(p: [[f64; S]; S], steps: usize) -> [f64; S] {
        let mut dist = [0.0; S];
        dist[0] = 1.0;
        let mut sum = [0.0; S];
        for _ in 0..steps {
            dist = std::array::from_fn(|j| (0..S).map(|i| dist[i] * p[i][j]).sum());
            for j in 0..S {
                sum[j] += dist[j];
            }
        }
        sum.map(|x| x / steps as f64)
    }

    #[test]
    fn mean_rates_are_the_long_run_averages_even_for_chains_that_get_stuck() {
        let markov4 = [
            (0.05, 0.3, 0.4, 0.2, 0.02), // irreducible
            (0.0, 0.3, 0.4, 0.2, 0.1),   // only isolated losses
            (0.0, 0.0, 0.0, 0.0, 0.0),   // never loses
            (0.1, 0.0, 0.0, 0.3, 0.1),   // stuck in 3: everything lost
            (0.1, 0.0, 0.4, 0.0, 0.1),   // stuck in 2: nothing lost
            (0.1, 0.0, 0.4, 0.2, 0.1),   // ends in the burst states
            (0.1, 0.5, 0.0, 0.2, 0.1),   // never reaches 2
            (0.1, 0.5, 0.3, 0.0, 0.1),   // reaches 2 and stays
            (1.0, 1.0, 0.0, 0.0, 0.0),   // periodic 1, 3, 1, 3
        ];
        for (p13, p31, p32, p23, p14) in markov4 {
            let loss = Loss::Markov4 {
                p13,
                p31,
                p32,
                p23,
                p14,
            };
            assert!(issues(&loss).is_empty());
            let pi = cesaro(markov4_matrix(p13, p31, p32, p23, p14), 50_000);
            let want = pi[2] + pi[3];
            assert!(
                (loss.mean_rate() - want).abs() < 1e-3,
                "{loss:?}: {} vs {want}",
                loss.mean_rate()
            );
        }
        for (p, r) in [(0.1, 0.3), (0.0, 0.3), (0.1, 0.0), (0.0, 0.0), (1.0, 1.0)] {
            let loss = Loss::GilbertElliott {
                p,
                r,
                loss_good: 0.05,
                loss_bad: 0.7,
            };
            let pi = cesaro([[1.0 - p, p], [r, 1.0 - r]], 50_000);
            let want = pi[0] * 0.05 + pi[1] * 0.7;
            assert!(
                (loss.mean_rate() - want).abs() < 1e-3,
                "{loss:?}: {} vs {want}",
                loss.mean_rate()
            );
        }
    }

    #[test]
    fn transitions_come_before_the_fate_of_the_message() {
        // p = 1, r = 0: the first message already finds the link Bad.
        assert_eq!(run(&Loss::gilbert(1.0, 0.0), 3), [true; 3]);
        // p = r = 1: Bad, Good, Bad, ...
        assert_eq!(run(&Loss::gilbert(1.0, 1.0), 4), [true, false, true, false]);
        // 1 → 3 → 2 → 3 → 2 ...: lost, kept, lost, kept.
        let m = Loss::Markov4 {
            p13: 1.0,
            p31: 0.0,
            p32: 1.0,
            p23: 1.0,
            p14: 0.0,
        };
        assert_eq!(run(&m, 4), [true, false, true, false]);
        // 1 → 4 → 1 → 4: an isolated loss every other message.
        let m = Loss::Markov4 {
            p13: 0.0,
            p31: 0.0,
            p32: 0.0,
            p23: 0.0,
            p14: 1.0,
        };
        assert_eq!(run(&m, 4), [true, false, true, false]);
    }

    #[test]
    fn draws_per_message_are_as_documented() {
        let after = |loss: &Loss, n: usize| {
            let mut state = loss.compile();
            let mut rng = RngStream::new(5, 0, "draws");
            for _ in 0..n {
                state.lose(&mut rng);
            }
            rng.next_u64()
        };
        let fresh = |skip: usize| {
            let mut rng = RngStream::new(5, 0, "draws");
            for _ in 0..skip {
                rng.next_u64();
            }
            rng.next_u64()
        };
        // Bernoulli as it always drew: one per message, none at p = 0.
        assert_eq!(after(&Loss::bernoulli(0.3), 10), fresh(10));
        assert_eq!(after(&Loss::bernoulli(0.0), 10), fresh(0));
        // Models that never lose draw nothing.
        assert!(Loss::gilbert(0.0, 0.5).is_none());
        assert_eq!(after(&Loss::gilbert(0.0, 0.5), 10), fresh(0));
        let none = Loss::Markov4 {
            p13: 0.0,
            p31: 0.5,
            p32: 0.5,
            p23: 0.5,
            p14: 0.0,
        };
        assert!(none.is_none());
        assert_eq!(after(&none, 10), fresh(0));
        // Gilbert–Elliott with 0/1 loss: one draw (the move); markov4: one.
        assert_eq!(after(&Loss::gilbert(0.3, 0.5), 10), fresh(10));
        let m = Loss::Markov4 {
            p13: 0.2,
            p31: 0.5,
            p32: 0.3,
            p23: 0.5,
            p14: 0.1,
        };
        assert_eq!(after(&m, 10), fresh(10));
        // Partial loss in both states: two per message.
        let ge = Loss::GilbertElliott {
            p: 0.3,
            r: 0.5,
            loss_good: 0.1,
            loss_bad: 0.9,
        };
        assert_eq!(after(&ge, 10), fresh(20));
        assert!(!ge.is_none() && !m.is_none() && !Loss::bernoulli(0.1).is_none());
    }
}
