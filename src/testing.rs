//! Proptest strategies for busbar's data (link models, faults, channel
//! guarantees, topologies, whole scenarios) and helpers to run a generated
//! scenario and check ordering properties over it. Compiled only with the
//! cargo feature `testing` (`busbar = { version = "...", features =
//! ["testing"] }` in your `[dev-dependencies]`).
//!
//! Every strategy is written so that proptest's shrinking goes toward the
//! simplest case: constant latency before a distribution, no loss before
//! loss, fewer agents, fewer and shorter messages, fewer and shorter
//! faults, smaller delays, no clock skew. A failing property therefore
//! shrinks to a small scenario, which [`to_toml`] prints as a scenario file
//! that `busbar run` and `busbar verify` accept.
//!
//! A property test over generated scenarios: on FIFO links without
//! netem reordering, at-most-once (no retransmissions) and with the FIFO
//! tie-break, every subscriber gets each publisher's messages in publish
//! order, whatever the loss, duplication, faults, routes and clock skew
//! (`docs/guarantees.md` has the whole table).
//!
//! ```
//! use busbar::network::Ordering;
//! use busbar::sim::TieBreak;
//! use busbar::testing::{ScenarioStrategy, run_and_check, to_toml};
//! use busbar::Qos;
//! use proptest::prelude::*;
//! use proptest::test_runner::{Config, TestRunner};
//!
//! let scenarios = ScenarioStrategy {
//!     ordering: Some(Ordering::Fifo),
//!     reorder: false,
//!     qos: Some(Qos::AtMostOnce),
//!     tie_break: Some(TieBreak::Fifo),
//!     ..ScenarioStrategy::default()
//! }
//! .strategy();
//! let mut runner = TestRunner::new(Config::with_cases(8));
//! let result = runner.run(&scenarios, |spec| {
//!     let seed = spec.simulation.seed;
//!     let reports = run_and_check(&spec, seed, &["fifo"]).map_err(TestCaseError::fail)?;
//!     prop_assert!(reports[0].holds(), "{}\n{}", reports[0], to_toml(&spec));
//!     Ok(())
//! });
//! assert!(result.is_ok(), "{result:?}");
//! ```
//!
//! The knobs of [`ScenarioStrategy`] pin a setting (`Some(..)`, `false`) or
//! let it vary (`None`, `true`); [`scenario`] lets everything vary.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

use crate::broker::{BrokerConfig, ChannelSpec, Delivery, Qos};
use crate::check::Report;
use crate::grid::GridSpec;
use crate::message::MessageKind;
use crate::network::{
    Delays, EdgeSpec, FaultSpec, Latency, LinkModel, Loss, NetworkSpec, Ordering,
};
use crate::network::{LinkSpec, RouterSpec};
use crate::scenario::{AgentSpec, KindName, Scenario, ScenarioSpec, SimulationSpec};
use crate::sim::{ClockOffset, ClockSpec, Limits, TieBreak};
use crate::time::SimDuration;

/// The name of the router that [`topology`] and [`ScenarioStrategy`] put
/// between the publishers and the broker when they make a multi-hop route.
pub const ROUTER: &str = "gw";

fn micros(us: u64) -> SimDuration {
    SimDuration::from_micros(us)
}

/// A delay distribution with delays up to about 20 ms: `constant`, then
/// `uniform`, `normal`, `exponential` and `lognormal`. Shrinks toward a
/// constant delay (the first alternative), and every delay parameter toward
/// zero (a median toward 1 µs).
pub fn latency() -> impl Strategy<Value = Latency> {
    prop_oneof![
        (0u64..=20_000).prop_map(|v| Latency::Constant { value: micros(v) }),
        (0u64..=10_000, 0u64..=10_000).prop_map(|(min, spread)| Latency::Uniform {
            min: micros(min),
            max: micros(min + spread),
        }),
        (0u64..=10_000, 0u64..=5_000).prop_map(|(mean, std)| Latency::Normal {
            mean: micros(mean),
            std: micros(std),
        }),
        (1u64..=10_000, 0u64..=5_000).prop_map(|(mean, min)| Latency::Exponential {
            mean: micros(mean),
            min: micros(min),
        }),
        (1u64..=10_000, 0.0..1.5f64).prop_map(|(median, sigma)| Latency::Lognormal {
            median: micros(median),
            sigma,
        }),
    ]
}

