//! Wildcard subscriptions (MQTT topic filters with `+` and `#`).
//!
//! A wildcard subscription is resolved when it changes and when a channel
//! is interned, never per message: the broker keeps, for every channel,
//! the plain list of its subscribers ([`Broker::subscribers`]), and a
//! wildcard subscription only adds agents to (or takes them out of) those
//! lists. Routing reads the same lists as without wildcards, at the same
//! cost.
//!
//! Rules (docs/broker_topics.md is the user's reference):
//!
//! - A wildcard subscription covers every channel whose name matches its
//!   filter ([`topic::matches`]): those that exist when it is made (in
//!   channel-id order, i.e. interning order), and every channel interned
//!   later (at interning time, the covering wildcard subscriptions add
//!   their agents in subscription order).
//! - An agent is a subscriber of a channel once, however many of its own
//!   subscriptions cover it: it gets one copy per message, and keeps the
//!   place in the channel's subscription order it got from the first of
//!   them. It stops being a subscriber when the last of them goes.
//! - How it receives is the delivery of its most recent subscription that
//!   covers the channel; ending one of several leaves the delivery as it is.
//!   Subscribing again with the same filter counts as one subscription and
//!   makes it the most recent (it moves to the end of the wildcard list, so
//!   channels interned later list the agent in that new order).
//!
//! Bookkeeping: `cover` counts, per (channel, agent) covered by at least
//! one wildcard subscription, how many of the agent's wildcard
//! subscriptions cover it and whether it also subscribes directly. A pair
//! that no wildcard covers is not in it, so a run without wildcards never
//! touches it and plain subscriptions work exactly as before.

use std::collections::BTreeMap;

use crate::message::{AgentId, ChannelId};

use super::{Broker, Delivery, topic};

/// A topic filter that [`topic::check_filter`] refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The filter is not a valid MQTT topic filter (the message says why:
    /// empty, a wildcard that is not a whole level, `#` not last). Write
    /// wildcards as whole levels: `a/+/c`, `a/#`.
    #[error("invalid topic filter: {0}")]
    Invalid(String),
}

/// One agent's wildcard subscription.
#[derive(Clone, Debug)]
struct FilterSub {
    filter: String,
    agent: AgentId,
    delivery: Delivery,
}

/// What covers one (channel, agent) pair that some wildcard covers.
#[derive(Clone, Copy, Debug)]
struct Cover {
    /// The agent's wildcard subscriptions that cover the channel.
    filters: u32,
    /// Whether the agent also subscribes to the channel directly.
    direct: bool,
}

/// Every wildcard subscription of a broker, and what they cover.
#[derive(Clone, Debug, Default)]
pub(super) struct Wildcards {
    /// In subscription order (a re-subscription moves to the end).
    subs: Vec<FilterSub>,
    /// By (channel, agent); never iterated in a way that affects a run.
    cover: BTreeMap<(u32, u32), Cover>,
}

impl Wildcards {
    /// Whether any wildcard subscription exists.
    #[inline]
    pub(super) fn any(&self) -> bool {
        !self.subs.is_empty()
    }

    /// Notes that `agent` subscribes to `channel` directly (`direct`) or
    /// ends its direct subscription. If a wildcard covers the pair, returns
    /// whether the agent subscribed directly before; `None` if no wildcard
    /// covers it (the plain lists say everything).
    pub(super) fn note_direct(
        &mut self,
        channel: ChannelId,
        agent: AgentId,
        direct: bool,
    ) -> Option<bool> {
        if self.cover.is_empty() {
            return None;
        }
        let c = self.cover.get_mut(&(channel.0, agent.0))?;
        Some(std::mem::replace(&mut c.direct, direct))
    }
}

