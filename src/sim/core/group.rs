//! The engine's side of consumer groups (docs/broker_groups.md; the
//! membership tables and strategies are in `broker/group.rs`).
//!
//! - **Routing.** After the plain subscribers' copies, each group of the
//!   channel gets one copy, sent to the member its strategy picks
//!   (`route_to_groups`, hooked in `route` behind `Broker::grouped`).
//!   Members that have crashed are skipped while another member is up.
//! - **Redelivery.** On an acknowledged channel a group delivery is an
//!   obligation of the group: it remembers its group (`Pending::group`).
//!   When its ack timeout runs out, the retransmission goes to another
//!   member by the strategy (`redeliver`, hooked in `retry_live`), the
//!   obligation moving with it (same attempt count, same retry limit), and
//!   the `retransmit` event carries `DETAIL_REDELIVER`. An ack from any
//!   member that had the message closes it (`group_ack`).
//! - **Dedup.** On an exactly-once channel the receivers' record of what
//!   they have seen also holds one entry per group (`GROUP_SEEN | id`), so
//!   a redelivered copy reaching a second member after the first one
//!   received it (its ack lost) is acknowledged and discarded.
//! - **Lag and load.** `group_closed` (hooked in `close`) and
//!   `group_buffer_changed` (from `lag.rs`) keep each member's load and
//!   each group's lag.

use crate::broker::{Delivery, GroupError, NO_GROUP};
use crate::message::{AgentId, ChannelId};
use crate::metrics::entity::GroupStats;
use crate::metrics::{GroupsSummary, Summary};
use crate::time::SimTime;
use crate::trace::DETAIL_REDELIVER;

use super::super::msg_store::PendingState;
use super::{Cargo, Core, MsgHead};

/// A group's entry in a message's `seen` list (agent ids stay below it).
const GROUP_SEEN: u32 = 1 << 31;

fn cargo_of(d: Delivery) -> Cargo {
    if d == Delivery::Pull {
        Cargo::Pull
    } else {
        Cargo::Push
    }
}

impl Core {
    /// `agent` joins group `name` on `ch`.
    pub(in crate::sim) fn subscribe_group(
        &mut self,
        agent: AgentId,
        ch: ChannelId,
        name: &str,
        d: Delivery,
    ) -> Result<(), GroupError> {
        self.broker.join_group(ch, name, agent, d)
    }

    /// `agent` leaves group `name` on `ch`; true if it was a member.
    pub(in crate::sim) fn unsubscribe_group(
        &mut self,
        agent: AgentId,
        ch: ChannelId,
        name: &str,
    ) -> bool {
        self.broker.leave_group(ch, name, agent)
    }

    /// The member of group `gid` for the message in `slot`, by the
    /// group's strategy: not `exclude`, not a crashed one unless
    /// `allow_crashed`, and (acknowledged channels) not one that already
    /// has an obligation on the message, unless `again` and it is this
    /// group's (the message is routed again: a duplicate from its uplink).
    fn pick_member(
        &mut self,
        gid: u32,
        slot: u32,
        exclude: Option<AgentId>,
        acked: bool,
        (allow_crashed, again): (bool, bool),
    ) -> Option<usize> {
        let agents = &self.agents;
        let crash = self.crash_seen && !allow_crashed;
        let meta = if acked { self.msgs.meta(slot) } else { None };
        let skip = |a: AgentId| {
            (crash && agents[a.index()].crashed)
                || meta
                    .and_then(|m| m.delivery_group(a.0))
                    .is_some_and(|g| !(again && g == gid))
        };
        let g = self.broker.group_mut(gid);
        match exclude {
            None => g.pick(skip),
            Some(from) => g.pick_other(from, skip),
        }
    }

