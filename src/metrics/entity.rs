//! Metrics per channel and per agent ([`EntityMetrics`]), computed from
//! trace records one at a time, and their tidy CSV form
//! (`entity_type,entity,metric,value,unit`; `docs/metrics.md`).
//!
//! The aggregator sees exactly the records of a run: live (fed by the
//! simulation's trace sink when [`SimBuilder::entity_metrics`] is on, with
//! or without a trace file) or from a trace file
//! ([`EntityMetrics::from_trace`]); both give the same table. Only the
//! consumer lag of pull subscribers is not in the records: the engine
//! reports it live ([`EntityMetrics::set_lag`]), so a table computed from a
//! file has no lag rows.
//!
//! Tables are `Vec`s indexed by channel id and agent id, grown on demand;
//! nothing iterates a hash map, so the output order is fixed: channels by
//! id, agents by id, subscriptions by agent then channel, metrics in
//! [`METRICS`] order.
//!
//! [`SimBuilder::entity_metrics`]: crate::sim::SimBuilder::entity_metrics

use std::io::{Read, Seek, Write};

use hdrhistogram::Histogram;

use super::{HIST_MAX_NS, Percentiles};
use crate::trace::export::Names;
use crate::trace::{
    DETAIL_ACK, DETAIL_PUBACK, EXPIRED_ON_ARRIVAL, EventKind, NODE_BROKER, NODE_ROUTER_BASE, NONE,
    Reason, Record, TraceError, TraceReader,
};

/// What happened to one entity's messages: the counters of a channel, an
/// agent or the whole run. `docs/metrics.md` defines each and says, for
/// an agent, in which role it is counted (publisher or recipient).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// `publish` records.
    pub published: u64,
    /// `route` records.
    pub routed: u64,
    /// `deliver` records.
    pub delivered: u64,
    /// Message copies dropped (not acks), indexed by [`Reason`] code; index
    /// 0 holds codes no reason has.
    pub dropped: [u64; 16],
    /// Extra message copies made by links (`duplicate` records of copies).
    pub duplicated: u64,
    /// Copies an exactly-once receiver had already received and discarded
    /// (drops with reason `duplicate` at an agent; those at the broker, of
    /// a publish received twice, are only in `dropped`).
    pub duplicates_suppressed: u64,
    /// Extra acks made by links (`duplicate` records of acks).
    pub acks_duplicated: u64,
    /// Publishes sent again by their publishers (`retransmit` to the broker).
    pub retransmitted_uplink: u64,
    /// Copies sent again by the broker (`retransmit` to an agent).
    pub retransmitted_downlink: u64,
    /// Messages that reached the broker older than their TTL.
    pub expired_uplink: u64,
    /// Unacknowledged publishes that expired.
    pub expired_publishes: u64,
    /// Unacknowledged deliveries that expired.
    pub expired_deliveries: u64,
    /// Publishes given up on after `max_retries`.
    pub dead_lettered_publishes: u64,
    /// Deliveries given up on after `max_retries`.
    pub dead_lettered_deliveries: u64,
    /// Subscribers' acks that reached the broker.
    pub acks_received: u64,
    /// The broker's acks of publishes that reached their publishers.
    pub pubacks_received: u64,
    /// Acks and pubacks lost on the way (never counted in `dropped`).
    pub acks_dropped: u64,
    /// `late` records.
    pub late: u64,
}

impl Counters {
    /// Message copies dropped, all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Copies dropped for `reason`.
    pub fn dropped(&self, reason: Reason) -> u64 {
        self.dropped[reason as usize]
    }

    fn add(&mut self, o: &Counters) {
        self.published += o.published;
        self.routed += o.routed;
        self.delivered += o.delivered;
        for (a, b) in self.dropped.iter_mut().zip(o.dropped) {
            *a += b;
        }
        self.duplicated += o.duplicated;
        self.duplicates_suppressed += o.duplicates_suppressed;
        self.acks_duplicated += o.acks_duplicated;
        self.retransmitted_uplink += o.retransmitted_uplink;
        self.retransmitted_downlink += o.retransmitted_downlink;
        self.expired_uplink += o.expired_uplink;
        self.expired_publishes += o.expired_publishes;
        self.expired_deliveries += o.expired_deliveries;
        self.dead_lettered_publishes += o.dead_lettered_publishes;
        self.dead_lettered_deliveries += o.dead_lettered_deliveries;
        self.acks_received += o.acks_received;
        self.pubacks_received += o.pubacks_received;
        self.acks_dropped += o.acks_dropped;
        self.late += o.late;
    }
}

/// A counter's value, by name.
type Getter = fn(&Counters) -> u64;

