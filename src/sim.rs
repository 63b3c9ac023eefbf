//! The event loop that ties time, network, broker, agents and trace together.
//!
//! A [`Simulation`] owns all of its state (it is `Send`), so thousands of them
//! can run side by side on rayon's threads. Build one with [`SimBuilder`],
//! then [`Simulation::run_until`] and [`Simulation::finish`].
//!
//! **Invariant:** a run is a pure function of the builder's inputs and seed.
//! Events pop in (time, insertion sequence) order; every random draw comes
//! from a named [`RngStream`]; nothing reads the wall clock.
//!
//! Hot path: an event is a few integers; a published message is stored once
//! in a slab and referenced by index from every in-flight copy (no allocation
//! per message once the slab has grown, no payload copy on fan-out); trace
//! records are fixed-size and appended to a reused chunk.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::agent::{Agent, Context, TimerId};
use crate::broker::{Broker, BrokerConfig, Delivery, Mailbox};
use crate::message::{
    AgentId, ChannelId, Message, MessageKind, MsgId, Payload, Recipient, channels,
};
use crate::metrics::{Metrics, Summary};
use crate::network::{LinkModel, LinkOverride, Network, Transit};
use crate::queue::{EventQueue, MAX_PENDING, MAX_PUSHES, QueueFull};
use crate::rng::RngStream;
use crate::time::{SimDuration, SimTime};
use crate::trace::{
    CHUNK, Digest, Digester, EventKind, Footer, Header, NODE_BROADCAST, NODE_BROKER, Reason,
    Record, TraceError, TraceWriter,
};

/// Bounds on a run. Exceeding one stops the run with
/// [`SimError::LimitExceeded`], which names the limit and the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most events the loop may process. Default 100 million.
    #[serde(default = "Limits::default_max_events")]
    pub max_events: u64,
    /// Latest virtual time an event may be processed at. Default 30 days.
    #[serde(default = "Limits::default_max_sim_time")]
    pub max_sim_time: SimDuration,
    /// Most message copies on the network at once. Default 1 million.
    #[serde(default = "Limits::default_max_in_flight")]
    pub max_in_flight: u64,
    /// Most trace records. Default 200 million.
    #[serde(default = "Limits::default_max_trace_records")]
    pub max_trace_records: u64,
}

impl Limits {
    fn default_max_events() -> u64 {
        100_000_000
    }
    fn default_max_sim_time() -> SimDuration {
        SimDuration::from_secs(30 * 24 * 3600)
    }
    fn default_max_in_flight() -> u64 {
        1_000_000
    }
    fn default_max_trace_records() -> u64 {
        200_000_000
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: Self::default_max_events(),
            max_sim_time: Self::default_max_sim_time(),
            max_in_flight: Self::default_max_in_flight(),
            max_trace_records: Self::default_max_trace_records(),
        }
    }
}

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A bound in [`Limits`] was exceeded. Raise it (scenario `[limits]`) if
    /// the run is meant to be that large, or look for a runaway agent.
    #[error(
        "limit {limit} = {max} exceeded at {time} (seed {seed}, env {env}); \
         raise [limits] {limit} if the run is meant to be this large"
    )]
    LimitExceeded {
        /// The limit's name, as in the scenario's `[limits]` table.
        limit: &'static str,
        /// Its value.
        max: u64,
        /// The run's seed.
        seed: u64,
        /// The environment index.
        env: u32,
        /// Virtual time when it was exceeded.
        time: SimTime,
    },
    /// Writing the trace failed.
    #[error("trace: {0}")]
    Trace(#[from] TraceError),
    /// The run was already finished.
    #[error("the simulation has already finished")]
    Finished,
    /// An earlier error stopped the run; it cannot go on.
    #[error("the run already stopped: {0}")]
    Stopped(String),
}

