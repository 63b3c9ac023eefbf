//! The engine's side of wildcard subscriptions and retained messages
//! (docs/broker_topics.md).
//!
//! The broker resolves wildcard subscriptions into each channel's plain
//! subscriber list (`broker/wildcard.rs`), so routing does not change.
//! What the engine adds here:
//!
//! - **Retention.** When a broadcast is routed on a channel whose policy
//!   says `retain = true`, the broker takes a reference to it in the
//!   message store (the payload is shared, never copied) and releases the
//!   message it retained before. Messages addressed to one agent are never
//!   retained: they are not for whoever subscribes next.
//! - **Retained copies.** When an agent becomes a subscriber of a channel
//!   that retains a message (a direct subscription, or a wildcard one that
//!   covers it), the broker sends it one copy of that message, recorded as
//!   a `retained` event (node: the agent) and counted in
//!   `retained_copies`, departing at the subscription time plus the
//!   broker's `processing`, through the same path as every copy
//!   (`send_copy`: partition check, downlinks, duplicates, drops). An agent
//!   that already subscribed to the channel (through another of its
//!   subscriptions) gets nothing more. While the broker is down (a
//!   `broker_down` fault), it sends no retained copy.
//! - **Release.** `Simulation::finish` releases every retained message, so
//!   the store ends holding only copies still in flight.
//!
//! A retained message held counts towards `limits.max_in_flight_bytes`
//! like any message in the store.
//!
//! Per routed message, a run whose channels do not retain pays one flag
//! test (`Broker::retains`).

use crate::broker::{Delivery, FilterError};
use crate::message::{AgentId, ChannelId, Message, Recipient};
use crate::trace::EventKind;

use super::{Cargo, Core, MsgHead};

impl Core {
    /// Subscribes `agent` to every channel `filter` matches (now and
    /// interned later), sending it the retained message of each channel it
    /// newly subscribes to, in channel-id order.
    pub(in crate::sim) fn subscribe_filter(
        &mut self,
        agent: AgentId,
        filter: &str,
        d: Delivery,
    ) -> Result<(), FilterError> {
        if self.sessions.is_some() {
            return self.session_subscribe_filter(agent, filter, d);
        }
        self.subscribe_filter_now(agent, filter, d)
    }

    /// The broker subscribes `agent` to `filter` now.
    pub(super) fn subscribe_filter_now(
        &mut self,
        agent: AgentId,
        filter: &str,
        d: Delivery,
    ) -> Result<(), FilterError> {
        let newly = self.broker.subscribe_filter(filter, agent, d)?;
        if self.broker.retains() {
            for ch in newly {
                self.send_retained(agent, ch, d);
            }
        }
        Ok(())
    }

    /// Ends `agent`'s subscription to `filter`; true if it had it.
    pub(in crate::sim) fn unsubscribe_filter(&mut self, agent: AgentId, filter: &str) -> bool {
        if self.sessions.is_some() {
            return self.session_unsubscribe_filter(agent, filter);
        }
        self.broker.unsubscribe_filter(filter, agent)
    }

    /// `agent` just became a subscriber of `ch` (receiving as `d`): the
    /// broker sends it the channel's retained message, if there is one.
    pub(super) fn send_retained(&mut self, agent: AgentId, ch: ChannelId, d: Delivery) {
        let Some(slot) = self.broker.retained(ch) else {
            return;
        };
        if self.faults.any_active() && self.faults.broker_down() {
            return;
        }
        let (h, bytes) = {
            let m = self.msgs.get(slot);
            (MsgHead::of(m), m.payload.wire_bytes())
        };
        self.metrics.retained_copies += 1;
        self.record(EventKind::Retained, h, agent.0, 0);
        let depart = self.now + self.broker.config().processing;
        let cargo = if d == Delivery::Pull {
            Cargo::Pull
        } else {
            Cargo::Push
        };
        // On an acknowledged channel the retained copy is delivered with
        // the channel's guarantee, like any copy.
        if self.broker.guarantees() && self.broker.policy(ch).qos.acked() {
            self.track_delivery(slot, agent.0, cargo, depart);
        }
        self.send_down(h, slot, depart, bytes, agent.0, cargo);
    }

