//! Acknowledged delivery: what the engine does for channels whose policy
//! asks for more than at-most-once routing (`[[broker.channel]]`).
//!
//! Acks are not messages: an ack of the message in slot `s` travels the
//! network as an event that refers to `s` (cargo [`Cargo::Ack`] up a
//! subscriber's path, [`Cargo::PubAck`] down a publisher's), through the
//! same links, routers, loss, duplication and faults as a copy, with no
//! payload (a link charges its `header_bytes`).
//!
//! The obligations (who still owes an ack) live in the message's
//! [`SlotMeta`](super::super::msg_store::SlotMeta); every open obligation
//! and every ack in flight holds a reference to the slot, so the message
//! (and what is known about it) lives exactly as long as something may
//! still refer to it. Each open obligation has one ack timeout in
//! [`Timeouts`], removed when it closes; the event queue holds a single
//! `RetryDue` event for the earliest of them.
//!
//! **Invariant:** with no such channel, none of this runs: the engine
//! checks one flag (`Broker::guarantees`) on publish, routing and arrival.

use crate::broker::{DeadLetter, NO_GROUP, Qos};
use crate::message::{AgentId, Message};
use crate::metrics::QosSummary;
use crate::rng::RngStream;
use crate::time::{SimDuration, SimTime};
use crate::trace::{
    DETAIL_ACK, DETAIL_CONTROL, DETAIL_CONTROL_ACK, DETAIL_PUBACK, DeadCause, EXPIRED_ON_ARRIVAL,
    EXPIRED_UNACKED, EventKind, NODE_BROKER, Reason,
};

use super::super::msg_store::{NO_TIMER, Pending, PendingState};
use super::super::timeouts::{Due, Timeouts};
use super::{Call, Cargo, Core, Event, Leg, MsgHead};

/// Payload bytes of an ack: none (a link with `rate_bps` charges its
/// `header_bytes`).
pub const ACK_BYTES: u64 = 0;

/// The `detail` flag of a record about an ack with this cargo (0 for a
/// message copy).
#[inline(always)]
pub(super) fn ack_detail(cargo: Cargo) -> u16 {
    match cargo {
        Cargo::Ack => DETAIL_ACK,
        Cargo::PubAck => DETAIL_PUBACK,
        Cargo::Control => DETAIL_CONTROL,
        Cargo::ControlAck => DETAIL_CONTROL_ACK,
        Cargo::Push | Cargo::Pull => 0,
    }
}

/// Retry streams and dead-letter queues.
#[derive(Default)]
pub(in crate::sim) struct QosState {
    /// Per channel, the jitter stream of the broker's retransmissions
    /// (`retry/{channel}`), created on first use.
    retry_rng: Vec<Option<RngStream>>,
    /// Per channel, the jitter stream of publishers' retransmissions
    /// (`publish_retry/{channel}`).
    publish_rng: Vec<Option<RngStream>>,
    /// The dead-letter queues.
    pub(in crate::sim) dead: crate::broker::DeadLetters,
    /// The ack timeouts of every open obligation.
    timeouts: Timeouts,
    /// The time of the earliest `RetryDue` event in the queue, if any.
    due_event: Option<SimTime>,
}

impl Core {
    /// Publishes a message on a channel whose publishes are acknowledged:
    /// the publisher keeps it until the broker's ack arrives, and sends it
    /// again after each ack timeout.
    #[cold]
    #[inline(never)]
    pub(super) fn publish_tracked(&mut self, msg: Message, h: MsgHead, bytes: u64) {
        let sender = msg.sender.0;
        let slot = self.store(msg);
        self.msgs.add_ref(slot);
        self.msgs.meta_mut(slot).publish = Some(Pending {
            agent: sender,
            attempt: 0,
            state: PendingState::Open,
            cargo: Cargo::Push,
            timer: NO_TIMER,
            group: NO_GROUP,
        });
        self.metrics.qos.tracked_publishes += 1;
        let leg = Leg {
            agent: sender,
            hop: 0,
            up: true,
            cargo: Cargo::Push,
        };
        self.cross(h, slot, leg, self.now, bytes);
        self.schedule_retry(slot, sender, 0, true, self.now);
        self.msgs.release(slot);
    }