/// A bounded delay distribution: `constant` or `uniform`, up to 20 ms.
/// Shrinks toward a constant delay of zero. [`latency_bound`] gives its
/// largest delay, for `max_age` properties.
pub fn bounded_latency() -> impl Strategy<Value = Latency> {
    prop_oneof![
        (0u64..=20_000).prop_map(|v| Latency::Constant { value: micros(v) }),
        (0u64..=10_000, 0u64..=10_000).prop_map(|(min, spread)| Latency::Uniform {
            min: micros(min),
            max: micros(min + spread),
        }),
    ]
}

/// The largest delay `latency` can draw, or `None` when it is unbounded
/// (every distribution but `constant` and `uniform`).
pub fn latency_bound(latency: &Latency) -> Option<SimDuration> {
    match latency {
        Latency::Constant { value } => Some(*value),
        Latency::Uniform { max, .. } => Some(*max),
        _ => None,
    }
}

/// A loss model: no loss, Bernoulli loss up to 30 %, or bursty
/// Gilbert–Elliott loss. Shrinks toward no loss (the first alternative),
/// and probabilities toward zero.
pub fn loss() -> impl Strategy<Value = Loss> {
    prop_oneof![
        Just(Loss::bernoulli(0.0)),
        (0.0..0.3f64).prop_map(Loss::bernoulli),
        (0.0..0.2f64, 0.2..1.0f64).prop_map(|(p, r)| Loss::gilbert(p, r)),
    ]
}

/// `fifo` or `unordered`. Shrinks toward `fifo`.
pub fn ordering() -> impl Strategy<Value = Ordering> {
    prop_oneof![Just(Ordering::Fifo), Just(Ordering::Unordered)]
}

/// What a generated link may do beyond delaying: which of its features
/// vary. Each field `false` pins the feature off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkFeatures {
    /// Loss ([`loss`]).
    pub loss: bool,
    /// Duplication (probability up to 0.3).
    pub duplicate: bool,
    /// netem reordering (probability up to 0.3): a message sent at once,
    /// ahead of the FIFO queue.
    pub reorder: bool,
}

impl Default for LinkFeatures {
    fn default() -> Self {
        LinkFeatures {
            loss: true,
            duplicate: true,
            reorder: true,
        }
    }
}

/// Probability that is absent (0) or up to 0.3; shrinks toward absent.
fn optional_probability(on: bool) -> BoxedStrategy<f64> {
    if on {
        option::of(0.0..0.3f64)
            .prop_map(|p| p.unwrap_or(0.0))
            .boxed()
    } else {
        Just(0.0).boxed()
    }
}

/// A link model with `latency`, `ordering` (pinned when `Some`) and the
/// features `features` allows. Shrinks as its parts do: latency toward a
/// small constant, loss toward none, ordering toward `fifo`, duplicate and
/// reorder probabilities toward none.
pub fn link_model_with(
    latency: BoxedStrategy<Latency>,
    ordering_pin: Option<Ordering>,
    features: LinkFeatures,
) -> impl Strategy<Value = LinkModel> {
    let ord = match ordering_pin {
        Some(o) => Just(o).boxed(),
        None => ordering().boxed(),
    };
    let lossy = if features.loss {
        loss().boxed()
    } else {
        Just(Loss::bernoulli(0.0)).boxed()
    };
    (
        latency,
        lossy,
        ord,
        optional_probability(features.duplicate),
        optional_probability(features.reorder),
    )
        .prop_map(|(latency, loss, ordering, duplicate, reorder)| LinkModel {
            latency,
            loss,
            ordering,
            duplicate,
            reorder,
            ..LinkModel::default()
        })
}

/// A link model: [`latency`], [`loss`], [`ordering`], and duplicate and
/// reorder probabilities that are absent or up to 0.3. Shrinks toward a
/// lossless FIFO link of small constant delay without duplication or
/// reordering.
pub fn link_model() -> impl Strategy<Value = LinkModel> {
    link_model_with(latency().boxed(), None, LinkFeatures::default())
}

