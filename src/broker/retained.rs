//! Retained messages: per channel whose policy says `retain = true`, the
//! last message routed on it, which the engine sends to each agent that
//! subscribes to the channel later (docs/broker_topics.md).
//!
//! The broker keeps only a handle: the message's slot in the engine's
//! message store, which holds one reference to it for the broker. The
//! engine (`sim/core/retain.rs`) takes and releases those references.

use crate::message::ChannelId;

use super::{Broker, ChannelPolicy};

/// The retained messages of a broker.
#[derive(Clone, Debug, Default)]
pub(super) struct Retained {
    /// Whether some channel's policy retains (else the engine skips every
    /// retention step: one flag per routed message).
    any: bool,
    /// Per channel id, the retained message's store slot; shorter than the
    /// channel list when the last channels retain nothing.
    slots: Vec<Option<u32>>,
}

impl Retained {
    /// Notes the policy of a channel just interned.
    #[inline]
    pub(super) fn note_policy(&mut self, p: &ChannelPolicy) {
        self.any |= p.retain;
    }
}

impl Broker {
    /// Whether any channel so far retains its last message.
    #[inline]
    pub(crate) fn retains(&self) -> bool {
        self.retained.any
    }

    /// The store slot of the message channel `ch` retains, if any.
    #[inline]
    pub(crate) fn retained(&self, ch: ChannelId) -> Option<u32> {
        self.retained.slots.get(ch.index()).copied().flatten()
    }

    /// Makes `slot` the message `ch` retains; returns the slot it retained
    /// before (whose reference the caller releases).
    pub(crate) fn set_retained(&mut self, ch: ChannelId, slot: u32) -> Option<u32> {
        let slots = &mut self.retained.slots;
        if slots.len() <= ch.index() {
            slots.resize(ch.index() + 1, None);
        }
        slots[ch.index()].replace(slot)
    }

    /// Forgets every retained message; returns their slots, by channel
    /// (the caller releases them).
    pub(crate) fn take_retained(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.retained.slots)
            .into_iter()
            .flatten()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{BrokerConfig, ChannelSpec};

    #[test]
    fn handles_are_kept_per_channel_and_replaced() {
        let config = BrokerConfig {
            channels: vec![ChannelSpec {
                topic: "{env}/keep/#".into(),
                retain: Some(true),
                ..ChannelSpec::default()
            }],
            ..BrokerConfig::default()
        };
        let mut b = Broker::new(config, 0);
        let plain = b.channel("env0/plain");
        assert!(!b.retains());
        let keep = b.channel("env0/keep/x");
        assert!(b.retains() && b.policy(keep).retain && !b.policy(plain).retain);
        assert_eq!(b.retained(keep), None);
        assert_eq!(b.set_retained(keep, 7), None);
        assert_eq!(b.set_retained(keep, 9), Some(7));
        assert_eq!((b.retained(keep), b.retained(plain)), (Some(9), None));
        assert_eq!(b.take_retained(), vec![9]);
        assert_eq!(b.retained(keep), None);
    }
}
