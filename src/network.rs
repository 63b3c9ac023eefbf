//! The simulated network: link models (latency, loss, ordering), the
//! `[network]` table that sets them, and the links themselves.
//!
//! Models are plain data that round-trip through serde (the scenario format
//! reads them directly: `[network.default]` is a [`LinkModel`], each
//! `[[network.link]]` a [`LinkSpec`]) and compile into samplers once, at
//! build time. Every link owns two RNG streams, `link/{from}->{to}/latency`
//! and `link/{from}->{to}/loss`, so changing one link's parameters never
//! changes another link's draws.
//!
//! The topology today is a star: every agent has one uplink to the broker
//! and one downlink from it, looked up by agent index on the hot path.
//! (A real topology, on `petgraph`, is the subject of the network-realism
//! work; nothing here pretends to one yet.)

use crate::tagged::tagged_enum;
use serde::{Deserialize, Serialize};

use crate::rng::RngStream;
use crate::time::{SimDuration, SimTime};
use crate::validate::{BROKER, Validator};

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

    fn compile(&self) -> LatencySampler {
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
enum LatencySampler {
    Constant(SimDuration),
    Uniform { min_ns: u64, span: u64 },
    Normal { mean_ns: f64, std_ns: f64 },
    Lognormal { mu: f64, sigma: f64 },
    Exponential { mean_ns: f64, min_ns: f64 },
}

impl LatencySampler {
    #[inline]
    fn sample(&self, rng: &mut RngStream) -> SimDuration {
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

/// Whether a link may reorder the messages it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// The link never reorders: a message arrives no earlier than the one sent
    /// on the same link before it (delays are drawn independently, then each
    /// arrival is pushed back to the previous one's if it would overtake it,
    /// like a TCP connection or an MQTT session). Nothing is promised across
    /// different links.
    #[default]
    Fifo,
    /// Delays are independent, so a later message can overtake an earlier one
    /// (like UDP, or independent broker partitions).
    Unordered,
}

/// Everything that describes one directed link's behaviour.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkModel {
    /// Delay distribution.
    #[serde(default)]
    pub latency: Latency,
    /// Probability in [0, 1] that a message is lost (Bernoulli, independent
    /// per message).
    #[serde(default)]
    pub loss: f64,
    /// Whether the link may reorder.
    #[serde(default)]
    pub ordering: Ordering,
}

impl LinkModel {
    /// Checks the parameters (keys relative to the model's table).
    pub fn validate(&self, v: &mut Validator) {
        v.check((0.0..=1.0).contains(&self.loss), "loss", || {
            format!("loss is a probability in [0, 1], got {}", self.loss)
        });
        v.at("latency", |v| self.latency.validate(v));
    }

    /// This model with the fields that `spec` sets replaced.
    pub fn with(&self, spec: &LinkSpec) -> LinkModel {
        LinkModel {
            latency: spec.latency.clone().unwrap_or_else(|| self.latency.clone()),
            loss: spec.loss.unwrap_or(self.loss),
            ordering: spec.ordering.unwrap_or(self.ordering),
        }
    }
}

/// One `[[network.link]]`: the link from `from` to `to` (one end is
/// `"broker"`, the other an agent) differs from the default model in the
/// fields it sets; with `both = true` the reverse link does too. Several
/// specs for one link apply in order, each on top of the last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Start of the link: an agent name or `"broker"`.
    pub from: String,
    /// End of the link: an agent name or `"broker"`.
    pub to: String,
    /// Apply to the reverse direction as well. Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub both: bool,
    /// Replaces the default latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// Replaces the default loss probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Replaces the default ordering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<Ordering>,
}

impl LinkSpec {
    /// The link `from -> to`, changing nothing yet.
    pub fn new(from: &str, to: &str) -> LinkSpec {
        LinkSpec {
            from: from.to_string(),
            to: to.to_string(),
            both: false,
            latency: None,
            loss: None,
            ordering: None,
        }
    }

    /// Applies to the reverse link too.
    pub fn both(mut self) -> LinkSpec {
        self.both = true;
        self
    }

    /// Sets the latency.
    pub fn latency(mut self, latency: Latency) -> LinkSpec {
        self.latency = Some(latency);
        self
    }

