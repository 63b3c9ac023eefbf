//! [`Core`]: everything a simulation holds except the agents themselves —
//! clock, queue, messages, network, broker, one [`AgentSlot`] per agent,
//! timers, trace sink, metrics and limits. The loop (`sim.rs`) pops an
//! event and asks the core to carry it out ([`Core::dispatch`]); an agent's
//! [`Context`](super::Context) calls the core's methods and nothing else.

use std::collections::BTreeMap;

use crate::broker::{Broker, Delivery, Mailbox};
use crate::message::{
    AgentId, ChannelId, KindNames, Message, MessageKind, MsgId, Payload, Recipient,
};
use crate::metrics::Metrics;
use crate::network::{Faults, Network, Transit, Transition};
use crate::queue::{EventQueue, QueueFull};
use crate::rng::RngStream;
use crate::time::{SimDuration, SimTime};
use crate::trace::{
    DETAIL_REPLY, Deadline, EventKind, NODE_BROADCAST, NODE_BROKER, NONE, Reason, Record,
};

use super::clock::Clock;
use super::limits::{Limits, SimError};
use super::msg_store::MsgStore;
use super::sink::TraceSink;
use super::timers::{TimerId, Timers};

mod batch;
mod group;
mod lag;
mod qos;
mod request;
pub use qos::ACK_BYTES;
use qos::ack_detail;
pub(super) use request::Requests;
mod retain;
mod server;
mod session;
use session::SessionTimer;

/// A compact event: integer indices only.
#[derive(Clone, Copy, Debug)]
pub(super) enum Event {
    /// Run agent `agent`'s `on_start`.
    Start { agent: u32 },
    /// The message in `slot` (or, by `cargo`, an ack of it) reached the
    /// broker over `agent`'s uplink (corrupted: the broker discards it).
    AtBroker {
        slot: u32,
        agent: u32,
        cargo: Cargo,
        corrupt: bool,
    },
    /// A copy of the message in `slot` (or, by `cargo`, the broker's ack of
    /// it) reached `agent` (corrupted: the agent discards it).
    AtAgent {
        slot: u32,
        agent: u32,
        cargo: Cargo,
        corrupt: bool,
    },
    /// A copy of the message in `slot` crossed link `hop` of `agent`'s path
    /// (to the broker if `up`, else from it) and reached the router at its
    /// end, which sends it on (corrupted: the router discards it).
    AtRouter {
        slot: u32,
        agent: u32,
        hop: u16,
        up: bool,
        cargo: Cargo,
        corrupt: bool,
    },
    /// A timer of `agent` is due (if its generation still matches).
    Timer {
        agent: u32,
        slot: u32,
        generation: u32,
    },
    /// A fault starts or ends.
    Fault(Transition),
    /// Worker `worker` of the broker's server model finished serving its
    /// message (if no outage emptied the server since: `epoch`).
    ServiceDone { worker: u32, epoch: u32 },
    /// The earliest ack timeout may be due (see `sim/timeouts.rs`).
    RetryDue,
    /// Request `hi << 32 | lo` of `agent` times out unless answered.
    RequestTimeout { agent: u32, lo: u32, hi: u32 },
    /// A session timer of `agent` (`session.rs`).
    Session {
        agent: u32,
        generation: u32,
        what: SessionTimer,
    },
}

/// What travels on a leg: a message copy (pushed to the handler, or put in
/// a pull buffer; on the way to the broker always `Push`), or an ack of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(super) enum Cargo {
    /// A message copy for the handler.
    Push,
    /// A message copy for the pull buffer.
    Pull,
    /// A subscriber's ack of a copy, on its way to the broker.
    Ack,
    /// The broker's ack of a publish, on its way to the publisher.
    PubAck,
    /// A session control packet, on its way to the broker (`session.rs`).
    Control,
    /// The broker's ack of a control packet, on its way to the agent.
    ControlAck,
}

impl Cargo {
    /// Whether this is an ack (or a control packet, which travels as one)
    /// rather than a message copy.
    #[inline(always)]
    pub(super) fn is_ack(self) -> bool {
        self >= Cargo::Ack
    }
}

/// One link of a copy's path: link `hop` of `agent`'s path to the broker
/// (`up`) or of the broker's path to it, and how the copy is delivered.
#[derive(Clone, Copy, Debug)]
struct Leg {
    agent: u32,
    hop: u16,
    up: bool,
    cargo: Cargo,
}

#[test]
fn events_stay_sixteen_bytes() {
    assert_eq!(std::mem::size_of::<Event>(), 16);
}

/// What the loop must call on an agent after the core carried out an event.
pub(super) enum Call {
    /// `on_start`.
    Start(AgentId),
    /// `on_message` with a pushed copy.
    Message(AgentId, Message),
    /// `on_timer` with the timer's tag.
    Timer(AgentId, u64),
    /// The agents of crash fault `fault` crashed and lose their state:
    /// `reset` each ([`Core::crash_agents`]).
    Reset(u32),
    /// The agents of crash fault `fault` restart: `on_start` each.
    Restart(u32),
    /// `on_request_timeout`: the agent's request got no reply in time.
    RequestTimeout(AgentId, MsgId),
}

