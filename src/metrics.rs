//! Run metrics: counters, end-to-end latency percentiles, lateness and age of
//! information, and the [`Summary`] printed by `busbar run`.
//!
//! Histograms are HDR histograms with 3 significant digits over 1 ns to
//! ~3 hours; recording is a constant-time bucket increment with no allocation.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::trace::{Digest, Reason};

pub mod entity;

pub use entity::EntityMetrics;

const HIST_MAX_NS: u64 = 10_000_000_000_000;

/// An empty histogram of nanoseconds as every metric of busbar keeps them:
/// 3 significant digits, 1 ns to about 2.8 hours.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, 3).expect("static histogram bounds are valid")
}

/// Counters and histograms of one run.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Messages published by agents.
    pub published: u64,
    /// Messages that reached the broker.
    pub routed: u64,
    /// Copies the broker made of the messages it routed (one per matching
    /// subscriber), each sent down a downlink.
    pub copies: u64,
    /// Copies of retained messages the broker sent to agents that
    /// subscribed after the message was routed (the `retained` trace
    /// events; not in `copies`).
    pub retained_copies: u64,
    /// Extra copies made by links that duplicate (the `duplicate` trace
    /// events).
    pub duplicated: u64,
    /// Of those, extra copies made on the way to the broker (each is routed
    /// like a message of its own).
    pub duplicated_uplink: u64,
    /// Message copies that reached their recipient.
    pub delivered: u64,
    /// Dropped copies, indexed by `Reason as usize`.
    pub dropped: [u64; 16],
    /// Messages lost on their uplink (included in `dropped` as `loss`).
    pub dropped_uplink: u64,
    /// Messages their receiver found late for its deadline.
    pub late: u64,
    /// Copies discarded from pull buffers by `clear` / `clear_channels`
    /// (after their delivery).
    pub cleared: u64,
    /// Timers that fired.
    pub timers: u64,
    /// Events processed by the loop.
    pub events: u64,
    /// End-to-end latency (publish → deliver), ns.
    pub latency: Histogram<u64>,
    /// Age of information at the moment of use, ns (reported by agents).
    pub age: Histogram<u64>,
    /// Request round trips (request sent → reply delivered in time), ns.
    pub request_rtt: Histogram<u64>,
    /// Acknowledgements, retransmissions, expiry and dead letters.
    pub qos: QosMetrics,
    /// Pull-buffer copies evicted by a newer one (`buffer_overflow =
    /// "drop_oldest"`): each was counted `delivered` when it entered the
    /// buffer, and is counted again in `dropped` (`overflow`) when evicted.
    pub evicted: u64,
    /// The broker server's figures, with a server model only
    /// (`docs/broker_server.md`).
    pub server: Option<Box<ServerMetrics>>,
    /// Network sessions' figures, with `[broker.sessions]` only
    /// (`docs/broker_sessions.md`).
    pub sessions: Option<Box<SessionMetrics>>,
}

/// The counters of network sessions (`[broker.sessions]`). Control packets
/// are not messages: none of them is in `published`, `copies`, `dropped`
/// or the QoS ack counters. Identities (`docs/summary.md`):
/// `control_sent + acks_sent + control_duplicated = control_arrived +
/// acks_arrived + control_lost + acks_lost + control_in_flight`, and
/// `queued = resumed + expired_drops + held`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionMetrics {
    /// Control packets agents sent (CONNECT, SUBSCRIBE, UNSUBSCRIBE,
    /// PINGREQ), resends included.
    pub control_sent: u64,
    /// Of those, resends of a packet not acknowledged within a keepalive.
    pub control_resent: u64,
    /// Extra control packets or acks made by links that duplicate.
    pub control_duplicated: u64,
    /// Control packets that reached the broker (intact, broker up).
    pub control_arrived: u64,
    /// Control packets lost on the way to the broker (any reason).
    pub control_lost: u64,
    /// Acks (CONNACK, SUBACK, UNSUBACK) the broker sent.
    pub acks_sent: u64,
    /// Acks that reached their agent.
    pub acks_arrived: u64,
    /// Acks lost on the way.
    pub acks_lost: u64,
    /// CONNECTs that took effect at the broker.
    pub connects: u64,
    /// Agents online now (gauge: connected and not timed out).
    pub online: u64,
    /// Times the broker declared an agent offline (1.5 × keepalive silent).
    pub keepalive_timeouts: u64,
    /// Persistent sessions that expired while their agent was offline.
    pub sessions_expired: u64,
    /// Copies kept in the session of an offline agent.
    pub queued: u64,
    /// Kept copies sent when their agent came back online.
    pub resumed: u64,
    /// Kept copies dropped (`offline`) when their session expired.
    pub expired_drops: u64,
    /// Copies dropped (`overflow`) because the offline agent's session was
    /// full (also in `dropped_by_reason.overflow`).
    pub overflow_drops: u64,
}

