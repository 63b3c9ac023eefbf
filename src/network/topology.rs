//! The topology: which directed links exist, the model of each, and every
//! agent's route to and from the broker. Resolved from a [`NetworkSpec`]
//! and the agent names, once per build (and once more to validate).
//!
//! **Nodes**, in node order: the agents (in id order), `broker`, then the
//! routers (`[[network.router]]`, in file order).
//!
//! **Links.** Each `[[network.edge]]` joins every node its `a` selects to
//! every node its `b` selects, with a directed link each way. An agent on no
//! edge keeps its implicit edge to the broker, so a network without edges
//! is the star. Two agents are never joined (an agent talks only through
//! the broker, so such an edge could only carry transit: it is an error).
//! Links are numbered in `(from, to)` node order, so a star numbers every
//! uplink before every downlink, as it always has.
//!
//! **Models.** Each link starts from `[network.default]`; then the class
//! of each edge that made it (both directions), in file order; then every
//! `[[network.link]]` whose `from` and `to` select its ends (with `both`,
//! also the reverse), in file order: its `class`, then the fields it sets.
//!
//! **Routes.** An agent's uplink path is the route of least expected
//! latency from it to the broker, its downlink path the one from the broker
//! to it. A link's cost is its latency's expected value plus, with a
//! `rate_bps`, the serialisation time of `header_bytes`, in whole
//! nanoseconds. Routes run through routers only, never through another
//! agent. Ties go to the route of fewer hops, then to the lowest node at
//! each step (the uplink's next hop, the downlink's previous hop), so a
//! route is a pure function of the spec.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use petgraph::algo::dijkstra;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{EdgeRef, Reversed};
use serde::{Deserialize, Serialize};

use crate::validate::{BROKER, KeyPath, Seg, Validator, check_agent_name};

use super::select::Resolver;
use super::{Latency, LinkModel, LinkPatch, Loss, NetworkSpec, Ordering};

/// One `[[network.router]]`: a node that forwards messages between its
/// edges. Its name follows the agent-name rule and is no agent's name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    /// The router's name (as an edge or link selector matches it).
    pub name: String,
}

impl RouterSpec {
    /// A router called `name`.
    pub fn new(name: &str) -> RouterSpec {
        RouterSpec {
            name: name.to_string(),
        }
    }
}

/// One `[[network.edge]]`: a physical connection, with a directed link each
/// way, between every node `a` selects and every node `b` selects (a name,
/// or a pattern where `*` matches any run of characters). Pairs of a node
/// with itself are skipped; two agents may not be joined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    /// One end: a node name or pattern.
    pub a: String,
    /// The other end: a node name or pattern.
    pub b: String,
    /// A link class (`[network.class.NAME]`) both directions take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

impl EdgeSpec {
    /// An edge between the nodes `a` and `b` select.
    pub fn new(a: &str, b: &str) -> EdgeSpec {
        EdgeSpec {
            a: a.to_string(),
            b: b.to_string(),
            class: None,
        }
    }

    /// Its links take the class `name`.
    pub fn class(mut self, name: &str) -> EdgeSpec {
        self.class = Some(name.to_string());
        self
    }
}

/// The most directed links the `[[network.edge]]`s of a network may make
/// (an edge between two large patterns could otherwise ask for billions).
/// The implicit star links of the agents on no edge do not count.
pub const MAX_LINKS: usize = 1 << 20;

/// The most (link spec, link) pairs the `[[network.link]]`s of a network
/// may apply, all specs together (a few patterns over a large star stay far
/// below it; a spec file of thousands of `"*"` patterns does not).
pub const MAX_LINK_CHANGES: usize = 1 << 24;

/// One directed link of a resolved topology.
#[derive(Clone, Debug)]
pub(crate) struct TopoLink {
    pub(crate) from: u32,
    pub(crate) to: u32,
    pub(crate) model: LinkModel,
}

