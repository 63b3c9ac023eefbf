//! Faults on a schedule and as random processes: links down, partitions,
//! degraded links, agent crashes, broker outages and random link failures
//! (`[[fault]]` in a scenario, [`FaultSpec`] in the library).
//!
//! Every fault is plain data resolved against the run's nodes and links
//! once, at build time ([`Faults::resolve`]); at run time the engine asks
//! the [`Faults`] state about one link, agent or the broker, in O(1) when
//! no fault is active. Each start and end is an event in the queue, so it
//! happens at its exact virtual time and shows in the trace (`fault`).
//! Random failures draw their up and down times from their own stream per
//! fault and link, `fault/{index}/{from}->{to}`.

use serde::{Deserialize, Serialize};

use crate::rng::RngStream;
use crate::tagged::tagged_enum;
use crate::time::{SimDuration, SimTime};
use crate::trace::{FaultKind, Reason};
use crate::validate::Validator;

/// What an agent keeps over a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashState {
    /// The agent forgets what it held in memory: the engine calls its
    /// [`reset`](crate::Agent::reset) at the crash.
    #[default]
    Lost,
    /// The agent's memory survives (a paused process or a hibernated VM).
    Kept,
}

tagged_enum! {
    tag = "kind";
    /// One `[[fault]]`. Times are virtual, from the start of the run;
    /// `until` absent means the fault holds to the end. Node and link
    /// selectors are names or patterns where `*` matches any run of
    /// characters (`"mg3.*"`), as in `[[network.link]]`.
    #[derive(Clone, Debug, PartialEq)]
    #[non_exhaustive]
    pub enum FaultSpec {
        /// The links `from -> to` (and back, with `both`) carry nothing from
        /// `at` to `until`: a message sent on one, or arriving over one,
        /// while it is down is dropped with reason `link_down`.
        LinkDown {
            /// Start of the links: a node name or pattern.
            from: String,
            /// End of the links: a node name or pattern.
            to: String,
            /// The reverse links too. Default false.
            #[serde(default)]
            both: bool,
            /// When it starts.
            at: SimDuration,
            /// When it ends (default: never).
            #[serde(default)]
            until: Option<SimDuration>,
        },
        /// The nodes `a` selects are cut off from the nodes `b` selects
        /// (default: every other node): nothing crosses between the two
        /// sides, neither a link with one end on each side nor a message the
        /// broker would route from a sender on one side to a recipient on
        /// the other. Dropped copies have reason `partition`. With
        /// `one_way`, only traffic from `a` to `b` is cut.
        Partition {
            /// One side: a node name or pattern.
            a: String,
            /// The other side (default: every node not in `a`).
            #[serde(default)]
            b: Option<String>,
            /// Cut only the direction from `a` to `b`. Default false.
            #[serde(default)]
            one_way: bool,
            /// When it starts.
            at: SimDuration,
            /// When it ends (default: never).
            #[serde(default)]
            until: Option<SimDuration>,
        },
        /// The links `from -> to` get slower and lossier from `at` to
        /// `until`: every delay draw is multiplied by `latency_factor`, and
        /// a message is lost with probability `extra_loss` on top of the
        /// link's own loss (reason `loss`).
        Degrade {
            /// Start of the links: a node name or pattern.
            from: String,
            /// End of the links: a node name or pattern.
            to: String,
            /// The reverse links too. Default false.
            #[serde(default)]
            both: bool,
            /// Multiplies each delay draw (≥ 0). Default 1.
            #[serde(default = "one")]
            latency_factor: f64,
            /// Extra loss probability in [0, 1]. Default 0.
            #[serde(default)]
            extra_loss: f64,
            /// When it starts.
            at: SimDuration,
            /// When it ends (default: never).
            #[serde(default)]
            until: Option<SimDuration>,
        },
        /// The agents `agent` selects crash at `at`: their handlers stop
        /// running, their pending timers are cancelled, and copies that reach
        /// them are dropped with reason `crashed`. At `restart` (if given)
        /// each runs `on_start` again; with `state = "lost"` (the default)
        /// its [`reset`](crate::Agent::reset) ran at the crash.
        Crash {
            /// The agents: a name or pattern.
            agent: String,
            /// When they crash.
            at: SimDuration,
            /// When they come back (default: never).
            #[serde(default)]
            restart: Option<SimDuration>,
            /// What survives the crash. Default `lost`.
            #[serde(default)]
            state: CrashState,
        },
        /// The broker is down from `at` to `until`: messages that reach it
        /// are dropped with reason `broker_down` (copies it already sent
        /// travel on).
        BrokerDown {
            /// When it starts.
            at: SimDuration,
            /// When it ends (default: never).
            #[serde(default)]
            until: Option<SimDuration>,
        },
        /// Each link `from -> to` fails and is repaired at random, on its
        /// own: up for an exponential time of mean `mtbf`, then down (like
        /// `link_down`) for an exponential time of mean `mttr`, and so on.
        /// Every link starts up.
        Flap {
            /// Start of the links: a node name or pattern.
            from: String,
            /// End of the links: a node name or pattern.
            to: String,
            /// The reverse links too. Default false.
            #[serde(default)]
            both: bool,
            /// Mean time between failures (> 0).
            mtbf: SimDuration,
            /// Mean time to repair (> 0).
            mttr: SimDuration,
        },
    }
}