    /// Sets the loss probability.
    pub fn loss(mut self, loss: f64) -> LinkSpec {
        self.loss = Some(loss);
        self
    }

    /// Sets the ordering.
    pub fn ordering(mut self, ordering: Ordering) -> LinkSpec {
        self.ordering = Some(ordering);
        self
    }

    /// The directed links it applies to.
    fn directions(&self) -> impl Iterator<Item = (&str, &str)> {
        let fwd = (self.from.as_str(), self.to.as_str());
        let rev = self.both.then_some((self.to.as_str(), self.from.as_str()));
        std::iter::once(fwd).chain(rev)
    }
}

/// The `[network]` table: the default model and the per-link changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Model of every link that no [`LinkSpec`] changes.
    #[serde(default)]
    pub default: LinkModel,
    /// Per-link changes, applied in order (`[[network.link]]`).
    #[serde(default, rename = "link", skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSpec>,
}

impl NetworkSpec {
    /// Checks the default model and every link spec (keys relative to the
    /// `[network]` table); `is_agent` says which names are agents.
    pub fn validate(&self, v: &mut Validator, is_agent: &dyn Fn(&str) -> bool) {
        v.at("default", |v| self.default.validate(v));
        v.at("link", |v| {
            for (i, link) in self.links.iter().enumerate() {
                v.index(i, |v| {
                    for (key, end) in [("from", &link.from), ("to", &link.to)] {
                        v.check(end == BROKER || is_agent(end), key, || {
                            format!("{end:?} is neither \"broker\" nor an agent of this simulation")
                        });
                    }
                    v.check((link.from == BROKER) != (link.to == BROKER), "to", || {
                        "one end of a link must be \"broker\" and the other an agent".into()
                    });
                    // Errors name the keys of this table, where the change was written.
                    self.default.with(link).validate(v);
                });
            }
        });
    }

    /// The model of every link that some spec changes, by `(from, to)`:
    /// the default with each matching spec applied in order.
    fn changed(&self) -> std::collections::BTreeMap<(&str, &str), LinkModel> {
        let mut models = std::collections::BTreeMap::new();
        for spec in &self.links {
            for key in spec.directions() {
                let base: &LinkModel = models.get(&key).unwrap_or(&self.default);
                let model = base.with(spec);
                models.insert(key, model);
            }
        }
        models
    }
}

/// What happened to one message on one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transit {
    /// It will arrive at this time.
    Arrive(SimTime),
    /// It was lost on the link.
    Lost,
}

/// One directed link with its own state and random streams.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    model: LinkModel,
    sampler: LatencySampler,
    latency_rng: RngStream,
    loss_rng: RngStream,
    /// Latest arrival scheduled so far (for FIFO links).
    last_arrival: SimTime,
}

impl Link {
    /// A link named `name` (e.g. `mg1->broker`) with its own RNG streams.
    pub(crate) fn new(model: LinkModel, seed: u64, env: u64, name: &str) -> Link {
        Link {
            sampler: model.latency.compile(),
            latency_rng: RngStream::new(seed, env, &format!("link/{name}/latency")),
            loss_rng: RngStream::new(seed, env, &format!("link/{name}/loss")),
            model,
            last_arrival: SimTime::ZERO,
        }
    }

    /// Sends one message at `now`: decides loss, then draws the delay.
    /// A loss probability of 0 draws nothing.
    #[inline]
    pub(crate) fn transmit(&mut self, now: SimTime) -> Transit {
        if self.model.loss > 0.0 && self.loss_rng.bernoulli(self.model.loss) {
            return Transit::Lost;
        }
        let mut at = now + self.sampler.sample(&mut self.latency_rng);
        if self.model.ordering == Ordering::Fifo && at < self.last_arrival {
            // Equal arrival times keep send order through the queue's FIFO tie-break.
            at = self.last_arrival;
        }
        if at > self.last_arrival {
            self.last_arrival = at;
        }
        Transit::Arrive(at)
    }
}

/// The network: one uplink (agent to broker) and one downlink (broker to
/// agent) per agent, by agent index.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    uplink: Vec<Link>,
    downlink: Vec<Link>,
}