/// A resolved, valid topology (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    /// Node names in node order: agents, `broker`, routers.
    pub(crate) names: Vec<String>,
    /// How many of the nodes are agents.
    pub(crate) agents: usize,
    /// Every directed link, in `(from, to)` node order.
    pub(crate) links: Vec<TopoLink>,
    /// Per agent: the links of its route to the broker.
    pub(crate) up: Vec<Vec<u32>>,
    /// Per agent: the links of the broker's route to it.
    pub(crate) down: Vec<Vec<u32>>,
}

/// Where a change to a link was written: its key path (relative to the
/// `[network]` table) and the fields it sets.
struct Origin<'a> {
    path: KeyPath,
    patch: std::borrow::Cow<'a, LinkPatch>,
}

/// A route's cost: expected nanoseconds, then hops (so a tie goes to the
/// shorter route, and every link adds to the cost).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Cost {
    ns: u64,
    hops: u32,
}

impl std::ops::Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost {
            ns: self.ns.saturating_add(o.ns),
            hops: self.hops.saturating_add(o.hops),
        }
    }
}

impl Topology {
    /// Resolves `spec` over the agents `agents` (in id order), reporting
    /// every problem to `v` at keys relative to the `[network]` table.
    /// `None` if there was any.
    pub(crate) fn resolve(
        spec: &NetworkSpec,
        agents: &[&str],
        v: &mut Validator,
    ) -> Option<Topology> {
        let before = v.issues().len();
        v.at("default", |v| spec.default.validate(v));
        let n = agents.len();
        let broker = n as u32;

        // Nodes: agents, broker, routers.
        let mut names: Vec<String> = agents.iter().map(|a| a.to_string()).collect();
        names.push(BROKER.to_string());
        let agent_set: BTreeSet<&str> = agents.iter().copied().collect();
        v.at("router", |v| {
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, r) in spec.routers.iter().enumerate() {
                let name = r.name.as_str();
                v.index(i, |v| {
                    if let Err(m) = check_agent_name(name) {
                        v.fail("name", m);
                    } else if agent_set.contains(name) {
                        v.fail(
                            "name",
                            format!(
                                "{name:?} is an agent's name; a router needs a name of its own"
                            ),
                        );
                    } else if let Some(first) = seen.get(name) {
                        v.fail(
                            "name",
                            format!("router {name:?} is defined twice (first at router[{first}])"),
                        );
                    } else {
                        seen.insert(name, i);
                        names.push(name.to_string());
                    }
                });
            }
        });
        let nodes = names.len();
        let mut resolver = Resolver::new(&names);
        // `broker` is the broker, even beside an agent wrongly called so.
        resolver.prefer(n);

        // Edges, then the implicit star edges: directed links with the
        // edges (by index) whose class they take.
        let mut pairs: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
        let mut first_edge: Vec<Option<usize>> = vec![None; n];
        v.at("edge", |v| {
            for (i, e) in spec.edges.iter().enumerate() {
                v.index(i, |v| {
                    let a = resolve_at(v, &resolver, "a", &e.a);
                    let b = resolve_at(v, &resolver, "b", &e.b);
                    let class = class_at(v, spec, e.class.as_deref());
                    let (Some(a), Some(b), Some(class)) = (a, b, class) else {
                        return;
                    };
                    if let Some((x, y)) = agent_pair(&a, &b, n) {
                        v.fail(
                            "",
                            format!(
                                "this edge would join agent {:?} to agent {:?}; an agent \
                                 connects only to routers and the broker",
                                names[x], names[y]
                            ),
                        );
                        return;
                    }
                    let count = a.len().saturating_mul(b.len()).saturating_mul(2);
                    if pairs.len().saturating_add(count) > MAX_LINKS {
                        v.fail(
                            "",
                            format!(
                                "this edge would make up to {count} links, more than the \
                                 {MAX_LINKS} the edges of a network may make"
                            ),
                        );
                        return;
                    }
                    let mut made = false;
                    for &x in &a {
                        for &y in &b {
                            if x == y {
                                continue;
                            }
                            made = true;
                            for key in [(x as u32, y as u32), (y as u32, x as u32)] {
                                let classes = pairs.entry(key).or_default();
                                if class.is_some() {
                                    classes.push(i);
                                }
                            }
                            for end in [x, y] {
                                if end < n && first_edge[end].is_none() {
                                    first_edge[end] = Some(i);
                                }
                            }
                        }
                    }
                    if !made {
                        v.fail(
                            "",
                            format!(
                                "this edge joins no two nodes: a and b both select only {:?}",
                                names[a[0]]
                            ),
                        );
                    }
                });
            }
        });
        let topology_ok = v.issues().len() == before;
        for (agent, first) in first_edge.iter().enumerate() {
            if first.is_none() {
                pairs.insert((agent as u32, broker), Vec::new());
                pairs.insert((broker, agent as u32), Vec::new());
            }
        }
        let ends: Vec<(u32, u32)> = pairs.keys().copied().collect();
        // The links leaving node `x` are `out[x]..out[x + 1]`.
        let mut out = vec![0usize; nodes + 1];
        for &(from, _) in &ends {
            out[from as usize + 1] += 1;
        }
        for x in 0..nodes {
            out[x + 1] += out[x];
        }