/// The session part of a [`Summary`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SessionSummary {
    /// The counters.
    #[serde(flatten)]
    pub counts: SessionMetrics,
    /// Copies kept in sessions when the run ended (counted in
    /// `in_flight_downlink`).
    pub held: u64,
    /// Control packets and their acks still on the network.
    pub control_in_flight: u64,
}

/// The figures of the broker's server model. Time-weighted figures are
/// areas in integer ns, integrated exactly at every change (so they do not
/// depend on how events are grouped); [`ServerMetrics::advance`] brings them
/// up to a time.
#[derive(Clone, Debug)]
pub struct ServerMetrics {
    /// Parallel workers.
    pub workers: u32,
    /// Messages accepted by the server (arrived at a broker that was up,
    /// over a link that was up, uncorrupted).
    pub arrived: u64,
    /// Messages whose service ended (each then routed).
    pub served: u64,
    /// Messages dropped at the broker because its queue was full
    /// (`reject_new`: the arrival; `drop_oldest`: the oldest waiting).
    pub overflow: u64,
    /// Messages the broker held (waiting, in service or blocked) when a
    /// `broker_down` outage began: dropped with reason `broker_down`.
    pub outage: u64,
    /// Messages that found the queue full under `block` and waited in the
    /// holding line.
    pub blocked: u64,
    /// Messages waiting in the queue now.
    pub queue_len: u64,
    /// The longest the queue has been.
    pub queue_max: u64,
    /// Messages in service now (busy workers).
    pub busy: u64,
    /// Messages in the holding line now (blocked).
    pub held: u64,
    /// The longest the holding line has been.
    pub held_max: u64,
    /// ∫ queue length dt, message·ns, up to `last_ns`.
    pub queue_area: u128,
    /// ∫ busy workers dt, worker·ns, up to `last_ns`.
    pub busy_area: u128,
    /// ∫ holding-line length dt, message·ns, up to `last_ns`: the total
    /// time messages spent blocked.
    pub held_area: u128,
    /// The time the areas are integrated to, ns.
    pub last_ns: u64,
    /// Time from arrival at the broker to the start of service, ns, of
    /// every message that entered service (0 when a worker was free;
    /// blocked time included).
    pub wait: Histogram<u64>,
    /// The same waits by channel priority (index = priority, up to the
    /// highest priority seen).
    pub wait_by_priority: Vec<Histogram<u64>>,
}

impl ServerMetrics {
    /// Figures of a server with `workers` workers, at time 0.
    pub fn new(workers: u32) -> ServerMetrics {
        ServerMetrics {
            workers,
            arrived: 0,
            served: 0,
            overflow: 0,
            outage: 0,
            blocked: 0,
            queue_len: 0,
            queue_max: 0,
            busy: 0,
            held: 0,
            held_max: 0,
            queue_area: 0,
            busy_area: 0,
            held_area: 0,
            last_ns: 0,
            wait: histogram(),
            wait_by_priority: Vec::new(),
        }
    }

    /// Records the wait of a message of `priority` that entered service.
    #[inline]
    pub fn record_wait(&mut self, priority: u8, ns: u64) {
        self.wait.saturating_record(ns);
        let p = usize::from(priority);
        if self.wait_by_priority.len() <= p {
            self.wait_by_priority.resize_with(p + 1, histogram);
        }
        self.wait_by_priority[p].saturating_record(ns);
    }

    /// Integrates the areas up to `now_ns` (call before any change of the
    /// queue, busy or held counts).
    #[inline]
    pub fn advance(&mut self, now_ns: u64) {
        let dt = u128::from(now_ns.saturating_sub(self.last_ns));
        if dt > 0 {
            self.queue_area += u128::from(self.queue_len) * dt;
            self.busy_area += u128::from(self.busy) * dt;
            self.held_area += u128::from(self.held) * dt;
            self.last_ns = now_ns;
        }
    }

