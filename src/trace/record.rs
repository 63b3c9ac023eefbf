//! One event as a fixed-size [`Record`] and its canonical 40-byte layout,
//! which the records digest ([`Digester`](super::Digester)) is defined on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What happened. The names are the `event` column of the CSV export; the
/// codes are hashed into the digest and written to trace files, so they
/// never change.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    bytemuck::NoUninit,
)]
#[repr(u8)]
#[non_exhaustive]
pub enum EventKind {
    /// An agent published a message (node: the message's recipient).
    Publish = 0,
    /// The message reached the broker, which routes it to subscribers.
    Route = 1,
    /// A copy reached its recipient agent (node).
    Deliver = 2,
    /// A copy was dropped; `detail` holds the [`Reason`].
    Drop = 3,
    /// A link sent a message twice (its `duplicate` setting); the second
    /// copy travels on its own (node: the link's far end).
    Duplicate = 4,
    /// A message outlived its channel's `ttl` (node: where: the broker when
    /// it arrived there too old, or the destination of an unacknowledged
    /// delivery or publish; detail: [`EXPIRED_ON_ARRIVAL`] or
    /// [`EXPIRED_UNACKED`]), or a request its timeout (node: the requester;
    /// detail: [`EXPIRED_REQUEST`]).
    Expire = 5,
    /// An ack arrived (node: the subscriber whose copy the broker's
    /// delivery is acknowledged by, or the publisher that received the
    /// broker's ack of its publish; detail: [`DETAIL_ACK`] or
    /// [`DETAIL_PUBACK`]).
    Ack = 6,
    /// The sender of an unacknowledged message sent it again (node: the
    /// destination: the subscriber, or the broker for a publish; detail:
    /// the attempt, 1 for the first retransmission).
    Retransmit = 7,
    /// A message was given up on and put in its channel's dead-letter queue
    /// (node: the destination, as for `retransmit`; detail: a
    /// [`DeadCause`] code).
    DeadLetter = 8,
    /// A timer fired (msg: the timer's tag; node: the agent).
    Timer = 9,
    /// A fault started or ended (msg: the fault's index in the scenario's
    /// `[[fault]]` list; node: the crashed agent or the failed link's far
    /// end, else none; detail: the fault kind's code × 2, + 1 for a start).
    Fault = 10,
    /// The receiving agent found the message late for its deadline.
    Late = 11,
    /// A router passed the message (or copy) on to the next link of its
    /// route (node: the router).
    Forward = 12,
    /// The broker sent a channel's retained message to an agent that just
    /// subscribed to it (node: the new subscriber); the copy then travels
    /// like any copy the broker makes.
    Retained = 13,
    /// The message had to wait in the broker's queue (a server model: every
    /// worker busy; node: the broker; detail: the queue length with it,
    /// saturated at 65 535).
    Enqueue = 14,
    /// A session event (`[broker.sessions]`, docs/broker_sessions.md):
    /// a control packet sent, taking effect at the broker or acknowledged,
    /// or a change in the broker's registry of online agents; `detail` is
    /// a [`SessionOp`] code, plus a [`SessionPhase`] × 256 (node: the
    /// agent; channel: the channel of a subscribe or unsubscribe, or of a
    /// copy queued in or resumed from a session).
    Session = 15,
}

impl EventKind {
    /// Every kind, in code order.
    pub const ALL: [EventKind; 16] = [
        EventKind::Publish,
        EventKind::Route,
        EventKind::Deliver,
        EventKind::Drop,
        EventKind::Duplicate,
        EventKind::Expire,
        EventKind::Ack,
        EventKind::Retransmit,
        EventKind::DeadLetter,
        EventKind::Timer,
        EventKind::Fault,
        EventKind::Late,
        EventKind::Forward,
        EventKind::Retained,
        EventKind::Enqueue,
        EventKind::Session,
    ];

