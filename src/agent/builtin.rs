//! General-purpose agents that scenario files can instantiate without Rust
//! code: a periodic publisher, a sink and a relay. With them a scenario can
//! exercise the network and broker models on their own, outside the grid
//! protocol.

use crate::broker::{Delivery, topic};
use crate::message::{ChannelId, Message, MessageKind, Payload, Recipient};
use crate::metrics::Outcomes;
use crate::sim::{Agent, Context};
use crate::time::SimDuration;

/// Publishes on one channel every `period`, starting at `start`.
///
/// Each message carries `[n, sent_s]`: its sequence number from 0 and its send
/// time in seconds, so receivers and trace readers can check order and age.
#[derive(Clone, Debug)]
pub struct Periodic {
    channel_name: String,
    recipient_name: Option<String>,
    period: SimDuration,
    start: SimDuration,
    kind: MessageKind,
    limit: Option<u64>,
    sent: u64,
    channel: Option<ChannelId>,
    recipient: Recipient,
}

impl Periodic {
    /// A publisher on `channel` every `period`.
    pub fn new(channel: &str, period: SimDuration) -> Periodic {
        Periodic {
            channel_name: channel.to_string(),
            recipient_name: None,
            period,
            start: SimDuration::ZERO,
            kind: MessageKind::INFO,
            limit: None,
            sent: 0,
            channel: None,
            recipient: Recipient::Broadcast,
        }
    }

    /// First message at `start` instead of 0.
    pub fn start(mut self, start: SimDuration) -> Self {
        self.start = start;
        self
    }

    /// Messages of this kind (default `info`).
    pub fn kind(mut self, kind: MessageKind) -> Self {
        self.kind = kind;
        self
    }

    /// Stop after `n` messages (default: never).
    pub fn limit(mut self, n: Option<u64>) -> Self {
        self.limit = n;
        self
    }

    /// Address every message to the agent called `name` instead of
    /// broadcasting. The name must be an agent of the simulation (scenario
    /// files are checked for it); a name that is not falls back to
    /// broadcasting.
    pub fn to(mut self, name: Option<String>) -> Self {
        self.recipient_name = name;
        self
    }

    /// How many messages it has published.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

impl Agent for Periodic {
    /// A crash with `state = "lost"`: the publisher forgets how many it
    /// sent, so its numbering (and its `count` limit) starts again.
    fn reset(&mut self) {
        self.sent = 0;
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.channel = Some(ctx.channel(&self.channel_name));
        if let Some(name) = &self.recipient_name {
            // The scenario loader checks that the name exists.
            if let Some(id) = ctx.agent_id(name) {
                self.recipient = Recipient::Agent(id);
            }
        }
        if self.limit != Some(0) {
            ctx.set_timer(self.start, 0);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _tag: u64) {
        let ch = self.channel.expect("interned in on_start");
        let now_s = ctx.now().as_nanos() as f64 / 1e9;
        ctx.publish(
            ch,
            self.recipient,
            self.kind,
            Payload::values(&[self.sent as f64, now_s]),
        );
        self.sent += 1;
        if self.limit.is_none_or(|n| self.sent < n) {
            ctx.set_timer(self.period, 0);
        }
    }
}

/// Subscribes to channels and counts what arrives; with a `deadline`, marks a
/// message late when it arrives more than `deadline` after it was sent, and
/// records every arrival's age as age of information.
#[derive(Clone, Debug)]
pub struct Sink {
    channel_names: Vec<String>,
    delivery: Delivery,
    deadline: Option<SimDuration>,
    received: u64,
    late: u64,
    reordered: u64,
    /// Highest message id seen from each sender, by agent index (0: none;
    /// ids are stored plus one).
    last_seen: Vec<u64>,
    /// Which message ids have arrived: bit `id` (ids are dense from 0, so a
    /// bitset costs one bit per message of the run).
    ids: Vec<u64>,
    /// Distinct messages received.
    unique: u64,
    /// The consumer group it joins on each channel instead of subscribing.
    group: Option<String>,
}

impl Sink {
    /// A sink on these channels: names, or MQTT topic filters with `+` and
    /// `#` ([`Context::subscribe_filter`]), subscribed in this order.
    ///
    /// # Panics
    ///
    /// When it starts, if a name with a wildcard is not a valid topic filter
    /// ([`topic::check_filter`]), or with a [`group`](Sink::group) if it
    /// cannot join it ([`Context::subscribe_group`]); scenario files are
    /// checked before that.
    pub fn new(channels: &[String], delivery: Delivery, deadline: Option<SimDuration>) -> Sink {
        Sink {
            channel_names: channels.to_vec(),
            delivery,
            deadline,
            received: 0,
            late: 0,
            reordered: 0,
            last_seen: Vec::new(),
            ids: Vec::new(),
            unique: 0,
            group: None,
        }
    }