    /// Messages the broker holds now: waiting, in service or blocked.
    pub fn at_broker(&self) -> u64 {
        self.queue_len + self.busy + self.held
    }
}

/// The broker server's figures in a [`Summary`] (see
/// `docs/broker_server.md` and `docs/summary.md`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerSummary {
    /// Parallel workers.
    pub workers: u32,
    /// Messages the server accepted.
    pub arrived: u64,
    /// Messages whose service ended (and were routed).
    pub served: u64,
    /// Messages dropped at the broker because its queue was full.
    pub overflow_drops: u64,
    /// Messages held by the broker that a `broker_down` outage lost.
    pub outage_drops: u64,
    /// Messages waiting in the queue when the run ended.
    pub queued: u64,
    /// Messages in service when the run ended.
    pub in_service: u64,
    /// Messages in the holding line when the run ended.
    pub held: u64,
    /// Time-weighted mean queue length over the run (messages waiting, not
    /// in service): ∫ length dt / `sim_time_ns`.
    pub queue_length_mean: f64,
    /// Longest queue, messages.
    pub queue_length_max: u64,
    /// Busy worker-time, ns (∫ busy workers dt).
    pub busy_ns: u64,
    /// `busy_ns / (workers × sim_time_ns)`, 0 to 1.
    pub utilisation: f64,
    /// Time from arrival at the broker to the start of service, of every
    /// message that entered service.
    pub wait: Percentiles,
    /// Messages that found the queue full under `block` (backpressure).
    pub blocked: u64,
    /// Total time messages spent blocked, ns (∫ holding-line length dt).
    pub blocked_ns: u64,
    /// Longest holding line, messages.
    pub held_max: u64,
    /// The waits by channel priority, highest first, when more than one
    /// priority level entered service (empty otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wait_by_priority: Vec<PriorityWait>,
}

/// The broker's queueing wait of the messages of one channel priority.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PriorityWait {
    /// The channel priority (0 to 9).
    pub priority: u8,
    /// Messages of this priority that entered service.
    pub served: u64,
    /// Their time from arrival at the broker to the start of service.
    pub wait: Percentiles,
}

impl ServerSummary {
    /// The summary of a server's figures at the end of a run at `end_ns`.
    pub fn of(m: &ServerMetrics, end_ns: u64) -> ServerSummary {
        let mut m = m.clone();
        m.advance(end_ns);
        let per = |area: u128, n: u64| {
            let d = u128::from(end_ns) * u128::from(n);
            if d == 0 { 0.0 } else { area as f64 / d as f64 }
        };
        ServerSummary {
            workers: m.workers,
            arrived: m.arrived,
            served: m.served,
            overflow_drops: m.overflow,
            outage_drops: m.outage,
            queued: m.queue_len,
            in_service: m.busy,
            held: m.held,
            queue_length_mean: per(m.queue_area, 1),
            queue_length_max: m.queue_max,
            busy_ns: u64::try_from(m.busy_area).unwrap_or(u64::MAX),
            utilisation: per(m.busy_area, u64::from(m.workers)),
            wait: Percentiles::of(&m.wait),
            blocked: m.blocked,
            blocked_ns: u64::try_from(m.held_area).unwrap_or(u64::MAX),
            held_max: m.held_max,
            wait_by_priority: by_priority(&m.wait_by_priority),
        }
    }
}

fn by_priority(levels: &[Histogram<u64>]) -> Vec<PriorityWait> {
    let used = levels.iter().filter(|h| !h.is_empty()).count();
    if used < 2 {
        return Vec::new();
    }
    (0..levels.len())
        .rev()
        .filter(|&p| !levels[p].is_empty())
        .map(|p| PriorityWait {
            priority: p as u8,
            served: levels[p].len(),
            wait: Percentiles::of(&levels[p]),
        })
        .collect()
}