/// One fault before it is pinned to agent names: which kind, which agent
/// (an index, taken modulo the number of agents), which direction, when
/// and for how long (in ms).
#[derive(Clone, Copy, Debug)]
struct FaultDraft {
    kind: u8,
    agent: usize,
    up: bool,
    at_ms: u64,
    len_ms: u64,
}

impl FaultDraft {
    fn spec(&self, agents: &[String]) -> FaultSpec {
        let at = SimDuration::from_millis(self.at_ms);
        let until = Some(SimDuration::from_millis(self.at_ms + self.len_ms));
        let agent = agents[self.agent % agents.len()].clone();
        match self.kind {
            0 => {
                // Every link leaving the agent (its uplink, to the broker or
                // its router), or every link reaching it.
                let (from, to) = if self.up {
                    (agent, "*".to_string())
                } else {
                    ("*".to_string(), agent)
                };
                FaultSpec::LinkDown {
                    from,
                    to,
                    both: false,
                    at,
                    until,
                }
            }
            1 => FaultSpec::Partition {
                a: agent,
                b: None,
                one_way: self.up,
                at,
                until,
            },
            2 => FaultSpec::Crash {
                agent,
                at,
                restart: until,
                state: crate::network::CrashState::Lost,
            },
            _ => FaultSpec::BrokerDown { at, until },
        }
    }
}

/// Drafts of faults within `horizon_ms`: start in `[0, horizon)`, length at
/// least 1 ms. Shrinks toward link-down faults (kind 0) on the first agent,
/// starting at 0, lasting 1 ms.
fn fault_draft(horizon_ms: u64) -> impl Strategy<Value = FaultDraft> {
    let h = horizon_ms.max(1);
    (0u8..4, 0usize..8, any::<bool>(), 0..h, 1..=h).prop_map(|(kind, agent, up, at_ms, len_ms)| {
        FaultDraft {
            kind,
            agent,
            up,
            at_ms,
            len_ms,
        }
    })
}

/// Up to three faults on `agents` (which must not be empty) within
/// `horizon`: a link down (every link leaving or reaching one agent), a
/// partition of one agent from every other node (both ways or one way), a
/// crash of one agent with a restart, or a broker outage; each starts
/// within the horizon and ends after it started. Shrinks toward fewer
/// faults, link-down faults on the first agent, earlier and shorter
/// windows (down to 1 ms).
pub fn fault_schedule(
    agents: &[String],
    horizon: SimDuration,
) -> impl Strategy<Value = Vec<FaultSpec>> + use<> {
    assert!(!agents.is_empty(), "faults need at least one agent");
    let agents = agents.to_vec();
    let horizon_ms = horizon.as_nanos() / 1_000_000;
    vec(fault_draft(horizon_ms), 0..=3)
        .prop_map(move |drafts| drafts.iter().map(|d| d.spec(&agents)).collect())
}

/// A delivery guarantee: QoS 0, 1 or 2. Shrinks toward at-most-once.
pub fn qos() -> impl Strategy<Value = Qos> {
    prop_oneof![
        Just(Qos::AtMostOnce),
        Just(Qos::AtLeastOnce),
        Just(Qos::ExactlyOnce)
    ]
}

/// How an acknowledged channel retransmits, as generated.
fn retry_settings(max_retries: Option<u32>) -> BoxedStrategy<(u32, u64)> {
    let retries = match max_retries {
        Some(n) => Just(n).boxed(),
        None => (0u32..=5).boxed(),
    };
    (retries, 5u64..=200).boxed()
}

/// A `[[broker.channel]]` entry for the channels `topic` selects, with a
/// QoS (pinned when `Some`), a number of retransmissions (pinned when
/// `Some`, else 0 to 5) and an ack timeout of 5 to 200 ms, the broker
/// config's defaults for the rest. Shrinks toward at-most-once, no
/// retransmissions, and a short ack timeout.
pub fn channel_spec(
    topic: &str,
    qos_pin: Option<Qos>,
    max_retries: Option<u32>,
) -> impl Strategy<Value = ChannelSpec> + use<> {
    let topic = topic.to_string();
    let q = match qos_pin {
        Some(q) => Just(q).boxed(),
        None => qos().boxed(),
    };
    (q, retry_settings(max_retries)).prop_map(move |(qos, (retries, ack_ms))| ChannelSpec {
        topic: topic.clone(),
        qos: Some(qos),
        max_retries: Some(retries),
        ack_timeout: Some(SimDuration::from_millis(ack_ms)),
        ..ChannelSpec::default()
    })
}

