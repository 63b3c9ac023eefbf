//! The simulated network: link models (latency, loss, ordering), the
//! `[network]` table that sets them, the topology they sit in, and the
//! links themselves.
//!
//! Models are plain data that round-trip through serde (the scenario format
//! reads them directly: `[network.default]` is a [`LinkModel`],
//! `[network.class.NAME]` a [`LinkPatch`], each `[[network.router]]` a
//! [`RouterSpec`], each `[[network.edge]]` an [`EdgeSpec`], each
//! `[[network.link]]` a [`LinkSpec`]) and compile into samplers once, at
//! build time. Every link owns its RNG streams, `link/{from}->{to}/latency`,
//! `link/{from}->{to}/loss` and so on, so changing one link's parameters
//! never changes another link's draws.
//!
//! The topology (`topology.rs`): agents, the broker and routers joined by
//! edges, a directed link each way; an agent on no edge is joined to the
//! broker (the star). Each agent's path to the broker and back is its route
//! of least expected latency, looked up by agent index and hop on the hot
//! path. Edges and link specs name nodes through selectors (`select.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::SimTime;
use crate::validate::{Invalid, KeyPath, Validator};

mod faults;
mod latency;
mod link;
mod loss;
mod select;
mod topology;

pub use crate::trace::FaultKind;
pub use faults::{CrashState, FaultSpec};
pub use latency::{ADVERSARIAL_TAIL, Delays, EmpiricalSamples, Latency, SamplesError};
pub use link::{DEFAULT_HEADER_BYTES, Link, LinkModel, LinkPatch, LinkSpec, Ordering, Transit};
pub use loss::Loss;
pub use select::Selector;
pub use topology::{EdgeSpec, MAX_LINK_CHANGES, MAX_LINKS, RouterSpec};

pub(crate) use faults::{Faults, Topo, Transition};
pub(crate) use latency::LatencySampler;

pub(crate) use select::glob_match;

/// The faults resolved against the network's nodes and links (agents,
/// broker, routers), every problem reported to `v` (keys relative to the
/// `fault` list). If the network itself is invalid (reported elsewhere),
/// only the faults' own parameters are checked.
pub(crate) fn resolve_faults(
    network: &NetworkSpec,
    faults: &[FaultSpec],
    agents: &[String],
    seed: u64,
    env: u64,
    v: &mut Validator,
) -> Faults {
    let agent_refs: Vec<&str> = agents.iter().map(String::as_str).collect();
    let Some(t) = Topology::resolve(network, &agent_refs, &mut Validator::new()) else {
        for (i, f) in faults.iter().enumerate() {
            v.index(i, |v| f.validate(v));
        }
        return Faults::default();
    };
    let resolver = select::Resolver::new(&t.names);
    let select = |pattern: &str| -> Result<Vec<&str>, String> {
        let hits = resolver.resolve(pattern)?;
        Ok(hits.into_iter().map(|i| t.names[i].as_str()).collect())
    };
    let links = t
        .links
        .iter()
        .map(|l| {
            (
                t.names[l.from as usize].as_str(),
                t.names[l.to as usize].as_str(),
            )
        })
        .collect();
    Faults::resolve(
        faults,
        &Topo {
            agents,
            links,
            select: &select,
        },
        seed,
        env,
        v,
    )
}

use topology::Topology;

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
}

/// The `[network]` table: the default model, link classes, the topology
/// (routers and edges) and the per-link changes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Model of every link before classes and link specs change it.
    #[serde(default)]
    pub default: LinkModel,
    /// Link classes by name (`[network.class.lte]`): named sets of changes
    /// that an edge or a `[[network.link]]` applies with `class = "lte"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class: BTreeMap<String, LinkPatch>,
    /// Routers (`[[network.router]]`): nodes that forward between edges.
    #[serde(default, rename = "router", skip_serializing_if = "Vec::is_empty")]
    pub routers: Vec<RouterSpec>,
    /// Edges (`[[network.edge]]`): physical connections, a link each way.
    /// An agent on none is joined to the broker.
    #[serde(default, rename = "edge", skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<EdgeSpec>,
    /// Per-link changes, applied in order (`[[network.link]]`).
    #[serde(default, rename = "link", skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSpec>,
}

