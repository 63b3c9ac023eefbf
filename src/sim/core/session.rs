//! Network sessions (opt-in, `[broker.sessions]`, docs/broker_sessions.md),
//! as `impl Core`: an agent's connect, subscribe and unsubscribe are
//! control packets up its uplink path, taking effect when they reach the
//! broker; the broker keeps a registry of online agents (keepalive) and,
//! for an offline agent with a persistent session, the QoS ≥ 1 copies it
//! could not send (up to `session_queue`), sent when the agent is back.
//!
//! A control packet is a message in the store (channel none, kind: the
//! [`SessionOp`] code, + 128 for a pull subscription; payload: the channel
//! id as one float, or the filter as text) that travels as an ack does
//! ([`Cargo::Control`] up, [`Cargo::ControlAck`] down: the same links,
//! routers, loss, duplication and faults as data, none of the data path's
//! counters). The agent keeps each packet but pings until its ack arrives
//! and resends it at each keepalive tick (MQTT clients resend SUBSCRIBE
//! until SUBACK); the broker applies a packet about a channel or filter
//! only if it is newer (by id) than the last one it applied about it, so a
//! late resend never undoes a newer unsubscribe.
//!
//! Per agent there is at most one keepalive tick (client side) and one
//! watchdog (broker side) in the queue at a time; the data path pays one
//! test (`Core::sessions`) per copy the broker makes.

use std::collections::{BTreeMap, VecDeque};

use crate::broker::{Delivery, FilterError, SessionConfig, topic};
use crate::message::{AgentId, ChannelId, Message, MessageKind, MsgId, Payload, Recipient};
use crate::metrics::{SessionMetrics, SessionSummary};
use crate::time::SimTime;
use crate::trace::{EventKind, NONE, Reason, SessionOp, SessionPhase, session_detail};

use super::qos::ACK_BYTES;
use super::{Call, Cargo, Core, Event, Leg, MsgHead};

/// Which of an agent's session timers an `Event::Session` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(in crate::sim) enum SessionTimer {
    /// The agent's keepalive tick (`generation`: its incarnation).
    Tick,
    /// The broker's keepalive watchdog for the agent.
    Watch,
    /// The agent's persistent session expires (`generation`: its offline epoch).
    Expire,
}

/// The kind-code flag of a pull subscription.
const PULL: u8 = 0x80;

/// What a control packet says about: a channel or a filter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Channel(u32),
    Filter(String),
}

/// A copy kept for an offline agent.
#[derive(Clone, Copy, Debug)]
struct Kept {
    slot: u32,
    cargo: Cargo,
}

/// One agent's session: the client's unacknowledged packets and the
/// broker's view of it.
#[derive(Debug, Default)]
struct AgentSession {
    /// Store slots of the control packets sent and not yet acknowledged,
    /// in send order (each holds a reference).
    pending: Vec<u32>,
    /// Whether the broker counts the agent as online.
    online: bool,
    /// When the broker last heard a packet from it.
    last_heard: SimTime,
    /// Whether its watchdog event is in the queue.
    watched: bool,
    /// How many times it went offline (stale expiry events are ignored).
    epoch: u32,
    /// Whether its persistent session expired while it is offline.
    expired: bool,
    /// The copies kept for it while offline, oldest first.
    kept: VecDeque<Kept>,
}

/// The state of every session.
pub(in crate::sim) struct Sessions {
    cfg: SessionConfig,
    agents: Vec<AgentSession>,
    /// Per (agent, target), the id of the newest packet applied.
    applied: BTreeMap<(u32, Target), u64>,
}

impl Sessions {
    /// The sessions of `agents` agents, if the broker has them on.
    pub(in crate::sim) fn new(cfg: Option<&SessionConfig>, agents: usize) -> Option<Box<Sessions>> {
        let cfg = cfg?.clone();
        Some(Box::new(Sessions {
            cfg,
            agents: (0..agents).map(|_| AgentSession::default()).collect(),
            applied: BTreeMap::new(),
        }))
    }
}

impl Core {
    fn sess(&mut self) -> &mut Sessions {
        self.sessions.as_mut().expect("sessions are on")
    }

    fn sess_metrics(&mut self) -> &mut SessionMetrics {
        self.metrics.sessions.as_mut().expect("sessions are on")
    }

    /// The head of a session record about `agent` (channel: `channel`).
    fn session_head(&self, id: u64, agent: u32, channel: u32) -> MsgHead {
        MsgHead {
            id,
            channel,
            sender: agent,
            kind: 0,
            sent_ns: self.now.0,
        }
    }

