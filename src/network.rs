//! The simulated network: link models (latency, loss, ordering) and the
//! topology that connects agents to the broker.
//!
//! Models are plain data that round-trip through serde (the scenario format)
//! and compile into samplers once, at build time. Every link owns two RNG
//! streams, `link/{from}->{to}/latency` and `link/{from}->{to}/loss`, so
//! changing one link's parameters never changes another link's draws.
//!
//! The topology is a `petgraph` directed graph whose nodes are the broker and
//! the agents and whose edges are links. Today every agent has one uplink to
//! the broker and one downlink from it (a star); routes are looked up once and
//! cached per agent so the hot path does no graph search.

use std::fmt;
use std::str::FromStr;

use crate::tagged::tagged_enum;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

use crate::rng::RngStream;
use crate::time::{SimDuration, SimTime};

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
    /// Checks parameters; on error returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match *self {
            Latency::Uniform { min, max } if min > max => Err((
                "max",
                format!("uniform latency needs min <= max (min {min}, max {max})"),
            )),
            Latency::Lognormal { median, .. } if median.0 == 0 => {
                Err(("median", "lognormal latency needs a median > 0".into()))
            }
            Latency::Lognormal { sigma, .. } if !(sigma.is_finite() && sigma >= 0.0) => Err((
                "sigma",
                format!("lognormal sigma must be a finite number >= 0, got {sigma}"),
            )),
            _ => Ok(()),
        }
    }

    fn compile(&self) -> LatencySampler {
        match *self {
            Latency::Constant { value } => LatencySampler::Constant(value),
            Latency::Uniform { min, max } => LatencySampler::Uniform {
                min_ns: min.0,
                span: max.0 - min.0 + 1,
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

impl fmt::Display for Ordering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ordering::Fifo => "fifo",
            Ordering::Unordered => "unordered",
        })
    }
}

impl FromStr for Ordering {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fifo" => Ok(Ordering::Fifo),
            "unordered" => Ok(Ordering::Unordered),
            _ => Err(format!(
                "unknown ordering {s:?}; expected fifo or unordered"
            )),
        }
    }
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
    /// Checks parameters; on error returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err((
                "loss",
                format!("loss is a probability in [0, 1], got {}", self.loss),
            ));
        }
        self.latency.validate()
    }

    /// This model with the fields set in `o` replaced.
    pub fn with_override(&self, o: &LinkOverride) -> LinkModel {
        LinkModel {
            latency: o.latency.clone().unwrap_or_else(|| self.latency.clone()),
            loss: o.loss.unwrap_or(self.loss),
            ordering: o.ordering.unwrap_or(self.ordering),
        }
    }
}

/// Changes to the default model for one link; unset fields keep the default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkOverride {
    /// Replaces the default latency.
    pub latency: Option<Latency>,
    /// Replaces the default loss probability.
    pub loss: Option<f64>,
    /// Replaces the default ordering.
    pub ordering: Option<Ordering>,
}

/// What happened to one message on one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transit {
    /// It will arrive at this time.
    Arrive(SimTime),
    /// It was lost on the link.
    Lost,
}

/// One directed link with its own state and random streams.
#[derive(Clone, Debug)]
pub struct Link {
    model: LinkModel,
    sampler: LatencySampler,
    latency_rng: RngStream,
    loss_rng: RngStream,
    /// Latest arrival scheduled so far (for FIFO links).
    last_arrival: SimTime,
}

impl Link {
    /// A link named `name` (e.g. `mg1->broker`) with its own RNG streams.
    pub fn new(model: LinkModel, seed: u64, env: u64, name: &str) -> Link {
        Link {
            sampler: model.latency.compile(),
            latency_rng: RngStream::new(seed, env, &format!("link/{name}/latency")),
            loss_rng: RngStream::new(seed, env, &format!("link/{name}/loss")),
            model,
            last_arrival: SimTime::ZERO,
        }
    }

    /// The link's model.
    pub fn model(&self) -> &LinkModel {
        &self.model
    }

    /// Sends one message at `now`: decides loss, then draws the delay.
    /// A loss probability of 0 draws nothing.
    #[inline]
    pub fn transmit(&mut self, now: SimTime) -> Transit {
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

/// A node of the topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// The message broker.
    Broker,
    /// An agent, by its index.
    Agent(u32),
}

/// The network: a petgraph topology of the broker and agents, the links on
/// its edges, and each agent's cached up- and downlink.
#[derive(Clone, Debug)]
pub struct Network {
    graph: DiGraph<Node, u32>,
    links: Vec<Link>,
    uplink: Vec<u32>,
    downlink: Vec<u32>,
}

impl Network {
    /// A star: the broker in the middle, one uplink and one downlink per
    /// agent. `model_for(from, to)` gives each link's model by the names of
    /// its ends (`"broker"` for the broker).
    pub fn star(
        agent_names: &[String],
        seed: u64,
        env: u64,
        mut model_for: impl FnMut(&str, &str) -> LinkModel,
    ) -> Network {
        let mut graph = DiGraph::new();
        let broker = graph.add_node(Node::Broker);
        let mut links = Vec::with_capacity(agent_names.len() * 2);
        let mut uplink = Vec::with_capacity(agent_names.len());
        let mut downlink = Vec::with_capacity(agent_names.len());
        for (i, name) in agent_names.iter().enumerate() {
            let node = graph.add_node(Node::Agent(i as u32));
            for (from, to, a, b, table) in [
                (node, broker, name.as_str(), "broker", &mut uplink),
                (broker, node, "broker", name.as_str(), &mut downlink),
            ] {
                let idx = links.len() as u32;
                links.push(Link::new(model_for(a, b), seed, env, &format!("{a}->{b}")));
                graph.add_edge(from, to, idx);
                table.push(idx);
            }
        }
        Network {
            graph,
            links,
            uplink,
            downlink,
        }
    }

    /// The topology graph (nodes: broker and agents; edge weights: link indices).
    pub fn graph(&self) -> &DiGraph<Node, u32> {
        &self.graph
    }

    /// The broker's node in [`Network::graph`].
    pub fn broker_node(&self) -> NodeIndex {
        NodeIndex::new(0)
    }

    /// Sends on agent `agent`'s uplink to the broker.
    #[inline]
    pub fn send_up(&mut self, agent: u32, now: SimTime) -> Transit {
        self.links[self.uplink[agent as usize] as usize].transmit(now)
    }

    /// Sends on the broker's downlink to agent `agent`.
    #[inline]
    pub fn send_down(&mut self, agent: u32, now: SimTime) -> Transit {
        self.links[self.downlink[agent as usize] as usize].transmit(now)
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

    #[test]
    fn validation_names_the_key() {
        let bad = LinkModel {
            loss: 1.5,
            ..LinkModel::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "loss");
        let bad = Latency::Uniform {
            min: SimDuration(5),
            max: SimDuration(1),
        };
        assert_eq!(bad.validate().unwrap_err().0, "max");
        let bad = Latency::Lognormal {
            median: SimDuration(5),
            sigma: -1.0,
        };
        assert_eq!(bad.validate().unwrap_err().0, "sigma");
    }

    #[test]
    fn star_topology_has_two_links_per_agent() {
        let names = vec!["a".to_string(), "b".to_string()];
        let net = Network::star(&names, 1, 0, |_, _| LinkModel::default());
        assert_eq!(net.graph().node_count(), 3);
        assert_eq!(net.graph().edge_count(), 4);
        assert_eq!(net.graph()[net.broker_node()], Node::Broker);
    }
}