/// The counters as (metric, unit, value), in table order.
const COUNTERS: [(&str, &str, Getter); 29] = [
    ("published", "messages", |c| c.published),
    ("routed", "messages", |c| c.routed),
    ("delivered", "copies", |c| c.delivered),
    ("dropped", "copies", Counters::dropped_total),
    ("dropped_loss", "copies", |c| c.dropped(Reason::Loss)),
    ("dropped_partition", "copies", |c| {
        c.dropped(Reason::Partition)
    }),
    ("dropped_overflow", "copies", |c| {
        c.dropped(Reason::Overflow)
    }),
    ("dropped_offline", "copies", |c| c.dropped(Reason::Offline)),
    ("dropped_no_subscriber", "copies", |c| {
        c.dropped(Reason::NoSubscriber)
    }),
    ("dropped_corrupt", "copies", |c| c.dropped(Reason::Corrupt)),
    ("dropped_link_down", "copies", |c| {
        c.dropped(Reason::LinkDown)
    }),
    ("dropped_crashed", "copies", |c| c.dropped(Reason::Crashed)),
    ("dropped_broker_down", "copies", |c| {
        c.dropped(Reason::BrokerDown)
    }),
    ("dropped_duplicate", "copies", |c| {
        c.dropped(Reason::Duplicate)
    }),
    ("duplicated", "copies", |c| c.duplicated),
    ("duplicates_suppressed", "copies", |c| {
        c.duplicates_suppressed
    }),
    ("retransmitted_uplink", "messages", |c| {
        c.retransmitted_uplink
    }),
    ("retransmitted_downlink", "copies", |c| {
        c.retransmitted_downlink
    }),
    ("expired_uplink", "messages", |c| c.expired_uplink),
    ("expired_publishes", "messages", |c| c.expired_publishes),
    ("expired_deliveries", "copies", |c| c.expired_deliveries),
    ("dead_lettered_publishes", "messages", |c| {
        c.dead_lettered_publishes
    }),
    ("dead_lettered_deliveries", "copies", |c| {
        c.dead_lettered_deliveries
    }),
    ("acks_received", "acks", |c| c.acks_received),
    ("pubacks_received", "acks", |c| c.pubacks_received),
    ("acks_dropped", "acks", |c| c.acks_dropped),
    ("acks_duplicated", "acks", |c| c.acks_duplicated),
    ("late", "copies", |c| c.late),
    ("latency_count", "copies", |c| c.delivered),
];

/// The latency figures after the counters, (metric, unit).
const LATENCY: [(&str, &str); 5] = [
    ("latency_p50_ns", "ns"),
    ("latency_p95_ns", "ns"),
    ("latency_p99_ns", "ns"),
    ("latency_max_ns", "ns"),
    ("latency_mean_ns", "ns"),
];

/// The consumer-lag figures (live runs only), (metric, unit).
const LAG: [(&str, &str); 2] = [
    ("consumer_lag_max", "copies"),
    ("consumer_lag_end", "copies"),
];

/// Every metric of the table, (name, unit), in the order rows are written
/// for each entity: the counters, the latency figures, then the consumer
/// lag (only in live tables, and for subscriptions only these two).
pub const METRICS: [(&str, &str); 36] = {
    let mut out = [("", ""); 36];
    let mut i = 0;
    while i < COUNTERS.len() {
        out[i] = (COUNTERS[i].0, COUNTERS[i].1);
        i += 1;
    }
    let mut j = 0;
    while j < LATENCY.len() {
        out[i + j] = LATENCY[j];
        j += 1;
    }
    let mut k = 0;
    while k < LAG.len() {
        out[i + j + k] = LAG[k];
        k += 1;
    }
    out
};

/// The columns of the tidy CSV.
pub const CSV_COLUMNS: [&str; 5] = ["entity_type", "entity", "metric", "value", "unit"];

/// One entity's counters and latency histogram.
#[derive(Clone, Debug, Default)]
pub struct EntityStats {
    /// The counters.
    pub counts: Counters,
    /// End-to-end latency of its delivered copies (deliver time − send
    /// time), made on the first delivery.
    latency: Option<Histogram<u64>>,
}

impl EntityStats {
    /// The latency histogram (`None` before the first delivery): HDR, 3
    /// significant digits, like every busbar histogram.
    pub fn latency(&self) -> Option<&Histogram<u64>> {
        self.latency.as_ref()
    }

    /// Percentiles of the latency (all zero without a delivery).
    pub fn latency_percentiles(&self) -> Percentiles {
        match &self.latency {
            Some(h) => Percentiles::of(h),
            None => Percentiles::of(&empty_histogram()),
        }
    }

    fn record_latency(&mut self, ns: u64) {
        let h = self.latency.get_or_insert_with(empty_histogram);
        // An auto-resizing histogram grows with the largest sample instead
        // of holding the whole range up front; its buckets are those of
        // `metrics::histogram()` (same lowest value and precision).
        h.record(ns.min(HIST_MAX_NS))
            .expect("an auto-resizing histogram takes any value up to its bound");
    }