    /// The broker's checks before it routes a message of a channel with
    /// guarantees: it acknowledges an acknowledged publish, lets an expired
    /// message expire, and (exactly-once publish) routes each message once.
    /// True if the message is to be routed.
    pub(super) fn accept_at_broker(&mut self, h: MsgHead, slot: u32) -> bool {
        let p = self.broker.policy(crate::message::ChannelId(h.channel));
        let (publish_qos, ttl, dead_expired) = (p.publish_qos, p.ttl, p.dead_letter_expired);
        if publish_qos.acked() {
            self.metrics.qos.acks_sent += 1;
            let leg = Leg {
                agent: h.sender,
                hop: 0,
                up: false,
                cargo: Cargo::PubAck,
            };
            let depart = self.now + self.broker.config().processing;
            self.cross(h, slot, leg, depart, ACK_BYTES);
        }
        if self.expired(h, ttl) {
            self.metrics.qos.expired_uplink += 1;
            self.record(EventKind::Expire, h, NODE_BROKER, EXPIRED_ON_ARRIVAL);
            if dead_expired {
                self.dead_letter(slot, None, DeadCause::Expired, 0);
            }
            return false;
        }
        if publish_qos == Qos::ExactlyOnce {
            let meta = self.msgs.meta_mut(slot);
            if meta.routed {
                self.metrics.dropped_uplink += 1;
                self.drop_copy(h, NODE_BROKER, Reason::Duplicate);
                return false;
            }
            meta.routed = true;
        }
        true
    }

    /// Whether a message is older than `ttl` now.
    fn expired(&self, h: MsgHead, ttl: Option<SimDuration>) -> bool {
        ttl.is_some_and(|ttl| self.now.0 - h.sent_ns > ttl.as_nanos())
    }

    /// The broker starts tracking its delivery of the message in `slot` to
    /// `agent` (once per message and agent), whose first copy departs at
    /// `depart`.
    pub(super) fn track_delivery(&mut self, slot: u32, agent: u32, cargo: Cargo, depart: SimTime) {
        let meta = self.msgs.meta_mut(slot);
        let at = match meta.deliveries.binary_search_by_key(&agent, |p| p.agent) {
            Ok(_) => return,
            Err(at) => at,
        };
        meta.deliveries.insert(
            at,
            Pending {
                agent,
                attempt: 0,
                state: PendingState::Open,
                cargo,
                timer: NO_TIMER,
                group: NO_GROUP,
            },
        );
        self.msgs.add_ref(slot);
        self.metrics.qos.tracked_deliveries += 1;
        self.schedule_retry(slot, agent, 0, false, depart);
    }

    /// Sets the ack timeout of attempt `attempt` of an open obligation,
    /// sent at `from`: the wait
    /// [`ChannelPolicy::wait_ns`](crate::broker::ChannelPolicy::wait_ns) of
    /// the next attempt, times a jitter factor drawn from the channel's
    /// retry stream.
    fn schedule_retry(
        &mut self,
        slot: u32,
        agent: u32,
        attempt: u16,
        publish: bool,
        from: SimTime,
    ) {
        let ch = self.msgs.get(slot).channel;
        let p = self.broker.policy(ch);
        let wait = p.wait_ns(u32::from(attempt) + 1);
        let jitter = p.jitter;
        let factor = if jitter > 0.0 {
            self.retry_stream(ch, publish)
                .uniform_range(1.0 - jitter, 1.0 + jitter)
        } else {
            1.0
        };
        let at = from + SimDuration::from_nanos_f64(wait * factor);
        let due = Due {
            slot,
            agent,
            publish,
        };
        let handle = self.qos.timeouts.insert(at.0, due);
        self.obligation(slot, agent, publish)
            .expect("an open obligation")
            .timer = handle;
        if self.qos.due_event.is_none_or(|t| at < t) {
            self.qos.due_event = Some(at);
            self.push(at, Event::RetryDue);
        }
    }

