//! One message's life, read from a trace ([`message_lives`]), and the two
//! facts about a record that need more than the record: the grid step a
//! message belongs to ([`grid_step`]) and which deadline a `late` record
//! missed and by how much ([`Lateness`]).
//!
//! The records are streamed once, batch by batch; only the records of the
//! messages asked for are kept (at most [`MAX_EVENTS`] per message), so a
//! large trace costs its reading time and no more memory than that.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek};

use serde::Serialize;

use crate::time::SimDuration;
use crate::trace::KeptPayload;
use crate::trace::export::Names;
use crate::trace::{
    DETAIL_ACK, DETAIL_CONTROL, DETAIL_CONTROL_ACK, DETAIL_PUBACK, Deadline, EventKind, Header,
    NODE_BROKER, Record, SessionOp, TraceError, TraceReader,
};

/// Most records kept per message; the rest are counted, not kept.
pub const MAX_EVENTS: usize = 100_000;

/// `[grid] step` when a scenario does not set it (the grid's default is
/// this constant, so a trace's reader and the engine agree).
pub const DEFAULT_GRID_STEP: SimDuration = SimDuration::from_secs(1);

/// The grid step of the trace's scenario: `[grid] step` (or its default)
/// when the scenario has `[[microgrid]]`s, i.e. when the grid environment
/// ran; `None` otherwise, or if the scenario text does not parse.
///
/// The environment starts step `k` at `k · step` of virtual time (no
/// offset: `start_hour` only shifts the profiles), so the step a message
/// belongs to is `floor(sent_ns / step_ns)` ([`step_of`]).
pub fn grid_step(header: &Header) -> Option<SimDuration> {
    grid_timing(header).map(|(step, _)| step)
}

/// The grid's `(step, deadline)` of the trace's scenario (the deadline
/// `[grid] deadline`, by default the end of the step), under the same
/// conditions as [`grid_step`].
pub fn grid_timing(header: &Header) -> Option<(SimDuration, SimDuration)> {
    // Only these keys are read: a `toml::Table` of the whole text would
    // refuse an integer above i64::MAX, which a scenario may hold
    // (`[limits] max_trace_records = 18446744073709551615`).
    #[derive(serde::Deserialize)]
    struct View {
        #[serde(default)]
        grid: Option<GridKeys>,
        #[serde(default)]
        microgrid: Vec<serde::de::IgnoredAny>,
    }
    #[derive(serde::Deserialize)]
    struct GridKeys {
        step: Option<SimDuration>,
        deadline: Option<SimDuration>,
    }
    let view: View = toml::from_str(&header.scenario).ok()?;
    if view.microgrid.is_empty() {
        return None;
    }
    let keys = view.grid.unwrap_or(GridKeys {
        step: None,
        deadline: None,
    });
    let step = keys.step.unwrap_or(DEFAULT_GRID_STEP);
    (step.as_nanos() > 0).then_some((step, keys.deadline.unwrap_or(step)))
}

/// The step of a message sent at `sent_ns`: `floor(sent_ns / step)`.
pub fn step_of(sent_ns: u64, step: SimDuration) -> u64 {
    sent_ns / step.as_nanos().max(1)
}

/// Whether a record's `msg` is a message id (so it has a step and an
/// age): not a timer (its tag), a fault (its index in `[[fault]]`) or a
/// session registry event (`keepalive_timeout`, `session_expired`: the
/// agent's index). Session records of a control packet or of a copy
/// queued or resumed in a session are about that message.
pub fn is_message_record(r: &Record) -> bool {
    match r.event {
        EventKind::Timer | EventKind::Fault => false,
        EventKind::Session => !matches!(
            SessionOp::from_code((r.detail & 0xff) as u8),
            Some(SessionOp::KeepaliveTimeout | SessionOp::SessionExpired) | None
        ),
        _ => true,
    }
}

/// The step of a record's message, if the run had a grid step and the
/// record carries a message.
pub fn record_step(r: &Record, step: Option<SimDuration>) -> Option<u64> {
    step.filter(|_| is_message_record(r))
        .map(|s| step_of(r.sent_ns, s))
}

/// Which deadline a `late` record missed, and by how much.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lateness {
    /// The deadline's name (`grid.step_deadline`, `sink.deadline`).
    pub deadline: String,
    /// Its limit, ns: from the send time, or with a period from the start
    /// of the message's step (`step · period`).
    pub limit_ns: u64,
    /// Its period, ns (0: the limit counts from the send time).
    pub period_ns: u64,
    /// With a period: the step the message belonged to, as the agent that
    /// marked it numbered it (the grid: the step in the state update's
    /// payload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_step: Option<u64>,
    /// How late: time − due, ns, where due is sent + limit, or with a
    /// period `step · period + limit`. Negative only when the agent judged
    /// by its own clock (a `[[clock]]`), which the trace's true times
    /// ignore.
    pub late_by_ns: i64,
}