    fn add(&mut self, o: &EntityStats) {
        self.counts.add(&o.counts);
        if let Some(h) = &o.latency {
            self.latency
                .get_or_insert_with(empty_histogram)
                .add(h)
                .expect("auto-resizing histograms of the same precision add");
        }
    }
}

fn empty_histogram() -> Histogram<u64> {
    let mut h = Histogram::new(3).expect("3 significant digits are valid");
    h.auto(true);
    h
}

/// A pull subscription's consumer lag: copies waiting in the agent's buffer
/// for the channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lag {
    /// The most ever waiting at once.
    pub max: u64,
    /// Waiting now (at the end of a finished run).
    pub now: u64,
    /// Whether the engine reported this subscription at all.
    seen: bool,
}

/// One consumer group's figures, reported by the engine at the end of a
/// live run ([`EntityMetrics::set_groups`]; not in the records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStats {
    /// The channel's id.
    pub channel: u32,
    /// The group's name.
    pub name: String,
    /// Its counters and lag.
    pub counts: super::GroupCounts,
    /// Per member (present or former), by agent id: messages the broker
    /// gave it (first transmissions and redeliveries).
    pub members: Vec<(u32, u64)>,
}

/// The group figures, (metric, unit), in table order.
pub const GROUP_METRICS: [(&str, &str); 5] = [
    ("group_routed", "messages"),
    ("group_redelivered", "copies"),
    ("group_acked", "messages"),
    ("group_lag_max", "messages"),
    ("group_lag_end", "messages"),
];

/// Metrics per channel and per agent, aggregated from trace records.
#[derive(Clone, Debug, Default)]
pub struct EntityMetrics {
    channels: Vec<EntityStats>,
    agents: Vec<EntityStats>,
    /// By agent, then channel.
    lag: Vec<Vec<Lag>>,
    /// Consumer groups, by group id (live runs only).
    groups: Vec<GroupStats>,
    records: u64,
}

/// Whether a record's `node`/`sender` is an agent id (not the broker, a
/// router, a broadcast or none).
#[inline]
fn is_agent(node: u32) -> bool {
    node < NODE_ROUTER_BASE
}

fn slot(v: &mut Vec<EntityStats>, id: u32) -> &mut EntityStats {
    let i = id as usize;
    if v.len() <= i {
        v.resize_with(i + 1, EntityStats::default);
    }
    &mut v[i]
}

impl EntityMetrics {
    /// An empty aggregator.
    pub fn new() -> EntityMetrics {
        EntityMetrics::default()
    }

    /// Counts one record for its channel and for the agent concerned: the
    /// publisher (`sender`) for publish, route and what happens to a
    /// publish (uplink retransmission, expiry, dead letter, puback), the
    /// recipient (`node`, when it is an agent) for everything else.
    /// Records without a channel (timers, faults) and forwards count for
    /// nobody.
    pub fn observe(&mut self, r: &Record) {
        self.records += 1;
        if r.channel == NONE {
            return;
        }
        let ack = r.detail & 0xff00;
        // Which counter, and whether it is the publisher's (sender) or the
        // recipient's (node).
        let (field, publisher): (fn(&mut Counters) -> &mut u64, bool) = match r.event {
            EventKind::Publish => (|c| &mut c.published, true),
            EventKind::Route => (|c| &mut c.routed, true),
            EventKind::Deliver => {
                let ns = r.time_ns.saturating_sub(r.sent_ns);
                slot(&mut self.channels, r.channel).record_latency(ns);
                if is_agent(r.node) {
                    slot(&mut self.agents, r.node).record_latency(ns);
                }
                (|c| &mut c.delivered, false)
            }
            EventKind::Drop if ack != 0 => (|c| &mut c.acks_dropped, false),
            EventKind::Drop => {
                let reason = Reason::from_code(r.detail);
                let i = reason.map_or(0, |r| r as usize);
                let suppressed = reason == Some(Reason::Duplicate) && is_agent(r.node);
                for c in [
                    Some(&mut slot(&mut self.channels, r.channel).counts),
                    is_agent(r.node).then(|| &mut slot(&mut self.agents, r.node).counts),
                ]
                .into_iter()
                .flatten()
                {
                    c.dropped[i] += 1;
                    c.duplicates_suppressed += u64::from(suppressed);
                }
                return;
            }
            EventKind::Duplicate if ack != 0 => (|c| &mut c.acks_duplicated, false),
            EventKind::Duplicate => (|c| &mut c.duplicated, false),
            EventKind::Expire if r.detail == EXPIRED_ON_ARRIVAL => {
                (|c| &mut c.expired_uplink, true)
            }
            EventKind::Expire if r.node == NODE_BROKER => (|c| &mut c.expired_publishes, true),
            EventKind::Expire => (|c| &mut c.expired_deliveries, false),
            EventKind::Ack if ack == DETAIL_PUBACK => (|c| &mut c.pubacks_received, false),
            EventKind::Ack if ack == DETAIL_ACK => (|c| &mut c.acks_received, false),
            EventKind::Retransmit if r.node == NODE_BROKER => {
                (|c| &mut c.retransmitted_uplink, true)
            }
            EventKind::Retransmit => (|c| &mut c.retransmitted_downlink, false),
            EventKind::DeadLetter if r.node == NODE_BROKER => {
                (|c| &mut c.dead_lettered_publishes, true)
            }
            EventKind::DeadLetter => (|c| &mut c.dead_lettered_deliveries, false),
            EventKind::Late => (|c| &mut c.late, false),
            _ => return,
        };
        *field(&mut slot(&mut self.channels, r.channel).counts) += 1;
        let agent = if publisher { r.sender } else { r.node };
        if is_agent(agent) {
            *field(&mut slot(&mut self.agents, agent).counts) += 1;
        }
    }