    /// The obligation of `agent` on the message in `slot`.
    fn obligation(&mut self, slot: u32, agent: u32, publish: bool) -> Option<&mut Pending> {
        let meta = self.msgs.meta_mut(slot);
        if publish {
            meta.publish.as_mut()
        } else {
            meta.delivery(agent)
        }
    }

    /// The jitter stream of retransmissions on `ch` (by the broker, or by
    /// publishers), created on first use.
    #[inline]
    fn retry_stream(&mut self, ch: crate::message::ChannelId, publish: bool) -> &mut RngStream {
        let i = ch.index();
        let made = {
            let streams = if publish {
                &self.qos.publish_rng
            } else {
                &self.qos.retry_rng
            };
            streams.get(i).is_some_and(Option::is_some)
        };
        if !made {
            return self.new_retry_stream(ch, publish);
        }
        let streams = if publish {
            &mut self.qos.publish_rng
        } else {
            &mut self.qos.retry_rng
        };
        streams[i].as_mut().expect("checked")
    }

    #[cold]
    fn new_retry_stream(&mut self, ch: crate::message::ChannelId, publish: bool) -> &mut RngStream {
        let i = ch.index();
        let prefix = if publish { "publish_retry" } else { "retry" };
        let name = format!("{prefix}/{}", self.broker.channel_name(ch));
        let rng = RngStream::new(self.seed, u64::from(self.env), &name);
        let streams = if publish {
            &mut self.qos.publish_rng
        } else {
            &mut self.qos.retry_rng
        };
        if streams.len() <= i {
            streams.resize_with(i + 1, || None);
        }
        streams[i].insert(rng)
    }

    /// The earliest ack timeout is due (if this event is not stale):
    /// every obligation whose timeout has run out expires, is
    /// dead-lettered after `max_retries`, waits (the broker is down, or the
    /// publisher has crashed), or is sent again; then the next timeout's
    /// event is queued.
    pub(super) fn retries_due(&mut self) {
        if self.qos.due_event == Some(self.now) {
            self.qos.due_event = None;
        }
        while let Some(d) = self.qos.timeouts.pop_due(self.now.0) {
            let p = self
                .obligation(d.slot, d.agent, d.publish)
                .expect("a timeout is removed when its obligation closes");
            debug_assert_eq!(p.state, PendingState::Open);
            p.timer = NO_TIMER;
            let attempt = p.attempt;
            self.retry_live(d.slot, d.agent, attempt, d.publish);
        }
        if let Some(next) = self.qos.timeouts.next() {
            let next = SimTime(next);
            if self.qos.due_event.is_none_or(|t| next < t) {
                self.qos.due_event = Some(next);
                self.push(next, Event::RetryDue);
            }
        }
    }

    fn retry_live(&mut self, slot: u32, agent: u32, attempt: u16, publish: bool) {
        let (h, bytes) = {
            let m = self.msgs.get(slot);
            (MsgHead::of(m), m.payload.wire_bytes())
        };
        let p = self.broker.policy(crate::message::ChannelId(h.channel));
        let (ttl, dead_expired, max_retries) = (p.ttl, p.dead_letter_expired, p.max_retries);
        let dest = if publish { NODE_BROKER } else { agent };
        let recipient = (!publish).then_some(AgentId(agent));
        // Closing releases the obligation's reference: the message is
        // read (for its dead letter) before.
        if self.expired(h, ttl) {
            self.record(EventKind::Expire, h, dest, EXPIRED_UNACKED);
            if publish {
                self.metrics.qos.expired_publishes += 1;
            } else {
                self.metrics.qos.expired_deliveries += 1;
            }
            if dead_expired {
                self.dead_letter(slot, recipient, DeadCause::Expired, u32::from(attempt));
            }
            self.close(slot, agent, publish, PendingState::Expired);
            return;
        }
        let stalled = if publish {
            self.agents[agent as usize].crashed
        } else {
            self.faults.any_active() && self.faults.broker_down()
        };
        if stalled {
            // The sender is down: it tries again one wait later, on the
            // same attempt.
            return self.schedule_retry(slot, agent, attempt, publish, self.now);
        }
        if u32::from(attempt) >= max_retries {
            self.record(EventKind::DeadLetter, h, dest, DeadCause::Retries as u16);
            if publish {
                self.metrics.qos.dead_lettered_publishes += 1;
            } else {
                self.metrics.qos.dead_lettered_deliveries += 1;
            }
            self.dead_letter(slot, recipient, DeadCause::Retries, u32::from(attempt));
            self.close(slot, agent, publish, PendingState::DeadLettered);
            return;
        }
        let next = attempt + 1;
        let pending = self
            .obligation(slot, agent, publish)
            .expect("an open obligation");
        pending.attempt = next;
        let (cargo, group) = (pending.cargo, pending.group);
        // A consumer group's delivery goes to another member.
        let (agent, dest, detail, cargo) = if group == NO_GROUP {
            (agent, dest, next, cargo)
        } else {
            let (to, detail, cargo) = self.redeliver(slot, agent, group, next, cargo);
            (to, to, detail, cargo)
        };
        self.record(EventKind::Retransmit, h, dest, detail);
        if publish {
            self.metrics.qos.retransmitted_uplink += 1;
            let leg = Leg {
                agent,
                hop: 0,
                up: true,
                cargo: Cargo::Push,
            };
            self.cross(h, slot, leg, self.now, bytes);
        } else {
            self.metrics.qos.retransmitted_downlink += 1;
            self.send_down(h, slot, self.now, bytes, agent, cargo);
        }
        self.schedule_retry(slot, agent, next, publish, self.now);
    }