    fn record_session(&mut self, h: MsgHead, agent: u32, op: SessionOp, phase: SessionPhase) {
        self.record(EventKind::Session, h, agent, session_detail(op, phase));
    }

    // ----- the client side ----------------------------------------------

    /// `agent` starts (or restarts after a crash): it sends CONNECT, and
    /// starts its keepalive tick.
    #[cold]
    #[inline(never)]
    pub(super) fn session_start(&mut self, agent: u32) {
        self.send_control(agent, SessionOp::Connect, Payload::Empty, false);
        if self.sess().cfg.keepalive.as_nanos() > 0 {
            let generation = self.agents[agent as usize].incarnation;
            self.schedule_tick(agent, generation);
        }
    }

    /// Queues `agent`'s next keepalive tick (of incarnation `generation`).
    fn schedule_tick(&mut self, agent: u32, generation: u32) {
        let at = self.now + self.sess().cfg.keepalive;
        let what = SessionTimer::Tick;
        self.push(
            at,
            Event::Session {
                agent,
                generation,
                what,
            },
        );
    }

    /// `agent` crashed: the packets it was waiting to see acknowledged are
    /// lost with it (its tick stops: it belongs to the old incarnation).
    #[cold]
    #[inline(never)]
    pub(super) fn session_crashed(&mut self, agent: u32) {
        while let Some(slot) = self.sess().agents[agent as usize].pending.pop() {
            self.msgs.release(slot);
        }
    }

    /// `Context::subscribe` with sessions on: a SUBSCRIBE packet.
    #[cold]
    #[inline(never)]
    pub(super) fn session_subscribe(&mut self, agent: AgentId, ch: ChannelId, d: Delivery) {
        let pull = d == Delivery::Pull;
        let payload = Payload::values(&[f64::from(ch.0)]);
        self.send_control(agent.0, SessionOp::Subscribe, payload, pull);
    }

    /// `Context::unsubscribe` with sessions on: an UNSUBSCRIBE packet; true
    /// if the broker holds the subscription as it leaves.
    #[cold]
    #[inline(never)]
    pub(super) fn session_unsubscribe(&mut self, agent: AgentId, ch: ChannelId) -> bool {
        let had = self.broker.subscription(ch, agent).is_some();
        let payload = Payload::values(&[f64::from(ch.0)]);
        self.send_control(agent.0, SessionOp::Unsubscribe, payload, false);
        had
    }

    /// `Context::subscribe_filter` with sessions on: the filter is checked
    /// by the agent, then sent.
    #[cold]
    #[inline(never)]
    pub(super) fn session_subscribe_filter(
        &mut self,
        agent: AgentId,
        filter: &str,
        d: Delivery,
    ) -> Result<(), FilterError> {
        topic::check_filter(filter).map_err(FilterError::Invalid)?;
        let payload = Payload::Text(filter.into());
        self.send_control(
            agent.0,
            SessionOp::SubscribeFilter,
            payload,
            d == Delivery::Pull,
        );
        Ok(())
    }

    /// `Context::unsubscribe_filter` with sessions on; true (the packet
    /// was sent: whether the broker held the filter is known there only).
    #[cold]
    #[inline(never)]
    pub(super) fn session_unsubscribe_filter(&mut self, agent: AgentId, filter: &str) -> bool {
        let payload = Payload::Text(filter.into());
        self.send_control(agent.0, SessionOp::UnsubscribeFilter, payload, false);
        true
    }

    /// The payload bytes of the control packet in `slot`.
    pub(super) fn control_bytes(&self, slot: u32) -> u64 {
        let cfg = &self.sessions.as_ref().expect("sessions are on").cfg;
        let op = self.msgs.get(slot).kind.code() & !PULL;
        match SessionOp::from_code(op) {
            Some(SessionOp::Connect) => cfg.connect_bytes,
            Some(SessionOp::Ping) => cfg.ping_bytes,
            _ => cfg.subscribe_bytes,
        }
    }

    /// Sends a new control packet from `agent`; kept until acked (pings
    /// are not: the next tick sends another).
    fn send_control(&mut self, agent: u32, op: SessionOp, payload: Payload, pull: bool) {
        let id = MsgId(self.next_msg);
        self.next_msg += 1;
        let channel = match &payload {
            Payload::Inline { values, .. } => values[0] as u32,
            _ => NONE,
        };
        let msg = Message {
            id,
            env: self.env,
            channel: ChannelId(NONE),
            sender: AgentId(agent),
            recipient: Recipient::Broadcast,
            kind: MessageKind::from_code(op as u8 | if pull { PULL } else { 0 }),
            sent: self.now,
            payload,
            correlation: None,
        };
        let slot = self.store(msg);
        self.sess_metrics().control_sent += 1;
        let h = self.session_head(id.0, agent, channel);
        self.record_session(h, agent, op, SessionPhase::Sent);
        self.cross_control(slot, agent);
        let keep = op != SessionOp::Ping && self.sess().cfg.keepalive.as_nanos() > 0;
        if keep {
            self.sess().agents[agent as usize].pending.push(slot);
        } else {
            self.msgs.release(slot);
        }
    }