    /// The CSV name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Publish => "publish",
            EventKind::Route => "route",
            EventKind::Deliver => "deliver",
            EventKind::Drop => "drop",
            EventKind::Duplicate => "duplicate",
            EventKind::Expire => "expire",
            EventKind::Ack => "ack",
            EventKind::Retransmit => "retransmit",
            EventKind::DeadLetter => "dead_letter",
            EventKind::Timer => "timer",
            EventKind::Fault => "fault",
            EventKind::Late => "late",
            EventKind::Forward => "forward",
            EventKind::Retained => "retained",
            EventKind::Enqueue => "enqueue",
            EventKind::Session => "session",
        }
    }

    /// The kind for a one-byte code; `None` for every code not listed.
    pub fn from_code(c: u8) -> Option<EventKind> {
        Some(match c {
            0 => EventKind::Publish,
            1 => EventKind::Route,
            2 => EventKind::Deliver,
            3 => EventKind::Drop,
            4 => EventKind::Duplicate,
            5 => EventKind::Expire,
            6 => EventKind::Ack,
            7 => EventKind::Retransmit,
            8 => EventKind::DeadLetter,
            9 => EventKind::Timer,
            10 => EventKind::Fault,
            11 => EventKind::Late,
            12 => EventKind::Forward,
            13 => EventKind::Retained,
            14 => EventKind::Enqueue,
            15 => EventKind::Session,
            _ => return None,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a message copy was dropped. The names are the CSV `detail` column;
/// the codes are hashed into the digest, so they never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u16)]
#[non_exhaustive]
pub enum Reason {
    /// Lost on a link (the link's loss model, or a degradation's extra loss).
    Loss = 1,
    /// A partition separated sender and recipient, or cut the link.
    Partition = 2,
    /// A bounded buffer (a pull mailbox) was full.
    Overflow = 4,
    /// The recipient was offline by the broker's registry (sessions on,
    /// `docs/broker_sessions.md`): not connected yet, or timed out, and
    /// the copy could not be kept in a session (QoS 0, a clean session, or
    /// a session that expired).
    Offline = 5,
    /// No agent subscribes to the channel (or the named recipient does not).
    NoSubscriber = 6,
    /// The copy arrived corrupted (the link's `corrupt` setting) and the
    /// receiver discarded it.
    Corrupt = 7,
    /// The link was down (a `link_down` or `flap` fault).
    LinkDown = 8,
    /// The recipient agent had crashed.
    Crashed = 9,
    /// The broker was down.
    BrokerDown = 10,
    /// A second copy of a message on an `exactly_once` channel: the
    /// receiver (or, for a publish, the broker) had it already and
    /// discarded this one (after acknowledging it).
    Duplicate = 11,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 10] = [
        Reason::Loss,
        Reason::Partition,
        Reason::Overflow,
        Reason::Offline,
        Reason::NoSubscriber,
        Reason::Corrupt,
        Reason::LinkDown,
        Reason::Crashed,
        Reason::BrokerDown,
        Reason::Duplicate,
    ];

    /// The CSV name.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Loss => "loss",
            Reason::Partition => "partition",
            Reason::Overflow => "overflow",
            Reason::Offline => "offline",
            Reason::NoSubscriber => "no_subscriber",
            Reason::Corrupt => "corrupt",
            Reason::LinkDown => "link_down",
            Reason::Crashed => "crashed",
            Reason::BrokerDown => "broker_down",
            Reason::Duplicate => "duplicate",
        }
    }

    /// The reason for a code; `None` for every code not listed.
    pub fn from_code(c: u16) -> Option<Reason> {
        Some(match c {
            1 => Reason::Loss,
            2 => Reason::Partition,
            4 => Reason::Overflow,
            5 => Reason::Offline,
            6 => Reason::NoSubscriber,
            7 => Reason::Corrupt,
            8 => Reason::LinkDown,
            9 => Reason::Crashed,
            10 => Reason::BrokerDown,
            11 => Reason::Duplicate,
            _ => return None,
        })
    }
}

