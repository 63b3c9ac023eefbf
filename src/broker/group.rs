//! Consumer groups (work queues): agents that join a named group on a
//! channel share its messages, each message going to one member
//! (docs/broker_groups.md).
//!
//! A group is identified by (channel, name); the `[[broker.group]]` entry
//! of the same name chooses its [`Strategy`] (round-robin by default).
//! Groups live in one flat table, numbered in creation order (the engine
//! refers to a group by that index, e.g. in an open delivery); each
//! channel lists its groups in creation order, so routing order is a pure
//! function of what agents did.
//!
//! Per member the broker keeps its load (acknowledged deliveries it holds
//! that are still open, plus copies waiting in its pull buffer on an
//! unacknowledged channel) and how many messages it was given. A
//! round-robin pick is O(1) (a cursor; members that must be skipped are
//! stepped over); a least-loaded pick scans the members, O(members).
//!
//! **Invariant:** in a run without groups, routing pays one test of an
//! empty table (`Broker::grouped`); once a group exists, a channel without
//! one pays an out-of-line lookup of its (empty) list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::{AgentId, ChannelId};
use crate::metrics::GroupCounts;
use crate::validate::Validator;

use super::{Broker, Delivery};

/// How a group assigns each message to one of its members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Members in turn, in join order (a cursor: O(1) per message).
    #[default]
    RoundRobin,
    /// The member with the fewest open deliveries (unacknowledged
    /// deliveries in flight, plus on an unacknowledged channel the copies
    /// waiting in its pull buffer); ties go to the member that joined
    /// first. O(members) per message.
    LeastLoaded,
}

impl Strategy {
    /// The scenario-file name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::LeastLoaded => "least_loaded",
        }
    }
}

/// One `[[broker.group]]`: the settings of every group called `name` (on
/// whichever channel agents join it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    /// The group's name, as agents join it (`Context::subscribe_group`, a
    /// sink's `group`).
    pub name: String,
    /// The assignment strategy. Default `round_robin`.
    #[serde(default)]
    pub strategy: Strategy,
}

/// The longest group name accepted, in bytes.
pub const MAX_GROUP_NAME: usize = 128;

/// The most groups one simulation may hold (over all channels).
pub const MAX_GROUPS: usize = 1 << 30;

/// Checks a group name: not empty, at most [`MAX_GROUP_NAME`] bytes, no
/// control characters.
pub fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a group name must not be empty".into());
    }
    if name.len() > MAX_GROUP_NAME {
        return Err(format!(
            "a group name is at most {MAX_GROUP_NAME} bytes, got {}",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("group name {name:?} contains a control character"));
    }
    Ok(())
}

impl GroupSpec {
    /// Checks the entry (keys relative to it).
    pub fn validate(&self, v: &mut Validator) {
        if let Err(m) = check_group_name(&self.name) {
            v.fail("name", m);
        }
    }
}

/// Checks the `[[broker.group]]` entries (keys relative to `[broker]`):
/// each entry, and that no name is configured twice.
pub(super) fn validate_groups(specs: &[GroupSpec], v: &mut Validator) {
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    v.at("group", |v| {
        for (i, g) in specs.iter().enumerate() {
            v.index(i, |v| {
                g.validate(v);
                if let Some(j) = first.get(g.name.as_str()) {
                    v.fail(
                        "name",
                        format!(
                            "group {:?} is configured twice (first at broker.group[{j}])",
                            g.name
                        ),
                    );
                } else {
                    first.insert(&g.name, i);
                }
            });
        }
    });
}

/// Why an agent could not join a group.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// The name is not a valid group name ([`check_group_name`]).
    #[error("bad group name: {0}")]
    BadName(String),
    /// The agent already receives the channel otherwise: as a plain
    /// subscriber (directly or through a wildcard), or as a member of
    /// another group. Each message would reach it twice; unsubscribe (or
    /// leave the other group) first.
    #[error("agent {agent} already receives channel {channel} {how}")]
    AlreadyReceives {
        /// The agent's id.
        agent: u32,
        /// The channel's id.
        channel: u32,
        /// `as a subscriber` or `in group "…"`.
        how: String,
    },
    /// The simulation holds [`MAX_GROUPS`] groups already.
    #[error("too many consumer groups (at most {MAX_GROUPS})")]
    TooMany,
}