/// What delivery guarantees did in a run (all zero when every channel is
/// `at_most_once` without TTL). `docs/summary.md` gives the identities
/// they satisfy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QosMetrics {
    /// Publishes sent again because the broker's ack did not come in time.
    pub retransmitted_uplink: u64,
    /// Copies the broker sent again because the subscriber's ack did not
    /// come in time.
    pub retransmitted_downlink: u64,
    /// Messages that reached the broker older than their channel's TTL
    /// (not routed).
    pub expired_uplink: u64,
    /// Acks sent: by subscribers for each intact copy of an acknowledged
    /// channel, and by the broker for each publish of an acknowledged
    /// publish.
    pub acks_sent: u64,
    /// Extra acks made by links that duplicate.
    pub acks_duplicated: u64,
    /// Acks that reached the broker or the publisher.
    pub acks_received: u64,
    /// Acks lost on the way (any reason).
    pub acks_dropped: u64,
    /// Deliveries the broker tracked (one per subscriber and message on an
    /// acknowledged channel).
    pub tracked_deliveries: u64,
    /// Of those, acknowledged.
    pub acked_deliveries: u64,
    /// Expired before acknowledged.
    pub expired_deliveries: u64,
    /// Given up on after `max_retries` (dead-lettered).
    pub dead_lettered_deliveries: u64,
    /// Publishes tracked by their publishers (publish QoS ≥ 1).
    pub tracked_publishes: u64,
    /// Of those, acknowledged by the broker.
    pub acked_publishes: u64,
    /// Expired before acknowledged.
    pub expired_publishes: u64,
    /// Given up on after `max_retries` (dead-lettered).
    pub dead_lettered_publishes: u64,
    /// Intact copies a receiver had already received (at-least-once: the
    /// handler saw the message again).
    pub duplicates_seen: u64,
    /// Intact copies a receiver had already received and discarded
    /// (exactly-once: the handler never saw them).
    pub duplicates_suppressed: u64,
    /// Messages put in a dead-letter queue (retries exhausted, or expired
    /// on a channel with `dead_letter_expired`).
    pub dead_lettered: u64,
    /// Dead letters pushed out of a full queue (`dead_letter_capacity`).
    pub dead_letters_discarded: u64,
    /// Requests sent (`Context::request`).
    pub requests: u64,
    /// Requests whose reply reached the requester before the timeout.
    pub requests_answered: u64,
    /// Requests that timed out (the `timeout` trace events).
    pub requests_timed_out: u64,
    /// Replies that reached their requester after its request timed out.
    pub replies_late: u64,
    /// Replies delivered to an agent that was not waiting for them (not
    /// its request, or answered already: a duplicate reply).
    pub replies_unmatched: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            published: 0,
            routed: 0,
            copies: 0,
            retained_copies: 0,
            delivered: 0,
            dropped: [0; 16],
            duplicated: 0,
            duplicated_uplink: 0,
            dropped_uplink: 0,
            late: 0,
            cleared: 0,
            timers: 0,
            events: 0,
            latency: histogram(),
            age: histogram(),
            request_rtt: histogram(),
            qos: QosMetrics::default(),
            evicted: 0,
            server: None,
            sessions: None,
        }
    }
}

impl Metrics {
    /// Counts one dropped copy.
    #[inline]
    pub fn drop(&mut self, reason: Reason) {
        self.dropped[reason as usize] += 1;
    }

    /// Total dropped copies, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Dropped copies by reason name (only reasons that occurred).
    pub fn dropped_by_reason(&self) -> BTreeMap<String, u64> {
        Reason::ALL
            .iter()
            .filter(|r| self.dropped[**r as usize] > 0)
            .map(|r| (r.name().to_string(), self.dropped[*r as usize]))
            .collect()
    }
}

/// Named figures that agents report at the end of a run
/// ([`crate::Agent::outcomes`]), such as the grid environment's deadline
/// misses. Names are sorted (so the columns of a batch CSV are stable);
/// a name reported by several agents combines as its first report says:
/// [`add`](Outcomes::add) sums, [`min`](Outcomes::min) and
/// [`max`](Outcomes::max) keep the extreme. A figure with no value is NaN
/// (`null` in JSON).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Outcomes(BTreeMap<String, f64>);

/// Equal when the same names hold bit-identical values (so a NaN equals
/// itself: two runs of the same seed compare equal).
impl PartialEq for Outcomes {
    fn eq(&self, other: &Outcomes) -> bool {
        self.0.len() == other.0.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|((a, x), (b, y))| a == b && x.to_bits() == y.to_bits())
    }
}

