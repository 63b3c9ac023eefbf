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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::SimTime;
use crate::validate::{BROKER, Validator};

mod latency;
mod link;
mod loss;

pub use latency::{EmpiricalSamples, Latency, SamplesError};
pub use link::{DEFAULT_HEADER_BYTES, LinkModel, LinkPatch, LinkSpec, Ordering};
pub use loss::Loss;

pub(crate) use link::{Link, Transit};

impl LinkSpec {
    /// Applies to the reverse link too.
    pub fn both(mut self) -> LinkSpec {
        self.both = true;
        self
    }

    /// Applies the link class `name` first.
    pub fn class(mut self, name: &str) -> LinkSpec {
        self.class = Some(name.to_string());
        self
    }

    /// Sets the latency.
    pub fn latency(mut self, latency: Latency) -> LinkSpec {
        self.latency = Some(latency);
        self
    }

    /// Sets independent (Bernoulli) loss with probability `p`.
    pub fn loss(mut self, p: f64) -> LinkSpec {
        self.loss = Some(Loss::bernoulli(p));
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
    /// Link classes by name (`[network.class.lte]`): named sets of changes
    /// that a `[[network.link]]` applies with `class = "lte"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class: BTreeMap<String, LinkPatch>,
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
                    self.default.with(&link.patch()).validate(v);
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
                let model = base.with(&spec.patch());
                models.insert(key, model);
            }
        }
        models
    }
}

/// The network at run time: every directed link, and for each agent the
/// path (a list of links) from it to the broker and from the broker to it.
/// The engine sends a message one link at a time, by link id.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    links: Vec<Link>,
    /// The node each link leads to (an agent index, or [`Network::BROKER`]).
    #[allow(dead_code)] // read by multi-hop routing, which lands next
    to: Vec<u32>,
    /// Per agent: its links to the broker, in order.
    up: Vec<Box<[u32]>>,
    /// Per agent: the links from the broker to it, in order.
    down: Vec<Box<[u32]>>,
}

impl Network {
    /// The node id of the broker in [`Network::link_end`].
    pub(crate) const BROKER: u32 = u32::MAX - 1;

    /// A star: the broker in the middle, one uplink and one downlink per
    /// agent, each with its model from `spec`.
    pub(crate) fn star(agent_names: &[String], seed: u64, env: u64, spec: &NetworkSpec) -> Network {
        let changed = spec.changed();
        let link = |a: &str, b: &str| {
            let model = changed.get(&(a, b)).unwrap_or(&spec.default);
            Link::new(model, seed, env, &format!("{a}->{b}"))
        };
        let n = agent_names.len() as u32;
        let mut links = Vec::with_capacity(2 * n as usize);
        let mut to = Vec::with_capacity(2 * n as usize);
        for name in agent_names {
            links.push(link(name, BROKER));
            to.push(Network::BROKER);
        }
        for (i, name) in agent_names.iter().enumerate() {
            links.push(link(BROKER, name));
            to.push(i as u32);
        }
        Network {
            links,
            to,
            up: (0..n).map(|i| Box::from([i])).collect(),
            down: (0..n).map(|i| Box::from([n + i])).collect(),
        }
    }

    /// The `hop`-th link (from 0) on agent `agent`'s path to the broker.
    #[inline]
    pub(crate) fn up_link(&self, agent: u32, hop: usize) -> Option<u32> {
        self.up[agent as usize].get(hop).copied()
    }

    /// The `hop`-th link (from 0) on the broker's path to agent `agent`.
    #[inline]
    pub(crate) fn down_link(&self, agent: u32, hop: usize) -> Option<u32> {
        self.down[agent as usize].get(hop).copied()
    }

    /// The node link `link` leads to.
    #[allow(dead_code)] // read by multi-hop routing, which lands next
    #[inline]
    pub(crate) fn link_end(&self, link: u32) -> u32 {
        self.to[link as usize]
    }

    /// Sends a message of `bytes` payload bytes on link `link` at `now`.
    #[inline]
    pub(crate) fn send(&mut self, link: u32, now: SimTime, bytes: u64) -> Transit {
        self.links[link as usize].transmit(now, bytes, 1.0)
    }

    /// The duplicate made by the last send on `link`, if any.
    #[inline]
    pub(crate) fn duplicate(&mut self, link: u32) -> Option<Transit> {
        self.links[link as usize].take_duplicate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::time::SimDuration;

    fn issue_paths(f: impl FnOnce(&mut Validator)) -> Vec<String> {
        let mut v = Validator::new();
        f(&mut v);
        v.issues().iter().map(|i| i.path.to_string()).collect()
    }

    #[test]
    fn validation_names_every_key() {
        let bad = LinkModel {
            loss: Loss::bernoulli(1.5),
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
            links: vec![
                LinkSpec::new("a", "broker").both().loss(0.1),
                LinkSpec::new("broker", "a").loss(0.2),
                LinkSpec::new("ghost", "broker"),
                LinkSpec::new("a", "b"),
                LinkSpec::new("a", "broker").loss(2.0),
            ],
            ..NetworkSpec::default()
        };
        let is_agent = |n: &str| n == "a" || n == "b";
        assert_eq!(
            issue_paths(|v| spec.validate(v, &is_agent)),
            ["link[2].from", "link[3].to", "link[4].loss"]
        );
        let changed = spec.changed();
        assert_eq!(changed[&("broker", "a")].loss, Loss::bernoulli(0.2));
        assert_eq!(changed[&("a", "broker")].loss, Loss::bernoulli(2.0));
        assert!(!changed.contains_key(&("b", "broker")));
    }

    #[test]
    fn star_topology_has_an_uplink_and_a_downlink_per_agent() {
        let names = vec!["a".to_string(), "b".to_string()];
        let net = Network::star(&names, 1, 0, &NetworkSpec::default());
        assert_eq!(net.links.len(), 4);
        assert_eq!((net.up_link(1, 0), net.up_link(1, 1)), (Some(1), None));
        assert_eq!((net.down_link(0, 0), net.link_end(2)), (Some(2), 0));
        assert_eq!(net.link_end(0), Network::BROKER);
    }
}
