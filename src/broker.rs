//! The simulated broker: interned channels, subscriptions, and the pull
//! buffers (mailboxes) in which messages wait for agents that consume them.
//!
//! Routing happens at the broker node when a message arrives there: every
//! subscriber of the channel (or only the named recipient) gets its own copy
//! sent over its downlink. Copies share the payload.
//!
//! **Invariant:** subscribers are kept in subscription order, and channels are
//! numbered in interning order, so routing order is a pure function of what
//! agents did, never of a hash.

mod dlq;
mod group;
mod policy;
mod retained;
mod server;
mod session;
pub mod topic;
mod wildcard;

pub use dlq::DeadLetter;
pub(crate) use dlq::DeadLetters;
pub(crate) use group::NO_GROUP;
pub use group::{GroupError, GroupSpec, MAX_GROUP_NAME, MAX_GROUPS, Strategy, check_group_name};
pub use policy::{ChannelPolicy, ChannelSpec, MAX_PRIORITY, MAX_RETRIES, Qos};
pub use server::{
    BufferOverflow, DEFAULT_QUEUE_CAPACITY, MAX_QUEUE_CAPACITY, MAX_RATE, MAX_WORKERS,
    QueueOverflow, ServerModel,
};
pub use session::{MAX_CONTROL_BYTES, SessionConfig};
pub use wildcard::FilterError;

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::message::{AgentId, ChannelId, Message, env_prefix};
use crate::network::Latency;
use crate::time::SimDuration;
use crate::validate::Validator;

/// Broker settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// Time the broker spends routing one message (added before the
    /// downlinks; with a server model, after the service time, without
    /// occupying a worker). Default 0.
    #[serde(default)]
    pub processing: SimDuration,
    /// The service time of one message by one worker: the broker becomes a
    /// server with `workers` workers and a bounded queue
    /// (`docs/broker_server.md`). Without it (and without `rate`) the broker
    /// routes each message the instant it arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Latency>,
    /// Messages per second one worker serves: a constant service time of
    /// `1/rate` s. Exclusive with `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Parallel workers of the server model. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// Messages that may wait for a worker (not counting those in service).
    /// Default [`DEFAULT_QUEUE_CAPACITY`], at most [`MAX_QUEUE_CAPACITY`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<usize>,
    /// What an arrival at a full queue does. Default `reject_new`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_overflow: Option<QueueOverflow>,
    /// What a copy arriving at a full pull buffer does. Default
    /// `reject_new`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub buffer_overflow: BufferOverflow,
    /// Capacity of each pull buffer (one per agent and channel). A copy that
    /// arrives at a full buffer is dropped with reason `overflow` (or evicts
    /// the oldest copy: `buffer_overflow`). Default
    /// 10 000, at most [`MAX_BUFFER_CAPACITY`]. All buffers of a run
    /// together are bounded by `limits.max_buffered`.
    #[serde(default = "default_buffer_capacity")]
    pub buffer_capacity: usize,
    /// `[[broker.channel]]`: delivery guarantees, TTL and retention of the
    /// channels each entry's topic filter selects, applied in order.
    #[serde(default, rename = "channel", skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelSpec>,
    /// Dead letters kept per channel; a full queue drops its oldest.
    /// Default 10 000, at most [`MAX_BUFFER_CAPACITY`].
    #[serde(default = "default_buffer_capacity")]
    pub dead_letter_capacity: usize,
    /// `[[broker.group]]`: the assignment strategy of each consumer group,
    /// by name (docs/broker_groups.md). A group without an entry is
    /// round-robin.
    #[serde(default, rename = "group", skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupSpec>,
    /// `[broker.sessions]`: subscriptions and connections travel the
    /// network, the broker keeps a registry of online agents and sessions
    /// for offline ones (docs/broker_sessions.md). Default: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionConfig>,
}

/// The largest `buffer_capacity` accepted (16 777 216).
pub const MAX_BUFFER_CAPACITY: usize = 1 << 24;