/// `detail` flag of a `drop`, `duplicate` or `forward` of an ack rather
/// than a message copy, and of an `ack` event: a subscriber's ack to the
/// broker. (A drop's reason code is in the low byte.)
pub const DETAIL_ACK: u16 = 1 << 8;
/// The same for the broker's ack of a publish, to the publisher.
pub const DETAIL_PUBACK: u16 = 2 << 8;
/// The same for a session control packet (connect, subscribe, ping, …)
/// on its way to the broker (`docs/broker_sessions.md`).
pub const DETAIL_CONTROL: u16 = 3 << 8;
/// The same for the broker's ack of a control packet (CONNACK, SUBACK, …)
/// on its way to the agent.
pub const DETAIL_CONTROL_ACK: u16 = 4 << 8;

/// What a [`EventKind::Session`] record is about (the low byte of its
/// `detail`). Codes never change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum SessionOp {
    /// CONNECT: the agent (re)connects; at the broker it goes online.
    Connect = 1,
    /// SUBSCRIBE to one channel.
    Subscribe = 2,
    /// UNSUBSCRIBE from one channel.
    Unsubscribe = 3,
    /// SUBSCRIBE to a topic filter.
    SubscribeFilter = 4,
    /// UNSUBSCRIBE from a topic filter.
    UnsubscribeFilter = 5,
    /// PINGREQ: the agent's keepalive.
    Ping = 6,
    /// The broker heard nothing from the agent for 1.5 × keepalive and
    /// declared it offline.
    KeepaliveTimeout = 7,
    /// The offline agent's persistent session outlived `session_expiry`:
    /// the copies it kept are dropped (`offline`).
    SessionExpired = 8,
    /// A copy for the offline agent was kept in its session (msg and
    /// channel: the copy's).
    Queued = 9,
    /// A kept copy was sent on when the agent reconnected.
    Resumed = 10,
}

impl SessionOp {
    /// Every op, in code order.
    pub const ALL: [SessionOp; 10] = [
        SessionOp::Connect,
        SessionOp::Subscribe,
        SessionOp::Unsubscribe,
        SessionOp::SubscribeFilter,
        SessionOp::UnsubscribeFilter,
        SessionOp::Ping,
        SessionOp::KeepaliveTimeout,
        SessionOp::SessionExpired,
        SessionOp::Queued,
        SessionOp::Resumed,
    ];

    /// The CSV name.
    pub fn name(self) -> &'static str {
        match self {
            SessionOp::Connect => "connect",
            SessionOp::Subscribe => "subscribe",
            SessionOp::Unsubscribe => "unsubscribe",
            SessionOp::SubscribeFilter => "subscribe_filter",
            SessionOp::UnsubscribeFilter => "unsubscribe_filter",
            SessionOp::Ping => "ping",
            SessionOp::KeepaliveTimeout => "keepalive_timeout",
            SessionOp::SessionExpired => "session_expired",
            SessionOp::Queued => "queued",
            SessionOp::Resumed => "resumed",
        }
    }

    /// The op for a code; `None` for every code not listed.
    pub fn from_code(c: u8) -> Option<SessionOp> {
        SessionOp::ALL.iter().copied().find(|o| *o as u8 == c)
    }
}

/// Where a control packet is, in a [`EventKind::Session`] record (the
/// high byte of its `detail`); registry events are `Effect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum SessionPhase {
    /// At the broker: the packet took effect (or the registry changed).
    Effect = 0,
    /// The agent sent the packet.
    Sent = 1,
    /// The agent sent it again (no ack came within a keepalive).
    Resent = 2,
    /// The broker's ack of it reached the agent.
    Acked = 3,
}

impl SessionPhase {
    /// The phase for a code; `None` for every code not listed.
    pub fn from_code(c: u8) -> Option<SessionPhase> {
        Some(match c {
            0 => SessionPhase::Effect,
            1 => SessionPhase::Sent,
            2 => SessionPhase::Resent,
            3 => SessionPhase::Acked,
            _ => return None,
        })
    }

    /// The suffix in the CSV `detail` column (`subscribe sent`).
    pub fn suffix(self) -> &'static str {
        match self {
            SessionPhase::Effect => "",
            SessionPhase::Sent => " sent",
            SessionPhase::Resent => " resent",
            SessionPhase::Acked => " acked",
        }
    }
}