fn kind_of(spec: &FaultSpec) -> FaultKind {
    match spec {
        FaultSpec::LinkDown { .. } => FaultKind::LinkDown,
        FaultSpec::Partition { .. } => FaultKind::Partition,
        FaultSpec::Degrade { .. } => FaultKind::Degrade,
        FaultSpec::Crash { .. } => FaultKind::Crash,
        FaultSpec::BrokerDown { .. } => FaultKind::BrokerDown,
        FaultSpec::Flap { .. } => FaultKind::Flap,
    }
}

fn one() -> f64 {
    1.0
}

impl FaultSpec {
    /// The kind's name, as in the scenario and the trace.
    pub fn kind(&self) -> &'static str {
        kind_of(self).name()
    }

    /// Checks the parameters that need no knowledge of the nodes (keys
    /// relative to the fault's table).
    pub fn validate(&self, v: &mut Validator) {
        let window = |v: &mut Validator, at: SimDuration, until: Option<SimDuration>, key| {
            if let Some(u) = until {
                v.check(u > at, key, || {
                    format!("{key} ({u}) must come after at ({at})")
                });
            }
        };
        match self {
            FaultSpec::LinkDown { at, until, .. }
            | FaultSpec::Partition { at, until, .. }
            | FaultSpec::BrokerDown { at, until } => window(v, *at, *until, "until"),
            FaultSpec::Degrade {
                latency_factor,
                extra_loss,
                at,
                until,
                ..
            } => {
                window(v, *at, *until, "until");
                v.non_negative("latency_factor", *latency_factor);
                v.fraction("extra_loss", *extra_loss);
            }
            FaultSpec::Crash { at, restart, .. } => window(v, *at, *restart, "restart"),
            FaultSpec::Flap { mtbf, mttr, .. } => {
                v.check(mtbf.0 > 0, "mtbf", || "mtbf must be > 0".into());
                v.check(mttr.0 > 0, "mttr", || "mttr must be > 0".into());
            }
        }
    }
}

/// The run's nodes and links, as the faults see them.
pub(crate) struct Topo<'a> {
    /// Agent names, by agent index.
    pub agents: &'a [String],
    /// Every directed link as (from node name, to node name), by link id.
    pub links: Vec<(&'a str, &'a str)>,
    /// Resolves a node pattern against all node names (agents, routers,
    /// `broker`) to the matching names, or says why it matches nothing.
    pub select: &'a dyn Fn(&str) -> Result<Vec<&'a str>, String>,
}

/// One fault, resolved to link ids and agent indices.
#[derive(Clone, Debug)]
enum Target {
    /// Links taken down (link_down, flap) or degraded.
    Links(Vec<u32>),
    /// A partition: its cut links, and the side of each agent (0 neither,
    /// 1 `a`, 2 `b`).
    Cut {
        links: Vec<u32>,
        side: Vec<u8>,
        one_way: bool,
    },
    /// Crashed agents.
    Agents(Vec<u32>),
    /// The broker.
    Broker,
}

#[derive(Clone, Debug)]
struct Resolved {
    kind: FaultKind,
    target: Target,
    latency_factor: f64,
    extra_loss: f64,
    crash_state: CrashState,
}

/// What a fault transition changes; the engine applies it and traces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    /// The fault (its index in the scenario's `[[fault]]` list).
    pub fault: u32,
    /// For a flap, the link (index into the fault's links); else 0.
    pub target: u32,
    /// A start (true) or an end.
    pub start: bool,
}