    /// Reads every record of a trace (checked against the footer's digest
    /// as they stream). A record naming an agent or channel the footer
    /// does not name is an error (a forged file, which would otherwise
    /// make the tables as large as its ids).
    pub fn from_trace<R: Read + Seek>(
        reader: &mut TraceReader<R>,
    ) -> Result<EntityMetrics, TraceError> {
        let agents = reader.footer().agents.len() as u64;
        let channels = reader.footer().channels.len() as u64;
        let mut m = EntityMetrics::new();
        let mut seq = 0u64;
        reader.for_each_batch(|batch| {
            for r in batch {
                let bad = |what: &str, id: u32, n: u64| TraceError::Corrupt {
                    offset: 0,
                    what: format!(
                        "record {seq} names {what} id {id}, but the footer names only {n}"
                    ),
                };
                if r.channel != NONE && u64::from(r.channel) >= channels {
                    return Err(bad("channel", r.channel, channels));
                }
                for id in [r.sender, r.node] {
                    if is_agent(id) && u64::from(id) >= agents {
                        return Err(bad("agent", id, agents));
                    }
                }
                m.observe(r);
                seq += 1;
            }
            Ok(())
        })?;
        Ok(m)
    }

    /// Records observed.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Per channel, by channel id (a channel no record named is all zero;
    /// the table ends at the highest id named).
    pub fn channels(&self) -> &[EntityStats] {
        &self.channels
    }

    /// Per agent, by agent id (likewise).
    pub fn agents(&self) -> &[EntityStats] {
        &self.agents
    }

    /// The run: every channel's counters summed and latencies merged.
    pub fn totals(&self) -> EntityStats {
        let mut t = EntityStats::default();
        for c in &self.channels {
            t.add(c);
        }
        t
    }

    /// The engine's report of a pull subscription: `waiting` copies are in
    /// `agent`'s buffer for `channel` now.
    pub fn set_lag(&mut self, agent: u32, channel: u32, waiting: u64) {
        let (a, c) = (agent as usize, channel as usize);
        if self.lag.len() <= a {
            self.lag.resize_with(a + 1, Vec::new);
        }
        let row = &mut self.lag[a];
        if row.len() <= c {
            row.resize(c + 1, Lag::default());
        }
        let l = &mut row[c];
        l.seen = true;
        l.now = waiting;
        l.max = l.max.max(waiting);
    }

    /// The engine's report of the consumer groups at the end of a run.
    pub fn set_groups(&mut self, groups: Vec<GroupStats>) {
        self.groups = groups;
    }

    /// The consumer groups reported (live runs), by group id.
    pub fn groups(&self) -> &[GroupStats] {
        &self.groups
    }

    /// The consumer lag of `agent`'s pull subscription to `channel`, if
    /// the engine reported it (live runs with entity metrics on, once a
    /// copy entered the buffer).
    pub fn lag(&self, agent: u32, channel: u32) -> Option<Lag> {
        let l = *self.lag.get(agent as usize)?.get(channel as usize)?;
        l.seen.then_some(l)
    }