/// A small topology: who publishes, who subscribes, on which channels, and
/// whether the publishers reach the broker through a router.
///
/// Agents are named by their slot (`p0`, `p2`, `s1`), not by their rank,
/// so that a publisher or subscriber removed while shrinking leaves the
/// names, and so the random streams (which are named after the links), of
/// the others as they were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Publisher names (`p0`, `p1`, ...).
    pub publishers: Vec<String>,
    /// The channel each publisher publishes on (publisher `pK` on channel
    /// `c{K % channels}`), in the order of `publishers`.
    pub publisher_channels: Vec<String>,
    /// Subscriber names (`s0`, `s1`, ...).
    pub subscribers: Vec<String>,
    /// Channel names (`c0`, `c1`); every subscriber subscribes to all.
    pub channels: Vec<String>,
    /// Whether the publishers reach the broker through the router
    /// [`ROUTER`] (two hops up) instead of directly.
    pub routed: bool,
}

impl Topology {
    /// Every agent: publishers, then subscribers.
    pub fn agents(&self) -> Vec<String> {
        self.publishers
            .iter()
            .chain(&self.subscribers)
            .cloned()
            .collect()
    }

    /// The `[network]` table of this topology with `model` on every link.
    pub fn network(&self, model: LinkModel) -> NetworkSpec {
        let (routers, edges) = if self.routed {
            (
                vec![RouterSpec::new(ROUTER)],
                vec![EdgeSpec::new("p*", ROUTER), EdgeSpec::new(ROUTER, "broker")],
            )
        } else {
            (Vec::new(), Vec::new())
        };
        NetworkSpec {
            default: model,
            class: BTreeMap::new(),
            routers,
            edges,
            links: Vec::<LinkSpec>::new(),
        }
    }

    /// How many links a copy crosses from a publisher to a subscriber.
    pub fn hops(&self) -> u64 {
        if self.routed { 3 } else { 2 }
    }
}

/// The slots whose flag is set, or slot 0 if none is.
fn slots(flags: &[bool]) -> Vec<usize> {
    let on: Vec<usize> = (0..flags.len()).filter(|&i| flags[i]).collect();
    if on.is_empty() { vec![0] } else { on }
}

fn topology_of(
    publishers: &[bool],
    subscribers: &[bool],
    channels: usize,
    routed: bool,
) -> Topology {
    let pubs = slots(publishers);
    let channels = channels.max(1);
    Topology {
        publishers: pubs.iter().map(|i| format!("p{i}")).collect(),
        publisher_channels: pubs.iter().map(|i| format!("c{}", i % channels)).collect(),
        subscribers: slots(subscribers).iter().map(|i| format!("s{i}")).collect(),
        channels: (0..channels).map(|i| format!("c{i}")).collect(),
        routed,
    }
}

/// Presence flags of up to `max` agents: each slot present or not (at
/// least one is: with none set, slot 0 is). Shrinks toward fewer agents.
fn presence(max: usize) -> impl Strategy<Value = Vec<bool>> {
    vec(any::<bool>(), max.max(1))
}

/// A topology of 1 to 3 publishers, 1 or 2 subscribers, 1 or 2 channels,
/// with or without a router between the publishers and the broker.
/// Shrinks toward one publisher, one subscriber, one channel, no router.
pub fn topology() -> impl Strategy<Value = Topology> {
    (presence(3), presence(2), 1usize..=2, any::<bool>())
        .prop_map(|(p, s, c, r)| topology_of(&p, &s, c, r))
}