    /// Sends the control packet in `slot` up `agent`'s path now.
    fn cross_control(&mut self, slot: u32, agent: u32) {
        let h = MsgHead::of(self.msgs.get(slot));
        let bytes = self.control_bytes(slot);
        let leg = Leg {
            agent,
            hop: 0,
            up: true,
            cargo: Cargo::Control,
        };
        self.cross(h, slot, leg, self.now, bytes);
    }

    /// The id, op and channel (or none) of the control packet in `slot`,
    /// for its records.
    fn describe(&self, slot: u32) -> (u64, SessionOp, u32) {
        let m = self.msgs.get(slot);
        let op = SessionOp::from_code(m.kind.code() & !PULL).expect("a control packet");
        let ch = match &m.payload {
            Payload::Inline { values, .. } => values[0] as u32,
            _ => NONE,
        };
        (m.id.0, op, ch)
    }

    /// Decodes the control packet in `slot`: its op, target and delivery.
    fn decode(&self, slot: u32) -> (u64, SessionOp, Option<Target>, Delivery) {
        let m = self.msgs.get(slot);
        let code = m.kind.code();
        let op = SessionOp::from_code(code & !PULL).expect("a control packet");
        let d = if code & PULL != 0 {
            Delivery::Pull
        } else {
            Delivery::Push
        };
        let target = match &m.payload {
            Payload::Inline { values, .. } => Some(Target::Channel(values[0] as u32)),
            Payload::Text(f) => Some(Target::Filter(f.to_string())),
            _ => None,
        };
        (m.id.0, op, target, d)
    }

    /// A session timer of `agent` is due.
    #[cold]
    #[inline(never)]
    pub(super) fn session_event(
        &mut self,
        agent: u32,
        generation: u32,
        what: SessionTimer,
    ) -> Option<Call> {
        match what {
            SessionTimer::Tick => self.tick(agent, generation),
            SessionTimer::Watch => self.watch(agent),
            SessionTimer::Expire => self.expire(agent, generation),
        }
        None
    }

    /// The agent's keepalive tick: it resends what was not acknowledged,
    /// or (nothing pending) pings.
    fn tick(&mut self, agent: u32, generation: u32) {
        let a = &self.agents[agent as usize];
        if a.crashed || a.incarnation != generation {
            return;
        }
        let n = self.sess().agents[agent as usize].pending.len();
        if n == 0 {
            self.send_control(agent, SessionOp::Ping, Payload::Empty, false);
        }
        // Resending changes nothing in the list.
        for i in 0..n {
            let slot = self.sess().agents[agent as usize].pending[i];
            let (id, op, ch) = self.describe(slot);
            let m = self.sess_metrics();
            m.control_sent += 1;
            m.control_resent += 1;
            let h = self.session_head(id, agent, ch);
            self.record_session(h, agent, op, SessionPhase::Resent);
            self.cross_control(slot, agent);
        }
        self.schedule_tick(agent, generation);
    }

    /// The broker's ack of a control packet reached `agent` (unless a
    /// fault or corruption stops it): the packet is done.
    #[cold]
    #[inline(never)]
    pub(super) fn control_ack_at_agent(&mut self, slot: u32, agent: u32, corrupt: bool) {
        let h = MsgHead::of(self.msgs.get(slot));
        if let Some(reason) = self.arrival_fault(h, agent, corrupt) {
            self.drop_ack(h, Cargo::ControlAck, agent, reason);
        } else {
            self.sess_metrics().acks_arrived += 1;
            let (id, op, ch) = self.describe(slot);
            let h = self.session_head(id, agent, ch);
            self.record_session(h, agent, op, SessionPhase::Acked);
            let pending = &mut self.sess().agents[agent as usize].pending;
            if let Some(i) = pending.iter().position(|&s| s == slot) {
                pending.remove(i);
                self.msgs.release(slot);
            }
        }
        self.msgs.release(slot);
    }

    // ----- the broker side ----------------------------------------------

