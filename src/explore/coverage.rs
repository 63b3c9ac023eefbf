//! What a set of runs exercised, per channel: the coverage `busbar
//! explore` reports so that "no violation" can be judged.

use std::collections::BTreeMap;

use crate::trace::{EventKind, NONE, Reason, Record};

/// What one channel saw, summed over runs. Every count is of trace
/// records on the channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChannelCoverage {
    /// Messages published.
    pub published: u64,
    /// Copies delivered to a handler.
    pub delivered: u64,
    /// Deliveries of a message published before another one already
    /// delivered to the same recipient, from the same sender, on the
    /// channel: the FIFO inversions.
    pub reordered: u64,
    /// Deliveries of a (message, recipient) already delivered: the handler
    /// saw it again (a link duplicate, or a retransmission whose first copy
    /// arrived).
    pub duplicated: u64,
    /// Copies dropped, for any reason.
    pub dropped: u64,
    /// Retransmissions of unacknowledged messages (QoS 1 and 2).
    pub retransmitted: u64,
    /// Drops because of a partition or a link down.
    pub partitioned: u64,
}

impl ChannelCoverage {
    fn add(&mut self, o: &ChannelCoverage) {
        self.published += o.published;
        self.delivered += o.delivered;
        self.reordered += o.reordered;
        self.duplicated += o.duplicated;
        self.dropped += o.dropped;
        self.retransmitted += o.retransmitted;
        self.partitioned += o.partitioned;
    }

    /// The counts as (name, value), in the order of the fields.
    pub fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("published", self.published),
            ("delivered", self.delivered),
            ("reordered", self.reordered),
            ("duplicated", self.duplicated),
            ("dropped", self.dropped),
            ("retransmitted", self.retransmitted),
            ("partitioned", self.partitioned),
        ]
    }
}

/// What a set of runs exercised: per channel (by name; records without a
/// channel under `-`), and how many runs saw at least one of each kind of
/// disorder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Per channel name, in name order.
    pub channels: BTreeMap<String, ChannelCoverage>,
    /// Runs counted.
    pub runs: u64,
    /// Runs with at least one reordering, duplicate delivery, drop,
    /// retransmission, partition drop (in the order of those fields).
    pub runs_with: [u64; 5],
}

impl Coverage {
    /// All channels together.
    pub fn total(&self) -> ChannelCoverage {
        let mut t = ChannelCoverage::default();
        for c in self.channels.values() {
            t.add(c);
        }
        t
    }

    /// Adds another set of runs.
    pub fn merge(&mut self, o: &Coverage) {
        for (name, c) in &o.channels {
            self.channels.entry(name.clone()).or_default().add(c);
        }
        self.runs += o.runs;
        for (a, b) in self.runs_with.iter_mut().zip(o.runs_with) {
            *a += b;
        }
    }
}

/// Counts one run's coverage as its records stream by.
#[derive(Default)]
pub(super) struct Counter {
    by_channel: BTreeMap<u32, ChannelCoverage>,
    /// Newest message id delivered per (sender, recipient, channel).
    newest: BTreeMap<(u32, u32, u32), u64>,
    /// (message, recipient) delivered.
    seen: std::collections::BTreeSet<(u64, u32)>,
}

impl Counter {
    pub(super) fn observe(&mut self, records: &[Record]) {
        for r in records {
            let c = self.by_channel.entry(r.channel).or_default();
            match r.event {
                EventKind::Publish => c.published += 1,
                EventKind::Deliver if r.detail & 0xff00 == 0 => {
                    c.delivered += 1;
                    if !self.seen.insert((r.msg, r.node)) {
                        c.duplicated += 1;
                    }
                    let newest = self
                        .newest
                        .entry((r.sender, r.node, r.channel))
                        .or_insert(r.msg);
                    if r.msg < *newest {
                        c.reordered += 1;
                    }
                    *newest = (*newest).max(r.msg);
                }
                EventKind::Drop => {
                    c.dropped += 1;
                    if r.detail == Reason::Partition as u16 || r.detail == Reason::LinkDown as u16 {
                        c.partitioned += 1;
                    }
                }
                EventKind::Retransmit => c.retransmitted += 1,
                _ => {}
            }
        }
    }

    pub(super) fn finish(self, channel_names: &[String]) -> Coverage {
        let mut cov = Coverage {
            runs: 1,
            ..Coverage::default()
        };
        for (id, c) in self.by_channel {
            if c == ChannelCoverage::default() {
                continue;
            }
            let name = if id == NONE {
                "-".to_string()
            } else {
                channel_names
                    .get(id as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("#{id}"))
            };
            cov.channels.entry(name).or_default().add(&c);
        }
        let t = cov.total();
        let saw = [
            t.reordered,
            t.duplicated,
            t.dropped,
            t.retransmitted,
            t.partitioned,
        ];
        for (n, s) in cov.runs_with.iter_mut().zip(saw) {
            *n = u64::from(s > 0);
        }
        cov
    }
}