/// Everything the core keeps per agent.
pub(super) struct AgentSlot {
    /// The agent's name.
    pub(super) name: String,
    /// Its own random stream, `agent/{name}`.
    rng: RngStream,
    /// Its pull buffers.
    mailbox: Mailbox,
    /// Whether it is down (a crash fault).
    crashed: bool,
    /// How many times it has crashed: timers set before a crash never fire.
    incarnation: u32,
    /// Its own clock, if it has one (`[[clock]]`).
    clock: Option<Clock>,
}

impl AgentSlot {
    /// Gives the agent its own clock.
    pub(super) fn set_clock(&mut self, clock: Clock) {
        self.clock = Some(clock);
    }

    pub(super) fn new(name: String, seed: u64, env: u32) -> AgentSlot {
        AgentSlot {
            rng: RngStream::new(seed, u64::from(env), &format!("agent/{name}")),
            name,
            mailbox: Mailbox::default(),
            crashed: false,
            incarnation: 0,
            clock: None,
        }
    }
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

/// Everything but the agents.
pub(super) struct Core {
    now: SimTime,
    seed: u64,
    env: u32,
    env_prefix: String,
    queue: EventQueue<Event>,
    msgs: MsgStore,
    next_msg: u64,
    net: Network,
    faults: Faults,
    broker: Broker,
    agents: Vec<AgentSlot>,
    agent_ids: BTreeMap<String, AgentId>,
    kinds: KindNames,
    /// The deadlines agents named in [`Core::mark_late_for`], in order of
    /// first use; a `late` record's `detail` is its deadline's index + 1
    /// (0: unnamed).
    deadlines: Vec<Deadline>,
    timers: Timers,
    trace: TraceSink,
    metrics: Metrics,
    limits: Limits,
    in_flight: u64,
    /// Acks on the network (not counted in `in_flight`, which counts
    /// message copies).
    acks_in_flight: u64,
    /// The state of acknowledged deliveries: dead-letter queues, retry
    /// streams.
    qos: qos::QosState,
    /// Requests waiting for their reply.
    requests: Requests,
    /// Copies waiting in all pull buffers together.
    buffered: u64,
    /// An error raised inside a handler, reported when the handler returns.
    fault: Option<SimError>,
    /// Whether any agent has its own clock (else agents read `now`).
    clocks: bool,
    /// Whether any agent has crashed yet (else no timer can be stale and
    /// every incarnation is 0).
    crash_seen: bool,
    /// The broker's server model, if configured (`server.rs`).
    server: Option<Box<server::Server>>,
    /// Network sessions, if configured (`session.rs`).
    sessions: Option<Box<session::Sessions>>,
}

/// The parts a [`Core`] is built from (see `builder.rs`).
pub(super) struct Parts {
    pub(super) seed: u64,
    pub(super) env: u32,
    pub(super) net: Network,
    pub(super) faults: Faults,
    /// The fault transitions known before the run, in order.
    pub(super) fault_starts: Vec<(SimTime, Transition)>,
    pub(super) broker: Broker,
    pub(super) agents: Vec<AgentSlot>,
    pub(super) agent_ids: BTreeMap<String, AgentId>,
    pub(super) kinds: KindNames,
    pub(super) trace: TraceSink,
    pub(super) limits: Limits,
    /// Seeded tie-breaking of equal-time events
    /// ([`TieBreak::Seeded`](crate::sim::TieBreak::Seeded)).
    pub(super) tie_salt: Option<u64>,
}

impl Core {
    /// A core at time 0 with every agent's start event queued in order.
    pub(super) fn new(p: Parts) -> Core {
        let n = p.agents.len();
        let server = server::Server::new(p.broker.config(), p.seed, p.env);
        let mut core = Core {
            now: SimTime::ZERO,
            seed: p.seed,
            env: p.env,
            env_prefix: crate::message::env_prefix(p.env),
            queue: {
                let mut q = EventQueue::with_capacity(1024);
                q.set_seeded_ties(p.tie_salt);
                q
            },
            msgs: MsgStore::default(),
            next_msg: 0,
            net: p.net,
            faults: p.faults,
            broker: p.broker,
            agents: p.agents,
            agent_ids: p.agent_ids,
            kinds: p.kinds,
            deadlines: Vec::new(),
            timers: Timers::default(),
            trace: p.trace,
            metrics: Metrics::default(),
            limits: p.limits,
            in_flight: 0,
            acks_in_flight: 0,
            qos: qos::QosState::default(),
            requests: Requests::default(),
            buffered: 0,
            fault: None,
            clocks: false,
            crash_seen: false,
            server,
            sessions: None,
        };
        core.sessions = session::Sessions::new(core.broker.config().sessions.as_ref(), n);
        if core.sessions.is_some() {
            core.metrics.sessions = Some(Box::default());
        }
        core.metrics.server = core.server.as_ref().map(|s| s.metrics());
        core.clocks = core.agents.iter().any(|a| a.clock.is_some());
        for i in 0..n {
            core.push(SimTime::ZERO, Event::Start { agent: i as u32 });
        }
        for (t, tr) in p.fault_starts {
            core.push(t, Event::Fault(tr));
        }
        core
    }

    // ----- read access (Simulation and Context) ---------------------------