/// The faults of a run and what holds now.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    faults: Vec<Resolved>,
    /// Per fault and flap link: its stream (flap faults only).
    flap_rngs: Vec<Vec<RngStream>>,
    flap_means: Vec<(SimDuration, SimDuration)>,
    /// Per link: how many link_down/flap faults hold it down.
    down: Vec<u16>,
    /// Per link: how many partitions cut it.
    cut: Vec<u16>,
    /// Per link: the degrade faults that hold, in start order.
    degraded: Vec<Vec<u32>>,
    /// Partitions that hold (fault indices), for end-to-end checks.
    partitions: Vec<u32>,
    broker_down: u16,
    /// How many link faults (down, cut or degraded) hold now.
    links_hit: u32,
    /// How many faults of any kind hold now (the engine's fast path checks
    /// only this).
    active: u32,
    /// Streams of extra loss by degrade fault.
    degrade_rngs: Vec<Option<RngStream>>,
}

impl Faults {
    /// Resolves `specs` against the run's nodes and links. Reports a
    /// selector that matches nothing, or a fault that hits no link, at its
    /// key (`fault[2].from`).
    pub(crate) fn resolve(
        specs: &[FaultSpec],
        topo: &Topo<'_>,
        seed: u64,
        env: u64,
        v: &mut Validator,
    ) -> Faults {
        let n_links = topo.links.len();
        let mut faults = Faults {
            down: vec![0; n_links],
            cut: vec![0; n_links],
            degraded: vec![Vec::new(); n_links],
            ..Faults::default()
        };
        let agent_index = |name: &str| topo.agents.iter().position(|a| a == name);
        for (i, spec) in specs.iter().enumerate() {
            v.index(i, |v| {
                spec.validate(v);
                let links_of = |v: &mut Validator, from: &str, to: &str, both: bool| {
                    let froms = select_names(topo, v, "from", from);
                    let tos = select_names(topo, v, "to", to);
                    let hit = |a: &str, b: &str| {
                        (froms.contains(&a) && tos.contains(&b))
                            || (both && froms.contains(&b) && tos.contains(&a))
                    };
                    let links: Vec<u32> = (0..n_links as u32)
                        .filter(|&l| {
                            let (a, b) = topo.links[l as usize];
                            hit(a, b)
                        })
                        .collect();
                    if links.is_empty() && !froms.is_empty() && !tos.is_empty() {
                        v.fail("to", format!("no link goes from {from:?} to {to:?}"));
                    }
                    links
                };
                let base = Resolved {
                    kind: kind_of(spec),
                    target: Target::Broker,
                    latency_factor: 1.0,
                    extra_loss: 0.0,
                    crash_state: CrashState::Lost,
                };
                let mut flap_rngs = Vec::new();
                let resolved = match spec {
                    FaultSpec::LinkDown { from, to, both, .. } => Resolved {
                        target: Target::Links(links_of(v, from, to, *both)),
                        ..base
                    },
                    FaultSpec::Degrade {
                        from,
                        to,
                        both,
                        latency_factor,
                        extra_loss,
                        ..
                    } => Resolved {
                        target: Target::Links(links_of(v, from, to, *both)),
                        latency_factor: *latency_factor,
                        extra_loss: *extra_loss,
                        ..base
                    },
                    FaultSpec::Flap { from, to, both, .. } => {
                        let links = links_of(v, from, to, *both);
                        flap_rngs = links
                            .iter()
                            .map(|&l| {
                                let (a, b) = topo.links[l as usize];
                                RngStream::new(seed, env, &format!("fault/{i}/{a}->{b}"))
                            })
                            .collect();
                        Resolved {
                            target: Target::Links(links),
                            ..base
                        }
                    }
                    FaultSpec::Partition { a, b, one_way, .. } => {
                        let side_a = select_names(topo, v, "a", a);
                        let side_b = b.as_deref().map(|b| select_names(topo, v, "b", b));
                        let side_of = |name: &str| -> u8 {
                            if side_a.contains(&name) {
                                1
                            } else if side_b.as_ref().is_none_or(|s| s.contains(&name)) {
                                2
                            } else {
                                0
                            }
                        };
                        let links = (0..n_links as u32)
                            .filter(|&l| {
                                let (x, y) = topo.links[l as usize];
                                let (sx, sy) = (side_of(x), side_of(y));
                                crosses(sx, sy, *one_way)
                            })
                            .collect();
                        Resolved {
                            target: Target::Cut {
                                links,
                                side: topo.agents.iter().map(|n| side_of(n)).collect(),
                                one_way: *one_way,
                            },
                            ..base
                        }
                    }
                    FaultSpec::Crash { agent, state, .. } => {
                        let names = select_names(topo, v, "agent", agent);
                        let agents: Vec<u32> = names
                            .iter()
                            .filter_map(|n| agent_index(n).map(|i| i as u32))
                            .collect();
                        if agents.is_empty() && !names.is_empty() {
                            v.fail("agent", format!("{agent:?} selects no agent"));
                        }
                        Resolved {
                            target: Target::Agents(agents),
                            crash_state: *state,
                            ..base
                        }
                    }
                    FaultSpec::BrokerDown { .. } => base,
                };
                faults.flap_means.push(match spec {
                    FaultSpec::Flap { mtbf, mttr, .. } => (*mtbf, *mttr),
                    _ => (SimDuration::ZERO, SimDuration::ZERO),
                });
                faults.degrade_rngs.push(
                    (resolved.extra_loss > 0.0)
                        .then(|| RngStream::new(seed, env, &format!("fault/{i}/loss"))),
                );
                faults.flap_rngs.push(flap_rngs);
                faults.faults.push(resolved);
            });
        }
        faults
    }