fn default_buffer_capacity() -> usize {
    10_000
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            processing: SimDuration::ZERO,
            buffer_capacity: default_buffer_capacity(),
            channels: Vec::new(),
            dead_letter_capacity: default_buffer_capacity(),
            service: None,
            rate: None,
            workers: None,
            queue_capacity: None,
            queue_overflow: None,
            buffer_overflow: BufferOverflow::RejectNew,
            groups: Vec::new(),
            sessions: None,
        }
    }
}

impl BrokerConfig {
    /// Checks the settings (keys relative to the `[broker]` table).
    pub fn validate(&self, v: &mut Validator) {
        if v.at_least_one("buffer_capacity", self.buffer_capacity as u64) {
            v.check(
                self.buffer_capacity <= MAX_BUFFER_CAPACITY,
                "buffer_capacity",
                || format!("buffer_capacity must be at most {MAX_BUFFER_CAPACITY}"),
            );
        }
        if v.at_least_one("dead_letter_capacity", self.dead_letter_capacity as u64) {
            v.check(
                self.dead_letter_capacity <= MAX_BUFFER_CAPACITY,
                "dead_letter_capacity",
                || format!("dead_letter_capacity must be at most {MAX_BUFFER_CAPACITY}"),
            );
        }
        v.at("channel", |v| {
            for (i, c) in self.channels.iter().enumerate() {
                v.index(i, |v| c.validate(v));
            }
        });
        self.validate_server(v);
        group::validate_groups(&self.groups, v);
        if let Some(s) = &self.sessions {
            v.at("sessions", |v| s.validate(v));
        }
    }
}

/// How a subscriber receives the messages of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The agent's `on_message` runs when a copy arrives.
    Push,
    /// Copies wait in the agent's buffer for the channel until it calls
    /// `consume` (destructive) or `peek` (non-destructive).
    Pull,
}

/// One agent's subscription to one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// The subscriber.
    pub agent: AgentId,
    /// How it receives.
    pub delivery: Delivery,
}

/// The subscribers of one channel: in subscription order (the order of a
/// broadcast's copies), and sorted by agent (so a message for one agent
/// finds its subscription without scanning the others).
#[derive(Clone, Debug, Default)]
struct Subscribers {
    in_order: Vec<Subscription>,
    by_agent: Vec<(AgentId, Delivery)>,
}

/// Channel names, their policies, and subscriptions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Broker {
    config: BrokerConfig,
    /// The environment's channel prefix (`env0`), for `{env}` in filters.
    prefix: String,
    names: Vec<String>,
    // Looked up by name only, never iterated in a way that affects a run.
    ids: BTreeMap<String, ChannelId>,
    subs: Vec<Subscribers>,
    /// Each channel's policy, resolved when it was interned.
    policies: Vec<ChannelPolicy>,
    /// Whether some channel's policy is not plain (acks, TTL, retention).
    guarantees: bool,
    /// Wildcard subscriptions and what they cover (`wildcard.rs`).
    wildcards: wildcard::Wildcards,
    /// Retained messages (`retained.rs`).
    retained: retained::Retained,
    /// Consumer groups (`group.rs`).
    groups: group::Groups,
}

impl Broker {
    /// A broker with no channels, for environment `env`.
    pub(crate) fn new(config: BrokerConfig, env: u32) -> Broker {
        Broker {
            config,
            prefix: env_prefix(env),
            ..Broker::default()
        }
    }

