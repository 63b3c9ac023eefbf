//! [`SimBuilder`]: gathers agents, network and broker settings, limits and
//! the trace target, validates them all in one pass (every problem reported,
//! each at its key path), and builds a [`Simulation`].

use std::collections::BTreeMap;
use std::io::Write;

use crate::broker::{Broker, BrokerConfig};
use crate::message::{AgentId, KindNames};
use crate::network::{
    Delays, FaultSpec, LinkModel, LinkSpec, Network, NetworkSpec, resolve_faults,
};
use crate::trace::{Header, MAX_PAYLOAD_LIMIT};
use crate::validate::{Invalid, KeyPath, Validator, check_agent_name, check_unique};

use super::Simulation;
use super::clock::{Clock, ClockSpec};
use super::context::Agent;
use super::core::{AgentSlot, Core, Parts};
use super::limits::Limits;
use super::sink::{TraceSink, TraceTarget};

/// The problem if `count` agents are more than `limits.max_agents` allows,
/// or than `limits.max_pending_events` (each agent starts with one event)
/// (used by the builder and, before expanding anything, by a scenario).
pub(crate) fn too_many_agents(count: u64, limits: &Limits) -> Option<String> {
    if count > limits.max_agents {
        return Some(format!(
            "{count} agents are more than limits.max_agents = {}; raise [limits] max_agents \
             if the run is meant to be this large",
            limits.max_agents
        ));
    }
    (count > limits.max_pending_events).then(|| {
        format!(
            "{count} agents need as many pending start events, more than \
             limits.max_pending_events = {}; raise [limits] max_pending_events",
            limits.max_pending_events
        )
    })
}

/// Builds a [`Simulation`]: agents, network models, broker settings, limits,
/// message-kind names, trace target.
///
/// [`SimBuilder::build`] checks everything through the one validation layer
/// ([`crate::validate`]); errors use the scenario format's key paths
/// (`limits.max_events`, `network.link[0].loss`, `agent[3].name`, where
/// `agent[i]` is the i-th agent added).
pub struct SimBuilder {
    seed: u64,
    env: u32,
    name: String,
    limits: Limits,
    broker: BrokerConfig,
    network: NetworkSpec,
    faults: Vec<FaultSpec>,
    clocks: Vec<ClockSpec>,
    agents: Vec<(String, Box<dyn Agent>)>,
    kinds: KindNames,
    trace: TraceTarget,
    payload_limit: Option<u32>,
    tie_break: TieBreak,
    delays: Delays,
    entity_metrics: bool,
}

/// The order of events scheduled for the same instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// In the order they were scheduled (the default).
    #[default]
    Fifo,
    /// Exploration: a permutation of that order drawn from the run's seed
    /// and environment (its own stream, `queue/ties`), so a seed explores
    /// one interleaving of simultaneous events and replays it exactly. An
    /// event scheduled for the instant being processed still runs after
    /// those already scheduled for it. The arrivals of a `fifo` link are
    /// never simultaneous in this mode (one that would coincide with the
    /// arrival before it comes 1 ns later), so the permutation never
    /// reorders a FIFO link.
    Seeded,
}
impl SimBuilder {
    /// A simulation seeded with `seed`, environment 0, default models, a
    /// digest-only trace.
    pub fn new(seed: u64) -> SimBuilder {
        SimBuilder {
            seed,
            env: 0,
            name: "simulation".into(),
            limits: Limits::default(),
            broker: BrokerConfig::default(),
            network: NetworkSpec::default(),
            faults: Vec::new(),
            clocks: Vec::new(),
            agents: Vec::new(),
            kinds: KindNames::new(),
            trace: TraceTarget::Digest,
            payload_limit: None,
            tie_break: TieBreak::Fifo,
            delays: Delays::Sampled,
            entity_metrics: false,
        }
    }

    /// Sets the environment index (part of every RNG stream and channel prefix).
    pub fn env(mut self, env: u32) -> Self {
        self.env = env;
        self
    }

    /// Names the run (shown in the summary).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the broker's settings.
    pub fn broker(mut self, config: BrokerConfig) -> Self {
        self.broker = config;
        self
    }

    /// Sets the whole network: default model and link changes.
    pub fn network(mut self, network: NetworkSpec) -> Self {
        self.network = network;
        self
    }