    /// Join consumer group `group` on each channel instead of subscribing
    /// ([`Context::subscribe_group`]): the sink then gets its group's
    /// share of the messages. The channels must be names, not filters.
    pub fn group(mut self, group: Option<String>) -> Self {
        self.group = group;
        self
    }

    /// Messages received by push.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Messages that arrived after the deadline.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Messages that arrived with a lower id than an earlier one from the
    /// same sender (out of publish order).
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Distinct messages received (a message received twice counts once).
    pub fn unique(&self) -> u64 {
        self.unique
    }
}

impl Agent for Sink {
    /// `sink.received`, `sink.unique` (distinct messages),
    /// `sink.duplicates` (received − unique), `sink.late`, `sink.reordered`,
    /// summed over sinks.
    fn outcomes(&self, out: &mut Outcomes) {
        out.add("sink.received", self.received as f64);
        out.add("sink.unique", self.unique as f64);
        out.add("sink.duplicates", (self.received - self.unique) as f64);
        out.add("sink.late", self.late as f64);
        out.add("sink.reordered", self.reordered as f64);
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        for name in &self.channel_names {
            if let Some(group) = &self.group {
                let ch = ctx.channel(name);
                if let Err(e) = ctx.subscribe_group(ch, group, self.delivery) {
                    panic!("sink {}: {e}", ctx.name());
                }
            } else if topic::is_wildcard(name) {
                if let Err(e) = ctx.subscribe_filter(name, self.delivery) {
                    panic!("sink {}: {e}", ctx.name());
                }
            } else {
                let ch = ctx.channel(name);
                ctx.subscribe(ch, self.delivery);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        self.received += 1;
        let (word, bit) = ((msg.id.0 / 64) as usize, msg.id.0 % 64);
        if self.ids.len() <= word {
            self.ids.resize(word + 1, 0);
        }
        if self.ids[word] & (1 << bit) == 0 {
            self.ids[word] |= 1 << bit;
            self.unique += 1;
        }
        let age = ctx.now().saturating_since(ctx.stamp(msg));
        ctx.record_age(age);
        if let Some(d) = self.deadline.filter(|d| age > *d) {
            self.late += 1;
            ctx.mark_late_for(msg, "sink.deadline", d);
        }
        // Indexed by sender: the cost per message does not grow with the
        // number of senders.
        let i = msg.sender.index();
        if self.last_seen.len() <= i {
            self.last_seen.resize(i + 1, 0);
        }
        let seen = &mut self.last_seen[i];
        if msg.id.0 + 1 < *seen {
            self.reordered += 1;
        } else {
            *seen = msg.id.0 + 1;
        }
    }
}

/// Forwards every message it receives on its input channels to one output
/// channel: the same payload (shared, not copied) and kind, broadcast. A
/// gateway, or a controller that passes state on. The forwarded message is
/// a new message, published when the first arrives, so it causally follows
/// it: a subscriber of both channels that handles the forwarded copy first
/// breaks causal order (`busbar::check`'s `causal`) though every link may be
/// FIFO.
#[derive(Clone, Debug)]
pub struct Relay {
    inputs: Vec<String>,
    output_name: String,
    output: Option<ChannelId>,
    forwarded: u64,
}

impl Relay {
    /// A relay from `inputs` (channel names) to `output`.
    pub fn new(inputs: &[String], output: &str) -> Relay {
        Relay {
            inputs: inputs.to_vec(),
            output_name: output.to_string(),
            output: None,
            forwarded: 0,
        }
    }

    /// Messages forwarded so far.
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }
}

impl Agent for Relay {
    /// `relay.forwarded`, summed over relays.
    fn outcomes(&self, out: &mut Outcomes) {
        out.add("relay.forwarded", self.forwarded as f64);
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.output = Some(ctx.channel(&self.output_name));
        for name in &self.inputs {
            let ch = ctx.channel(name);
            ctx.subscribe(ch, Delivery::Push);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        let out = self.output.expect("interned in on_start");
        ctx.publish(out, Recipient::Broadcast, msg.kind, msg.payload.clone());
        self.forwarded += 1;
    }
}