    /// Ends an open obligation in `state`, cancelling its timeout and
    /// releasing its reference.
    /// True if it was open.
    pub(super) fn close(
        &mut self,
        slot: u32,
        agent: u32,
        publish: bool,
        state: PendingState,
    ) -> bool {
        let Some(p) = self.obligation(slot, agent, publish) else {
            return false;
        };
        if p.state != PendingState::Open {
            return false;
        }
        p.state = state;
        let (group, holder) = (p.group, p.agent);
        let timer = std::mem::replace(&mut p.timer, NO_TIMER);
        if timer != NO_TIMER {
            self.qos.timeouts.remove(timer);
        }
        if group != NO_GROUP {
            self.group_closed(group, holder, state);
        }
        self.msgs.release(slot);
        true
    }

    /// Puts the message in `slot` in its channel's dead-letter queue.
    fn dead_letter(
        &mut self,
        slot: u32,
        recipient: Option<AgentId>,
        cause: DeadCause,
        attempts: u32,
    ) {
        let message = self.msgs.get(slot).clone();
        let ch = message.channel.index();
        let letter = DeadLetter {
            message,
            recipient,
            cause,
            attempts,
            time: self.now,
        };
        self.metrics.qos.dead_lettered += 1;
        let cap = self.broker.config().dead_letter_capacity;
        if self.qos.dead.push(ch, letter, cap) {
            self.metrics.qos.dead_letters_discarded += 1;
        }
    }

    /// A copy of a message on an acknowledged channel reached `agent`:
    /// unless a fault or corruption stops it (no ack then, so the broker
    /// sends it again), or a full pull buffer refuses it (likewise), the
    /// agent acks it, and the handler gets it, unless it is a duplicate on
    /// an exactly-once channel.
    #[cold]
    #[inline(never)]
    pub(super) fn acked_at_agent(
        &mut self,
        slot: u32,
        agent: u32,
        cargo: Cargo,
        corrupt: bool,
    ) -> Option<Call> {
        let h = MsgHead::of(self.msgs.get(slot));
        let ch = crate::message::ChannelId(h.channel);
        let mut reason = self.arrival_fault(h, agent, corrupt);
        // A full buffer that rejects new copies refuses this one unacked
        // (under `drop_oldest` it evicts the oldest instead).
        if reason.is_none()
            && cargo == Cargo::Pull
            && self.broker.config().buffer_overflow == crate::broker::BufferOverflow::RejectNew
            && self.agents[agent as usize].mailbox.pending(ch)
                >= self.broker.config().buffer_capacity
        {
            reason = Some(Reason::Overflow);
        }
        if let Some(reason) = reason {
            self.drop_copy(h, agent, reason);
            self.msgs.release(slot);
            return None;
        }
        self.metrics.qos.acks_sent += 1;
        let leg = Leg {
            agent,
            hop: 0,
            up: true,
            cargo: Cargo::Ack,
        };
        self.cross(h, slot, leg, self.now, ACK_BYTES);
        let exactly_once = self.broker.policy(ch).qos == Qos::ExactlyOnce;
        let meta = self.msgs.meta_mut(slot);
        let seen = match meta.seen.binary_search(&agent) {
            Ok(_) => true,
            Err(i) => {
                meta.seen.insert(i, agent);
                false
            }
        };
        // A consumer group sees a message once, whichever member got it.
        let seen = seen || (self.broker.grouped(ch) && self.group_seen(slot, ch, agent));
        if seen {
            if exactly_once {
                self.metrics.qos.duplicates_suppressed += 1;
                self.drop_copy(h, agent, Reason::Duplicate);
                self.msgs.release(slot);
                return None;
            }
            self.metrics.qos.duplicates_seen += 1;
        }
        let msg = self.msgs.take(slot);
        self.hand_over(h, msg, agent, cargo)
    }