    #[inline]
    pub(super) fn now(&self) -> SimTime {
        self.now
    }
    pub(super) fn set_clock(&mut self, t: SimTime) {
        self.now = t;
    }
    /// The time on `agent`'s clock now.
    #[inline]
    pub(super) fn local_now(&self, agent: AgentId) -> SimTime {
        self.local_time(agent, self.now)
    }
    /// The time `agent`'s clock shows at true time `t`.
    #[inline]
    pub(super) fn local_time(&self, agent: AgentId, t: SimTime) -> SimTime {
        if !self.clocks {
            return t;
        }
        match &self.agents[agent.index()].clock {
            None => t,
            Some(c) => c.local(t),
        }
    }
    /// The true time (not before now) at which `agent`'s clock shows `local`.
    #[inline]
    pub(super) fn true_time(&self, agent: AgentId, local: SimTime) -> SimTime {
        if !self.clocks {
            return local;
        }
        match &self.agents[agent.index()].clock {
            None => local,
            Some(c) => c.true_time(local, self.now),
        }
    }
    pub(super) fn seed(&self) -> u64 {
        self.seed
    }
    pub(super) fn env(&self) -> u32 {
        self.env
    }
    pub(super) fn env_prefix(&self) -> &str {
        &self.env_prefix
    }
    pub(super) fn metrics(&self) -> &Metrics {
        &self.metrics
    }
    pub(super) fn in_flight(&self) -> u64 {
        self.in_flight
    }
    pub(super) fn agent_name(&self, id: AgentId) -> &str {
        &self.agents[id.index()].name
    }
    pub(super) fn agent_names(&self) -> impl Iterator<Item = &str> {
        self.agents.iter().map(|a| a.name.as_str())
    }
    pub(super) fn agent_id(&self, name: &str) -> Option<AgentId> {
        self.agent_ids.get(name).copied()
    }
    /// The agents crash fault `fault` concerns.
    pub(super) fn crash_agents(&self, fault: u32) -> Vec<AgentId> {
        self.faults
            .crash_targets(fault)
            .map(|(agents, _)| agents.iter().map(|&a| AgentId(a)).collect())
            .unwrap_or_default()
    }
    pub(super) fn router_names(&self) -> &[String] {
        self.net.router_names()
    }
    pub(super) fn channel_name(&self, id: ChannelId) -> &str {
        self.broker.channel_name(id)
    }
    pub(super) fn channel_names(&self) -> &[String] {
        self.broker.channel_names()
    }
    pub(super) fn lookup_channel(&self, name: &str) -> Option<ChannelId> {
        self.broker.lookup(name)
    }
    pub(super) fn subscribers(
        &self,
        ch: ChannelId,
    ) -> impl Iterator<Item = (AgentId, Delivery)> + '_ {
        self.broker
            .subscribers(ch)
            .iter()
            .map(|s| (s.agent, s.delivery))
    }
    pub(super) fn kinds(&self) -> &KindNames {
        &self.kinds
    }
    pub(super) fn next_event_time(&self) -> Option<SimTime> {
        self.queue.peek_time()
    }
    pub(super) fn trace(&self) -> &TraceSink {
        &self.trace
    }
    pub(super) fn trace_mut(&mut self) -> &mut TraceSink {
        &mut self.trace
    }

    // ----- agent actions (through Context) -------------------------------