    /// The transitions known before the run, with their times, in fault
    /// order: each scheduled start and end, and each flap link's first
    /// failure.
    pub(crate) fn initial(&mut self, specs: &[FaultSpec]) -> Vec<(SimTime, Transition)> {
        let mut out = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let fault = i as u32;
            let at_until = match spec {
                FaultSpec::LinkDown { at, until, .. }
                | FaultSpec::Partition { at, until, .. }
                | FaultSpec::Degrade { at, until, .. }
                | FaultSpec::BrokerDown { at, until } => Some((*at, *until)),
                FaultSpec::Crash { at, restart, .. } => Some((*at, *restart)),
                FaultSpec::Flap { .. } => None,
            };
            match at_until {
                Some((at, until)) => {
                    let t = |start| Transition {
                        fault,
                        target: 0,
                        start,
                    };
                    out.push((SimTime::ZERO + at, t(true)));
                    if let Some(u) = until {
                        out.push((SimTime::ZERO + u, t(false)));
                    }
                }
                None => {
                    for target in 0..self.flap_rngs[i].len() as u32 {
                        let up = self.flap_draw(fault, target, true);
                        out.push((
                            SimTime::ZERO + up,
                            Transition {
                                fault,
                                target,
                                start: true,
                            },
                        ));
                    }
                }
            }
        }
        out
    }

    /// How long a flap link stays up (`up`) or down, drawn from its stream.
    fn flap_draw(&mut self, fault: u32, target: u32, up: bool) -> SimDuration {
        let (mtbf, mttr) = self.flap_means[fault as usize];
        let mean = if up { mtbf } else { mttr };
        let rng = &mut self.flap_rngs[fault as usize][target as usize];
        // At least 1 ns, so a transition never lands on the one before it.
        SimDuration::from_nanos_f64(rng.exponential(mean.0 as f64)).max(SimDuration(1))
    }

    /// Applies a transition at `now`; returns the next transition of a
    /// random process (a flap's repair or next failure), if any.
    pub(crate) fn apply(&mut self, t: Transition, now: SimTime) -> Option<(SimTime, Transition)> {
        self.active = bump(self.active, t.start);
        let f = &self.faults[t.fault as usize];
        let step = |n: &mut u16| {
            if t.start { *n += 1 } else { *n -= 1 }
        };
        match (&f.target, f.kind) {
            (Target::Links(links), FaultKind::LinkDown) => {
                for &l in links {
                    step(&mut self.down[l as usize]);
                }
                self.links_hit = bump(self.links_hit, t.start);
            }
            (Target::Links(links), FaultKind::Flap) => {
                step(&mut self.down[links[t.target as usize] as usize]);
                self.links_hit = bump(self.links_hit, t.start);
                let next = self.flap_draw(t.fault, t.target, !t.start);
                return Some((
                    now + next,
                    Transition {
                        start: !t.start,
                        ..t
                    },
                ));
            }
            (Target::Links(links), _) => {
                for &l in links {
                    let d = &mut self.degraded[l as usize];
                    if t.start {
                        d.push(t.fault);
                    } else {
                        d.retain(|&x| x != t.fault);
                    }
                }
                self.links_hit = bump(self.links_hit, t.start);
            }
            (Target::Cut { links, .. }, _) => {
                for &l in links {
                    step(&mut self.cut[l as usize]);
                }
                if t.start {
                    self.partitions.push(t.fault);
                } else {
                    self.partitions.retain(|&x| x != t.fault);
                }
                self.links_hit = bump(self.links_hit, t.start);
            }
            (Target::Broker, _) => step(&mut self.broker_down),
            (Target::Agents(_), _) => {}
        }
        None
    }

    /// The agents a crash fault concerns, and what they keep.
    pub(crate) fn crash_targets(&self, fault: u32) -> Option<(&[u32], CrashState)> {
        match &self.faults[fault as usize].target {
            Target::Agents(a) => Some((a, self.faults[fault as usize].crash_state)),
            _ => None,
        }
    }

    /// The kind of fault `fault`.
    pub(crate) fn kind(&self, fault: u32) -> FaultKind {
        self.faults[fault as usize].kind
    }

    /// The link a flap transition concerns.
    pub(crate) fn flap_link(&self, t: Transition) -> Option<u32> {
        let f = &self.faults[t.fault as usize];
        match &f.target {
            Target::Links(links) if f.kind == FaultKind::Flap => {
                links.get(t.target as usize).copied()
            }
            _ => None,
        }
    }

    /// Whether any fault holds now.
    #[inline(always)]
    pub(crate) fn any_active(&self) -> bool {
        self.active > 0
    }

    /// Whether some link fault (down, cut or degraded) holds now.
    #[inline]
    pub(crate) fn links_hit(&self) -> bool {
        self.links_hit > 0
    }

    /// Whether the broker is down.
    #[inline]
    pub(crate) fn broker_down(&self) -> bool {
        self.broker_down > 0
    }

    /// Why link `link` carries nothing now, if it does not.
    #[inline]
    pub(crate) fn blocked(&self, link: u32) -> Option<Reason> {
        if self.cut[link as usize] > 0 {
            Some(Reason::Partition)
        } else if self.down[link as usize] > 0 {
            Some(Reason::LinkDown)
        } else {
            None
        }
    }

    /// The delay factor on `link` now, and whether a degradation's extra
    /// loss takes the message (drawn from each holding fault's stream).
    #[inline]
    pub(crate) fn degrade(&mut self, link: u32) -> (f64, bool) {
        if self.degraded[link as usize].is_empty() {
            return (1.0, false);
        }
        let mut factor = 1.0;
        let mut lost = false;
        for &f in &self.degraded[link as usize] {
            let r = &self.faults[f as usize];
            factor *= r.latency_factor;
            if let Some(rng) = self.degrade_rngs[f as usize].as_mut() {
                lost |= rng.bernoulli(r.extra_loss);
            }
        }
        (factor, lost)
    }

    /// Whether a partition that holds now separates agent `sender` from
    /// agent `recipient` (the broker routes nothing across it).
    #[inline]
    pub(crate) fn separates(&self, sender: u32, recipient: u32) -> bool {
        self.partitions
            .iter()
            .any(|&f| match &self.faults[f as usize].target {
                Target::Cut { side, one_way, .. } => {
                    crosses(side[sender as usize], side[recipient as usize], *one_way)
                }
                _ => false,
            })
    }

    /// Whether any partition holds (cheap check before [`Faults::separates`]).
    #[inline]
    pub(crate) fn any_partition(&self) -> bool {
        !self.partitions.is_empty()
    }
}

/// Whether going from a node on side `from` to one on side `to` (0 neither,
/// 1 `a`, 2 `b`) crosses a partition: `a` to `b`, and back unless one-way.
fn crosses(from: u8, to: u8, one_way: bool) -> bool {
    (from == 1 && to == 2) || (!one_way && from == 2 && to == 1)
}

fn bump(n: u32, start: bool) -> u32 {
    if start { n + 1 } else { n - 1 }
}

fn select_names<'a>(topo: &Topo<'a>, v: &mut Validator, key: &str, pattern: &str) -> Vec<&'a str> {
    match (topo.select)(pattern) {
        Ok(names) => names,
        Err(m) => {
            v.fail(key, m);
            Vec::new()
        }
    }
}