        // Models: the default, edge classes, then link specs.
        let mut origins: Vec<Origin<'_>> = Vec::new();
        let mut applied: Vec<Vec<u32>> = vec![Vec::new(); ends.len()];
        let mut edge_origin: BTreeMap<usize, u32> = BTreeMap::new();
        for (l, classes) in pairs.values().enumerate() {
            for &e in classes {
                let o = *edge_origin.entry(e).or_insert_with(|| {
                    let name = spec.edges[e]
                        .class
                        .as_deref()
                        .expect("only edges with a class");
                    origins.push(Origin {
                        path: class_path(name),
                        patch: std::borrow::Cow::Borrowed(&spec.class[name]),
                    });
                    (origins.len() - 1) as u32
                });
                applied[l].push(o);
            }
        }
        drop(pairs);
        // The chains of the link specs that apply to no link: still
        // checked, on top of the default.
        let mut unapplied: Vec<Vec<u32>> = Vec::new();
        let mut changes = 0usize;
        v.at("link", |v| {
            for (i, s) in spec.links.iter().enumerate() {
                v.index(i, |v| {
                    let from = resolve_at(v, &resolver, "from", &s.from);
                    let to = resolve_at(v, &resolver, "to", &s.to);
                    let class = class_at(v, spec, s.class.as_deref());
                    let mut mine = Vec::new();
                    if let (Some(name), Some(Some(patch))) = (s.class.as_deref(), class) {
                        origins.push(Origin {
                            path: class_path(name),
                            patch: std::borrow::Cow::Borrowed(patch),
                        });
                        mine.push((origins.len() - 1) as u32);
                    }
                    let patch = s.patch();
                    if !patch.is_empty() {
                        origins.push(Origin {
                            path: KeyPath::root().key("link").index(i),
                            patch: std::borrow::Cow::Owned(patch),
                        });
                        mine.push((origins.len() - 1) as u32);
                    }
                    let (Some(from), Some(to), Some(_)) = (from, to, class) else {
                        unapplied.push(mine);
                        return;
                    };
                    if changes > MAX_LINK_CHANGES {
                        return; // reported once, at the spec that went over
                    }
                    let mut hits = Vec::new();
                    let mut collect = |src: &[usize], dst: &[usize]| {
                        for &x in src {
                            for (l, &(_, y)) in
                                ends.iter().enumerate().take(out[x + 1]).skip(out[x])
                            {
                                if dst.binary_search(&(y as usize)).is_ok() {
                                    hits.push(l);
                                }
                            }
                        }
                    };
                    collect(&from, &to);
                    if s.both {
                        collect(&to, &from);
                    }
                    hits.sort_unstable();
                    hits.dedup();
                    if hits.is_empty() {
                        v.fail("to", no_link(s, &from, &ends, &out, &names));
                        unapplied.push(mine);
                        return;
                    }
                    changes = changes.saturating_add(hits.len());
                    if changes > MAX_LINK_CHANGES {
                        unapplied.push(mine);
                        v.fail(
                            "",
                            format!(
                                "the link specs up to this one change {changes} links in all, \
                                 more than {MAX_LINK_CHANGES}; use fewer or narrower selectors"
                            ),
                        );
                        return;
                    }
                    for l in hits {
                        applied[l].extend_from_slice(&mine);
                    }
                });
            }
        });
        let apply = |chain: &[u32]| {
            chain.iter().fold(spec.default.clone(), |m, &o| {
                m.with(&origins[o as usize].patch)
            })
        };
        let models: Vec<LinkModel> = applied.iter().map(|c| apply(c)).collect();