    /// The message in `slot` was just routed: if it is a broadcast on a
    /// channel that retains, the broker keeps it (one more reference) in
    /// place of the message it kept before (released).
    pub(super) fn retain_routed(&mut self, slot: u32) {
        let (ch, recipient) = {
            let m = self.msgs.get(slot);
            (m.channel, m.recipient)
        };
        if recipient != Recipient::Broadcast || !self.broker.policy(ch).retain {
            return;
        }
        self.msgs.add_ref(slot);
        if let Some(old) = self.broker.set_retained(ch, slot) {
            self.msgs.release(old);
        }
    }

    /// The message channel `ch` retains now.
    pub(in crate::sim) fn retained_message(&self, ch: ChannelId) -> Option<&Message> {
        self.broker.retained(ch).map(|slot| self.msgs.get(slot))
    }

    /// Releases every retained message (the end of the run).
    pub(in crate::sim) fn release_retained(&mut self) {
        for slot in self.broker.take_retained() {
            self.msgs.release(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::broker::{BrokerConfig, ChannelSpec};
    use crate::message::{MessageKind, Payload};
    use crate::sim::{Agent, Context, SimBuilder};
    use crate::time::{SimDuration, SimTime};

    use super::*;

    /// Broadcasts 64 floats on "r" at 0 and 1 ms, and once addressed to
    /// `b` at 2 ms.
    struct Pub;
    impl Agent for Pub {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            for t in 0..3 {
                ctx.set_timer(SimDuration::from_millis(t), t);
            }
        }
        fn on_timer(&mut self, ctx: &mut Context<'_>, tag: u64) {
            let ch = ctx.channel("r");
            let to = match tag {
                2 => Recipient::Agent(ctx.agent_id("b").expect("b")),
                _ => Recipient::Broadcast,
            };
            ctx.publish(ch, to, MessageKind::INFO, Payload::values(&[1.0; 64]));
        }
    }

    /// Subscribes to "r" at 10 ms (directly) or through "#".
    struct Late(bool);
    impl Agent for Late {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            ctx.set_timer(SimDuration::from_millis(10), 0);
        }
        fn on_timer(&mut self, ctx: &mut Context<'_>, _tag: u64) {
            if self.0 {
                ctx.subscribe_filter("#", Delivery::Pull).expect("valid");
            } else {
                let ch = ctx.channel("r");
                ctx.subscribe(ch, Delivery::Push);
            }
        }
    }

    fn build(retain: bool) -> crate::sim::Simulation {
        SimBuilder::new(0)
            .broker(BrokerConfig {
                channels: vec![ChannelSpec {
                    topic: "r".into(),
                    retain: Some(retain),
                    ..ChannelSpec::default()
                }],
                ..BrokerConfig::default()
            })
            .agent("p", Pub)
            .agent("b", Late(false))
            .agent("c", Late(true))
            .build()
            .expect("valid")
    }

    #[test]
    fn the_store_holds_the_retained_message_once_and_ends_empty() {
        let mut sim = build(true);
        sim.run_until(SimTime::ZERO + SimDuration::from_millis(5))
            .expect("runs");
        // Everything delivered or dropped; only the retained broadcast
        // (the second: the addressed one is not retained) is held.
        assert_eq!(sim.in_flight(), 0);
        let store = &sim.core.msgs;
        assert_eq!(store.live(), 1);
        assert_eq!(store.bytes(), Payload::values(&[1.0; 64]).heap_bytes());
        let ch = sim.core.lookup_channel("r").expect("interned");
        assert_eq!(
            sim.core.broker.retained(ch).map(|s| store.get(s).id.0),
            Some(1)
        );
        sim.run().expect("runs");
        assert_eq!(sim.core.msgs.live(), 1, "copies sent, the broker keeps it");
        let s = sim.finish().expect("finishes");
        assert_eq!(s.retained_copies, 2, "b directly, c through `#`");
        assert_eq!(s.copies, 0);
        assert_eq!(s.delivered, 2);
        assert_eq!((sim.core.msgs.live(), sim.core.msgs.bytes()), (0, 0));
    }

    #[test]
    fn without_retain_nothing_is_held_or_sent() {
        let mut sim = build(false);
        sim.run().expect("runs");
        assert_eq!(sim.core.msgs.live(), 0);
        let s = sim.finish().expect("finishes");
        assert_eq!((s.retained_copies, s.delivered), (0, 0));
    }
}