/// One member of a group.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Member {
    pub(crate) agent: AgentId,
    pub(crate) delivery: Delivery,
    /// Open acknowledged deliveries it holds.
    pub(crate) open: u64,
    /// Copies waiting in its pull buffer for the channel (counted only on
    /// unacknowledged channels, where they are the group's lag).
    pub(crate) buffered: u64,
    /// Messages the broker gave it (first transmissions and redeliveries).
    pub(crate) assigned: u64,
}

impl Member {
    #[inline]
    fn load(&self) -> u64 {
        self.open + self.buffered
    }
}

/// One group on one channel.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) channel: ChannelId,
    pub(crate) name: String,
    pub(crate) strategy: Strategy,
    /// In join order.
    pub(crate) members: Vec<Member>,
    /// Sorted by agent: (agent, index in `members`).
    by_agent: Vec<(AgentId, u32)>,
    /// The round-robin cursor: the index of the next member to try.
    cursor: usize,
    pub(crate) counts: GroupCounts,
    /// Members that left, with what they were given (for the share table).
    pub(crate) former: Vec<(AgentId, u64)>,
}

impl Group {
    /// The index in `members` of `agent`'s membership.
    #[inline]
    pub(crate) fn member_index(&self, agent: AgentId) -> Option<usize> {
        self.by_agent
            .binary_search_by_key(&agent, |m| m.0)
            .ok()
            .map(|i| self.by_agent[i].1 as usize)
    }

    /// `agent`'s membership, if it is a member.
    #[inline]
    pub(crate) fn member_mut(&mut self, agent: AgentId) -> Option<&mut Member> {
        let i = self.member_index(agent)?;
        Some(&mut self.members[i])
    }

    fn reindex(&mut self) {
        self.by_agent.clear();
        self.by_agent.extend(
            self.members
                .iter()
                .enumerate()
                .map(|(i, m)| (m.agent, i as u32)),
        );
        self.by_agent.sort_unstable_by_key(|m| m.0);
    }

    /// Picks the member for the next message: by the strategy, skipping
    /// members `skip` refuses (`None` if it refuses every one).
    /// Round-robin takes the member at the cursor and advances it.
    pub(crate) fn pick(&mut self, skip: impl FnMut(AgentId) -> bool) -> Option<usize> {
        let i = self.pick_from(self.cursor, skip)?;
        if self.strategy == Strategy::RoundRobin {
            self.cursor = (i + 1) % self.members.len();
        }
        Some(i)
    }

    /// Picks the member to redeliver a message to that `from` had: by
    /// the strategy, skipping `from` and members `skip` refuses.
    /// Round-robin takes the member after `from` in join order (the
    /// cursor if `from` has left), and leaves the cursor, so redeliveries
    /// do not shift the turns of new messages.
    pub(crate) fn pick_other(
        &mut self,
        from: AgentId,
        mut skip: impl FnMut(AgentId) -> bool,
    ) -> Option<usize> {
        let start = self.member_index(from).map_or(self.cursor, |i| i + 1);
        self.pick_from(start, |a| a == from || skip(a))
    }

    fn pick_from(&self, start: usize, mut skip: impl FnMut(AgentId) -> bool) -> Option<usize> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        match self.strategy {
            Strategy::RoundRobin => (0..n)
                .map(|k| (start + k) % n)
                .find(|&i| !skip(self.members[i].agent)),
            Strategy::LeastLoaded => {
                let mut best: Option<(u64, usize)> = None;
                for (i, m) in self.members.iter().enumerate() {
                    let load = m.load();
                    if best.is_some_and(|(b, _)| load >= b) || skip(m.agent) {
                        continue;
                    }
                    best = Some((load, i));
                }
                best.map(|(_, i)| i)
            }
        }
    }

    /// One more (`up`) or one fewer message in the lag, keeping its
    /// maximum.
    #[inline]
    pub(crate) fn add_lag(&mut self, up: bool) {
        if up {
            self.counts.lag += 1;
            self.counts.lag_max = self.counts.lag_max.max(self.counts.lag);
        } else {
            self.counts.lag = self.counts.lag.saturating_sub(1);
        }
    }
}

/// Every group of a simulation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Groups {
    /// By group id (creation order).
    pub(crate) all: Vec<Group>,
    /// Per channel id, its group ids in creation order (empty until a
    /// group exists).
    by_channel: Vec<Vec<u32>>,
}

/// A group id's form in an open delivery when it is not a group's.
pub(crate) const NO_GROUP: u32 = u32::MAX;

impl Broker {
    /// Whether channel `ch` has consumer groups (one test of an empty table
    /// when no group exists).
    #[inline(always)]
    pub(crate) fn grouped(&self, ch: ChannelId) -> bool {
        !self.groups.by_channel.is_empty() && self.grouped_slow(ch)
    }