impl Outcomes {
    fn combine(&mut self, name: &str, v: f64, f: fn(f64, f64) -> f64) {
        match self.0.get_mut(name) {
            Some(old) => *old = f(*old, v),
            None => {
                self.0.insert(name.to_string(), v);
            }
        }
    }

    /// Adds `v` to `name` (a count or a total).
    pub fn add(&mut self, name: &str, v: f64) {
        self.combine(name, v, |a, b| a + b);
    }

    /// Keeps the smaller of `v` and what `name` holds (NaN is ignored).
    pub fn min(&mut self, name: &str, v: f64) {
        self.combine(name, v, f64::min);
    }

    /// Keeps the larger of `v` and what `name` holds (NaN is ignored).
    pub fn max(&mut self, name: &str, v: f64) {
        self.combine(name, v, f64::max);
    }

    /// The value of `name`, if reported.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// Every (name, value), sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// How many figures.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Percentiles of a histogram, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 95th percentile.
    pub p95_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
    /// Mean, rounded to whole ns.
    pub mean_ns: u64,
    /// The precision of the percentiles and the maximum: significant
    /// decimal digits of the HDR histogram (3: each is reported as the
    /// highest value of its bucket, at most 0.1 % above the exact sample).
    /// `count` is exact.
    pub significant_digits: u8,
}

impl Percentiles {
    /// Summarises a histogram (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles {
                significant_digits: h.sigfig(),
                ..Percentiles::default()
            };
        }
        Percentiles {
            significant_digits: h.sigfig(),
            count: h.len(),
            p50_ns: h.value_at_quantile(0.50),
            p95_ns: h.value_at_quantile(0.95),
            p99_ns: h.value_at_quantile(0.99),
            max_ns: h.max(),
            // The mean is a float computed inside hdrhistogram by + and /
            // only, so it is identical on every platform.
            mean_ns: libm::round(h.mean()) as u64,
        }
    }
}

/// Counters of one consumer group (docs/broker_groups.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounts {
    /// Messages routed to the group (each sent to one member).
    pub routed: u64,
    /// Retransmissions the broker sent to another member than the one
    /// that had the message (`retransmit` events with detail `redeliver`).
    pub redelivered: u64,
    /// The group's acknowledged deliveries that were acknowledged (by the
    /// member that had the message, or by one that had it before).
    pub acked: u64,
    /// Messages of the group not yet done: on an acknowledged channel,
    /// deliveries not yet acknowledged, expired or dead-lettered; on an
    /// unacknowledged channel, copies waiting in members' pull buffers.
    pub lag: u64,
    /// The largest `lag` ever.
    pub lag_max: u64,
}

/// The consumer groups' headline figures in a [`Summary`]: every group of
/// the run together (docs/summary.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupsSummary {
    /// Consumer groups created (a group is a name on a channel).
    pub groups: u64,
    /// Messages routed to a group, summed over groups.
    pub routed: u64,
    /// Redeliveries to another member, summed over groups.
    pub redelivered: u64,
    /// Acknowledged group deliveries, summed over groups.
    pub acked: u64,
    /// Lag at the end of the run, summed over groups.
    pub lag: u64,
    /// The largest lag any one group reached.
    pub lag_max: u64,
}

impl GroupsSummary {
    /// Adds one group's counters.
    pub fn add(&mut self, c: &GroupCounts) {
        self.groups += 1;
        self.routed += c.routed;
        self.redelivered += c.redelivered;
        self.acked += c.acked;
        self.lag += c.lag;
        self.lag_max = self.lag_max.max(c.lag_max);
    }
}