    /// Sets the model of every link that no [`LinkSpec`] changes.
    pub fn default_link(mut self, model: LinkModel) -> Self {
        self.network.default = model;
        self
    }

    /// Changes one link (or both directions of one): applied after the
    /// changes added before it.
    pub fn link(mut self, spec: LinkSpec) -> Self {
        self.network.links.push(spec);
        self
    }

    /// Adds a fault (`[[fault]]`); faults are numbered in the order added.
    pub fn fault(mut self, fault: FaultSpec) -> Self {
        self.faults.push(fault);
        self
    }

    /// Sets every fault.
    pub fn faults(mut self, faults: Vec<FaultSpec>) -> Self {
        self.faults = faults;
        self
    }

    /// Gives the agents `spec.agent` selects their own clock (`[[clock]]`);
    /// a later clock for the same agent wins.
    pub fn clock(mut self, spec: ClockSpec) -> Self {
        self.clocks.push(spec);
        self
    }

    /// Sets every clock.
    pub fn clocks(mut self, clocks: Vec<ClockSpec>) -> Self {
        self.clocks = clocks;
        self
    }

    /// Adds an agent; ids are given in the order agents are added.
    pub fn agent(mut self, name: &str, agent: impl Agent) -> Self {
        self.agents.push((name.to_string(), Box::new(agent)));
        self
    }

    /// Adds a boxed agent.
    pub fn boxed_agent(mut self, name: &str, agent: Box<dyn Agent>) -> Self {
        self.agents.push((name.to_string(), agent));
        self
    }

    /// Names the message kinds of a protocol, for the trace footer (and so
    /// for exports).
    pub fn kind_names(mut self, kinds: KindNames) -> Self {
        self.kinds = kinds;
        self
    }

    /// Keeps no trace and computes no digest (for benchmarks of the bare loop).
    pub fn trace_off(mut self) -> Self {
        self.trace = TraceTarget::Off;
        self
    }

    /// Keeps every record in memory ([`Simulation::records`]).
    pub fn trace_in_memory(mut self) -> Self {
        self.trace = TraceTarget::Memory;
        self
    }

    /// Writes the trace to `out` with `header` (scenario, seed, env).
    pub fn trace_to(mut self, out: Box<dyn Write + Send>, header: Header) -> Self {
        self.trace = TraceTarget::File(out, Box::new(header));
        self
    }

    /// Keeps the payloads published in the trace, each cut to `limit` bytes
    /// (whole floats, whole UTF-8 characters; 1..=[`MAX_PAYLOAD_LIMIT`]),
    /// or none with `None` (the default). With
    /// [`SimBuilder::trace_in_memory`] they are read back with
    /// [`Simulation::payloads`](super::Simulation::payloads); with
    /// [`SimBuilder::trace_to`] they go to the file (its header's
    /// `payload_limit` is set to `limit`). Off, the trace target `Digest`
    /// or `Off` ignore it. It does not change the run or its digest.
    pub fn keep_payloads(mut self, limit: Option<u32>) -> Self {
        self.payload_limit = limit;
        self
    }

    /// How links draw their delays ([`Delays`]): from their models (the
    /// default) or adversarially, at the ends of each model's range, to
    /// provoke reorderings.
    pub fn delays(mut self, delays: Delays) -> Self {
        self.delays = delays;
        self
    }

    /// How events scheduled for the same instant are ordered ([`TieBreak`]);
    /// FIFO by default.
    pub fn tie_break(mut self, tie_break: TieBreak) -> Self {
        self.tie_break = tie_break;
        self
    }

    /// Also computes metrics per channel and per agent
    /// ([`Simulation::entity_metrics`](super::Simulation::entity_metrics)),
    /// from every record as it is made, with any trace target (`trace_off`
    /// included), and the consumer lag of pull subscribers. Off by default:
    /// it costs a run one branch per record. It does not change the run
    /// (nor its digest).
    pub fn entity_metrics(mut self, on: bool) -> Self {
        self.entity_metrics = on;
        self
    }