impl Lateness {
    /// The deadline a `late` record names (its `detail` − 1 in the footer's
    /// deadline table), or `None` for another record, a `late` of an
    /// unnamed deadline, or an index the table does not hold.
    pub fn of(r: &Record, deadlines: &[Deadline]) -> Option<Lateness> {
        if r.event != EventKind::Late || r.detail == 0 {
            return None;
        }
        let d = deadlines.get(usize::from(r.detail) - 1)?;
        let by = i128::from(r.time_ns) - i128::from(d.due_ns(r.sent_ns));
        Some(Lateness {
            deadline: d.name.clone(),
            limit_ns: d.limit_ns,
            period_ns: d.period_ns,
            deadline_step: (d.period_ns > 0).then_some(d.step),
            late_by_ns: i64::try_from(by).unwrap_or(i64::MAX),
        })
    }
}

impl fmt::Display for Lateness {
    /// `deadline grid.step_deadline 800ms, late by 12.3ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = SimDuration(self.late_by_ns.unsigned_abs()).decimal();
        let sign = if self.late_by_ns < 0 { "-" } else { "" };
        write!(
            f,
            "deadline {} {}, late by {sign}{by}",
            self.deadline,
            SimDuration(self.limit_ns)
        )
    }
}

/// The `detail` text of a record with its deadline resolved: a named
/// `late` reads `deadline NAME LIMIT, late by X`; any other record its
/// [`export::detail`](crate::trace::export::detail).
pub fn detail_text(r: &Record, deadlines: &[Deadline]) -> Cow<'static, str> {
    match Lateness::of(r, deadlines) {
        Some(l) => Cow::Owned(l.to_string()),
        None => crate::trace::export::detail(r),
    }
}

/// One record of a message's life.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LifeEvent {
    /// Position in the trace, from 0 (the `seq` of the export).
    pub seq: u64,
    /// Virtual time, ns.
    pub time_ns: u64,
    /// Event name (the export's `event`).
    pub event: &'static str,
    /// Where: agent, router, `broker` or `*`.
    pub node: String,
    /// Age of the message then: time − sent, ns.
    pub age_ns: u64,
    /// The export's `detail` (a drop's reason, `ack`, `attempt N`, a late
    /// record's deadline...).
    pub detail: String,
    /// A `late` record's deadline and lateness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late: Option<Lateness>,
}

/// What became of a message's copies by the end of the trace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LifeSummary {
    /// Copies delivered to an agent.
    pub delivered: u64,
    /// Copies dropped (the message, its copies and its retransmissions;
    /// not its acks).
    pub dropped: u64,
    /// Acks of it dropped.
    pub acks_dropped: u64,
    /// Copies made by links (`duplicate`).
    pub duplicated: u64,
    /// Retransmissions.
    pub retransmitted: u64,
    /// Expiries (TTL, or a request's timeout).
    pub expired: u64,
    /// Copies put in a dead-letter queue.
    pub dead_lettered: u64,
    /// Late marks.
    pub late: u64,
    /// 1 if the message was still on its way to the broker when the trace
    /// ended (published or retransmitted, not routed, no fate since), else
    /// 0. The trace does not list the copies the broker makes until each
    /// arrives or is dropped, so copies still on their way from the broker
    /// at the end cannot be told from it (the run summary's
    /// `in_flight_downlink` counts them).
    pub in_flight: u64,
}

/// A message's whole life, in trace order (which is virtual-time order).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MessageLife {
    /// The message id.
    pub msg: u64,
    /// Whether the trace holds any record of it (the rest is empty if not).
    pub found: bool,
    /// Its channel.
    pub channel: String,
    /// Its sender.
    pub sender: String,
    /// Its recipient as published: an agent or `*`.
    pub recipient: String,
    /// Its kind.
    pub kind: String,
    /// When it was sent, ns.
    pub sent_ns: u64,
    /// Its grid step, `floor(sent_ns / step)`, if the run had a grid.
    pub step: Option<u64>,
    /// Its records.
    pub events: Vec<LifeEvent>,
    /// Records beyond [`MAX_EVENTS`], counted only.
    pub events_omitted: u64,
    /// What became of it.
    pub summary: LifeSummary,
    /// Its payload, if the trace keeps payloads (JSON: as
    /// [`payload_json`](crate::trace::export::payload_json) writes it;
    /// absent otherwise).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_payload"
    )]
    pub payload: Option<KeptPayload>,
}

fn serialize_payload<S: serde::Serializer>(
    p: &Option<KeptPayload>,
    s: S,
) -> Result<S::Ok, S::Error> {
    p.as_ref()
        .map(crate::trace::export::payload_json)
        .serialize(s)
}

/// Per message: its life so far, and whether it is on its way to the
/// broker.
struct Tracker {
    life: MessageLife,
    routed: bool,
    uplink_open: bool,
}