/// What a run reports: the `busbar run` summary and its `--json` form.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub name: String,
    /// The run's seed.
    pub seed: u64,
    /// Environment index.
    pub env: u32,
    /// Virtual time at the end of the run, ns.
    pub sim_time_ns: u64,
    /// Events processed.
    pub events: u64,
    /// Messages published.
    pub published: u64,
    /// Messages that reached the broker.
    pub routed: u64,
    /// Copies the broker made (one per matching subscriber of each routed
    /// message).
    pub copies: u64,
    /// Copies of retained messages the broker sent to late subscribers
    /// (not in `copies`).
    pub retained_copies: u64,
    /// Copies delivered to recipients.
    pub delivered: u64,
    /// Extra copies made by links that duplicate on the way to the broker
    /// (each is then routed like a message of its own).
    pub duplicated_uplink: u64,
    /// Extra copies made by links that duplicate on the way from the broker
    /// to a recipient.
    pub duplicated_downlink: u64,
    /// Copies dropped, all reasons.
    pub dropped: u64,
    /// Copies dropped, by reason.
    pub dropped_by_reason: BTreeMap<String, u64>,
    /// Messages lost on their uplink, before the broker.
    pub dropped_uplink: u64,
    /// Copies dropped after the broker made them (lost on a downlink, or
    /// refused by or evicted from a full pull buffer).
    pub dropped_downlink: u64,
    /// Pull-buffer copies evicted by newer ones (`buffer_overflow =
    /// "drop_oldest"`): counted in `delivered` when buffered and in
    /// `dropped_downlink` when evicted.
    pub evicted: u64,
    /// Messages the broker held when the run ended (waiting, in service or
    /// blocked; a server model only, else 0).
    pub at_broker: u64,
    /// Copies still on the network when the run ended.
    pub in_flight: u64,
    /// Of those, messages still on their uplink.
    pub in_flight_uplink: u64,
    /// And copies still on their downlink.
    pub in_flight_downlink: u64,
    /// Messages found late by their receivers.
    pub late: u64,
    /// Timers fired.
    pub timers: u64,
    /// End-to-end latency.
    pub latency: Percentiles,
    /// Age of information at use.
    pub age_of_information: Percentiles,
    /// Number of trace records.
    pub trace_records: u64,
    /// The run digest (hex): of the event stream and of the payloads
    /// published ([`Digest::of_run`]); equal digests mean equal runs.
    pub digest: String,
    /// Why the run stopped early (a limit), or `None` if it ran to its end.
    pub stopped: Option<String>,
    /// What the agents measured ([`crate::Agent::outcomes`]).
    pub outcomes: Outcomes,
    /// The broker server's figures, `None` (`null`) without a server model.
    pub broker_server: Option<ServerSummary>,
    /// Delivery guarantees: acks, retransmissions, expiry, dead letters.
    pub qos: QosSummary,
    /// Consumer groups (all zero without any).
    pub groups: GroupsSummary,
    /// Network sessions, `None` (`null`) without `[broker.sessions]`.
    pub sessions: Option<SessionSummary>,
}

/// The delivery-guarantee part of a [`Summary`]: the run's [`QosMetrics`]
/// and what was still open when it ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct QosSummary {
    /// The counters.
    #[serde(flatten)]
    pub counts: QosMetrics,
    /// Acks still on the network.
    pub acks_in_flight: u64,
    /// Tracked deliveries still waiting for their ack.
    pub unacked_deliveries: u64,
    /// Tracked publishes still waiting for the broker's ack.
    pub unacked_publishes: u64,
    /// Requests still waiting for their reply.
    pub requests_waiting: u64,
    /// Request round trips (sent → reply delivered in time).
    pub request_rtt: Percentiles,
}