        // Every changed model is checked; a problem is reported where the
        // field at fault was last set (a class, or a link spec), once.
        let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
        let checks = applied
            .iter()
            .enumerate()
            .map(|(l, chain)| (Some(l), chain))
            .chain(unapplied.iter().map(|chain| (None, chain)));
        for (link, chain) in checks {
            if chain.is_empty() {
                continue; // the default, checked above
            }
            let mut mv = Validator::new();
            match link {
                Some(l) => models[l].validate(&mut mv),
                None => apply(chain).validate(&mut mv),
            }
            for issue in mv.issues() {
                let field = match issue.path.segments().first() {
                    Some(Seg::Key(k)) => k.as_str(),
                    _ => "",
                };
                let Some(&o) = chain
                    .iter()
                    .rev()
                    .find(|&&o| origins[o as usize].patch.sets(field))
                else {
                    continue; // the default's value: reported at `default`
                };
                let path = origins[o as usize].path.join(&issue.path);
                if reported.insert((path.to_string(), issue.message.clone())) {
                    let message = match link {
                        Some(l) => {
                            let (from, to) = ends[l];
                            format!(
                                "{} (link {} -> {})",
                                issue.message, names[from as usize], names[to as usize]
                            )
                        }
                        None => issue.message.clone(),
                    };
                    let at = v.path().join(&path);
                    v.fail_at(at, message);
                }
            }
        }

        let links: Vec<TopoLink> = ends
            .iter()
            .zip(models)
            .map(|(&(from, to), model)| TopoLink { from, to, model })
            .collect();
        let (up, down) = routes(&links, n, nodes);
        if topology_ok {
            for a in 0..n {
                let (no_up, no_down) = (up[a].is_none(), down[a].is_none());
                if !(no_up || no_down) {
                    continue;
                }
                let way = match (no_up, no_down) {
                    (true, true) => "to or from",
                    (true, false) => "to",
                    _ => "from",
                };
                let next: Vec<&str> = (out[a]..out[a + 1])
                    .map(|l| names[links[l].to as usize].as_str())
                    .collect();
                let e = first_edge[a].expect("an agent on no edge is on the star");
                v.at("edge", |v| {
                    v.index(e, |v| {
                        v.fail(
                            "",
                            format!(
                                "agent {:?} has no route {way} the broker (its edges join it to: {})",
                                names[a],
                                next.join(", ")
                            ),
                        )
                    })
                });
            }
        }
        if v.issues().len() > before {
            return None;
        }
        Some(Topology {
            names,
            agents: n,
            links,
            up: up.into_iter().map(|p| p.expect("checked")).collect(),
            down: down.into_iter().map(|p| p.expect("checked")).collect(),
        })
    }

    /// The resolved network as text: every directed link with its model,
    /// then every route of more than one hop (see `NetworkSpec::explain`).
    pub(crate) fn render(&self) -> String {
        let routers = self.names.len() - self.agents - 1;
        let routers_text = match routers {
            0 => String::new(),
            1 => ", 1 router".to_string(),
            r => format!(", {r} routers"),
        };
        let mut s = format!(
            "network: {} agents{routers_text} and the broker; {} directed links\n",
            self.agents,
            self.links.len()
        );
        if routers > 0 {
            let _ = writeln!(s, "routers: {}", self.names[self.agents + 1..].join(", "));
        }
        s.push_str("links:\n");
        let default = LinkModel::default();
        for l in &self.links {
            let _ = writeln!(
                s,
                "  {} -> {}: {}",
                self.names[l.from as usize],
                self.names[l.to as usize],
                describe(&l.model, &default)
            );
        }
        let long: Vec<usize> = (0..self.agents)
            .filter(|&a| self.up[a].len() > 1 || self.down[a].len() > 1)
            .collect();
        if long.is_empty() {
            s.push_str("routes: every agent is one hop from the broker\n");
            return s;
        }
        s.push_str("routes of more than one hop:\n");
        for a in long {
            for (way, path) in [("up", &self.up[a]), ("down", &self.down[a])] {
                let cost: u64 = path
                    .iter()
                    .map(|&l| link_cost(&self.links[l as usize].model).ns)
                    .fold(0, u64::saturating_add);
                let mut nodes =
                    vec![self.names[self.links[path[0] as usize].from as usize].as_str()];
                nodes.extend(
                    path.iter()
                        .map(|&l| self.names[self.links[l as usize].to as usize].as_str()),
                );
                let _ = writeln!(
                    s,
                    "  {} {way}: {} (expected {:.3}ms)",
                    self.names[a],
                    nodes.join(" -> "),
                    cost as f64 / 1e6
                );
            }
        }
        s
    }
}

