//! Loss models: which messages a link loses. A scenario writes a plain
//! number (`loss = 0.01`, independent Bernoulli loss) or a table naming a
//! model (`loss = { model = "gilbert_elliott", ... }`).

use serde::{Deserialize, Serialize};

use crate::rng::RngStream;
use crate::tagged::tagged_enum;
use crate::validate::Validator;

tagged_enum! {
    tag = "model";
    /// The table form of a loss model.
    #[derive(Clone, Debug, PartialEq)]
    enum LossTable {
        /// Independent loss with probability `p`.
        Bernoulli {
            /// Loss probability in [0, 1].
            p: f64,
        },
    }
}

/// Which messages a link loses.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Loss {
    /// Each message is lost independently with probability `p` (in [0, 1]).
    /// Written as a plain number: `loss = 0.01`.
    Bernoulli {
        /// Loss probability.
        p: f64,
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
                })
            }
            other => Err(D::Error::custom(format!(
                "loss is a probability (a number) or a table with a `model`, got {}",
                other.type_str()
            ))),
        }
    }
}

impl Loss {
    /// Independent loss with probability `p`.
    pub fn bernoulli(p: f64) -> Loss {
        Loss::Bernoulli { p }
    }

    /// The long-run fraction of messages lost.
    pub fn mean_rate(&self) -> f64 {
        match *self {
            Loss::Bernoulli { p } => p,
        }
    }

    /// True if the model never loses anything (it then draws nothing).
    pub fn is_none(&self) -> bool {
        match *self {
            Loss::Bernoulli { p } => p <= 0.0,
        }
    }

    /// Checks the parameters (keys relative to the `loss` key's parent:
    /// a plain number is reported at `loss`, a table's fields at
    /// `loss.<field>`).
    pub fn validate(&self, v: &mut Validator) {
        match *self {
            Loss::Bernoulli { p } => {
                v.check((0.0..=1.0).contains(&p), "loss", || {
                    format!("loss is a probability in [0, 1], got {p}")
                });
            }
        }
    }

    pub(crate) fn compile(&self) -> LossState {
        match *self {
            Loss::Bernoulli { p } => LossState::Bernoulli { p },
        }
    }
}

/// A [`Loss`] with its state (for the models that have one).
#[derive(Clone, Debug)]
pub(crate) enum LossState {
    Bernoulli { p: f64 },
}

impl LossState {
    /// Whether the next message is lost. A probability of 0 draws nothing.
    #[inline]
    pub(crate) fn lose(&mut self, rng: &mut RngStream) -> bool {
        match *self {
            LossState::Bernoulli { p } => p > 0.0 && rng.bernoulli(p),
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
}