impl Broker {
    /// Subscribes `agent` to every channel `filter` matches, now and
    /// interned later (a filter without wildcards is a plain subscription
    /// to that one channel, created if need be). Returns the channels the
    /// agent newly subscribes to (it did not before), in channel-id order.
    pub(crate) fn subscribe_filter(
        &mut self,
        filter: &str,
        agent: AgentId,
        delivery: Delivery,
    ) -> Result<Vec<ChannelId>, FilterError> {
        topic::check_filter(filter).map_err(FilterError::Invalid)?;
        if !topic::is_wildcard(filter) {
            let ch = self.channel(filter);
            return Ok(if self.subscribe(ch, agent, delivery) {
                vec![ch]
            } else {
                Vec::new()
            });
        }
        let w = &mut self.wildcards.subs;
        let again = w
            .iter()
            .position(|s| s.agent == agent && s.filter == filter);
        if let Some(i) = again {
            w.remove(i);
        }
        w.push(FilterSub {
            filter: filter.to_string(),
            agent,
            delivery,
        });
        let mut newly = Vec::new();
        for ch in 0..self.names.len() {
            if !topic::matches(filter, &self.names[ch]) {
                continue;
            }
            let ch = ChannelId(ch as u32);
            if again.is_some() {
                // Already covered by this very subscription: only the
                // delivery changes.
                self.add_subscriber(ch, agent, delivery);
            } else if self.cover_add(ch, agent, delivery) {
                newly.push(ch);
            }
        }
        Ok(newly)
    }

    /// Ends `agent`'s subscription to `filter` (a filter without wildcards:
    /// its direct subscription to that channel). The agent stays a
    /// subscriber of each channel another of its subscriptions covers.
    /// True if it had that subscription.
    pub(crate) fn unsubscribe_filter(&mut self, filter: &str, agent: AgentId) -> bool {
        if !topic::is_wildcard(filter) {
            return match self.lookup(filter) {
                Some(ch) => self.unsubscribe(ch, agent),
                None => false,
            };
        }
        let w = &mut self.wildcards.subs;
        let Some(i) = w
            .iter()
            .position(|s| s.agent == agent && s.filter == filter)
        else {
            return false;
        };
        w.remove(i);
        for ch in 0..self.names.len() {
            if topic::matches(filter, &self.names[ch]) {
                self.cover_remove(ChannelId(ch as u32), agent);
            }
        }
        true
    }

    /// A channel was just interned: the wildcard subscriptions that match
    /// its name add their agents, in subscription order.
    pub(super) fn cover_new_channel(&mut self, ch: ChannelId) {
        for i in 0..self.wildcards.subs.len() {
            let s = &self.wildcards.subs[i];
            if topic::matches(&s.filter, &self.names[ch.index()]) {
                let (agent, delivery) = (s.agent, s.delivery);
                self.cover_add(ch, agent, delivery);
            }
        }
    }

    /// One more wildcard subscription of `agent` covers `ch`; true if the
    /// agent was not a subscriber of it before.
    fn cover_add(&mut self, ch: ChannelId, agent: AgentId, delivery: Delivery) -> bool {
        let key = (ch.0, agent.0);
        if let Some(c) = self.wildcards.cover.get_mut(&key) {
            c.filters += 1;
            self.add_subscriber(ch, agent, delivery);
            return false;
        }
        let direct = self.subscription(ch, agent).is_some();
        self.wildcards
            .cover
            .insert(key, Cover { filters: 1, direct });
        self.add_subscriber(ch, agent, delivery)
    }