impl NetworkSpec {
    /// Checks everything (keys relative to the `[network]` table) over the
    /// agents `agents` (in id order): the default model, router names,
    /// every edge and link selector, class names, links that no spec
    /// matches, agents without a route to or from the broker, and the
    /// model of every link after its classes and specs (reported where the
    /// value at fault was written).
    pub fn validate(&self, v: &mut Validator, agents: &[&str]) {
        let _ = Topology::resolve(self, agents, v);
    }

    /// Loads the measured delay samples of every `empirical` latency (the
    /// default, each class, each link change), resolving relative paths
    /// from `base_dir`; a file that cannot be read or parsed is reported at
    /// its `path` key. Call before [`NetworkSpec::validate`].
    pub fn load(&mut self, base_dir: &std::path::Path, v: &mut Validator) {
        v.at("default", |v| {
            v.at("latency", |v| self.default.latency.load(base_dir, v))
        });
        v.at("class", |v| {
            for (name, patch) in &mut self.class {
                if let Some(l) = patch.latency.as_mut() {
                    v.at(name, |v| v.at("latency", |v| l.load(base_dir, v)));
                }
            }
        });
        v.at("link", |v| {
            for (i, spec) in self.links.iter_mut().enumerate() {
                if let Some(l) = spec.latency.as_mut() {
                    v.index(i, |v| v.at("latency", |v| l.load(base_dir, v)));
                }
            }
        });
    }

    /// The files the network reads (empirical delay samples), as written.
    pub fn files(&self) -> Vec<&std::path::Path> {
        std::iter::once(&self.default.latency)
            .chain(self.class.values().filter_map(|p| p.latency.as_ref()))
            .chain(self.links.iter().filter_map(|l| l.latency.as_ref()))
            .filter_map(Latency::file)
            .collect()
    }

    /// The resolved network as text: a summary line, every directed link
    /// `from -> to` with its model on one line (latency, loss, ordering, and
    /// every other field that differs from the built-in default), then each
    /// agent's route when it has more than one hop. Errors are those of
    /// [`NetworkSpec::validate`], at `network.…` keys.
    pub fn explain<S: AsRef<str>>(&self, agents: &[S]) -> Result<String, Invalid> {
        let names: Vec<&str> = agents.iter().map(AsRef::as_ref).collect();
        let mut v = Validator::at_path(KeyPath::root().key("network"));
        match Topology::resolve(self, &names, &mut v) {
            Some(t) => Ok(t.render()),
            None => Err(v.finish().expect_err("resolution failed with issues")),
        }
    }
}

/// The network at run time: every directed link, and for each agent the
/// path (a list of links) from it to the broker and from the broker to it.
/// The engine sends a message one link at a time, by link id.
///
/// Node ids (as [`Network::link_end`] returns them): agent `i` is `i`, the
/// broker [`Network::BROKER`], router `r` (the `r`-th `[[network.router]]`,
/// from 0) `Network::ROUTER_BASE + r`.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    links: Vec<Link>,
    /// The node each link leads to.
    to: Vec<u32>,
    /// Agent `a`'s links to the broker are `up[up_at[a]..up_at[a + 1]]`.
    up_at: Vec<u32>,
    up: Vec<u32>,
    /// The links from the broker to agent `a`: `down[down_at[a]..down_at[a + 1]]`.
    down_at: Vec<u32>,
    down: Vec<u32>,
    /// Router names, by router index.
    routers: Vec<String>,
    /// `Some(n)` for a plain star of `n` agents (agent `a`'s uplink is link
    /// `a`, its downlink `n + a`): the hot path then reads no path table.
    star: Option<u32>,
}

impl Network {
    /// The node id of the broker in [`Network::link_end`] (the trace's
    /// node id of the broker too, as agent and router ids are).
    pub(crate) const BROKER: u32 = crate::trace::NODE_BROKER;
    /// The node id of router 0 in [`Network::link_end`]; router `r` is
    /// `ROUTER_BASE + r`. Agent ids stay below it (2^31 agents would
    /// exceed every limit first).
    pub(crate) const ROUTER_BASE: u32 = crate::trace::NODE_ROUTER_BASE;