/// The `detail` of a session record.
pub fn session_detail(op: SessionOp, phase: SessionPhase) -> u16 {
    (phase as u16) << 8 | op as u16
}
/// `detail` flag of a `retransmit` (whose low bits are the attempt): the
/// broker sent the message to another member of a consumer group than the
/// one that had it (a redelivery; node: the new member).
pub const DETAIL_REDELIVER: u16 = 1 << 15;
/// `detail` of a `publish` of a reply (a message with a correlation).
pub const DETAIL_REPLY: u16 = 1;
/// `detail` of an `expire`: the message reached the broker older than its
/// TTL and was not routed.
pub const EXPIRED_ON_ARRIVAL: u16 = 0;
/// `detail` of an `expire`: an unacknowledged delivery or publish expired
/// before its next retransmission.
pub const EXPIRED_UNACKED: u16 = 1;
/// `detail` of an `expire`: a request got no reply within its timeout
/// (msg: the request; node: the requester).
pub const EXPIRED_REQUEST: u16 = 2;

/// Why a message went to a dead-letter queue (the `detail` of a
/// `dead_letter` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u16)]
#[non_exhaustive]
pub enum DeadCause {
    /// No ack after `max_retries` retransmissions.
    Retries = 0,
    /// It expired (`ttl`) on a channel with `dead_letter_expired`.
    Expired = 1,
}

impl DeadCause {
    /// The CSV name.
    pub fn name(self) -> &'static str {
        match self {
            DeadCause::Retries => "retries",
            DeadCause::Expired => "expired",
        }
    }

    /// The cause for a code.
    pub fn from_code(c: u16) -> Option<DeadCause> {
        match c {
            0 => Some(DeadCause::Retries),
            1 => Some(DeadCause::Expired),
            _ => None,
        }
    }
}

/// A `node` value: the broker.
pub const NODE_BROKER: u32 = u32::MAX - 1;
/// Router `r` (the `r`-th `[[network.router]]`, from 0) is node
/// `NODE_ROUTER_BASE + r`.
pub const NODE_ROUTER_BASE: u32 = 1 << 31;
/// A `node` value: every subscriber (a broadcast message's recipient).
pub const NODE_BROADCAST: u32 = u32::MAX;
/// A `channel`/`sender` value: not applicable.
pub const NONE: u32 = u32::MAX;

/// One event. Fixed-size and `Copy`: appending one is a 40-byte copy.
///
/// The fields are laid out (`repr(C)`, no padding) in the order of the
/// canonical layout ([`Record::to_bytes`]), so on a little-endian machine a
/// slice of records *is* its canonical bytes and the digest hashes it
/// without converting (a test pins the two views together).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, bytemuck::NoUninit)]
#[repr(C)]
pub struct Record {
    /// Virtual time of the event, ns.
    pub time_ns: u64,
    /// What happened.
    pub event: EventKind,
    /// Message kind code; the trace footer names the codes a run used.
    pub kind: u8,
    /// Event-specific detail: the [`Reason`] code for drops, else 0.
    pub detail: u16,
    /// Channel id, or [`NONE`].
    pub channel: u32,
    /// Message id (for timers: the timer's tag).
    pub msg: u64,
    /// Sending agent id, or [`NONE`].
    pub sender: u32,
    /// The node concerned: recipient agent id, [`NODE_BROKER`] or
    /// [`NODE_BROADCAST`].
    pub node: u32,
    /// Virtual time the message was sent, ns.
    pub sent_ns: u64,
}

const _: () = assert!(std::mem::size_of::<Record>() == 40);

impl Record {
    /// Canonical little-endian layout, the input of the digest.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[0..8].copy_from_slice(&self.time_ns.to_le_bytes());
        b[8] = self.event as u8;
        b[9] = self.kind;
        b[10..12].copy_from_slice(&self.detail.to_le_bytes());
        b[12..16].copy_from_slice(&self.channel.to_le_bytes());
        b[16..24].copy_from_slice(&self.msg.to_le_bytes());
        b[24..28].copy_from_slice(&self.sender.to_le_bytes());
        b[28..32].copy_from_slice(&self.node.to_le_bytes());
        b[32..40].copy_from_slice(&self.sent_ns.to_le_bytes());
        b
    }
}

