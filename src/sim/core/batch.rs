//! Batch publish: several messages in one transmission on the publisher's
//! first link.
//!
//! The batch crosses that link as one frame: one latency draw, one loss
//! draw (all or none arrive), one duplication draw, and the rate and queue
//! charge the sum of the payloads plus one header. At the far end the
//! messages part: each is routed (or forwarded by a router) on its own, in
//! publish order. Messages on a channel whose publishes are acknowledged
//! are sent one by one, each tracked on its own.

use crate::message::{AgentId, ChannelId, MessageKind, MsgId, Payload, Recipient};

use super::{Cargo, Core, Leg};

impl Core {
    /// Publishes `payloads` on `channel` as one batch; returns the first id
    /// (the others follow it, one by one).
    pub(in crate::sim) fn publish_batch(
        &mut self,
        sender: AgentId,
        channel: ChannelId,
        recipient: Recipient,
        kind: MessageKind,
        payloads: Vec<Payload>,
    ) -> Option<MsgId> {
        if self.broker.guarantees() && self.broker.policy(channel).publish_qos.acked() {
            let mut first = None;
            for p in payloads {
                let id = self.publish(sender, channel, recipient, kind, p, None);
                first.get_or_insert(id);
            }
            return first;
        }
        let mut msgs = Vec::with_capacity(payloads.len());
        let mut bytes = 0;
        for p in payloads {
            let (msg, h) = self.new_message(sender, channel, recipient, kind, p, None);
            bytes += msg.payload.wire_bytes();
            msgs.push((msg, h));
        }
        let first = msgs.first().map(|(m, _)| m.id);
        let leg = Leg {
            agent: sender.0,
            hop: 0,
            up: true,
            cargo: Cargo::Push,
        };
        let link = self.leg_link(leg);
        let transit = self.send_link(link, self.now, bytes);
        let dup = self.net.duplicate(link);
        for (msg, h) in msgs {
            let slot = self.store(msg);
            self.arrive_later(h, slot, leg, transit);
            if let Some(dup) = dup {
                self.duplicated(h, leg, link);
                self.arrive_later(h, slot, leg, dup);
            }
            self.msgs.release(slot);
        }
        first
    }
}