    /// Every reported subscription as (agent, channel, lag), by agent then
    /// channel.
    pub fn lags(&self) -> impl Iterator<Item = (u32, u32, Lag)> + '_ {
        self.lag.iter().enumerate().flat_map(|(a, row)| {
            row.iter()
                .enumerate()
                .filter(|(_, l)| l.seen)
                .map(move |(c, l)| (a as u32, c as u32, *l))
        })
    }

    /// The lag of a set of subscriptions: the largest max, the sum of what
    /// waits now; `None` if none was reported.
    fn lag_of(&self, pick: impl Fn(u32, u32) -> bool) -> Option<(u64, u64)> {
        let mut out: Option<(u64, u64)> = None;
        for (a, c, l) in self.lags() {
            if pick(a, c) {
                let (m, n) = out.get_or_insert((0, 0));
                *m = (*m).max(l.max);
                *n += l.now;
            }
        }
        out
    }

    /// The tidy table: one row per entity and metric, in the documented
    /// order (channels by id, agents by id, subscriptions, then the run;
    /// metrics in [`METRICS`] order).
    pub fn rows(&self, names: &Names<'_>) -> Vec<MetricRow> {
        let mut rows = Vec::new();
        let name = |table: &[String], id: usize| {
            table.get(id).cloned().unwrap_or_else(|| format!("#{id}"))
        };
        for (i, c) in self.channels.iter().enumerate() {
            let lag = self.lag_of(|_, ch| ch as usize == i);
            push_entity(&mut rows, "channel", &name(names.channels, i), c, lag);
        }
        for (i, a) in self.agents.iter().enumerate() {
            let lag = self.lag_of(|ag, _| ag as usize == i);
            push_entity(&mut rows, "agent", &name(names.agents, i), a, lag);
        }
        for (a, c, l) in self.lags() {
            let entity = format!(
                "{}/{}",
                name(names.agents, a as usize),
                name(names.channels, c as usize)
            );
            for ((metric, unit), v) in LAG.iter().zip([l.max, l.now]) {
                rows.push(MetricRow::new(
                    "subscription",
                    &entity,
                    metric,
                    Some(v),
                    unit,
                ));
            }
        }
        for g in &self.groups {
            let entity = format!("{}/{}", name(names.channels, g.channel as usize), g.name);
            let c = &g.counts;
            let values = [c.routed, c.redelivered, c.acked, c.lag_max, c.lag];
            for ((metric, unit), v) in GROUP_METRICS.iter().zip(values) {
                rows.push(MetricRow::new("group", &entity, metric, Some(v), unit));
            }
            for &(a, n) in &g.members {
                let member = format!("{entity}/{}", name(names.agents, a as usize));
                rows.push(MetricRow::new(
                    "group_member",
                    &member,
                    "assigned",
                    Some(n),
                    "messages",
                ));
            }
        }
        let lag = self.lag_of(|_, _| true);
        push_entity(&mut rows, "run", "all", &self.totals(), lag);
        rows
    }

    /// Writes the tidy CSV (header and [`EntityMetrics::rows`]); returns
    /// the row count.
    pub fn write_csv<W: Write>(&self, names: &Names<'_>, out: W) -> std::io::Result<u64> {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        let csv_err = |e: csv::Error| match e.into_kind() {
            csv::ErrorKind::Io(io) => io,
            other => std::io::Error::other(format!("{other:?}")),
        };
        w.write_record(CSV_COLUMNS).map_err(csv_err)?;
        let rows = self.rows(names);
        for r in &rows {
            let value = r.value.map(|v| v.to_string()).unwrap_or_default();
            w.write_record([
                r.entity_type,
                r.entity.as_str(),
                r.metric,
                value.as_str(),
                r.unit,
            ])
            .map_err(csv_err)?;
        }
        w.flush()?;
        Ok(rows.len() as u64)
    }
}

fn push_entity(
    rows: &mut Vec<MetricRow>,
    entity_type: &'static str,
    entity: &str,
    s: &EntityStats,
    lag: Option<(u64, u64)>,
) {
    for (metric, unit, get) in COUNTERS {
        rows.push(MetricRow::new(
            entity_type,
            entity,
            metric,
            Some(get(&s.counts)),
            unit,
        ));
    }
    let p = s.latency_percentiles();
    // Without a delivery there is no latency: empty values (NaN in pandas).
    let some = |v: u64| (p.count > 0).then_some(v);
    let values = [p.p50_ns, p.p95_ns, p.p99_ns, p.max_ns, p.mean_ns];
    for ((metric, unit), v) in LATENCY.iter().zip(values) {
        rows.push(MetricRow::new(entity_type, entity, metric, some(v), unit));
    }
    if let Some((max, now)) = lag {
        for ((metric, unit), v) in LAG.iter().zip([max, now]) {
            rows.push(MetricRow::new(entity_type, entity, metric, Some(v), unit));
        }
    }
}

/// One row of the tidy table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricRow {
    /// `channel`, `agent`, `subscription` (an agent's pull subscription to
    /// a channel: `agent/channel`), `group` (`channel/group`),
    /// `group_member` (`channel/group/agent`) or `run`.
    pub entity_type: &'static str,
    /// The channel's or agent's name, `agent/channel`, or `all`.
    pub entity: String,
    /// One of [`METRICS`].
    pub metric: &'static str,
    /// The value; `None` (an empty CSV field) for a latency figure of an
    /// entity without deliveries.
    pub value: Option<u64>,
    /// `messages`, `copies`, `acks` or `ns`.
    pub unit: &'static str,
}