    /// A control packet reached the broker (intact, the broker up): the
    /// agent is heard (and online), the packet takes effect unless a newer
    /// one about the same channel or filter did, and the broker acks it.
    #[cold]
    #[inline(never)]
    pub(super) fn control_at_broker(&mut self, slot: u32, agent: u32) {
        let (id, op, target, d) = self.decode(slot);
        self.sess_metrics().control_arrived += 1;
        let now = self.now;
        let s = &mut self.sess().agents[agent as usize];
        s.last_heard = now;
        let came_online = !s.online;
        let h = self.session_head(id, agent, target_channel(&target));
        let fresh = match &target {
            Some(t) => {
                let last = self.sess().applied.entry((agent, t.clone())).or_insert(0);
                let fresh = *last < id + 1;
                if fresh {
                    *last = id + 1;
                }
                fresh
            }
            None => true,
        };
        if fresh {
            self.record_session(h, agent, op, SessionPhase::Effect);
            self.apply(agent, op, target, d);
        }
        if came_online {
            self.came_online(agent);
        }
        if op != SessionOp::Ping {
            self.sess_metrics().acks_sent += 1;
            let leg = Leg {
                agent,
                hop: 0,
                up: false,
                cargo: Cargo::ControlAck,
            };
            let depart = self.now + self.broker.config().processing;
            self.cross(h_of(self, slot), slot, leg, depart, ACK_BYTES);
        }
        self.msgs.release(slot);
    }

    fn apply(&mut self, agent: u32, op: SessionOp, target: Option<Target>, d: Delivery) {
        let a = AgentId(agent);
        match (op, target) {
            (SessionOp::Connect, _) => self.sess_metrics().connects += 1,
            (SessionOp::Subscribe, Some(Target::Channel(ch))) => {
                self.subscribe_now(a, ChannelId(ch), d)
            }
            (SessionOp::Unsubscribe, Some(Target::Channel(ch))) => {
                self.broker.unsubscribe(ChannelId(ch), a);
            }
            (SessionOp::SubscribeFilter, Some(Target::Filter(f))) => {
                // Checked by the agent before it was sent.
                let _ = self.subscribe_filter_now(a, &f, d);
            }
            (SessionOp::UnsubscribeFilter, Some(Target::Filter(f))) => {
                self.broker.unsubscribe_filter(&f, a);
            }
            _ => {}
        }
    }

    /// The broker counts `agent` online again: its watchdog runs, and the
    /// copies its session kept are sent, oldest first.
    fn came_online(&mut self, agent: u32) {
        let timeout = self.sess().cfg.timeout();
        let s = &mut self.sess().agents[agent as usize];
        s.online = true;
        s.expired = false;
        let arm = timeout.as_nanos() > 0 && !s.watched;
        s.watched |= arm;
        if arm {
            self.push(
                self.now + timeout,
                Event::Session {
                    agent,
                    generation: 0,
                    what: SessionTimer::Watch,
                },
            );
        }
        self.sess_metrics().online += 1;
        let depart = self.now + self.broker.config().processing;
        // Sending changes nothing in the session (the agent is online).
        while let Some(k) = self.sess().agents[agent as usize].kept.pop_front() {
            self.in_flight -= 1;
            let (h, bytes, ch) = {
                let m = self.msgs.get(k.slot);
                (MsgHead::of(m), m.payload.wire_bytes(), m.channel)
            };
            self.sess_metrics().resumed += 1;
            self.record_session(h, agent, SessionOp::Resumed, SessionPhase::Effect);
            if self.broker.policy(ch).qos.acked() {
                self.track_delivery(k.slot, agent, k.cargo, depart);
            }
            self.send_down(h, k.slot, depart, bytes, agent, k.cargo);
            self.msgs.release(k.slot);
        }
    }

    /// The broker's watchdog for `agent`: offline if nothing was heard for
    /// 1.5 × keepalive, else it looks again then.
    fn watch(&mut self, agent: u32) {
        let timeout = self.sess().cfg.timeout();
        let now = self.now;
        let s = &mut self.sess().agents[agent as usize];
        s.watched = false;
        if !s.online {
            return;
        }
        let deadline = s.last_heard + timeout;
        if deadline > now {
            s.watched = true;
            self.push(
                deadline,
                Event::Session {
                    agent,
                    generation: 0,
                    what: SessionTimer::Watch,
                },
            );
            return;
        }
        s.online = false;
        s.epoch += 1;
        let epoch = s.epoch;
        let m = self.sess_metrics();
        m.online -= 1;
        m.keepalive_timeouts += 1;
        let h = self.session_head(u64::from(agent), agent, NONE);
        self.record_session(h, agent, SessionOp::KeepaliveTimeout, SessionPhase::Effect);
        let cfg = &self.sess().cfg;
        if let (true, Some(e)) = (cfg.persistent, cfg.session_expiry) {
            self.push(
                self.now + e,
                Event::Session {
                    agent,
                    generation: epoch,
                    what: SessionTimer::Expire,
                },
            );
        }
    }