/// A configurable strategy for whole scenarios of periodic publishers and
/// sinks ([`AgentSpec::Periodic`], [`AgentSpec::Sink`]). A knob that is
/// `None` (or `true` for the on/off ones) lets the setting vary; `Some(x)`
/// (or `false`) pins it. [`ScenarioStrategy::strategy`] makes the
/// strategy.
///
/// Shrinking goes toward fewer agents (one publisher, one subscriber, one
/// channel, no router), fewer messages (a count of 1 each, a short run),
/// smaller delays, no loss, FIFO links, at-most-once, fewer and shorter
/// faults, no clock skew and the FIFO tie-break.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioStrategy {
    /// Most publishers (at least 1). Default 3.
    pub max_publishers: usize,
    /// Most subscribers (at least 1). Default 2.
    pub max_subscribers: usize,
    /// Most messages each publisher sends (at least 1). Default 20.
    pub max_messages: u64,
    /// Most channels (at least 1). Default 2.
    pub max_channels: usize,
    /// Every link's ordering, or `None` to vary it.
    pub ordering: Option<Ordering>,
    /// Let links lose messages.
    pub loss: bool,
    /// Let links duplicate messages.
    pub duplicate: bool,
    /// Let links reorder messages netem-style (sent at once, ahead of the
    /// FIFO queue).
    pub reorder: bool,
    /// Only bounded delays (`constant`, `uniform`: [`bounded_latency`]).
    pub bounded_latency: bool,
    /// The channels' QoS, or `None` to vary it.
    pub qos: Option<Qos>,
    /// The channels' `max_retries`, or `None` to vary it (0 to 5).
    pub max_retries: Option<u32>,
    /// Let the scenario have faults ([`fault_schedule`]).
    pub faults: bool,
    /// A router between publishers and broker: `Some(true)` always,
    /// `Some(false)` never, `None` either.
    pub routes: Option<bool>,
    /// Let publishers have skewed clocks (offset up to ±50 ms, drift up to
    /// ±2000 ppm).
    pub clock_skew: bool,
    /// The tie-break, or `None` to vary it.
    pub tie_break: Option<TieBreak>,
    /// How link delays are drawn (`sampled`, or `adversarial`: at the ends
    /// of each model's range), or `None` to vary it.
    pub delays: Option<Delays>,
}

impl Default for ScenarioStrategy {
    fn default() -> Self {
        ScenarioStrategy {
            max_publishers: 3,
            max_subscribers: 2,
            max_messages: 20,
            max_channels: 2,
            ordering: None,
            loss: true,
            duplicate: true,
            reorder: true,
            bounded_latency: false,
            qos: None,
            max_retries: None,
            faults: true,
            routes: None,
            clock_skew: true,
            tie_break: None,
            delays: None,
        }
    }
}

/// One publisher as generated: period (µs), start (µs), count.
type PublisherDraft = (u64, u64, u64);

/// Everything a scenario is made of, before it is assembled.
#[derive(Clone, Debug)]
struct Draft {
    shape: (Vec<bool>, Vec<bool>, usize, bool),
    publishers: Vec<PublisherDraft>,
    clocks: Vec<Option<(i64, i64)>>,
    link: LinkModel,
    channel: ChannelSpec,
    faults: Vec<FaultDraft>,
    tie_break: TieBreak,
    delays: Delays,
    duration_ms: u64,
    seed: u64,
}

/// The longest run a generated scenario asks for, in ms.
const MAX_DURATION_MS: u64 = 2_000;