/// Resolves the selector at `key`, reporting an error there.
fn resolve_at(v: &mut Validator, r: &Resolver<'_>, key: &str, text: &str) -> Option<Vec<usize>> {
    match r.resolve(text) {
        Ok(hits) => Some(hits),
        Err(m) => {
            v.fail(key, m);
            None
        }
    }
}

/// The class named at `class` (`Some(None)` when none is named), or `None`
/// after reporting an unknown name.
fn class_at<'a>(
    v: &mut Validator,
    spec: &'a NetworkSpec,
    class: Option<&str>,
) -> Option<Option<&'a LinkPatch>> {
    let Some(name) = class else {
        return Some(None);
    };
    if let Some(p) = spec.class.get(name) {
        return Some(Some(p));
    }
    let defined: Vec<&str> = spec.class.keys().map(String::as_str).collect();
    v.fail(
        "class",
        if defined.is_empty() {
            format!("no link class {name:?}: none is defined (add a [network.class.{name}] table)")
        } else {
            format!(
                "no link class {name:?}; the classes are: {}",
                defined.join(", ")
            )
        },
    );
    None
}

/// `class.NAME` (one segment for the name, whatever it contains).
fn class_path(name: &str) -> KeyPath {
    KeyPath::from_segments(vec![Seg::Key("class".into()), Seg::Key(name.into())])
}

/// Two different agents, one from `a` and one from `b`, if there are any.
fn agent_pair(a: &[usize], b: &[usize], agents: usize) -> Option<(usize, usize)> {
    let aa: Vec<usize> = a.iter().copied().filter(|&x| x < agents).take(2).collect();
    let bb: Vec<usize> = b.iter().copied().filter(|&x| x < agents).take(2).collect();
    aa.iter()
        .flat_map(|&x| bb.iter().map(move |&y| (x, y)))
        .find(|(x, y)| x != y)
}