/// Why a simulation could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two agents have the same name; names must be unique.
    #[error("agent name {0:?} is used twice; agent names must be unique")]
    DuplicateAgent(String),
    /// An agent name is empty or is the reserved name `broker`.
    #[error("agent name {0:?} is not allowed (empty, or the reserved name \"broker\")")]
    BadAgentName(String),
    /// A link override names an end that is neither an agent nor `broker`.
    #[error("link {from} -> {to}: {missing:?} is not an agent of this simulation")]
    UnknownLinkEnd {
        /// Link start.
        from: String,
        /// Link end.
        to: String,
        /// The name that does not exist.
        missing: String,
    },
    /// A link override does not connect an agent with the broker (every link
    /// today runs between an agent and the broker).
    #[error("link {from} -> {to}: one end must be \"broker\" and the other an agent")]
    NotABrokerLink {
        /// Link start.
        from: String,
        /// Link end.
        to: String,
    },
    /// A link model's parameters are invalid.
    #[error("link {link}: {key}: {message}")]
    BadLinkModel {
        /// Which link (`default` for the default model).
        link: String,
        /// The offending key.
        key: &'static str,
        /// Why.
        message: String,
    },
    /// More agents than the event queue can start at once.
    #[error("{0} agents are more than the event queue can hold")]
    TooManyAgents(usize),
    /// Broker settings are invalid.
    #[error("broker: {key}: {message}")]
    BadBroker {
        /// The offending key.
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// What the trace keeps.
enum TraceTarget {
    /// No records at all, no digest (for measuring the loop without tracing).
    Off,
    /// Records are hashed into the digest and dropped.
    Digest,
    /// Records are hashed and also kept in memory.
    Memory,
    /// Records are hashed and written to a trace file.
    File(Box<dyn Write + Send>, Box<Header>),
}

/// Builds a [`Simulation`]: agents, network models, broker settings, limits,
/// trace target.
pub struct SimBuilder {
    seed: u64,
    env: u32,
    name: String,
    limits: Limits,
    broker: BrokerConfig,
    default_link: LinkModel,
    overrides: Vec<(String, String, LinkOverride)>,
    agents: Vec<(String, Box<dyn Agent>)>,
    trace: TraceTarget,
}

impl SimBuilder {
    /// A simulation seeded with `seed`, environment 0, default models.
    pub fn new(seed: u64) -> SimBuilder {
        SimBuilder {
            seed,
            env: 0,
            name: "simulation".into(),
            limits: Limits::default(),
            broker: BrokerConfig::default(),
            default_link: LinkModel::default(),
            overrides: Vec::new(),
            agents: Vec::new(),
            trace: TraceTarget::Digest,
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

    /// Sets the model of every link without an override.
    pub fn default_link(mut self, model: LinkModel) -> Self {
        self.default_link = model;
        self
    }

    /// Overrides the link from `from` to `to` (one of them `"broker"`).
    pub fn link(mut self, from: &str, to: &str, o: LinkOverride) -> Self {
        self.overrides.push((from.to_string(), to.to_string(), o));
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

    /// Validates everything and builds the simulation.
    pub fn build(self) -> Result<Simulation, BuildError> {
        let SimBuilder {
            seed,
            env,
            name,
            limits,
            broker,
            default_link,
            overrides,
            agents,
            trace,
        } = self;
        broker
            .validate()
            .map_err(|(key, message)| BuildError::BadBroker { key, message })?;
        default_link
            .validate()
            .map_err(|(key, message)| BuildError::BadLinkModel {
                link: "default".into(),
                key,
                message,
            })?;
        let mut agent_ids = BTreeMap::new();
        let mut agent_names = Vec::with_capacity(agents.len());
        let mut boxes = Vec::with_capacity(agents.len());
        for (i, (n, a)) in agents.into_iter().enumerate() {
            if n.is_empty() || n == "broker" {
                return Err(BuildError::BadAgentName(n));
            }
            if agent_ids.insert(n.clone(), AgentId(i as u32)).is_some() {
                return Err(BuildError::DuplicateAgent(n));
            }
            agent_names.push(n);
            boxes.push(a);
        }
        let mut models: BTreeMap<(String, String), LinkModel> = BTreeMap::new();
        for (from, to, o) in &overrides {
            for end in [from, to] {
                if end != "broker" && !agent_ids.contains_key(end) {
                    return Err(BuildError::UnknownLinkEnd {
                        from: from.clone(),
                        to: to.clone(),
                        missing: end.clone(),
                    });
                }
            }
            if (from == "broker") == (to == "broker") {
                return Err(BuildError::NotABrokerLink {
                    from: from.clone(),
                    to: to.clone(),
                });
            }
            let key = (from.clone(), to.clone());
            let base = models.get(&key).unwrap_or(&default_link);
            let model = base.with_override(o);
            model
                .validate()
                .map_err(|(key, message)| BuildError::BadLinkModel {
                    link: format!("{from} -> {to}"),
                    key,
                    message,
                })?;
            models.insert(key, model);
        }
        let net = Network::star(&agent_names, seed, u64::from(env), |a, b| {
            models
                .get(&(a.to_string(), b.to_string()))
                .cloned()
                .unwrap_or_else(|| default_link.clone())
        });
        let agent_rngs = agent_names
            .iter()
            .map(|n| RngStream::new(seed, u64::from(env), &format!("agent/{n}")))
            .collect();
        let n = agent_names.len();
        let sink = TraceSink::new(trace, limits.max_trace_records);
        let mut core = Core {
            now: SimTime::ZERO,
            seed,
            env,
            env_prefix: channels::env_prefix(env),
            queue: EventQueue::with_capacity(1024),
            msgs: MsgStore::default(),
            next_msg: 0,
            net,
            broker: Broker::new(broker),
            mailboxes: vec![Mailbox::default(); n],
            timers: Timers::default(),
            agent_rngs,
            agent_names,
            agent_ids,
            trace: sink,
            metrics: Metrics::default(),
            limits,
            in_flight: 0,
            fault: None,
        };
        for i in 0..n {
            core.push(SimTime::ZERO, Event::Start { agent: i as u32 });
        }
        if core.fault.is_some() {
            return Err(BuildError::TooManyAgents(n));
        }
        Ok(Simulation {
            core,
            agents: boxes,
            name,
            finished: false,
            stopped: None,
        })
    }
}

/// A compact event: integer indices only.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Start {
        agent: u32,
    },
    AtBroker {
        slot: u32,
    },
    AtAgent {
        slot: u32,
        agent: u32,
        pull: bool,
    },
    Timer {
        agent: u32,
        slot: u32,
        generation: u32,
    },
}

/// The header fields of a message that every trace record repeats.
#[derive(Clone, Copy)]
struct MsgHead {
    id: u64,
    channel: u32,
    sender: u32,
    kind: u8,
    sent_ns: u64,
}

impl MsgHead {
    #[inline]
    fn of(m: &Message) -> MsgHead {
        MsgHead {
            id: m.id.0,
            channel: m.channel.0,
            sender: m.sender.0,
            kind: m.kind.code(),
            sent_ns: m.sent.0,
        }
    }
}

fn recipient_node(r: Recipient) -> u32 {
    match r {
        Recipient::Broadcast => NODE_BROADCAST,
        Recipient::Agent(a) => a.0,
    }
}

/// Published messages, referenced by index from their in-flight copies.
#[derive(Default)]
struct MsgStore {
    slots: Vec<(Option<Message>, u32)>,
    free: Vec<u32>,
}

impl MsgStore {
    #[inline]
    fn insert(&mut self, msg: Message) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = (Some(msg), 1);
                i
            }
            None => {
                self.slots.push((Some(msg), 1));
                (self.slots.len() - 1) as u32
            }
        }
    }

    #[inline]
    fn get(&self, slot: u32) -> &Message {
        self.slots[slot as usize]
            .0
            .as_ref()
            .expect("live slot holds a message")
    }

    #[inline]
    fn add_ref(&mut self, slot: u32) {
        self.slots[slot as usize].1 += 1;
    }

    /// Drops one reference; the last one frees the slot.
    #[inline]
    fn release(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.1 -= 1;
        if s.1 == 0 {
            s.0 = None;
            self.free.push(slot);
        }
    }

    /// Drops one reference and returns the message: moved out if this was
    /// the last reference, else a cheap clone (payload shared).
    #[inline]
    fn take(&mut self, slot: u32) -> Message {
        let s = &mut self.slots[slot as usize];
        s.1 -= 1;
        if s.1 == 0 {
            self.free.push(slot);
            s.0.take().expect("live slot holds a message")
        } else {
            s.0.as_ref().expect("live slot holds a message").clone()
        }
    }
}