    /// The network of `spec` over the agents `agent_names` (in id order):
    /// every link with its own RNG streams (named `{from}->{to}`), every
    /// agent's routes. Errors are [`NetworkSpec::validate`]'s.
    pub(crate) fn new(
        spec: &NetworkSpec,
        agent_names: &[String],
        seed: u64,
        env: u64,
        delays: Delays,
        distinct_arrivals: bool,
    ) -> Result<Network, Invalid> {
        let names: Vec<&str> = agent_names.iter().map(String::as_str).collect();
        let mut v = Validator::at_path(KeyPath::root().key("network"));
        let Some(t) = Topology::resolve(spec, &names, &mut v) else {
            return Err(v.finish().expect_err("resolution failed with issues"));
        };
        let n = t.agents as u32;
        let id = |node: u32| match node.cmp(&n) {
            std::cmp::Ordering::Less => node,
            std::cmp::Ordering::Equal => Network::BROKER,
            std::cmp::Ordering::Greater => Network::ROUTER_BASE + (node - n - 1),
        };
        let links = t
            .links
            .iter()
            .map(|l| {
                let name = format!("{}->{}", t.names[l.from as usize], t.names[l.to as usize]);
                {
                    let link = Link::with_delays(&l.model, seed, env, &name, delays);
                    if distinct_arrivals {
                        link.distinct_arrivals()
                    } else {
                        link
                    }
                }
            })
            .collect();
        let flat = |paths: &[Vec<u32>]| {
            let mut at = Vec::with_capacity(paths.len() + 1);
            at.push(0u32);
            let mut all = Vec::with_capacity(paths.iter().map(Vec::len).sum());
            for p in paths {
                all.extend_from_slice(p);
                at.push(all.len() as u32);
            }
            (at, all)
        };
        let (up_at, up) = flat(&t.up);
        let (down_at, down) = flat(&t.down);
        let star = (0..n as usize)
            .all(|a| t.up[a] == [a as u32] && t.down[a] == [n + a as u32])
            .then_some(n);
        Ok(Network {
            star,
            links,
            to: t.links.iter().map(|l| id(l.to)).collect(),
            up_at,
            up,
            down_at,
            down,
            routers: t.names[t.agents + 1..].to_vec(),
        })
    }

    /// The `hop`-th link (from 0) on agent `agent`'s path to the broker.
    #[inline]
    pub(crate) fn up_link(&self, agent: u32, hop: usize) -> Option<u32> {
        if self.star.is_some() {
            return (hop == 0).then_some(agent);
        }
        let a = agent as usize;
        let (start, end) = (self.up_at[a] as usize, self.up_at[a + 1] as usize);
        (hop < end - start).then(|| self.up[start + hop])
    }

    /// How many links agent `agent`'s path to the broker has.
    #[inline]
    pub(crate) fn up_hops(&self, agent: u32) -> usize {
        if self.star.is_some() {
            return 1;
        }
        let a = agent as usize;
        (self.up_at[a + 1] - self.up_at[a]) as usize
    }

    /// How many links the broker's path to agent `agent` has.
    #[inline]
    pub(crate) fn down_hops(&self, agent: u32) -> usize {
        if self.star.is_some() {
            return 1;
        }
        let a = agent as usize;
        (self.down_at[a + 1] - self.down_at[a]) as usize
    }

    /// The `hop`-th link (from 0) on the broker's path to agent `agent`.
    #[inline]
    pub(crate) fn down_link(&self, agent: u32, hop: usize) -> Option<u32> {
        if let Some(n) = self.star {
            return (hop == 0).then_some(n + agent);
        }
        let a = agent as usize;
        let (start, end) = (self.down_at[a] as usize, self.down_at[a + 1] as usize);
        (hop < end - start).then(|| self.down[start + hop])
    }

    /// The node link `link` leads to: an agent index, [`Network::BROKER`],
    /// or `Network::ROUTER_BASE + r` for router `r`.
    #[inline]
    pub(crate) fn link_end(&self, link: u32) -> u32 {
        self.to[link as usize]
    }

    /// The routers' names, by router index (`link_end` −
    /// `Network::ROUTER_BASE`).
    pub(crate) fn router_names(&self) -> &[String] {
        &self.routers
    }