    /// `agent`'s persistent session expires (if it is still offline since
    /// epoch `generation`): what it kept is dropped (`offline`).
    fn expire(&mut self, agent: u32, generation: u32) {
        let s = &mut self.sess().agents[agent as usize];
        if s.online || s.epoch != generation {
            return;
        }
        s.expired = true;
        self.sess_metrics().sessions_expired += 1;
        let h = self.session_head(u64::from(agent), agent, NONE);
        self.record_session(h, agent, SessionOp::SessionExpired, SessionPhase::Effect);
        while let Some(k) = self.sess().agents[agent as usize].kept.pop_front() {
            self.in_flight -= 1;
            let h = MsgHead::of(self.msgs.get(k.slot));
            self.sess_metrics().expired_drops += 1;
            self.drop_copy(h, agent, Reason::Offline);
            self.msgs.release(k.slot);
        }
    }

    /// The broker is about to send `agent` a copy: if the registry says it
    /// is offline, the copy is kept in its session (a QoS ≥ 1 channel and a
    /// persistent session that has room) or dropped (`offline`, or
    /// `overflow` for a full session). True if the copy was not sent.
    #[cold]
    #[inline(never)]
    pub(super) fn held_for_offline(
        &mut self,
        h: MsgHead,
        slot: u32,
        agent: u32,
        cargo: Cargo,
        acked: bool,
    ) -> bool {
        let sessions = self.sessions.as_ref().expect("sessions are on");
        let s = &sessions.agents[agent as usize];
        if s.online {
            return false;
        }
        if !acked || !sessions.cfg.persistent || s.expired {
            self.drop_copy(h, agent, Reason::Offline);
            return true;
        }
        if s.kept.len() >= sessions.cfg.session_queue {
            self.sess_metrics().overflow_drops += 1;
            self.drop_copy(h, agent, Reason::Overflow);
            return true;
        }
        self.msgs.add_ref(slot);
        self.sess().agents[agent as usize]
            .kept
            .push_back(Kept { slot, cargo });
        self.sess_metrics().queued += 1;
        self.in_flight += 1;
        if self.in_flight > self.limits.max_in_flight {
            self.limit("max_in_flight", self.limits.max_in_flight);
        }
        self.record_session(h, agent, SessionOp::Queued, SessionPhase::Effect);
        true
    }

    /// Whether the broker counts `agent` online (`None`: sessions off).
    pub(in crate::sim) fn session_online(&self, agent: u32) -> Option<bool> {
        let s = self.sessions.as_ref()?;
        Some(s.agents.get(agent as usize)?.online)
    }

    /// The session part of the summary: the counters, who is online, what
    /// is kept and what is on the network now; and the acks in flight
    /// that are QoS acks (the control packets are counted with them on
    /// the network).
    pub(in crate::sim) fn session_summary(&self) -> Option<(SessionSummary, u64)> {
        let s = self.sessions.as_ref()?;
        let m = self.metrics.sessions.as_deref()?.clone();
        let held = s.agents.iter().map(|a| a.kept.len() as u64).sum();
        let out = m.control_sent + m.acks_sent + m.control_duplicated;
        let done = m.control_arrived + m.acks_arrived + m.control_lost + m.acks_lost;
        debug_assert!(out >= done, "control packets are conserved");
        let control_in_flight = out.saturating_sub(done);
        Some((
            SessionSummary {
                counts: m,
                held,
                control_in_flight,
            },
            control_in_flight,
        ))
    }

    /// Releases every packet the agents wait on and every kept copy (the
    /// kept copies stay counted in flight).
    pub(in crate::sim) fn release_sessions(&mut self) {
        let Some(s) = self.sessions.as_mut() else {
            return;
        };
        let mut slots = Vec::new();
        for a in &mut s.agents {
            slots.append(&mut a.pending);
            slots.extend(a.kept.iter().map(|k| k.slot));
            a.kept.clear();
        }
        for slot in slots {
            self.msgs.release(slot);
        }
    }
}

fn h_of(core: &Core, slot: u32) -> MsgHead {
    MsgHead::of(core.msgs.get(slot))
}

fn target_channel(t: &Option<Target>) -> u32 {
    match t {
        Some(Target::Channel(c)) => *c,
        _ => NONE,
    }
}