/// The error of a `[[network.link]]` that matches no link: where the links
/// from its `from` nodes go.
fn no_link(
    s: &super::LinkSpec,
    from: &[usize],
    ends: &[(u32, u32)],
    out: &[usize],
    names: &[String],
) -> String {
    const NODES: usize = 3;
    const TARGETS: usize = 10;
    let mut m = format!(
        "no link from {:?} to {:?}{}",
        s.from,
        s.to,
        if s.both { " or back" } else { "" }
    );
    for (k, &x) in from.iter().take(NODES).enumerate() {
        let targets: Vec<&str> = ends[out[x]..out[x + 1]]
            .iter()
            .map(|&(_, y)| names[y as usize].as_str())
            .collect();
        let lead = if k == 0 { "; links from" } else { "; from" };
        if targets.is_empty() {
            let _ = write!(m, "{lead} {} go nowhere", names[x]);
        } else {
            let _ = write!(
                m,
                "{lead} {} go to: {}",
                names[x],
                targets[..targets.len().min(TARGETS)].join(", ")
            );
            if targets.len() > TARGETS {
                let _ = write!(m, ", … ({} in all)", targets.len());
            }
        }
    }
    if from.len() > NODES {
        let _ = write!(m, "; … ({} nodes in all)", from.len());
    }
    m
}

/// The expected value of a latency draw, in whole nanoseconds (the normal's
/// mean before truncation).
#[allow(unreachable_patterns)] // the fallback serves variants added later
fn expected_ns(latency: &Latency) -> u64 {
    // The mean, or the median where the mean is infinite (pareto with
    // shape <= 1). Unloaded samples (NaN) never reach here: validation
    // refuses them first.
    let ns = latency.mean_ns().unwrap_or_else(|| latency.median_ns());
    crate::time::SimDuration::from_nanos_f64(ns).0
}

/// A link's routing cost: expected latency plus, with a rate, the
/// serialisation time of its header; one hop.
fn link_cost(m: &LinkModel) -> Cost {
    let mut ns = expected_ns(&m.latency);
    if m.rate_bps > 0 {
        let bits = u128::from(m.header_bytes) * 8 * 1_000_000_000;
        let ser = bits.div_ceil(u128::from(m.rate_bps));
        ns = ns.saturating_add(u64::try_from(ser).unwrap_or(u64::MAX));
    }
    Cost { ns, hops: 1 }
}

/// Each agent's route to the broker and from it, as link indices (`None`:
/// there is none). Dijkstra runs over the broker and the routers only, so
/// no route passes through an agent.
#[allow(clippy::type_complexity)]
fn routes(
    links: &[TopoLink],
    agents: usize,
    nodes: usize,
) -> (Vec<Option<Vec<u32>>>, Vec<Option<Vec<u32>>>) {
    // Infrastructure node `i` is node `agents + i` (0 is the broker).
    let infra = nodes - agents;
    let costs: Vec<Cost> = links.iter().map(|l| link_cost(&l.model)).collect();
    let core = |x: u32| (x as usize).checked_sub(agents);
    let mut g: DiGraph<(), Cost> = DiGraph::with_capacity(infra, 0);
    for _ in 0..infra {
        g.add_node(());
    }
    for (l, link) in links.iter().enumerate() {
        if let (Some(a), Some(b)) = (core(link.from), core(link.to)) {
            g.add_edge(NodeIndex::new(a), NodeIndex::new(b), costs[l]);
        }
    }
    let broker = NodeIndex::new(0);
    // Lookups only: the maps' order never matters.
    let from_map = dijkstra(&g, broker, None, |e| *e.weight());
    let to_map = dijkstra(Reversed(&g), broker, None, |e| *e.weight());
    let from: Vec<Option<Cost>> = (0..infra)
        .map(|i| from_map.get(&NodeIndex::new(i)).copied())
        .collect();
    let to: Vec<Option<Cost>> = (0..infra)
        .map(|i| to_map.get(&NodeIndex::new(i)).copied())
        .collect();

    // On a shortest route, the previous hop into each router (from the
    // broker) and the next hop out of it (to the broker): the lowest node
    // among the equals (links are in (from, to) order, so the first found).
    let mut prev: Vec<Option<u32>> = vec![None; infra];
    let mut next: Vec<Option<u32>> = vec![None; infra];
    // The best last link into each agent, and first link out of it.
    let mut best_down: Vec<Option<(Cost, u32)>> = vec![None; agents];
    let mut best_up: Vec<Option<(Cost, u32)>> = vec![None; agents];
    for (l, link) in links.iter().enumerate() {
        let c = costs[l];
        match (core(link.from), core(link.to)) {
            (Some(a), Some(b)) => {
                if let (Some(fa), Some(fb)) = (from[a], from[b])
                    && b != 0
                    && prev[b].is_none()
                    && fa + c == fb
                {
                    prev[b] = Some(l as u32);
                }
                if let (Some(ta), Some(tb)) = (to[a], to[b])
                    && a != 0
                    && next[a].is_none()
                    && c + tb == ta
                {
                    next[a] = Some(l as u32);
                }
            }
            (Some(a), None) => {
                if let Some(fa) = from[a] {
                    let cand = fa + c;
                    let best = &mut best_down[link.to as usize];
                    if best.is_none_or(|(bc, _)| cand < bc) {
                        *best = Some((cand, l as u32));
                    }
                }
            }
            (None, Some(b)) => {
                if let Some(tb) = to[b] {
                    let cand = c + tb;
                    let best = &mut best_up[link.from as usize];
                    if best.is_none_or(|(bc, _)| cand < bc) {
                        *best = Some((cand, l as u32));
                    }
                }
            }
            (None, None) => {} // agents are never joined (an error before this)
        }
    }
    let up = best_up
        .iter()
        .map(|b| {
            b.map(|(_, first)| {
                let mut path = vec![first];
                let mut at = core(links[first as usize].to).expect("a router or the broker");
                while at != 0 {
                    let l = next[at].expect("on a shortest route");
                    path.push(l);
                    at = core(links[l as usize].to).expect("a router or the broker");
                }
                path
            })
        })
        .collect();
    let down = best_down
        .iter()
        .map(|b| {
            b.map(|(_, last)| {
                let mut path = vec![last];
                let mut at = core(links[last as usize].from).expect("a router or the broker");
                while at != 0 {
                    let l = prev[at].expect("on a shortest route");
                    path.push(l);
                    at = core(links[l as usize].from).expect("a router or the broker");
                }
                path.reverse();
                path
            })
        })
        .collect();
    (up, down)
}