/// Pending timers; a generation counter makes stale ids and events harmless.
#[derive(Default)]
pub(crate) struct Timers {
    slots: Vec<(u64, u32, bool)>, // (tag, generation, live)
    free: Vec<u32>,
}

impl Timers {
    fn add(&mut self, tag: u64) -> TimerId {
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, 0, false));
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.0 = tag;
        s.2 = true;
        TimerId {
            slot,
            generation: s.1,
        }
    }

    fn retire(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.2 = false;
        s.1 = s.1.wrapping_add(1);
        self.free.push(slot);
    }

    /// The tag of a live timer, retiring it.
    fn fire(&mut self, slot: u32, generation: u32) -> Option<u64> {
        let s = self.slots[slot as usize];
        if s.2 && s.1 == generation {
            self.retire(slot);
            Some(s.0)
        } else {
            None
        }
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.slots.get(id.slot as usize) {
            Some(&(_, generation, true)) if generation == id.generation => {
                self.retire(id.slot);
                true
            }
            _ => false,
        }
    }
}

/// Where records go: a reused buffer of records in their canonical byte
/// layout (what the digest hashes), hashed, and decoded for a file or
/// memory only when one was asked for, every [`CHUNK`] records.
struct TraceSink {
    enabled: bool,
    bytes: Vec<u8>,
    decoded: Vec<Record>,
    digester: Digester,
    keep: Option<Vec<Record>>,
    writer: Option<TraceWriter<Box<dyn Write + Send>>>,
    pending_header: Option<(Box<dyn Write + Send>, Box<Header>)>,
    count: u64,
    max: u64,
    error: Option<TraceError>,
}

const RECORD_BYTES: usize = 40;

impl TraceSink {
    fn new(target: TraceTarget, max: u64) -> TraceSink {
        let mut s = TraceSink {
            enabled: true,
            bytes: Vec::with_capacity(CHUNK * RECORD_BYTES),
            decoded: Vec::new(),
            digester: Digester::default(),
            keep: None,
            writer: None,
            pending_header: None,
            count: 0,
            max,
            error: None,
        };
        match target {
            TraceTarget::Off => s.enabled = false,
            TraceTarget::Digest => {}
            TraceTarget::Memory => s.keep = Some(Vec::new()),
            TraceTarget::File(w, h) => s.pending_header = Some((w, h)),
        }
        s
    }