impl MetricRow {
    fn new(
        entity_type: &'static str,
        entity: &str,
        metric: &'static str,
        value: Option<u64>,
        unit: &'static str,
    ) -> MetricRow {
        MetricRow {
            entity_type,
            entity: entity.to_string(),
            metric,
            value,
            unit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{DETAIL_ACK, DETAIL_PUBACK, EXPIRED_UNACKED, NODE_BROADCAST};

    const CH: u32 = 2;
    const PUB: u32 = 0;
    const SUB: u32 = 1;

    fn rec(event: EventKind, node: u32, detail: u16) -> Record {
        Record {
            time_ns: 10,
            event,
            kind: 0,
            detail,
            channel: CH,
            msg: 7,
            sender: PUB,
            node,
            sent_ns: 4,
        }
    }

    fn of(records: &[Record]) -> EntityMetrics {
        let mut m = EntityMetrics::new();
        for r in records {
            m.observe(r);
        }
        m
    }

    fn names<'a>(agents: &'a [String], channels: &'a [String]) -> Names<'a> {
        Names {
            agents,
            channels,
            kinds: &[],
            routers: &[],
            env: 0,
        }
    }

    #[test]
    fn each_record_counts_for_its_channel_and_the_agent_in_its_role() {
        use EventKind::*;
        let m = of(&[
            rec(Publish, NODE_BROADCAST, 0),
            rec(Route, NODE_BROKER, 0),
            rec(Deliver, SUB, 0),
            rec(Drop, SUB, Reason::Loss as u16),
            // Lost on the uplink: the channel's, no agent's (the node is
            // the broker).
            rec(Drop, NODE_BROKER, Reason::BrokerDown as u16),
            rec(Drop, SUB, Reason::Duplicate as u16),
            // A publish the broker had routed already: a drop, not a
            // receiver's suppressed duplicate.
            rec(Drop, NODE_BROKER, Reason::Duplicate as u16),
            rec(Duplicate, SUB, 0),
            rec(Duplicate, NODE_BROKER, DETAIL_ACK),
            rec(Expire, NODE_BROKER, EXPIRED_ON_ARRIVAL),
            rec(Expire, NODE_BROKER, EXPIRED_UNACKED),
            rec(Expire, SUB, EXPIRED_UNACKED),
            rec(Ack, SUB, DETAIL_ACK),
            rec(Ack, PUB, DETAIL_PUBACK),
            rec(Retransmit, NODE_BROKER, 1),
            rec(Retransmit, SUB, 1),
            rec(Retransmit, SUB, 2),
            rec(DeadLetter, NODE_BROKER, 0),
            rec(DeadLetter, SUB, 0),
            rec(Late, SUB, 0),
            rec(Forward, NODE_ROUTER_BASE, 0),
        ]);
        let ch = &m.channels()[CH as usize].counts;
        let want_channel = Counters {
            published: 1,
            routed: 1,
            delivered: 1,
            dropped: {
                let mut d = [0; 16];
                d[Reason::Loss as usize] = 1;
                d[Reason::BrokerDown as usize] = 1;
                d[Reason::Duplicate as usize] = 2;
                d
            },
            duplicated: 1,
            duplicates_suppressed: 1,
            acks_duplicated: 1,
            retransmitted_uplink: 1,
            retransmitted_downlink: 2,
            expired_uplink: 1,
            expired_publishes: 1,
            expired_deliveries: 1,
            dead_lettered_publishes: 1,
            dead_lettered_deliveries: 1,
            acks_received: 1,
            pubacks_received: 1,
            acks_dropped: 0,
            late: 1,
        };
        assert_eq!(ch, &want_channel);
        assert_eq!(m.channels()[0].counts, Counters::default(), "unnamed ids");
        let publisher = Counters {
            published: 1,
            routed: 1,
            retransmitted_uplink: 1,
            expired_uplink: 1,
            expired_publishes: 1,
            dead_lettered_publishes: 1,
            pubacks_received: 1,
            ..Counters::default()
        };
        assert_eq!(m.agents()[PUB as usize].counts, publisher);
        let recipient = Counters {
            delivered: 1,
            dropped: {
                let mut d = [0; 16];
                d[Reason::Loss as usize] = 1;
                d[Reason::Duplicate as usize] = 1;
                d
            },
            duplicated: 1,
            duplicates_suppressed: 1,
            retransmitted_downlink: 2,
            expired_deliveries: 1,
            dead_lettered_deliveries: 1,
            acks_received: 1,
            late: 1,
            ..Counters::default()
        };
        assert_eq!(m.agents()[SUB as usize].counts, recipient);
        assert_eq!(m.agents().len(), 2, "no slot for the broker or a router");
        assert_eq!(m.records(), 21);
    }

    #[test]
    fn lost_acks_are_never_message_drops() {
        let m = of(&[
            rec(EventKind::Drop, SUB, Reason::Loss as u16 | DETAIL_ACK),
            rec(EventKind::Drop, PUB, Reason::Crashed as u16 | DETAIL_PUBACK),
            rec(
                EventKind::Drop,
                NODE_BROKER,
                Reason::Corrupt as u16 | DETAIL_ACK,
            ),
        ]);
        let ch = &m.channels()[CH as usize].counts;
        assert_eq!((ch.acks_dropped, ch.dropped_total()), (3, 0));
        assert_eq!(m.agents()[SUB as usize].counts.acks_dropped, 1);
        assert_eq!(m.agents()[PUB as usize].counts.acks_dropped, 1);
        let rows = m.rows(&names(&[], &[]));
        let dropped: Vec<u64> = rows
            .iter()
            .filter(|r| r.entity_type == "run" && r.metric.starts_with("dropped"))
            .map(|r| r.value.unwrap())
            .collect();
        assert_eq!(dropped, [0; 11]);
    }

    #[test]
    fn timers_and_faults_count_for_nobody() {
        let m = of(&[
            Record {
                channel: NONE,
                ..rec(EventKind::Timer, SUB, 0)
            },
            Record {
                channel: NONE,
                sender: NONE,
                ..rec(EventKind::Fault, NONE, 9)
            },
        ]);
        assert!(m.channels().is_empty() && m.agents().is_empty());
        assert_eq!(m.records(), 2);
    }

    #[test]
    fn latency_percentiles_match_the_global_histogram() {
        let mut global = super::super::histogram();
        let mut records = Vec::new();
        for i in 1..=1000u64 {
            let lat = i * 1_003;
            global.saturating_record(lat);
            records.push(Record {
                time_ns: 5_000 + lat,
                sent_ns: 5_000,
                // Half to each subscriber, on two channels.
                node: (i % 2) as u32 + 1,
                channel: (i % 3 == 0) as u32,
                ..rec(EventKind::Deliver, SUB, 0)
            });
        }
        let m = of(&records);
        let p = m.totals().latency_percentiles();
        assert_eq!(p, Percentiles::of(&global));
        assert_eq!(p.count, 1000);
        assert!((499_000..=503_000).contains(&p.p50_ns), "{p:?}");
        let count = |s: &EntityStats| s.latency_percentiles().count;
        assert_eq!(
            (count(&m.channels()[0]), count(&m.channels()[1])),
            (667, 333)
        );
        assert_eq!((count(&m.agents()[1]), count(&m.agents()[2])), (500, 500));
        // One sample: reported as its bucket's highest value, like the
        // summary (docs/summary.md).
        let one = of(&[Record {
            time_ns: 2_000_004,
            ..rec(EventKind::Deliver, SUB, 0)
        }]);
        let p = one.channels()[CH as usize].latency_percentiles();
        let mut g = super::super::histogram();
        g.saturating_record(2_000_000);
        assert_eq!((p.p50_ns, p.max_ns), (2_000_895, 2_000_895));
        assert_eq!(p, Percentiles::of(&g));
        assert!(EntityStats::default().latency().is_none());
    }

    #[test]
    fn consumer_lag_keeps_the_maximum_and_the_last_value() {
        let mut m = EntityMetrics::new();
        assert_eq!(m.lag(1, 0), None);
        for w in [1, 2, 3, 2, 1, 2] {
            m.set_lag(1, 0, w);
        }
        m.set_lag(1, 3, 4);
        m.set_lag(0, 3, 1);
        let l = m.lag(1, 0).unwrap();
        assert_eq!((l.max, l.now), (3, 2));
        assert_eq!(m.lag(1, 1), None, "a gap in the table is not reported");
        let all: Vec<(u32, u32, u64)> = m.lags().map(|(a, c, l)| (a, c, l.max)).collect();
        assert_eq!(all, [(0, 3, 1), (1, 0, 3), (1, 3, 4)]);
        let agents = ["a".to_string(), "b".to_string()];
        let channels: Vec<String> = (0..4).map(|i| format!("c{i}")).collect();
        let rows = m.rows(&names(&agents, &channels));
        let lag: Vec<String> = rows
            .iter()
            .filter(|r| r.metric.starts_with("consumer_lag"))
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r.entity_type,
                    r.entity,
                    r.metric,
                    r.value.unwrap()
                )
            })
            .collect();
        assert_eq!(
            lag,
            [
                "subscription a/c3 consumer_lag_max 1",
                "subscription a/c3 consumer_lag_end 1",
                "subscription b/c0 consumer_lag_max 3",
                "subscription b/c0 consumer_lag_end 2",
                "subscription b/c3 consumer_lag_max 4",
                "subscription b/c3 consumer_lag_end 4",
                "run all consumer_lag_max 4",
                "run all consumer_lag_end 7",
            ],
            "no channel or agent has records, so only subscriptions and the run"
        );
    }

    #[test]
    fn the_table_is_tidy_and_in_the_documented_order() {
        use EventKind::*;
        let mut m = of(&[
            Record {
                channel: 0,
                ..rec(Publish, NODE_BROADCAST, 0)
            },
            rec(Publish, NODE_BROADCAST, 0),
            rec(Deliver, SUB, 0),
        ]);
        m.set_lag(SUB, CH, 1);
        let agents = ["p".to_string(), "s".to_string()];
        let channels = ["x".to_string(), "y,1".to_string(), "z".to_string()];
        let rows = m.rows(&names(&agents, &channels));
        let entities: Vec<(&str, &str)> = rows.iter().fold(Vec::new(), |mut v, r| {
            if v.last() != Some(&(r.entity_type, r.entity.as_str())) {
                v.push((r.entity_type, r.entity.as_str()));
            }
            v
        });
        assert_eq!(
            entities,
            [
                ("channel", "x"),
                ("channel", "y,1"),
                ("channel", "z"),
                ("agent", "p"),
                ("agent", "s"),
                ("subscription", "s/z"),
                ("run", "all"),
            ]
        );
        let metrics_of = |t: &str, e: &str| -> Vec<&str> {
            rows.iter()
                .filter(|r| r.entity_type == t && r.entity == e)
                .map(|r| r.metric)
                .collect()
        };
        let all: Vec<&str> = METRICS.iter().map(|m| m.0).collect();
        assert_eq!(metrics_of("channel", "z"), all);
        assert_eq!(metrics_of("channel", "x"), all[..all.len() - 2]);
        assert_eq!(metrics_of("agent", "s"), all);
        let value = |t: &str, e: &str, metric: &str| {
            rows.iter()
                .find(|r| r.entity_type == t && r.entity == e && r.metric == metric)
                .map(|r| r.value)
                .unwrap()
        };
        assert_eq!(value("run", "all", "published"), Some(2));
        assert_eq!(value("channel", "x", "latency_p50_ns"), None);
        assert_eq!(value("channel", "z", "latency_p50_ns"), Some(6));
        let mut text = Vec::new();
        let n = m.write_csv(&names(&agents, &channels), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(n as usize, rows.len());
        assert_eq!(text.lines().count(), rows.len() + 1);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("entity_type,entity,metric,value,unit"));
        assert_eq!(lines.next(), Some("channel,x,published,1,messages"));
        assert!(
            text.contains("channel,\"y,1\",published,0,messages\n"),
            "{text}"
        );
        assert!(text.contains("channel,x,latency_p50_ns,,ns\n"), "{text}");
    }

    #[test]
    fn metric_names_are_unique_and_units_known() {
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        for (name, unit) in METRICS {
            assert!(!name.is_empty());
            assert!(
                ["messages", "copies", "acks", "ns"].contains(&unit),
                "{name}"
            );
        }
    }

    fn trace_file(records: &[Record], agents: usize, channels: usize) -> Vec<u8> {
        use crate::trace::{Digester, Footer, Header, PayloadDigester, TraceWriter};
        let header = Header {
            crate_version: "test".into(),
            scenario_path: "t".into(),
            base_dir: ".".into(),
            scenario: String::new(),
            seed: 1,
            env: 0,
            payload_limit: None,
        };
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        w.records(records).unwrap();
        let mut d = Digester::default();
        d.update(records);
        w.finish(&Footer {
            agents: (0..agents).map(|i| format!("a{i}")).collect(),
            channels: (0..channels).map(|i| format!("c{i}")).collect(),
            kinds: Vec::new(),
            records: records.len() as u64,
            records_digest: d.digest(),
            payload_digest: PayloadDigester::default().digest(),
            stopped: None,
            routers: Vec::new(),
            deadlines: Vec::new(),
        })
        .unwrap()
    }

    #[test]
    fn a_trace_file_gives_the_same_table_and_foreign_ids_are_refused() {
        use EventKind::*;
        let records = [
            rec(Publish, NODE_BROADCAST, 0),
            rec(Route, NODE_BROKER, 0),
            rec(Deliver, SUB, 0),
            rec(Drop, SUB, Reason::Overflow as u16),
        ];
        let file = trace_file(&records, 2, 3);
        let mut r = TraceReader::new(std::io::Cursor::new(file)).unwrap();
        let from_file = EntityMetrics::from_trace(&mut r).unwrap();
        let live = of(&records);
        let (agents, channels) = (r.footer().agents.clone(), r.footer().channels.clone());
        let n = names(&agents, &channels);
        assert_eq!(from_file.rows(&n), live.rows(&n));
        assert_eq!(from_file.records(), 4);

        for (bad, what) in [
            (
                Record {
                    channel: 3,
                    ..records[0]
                },
                "channel id 3",
            ),
            (rec(Deliver, 2, 0), "agent id 2"),
            (
                Record {
                    sender: 9,
                    ..records[0]
                },
                "agent id 9",
            ),
        ] {
            let file = trace_file(&[records[0], bad], 2, 3);
            let mut r = TraceReader::new(std::io::Cursor::new(file)).unwrap();
            let err = EntityMetrics::from_trace(&mut r).unwrap_err().to_string();
            assert!(err.contains(what) && err.contains("record 1"), "{err}");
        }
    }
}