    /// Sends a message of `bytes` payload bytes on link `link` at `now`,
    /// its delay draw scaled by `factor` (1 unless a degradation holds).
    #[inline]
    pub(crate) fn send(&mut self, link: u32, now: SimTime, bytes: u64, factor: f64) -> Transit {
        self.links[link as usize].transmit(now, bytes, factor)
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

    /// Resolves `spec` over `agents`: the topology, or every issue as
    /// `path: message`.
    fn resolve(spec: &NetworkSpec, agents: &[&str]) -> Result<Topology, Vec<String>> {
        let mut v = Validator::new();
        match Topology::resolve(spec, agents, &mut v) {
            Some(t) => Ok(t),
            None => Err(v.issues().iter().map(|i| i.to_string()).collect()),
        }
    }

    fn paths_of(issues: &[String]) -> Vec<&str> {
        issues
            .iter()
            .map(|i| i.split(": ").next().unwrap())
            .collect()
    }

    fn constant(ms: u64) -> Latency {
        Latency::Constant {
            value: SimDuration::from_millis(ms),
        }
    }

    fn class(ms: u64) -> LinkPatch {
        LinkPatch {
            latency: Some(constant(ms)),
            ..LinkPatch::default()
        }
    }

    /// `topology`'s route of `agent` (up or down) as node names.
    fn route(t: &Topology, agent: &str, up: bool) -> Vec<String> {
        let a = t.names.iter().position(|n| n == agent).unwrap();
        let path = if up { &t.up[a] } else { &t.down[a] };
        let mut nodes = vec![t.names[t.links[path[0] as usize].from as usize].clone()];
        nodes.extend(
            path.iter()
                .map(|&l| t.names[t.links[l as usize].to as usize].clone()),
        );
        nodes
    }

    fn model<'a>(t: &'a Topology, from: &str, to: &str) -> &'a LinkModel {
        let l = t
            .links
            .iter()
            .find(|l| t.names[l.from as usize] == from && t.names[l.to as usize] == to)
            .unwrap_or_else(|| panic!("no link {from} -> {to}"));
        &l.model
    }

    #[test]
    fn link_specs_select_nodes_and_apply_in_order() {
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
        let err = resolve(&spec, &["a", "b"]).unwrap_err();
        assert_eq!(
            paths_of(&err),
            ["link[2].from", "link[3].to", "link[4].loss"],
            "{err:?}"
        );
        assert!(
            err[1].ends_with("no link from \"a\" to \"b\"; links from a go to: broker"),
            "{err:?}"
        );
        assert!(err[2].ends_with("got 2 (link a -> broker)"), "{err:?}");
        let spec = NetworkSpec {
            links: spec.links[..2].to_vec(),
            ..spec
        };
        let t = resolve(&spec, &["a", "b"]).unwrap();
        assert_eq!(model(&t, "a", "broker").loss, Loss::bernoulli(0.1));
        assert_eq!(model(&t, "broker", "a").loss, Loss::bernoulli(0.2));
        assert_eq!(model(&t, "b", "broker"), &LinkModel::default());
    }

    #[test]
    fn classes_apply_edge_first_then_link_specs_in_file_order() {
        let spec = NetworkSpec {
            class: BTreeMap::from([
                (
                    "wan".to_string(),
                    LinkPatch {
                        loss: Some(Loss::bernoulli(0.01)),
                        rate_bps: Some(1_000_000),
                        ..class(20)
                    },
                ),
                ("lte".to_string(), class(40)),
            ]),
            routers: vec![RouterSpec::new("gw")],
            edges: vec![
                EdgeSpec::new("m.*", "gw"),
                EdgeSpec::new("gw", "broker").class("wan"),
            ],
            links: vec![
                LinkSpec::new("gw", "broker").class("lte"),
                LinkSpec::new("gw", "broker").loss(0.5),
                LinkSpec::new("m.*", "gw").ordering(Ordering::Unordered),
            ],
            ..NetworkSpec::default()
        };
        let t = resolve(&spec, &["env", "m.a", "m.b"]).unwrap();
        let up = model(&t, "gw", "broker");
        // wan, then lte's latency, then the spec's loss.
        assert_eq!(
            (&up.latency, &up.loss, up.rate_bps),
            (&constant(40), &Loss::bernoulli(0.5), 1_000_000)
        );
        // The reverse direction has the edge's class only.
        let down = model(&t, "broker", "gw");
        assert_eq!(
            (&down.latency, &down.loss),
            (&constant(20), &Loss::bernoulli(0.01))
        );
        assert_eq!(model(&t, "m.b", "gw").ordering, Ordering::Unordered);
        assert_eq!(model(&t, "gw", "m.b").ordering, Ordering::Fifo);
        // env is on no edge: it keeps its star links.
        assert_eq!(route(&t, "env", true), ["env", "broker"]);
        assert_eq!(route(&t, "m.a", true), ["m.a", "gw", "broker"]);
        assert_eq!(route(&t, "m.a", false), ["broker", "gw", "m.a"]);
    }

    #[test]
    fn routes_take_the_least_expected_latency_then_fewest_hops_then_lowest_node() {
        // A diamond: a reaches the broker through r1 or r2.
        let diamond = |r1_up: u64, r2_up: u64, direct: Option<u64>| {
            let mut spec = NetworkSpec {
                class: BTreeMap::from([
                    ("one".to_string(), class(1)),
                    ("r1".to_string(), class(r1_up)),
                    ("r2".to_string(), class(r2_up)),
                ]),
                routers: vec![RouterSpec::new("r1"), RouterSpec::new("r2")],
                edges: vec![
                    EdgeSpec::new("a", "r*").class("one"),
                    EdgeSpec::new("r1", "broker").class("r1"),
                    EdgeSpec::new("r2", "broker").class("r2"),
                ],
                ..NetworkSpec::default()
            };
            if let Some(ms) = direct {
                spec.class.insert("direct".into(), class(ms));
                spec.edges
                    .push(EdgeSpec::new("a", "broker").class("direct"));
            }
            let t = resolve(&spec, &["a"]).unwrap();
            (route(&t, "a", true), route(&t, "a", false))
        };
        let via = |r: &str| {
            (
                vec!["a".to_string(), r.to_string(), "broker".to_string()],
                vec!["broker".to_string(), r.to_string(), "a".to_string()],
            )
        };
        assert_eq!(diamond(5, 3, None), via("r2"));
        assert_eq!(diamond(3, 5, None), via("r1"));
        // A tie: the lower node (r1 was declared first).
        assert_eq!(diamond(4, 4, None), via("r1"));
        // Cheaper direct link wins; an equal one wins on hops.
        assert_eq!(diamond(4, 4, Some(3)).0, ["a", "broker"]);
        assert_eq!(diamond(4, 4, Some(5)).0, ["a", "broker"]);
        assert_eq!(diamond(4, 4, Some(6)), via("r1"));
    }

    #[test]
    fn a_rate_adds_the_header_serialisation_to_the_cost() {
        let spec = NetworkSpec {
            class: BTreeMap::from([(
                "slow".to_string(),
                LinkPatch {
                    rate_bps: Some(8_000), // 40 bytes: 40 ms
                    ..LinkPatch::default()
                },
            )]),
            routers: vec![RouterSpec::new("r1"), RouterSpec::new("r2")],
            edges: vec![
                EdgeSpec::new("a", "r1").class("slow"),
                EdgeSpec::new("a", "r2"),
                EdgeSpec::new("r*", "broker"),
            ],
            links: vec![LinkSpec::new("r2", "broker").both().latency(constant(30))],
            ..NetworkSpec::default()
        };
        let t = resolve(&spec, &["a"]).unwrap();
        assert_eq!(route(&t, "a", true), ["a", "r2", "broker"]);
    }

    #[test]
    fn routes_never_pass_through_another_agent() {
        // m is on both routers; x is on r2 only, and r2 reaches the broker
        // only through m: x has no route.
        let spec = NetworkSpec {
            routers: vec![RouterSpec::new("r1"), RouterSpec::new("r2")],
            edges: vec![
                EdgeSpec::new("m", "r*"),
                EdgeSpec::new("x", "r2"),
                EdgeSpec::new("r1", "broker"),
            ],
            ..NetworkSpec::default()
        };
        let err = resolve(&spec, &["m", "x"]).unwrap_err();
        assert_eq!(
            err,
            ["edge[1]: agent \"x\" has no route to or from the broker (its edges join it to: r2)"]
        );
    }

    #[test]
    fn topology_errors_are_all_reported() {
        let spec = NetworkSpec {
            class: BTreeMap::from([
                ("lte".to_string(), class(40)),
                (
                    "bad".to_string(),
                    LinkPatch {
                        loss: Some(Loss::bernoulli(3.0)),
                        ..LinkPatch::default()
                    },
                ),
            ]),
            routers: vec![
                RouterSpec::new("gw"),
                RouterSpec::new("gw"),
                RouterSpec::new("a"),
                RouterSpec::new("b/c"),
                RouterSpec::new("lonely"),
            ],
            edges: vec![
                EdgeSpec::new("a", "b"),
                EdgeSpec::new("gw", "gw4").class("lte"),
                EdgeSpec::new("", "gw").class("wifi"),
                EdgeSpec::new("gw", "gw"),
                EdgeSpec::new("c", "gw"),
            ],
            links: vec![
                LinkSpec::new("c", "gw").class("bad"),
                LinkSpec::new("c", "gw").class("bad"),
                LinkSpec::new("c", "*").class("nope"),
            ],
            ..NetworkSpec::default()
        };
        let err = resolve(&spec, &["a", "b", "c"]).unwrap_err();
        assert_eq!(
            paths_of(&err),
            [
                "router[1].name",
                "router[2].name",
                "router[3].name",
                "edge[0]",
                "edge[1].b",
                "edge[2].a",
                "edge[2].class",
                "edge[3]",
                "link[2].class",
                "class.bad.loss",
            ],
            "{err:#?}"
        );
        assert!(
            err[3].contains("join agent \"a\" to agent \"b\""),
            "{}",
            err[3]
        );
        assert!(err[6].ends_with("no link class \"wifi\"; the classes are: bad, lte"));
        assert!(err[9].ends_with("got 3 (link c -> gw)"), "{}", err[9]);
    }

    #[test]
    fn an_edge_between_two_large_patterns_is_refused_before_it_is_made() {
        let agents: Vec<String> = (0..600).map(|i| format!("a{i}")).collect();
        let agents: Vec<&str> = agents.iter().map(String::as_str).collect();
        let spec = NetworkSpec {
            routers: (0..1000)
                .map(|i| RouterSpec::new(&format!("r{i}")))
                .collect(),
            edges: vec![EdgeSpec::new("a*", "r*")],
            ..NetworkSpec::default()
        };
        let err = resolve(&spec, &agents).unwrap_err();
        assert_eq!(paths_of(&err), ["edge[0]"]);
        assert!(err[0].contains("up to 1200000 links"), "{err:?}");
    }

    #[test]
    fn the_star_numbers_uplinks_then_downlinks() {
        let names = vec!["a".to_string(), "b".to_string()];
        let net = Network::new(
            &NetworkSpec::default(),
            &names,
            1,
            0,
            Delays::Sampled,
            false,
        )
        .unwrap();
        assert_eq!(net.links.len(), 4);
        assert_eq!((net.up_link(1, 0), net.up_link(1, 1)), (Some(1), None));
        assert_eq!((net.down_link(0, 0), net.link_end(2)), (Some(2), 0));
        assert_eq!(net.link_end(0), Network::BROKER);
        assert!(net.router_names().is_empty());
    }

    #[test]
    fn routers_have_ids_after_the_router_base() {
        let spec = NetworkSpec {
            routers: vec![RouterSpec::new("r0"), RouterSpec::new("r1")],
            edges: vec![EdgeSpec::new("b", "r1"), EdgeSpec::new("r1", "broker")],
            ..NetworkSpec::default()
        };
        let names = vec!["a".to_string(), "b".to_string()];
        let net = Network::new(&spec, &names, 1, 0, Delays::Sampled, false).unwrap();
        assert_eq!(net.router_names(), ["r0", "r1"]);
        // b -> r1 -> broker, and back.
        let up: Vec<u32> = (0..).map_while(|h| net.up_link(1, h)).collect();
        let ends: Vec<u32> = up.iter().map(|&l| net.link_end(l)).collect();
        assert_eq!(ends, [Network::ROUTER_BASE + 1, Network::BROKER]);
        let down: Vec<u32> = (0..).map_while(|h| net.down_link(1, h)).collect();
        let ends: Vec<u32> = down.iter().map(|&l| net.link_end(l)).collect();
        assert_eq!(ends, [Network::ROUTER_BASE + 1, 1]);
        assert_eq!(net.up_link(0, 1), None);
        let bad = NetworkSpec {
            edges: vec![EdgeSpec::new("a", "r9")],
            ..spec
        };
        assert!(
            Network::new(&bad, &names, 1, 0, Delays::Sampled, false)
                .unwrap_err()
                .has("network.edge[0].b")
        );
    }
}