    /// A subscriber's ack reached the broker: the delivery is done.
    pub(super) fn ack_at_broker(&mut self, slot: u32, agent: u32) {
        let h = MsgHead::of(self.msgs.get(slot));
        self.metrics.qos.acks_received += 1;
        self.record(EventKind::Ack, h, agent, DETAIL_ACK);
        if self.close(slot, agent, false, PendingState::Acked)
            || (self.broker.any_groups() && self.group_ack(slot, agent))
        {
            self.metrics.qos.acked_deliveries += 1;
        }
        self.msgs.release(slot);
    }

    /// The broker's ack of a publish reached its publisher (unless a fault
    /// or corruption stops it): the publish is done.
    #[cold]
    pub(super) fn puback_at_agent(&mut self, slot: u32, agent: u32, corrupt: bool) -> Option<Call> {
        let h = MsgHead::of(self.msgs.get(slot));
        let reason = self.arrival_fault(h, agent, corrupt);
        if let Some(reason) = reason {
            self.drop_ack(h, Cargo::PubAck, agent, reason);
        } else {
            self.metrics.qos.acks_received += 1;
            self.record(EventKind::Ack, h, agent, DETAIL_PUBACK);
            if self.close(slot, agent, true, PendingState::Acked) {
                self.metrics.qos.acked_publishes += 1;
            }
        }
        self.msgs.release(slot);
        None
    }

    /// An ack was lost on its way.
    pub(super) fn drop_ack(&mut self, h: MsgHead, cargo: Cargo, node: u32, reason: Reason) {
        match (cargo, self.metrics.sessions.as_mut()) {
            (Cargo::Control, Some(m)) => m.control_lost += 1,
            (Cargo::ControlAck, Some(m)) => m.acks_lost += 1,
            _ => self.metrics.qos.acks_dropped += 1,
        }
        self.record(EventKind::Drop, h, node, reason as u16 | ack_detail(cargo));
    }

    /// Fills in what was still open at the end of the run.
    pub(in crate::sim) fn open_obligations(&self, q: &mut QosSummary) {
        let control = self.session_summary().map_or(0, |s| s.1);
        q.acks_in_flight = self.acks_in_flight.saturating_sub(control);
        q.requests_waiting = self.requests_waiting();
        let open = |p: &Pending| p.state == PendingState::Open;
        for m in self.msgs.metas() {
            q.unacked_publishes += u64::from(m.publish.as_ref().is_some_and(open));
            q.unacked_deliveries += m.deliveries.iter().filter(|p| open(p)).count() as u64;
        }
    }

    /// Channel `ch`'s dead letters, oldest first.
    pub(in crate::sim) fn dead_letters(
        &self,
        ch: crate::message::ChannelId,
    ) -> impl ExactSizeIterator<Item = &DeadLetter> {
        self.qos.dead.get(ch.index())
    }

    /// Takes channel `ch`'s dead letters, emptying its queue.
    pub(in crate::sim) fn take_dead_letters(
        &mut self,
        ch: crate::message::ChannelId,
    ) -> Vec<DeadLetter> {
        self.qos.dead.take(ch.index())
    }
}