    /// Sends one copy of a broadcast to each group of `ch` (one member
    /// each); returns how many copies were sent.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn route_to_groups(
        &mut self,
        h: MsgHead,
        slot: u32,
        depart: SimTime,
        bytes: u64,
        ch: ChannelId,
        acked: bool,
    ) -> usize {
        let mut sent = 0;
        for k in 0..self.broker.channel_groups(ch).len() {
            let gid = self.broker.channel_groups(ch)[k];
            // Up members first; a member that already has this message
            // (routed again) only if nobody else can take it.
            let Some(i) = [(false, false), (true, false), (true, true)]
                .into_iter()
                .find_map(|pass| self.pick_member(gid, slot, None, acked, pass))
            else {
                continue;
            };
            let g = self.broker.group_mut(gid);
            g.counts.routed += 1;
            let m = &mut g.members[i];
            m.assigned += 1;
            let (agent, d) = (m.agent, m.delivery);
            self.send_copy(h, slot, depart, bytes, agent.0, d, acked);
            if acked {
                self.group_tracked(slot, agent, gid);
            }
            sent += 1;
        }
        sent
    }

    /// The delivery of `slot` to `agent` just tracked is group `gid`'s.
    fn group_tracked(&mut self, slot: u32, agent: AgentId, gid: u32) {
        let Some(p) = self.msgs.meta_mut(slot).delivery(agent.0) else {
            return;
        };
        if p.state != PendingState::Open || p.group != NO_GROUP {
            return;
        }
        p.group = gid;
        let g = self.broker.group_mut(gid);
        if let Some(m) = g.member_mut(agent) {
            m.open += 1;
        }
        g.add_lag(true);
    }

    /// The ack timeout of group `gid`'s delivery of `slot` to `agent` ran
    /// out and attempt `next` is due: the delivery moves to another member
    /// if there is one (a redelivery). Returns the recipient, the
    /// `retransmit` detail and the cargo.
    #[cold]
    #[inline(never)]
    pub(super) fn redeliver(
        &mut self,
        slot: u32,
        agent: u32,
        gid: u32,
        next: u16,
        cargo: Cargo,
    ) -> (u32, u16, Cargo) {
        let old = AgentId(agent);
        let Some(i) = self.pick_member(gid, slot, Some(old), true, (false, false)) else {
            return (agent, next, cargo);
        };
        let g = self.broker.group_mut(gid);
        g.counts.redelivered += 1;
        let m = &mut g.members[i];
        m.assigned += 1;
        m.open += 1;
        let (new, cargo) = (m.agent, cargo_of(m.delivery));
        if let Some(m) = g.member_mut(old) {
            m.open = m.open.saturating_sub(1);
        }
        let meta = self.msgs.meta_mut(slot);
        let at = meta
            .deliveries
            .binary_search_by_key(&agent, |p| p.agent)
            .expect("the delivery being retransmitted");
        let mut p = meta.deliveries.remove(at);
        p.agent = new.0;
        p.cargo = cargo;
        let to = meta
            .deliveries
            .binary_search_by_key(&new.0, |p| p.agent)
            .expect_err("a member picked has no delivery of the message");
        meta.deliveries.insert(to, p);
        (new.0, next | DETAIL_REDELIVER, cargo)
    }

    /// A group delivery held by `agent` closed in `state`.
    #[cold]
    #[inline(never)]
    pub(super) fn group_closed(&mut self, gid: u32, agent: u32, state: PendingState) {
        let g = self.broker.group_mut(gid);
        if let Some(m) = g.member_mut(AgentId(agent)) {
            m.open = m.open.saturating_sub(1);
        }
        g.counts.acked += u64::from(state == PendingState::Acked);
        g.add_lag(false);
    }

    /// `agent`'s ack of `slot` found no open delivery of its own: if it is
    /// a member of a group whose delivery of the message moved to another
    /// member, the ack closes it (any member that had it may ack). True if
    /// it closed one.
    #[cold]
    #[inline(never)]
    pub(super) fn group_ack(&mut self, slot: u32, agent: u32) -> bool {
        let ch = self.msgs.get(slot).channel;
        let Some(gid) = self.broker.group_of(ch, AgentId(agent)) else {
            return false;
        };
        let holder = self.msgs.meta(slot).and_then(|m| {
            m.deliveries
                .iter()
                .find(|p| p.group == gid && p.state == PendingState::Open)
                .map(|p| p.agent)
        });
        holder.is_some_and(|h| self.close(slot, h, false, PendingState::Acked))
    }

    /// Whether the group of `agent` on `ch` has already received the
    /// message in `slot` (recording that it has now).
    #[cold]
    #[inline(never)]
    pub(super) fn group_seen(&mut self, slot: u32, ch: ChannelId, agent: u32) -> bool {
        let Some(gid) = self.broker.group_of(ch, AgentId(agent)) else {
            return false;
        };
        let key = GROUP_SEEN | gid;
        let seen = &mut self.msgs.meta_mut(slot).seen;
        match seen.binary_search(&key) {
            Ok(_) => true,
            Err(i) => {
                seen.insert(i, key);
                false
            }
        }
    }

    /// `agent`'s pull buffer for `ch` now holds `waiting` copies: on an
    /// unacknowledged channel they are its group's lag and its load.
    #[cold]
    #[inline(never)]
    pub(super) fn group_buffer_changed(&mut self, agent: u32, ch: ChannelId, waiting: u64) {
        if self.broker.policy(ch).qos.acked() {
            return;
        }
        let Some(gid) = self.broker.group_of(ch, AgentId(agent)) else {
            return;
        };
        let g = self.broker.group_mut(gid);
        let Some(m) = g.member_mut(AgentId(agent)) else {
            return;
        };
        let old = std::mem::replace(&mut m.buffered, waiting);
        g.counts.lag = (g.counts.lag + waiting).saturating_sub(old);
        g.counts.lag_max = g.counts.lag_max.max(g.counts.lag);
    }

    /// Fills in the groups' figures at the end of a run: the summary's
    /// totals, and one entry per group in the entity metrics (if on).
    pub(in crate::sim) fn report_groups(&mut self, summary: &mut Summary) {
        let mut totals = GroupsSummary::default();
        for g in self.broker.groups() {
            totals.add(&g.counts);
        }
        summary.groups = totals;
        if self.trace.entity().is_none() || !self.broker.any_groups() {
            return;
        }
        let stats: Vec<GroupStats> = self
            .broker
            .groups()
            .iter()
            .map(|g| {
                let mut members: Vec<(u32, u64)> = g
                    .members
                    .iter()
                    .map(|m| (m.agent.0, m.assigned))
                    .chain(g.former.iter().map(|&(a, n)| (a.0, n)))
                    .collect();
                // A member that left and joined again: one entry.
                members.sort_unstable();
                members.dedup_by(|b, a| {
                    let same = a.0 == b.0;
                    if same {
                        a.1 += b.1;
                    }
                    same
                });
                GroupStats {
                    channel: g.channel.0,
                    name: g.name.clone(),
                    counts: g.counts,
                    members,
                }
            })
            .collect();
        if let Some(e) = self.trace.entity_mut() {
            e.set_groups(stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::broker::{BrokerConfig, ChannelSpec, Delivery, Qos};
    use crate::message::{ChannelId, MessageKind, Payload, Recipient};
    use crate::network::LinkModel;
    use crate::sim::{Agent, Context, SimBuilder};
    use crate::time::SimDuration;

    /// Publishes on "c" every millisecond, `0` messages.
    struct Pub(u32, Option<ChannelId>);
    impl Agent for Pub {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            self.1 = Some(ctx.channel("c"));
            ctx.set_timer(SimDuration::ZERO, 0);
        }
        fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
            let ch = self.1.expect("interned");
            ctx.publish(ch, Recipient::Broadcast, MessageKind::INFO, Payload::Empty);
            self.0 -= 1;
            if self.0 > 0 {
                ctx.set_timer(SimDuration::from_millis(1), 0);
            }
        }
    }

    /// Subscribes to "c", or joins group "w" on it.
    struct Sub(bool);
    impl Agent for Sub {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            let ch = ctx.channel("c");
            if self.0 {
                ctx.subscribe_group(ch, "w", Delivery::Push).expect("joins");
            } else {
                ctx.subscribe(ch, Delivery::Push);
            }
        }
    }

    #[test]
    fn a_drained_run_with_redeliveries_leaves_the_store_empty() {
        for qos in [Qos::AtLeastOnce, Qos::ExactlyOnce] {
            let link: LinkModel = toml::from_str(
                "latency = { dist = \"uniform\", min = \"1ms\", max = \"3ms\" }\nloss = 0.2\nduplicate = 0.05\n",
            )
            .expect("a link");
            let mut sim = SimBuilder::new(3)
                .broker(BrokerConfig {
                    channels: vec![ChannelSpec {
                        topic: "c".into(),
                        qos: Some(qos),
                        ack_timeout: Some(SimDuration::from_millis(5)),
                        max_retries: Some(20),
                        ..ChannelSpec::default()
                    }],
                    ..BrokerConfig::default()
                })
                .default_link(link)
                .agent("p", Pub(500, None))
                .agent("plain", Sub(false))
                .agent("w1", Sub(true))
                .agent("w2", Sub(true))
                .agent("w3", Sub(true))
                .build()
                .expect("valid");
            sim.run().expect("runs");
            let s = sim.finish().expect("finishes");
            assert!(s.groups.redelivered > 0, "{:?}", s.groups);
            assert_eq!((s.groups.lag, s.qos.unacked_deliveries), (0, 0));
            assert_eq!(sim.core.msgs.live(), 0, "{qos:?}: {:?}", s.groups);
            let open: u64 = sim.core.broker.groups()[0]
                .members
                .iter()
                .map(|m| m.open)
                .sum();
            assert_eq!(open, 0);
        }
    }
}