    /// False when the record limit was exceeded.
    #[inline]
    fn push(&mut self, r: Record) -> bool {
        if !self.enabled {
            return true;
        }
        self.count += 1;
        self.bytes.extend_from_slice(&r.to_bytes());
        if self.bytes.len() == CHUNK * RECORD_BYTES {
            self.flush();
        }
        self.count <= self.max
    }

    /// The records not yet flushed.
    fn pending(&self) -> impl Iterator<Item = Record> + '_ {
        self.bytes.chunks_exact(RECORD_BYTES).map(|b| {
            Record::from_bytes(b.try_into().expect("40 bytes")).expect("written by to_bytes")
        })
    }

    fn flush(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        self.digester.update_bytes(&self.bytes);
        if let Some((w, h)) = self.pending_header.take() {
            match TraceWriter::new(w, &h) {
                Ok(tw) => self.writer = Some(tw),
                Err(e) => self.error = Some(e),
            }
        }
        if self.keep.is_some() || self.writer.is_some() {
            let mut decoded = std::mem::take(&mut self.decoded);
            decoded.clear();
            decoded.extend(self.pending());
            if let Some(keep) = &mut self.keep {
                keep.extend_from_slice(&decoded);
            }
            if let Some(w) = &mut self.writer
                && let Err(e) = w.records(&decoded)
            {
                self.error.get_or_insert(e);
                self.writer = None;
            }
            self.decoded = decoded;
        }
        self.bytes.clear();
    }

    fn digest(&self) -> Digest {
        let mut d = self.digester.clone();
        d.update_bytes(&self.bytes);
        d.digest()
    }
}

/// Everything but the agents: what a [`Context`] may reach.
pub struct Core {
    pub(crate) now: SimTime,
    seed: u64,
    pub(crate) env: u32,
    pub(crate) env_prefix: String,
    queue: EventQueue<Event>,
    msgs: MsgStore,
    next_msg: u64,
    net: Network,
    pub(crate) broker: Broker,
    pub(crate) mailboxes: Vec<Mailbox>,
    pub(crate) timers: Timers,
    pub(crate) agent_rngs: Vec<RngStream>,
    pub(crate) agent_names: Vec<String>,
    pub(crate) agent_ids: BTreeMap<String, AgentId>,
    trace: TraceSink,
    pub(crate) metrics: Metrics,
    limits: Limits,
    in_flight: u64,
    /// An error raised inside a handler, reported when the handler returns.
    fault: Option<SimError>,
}

impl Core {
    fn limit(&mut self, limit: &'static str, max: u64) {
        if self.fault.is_none() {
            self.fault = Some(SimError::LimitExceeded {
                limit,
                max,
                seed: self.seed,
                env: self.env,
                time: self.now,
            });
        }
    }

    #[inline]
    fn record(&mut self, event: EventKind, h: MsgHead, node: u32, detail: u16) {
        let ok = self.trace.push(Record {
            time_ns: self.now.0,
            event,
            msg: h.id,
            channel: h.channel,
            sender: h.sender,
            node,
            kind: h.kind,
            detail,
            sent_ns: h.sent_ns,
        });
        if !ok {
            self.limit("max_trace_records", self.limits.max_trace_records);
        }
    }

    #[inline]
    fn drop_copy(&mut self, h: MsgHead, node: u32, reason: Reason) {
        self.metrics.drop(reason);
        self.record(EventKind::Drop, h, node, reason as u16);
    }

    #[inline]
    fn schedule_copy(&mut self, at: SimTime, ev: Event) {
        self.in_flight += 1;
        if self.in_flight > self.limits.max_in_flight {
            self.limit("max_in_flight", self.limits.max_in_flight);
        }
        self.push(at, ev);
    }

    /// Queues an event; a full queue stops the run (a terminal error, so
    /// the half-done bookkeeping of the failed event never matters).
    #[inline]
    fn push(&mut self, at: SimTime, ev: Event) {
        if let Err(e) = self.queue.push(at, ev) {
            let (limit, max) = match e {
                QueueFull::Pending => ("pending_events", MAX_PENDING as u64),
                _ => ("queue_pushes", MAX_PUSHES),
            };
            self.limit(limit, max);
        }
    }

    pub(crate) fn publish(
        &mut self,
        sender: AgentId,
        channel: ChannelId,
        recipient: Recipient,
        kind: MessageKind,
        payload: Payload,
    ) -> MsgId {
        let id = MsgId(self.next_msg);
        self.next_msg += 1;
        let msg = Message {
            id,
            env: self.env,
            channel,
            sender,
            recipient,
            kind,
            sent: self.now,
            payload,
        };
        let h = MsgHead::of(&msg);
        self.metrics.published += 1;
        self.record(EventKind::Publish, h, recipient_node(recipient), 0);
        match self.net.send_up(sender.0, self.now) {
            Transit::Lost => self.drop_copy(h, NODE_BROKER, Reason::Loss),
            Transit::Arrive(at) => {
                let slot = self.msgs.insert(msg);
                self.schedule_copy(at, Event::AtBroker { slot });
            }
        }
        id
    }