impl ScenarioStrategy {
    /// The strategy of [`ScenarioSpec`]s these knobs describe.
    pub fn strategy(&self) -> BoxedStrategy<ScenarioSpec> {
        let max_p = self.max_publishers.max(1);
        let max_s = self.max_subscribers.max(1);
        let max_c = self.max_channels.max(1);
        let max_m = self.max_messages.max(1);
        let routed = match self.routes {
            Some(r) => Just(r).boxed(),
            None => any::<bool>().boxed(),
        };
        let shape = (presence(max_p), presence(max_s), 1..=max_c, routed);
        // One entry per publisher slot, so removing a publisher keeps the
        // others as they were (shrinking without a flat map).
        let publishers = vec((1_000u64..=20_000, 0u64..=5_000, 1..=max_m), max_p);
        let clocks = if self.clock_skew {
            vec(option::of((-50_000i64..=50_000, -2_000i64..=2_000)), max_p).boxed()
        } else {
            Just(vec![None; max_p]).boxed()
        };
        let lat = if self.bounded_latency {
            bounded_latency().boxed()
        } else {
            latency().boxed()
        };
        let features = LinkFeatures {
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
        };
        let link = link_model_with(lat, self.ordering, features);
        let channel = channel_spec("#", self.qos, self.max_retries);
        let faults = if self.faults {
            vec(fault_draft(MAX_DURATION_MS / 2), 0..=3).boxed()
        } else {
            Just(Vec::new()).boxed()
        };
        let tie = match self.tie_break {
            Some(t) => Just(t).boxed(),
            None => prop_oneof![Just(TieBreak::Fifo), Just(TieBreak::Seeded)].boxed(),
        };
        let delays = match self.delays {
            Some(d) => Just(d).boxed(),
            None => prop_oneof![Just(Delays::Sampled), Just(Delays::Adversarial)].boxed(),
        };
        (
            (shape, publishers, clocks),
            (link, channel, faults, (tie, delays)),
            // Seeds a TOML integer holds (at most `i64::MAX`).
            (20u64..=MAX_DURATION_MS, 0..=i64::MAX as u64),
        )
            .prop_map(
                |(
                    (shape, publishers, clocks),
                    (link, channel, faults, (tie_break, delays)),
                    (duration_ms, seed),
                )| {
                    Draft {
                        shape,
                        publishers,
                        clocks,
                        link,
                        channel,
                        faults,
                        tie_break,
                        delays,
                        duration_ms,
                        seed,
                    }
                    .assemble()
                },
            )
            .boxed()
    }
}

impl Draft {
    fn assemble(&self) -> ScenarioSpec {
        let (p, s, c, routed) = &self.shape;
        let topo = topology_of(p, s, *c, *routed);
        let slot = |name: &str| -> usize { name[1..].parse().expect("named by slot") };
        let mut agents = Vec::new();
        for (name, channel) in topo.publishers.iter().zip(&topo.publisher_channels) {
            let (period_us, start_us, count) = self.publishers[slot(name)];
            agents.push(AgentSpec::Periodic {
                name: name.clone(),
                channel: channel.clone(),
                period: micros(period_us),
                start: micros(start_us),
                kind: KindName(MessageKind::INFO),
                count: Some(count),
                to: None,
            });
        }
        for name in &topo.subscribers {
            agents.push(AgentSpec::Sink {
                name: name.clone(),
                channels: topo.channels.clone(),
                delivery: Delivery::Push,
                deadline: None,
                group: None,
            });
        }
        let clocks = topo
            .publishers
            .iter()
            .filter_map(|name| {
                self.clocks[slot(name)].map(|(offset_us, drift)| ClockSpec {
                    agent: name.clone(),
                    offset: ClockOffset(offset_us * 1_000),
                    drift_ppm: drift as f64,
                })
            })
            .collect();
        let names = topo.agents();
        ScenarioSpec {
            simulation: SimulationSpec {
                name: "generated".into(),
                seed: self.seed,
                duration: SimDuration::from_millis(self.duration_ms),
                trace_payloads: None,
                tie_break: self.tie_break,
                delays: self.delays,
            },
            limits: Limits::default(),
            broker: BrokerConfig {
                channels: vec![self.channel.clone()],
                ..BrokerConfig::default()
            },
            network: topo.network(self.link.clone()),
            grid: GridSpec::default(),
            microgrids: Vec::new(),
            agents,
            faults: self.faults.iter().map(|f| f.spec(&names)).collect(),
            clocks,
        }
    }
}

/// Scenarios where everything varies ([`ScenarioStrategy::default`]).
pub fn scenario() -> BoxedStrategy<ScenarioSpec> {
    ScenarioStrategy::default().strategy()
}