    /// The broker's settings.
    pub(crate) fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The id of channel `name`, creating it on first use.
    pub(crate) fn channel(&mut self, name: &str) -> ChannelId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = ChannelId(self.names.len() as u32);
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        self.subs.push(Subscribers::default());
        let policy = ChannelPolicy::resolve(&self.config.channels, &self.prefix, name);
        self.guarantees |= !policy.is_plain();
        self.retained.note_policy(&policy);
        self.policies.push(policy);
        if self.wildcards.any() {
            self.cover_new_channel(id);
        }
        id
    }

    /// The policy of a channel.
    #[inline]
    pub(crate) fn policy(&self, id: ChannelId) -> &ChannelPolicy {
        &self.policies[id.index()]
    }

    /// Whether any channel so far has a policy beyond plain at-most-once
    /// routing (if not, the engine skips every guarantee check).
    #[inline]
    pub(crate) fn guarantees(&self) -> bool {
        self.guarantees
    }

    /// The id of an existing channel.
    pub(crate) fn lookup(&self, name: &str) -> Option<ChannelId> {
        self.ids.get(name).copied()
    }

    /// The name of a channel.
    pub(crate) fn channel_name(&self, id: ChannelId) -> &str {
        &self.names[id.index()]
    }

    /// All channel names, by id.
    pub(crate) fn channel_names(&self) -> &[String] {
        &self.names
    }

    /// Subscribes `agent` (or changes how it receives). Idempotent. True if
    /// the agent was not a subscriber of the channel before (through this
    /// or a wildcard subscription).
    pub(crate) fn subscribe(
        &mut self,
        channel: ChannelId,
        agent: AgentId,
        delivery: Delivery,
    ) -> bool {
        self.wildcards.note_direct(channel, agent, true);
        self.add_subscriber(channel, agent, delivery)
    }

    /// Removes `agent`'s direct subscription; true if it had one. While a
    /// wildcard subscription of the agent still covers the channel, the
    /// agent stays a subscriber.
    pub(crate) fn unsubscribe(&mut self, channel: ChannelId, agent: AgentId) -> bool {
        if let Some(had) = self.wildcards.note_direct(channel, agent, false) {
            return had;
        }
        self.remove_subscriber(channel, agent)
    }

    /// Puts `agent` in the channel's subscriber lists (at the end of the
    /// subscription order), or changes how it receives; true if it was not
    /// there.
    fn add_subscriber(&mut self, channel: ChannelId, agent: AgentId, delivery: Delivery) -> bool {
        let subs = &mut self.subs[channel.index()];
        match subs.by_agent.binary_search_by_key(&agent, |s| s.0) {
            Ok(i) => {
                subs.by_agent[i].1 = delivery;
                if let Some(s) = subs.in_order.iter_mut().find(|s| s.agent == agent) {
                    s.delivery = delivery;
                }
                false
            }
            Err(i) => {
                subs.by_agent.insert(i, (agent, delivery));
                subs.in_order.push(Subscription { agent, delivery });
                true
            }
        }
    }

    /// Takes `agent` out of the channel's subscriber lists; true if it was
    /// there.
    fn remove_subscriber(&mut self, channel: ChannelId, agent: AgentId) -> bool {
        let subs = &mut self.subs[channel.index()];
        match subs.by_agent.binary_search_by_key(&agent, |s| s.0) {
            Ok(i) => {
                subs.by_agent.remove(i);
                subs.in_order.retain(|s| s.agent != agent);
                true
            }
            Err(_) => false,
        }
    }

    /// The subscribers of a channel, in subscription order.
    #[inline]
    pub(crate) fn subscribers(&self, channel: ChannelId) -> &[Subscription] {
        &self.subs[channel.index()].in_order
    }

    /// How `agent` receives `channel`, if it subscribes (a binary search,
    /// whatever the number of subscribers).
    #[inline]
    pub(crate) fn subscription(&self, channel: ChannelId, agent: AgentId) -> Option<Delivery> {
        let subs = &self.subs[channel.index()].by_agent;
        subs.binary_search_by_key(&agent, |s| s.0)
            .ok()
            .map(|i| subs[i].1)
    }
}

/// One agent's pull buffers, one FIFO per channel.
#[derive(Clone, Debug, Default)]
pub(crate) struct Mailbox {
    // Few channels per agent: a linear scan beats a map.
    queues: Vec<(ChannelId, VecDeque<Message>)>,
}

impl Mailbox {
    /// Appends a copy; returns it back if the channel's buffer holds
    /// `capacity` already.
    pub(crate) fn push(&mut self, msg: Message, capacity: usize) -> Result<(), Message> {
        let ch = msg.channel;
        let q = match self.queues.iter().position(|(c, _)| *c == ch) {
            Some(i) => &mut self.queues[i].1,
            None => {
                self.queues.push((ch, VecDeque::new()));
                &mut self.queues.last_mut().expect("just pushed").1
            }
        };
        if q.len() >= capacity {
            return Err(msg);
        }
        q.push_back(msg);
        Ok(())
    }

    fn queue(&self, ch: ChannelId) -> Option<&VecDeque<Message>> {
        self.queues.iter().find(|(c, _)| *c == ch).map(|(_, q)| q)
    }