    pub(super) fn channel(&mut self, name: &str) -> ChannelId {
        self.broker.channel(name)
    }
    pub(super) fn subscribe(&mut self, agent: AgentId, ch: ChannelId, d: Delivery) {
        if self.sessions.is_some() {
            return self.session_subscribe(agent, ch, d);
        }
        self.subscribe_now(agent, ch, d);
    }
    /// The broker subscribes `agent` now.
    fn subscribe_now(&mut self, agent: AgentId, ch: ChannelId, d: Delivery) {
        if self.broker.subscribe(ch, agent, d) && self.broker.retains() {
            self.send_retained(agent, ch, d);
        }
    }
    pub(super) fn unsubscribe(&mut self, agent: AgentId, ch: ChannelId) -> bool {
        if self.sessions.is_some() {
            return self.session_unsubscribe(agent, ch);
        }
        self.broker.unsubscribe(ch, agent)
    }
    pub(super) fn consume(&mut self, agent: AgentId, ch: ChannelId) -> Option<Message> {
        let m = self.agents[agent.index()].mailbox.consume(ch);
        self.buffered -= u64::from(m.is_some());
        self.lag_changed(agent.0, ch.0);
        m
    }
    /// Empties the pull buffers of one agent (`Some`) or of all; returns
    /// how many copies were discarded.
    pub(super) fn clear_buffers(&mut self, agent: Option<(AgentId, ChannelId)>) -> u64 {
        let n = match agent {
            Some((a, ch)) => self.agents[a.index()].mailbox.clear(Some(ch)),
            None => self.agents.iter_mut().map(|a| a.mailbox.clear(None)).sum(),
        };
        self.buffered -= n;
        self.metrics.cleared += n;
        if self.trace.entity().is_some() || self.broker.any_groups() {
            let agents = match agent {
                Some((a, _)) => a.0..a.0 + 1,
                None => 0..self.agents.len() as u32,
            };
            for a in agents {
                let channels: Vec<ChannelId> = self.agents[a as usize].mailbox.channels().collect();
                for ch in channels {
                    self.lag_changed(a, ch.0);
                }
            }
        }
        n
    }
    pub(super) fn peek(&self, agent: AgentId, ch: ChannelId) -> Option<&Message> {
        self.agents[agent.index()].mailbox.peek(ch)
    }
    pub(super) fn pending(&self, agent: AgentId, ch: ChannelId) -> usize {
        self.agents[agent.index()].mailbox.pending(ch)
    }
    pub(super) fn rng(&mut self, agent: AgentId) -> &mut RngStream {
        &mut self.agents[agent.index()].rng
    }
    pub(super) fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }
    pub(super) fn record_age(&mut self, age: SimDuration) {
        self.metrics.age.saturating_record(age.as_nanos());
    }

    pub(super) fn set_timer(&mut self, agent: AgentId, at: SimTime, tag: u64) -> TimerId {
        let incarnation = if self.crash_seen {
            self.agents[agent.index()].incarnation
        } else {
            0
        };
        let id = self.timers.add(tag, incarnation);
        self.push(
            at.max(self.now),
            Event::Timer {
                agent: agent.0,
                slot: id.slot,
                generation: id.generation,
            },
        );
        id
    }

    pub(super) fn mark_late(&mut self, me: AgentId, msg: &Message) {
        self.metrics.late += 1;
        self.record(EventKind::Late, MsgHead::of(msg), me.0, 0);
    }

    /// [`Core::mark_late`] for the deadline `d` (its name, limit, period
    /// and step): interned into the table the trace footer holds; the
    /// record's `detail` is its index + 1. Past 65 535 distinct deadlines
    /// the record names none (detail 0).
    pub(super) fn mark_late_for(&mut self, me: AgentId, msg: &Message, d: Deadline) {
        self.metrics.late += 1;
        let found = self.deadlines.iter().position(|e| *e == d);
        let i = match found {
            Some(i) => i,
            None if self.deadlines.len() < usize::from(u16::MAX) => {
                self.deadlines.push(d);
                self.deadlines.len() - 1
            }
            None => usize::from(u16::MAX),
        };
        let detail = u16::try_from(i + 1).unwrap_or(0);
        self.record(EventKind::Late, MsgHead::of(msg), me.0, detail);
    }

    /// The deadlines named so far, by index.
    pub(super) fn deadline_names(&self) -> Vec<Deadline> {
        self.deadlines.clone()
    }

    // Inlined into the agent's call (through `Context::publish`): the
    // payload is then written straight into the message store, instead of
    // being read back from the caller's stack with wider loads than the
    // stores that wrote it (a store-forwarding stall on every publish).
    #[inline(always)]
    pub(super) fn publish(
        &mut self,
        sender: AgentId,
        channel: ChannelId,
        recipient: Recipient,
        kind: MessageKind,
        payload: Payload,
        correlation: Option<MsgId>,
    ) -> MsgId {
        let (msg, h) = self.new_message(sender, channel, recipient, kind, payload, correlation);
        let id = msg.id;
        let bytes = msg.payload.wire_bytes();
        if self.broker.guarantees() && self.broker.policy(channel).publish_qos.acked() {
            self.publish_tracked(msg, h, bytes);
            return id;
        }
        let leg = Leg {
            agent: sender.0,
            hop: 0,
            up: true,
            cargo: Cargo::Push,
        };
        let link = self.leg_link(leg);
        let first = self.send_link(link, self.now, bytes);
        let dup = self.net.duplicate(link);
        match (first, dup) {
            // The common case, kept short: one copy straight to the broker.
            (Transit::Arrive(at), None) if self.net.up_hops(sender.0) == 1 => {
                let slot = self.store(msg);
                self.schedule_copy(
                    at,
                    Event::AtBroker {
                        slot,
                        agent: sender.0,
                        cargo: Cargo::Push,
                        corrupt: false,
                    },
                );
            }
            (Transit::Dropped(reason), None) => {
                self.metrics.dropped_uplink += 1;
                let node = self.net.link_end(link);
                self.drop_copy(h, node, reason);
            }
            (first, dup) => {
                let slot = self.store(msg);
                self.arrive_later(h, slot, leg, first);
                if let Some(dup) = dup {
                    self.duplicated(h, leg, link);
                    self.arrive_later(h, slot, leg, dup);
                }
                self.msgs.release(slot);
            }
        }
        id
    }

    /// A new message from `sender`, published now: numbered, its payload
    /// hashed, counted and traced (`publish`).
    #[inline(always)]
    fn new_message(
        &mut self,
        sender: AgentId,
        channel: ChannelId,
        recipient: Recipient,
        kind: MessageKind,
        payload: Payload,
        correlation: Option<MsgId>,
    ) -> (Message, MsgHead) {
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
            correlation,
        };
        let h = MsgHead::of(&msg);
        if let Some(r) = correlation {
            self.trace.correlation(r.0);
        }
        self.trace.payload(id.0, &msg.payload);
        self.metrics.published += 1;
        let detail = u16::from(correlation.is_some()) * DETAIL_REPLY;
        self.record(EventKind::Publish, h, recipient_node(recipient), detail);
        (msg, h)
    }

    /// Sends on one link, through the faults that hold now (checked only
    /// when some link fault holds).
    #[inline(always)]
    fn send_link(&mut self, link: u32, at: SimTime, bytes: u64) -> Transit {
        if self.faults.any_active() && self.faults.links_hit() {
            return self.send_link_faulty(link, at, bytes);
        }
        self.net.send(link, at, bytes, 1.0)
    }

    #[cold]
    fn send_link_faulty(&mut self, link: u32, at: SimTime, bytes: u64) -> Transit {
        if let Some(reason) = self.faults.blocked(link) {
            return Transit::Dropped(reason);
        }
        match self.faults.degrade(link) {
            (_, true) => Transit::Dropped(Reason::Loss),
            (factor, false) => self.net.send(link, at, bytes, factor),
        }
    }

    /// Why a copy that arrives over `link` now is dropped, if a link fault
    /// took the link down while it was on its way.
    #[inline(always)]
    fn arrival_blocked(&self, link: Option<u32>) -> Option<Reason> {
        if !self.faults.links_hit() {
            return None;
        }
        self.faults.blocked(link?)
    }

    /// Why a copy (or puback) arriving at `agent` now is dropped: a fault
    /// that holds ([`Core::fault_at_agent`]), or corruption. One test when
    /// neither can apply.
    #[inline(always)]
    fn arrival_fault(&self, h: MsgHead, agent: u32, corrupt: bool) -> Option<Reason> {
        if corrupt || self.faults.any_active() {
            self.fault_at_agent(h, agent)
                .or(corrupt.then_some(Reason::Corrupt))
        } else {
            None
        }
    }

    /// Why a copy arriving at `agent` now is dropped by a fault that holds:
    /// its last link went down, a partition separates it from its sender
    /// (routed before the partition began, it does not cross now), or the
    /// agent has crashed.
    #[cold]
    fn fault_at_agent(&self, h: MsgHead, agent: u32) -> Option<Reason> {
        let last = self.net.down_hops(agent) - 1;
        if let Some(r) = self.arrival_blocked(self.net.down_link(agent, last)) {
            Some(r)
        } else if self.faults.any_partition() && self.faults.separates(h.sender, agent) {
            Some(Reason::Partition)
        } else if self.agents[agent as usize].crashed {
            Some(Reason::Crashed)
        } else {
            None
        }
    }

    /// Drops a message arriving at the broker if a fault that holds refuses
    /// it (its last link went down, or the broker is down) or it arrived
    /// corrupted; true if it did.
    #[cold]
    fn refused_at_broker(&mut self, slot: u32, agent: u32, cargo: Cargo, corrupt: bool) -> bool {
        let h = MsgHead::of(self.msgs.get(slot));
        let last = self.net.up_hops(agent) - 1;
        let reason = if let Some(r) = self.arrival_blocked(self.net.up_link(agent, last)) {
            Some(r)
        } else if self.faults.broker_down() {
            Some(Reason::BrokerDown)
        } else {
            corrupt.then_some(Reason::Corrupt)
        };
        let Some(reason) = reason else {
            return false;
        };
        let leg = Leg {
            agent,
            hop: 0,
            up: true,
            cargo,
        };
        self.lost_on_way(h, leg, NODE_BROKER, reason);
        self.msgs.release(slot);
        true
    }

    /// Puts a message in the store (one reference), checking the bound on
    /// payload bytes in flight.
    #[inline(always)]
    fn store(&mut self, msg: Message) -> u32 {
        let slot = self.msgs.insert(msg);
        if self.msgs.bytes() > self.limits.max_in_flight_bytes {
            self.limit("max_in_flight_bytes", self.limits.max_in_flight_bytes);
        }
        slot
    }

    /// The link a leg crosses.
    #[inline(always)]
    fn leg_link(&self, leg: Leg) -> u32 {
        let hop = usize::from(leg.hop);
        let link = if leg.up {
            self.net.up_link(leg.agent, hop)
        } else {
            self.net.down_link(leg.agent, hop)
        };
        link.expect("a leg is on its path")
    }

    /// Whether a leg is the last of its path.
    #[inline(always)]
    fn leg_is_last(&self, leg: Leg) -> bool {
        let hops = if leg.up {
            self.net.up_hops(leg.agent)
        } else {
            self.net.down_hops(leg.agent)
        };
        usize::from(leg.hop) + 1 == hops
    }

    /// Counts and traces the duplicate a leg's link just made.
    fn duplicated(&mut self, h: MsgHead, leg: Leg, link: u32) {
        if let (Cargo::Control | Cargo::ControlAck, Some(m)) =
            (leg.cargo, self.metrics.sessions.as_mut())
        {
            m.control_duplicated += 1;
        } else if leg.cargo.is_ack() {
            self.metrics.qos.acks_duplicated += 1;
        } else {
            self.metrics.duplicated += 1;
            if leg.up {
                self.metrics.duplicated_uplink += 1;
            }
        }
        let node = self.net.link_end(link);
        self.record(EventKind::Duplicate, h, node, ack_detail(leg.cargo));
    }

    /// A copy (or ack) on `leg` was dropped at `node` before reaching the
    /// end of its path.
    fn lost_on_way(&mut self, h: MsgHead, leg: Leg, node: u32, reason: Reason) {
        if leg.cargo.is_ack() {
            return self.drop_ack(h, leg.cargo, node, reason);
        }
        if leg.up {
            self.metrics.dropped_uplink += 1;
        }
        self.drop_copy(h, node, reason);
    }

    /// Sends one copy of the message in `slot` over `leg` at `at`, and its
    /// duplicate if the link makes one.
    fn cross(&mut self, h: MsgHead, slot: u32, leg: Leg, at: SimTime, bytes: u64) {
        let link = self.leg_link(leg);
        let first = self.send_link(link, at, bytes);
        self.arrive_later(h, slot, leg, first);
        if let Some(dup) = self.net.duplicate(link) {
            self.duplicated(h, leg, link);
            self.arrive_later(h, slot, leg, dup);
        }
    }

    /// Schedules where one copy that crossed `leg` arrives (a router, the
    /// broker or the recipient), taking a reference to `slot`; or drops it
    /// at the link's end.
    fn arrive_later(&mut self, h: MsgHead, slot: u32, leg: Leg, t: Transit) {
        let (at, corrupt) = match t {
            Transit::Dropped(reason) => {
                let node = self.net.link_end(self.leg_link(leg));
                return self.lost_on_way(h, leg, node, reason);
            }
            Transit::Arrive(at) => (at, false),
            Transit::Corrupt(at) => (at, true),
        };
        self.msgs.add_ref(slot);
        let ev = if !self.leg_is_last(leg) {
            Event::AtRouter {
                slot,
                agent: leg.agent,
                hop: leg.hop,
                up: leg.up,
                cargo: leg.cargo,
                corrupt,
            }
        } else if leg.up {
            Event::AtBroker {
                slot,
                agent: leg.agent,
                cargo: leg.cargo,
                corrupt,
            }
        } else {
            Event::AtAgent {
                slot,
                agent: leg.agent,
                cargo: leg.cargo,
                corrupt,
            }
        };
        if leg.cargo.is_ack() {
            self.schedule_ack(at, ev);
        } else {
            self.schedule_copy(at, ev);
        }
    }

    /// A copy reached the router at the end of `leg`: dropped if its link
    /// went down meanwhile or it is corrupted, else traced and sent on.
    fn forward(&mut self, slot: u32, leg: Leg, corrupt: bool) {
        let (h, bytes) = {
            let m = self.msgs.get(slot);
            let bytes = if leg.cargo == Cargo::Control {
                self.control_bytes(slot)
            } else if leg.cargo.is_ack() {
                ACK_BYTES
            } else {
                m.payload.wire_bytes()
            };
            (MsgHead::of(m), bytes)
        };
        let link = self.leg_link(leg);
        let router = self.net.link_end(link);
        let reason = match self.arrival_blocked(Some(link)) {
            Some(r) => Some(r),
            None => corrupt.then_some(Reason::Corrupt),
        };
        match reason {
            Some(reason) => self.lost_on_way(h, leg, router, reason),
            None => {
                self.record(EventKind::Forward, h, router, ack_detail(leg.cargo));
                let next = Leg {
                    hop: leg.hop + 1,
                    ..leg
                };
                self.cross(h, slot, next, self.now, bytes);
            }
        }
        self.msgs.release(slot);
    }

    // ----- the engine -----------------------------------------------------

    /// The earliest event, if any.
    #[inline]
    pub(super) fn pop(&mut self) -> Option<(SimTime, Event)> {
        self.queue.pop()
    }

    /// Carries out the engine's part of `ev` at time `t` (limits first) and
    /// says which agent handler to call, if any.
    #[inline(always)]
    pub(super) fn dispatch(&mut self, t: SimTime, ev: Event) -> Option<Call> {
        if t.0 > self.limits.max_sim_time.0 {
            self.now = t;
            self.limit("max_sim_time", self.limits.max_sim_time.0);
            return None;
        }
        if self.metrics.events >= self.limits.max_events {
            self.limit("max_events", self.limits.max_events);
            return None;
        }
        self.now = t;
        self.metrics.events += 1;
        match ev {
            Event::AtAgent {
                slot,
                agent,
                cargo,
                corrupt,
            } => {
                if cargo.is_ack() {
                    self.acks_in_flight -= 1;
                    if cargo == Cargo::ControlAck {
                        self.control_ack_at_agent(slot, agent, corrupt);
                        return None;
                    }
                    return self.puback_at_agent(slot, agent, corrupt);
                }
                self.in_flight -= 1;
                if self.broker.guarantees() {
                    let ch = self.msgs.get(slot).channel;
                    if self.broker.policy(ch).qos.acked() {
                        return self.acked_at_agent(slot, agent, cargo, corrupt);
                    }
                }
                let msg = self.msgs.take(slot);
                let h = MsgHead::of(&msg);
                let reason = self.arrival_fault(h, agent, corrupt);
                if let Some(reason) = reason {
                    self.drop_copy(h, agent, reason);
                    None
                } else {
                    self.hand_over(h, msg, agent, cargo)
                }
            }
            Event::AtBroker {
                slot,
                agent,
                cargo,
                corrupt,
            } => {
                if cargo.is_ack() {
                    self.acks_in_flight -= 1;
                    if (corrupt || self.faults.any_active())
                        && self.refused_at_broker(slot, agent, cargo, corrupt)
                    {
                        return None;
                    }
                    if cargo == Cargo::Control {
                        self.control_at_broker(slot, agent);
                    } else {
                        self.ack_at_broker(slot, agent);
                    }
                    return None;
                }
                self.in_flight -= 1;
                if (corrupt || self.faults.any_active())
                    && self.refused_at_broker(slot, agent, cargo, corrupt)
                {
                    return None;
                }
                self.arrive_at_broker(slot);
                None
            }
            Event::AtRouter {
                slot,
                agent,
                hop,
                up,
                cargo,
                corrupt,
            } => {
                if cargo.is_ack() {
                    self.acks_in_flight -= 1;
                } else {
                    self.in_flight -= 1;
                }
                let leg = Leg {
                    agent,
                    hop,
                    up,
                    cargo,
                };
                self.forward(slot, leg, corrupt);
                None
            }
            Event::Timer {
                agent,
                slot,
                generation,
            } => {
                let (tag, incarnation) = self.timers.fire(slot, generation)?;
                if self.crash_seen {
                    let owner = &self.agents[agent as usize];
                    if owner.crashed || owner.incarnation != incarnation {
                        // Set before a crash: the crashed process lost it.
                        return None;
                    }
                }
                self.metrics.timers += 1;
                let h = MsgHead {
                    id: tag,
                    channel: NONE,
                    sender: agent,
                    kind: 0,
                    sent_ns: t.0,
                };
                self.record(EventKind::Timer, h, agent, 0);
                Some(Call::Timer(AgentId(agent), tag))
            }
            Event::Start { agent } => {
                if self.sessions.is_some() {
                    self.session_start(agent);
                }
                Some(Call::Start(AgentId(agent)))
            }
            Event::Fault(tr) => self.fault_transition(tr),
            Event::ServiceDone { worker, epoch } => {
                self.service_done(worker, epoch);
                None
            }
            Event::RetryDue => {
                self.retries_due();
                None
            }
            Event::RequestTimeout { agent, lo, hi } => {
                self.request_timeout(agent, u64::from(hi) << 32 | u64::from(lo))
            }
            Event::Session {
                agent,
                generation,
                what,
            } => self.session_event(agent, generation, what),
        }
    }

    /// Gives a copy that arrived intact to `agent`: into its pull buffer
    /// (`Pull`), or to its handler (`Push`).
    #[inline(always)]
    fn hand_over(&mut self, h: MsgHead, msg: Message, agent: u32, cargo: Cargo) -> Option<Call> {
        if let Some(r) = msg.correlation {
            self.reply_arrived(agent, r);
        }
        if cargo == Cargo::Pull {
            let cap = self.broker.config().buffer_capacity;
            match self.agents[agent as usize].mailbox.push(msg, cap) {
                Err(msg) => self.pull_overflow(h, agent, msg),
                Ok(()) => {
                    self.buffered += 1;
                    self.lag_changed(agent, h.channel);
                    if self.buffered > self.limits.max_buffered {
                        self.limit("max_buffered", self.limits.max_buffered);
                    }
                    self.deliver(h, agent)
                }
            }
            None
        } else {
            self.deliver(h, agent);
            Some(Call::Message(AgentId(agent), msg))
        }
    }

    /// Applies a fault's start or end, traces it, queues what a random
    /// process does next, and says which agents to reset or restart.
    fn fault_transition(&mut self, tr: Transition) -> Option<Call> {
        if let Some((at, next)) = self.faults.apply(tr, self.now) {
            self.push(at, Event::Fault(next));
        }
        let kind = self.faults.kind(tr.fault);
        let detail = kind.detail(tr.start);
        let now = self.now.0;
        let head = |node| {
            (
                MsgHead {
                    id: u64::from(tr.fault),
                    channel: NONE,
                    sender: NONE,
                    kind: 0,
                    sent_ns: now,
                },
                node,
            )
        };
        if let Some((agents, state)) = self.faults.crash_targets(tr.fault) {
            let agents: Vec<AgentId> = agents.iter().map(|&a| AgentId(a)).collect();
            for a in &agents {
                let (h, node) = head(a.0);
                self.record(EventKind::Fault, h, node, detail);
                let slot = &mut self.agents[a.index()];
                slot.crashed = tr.start;
                if tr.start {
                    slot.incarnation += 1;
                    self.crash_seen = true;
                }
                if self.sessions.is_some() {
                    match tr.start {
                        true => self.session_crashed(a.0),
                        false => self.session_start(a.0),
                    }
                }
            }
            return if !tr.start {
                Some(Call::Restart(tr.fault))
            } else if state == crate::network::CrashState::Lost {
                Some(Call::Reset(tr.fault))
            } else {
                None
            };
        }
        let node = self
            .faults
            .flap_link(tr)
            .map_or(NONE, |l| self.net.link_end(l));
        let (h, node) = head(node);
        self.record(EventKind::Fault, h, node, detail);
        if tr.start && kind == crate::trace::FaultKind::BrokerDown && self.server.is_some() {
            self.broker_outage();
        }
        None
    }

    /// The error raised while carrying out events or handlers, taken.
    #[inline]
    pub(super) fn take_fault(&mut self) -> Option<SimError> {
        if self.fault.is_none() && !self.trace.failed() {
            return None;
        }
        match self.fault.take() {
            Some(e) => Some(e),
            None => self.trace.take_error().map(SimError::from),
        }
    }

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

    #[inline(always)]
    fn record(&mut self, event: EventKind, h: MsgHead, node: u32, detail: u16) {
        let ok = self.trace.push(&Record {
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
    fn deliver(&mut self, h: MsgHead, agent: u32) {
        self.metrics.delivered += 1;
        self.metrics
            .latency
            .saturating_record(self.now.0.saturating_sub(h.sent_ns));
        self.record(EventKind::Deliver, h, agent, 0);
    }

    #[inline]
    fn drop_copy(&mut self, h: MsgHead, node: u32, reason: Reason) {
        self.metrics.drop(reason);
        self.record(EventKind::Drop, h, node, reason as u16);
    }

    // Always inlined, like `push`: the event is then built where it is
    // stored; passed through memory, its 16-byte load stalls on the
    // narrower stores that wrote it (store forwarding fails).
    #[inline(always)]
    fn schedule_copy(&mut self, at: SimTime, ev: Event) {
        self.in_flight += 1;
        if self.in_flight > self.limits.max_in_flight {
            self.limit("max_in_flight", self.limits.max_in_flight);
        }
        self.push(at, ev);
    }

    /// Queues the arrival of an ack (bounded by `max_in_flight` with the
    /// copies).
    fn schedule_ack(&mut self, at: SimTime, ev: Event) {
        self.acks_in_flight += 1;
        if self.in_flight + self.acks_in_flight > self.limits.max_in_flight {
            self.limit("max_in_flight", self.limits.max_in_flight);
        }
        self.push(at, ev);
    }

    /// Queues an event; a full queue stops the run (a terminal error, so
    /// the half-done bookkeeping of the failed event never matters).
    #[inline(always)]
    fn push(&mut self, at: SimTime, ev: Event) {
        let max = self.limits.max_pending_events;
        match self.queue.push(at, ev) {
            Ok(()) if self.queue.len() as u64 <= max => {}
            // The limit is validated to be at most the queue's capacity.
            Ok(()) | Err(QueueFull::Pending) => self.limit("max_pending_events", max),
            // Unreachable: pushes never exceed events + pending, which the
            // validated limits keep below the queue's lifetime count.
            Err(_) => self.limit("max_events", self.limits.max_events),
        }
    }

    /// The message in `slot` reached the broker: a copy down the downlink
    /// of each subscriber (or of the one recipient), or a drop.
    fn route(&mut self, slot: u32) {
        let (h, channel, recipient, bytes) = {
            let m = self.msgs.get(slot);
            (
                MsgHead::of(m),
                m.channel,
                m.recipient,
                m.payload.wire_bytes(),
            )
        };
        let tracked = self.broker.guarantees() && !self.broker.policy(channel).is_plain();
        if tracked && !self.accept_at_broker(h, slot) {
            self.msgs.release(slot);
            return;
        }
        let acked = tracked && self.broker.policy(channel).qos.acked();
        self.metrics.routed += 1;
        self.record(EventKind::Route, h, NODE_BROKER, 0);
        let depart = self.now + self.broker.config().processing;
        match recipient {
            Recipient::Agent(a) => match self
                .broker
                .subscription(channel, a)
                .or_else(|| self.broker.member_delivery(channel, a))
            {
                Some(d) => self.send_copy(h, slot, depart, bytes, a.0, d, acked),
                None => self.drop_copy(h, a.0, Reason::NoSubscriber),
            },
            Recipient::Broadcast => {
                let n = self.broker.subscribers(channel).len();
                for i in 0..n {
                    let sub = self.broker.subscribers(channel)[i];
                    self.send_copy(h, slot, depart, bytes, sub.agent.0, sub.delivery, acked);
                }
                let grouped = self.broker.grouped(channel)
                    && self.route_to_groups(h, slot, depart, bytes, channel, acked) > 0;
                if n == 0 && !grouped {
                    self.drop_copy(h, NODE_BROADCAST, Reason::NoSubscriber);
                }
            }
        }
        if self.broker.retains() {
            self.retain_routed(slot);
        }
        self.msgs.release(slot);
    }

    /// The broker makes a copy for `agent` and sends it (and, on an
    /// acknowledged channel, starts tracking its delivery).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn send_copy(
        &mut self,
        h: MsgHead,
        slot: u32,
        depart: SimTime,
        bytes: u64,
        agent: u32,
        d: Delivery,
        acked: bool,
    ) {
        self.metrics.copies += 1;
        let cargo = if d == Delivery::Pull {
            Cargo::Pull
        } else {
            Cargo::Push
        };
        if self.sessions.is_some() && self.held_for_offline(h, slot, agent, cargo, acked) {
            return;
        }
        if acked {
            self.track_delivery(slot, agent, cargo, depart);
        }
        self.send_down(h, slot, depart, bytes, agent, cargo);
    }

    /// Sends a copy from the broker down `agent`'s path, unless a partition
    /// separates it from the sender.
    #[inline(always)]
    fn send_down(
        &mut self,
        h: MsgHead,
        slot: u32,
        depart: SimTime,
        bytes: u64,
        agent: u32,
        cargo: Cargo,
    ) {
        if self.faults.any_active()
            && self.faults.any_partition()
            && self.faults.separates(h.sender, agent)
        {
            return self.drop_copy(h, agent, Reason::Partition);
        }
        let leg = Leg {
            agent,
            hop: 0,
            up: false,
            cargo,
        };
        let link = self.leg_link(leg);
        let first = self.send_link(link, depart, bytes);
        match (first, self.net.duplicate(link)) {
            // The common case, kept short: one copy straight to the agent.
            (Transit::Arrive(at), None) if self.net.down_hops(agent) == 1 => {
                self.msgs.add_ref(slot);
                self.schedule_copy(
                    at,
                    Event::AtAgent {
                        slot,
                        agent,
                        cargo: leg.cargo,
                        corrupt: false,
                    },
                );
            }
            (first, dup) => {
                self.arrive_later(h, slot, leg, first);
                if let Some(dup) = dup {
                    self.duplicated(h, leg, link);
                    self.arrive_later(h, slot, leg, dup);
                }
            }
        }
    }
}