impl Network {
    /// A star: the broker in the middle, one uplink and one downlink per
    /// agent, each with its model from `spec`.
    pub(crate) fn star(agent_names: &[String], seed: u64, env: u64, spec: &NetworkSpec) -> Network {
        let changed = spec.changed();
        let link = |a: &str, b: &str| {
            let model = changed.get(&(a, b)).unwrap_or(&spec.default).clone();
            Link::new(model, seed, env, &format!("{a}->{b}"))
        };
        Network {
            uplink: agent_names.iter().map(|n| link(n, BROKER)).collect(),
            downlink: agent_names.iter().map(|n| link(BROKER, n)).collect(),
        }
    }

    /// Sends on agent `agent`'s uplink to the broker.
    #[inline]
    pub(crate) fn send_up(&mut self, agent: u32, now: SimTime) -> Transit {
        self.uplink[agent as usize].transmit(now)
    }

    /// Sends on the broker's downlink to agent `agent`.
    #[inline]
    pub(crate) fn send_down(&mut self, agent: u32, now: SimTime) -> Transit {
        self.downlink[agent as usize].transmit(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(model: LinkModel) -> Link {
        Link::new(model, 1, 0, "a->broker")
    }

    #[test]
    fn fifo_link_never_reorders_unordered_does() {
        let latency = Latency::Uniform {
            min: SimDuration::from_millis(1),
            max: SimDuration::from_millis(50),
        };
        let run = |ordering| {
            let mut l = link(LinkModel {
                latency: latency.clone(),
                loss: 0.0,
                ordering,
            });
            (0..1000u64)
                .map(|i| match l.transmit(SimTime(i * 100_000)) {
                    Transit::Arrive(t) => t,
                    Transit::Lost => unreachable!(),
                })
                .collect::<Vec<_>>()
        };
        let fifo = run(Ordering::Fifo);
        assert!(fifo.windows(2).all(|w| w[0] <= w[1]));
        let unordered = run(Ordering::Unordered);
        assert!(unordered.windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn loss_rate_is_close_to_its_probability() {
        let mut l = link(LinkModel {
            loss: 0.2,
            ..LinkModel::default()
        });
        let lost = (0..20_000)
            .filter(|_| l.transmit(SimTime::ZERO) == Transit::Lost)
            .count();
        assert!((3_600..4_400).contains(&lost), "{lost}");
    }

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

    fn issue_paths(f: impl FnOnce(&mut Validator)) -> Vec<String> {
        let mut v = Validator::new();
        f(&mut v);
        v.issues().iter().map(|i| i.path.to_string()).collect()
    }

    #[test]
    fn validation_names_every_key() {
        let bad = LinkModel {
            loss: 1.5,
            latency: Latency::Uniform {
                min: SimDuration(5),
                max: SimDuration(1),
            },
            ..LinkModel::default()
        };
        assert_eq!(issue_paths(|v| bad.validate(v)), ["loss", "latency.max"]);
        let bad = Latency::Lognormal {
            median: SimDuration(0),
            sigma: -1.0,
        };
        assert_eq!(issue_paths(|v| bad.validate(v)), ["median", "sigma"]);
    }

    #[test]
    fn link_specs_name_agents_and_apply_in_order() {
        let spec = NetworkSpec {
            default: LinkModel::default(),
            links: vec![
                LinkSpec::new("a", "broker").both().loss(0.1),
                LinkSpec::new("broker", "a").loss(0.2),
                LinkSpec::new("ghost", "broker"),
                LinkSpec::new("a", "b"),
                LinkSpec::new("a", "broker").loss(2.0),
            ],
        };
        let is_agent = |n: &str| n == "a" || n == "b";
        assert_eq!(
            issue_paths(|v| spec.validate(v, &is_agent)),
            ["link[2].from", "link[3].to", "link[4].loss"]
        );
        let changed = spec.changed();
        assert_eq!(changed[&("broker", "a")].loss, 0.2);
        assert_eq!(changed[&("a", "broker")].loss, 2.0);
        assert!(!changed.contains_key(&("b", "broker")));
    }

    #[test]
    fn star_topology_has_an_uplink_and_a_downlink_per_agent() {
        let names = vec!["a".to_string(), "b".to_string()];
        let net = Network::star(&names, 1, 0, &NetworkSpec::default());
        assert_eq!((net.uplink.len(), net.downlink.len()), (2, 2));
    }
}