    /// Removes and returns the oldest copy on `ch`.
    pub(crate) fn consume(&mut self, ch: ChannelId) -> Option<Message> {
        self.queues
            .iter_mut()
            .find(|(c, _)| *c == ch)
            .and_then(|(_, q)| q.pop_front())
    }

    /// The oldest copy on `ch`, left in place.
    pub(crate) fn peek(&self, ch: ChannelId) -> Option<&Message> {
        self.queue(ch).and_then(|q| q.front())
    }

    /// The channels this mailbox has held copies of.
    pub(crate) fn channels(&self) -> impl Iterator<Item = ChannelId> + '_ {
        self.queues.iter().map(|(c, _)| *c)
    }

    /// Discards every copy waiting on `ch` (or on every channel);
    /// returns how many.
    pub(crate) fn clear(&mut self, ch: Option<ChannelId>) -> u64 {
        let mut n = 0;
        for (c, q) in &mut self.queues {
            if ch.is_none_or(|ch| ch == *c) {
                n += q.len() as u64;
                q.clear();
            }
        }
        n
    }

    /// How many copies wait on `ch`.
    pub(crate) fn pending(&self, ch: ChannelId) -> usize {
        self.queue(ch).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{MessageKind, MsgId, Payload, Recipient};
    use crate::time::SimTime;

    fn msg(id: u64, ch: ChannelId) -> Message {
        Message {
            id: MsgId(id),
            env: 0,
            channel: ch,
            sender: AgentId(0),
            recipient: Recipient::Broadcast,
            kind: MessageKind::INFO,
            sent: SimTime::ZERO,
            payload: Payload::Empty,
            correlation: None,
        }
    }

    #[test]
    fn interning_is_stable_and_dense() {
        let mut b = Broker::new(BrokerConfig::default(), 0);
        let a = b.channel("env0/actions");
        let s = b.channel("env0/state_updates");
        assert_eq!((a, s), (ChannelId(0), ChannelId(1)));
        assert_eq!(b.channel("env0/actions"), a);
        assert_eq!(b.channel_name(s), "env0/state_updates");
        assert_eq!(b.lookup("nope"), None);
    }

    #[test]
    fn subscriptions_keep_order_and_are_idempotent() {
        let mut b = Broker::new(BrokerConfig::default(), 0);
        let c = b.channel("c");
        b.subscribe(c, AgentId(2), Delivery::Push);
        b.subscribe(c, AgentId(0), Delivery::Push);
        b.subscribe(c, AgentId(2), Delivery::Pull);
        let subs: Vec<_> = b
            .subscribers(c)
            .iter()
            .map(|s| (s.agent.0, s.delivery))
            .collect();
        assert_eq!(subs, vec![(2, Delivery::Pull), (0, Delivery::Push)]);
        assert_eq!(b.subscription(c, AgentId(2)), Some(Delivery::Pull));
        assert_eq!(b.subscription(c, AgentId(0)), Some(Delivery::Push));
        assert_eq!(b.subscription(c, AgentId(1)), None);
        assert!(b.unsubscribe(c, AgentId(2)));
        assert_eq!(b.subscription(c, AgentId(2)), None);
        assert!(!b.unsubscribe(c, AgentId(2)));
        assert_eq!(b.subscribers(c).len(), 1);
    }

    #[test]
    fn mailbox_consume_peek_and_overflow() {
        let mut m = Mailbox::default();
        let (c1, c2) = (ChannelId(1), ChannelId(2));
        m.push(msg(1, c1), 2).unwrap();
        m.push(msg(2, c1), 2).unwrap();
        assert!(m.push(msg(3, c1), 2).is_err());
        m.push(msg(4, c2), 2).unwrap();
        assert_eq!(m.peek(c1).unwrap().id, MsgId(1));
        assert_eq!(m.pending(c1), 2);
        assert_eq!(m.consume(c1).unwrap().id, MsgId(1));
        assert_eq!(m.consume(c1).unwrap().id, MsgId(2));
        assert_eq!(m.consume(c1), None);
        assert_eq!(m.consume(c2).unwrap().id, MsgId(4));
    }
}