/// Validates `spec`, runs it with `seed` (environment 0) to its end with
/// the trace kept in memory, and checks the built-in `properties` (names as
/// [`crate::check::property`] reads them: `fifo`, `causal`, `no_stale`,
/// `exactly_once`, `max_age=DURATION`, `deadline`) over the run's records.
/// The reports come in the order of `properties`. An invalid scenario, a
/// run stopped by a limit or an unknown property is an `Err` naming it.
pub fn run_and_check(
    spec: &ScenarioSpec,
    seed: u64,
    properties: &[&str],
) -> Result<Vec<Report>, String> {
    let scenario =
        Scenario::from_spec(spec, "generated.toml", Path::new(".")).map_err(|e| e.to_string())?;
    let properties: Vec<String> = properties.iter().map(|p| p.to_string()).collect();
    Ok(crate::explore::check_run(&scenario, seed, &properties)?.reports)
}

/// `spec` as a scenario file (TOML), e.g. to print a counterexample that
/// `busbar run` can run and `busbar verify` can check. Keys whose value is
/// the default (the whole `[limits]` and `[grid]` tables, most link and
/// broker settings) are left out, so the file shows what the scenario
/// sets; it reads back as the same spec.
pub fn to_toml(spec: &ScenarioSpec) -> String {
    let render = || -> Result<String, String> {
        let mut doc = toml::Table::try_from(spec).map_err(|e| e.to_string())?;
        let defaults = [
            ("limits", toml::Value::try_from(Limits::default())),
            ("grid", toml::Value::try_from(GridSpec::default())),
            ("broker", toml::Value::try_from(BrokerConfig::default())),
        ];
        for (key, default) in defaults {
            let default = default.map_err(|e| e.to_string())?;
            if let Some(v) = doc.get_mut(key) {
                prune(v, &default);
            }
        }
        if let Some(toml::Value::Table(net)) = doc.get_mut("network")
            && let Some(v) = net.get_mut("default")
        {
            let default = toml::Value::try_from(LinkModel::default()).map_err(|e| e.to_string())?;
            // Only whole values: a latency or loss table is kept whole, with
            // its `dist` or `model` tag.
            if let (toml::Value::Table(t), toml::Value::Table(d)) = (&mut *v, &default) {
                t.retain(|k, v| d.get(k) != Some(v));
            }
            if matches!(v, toml::Value::Table(t) if t.is_empty()) {
                net.remove("default");
            }
        }
        doc.retain(|_, v| !matches!(v, toml::Value::Table(t) if t.is_empty()));
        // The tables in the order of a hand-written scenario (a table
        // sorts its keys).
        let order = [
            "simulation",
            "limits",
            "broker",
            "network",
            "grid",
            "microgrid",
            "agent",
            "fault",
            "clock",
        ];
        let mut out = String::new();
        for key in order.iter().copied().chain(
            doc.keys()
                .map(String::as_str)
                .filter(|k| !order.contains(k))
                .collect::<Vec<_>>(),
        ) {
            let Some(v) = doc.get(key) else { continue };
            let mut one = toml::Table::new();
            one.insert(key.to_string(), v.clone());
            if !out.is_empty() {
                out.push('\n');
            }
            out += &toml::to_string(&one).map_err(|e| e.to_string())?;
        }
        Ok(out)
    };
    // A value TOML's tables cannot hold (an integer above `i64::MAX`):
    // the spec as it is, every default written out.
    render()
        .or_else(|_| toml::to_string(spec).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| format!("# cannot render the scenario as TOML: {e}\n"))
}