    #[inline(never)]
    fn grouped_slow(&self, ch: ChannelId) -> bool {
        self.groups
            .by_channel
            .get(ch.index())
            .is_some_and(|g| !g.is_empty())
    }

    /// Whether any group exists.
    #[inline(always)]
    pub(crate) fn any_groups(&self) -> bool {
        !self.groups.by_channel.is_empty()
    }

    /// The ids of channel `ch`'s groups, in creation order.
    pub(crate) fn channel_groups(&self, ch: ChannelId) -> &[u32] {
        self.groups
            .by_channel
            .get(ch.index())
            .map_or(&[], Vec::as_slice)
    }

    /// Group `id`.
    #[inline]
    pub(crate) fn group(&self, id: u32) -> &Group {
        &self.groups.all[id as usize]
    }

    /// Group `id`, to change.
    #[inline]
    pub(crate) fn group_mut(&mut self, id: u32) -> &mut Group {
        &mut self.groups.all[id as usize]
    }

    /// Every group, by id.
    pub(crate) fn groups(&self) -> &[Group] {
        &self.groups.all
    }

    /// The group of channel `ch` that `agent` is a member of.
    pub(crate) fn group_of(&self, ch: ChannelId, agent: AgentId) -> Option<u32> {
        self.channel_groups(ch)
            .iter()
            .copied()
            .find(|&g| self.group(g).member_index(agent).is_some())
    }

    /// How `agent` receives `ch` as a group member, if it is one.
    pub(crate) fn member_delivery(&self, ch: ChannelId, agent: AgentId) -> Option<Delivery> {
        if !self.grouped(ch) {
            return None;
        }
        let g = self.group(self.group_of(ch, agent)?);
        g.member_index(agent).map(|i| g.members[i].delivery)
    }

    /// `agent` joins group `name` on `ch` (created on first join, with the
    /// strategy of its `[[broker.group]]` entry), or changes how it
    /// receives if it is a member already.
    pub(crate) fn join_group(
        &mut self,
        ch: ChannelId,
        name: &str,
        agent: AgentId,
        delivery: Delivery,
    ) -> Result<(), GroupError> {
        check_group_name(name).map_err(GroupError::BadName)?;
        let refuse = |how: String| GroupError::AlreadyReceives {
            agent: agent.0,
            channel: ch.0,
            how,
        };
        if self.subscription(ch, agent).is_some() {
            return Err(refuse("as a subscriber".into()));
        }
        if let Some(g) = self.group_of(ch, agent) {
            let group = self.group_mut(g);
            if group.name != name {
                return Err(refuse(format!("in group {:?}", group.name)));
            }
            let i = group.member_index(agent).expect("a member");
            group.members[i].delivery = delivery;
            return Ok(());
        }
        let id = match self
            .channel_groups(ch)
            .iter()
            .copied()
            .find(|&g| self.group(g).name == name)
        {
            Some(g) => g,
            None => self.new_group(ch, name)?,
        };
        let group = self.group_mut(id);
        group.members.push(Member {
            agent,
            delivery,
            open: 0,
            buffered: 0,
            assigned: 0,
        });
        group.reindex();
        Ok(())
    }

    #[cold]
    fn new_group(&mut self, ch: ChannelId, name: &str) -> Result<u32, GroupError> {
        if self.groups.all.len() >= MAX_GROUPS {
            return Err(GroupError::TooMany);
        }
        let strategy = self
            .config
            .groups
            .iter()
            .find(|s| s.name == name)
            .map_or(Strategy::RoundRobin, |s| s.strategy);
        let id = self.groups.all.len() as u32;
        self.groups.all.push(Group {
            channel: ch,
            name: name.to_string(),
            strategy,
            members: Vec::new(),
            by_agent: Vec::new(),
            cursor: 0,
            counts: GroupCounts::default(),
            former: Vec::new(),
        });
        let by = &mut self.groups.by_channel;
        if by.len() <= ch.index() {
            by.resize_with(ch.index() + 1, Vec::new);
        }
        by[ch.index()].push(id);
        Ok(id)
    }