    /// Checks everything: limits, broker, agent names (the naming rule and
    /// uniqueness), network models and the ends of every link. Returns
    /// every problem found.
    pub fn validate(&self) -> Result<(), Invalid> {
        let mut v = Validator::new();
        v.at("limits", |v| self.limits.validate(v));
        v.at("broker", |v| self.broker.validate(v));
        if let Some(l) = self
            .payload_limit
            .filter(|l| !(1..=MAX_PAYLOAD_LIMIT).contains(l))
        {
            v.fail_at(
                KeyPath::root().key("simulation").key("trace_payloads"),
                format!("trace_payloads must be in 1..={MAX_PAYLOAD_LIMIT} bytes, got {l}"),
            );
        }
        let name_at = |i: usize| KeyPath::root().key("agent").index(i).key("name");
        for (i, (name, _)) in self.agents.iter().enumerate() {
            if let Err(m) = check_agent_name(name) {
                v.fail_at(name_at(i), m);
            }
        }
        check_unique(
            &mut v,
            self.agents
                .iter()
                .enumerate()
                .map(|(i, (n, _))| (n.as_str(), name_at(i))),
        );
        if let Some(m) = too_many_agents(self.agents.len() as u64, &self.limits) {
            v.fail("agent", m);
        }
        let names: Vec<&str> = self.agents.iter().map(|(n, _)| n.as_str()).collect();
        v.at("network", |v| self.network.validate(v, &names));
        let agent_names: Vec<String> = self.agents.iter().map(|(n, _)| n.clone()).collect();
        v.at("fault", |v| {
            resolve_faults(
                &self.network,
                &self.faults,
                &agent_names,
                self.seed,
                u64::from(self.env),
                v,
            )
        });
        v.finish()
    }

    /// Validates everything and builds the simulation.
    pub fn build(self) -> Result<Simulation, Invalid> {
        self.validate()?;
        let SimBuilder {
            seed,
            env,
            name,
            limits,
            broker,
            network,
            faults,
            clocks,
            agents,
            kinds,
            mut trace,
            payload_limit,
            tie_break,
            delays,
            entity_metrics,
        } = self;
        let tie_salt = (tie_break == TieBreak::Seeded)
            .then(|| crate::rng::RngStream::new(seed, u64::from(env), "queue/ties").next_u64());
        if let (TraceTarget::File(_, h), Some(_)) = (&mut trace, payload_limit) {
            h.payload_limit = payload_limit;
        }
        let (names, boxes): (Vec<String>, Vec<Box<dyn Agent>>) = agents.into_iter().unzip();
        let agent_ids: BTreeMap<String, AgentId> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), AgentId(i as u32)))
            .collect();
        let net = Network::new(
            &network,
            &names,
            seed,
            u64::from(env),
            delays,
            tie_break == TieBreak::Seeded,
        )?;
        let mut resolved = resolve_faults(
            &network,
            &faults,
            &names,
            seed,
            u64::from(env),
            &mut Validator::new(),
        );
        let fault_starts = resolved.initial(&faults);
        let clocks = resolve_clocks(&clocks, &names, &mut Validator::new());
        let slots = names
            .into_iter()
            .zip(clocks)
            .map(|(n, clock)| {
                let mut slot = AgentSlot::new(n, seed, env);
                if let Some(c) = clock {
                    slot.set_clock(c);
                }
                slot
            })
            .collect();
        let core = Core::new(Parts {
            seed,
            env,
            net,
            faults: resolved,
            fault_starts,
            broker: Broker::new(broker, env),
            agents: slots,
            agent_ids,
            kinds,
            trace: {
                let mut sink = TraceSink::new(trace, limits.max_trace_records, payload_limit);
                if entity_metrics {
                    sink.enable_entity_metrics();
                }
                sink
            },
            limits,
            tie_salt,
        });
        Ok(Simulation::new(core, boxes, name))
    }
}

/// Each agent's clock: the last `[[clock]]` that selects it, if any. A
/// selector that matches no agent is reported at `clock[i].agent`.
pub(crate) fn resolve_clocks(
    clocks: &[ClockSpec],
    agents: &[String],
    v: &mut Validator,
) -> Vec<Option<Clock>> {
    let mut out = vec![None; agents.len()];
    for (i, spec) in clocks.iter().enumerate() {
        v.index(i, |v| {
            spec.validate(v);
            let mut any = false;
            for (a, name) in agents.iter().enumerate() {
                if crate::network::glob_match(&spec.agent, name) {
                    out[a] = Some(Clock::new(spec));
                    any = true;
                }
            }
            if !any {
                v.fail("agent", format!("{:?} matches no agent", spec.agent));
            }
        });
    }
    out
}