    /// The message in `slot` reached the broker: fan it out.
    fn route(&mut self, slot: u32) {
        let (h, channel, recipient) = {
            let m = self.msgs.get(slot);
            (MsgHead::of(m), m.channel, m.recipient)
        };
        self.metrics.routed += 1;
        self.record(EventKind::Route, h, NODE_BROKER, 0);
        let depart = self.now + self.broker.config().processing;
        let mut matched = false;
        for i in 0..self.broker.subscribers(channel).len() {
            let sub = self.broker.subscribers(channel)[i];
            if let Recipient::Agent(a) = recipient
                && a != sub.agent
            {
                continue;
            }
            matched = true;
            match self.net.send_down(sub.agent.0, depart) {
                Transit::Lost => self.drop_copy(h, sub.agent.0, Reason::Loss),
                Transit::Arrive(at) => {
                    self.msgs.add_ref(slot);
                    self.schedule_copy(
                        at,
                        Event::AtAgent {
                            slot,
                            agent: sub.agent.0,
                            pull: sub.delivery == Delivery::Pull,
                        },
                    );
                }
            }
        }
        if !matched {
            self.drop_copy(h, recipient_node(recipient), Reason::NoSubscriber);
        }
        self.msgs.release(slot);
    }

    pub(crate) fn set_timer(&mut self, agent: AgentId, at: SimTime, tag: u64) -> TimerId {
        let id = self.timers.add(tag);
        self.push(
            at,
            Event::Timer {
                agent: agent.0,
                slot: id.slot,
                generation: id.generation,
            },
        );
        id
    }

    pub(crate) fn mark_late(&mut self, me: AgentId, msg: &Message) {
        self.metrics.late += 1;
        self.record(EventKind::Late, MsgHead::of(msg), me.0, 0);
    }
}

/// One environment: agents plus everything they act on.
pub struct Simulation {
    core: Core,
    agents: Vec<Box<dyn Agent>>,
    name: String,
    finished: bool,
    stopped: Option<String>,
}

impl Simulation {
    /// The current virtual time.
    pub fn now(&self) -> SimTime {
        self.core.now
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.core.seed
    }

    /// The environment index.
    pub fn env(&self) -> u32 {
        self.core.env
    }

    /// Metrics so far.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    /// Message copies currently on the network.
    pub fn in_flight(&self) -> u64 {
        self.core.in_flight
    }

    /// Agent names, by id.
    pub fn agent_names(&self) -> &[String] {
        &self.core.agent_names
    }

    /// Channel names, by id.
    pub fn channel_names(&self) -> &[String] {
        self.core.broker.channel_names()
    }

    /// The id of the agent called `name`.
    pub fn agent_id(&self, name: &str) -> Option<AgentId> {
        self.core.agent_ids.get(name).copied()
    }