impl Tracker {
    fn new(msg: u64) -> Tracker {
        Tracker {
            life: MessageLife {
                msg,
                found: false,
                channel: String::new(),
                sender: String::new(),
                recipient: String::new(),
                kind: String::new(),
                sent_ns: 0,
                step: None,
                events: Vec::new(),
                events_omitted: 0,
                summary: LifeSummary::default(),
                payload: None,
            },
            routed: false,
            uplink_open: false,
        }
    }

    fn add(&mut self, seq: u64, r: &Record, names: &Names<'_>, ctx: &Extra<'_>) {
        let row = names.row(seq, r);
        let life = &mut self.life;
        if !life.found || r.event == EventKind::Publish {
            life.found = true;
            life.channel = row.channel.to_string();
            life.sender = row.sender.to_string();
            life.kind = row.kind.to_string();
            life.sent_ns = r.sent_ns;
            life.step = ctx.step.map(|s| step_of(r.sent_ns, s));
        }
        let late = Lateness::of(r, ctx.deadlines);
        let s = &mut life.summary;
        let ack = matches!(
            r.detail & 0xff00,
            DETAIL_ACK | DETAIL_PUBACK | DETAIL_CONTROL | DETAIL_CONTROL_ACK
        );
        // Before the route, a fate is the publish's own.
        let fate = |count: &mut u64, uplink_open: &mut bool| {
            *count += 1;
            if !self.routed {
                *uplink_open = false;
            }
        };
        match r.event {
            EventKind::Publish => {
                self.uplink_open = true;
                life.recipient = row.recipient.to_string();
            }
            EventKind::Route => {
                self.routed = true;
                self.uplink_open = false;
            }
            EventKind::Deliver => s.delivered += 1,
            EventKind::Drop if ack => s.acks_dropped += 1,
            EventKind::Drop => fate(&mut s.dropped, &mut self.uplink_open),
            EventKind::Duplicate if !ack => s.duplicated += 1,
            EventKind::Retransmit => {
                s.retransmitted += 1;
                if r.node == NODE_BROKER && !self.routed {
                    self.uplink_open = true;
                }
            }
            EventKind::Expire => fate(&mut s.expired, &mut self.uplink_open),
            EventKind::DeadLetter => fate(&mut s.dead_lettered, &mut self.uplink_open),
            EventKind::Late => s.late += 1,
            _ => {}
        }
        if life.events.len() < MAX_EVENTS {
            life.events.push(LifeEvent {
                seq,
                time_ns: r.time_ns,
                event: r.event.name(),
                node: row.recipient.to_string(),
                age_ns: r.time_ns.saturating_sub(r.sent_ns),
                detail: match &late {
                    Some(l) => l.to_string(),
                    None => row.detail.into_owned(),
                },
                late,
            });
        } else {
            life.events_omitted += 1;
        }
    }

    fn finish(mut self) -> MessageLife {
        self.life.summary.in_flight = u64::from(self.uplink_open);
        self.life
    }
}

/// What resolving a record needs beyond [`Names`].
struct Extra<'a> {
    step: Option<SimDuration>,
    deadlines: &'a [Deadline],
}

/// The lives of the messages `ids` (in the order given; a repeated id is
/// given once), read in one pass over the trace. A message the trace holds
/// no record of has `found == false`. Records whose `msg` is not a message
/// id ([`is_message_record`]: timers, faults, session registry events)
/// never match. The records are checked against the footer's digest as
/// they stream: a mismatch is an error.
pub fn message_lives<R: Read + Seek>(
    reader: &mut TraceReader<R>,
    ids: &[u64],
) -> Result<Vec<MessageLife>, TraceError> {
    let footer = reader.footer().clone();
    let names = crate::trace::window::footer_names(&footer, reader.header().env);
    let extra = Extra {
        step: grid_step(reader.header()),
        deadlines: &footer.deadlines,
    };
    let mut wanted: Vec<u64> = Vec::new();
    for id in ids {
        if !wanted.contains(id) {
            wanted.push(*id);
        }
    }
    let mut trackers: BTreeMap<u64, Tracker> =
        wanted.iter().map(|id| (*id, Tracker::new(*id))).collect();
    let (lo, hi) = (
        wanted.iter().copied().min().unwrap_or(0),
        wanted.iter().copied().max().unwrap_or(0),
    );
    let mut seq = 0u64;
    let mut cursor = reader.cursor();
    while let Some((batch, kept)) = cursor.next_batch_with_payloads()? {
        for r in batch {
            if (lo..=hi).contains(&r.msg)
                && is_message_record(r)
                && let Some(t) = trackers.get_mut(&r.msg)
            {
                t.add(seq, r, &names, &extra);
                if let Some(k) = crate::trace::export::published_payload(r, kept) {
                    t.life.payload = Some(k.clone());
                }
            }
            seq += 1;
        }
    }
    Ok(wanted
        .iter()
        .map(|id| trackers.remove(id).expect("one tracker per id").finish())
        .collect())
}