impl Summary {
    /// Builds the summary of a finished run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        seed: u64,
        env: u32,
        sim_time_ns: u64,
        m: &Metrics,
        in_flight: u64,
        trace_records: u64,
        digest: Digest,
        stopped: Option<String>,
    ) -> Summary {
        let q = &m.qos;
        // Every message published (and every extra copy an uplink made) is
        // routed, dropped on its way to the broker or at it, held by the
        // broker, or still on its way; every copy made is delivered (an
        // evicted one delivered and then dropped), dropped or still on its
        // downlink.
        let at_broker = m.server.as_ref().map_or(0, |s| s.at_broker());
        let in_flight_uplink = (m.published + m.duplicated_uplink + q.retransmitted_uplink)
            .saturating_sub(m.routed + m.dropped_uplink + q.expired_uplink + at_broker);
        let no_subscriber = m.dropped[Reason::NoSubscriber as usize];
        Summary {
            name: name.to_string(),
            seed,
            env,
            sim_time_ns,
            events: m.events,
            published: m.published,
            routed: m.routed,
            copies: m.copies,
            retained_copies: m.retained_copies,
            delivered: m.delivered,
            duplicated_uplink: m.duplicated_uplink,
            duplicated_downlink: m.duplicated - m.duplicated_uplink,
            dropped: m.dropped_total(),
            dropped_by_reason: m.dropped_by_reason(),
            dropped_uplink: m.dropped_uplink,
            dropped_downlink: m
                .dropped_total()
                .saturating_sub(m.dropped_uplink + no_subscriber),
            in_flight,
            in_flight_uplink,
            in_flight_downlink: in_flight.saturating_sub(in_flight_uplink),
            late: m.late,
            timers: m.timers,
            latency: Percentiles::of(&m.latency),
            age_of_information: Percentiles::of(&m.age),
            trace_records,
            digest: digest.to_string(),
            stopped,
            outcomes: Outcomes::default(),
            qos: QosSummary {
                counts: q.clone(),
                request_rtt: Percentiles::of(&m.request_rtt),
                ..QosSummary::default()
            },
            evicted: m.evicted,
            at_broker,
            broker_server: m.server.as_ref().map(|s| ServerSummary::of(s, sim_time_ns)),
            groups: GroupsSummary::default(),
            sessions: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_samples() {
        let mut m = Metrics::default();
        for v in 1..=1000u64 {
            m.latency.saturating_record(v * 1000);
        }
        let p = Percentiles::of(&m.latency);
        assert_eq!(p.count, 1000);
        assert!((499_000..=501_000).contains(&p.p50_ns), "{p:?}");
        assert!((989_000..=991_000).contains(&p.p99_ns), "{p:?}");
        assert!(p.max_ns >= 1_000_000 && p.max_ns < 1_001_000);
        assert_eq!(p.significant_digits, 3);
        let empty = Percentiles::of(&histogram());
        assert_eq!(
            (empty.count, empty.p99_ns, empty.significant_digits),
            (0, 0, 3)
        );
    }

    #[test]
    fn percentiles_round_up_within_a_tenth_of_a_percent() {
        // docs/summary.md: an exact 2 000 000 ns is reported as 2 000 895.
        let mut m = Metrics::default();
        m.latency.saturating_record(2_000_000);
        let p = Percentiles::of(&m.latency);
        assert_eq!((p.p50_ns, p.max_ns, p.count), (2_000_895, 2_000_895, 1));
        for v in [1u64, 999, 123_456, 98_765_432_109] {
            let mut m = Metrics::default();
            m.latency.saturating_record(v);
            let got = Percentiles::of(&m.latency).p99_ns;
            assert!(got >= v && got - v <= v / 1000, "{v} -> {got}");
        }
    }

    #[test]
    fn server_areas_are_exact_whatever_the_grouping() {
        // Queue 2 on [0, 10), 3 on [10, 15), 0 after; busy 1 throughout.
        let steps = [(0, 2), (10, 3), (15, 0)];
        let mut once = ServerMetrics::new(1);
        let mut often = ServerMetrics::new(1);
        once.busy = 1;
        often.busy = 1;
        for (t, len) in steps {
            once.advance(t);
            once.queue_len = len;
            for u in (often.last_ns..=t).step_by(3) {
                often.advance(u);
            }
            often.advance(t);
            often.queue_len = len;
        }
        for m in [&once, &often] {
            let s = ServerSummary::of(m, 20);
            assert_eq!((m.queue_area, m.busy_area), (35, 15));
            assert_eq!(s.queue_length_mean, 35.0 / 20.0);
            assert_eq!((s.busy_ns, s.utilisation), (20, 1.0));
        }
        let two = ServerMetrics {
            busy: 1,
            ..ServerMetrics::new(2)
        };
        assert_eq!(ServerSummary::of(&two, 8).utilisation, 0.5);
        assert_eq!(ServerSummary::of(&two, 0).utilisation, 0.0);
    }

    #[test]
    fn drops_by_reason() {
        let mut m = Metrics::default();
        m.drop(Reason::Loss);
        m.drop(Reason::Loss);
        m.drop(Reason::NoSubscriber);
        assert_eq!(m.dropped_total(), 3);
        let by = m.dropped_by_reason();
        assert_eq!(by["loss"], 2);
        assert_eq!(by["no_subscriber"], 1);
        assert_eq!(by.len(), 2);
    }
}