/// Removes from the table `value` every key whose value equals the one in
/// `default`, recursively into tables (plain structs only: a tagged table
/// would lose its tag).
fn prune(value: &mut toml::Value, default: &toml::Value) {
    let (toml::Value::Table(t), toml::Value::Table(d)) = (value, default) else {
        return;
    };
    t.retain(|k, v| match d.get(k) {
        Some(dv) if dv == v => false,
        Some(dv) => {
            prune(v, dv);
            !matches!(v, toml::Value::Table(t) if t.is_empty())
        }
        None => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn generated_scenarios_validate_run_and_round_trip_through_toml() {
        let mut runner = TestRunner::deterministic();
        let strategy = scenario();
        for _ in 0..16 {
            let spec = strategy.new_tree(&mut runner).unwrap().current();
            let text = to_toml(&spec);
            let again = Scenario::parse(&text, "g.toml", Path::new("."))
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(again.spec(), &spec, "{text}");
            assert!(
                !text.contains("[limits]") && !text.contains("[grid"),
                "{text}"
            );
            run_and_check(&spec, 1, &["fifo", "causal"]).unwrap();
        }
        assert!(run_and_check(&spec_of(&strategy), 1, &["bogus"]).is_err());
    }

    /// The pieces, put together by hand into a scenario, validate: the
    /// faults select existing agents and links, the channel entry is a
    /// valid policy, the topology's network resolves.
    #[test]
    fn the_pieces_make_valid_scenarios() {
        let mut runner = TestRunner::deterministic();
        let horizon = SimDuration::from_millis(500);
        let pieces = (topology(), link_model(), channel_spec("#", None, None)).prop_flat_map(
            move |(topo, link, channel)| {
                let faults = fault_schedule(&topo.agents(), horizon);
                (Just(topo), Just(link), Just(channel), faults)
            },
        );
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let (topo, link, channel, faults) = pieces.new_tree(&mut runner).unwrap().current();
            for f in &faults {
                kinds.insert(f.kind());
                let at = match f {
                    FaultSpec::LinkDown { at, .. }
                    | FaultSpec::Partition { at, .. }
                    | FaultSpec::Crash { at, .. }
                    | FaultSpec::BrokerDown { at, .. } => *at,
                    other => panic!("not generated: {other:?}"),
                };
                assert!(at < horizon);
            }
            let mut spec = scenario().new_tree(&mut runner).unwrap().current();
            spec.agents = topo
                .publishers
                .iter()
                .zip(&topo.publisher_channels)
                .map(|(name, channel)| AgentSpec::Periodic {
                    name: name.clone(),
                    channel: channel.clone(),
                    period: SimDuration::from_millis(10),
                    start: SimDuration::ZERO,
                    kind: KindName(MessageKind::INFO),
                    count: Some(3),
                    to: None,
                })
                .chain(topo.subscribers.iter().map(|name| AgentSpec::Sink {
                    name: name.clone(),
                    channels: topo.channels.clone(),
                    delivery: Delivery::Push,
                    deadline: None,
                    group: None,
                }))
                .collect();
            spec.network = topo.network(link);
            spec.broker.channels = vec![channel];
            spec.faults = faults;
            spec.clocks.clear();
            let reports = run_and_check(&spec, 3, &["exactly_once"])
                .unwrap_or_else(|e| panic!("{e}\n{}", to_toml(&spec)));
            assert_eq!(reports.len(), 1);
        }
        assert_eq!(
            kinds.len(),
            4,
            "every kind of fault is generated: {kinds:?}"
        );
    }

    fn spec_of(s: &BoxedStrategy<ScenarioSpec>) -> ScenarioSpec {
        s.new_tree(&mut TestRunner::deterministic())
            .unwrap()
            .current()
    }

    #[test]
    fn shrinking_a_scenario_reaches_the_simplest_one() {
        let mut runner = TestRunner::deterministic();
        let mut tree = scenario().new_tree(&mut runner).unwrap();
        // Accept every simplification: the end is the bottom of each range.
        while tree.simplify() {}
        let spec = tree.current();
        assert_eq!(spec.agents.len(), 2, "{}", to_toml(&spec));
        assert!(spec.faults.is_empty() && spec.clocks.is_empty());
        assert_eq!(spec.network.default.ordering, Ordering::Fifo);
        assert_eq!(spec.network.default.loss, Loss::bernoulli(0.0));
        assert_eq!(
            spec.network.default.latency,
            Latency::Constant {
                value: SimDuration::ZERO
            }
        );
        assert_eq!(spec.network.default.duplicate, 0.0);
        assert_eq!(spec.network.default.reorder, 0.0);
        assert_eq!(spec.broker.channels[0].qos, Some(Qos::AtMostOnce));
        assert_eq!(spec.broker.channels[0].max_retries, Some(0));
        assert_eq!(spec.simulation.tie_break, TieBreak::Fifo);
        for a in &spec.agents {
            if let AgentSpec::Periodic { count, period, .. } = a {
                assert_eq!((*count, *period), (Some(1), SimDuration::from_millis(1)));
            }
        }
        assert!(spec.network.routers.is_empty());
        assert_eq!(spec.simulation.duration, SimDuration::from_millis(20));
    }
}