impl Record {
    /// The record whose canonical layout is `b` (the inverse of
    /// [`Record::to_bytes`]); `None` if the event code is unknown.
    pub fn from_bytes(b: &[u8; 40]) -> Option<Record> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Some(Record {
            time_ns: u64_at(0),
            event: EventKind::from_code(b[8])?,
            kind: b[9],
            detail: u16::from_le_bytes([b[10], b[11]]),
            channel: u32_at(12),
            msg: u64_at(16),
            sender: u32_at(24),
            node: u32_at(28),
            sent_ns: u64_at(32),
        })
    }
}

/// A record made from `i`, for the trace module's tests: every kept event
/// kind in turn, and a few details.
/// The kind of a fault, as a code in trace records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum FaultKind {
    /// [`crate::network::FaultSpec::LinkDown`].
    LinkDown = 1,
    /// [`crate::network::FaultSpec::Partition`].
    Partition = 2,
    /// [`crate::network::FaultSpec::Degrade`].
    Degrade = 3,
    /// [`crate::network::FaultSpec::Crash`].
    Crash = 4,
    /// [`crate::network::FaultSpec::BrokerDown`].
    BrokerDown = 5,
    /// [`crate::network::FaultSpec::Flap`] (one link's failure).
    Flap = 6,
}

impl FaultKind {
    /// Every kind, in code order.
    pub const ALL: [FaultKind; 6] = [
        FaultKind::LinkDown,
        FaultKind::Partition,
        FaultKind::Degrade,
        FaultKind::Crash,
        FaultKind::BrokerDown,
        FaultKind::Flap,
    ];

    /// The name used in scenarios and in the trace's `detail` column.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::LinkDown => "link_down",
            FaultKind::Partition => "partition",
            FaultKind::Degrade => "degrade",
            FaultKind::Crash => "crash",
            FaultKind::BrokerDown => "broker_down",
            FaultKind::Flap => "flap",
        }
    }

    /// The kind for a code.
    pub fn from_code(c: u8) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| *k as u8 == c)
    }

    /// The `detail` of a `fault` trace record: the kind's code times two,
    /// plus one for a start.
    pub fn detail(self, start: bool) -> u16 {
        u16::from(self as u8) * 2 + u16::from(start)
    }

    /// The `detail` column of a `fault` record in the CSV export:
    /// `"{kind} start"` or `"{kind} end"`.
    pub fn label(self, start: bool) -> &'static str {
        match (self, start) {
            (FaultKind::LinkDown, true) => "link_down start",
            (FaultKind::LinkDown, false) => "link_down end",
            (FaultKind::Partition, true) => "partition start",
            (FaultKind::Partition, false) => "partition end",
            (FaultKind::Degrade, true) => "degrade start",
            (FaultKind::Degrade, false) => "degrade end",
            (FaultKind::Crash, true) => "crash start",
            (FaultKind::Crash, false) => "crash end",
            (FaultKind::BrokerDown, true) => "broker_down start",
            (FaultKind::BrokerDown, false) => "broker_down end",
            (FaultKind::Flap, true) => "flap start",
            (FaultKind::Flap, false) => "flap end",
        }
    }

    /// The kind and start flag of a `fault` record's `detail`.
    pub fn from_detail(detail: u16) -> Option<(FaultKind, bool)> {
        let code = u8::try_from(detail / 2).ok()?;
        Some((FaultKind::from_code(code)?, detail % 2 == 1))
    }
}