    /// `agent` leaves group `name` on `ch`; true if it was a member. What
    /// it holds unacknowledged is redelivered to another member when its
    /// ack timeout runs out.
    pub(crate) fn leave_group(&mut self, ch: ChannelId, name: &str, agent: AgentId) -> bool {
        let Some(id) = self.group_of(ch, agent) else {
            return false;
        };
        let g = self.group_mut(id);
        if g.name != name {
            return false;
        }
        let i = g.member_index(agent).expect("a member");
        let m = g.members.remove(i);
        g.former.push((m.agent, m.assigned));
        // Copies it still buffers are no longer the group's lag.
        g.counts.lag = g.counts.lag.saturating_sub(m.buffered);
        if g.cursor > i {
            g.cursor -= 1;
        }
        if g.cursor >= g.members.len() {
            g.cursor = 0;
        }
        g.reindex();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerConfig;

    /// The agent `g.pick(skip)` picks.
    fn pick(g: &mut Group, skip: impl FnMut(AgentId) -> bool) -> u32 {
        let i = g.pick(skip).unwrap();
        g.members[i].agent.0
    }

    fn broker(strategy: Strategy) -> (Broker, ChannelId) {
        let mut b = Broker::new(
            BrokerConfig {
                groups: vec![GroupSpec {
                    name: "w".into(),
                    strategy,
                }],
                ..BrokerConfig::default()
            },
            0,
        );
        let c = b.channel("c");
        (b, c)
    }

    #[test]
    fn round_robin_turns_and_skips() {
        let (mut b, c) = broker(Strategy::RoundRobin);
        assert!(!b.grouped(c));
        for a in [3, 1, 2] {
            b.join_group(c, "w", AgentId(a), Delivery::Push).unwrap();
        }
        assert!(b.grouped(c));
        let g = b.group_mut(0);
        let picks: Vec<u32> = (0..6).map(|_| pick(g, |_| false)).collect();
        assert_eq!(picks, vec![3, 1, 2, 3, 1, 2]);
        // Skipping 3: the next after it.
        assert_eq!(pick(g, |a| a.0 == 3), 1);
        // A redelivery from 1 goes to the member after it, 2, and leaves
        // the turns of new messages alone.
        let i = g.pick_other(AgentId(1), |_| false).unwrap();
        assert_eq!(g.members[i].agent.0, 2);
        assert_eq!(pick(g, |_| false), 2);
        assert_eq!(g.pick(|_| true), None);
    }

    #[test]
    fn least_loaded_prefers_idle_then_join_order() {
        let (mut b, c) = broker(Strategy::LeastLoaded);
        for a in [5, 4, 6] {
            b.join_group(c, "w", AgentId(a), Delivery::Push).unwrap();
        }
        let g = b.group_mut(0);
        assert_eq!(pick(g, |_| false), 5);
        g.members[0].open = 2;
        g.members[1].open = 1;
        assert_eq!(pick(g, |_| false), 6);
        g.members[2].open = 1;
        assert_eq!(pick(g, |_| false), 4);
        assert_eq!(pick(g, |a| a.0 == 4), 6);
    }

    #[test]
    fn joining_twice_or_beside_a_subscription_is_refused() {
        let (mut b, c) = broker(Strategy::RoundRobin);
        b.subscribe(c, AgentId(1), Delivery::Push);
        assert!(matches!(
            b.join_group(c, "w", AgentId(1), Delivery::Push),
            Err(GroupError::AlreadyReceives { .. })
        ));
        b.join_group(c, "w", AgentId(2), Delivery::Push).unwrap();
        assert!(b.join_group(c, "v", AgentId(2), Delivery::Push).is_err());
        b.join_group(c, "w", AgentId(2), Delivery::Pull).unwrap();
        assert_eq!(b.member_delivery(c, AgentId(2)), Some(Delivery::Pull));
        assert!(b.join_group(c, "", AgentId(3), Delivery::Push).is_err());
        assert!(!b.leave_group(c, "v", AgentId(2)));
        assert!(b.leave_group(c, "w", AgentId(2)));
        assert_eq!(b.member_delivery(c, AgentId(2)), None);
        assert_eq!(b.group(0).former, vec![(AgentId(2), 0)]);
    }

    #[test]
    fn bad_entries_name_the_key() {
        let specs = vec![
            GroupSpec {
                name: String::new(),
                ..GroupSpec::default()
            },
            GroupSpec {
                name: "w".into(),
                ..GroupSpec::default()
            },
            GroupSpec {
                name: "w".into(),
                ..GroupSpec::default()
            },
        ];
        let mut v = Validator::new();
        validate_groups(&specs, &mut v);
        let err = v.finish().unwrap_err();
        assert!(err.has("group[0].name"), "{err}");
        assert!(err.has("group[2].name"), "{err}");
        assert!(!err.has("group[1].name"), "{err}");
    }
}