/// One line: latency, loss, ordering, and every other field that differs
/// from `default`.
fn describe(m: &LinkModel, default: &LinkModel) -> String {
    let mut s = format!(
        "latency {}, loss {}, {}",
        describe_latency(&m.latency),
        describe_loss(&m.loss),
        match m.ordering {
            Ordering::Fifo => "fifo",
            Ordering::Unordered => "unordered",
        }
    );
    // The other fields, generically (a new field shows up here by itself).
    let (Ok(toml::Value::Table(mine)), Ok(toml::Value::Table(base))) =
        (toml::Value::try_from(m), toml::Value::try_from(default))
    else {
        return s;
    };
    for (key, value) in &mine {
        if matches!(key.as_str(), "latency" | "loss" | "ordering") || base.get(key) == Some(value) {
            continue;
        }
        let _ = write!(s, ", {key} {value}");
    }
    s
}

#[allow(unreachable_patterns)] // the fallback serves variants added later
fn describe_latency(l: &Latency) -> String {
    match l {
        Latency::Constant { value } => format!("{value}"),
        Latency::Uniform { min, max } => format!("uniform {min}..{max}"),
        Latency::Normal { mean, std } => format!("normal mean {mean} std {std}"),
        Latency::Lognormal { median, sigma } => {
            format!("lognormal median {median} sigma {sigma}")
        }
        Latency::Exponential { mean, min } => format!("exponential min {min} + mean {mean}"),
        other => {
            toml::Value::try_from(other).map_or_else(|_| format!("{other:?}"), |v| v.to_string())
        }
    }
}

#[allow(unreachable_patterns)] // the fallback serves variants added later
fn describe_loss(l: &Loss) -> String {
    match l {
        Loss::Bernoulli { p } => format!("{p}"),
        other => {
            toml::Value::try_from(other).map_or_else(|_| format!("{other:?}"), |v| v.to_string())
        }
    }
}