#[cfg(test)]
pub(crate) fn sample_record(i: u64) -> Record {
    Record {
        time_ns: i * 10,
        event: EventKind::ALL[(i % 6) as usize],
        msg: i,
        channel: 1,
        sender: 2,
        node: NODE_BROKER,
        kind: 3,
        detail: (i % 3) as u16,
        sent_ns: i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::Digester;

    use sample_record as rec;

    #[test]
    fn canonical_bytes_round_trip_and_reject_unknown_events() {
        for i in 0..50 {
            let r = Record {
                detail: i as u16 * 7,
                ..rec(i * 0x0101_0101_0101)
            };
            assert_eq!(Record::from_bytes(&r.to_bytes()), Some(r));
        }
        for code in 0..=255u8 {
            let mut b = rec(1).to_bytes();
            b[8] = code;
            let kept = EventKind::ALL.iter().any(|e| *e as u8 == code);
            assert_eq!(Record::from_bytes(&b).is_some(), kept, "code {code}");
        }
    }

    #[test]
    fn the_canonical_layout_is_pinned() {
        // The digest hashes exactly these bytes: they must never change.
        let r = Record {
            time_ns: 0x0102_0304_0506_0708,
            event: EventKind::Drop,
            msg: 0x1112_1314_1516_1718,
            channel: 0x2122_2324,
            sender: 0x3132_3334,
            node: 0x4142_4344,
            kind: 0x51,
            detail: 0x6162,
            sent_ns: 0x7172_7374_7576_7778,
        };
        let want: [u8; 40] = [
            0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // time_ns
            3, 0x51, 0x62, 0x61, // event, kind, detail
            0x24, 0x23, 0x22, 0x21, // channel
            0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, // msg
            0x34, 0x33, 0x32, 0x31, // sender
            0x44, 0x43, 0x42, 0x41, // node
            0x78, 0x77, 0x76, 0x75, 0x74, 0x73, 0x72, 0x71, // sent_ns
        ];
        assert_eq!(r.to_bytes(), want);
    }

    #[test]
    fn event_and_reason_codes_are_exactly_the_kept_ones() {
        let events: Vec<(u8, &str)> = EventKind::ALL
            .iter()
            .map(|e| (*e as u8, e.name()))
            .collect();
        assert_eq!(
            events,
            [
                (0, "publish"),
                (1, "route"),
                (2, "deliver"),
                (3, "drop"),
                (4, "duplicate"),
                (5, "expire"),
                (6, "ack"),
                (7, "retransmit"),
                (8, "dead_letter"),
                (9, "timer"),
                (10, "fault"),
                (11, "late"),
                (12, "forward"),
                (13, "retained"),
                (14, "enqueue"),
                (15, "session")
            ]
        );
        for c in 0..=255u8 {
            let found = EventKind::from_code(c);
            assert_eq!(
                found,
                EventKind::ALL.iter().copied().find(|e| *e as u8 == c)
            );
        }
        let reasons: Vec<(u16, &str)> = Reason::ALL.iter().map(|r| (*r as u16, r.name())).collect();
        assert_eq!(
            reasons,
            [
                (1, "loss"),
                (2, "partition"),
                (4, "overflow"),
                (5, "offline"),
                (6, "no_subscriber"),
                (7, "corrupt"),
                (8, "link_down"),
                (9, "crashed"),
                (10, "broker_down"),
                (11, "duplicate")
            ]
        );
        for c in 0..=u16::MAX {
            let found = Reason::from_code(c);
            assert_eq!(found, Reason::ALL.iter().copied().find(|r| *r as u16 == c));
        }
    }

    #[test]
    fn memory_layout_is_the_canonical_layout_on_little_endian() {
        let records: Vec<Record> = (0..50u64)
            .map(|i| Record {
                detail: (i as u16).wrapping_mul(7919),
                channel: (i as u32).wrapping_mul(0x0102_0304),
                sender: u32::MAX - i as u32,
                node: i as u32 * 3,
                kind: i as u8,
                sent_ns: i.wrapping_mul(0x0101_0101_0101_0101),
                ..rec(i * 0x0102_0304_0506)
            })
            .collect();
        let canonical: Vec<u8> = records.iter().flat_map(|r| r.to_bytes()).collect();
        if cfg!(target_endian = "little") {
            assert_eq!(bytemuck::cast_slice::<Record, u8>(&records), &canonical[..]);
        }
        let mut fast = Digester::default();
        fast.update(&records);
        let mut slow = Digester::default();
        slow.update_bytes(&canonical);
        assert_eq!(fast.digest(), slow.digest());
    }
}