    /// The subscribers of channel `name` now, in subscription order (empty
    /// for a channel nobody has used).
    pub fn subscribers(&self, channel: &str) -> Vec<(AgentId, Delivery)> {
        self.core
            .broker
            .lookup(channel)
            .map(|c| {
                self.core
                    .broker
                    .subscribers(c)
                    .iter()
                    .map(|s| (s.agent, s.delivery))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A typed reference to agent `id`, if it is a `T`.
    pub fn agent<T: Agent>(&self, id: AgentId) -> Option<&T> {
        let a: &dyn std::any::Any = self.agents.get(id.index())?.as_ref();
        a.downcast_ref::<T>()
    }

    /// The digest of the events so far.
    pub fn digest(&self) -> Digest {
        self.core.trace.digest()
    }

    /// Records kept in memory (with [`SimBuilder::trace_in_memory`]), including
    /// those not yet flushed.
    pub fn records(&self) -> Vec<Record> {
        let mut v = self.core.trace.keep.clone().unwrap_or_default();
        if self.core.trace.keep.is_some() {
            v.extend(self.core.trace.pending());
        }
        v
    }

    /// Takes the records kept in memory so far (with
    /// [`SimBuilder::trace_in_memory`]), leaving the rest to come: a long run
    /// can be consumed piece by piece. Records still in the current chunk
    /// (up to 4096) arrive with a later call or after `finish`.
    pub fn take_records(&mut self) -> Vec<Record> {
        self.core
            .trace
            .keep
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// How many records [`Simulation::take_records`] would return now.
    pub fn kept_records(&self) -> usize {
        self.core.trace.keep.as_ref().map_or(0, Vec::len)
    }

    /// The time of the next pending event.
    pub fn next_event_time(&self) -> Option<SimTime> {
        self.core.queue.peek_time()
    }

    /// Processes one event. Returns false when nothing is pending.
    pub fn step(&mut self) -> Result<bool, SimError> {
        if self.finished {
            return Err(SimError::Finished);
        }
        if let Some(why) = &self.stopped {
            return Err(SimError::Stopped(why.clone()));
        }
        let Some((t, ev)) = self.core.queue.pop() else {
            return Ok(false);
        };
        let core = &mut self.core;
        if t.0 > core.limits.max_sim_time.0 {
            core.now = t;
            core.limit("max_sim_time", core.limits.max_sim_time.0);
        } else if core.metrics.events >= core.limits.max_events {
            core.limit("max_events", core.limits.max_events);
        } else {
            core.now = t;
            core.metrics.events += 1;
            match ev {
                Event::AtAgent { slot, agent, pull } => {
                    core.in_flight -= 1;
                    let msg = core.msgs.take(slot);
                    let h = MsgHead::of(&msg);
                    if pull {
                        let cap = core.broker.config().buffer_capacity;
                        if let Err(msg) = core.mailboxes[agent as usize].push(msg, cap) {
                            core.drop_copy(MsgHead::of(&msg), agent, Reason::Overflow);
                        } else {
                            core.deliver(h, agent);
                        }
                    } else {
                        core.deliver(h, agent);
                        let mut ctx = Context {
                            core,
                            me: AgentId(agent),
                        };
                        self.agents[agent as usize].on_message(&mut ctx, &msg);
                    }
                }
                Event::AtBroker { slot } => {
                    core.in_flight -= 1;
                    core.route(slot);
                }
                Event::Timer {
                    agent,
                    slot,
                    generation,
                } => {
                    if let Some(tag) = core.timers.fire(slot, generation) {
                        core.metrics.timers += 1;
                        let h = MsgHead {
                            id: tag,
                            channel: crate::trace::NONE,
                            sender: agent,
                            kind: 0,
                            sent_ns: t.0,
                        };
                        core.record(EventKind::Timer, h, agent, 0);
                        let mut ctx = Context {
                            core,
                            me: AgentId(agent),
                        };
                        self.agents[agent as usize].on_timer(&mut ctx, tag);
                    }
                }
                Event::Start { agent } => {
                    let mut ctx = Context {
                        core,
                        me: AgentId(agent),
                    };
                    self.agents[agent as usize].on_start(&mut ctx);
                }
            }
        }
        let err = match (self.core.fault.take(), self.core.trace.error.take()) {
            (Some(e), _) => e,
            (None, Some(e)) => e.into(),
            (None, None) => return Ok(true),
        };
        self.stopped = Some(err.to_string());
        Err(err)
    }

    /// Processes every event up to and including time `until`, then sets the
    /// clock to `until`.
    pub fn run_until(&mut self, until: SimTime) -> Result<(), SimError> {
        while let Some(t) = self.core.queue.peek_time() {
            if t > until {
                break;
            }
            self.step()?;
        }
        if until > self.core.now {
            self.core.now = until;
        }
        Ok(())
    }

    /// Runs until nothing is pending (bounded by the limits).
    pub fn run(&mut self) -> Result<(), SimError> {
        while self.step()? {}
        Ok(())
    }

    /// Why the run stopped early, if a limit or the trace stopped it. The
    /// simulation refuses to go on after that, but [`Simulation::finish`]
    /// still writes a complete, readable trace of what happened up to there.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Ends the run: flushes the trace, writes the footer, and returns the
    /// summary. Agents stay readable afterwards. After an error from `step`
    /// this still writes a valid trace of the events so far, marked as
    /// stopped in its footer.
    pub fn finish(&mut self) -> Result<Summary, SimError> {
        if self.finished {
            return Err(SimError::Finished);
        }
        self.finished = true;
        let trace = &mut self.core.trace;
        if trace.pending_header.is_some() && trace.bytes.is_empty() {
            // An empty run still gets a valid file: header, no batch, footer.
            let (w, h) = trace.pending_header.take().expect("checked");
            trace.writer = Some(TraceWriter::new(w, &h)?);
        }
        trace.flush();
        if let Some(e) = trace.error.take() {
            return Err(e.into());
        }
        let digest = trace.digester.digest();
        if let Some(w) = trace.writer.take() {
            w.finish(&Footer {
                agents: self.core.agent_names.clone(),
                channels: self.core.broker.channel_names().to_vec(),
                records: trace.count,
                digest,
                stopped: self.stopped.clone(),
            })?;
        }
        Ok(Summary::new(
            &self.name,
            self.core.seed,
            self.core.env,
            self.core.now.0,
            &self.core.metrics,
            self.core.in_flight,
            self.core.trace.count,
            digest,
            self.stopped.clone(),
        ))
    }
}

impl Core {
    #[inline]
    fn deliver(&mut self, h: MsgHead, agent: u32) {
        self.metrics.delivered += 1;
        self.metrics
            .latency
            .saturating_record(self.now.0.saturating_sub(h.sent_ns));
        self.record(EventKind::Deliver, h, agent, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Publishes `n` messages on "c" one per `every`, starting at time 0.
    struct Talker {
        ch: Option<ChannelId>,
        left: u32,
        every: SimDuration,
    }
    impl Agent for Talker {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            self.ch = Some(ctx.channel("c"));
            ctx.set_timer(SimDuration::ZERO, 0);
        }
        fn on_timer(&mut self, ctx: &mut Context<'_>, _tag: u64) {
            if self.left == 0 {
                return;
            }
            self.left -= 1;
            let ch = self.ch.expect("set in on_start");
            ctx.publish(
                ch,
                Recipient::Broadcast,
                MessageKind::Info,
                Payload::values(&[f64::from(self.left)]),
            );
            ctx.set_timer(self.every, 0);
        }
    }

    #[derive(Default)]
    struct Listener {
        got: Vec<(SimTime, MsgId)>,
        pull: bool,
        ch: Option<ChannelId>,
    }
    impl Agent for Listener {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            let ch = ctx.channel("c");
            self.ch = Some(ch);
            let d = if self.pull {
                Delivery::Pull
            } else {
                Delivery::Push
            };
            ctx.subscribe(ch, d);
        }
        fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
            self.got.push((ctx.now(), msg.id));
        }
    }

    fn talk(n: u32) -> SimBuilder {
        SimBuilder::new(1)
            .agent(
                "talker",
                Talker {
                    ch: None,
                    left: n,
                    every: SimDuration::from_millis(1),
                },
            )
            .agent("a", Listener::default())
            .agent("b", Listener::default())
    }

    #[test]
    fn every_subscriber_gets_every_message_in_order_on_fifo_links() {
        let mut sim = talk(50).build().unwrap();
        sim.run().unwrap();
        for name in ["a", "b"] {
            let l: &Listener = sim.agent(sim.agent_id(name).unwrap()).unwrap();
            let ids: Vec<u64> = l.got.iter().map(|g| g.1.0).collect();
            assert_eq!(ids, (0..50).collect::<Vec<_>>());
        }
        let s = sim.finish().unwrap();
        assert_eq!(
            (s.published, s.routed, s.delivered, s.dropped),
            (50, 50, 100, 0)
        );
        assert_eq!(s.in_flight, 0);
        // Default link: 1 ms up + 1 ms down; HDR buckets are exact to 0.1%.
        assert!(
            s.latency.p50_ns.abs_diff(2_000_000) <= 2_000,
            "{:?}",
            s.latency
        );
    }

    #[test]
    fn pull_subscribers_buffer_until_consumed_and_overflow_is_counted() {
        let mut sim = talk(5)
            .agent(
                "p",
                Listener {
                    pull: true,
                    ..Listener::default()
                },
            )
            .broker(BrokerConfig {
                buffer_capacity: 3,
                ..BrokerConfig::default()
            })
            .build()
            .unwrap();
        sim.run().unwrap();
        let p: &Listener = sim.agent(sim.agent_id("p").unwrap()).unwrap();
        assert!(p.got.is_empty(), "pull subscribers get no on_message");
        let subs = sim.subscribers("c");
        assert_eq!(
            subs,
            vec![
                (AgentId(1), Delivery::Push),
                (AgentId(2), Delivery::Push),
                (AgentId(3), Delivery::Pull)
            ]
        );
        assert!(sim.subscribers("nobody-uses-this").is_empty());
        let s = sim.finish().unwrap();
        assert_eq!(s.dropped_by_reason.get("overflow"), Some(&2));
        assert_eq!(s.delivered, 5 + 5 + 3);
    }

    #[test]
    fn limits_name_themselves_and_the_seed() {
        let mut sim = talk(1000)
            .limits(Limits {
                max_events: 100,
                ..Limits::default()
            })
            .build()
            .unwrap();
        let err = sim.run().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("max_events") && text.contains("seed 1"),
            "{text}"
        );
        let mut sim = talk(1000)
            .limits(Limits {
                max_sim_time: SimDuration::from_millis(10),
                ..Limits::default()
            })
            .build()
            .unwrap();
        assert!(sim.run().unwrap_err().to_string().contains("max_sim_time"));
        let mut sim = talk(1000)
            .limits(Limits {
                max_trace_records: 10,
                ..Limits::default()
            })
            .build()
            .unwrap();
        assert!(
            sim.run()
                .unwrap_err()
                .to_string()
                .contains("max_trace_records")
        );
    }

    #[test]
    fn a_stopped_run_stays_stopped_and_still_finishes() {
        let mut sim = talk(1000)
            .limits(Limits {
                max_events: 50,
                ..Limits::default()
            })
            .trace_in_memory()
            .build()
            .unwrap();
        assert!(matches!(sim.run(), Err(SimError::LimitExceeded { .. })));
        assert!(sim.stopped().unwrap().contains("max_events"));
        assert!(matches!(sim.step(), Err(SimError::Stopped(_))));
        let s = sim.finish().unwrap();
        assert_eq!(s.events, 50);
        assert!(s.stopped.unwrap().contains("max_events"));
        assert_eq!(sim.records().len() as u64, s.trace_records);
    }

    #[test]
    fn unsubscribed_recipient_is_a_counted_drop() {
        struct Direct;
        impl Agent for Direct {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let ch = ctx.channel("c");
                let b = ctx.agent_id("b").unwrap();
                ctx.publish(ch, Recipient::Agent(b), MessageKind::Info, Payload::Empty);
            }
        }
        let mut sim = SimBuilder::new(0)
            .agent("d", Direct)
            .agent("b", ())
            .build()
            .unwrap();
        sim.run().unwrap();
        let s = sim.finish().unwrap();
        assert_eq!(s.dropped_by_reason.get("no_subscriber"), Some(&1));
    }

    #[test]
    fn fan_out_shares_the_payload_and_mailboxes_are_private() {
        use std::sync::Arc;
        struct Big;
        impl Agent for Big {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let ch = ctx.channel("c");
                ctx.publish(
                    ch,
                    Recipient::Broadcast,
                    MessageKind::Info,
                    Payload::values(&[1.0; 64]),
                );
            }
        }
        /// Keeps every payload it is pushed, and consumes its pull buffer.
        #[derive(Default)]
        struct Keep {
            pushed: Vec<Payload>,
        }
        impl Agent for Keep {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let ch = ctx.channel("c");
                ctx.subscribe(ch, Delivery::Push);
            }
            fn on_message(&mut self, _ctx: &mut Context<'_>, msg: &Message) {
                self.pushed.push(msg.payload.clone());
            }
        }
        /// Pulls: consumes everything on its first timer after the arrivals.
        #[derive(Default)]
        struct Puller {
            taken: Vec<Payload>,
            greedy: bool,
        }
        impl Agent for Puller {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let ch = ctx.channel("c");
                ctx.subscribe(ch, Delivery::Pull);
                ctx.set_timer(SimDuration::from_secs(1), 0);
            }
            fn on_timer(&mut self, ctx: &mut Context<'_>, _tag: u64) {
                let ch = ctx.channel("c");
                assert_eq!(ctx.pending(ch), 1, "each puller has its own copy");
                if self.greedy {
                    let peeked = ctx.peek(ch).expect("waiting").id;
                    let m = ctx.consume(ch).expect("waiting");
                    assert_eq!(m.id, peeked, "peek shows what consume takes");
                    self.taken.push(m.payload);
                    assert_eq!(ctx.consume(ch), None);
                }
            }
        }
        let mut sim = SimBuilder::new(0)
            .agent("big", Big)
            .agent("k1", Keep::default())
            .agent("k2", Keep::default())
            .agent(
                "greedy",
                Puller {
                    greedy: true,
                    ..Puller::default()
                },
            )
            .agent("patient", Puller::default())
            .build()
            .unwrap();
        sim.run().unwrap();
        let k1: &Keep = sim.agent(AgentId(1)).unwrap();
        let k2: &Keep = sim.agent(AgentId(2)).unwrap();
        let g: &Puller = sim.agent(AgentId(3)).unwrap();
        let (Payload::Floats(a), Payload::Floats(b), Payload::Floats(c)) =
            (&k1.pushed[0], &k2.pushed[0], &g.taken[0])
        else {
            panic!("64 floats are a shared payload");
        };
        assert!(
            Arc::ptr_eq(a, b) && Arc::ptr_eq(a, c),
            "no copy per subscriber"
        );
    }

    #[test]
    fn cancelled_timers_do_not_fire() {
        #[derive(Default)]
        struct T {
            fired: Vec<u64>,
        }
        impl Agent for T {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let a = ctx.set_timer(SimDuration(10), 1);
                ctx.set_timer(SimDuration(20), 2);
                assert!(ctx.cancel_timer(a));
                assert!(!ctx.cancel_timer(a));
            }
            fn on_timer(&mut self, _ctx: &mut Context<'_>, tag: u64) {
                self.fired.push(tag);
            }
        }
        let mut sim = SimBuilder::new(0).agent("t", T::default()).build().unwrap();
        sim.run().unwrap();
        let t: &T = sim.agent(AgentId(0)).unwrap();
        assert_eq!(t.fired, vec![2]);
    }

    #[test]
    fn builder_rejects_bad_names_and_links() {
        assert!(matches!(
            SimBuilder::new(0)
                .agent("x", ())
                .agent("x", ())
                .build()
                .err(),
            Some(BuildError::DuplicateAgent(_))
        ));
        assert!(matches!(
            SimBuilder::new(0).agent("broker", ()).build().err(),
            Some(BuildError::BadAgentName(_))
        ));
        assert!(matches!(
            SimBuilder::new(0)
                .agent("x", ())
                .link("x", "y", LinkOverride::default())
                .build()
                .err(),
            Some(BuildError::UnknownLinkEnd { .. })
        ));
        assert!(matches!(
            SimBuilder::new(0)
                .agent("x", ())
                .agent("y", ())
                .link("x", "y", LinkOverride::default())
                .build()
                .err(),
            Some(BuildError::NotABrokerLink { .. })
        ));
    }

    #[test]
    fn simulation_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Simulation>();
    }
}