    /// One wildcard subscription of `agent` no longer covers `ch`.
    fn cover_remove(&mut self, ch: ChannelId, agent: AgentId) {
        let key = (ch.0, agent.0);
        let Some(c) = self.wildcards.cover.get_mut(&key) else {
            return;
        };
        c.filters -= 1;
        if c.filters == 0 {
            let direct = c.direct;
            self.wildcards.cover.remove(&key);
            if !direct {
                self.remove_subscriber(ch, agent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerConfig;

    const A: AgentId = AgentId(0);
    const B: AgentId = AgentId(1);

    fn subs(b: &Broker, name: &str) -> Vec<(u32, Delivery)> {
        b.lookup(name)
            .map(|c| {
                b.subscribers(c)
                    .iter()
                    .map(|s| (s.agent.0, s.delivery))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_wildcard_covers_channels_before_and_after_it() {
        let mut b = Broker::new(BrokerConfig::default(), 0);
        let x = b.channel("env0/agent/x/device_actions");
        b.channel("env0/agent/x/state");
        let newly = b
            .subscribe_filter("env0/agent/+/device_actions", A, Delivery::Push)
            .unwrap();
        assert_eq!(newly, vec![x]);
        b.subscribe_filter("env0/#", B, Delivery::Pull).unwrap();
        let y = b.channel("env0/agent/y/device_actions");
        assert_eq!(
            subs(&b, "env0/agent/y/device_actions"),
            vec![(0, Delivery::Push), (1, Delivery::Pull)],
            "added in subscription order at interning"
        );
        assert_eq!(subs(&b, "env0/agent/x/state"), vec![(1, Delivery::Pull)]);
        assert_eq!(b.subscription(y, A), Some(Delivery::Push));
        b.channel("env1/agent/z/device_actions");
        assert!(subs(&b, "env1/agent/z/device_actions").is_empty());
    }

    #[test]
    fn overlapping_subscriptions_are_one_and_counted() {
        let mut b = Broker::new(BrokerConfig::default(), 0);
        let c = b.channel("a/b");
        assert!(b.subscribe(c, A, Delivery::Push));
        assert!(
            b.subscribe_filter("a/+", A, Delivery::Pull)
                .unwrap()
                .is_empty()
        );
        assert!(
            b.subscribe_filter("#", A, Delivery::Pull)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            subs(&b, "a/b"),
            vec![(0, Delivery::Pull)],
            "one entry, newest mode"
        );
        // Direct gone: two wildcards still cover.
        assert!(b.unsubscribe(c, A));
        assert!(!b.unsubscribe(c, A), "no direct subscription any more");
        assert_eq!(b.subscription(c, A), Some(Delivery::Pull));
        assert!(b.unsubscribe_filter("a/+", A));
        assert!(!b.unsubscribe_filter("a/+", A));
        assert_eq!(b.subscription(c, A), Some(Delivery::Pull));
        assert!(b.unsubscribe_filter("#", A));
        assert_eq!(b.subscription(c, A), None);
        assert!(b.wildcards.cover.is_empty());
        // The other way round: the wildcard goes first, the direct one stays.
        b.subscribe_filter("a/#", A, Delivery::Push).unwrap();
        assert!(!b.subscribe(c, A, Delivery::Push));
        assert!(b.unsubscribe_filter("a/#", A));
        assert_eq!(b.subscription(c, A), Some(Delivery::Push));
        assert!(b.unsubscribe(c, A));
        assert_eq!(b.subscription(c, A), None);
    }

    #[test]
    fn resubscribing_one_filter_changes_only_the_mode() {
        let mut b = Broker::new(BrokerConfig::default(), 0);
        let c = b.channel("a/b");
        assert_eq!(
            b.subscribe_filter("a/+", A, Delivery::Push).unwrap(),
            vec![c]
        );
        assert!(
            b.subscribe_filter("a/+", A, Delivery::Pull)
                .unwrap()
                .is_empty()
        );
        assert_eq!(b.subscription(c, A), Some(Delivery::Pull));
        assert!(b.unsubscribe_filter("a/+", A), "one unsubscribe ends it");
        assert_eq!(b.subscription(c, A), None);
    }

    #[test]
    fn dollar_topics_and_plain_filters() {
        let mut b = Broker::new(BrokerConfig::default(), 0);
        b.channel("$SYS/load");
        b.subscribe_filter("#", A, Delivery::Push).unwrap();
        b.subscribe_filter("$SYS/#", B, Delivery::Push).unwrap();
        assert_eq!(subs(&b, "$SYS/load"), vec![(1, Delivery::Push)]);
        // A plain filter is a direct subscription, creating the channel.
        let newly = b.subscribe_filter("plain", B, Delivery::Push).unwrap();
        let p = b.lookup("plain").unwrap();
        assert_eq!(newly, vec![p]);
        assert_eq!(
            subs(&b, "plain"),
            vec![(0, Delivery::Push), (1, Delivery::Push)]
        );
        assert!(b.unsubscribe_filter("plain", B));
        assert!(!b.unsubscribe_filter("nope", B));
        assert_eq!(
            b.subscribe_filter("a/#/b", A, Delivery::Push),
            Err(FilterError::Invalid(
                topic::check_filter("a/#/b").unwrap_err()
            ))
        );
    }
}
