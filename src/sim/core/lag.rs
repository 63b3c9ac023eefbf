//! Consumer lag of pull subscribers, for the per-entity metrics: after each
//! change of an agent's pull buffer for a channel, the engine reports how
//! many copies wait there ([`EntityMetrics::set_lag`]). The records do not
//! say this (a `deliver` into a buffer is not a consume), so only a live run
//! has it.
//!
//! The same report keeps the lag of consumer groups on unacknowledged
//! channels (`group.rs`): copies waiting in members' buffers.
//!
//! **Invariant:** with entity metrics off and no consumer group this costs
//! one predictable branch per buffer change and nothing else.
//!
//! [`EntityMetrics::set_lag`]: crate::metrics::EntityMetrics::set_lag

use crate::message::ChannelId;

use super::Core;

impl Core {
    /// `agent`'s pull buffer for `channel` changed (a copy entered or was
    /// consumed): report what waits there now, if entity metrics are on.
    #[inline(always)]
    pub(super) fn lag_changed(&mut self, agent: u32, channel: u32) {
        if self.trace.entity().is_some() || self.broker.any_groups() {
            self.report_lag(agent, channel);
        }
    }

    #[cold]
    #[inline(never)]
    fn report_lag(&mut self, agent: u32, channel: u32) {
        let waiting = self.agents[agent as usize]
            .mailbox
            .pending(ChannelId(channel)) as u64;
        if let Some(e) = self.trace.entity_mut() {
            e.set_lag(agent, channel, waiting);
        }
        if self.broker.grouped(ChannelId(channel)) {
            self.group_buffer_changed(agent, ChannelId(channel), waiting);
        }
    }
}
