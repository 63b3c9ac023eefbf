//! Published messages, stored once and referenced by index from every copy
//! in flight, with a reference count: a fan-out to N subscribers stores one
//! message, and a slot is reused once its last copy is delivered or dropped.

//!
//! A message on a channel with delivery guarantees also has a [`SlotMeta`]
//! (who still owes an ack, who has seen it), which lives exactly as long as
//! the slot: every open obligation holds a reference.

use crate::message::Message;

use super::core::Cargo;

/// Where an acknowledged delivery (or publish) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PendingState {
    /// Waiting for its ack (holds a reference to the slot).
    Open,
    /// Acknowledged.
    Acked,
    /// Its message expired before it was acknowledged.
    Expired,
    /// Out of retries: in the dead-letter queue.
    DeadLettered,
}

/// One acknowledged delivery of a message to `agent` (or its publish by
/// `agent`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) agent: u32,
    /// Retransmissions so far (0: only the first transmission).
    pub(super) attempt: u16,
    pub(super) state: PendingState,
    /// How the copy is delivered (push or pull).
    pub(super) cargo: Cargo,
    /// Its ack timeout's handle, or [`NO_TIMER`].
    pub(super) timer: u32,
    /// The consumer group it was routed to (a delivery that moves to
    /// another member on redelivery), or `NO_GROUP`.
    pub(super) group: u32,
}

/// `Pending::timer` when no timeout is set.
pub(super) const NO_TIMER: u32 = u32::MAX;

/// What the engine keeps about a message on a channel with guarantees.
#[derive(Debug, Default)]
pub(super) struct SlotMeta {
    /// The publisher's obligation (publish QoS ≥ 1).
    pub(super) publish: Option<Pending>,
    /// The broker's obligations, sorted by agent.
    pub(super) deliveries: Vec<Pending>,
    /// Agents that have received an intact copy, sorted.
    pub(super) seen: Vec<u32>,
    /// Whether the broker has routed it (exactly-once publish).
    pub(super) routed: bool,
}

impl SlotMeta {
    /// The broker's obligation towards `agent`, if any.
    pub(super) fn delivery(&mut self, agent: u32) -> Option<&mut Pending> {
        let i = self
            .deliveries
            .binary_search_by_key(&agent, |p| p.agent)
            .ok()?;
        Some(&mut self.deliveries[i])
    }

    /// The group of the broker's obligation towards `agent` (`NO_GROUP`
    /// for a plain one), if it has (or had) one.
    pub(super) fn delivery_group(&self, agent: u32) -> Option<u32> {
        let i = self
            .deliveries
            .binary_search_by_key(&agent, |p| p.agent)
            .ok()?;
        Some(self.deliveries[i].group)
    }
}

/// A slab of published messages with a reference count per slot.
#[derive(Default)]
pub(super) struct MsgStore {
    slots: Vec<(Option<Message>, u32)>,
    free: Vec<u32>,
    /// Payload bytes of the messages held.
    bytes: u64,
    /// Guarantee state by slot (empty until a guaranteed message is
    /// stored).
    meta: Vec<Option<Box<SlotMeta>>>,
    /// Cleared guarantee states, kept for reuse with their vectors'
    /// capacity: no allocation per message once warm. (Boxed: a state
    /// moves between `meta` and here as a pointer, its box reused.)
    #[allow(clippy::vec_box)]
    spare: Vec<Box<SlotMeta>>,
}

impl MsgStore {
    /// Stores `msg` with one reference; returns its slot.
    #[inline]
    pub(super) fn insert(&mut self, msg: Message) -> u32 {
        self.bytes += msg.payload.heap_bytes();
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = (Some(msg), 1);
                i
            }
            None => {
                self.slots.push((Some(msg), 1));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Payload bytes of the messages held (published, some copy still in
    /// flight).
    #[inline]
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many slots hold a message (tests: nothing leaks).
    #[cfg(test)]
    pub(super) fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.0.is_some()).count()
    }

    /// The message in a live slot.
    #[inline]
    pub(super) fn get(&self, slot: u32) -> &Message {
        self.slots[slot as usize]
            .0
            .as_ref()
            .expect("live slot holds a message")
    }

    /// One more copy refers to `slot`.
    #[inline]
    pub(super) fn add_ref(&mut self, slot: u32) {
        self.slots[slot as usize].1 += 1;
    }

    /// Drops one reference; the last one frees the slot.
    #[inline]
    pub(super) fn release(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.1 -= 1;
        if s.1 == 0 {
            if let Some(m) = s.0.take() {
                self.bytes -= m.payload.heap_bytes();
            }
            self.free.push(slot);
            self.forget(slot);
        }
    }

    /// Drops the guarantee state of a freed slot (kept for reuse). Runs
    /// without guarantees too, so the common case is one test of an empty
    /// table.
    #[inline(always)]
    fn forget(&mut self, slot: u32) {
        if !self.meta.is_empty() {
            self.forget_meta(slot);
        }
    }

    #[cold]
    #[inline(never)]
    fn forget_meta(&mut self, slot: u32) {
        if let Some(m) = self.meta.get_mut(slot as usize)
            && let Some(mut m) = m.take()
        {
            m.publish = None;
            m.deliveries.clear();
            m.seen.clear();
            m.routed = false;
            self.spare.push(m);
        }
    }

    /// The guarantee state of a live slot, created empty on first use.
    #[inline]
    pub(super) fn meta_mut(&mut self, slot: u32) -> &mut SlotMeta {
        let i = slot as usize;
        if self.meta.len() <= i {
            self.meta.resize_with(i + 1, || None);
        }
        let spare = &mut self.spare;
        self.meta[i].get_or_insert_with(|| spare.pop().unwrap_or_default())
    }

    /// The guarantee state of a slot, if it has one.
    #[inline]
    pub(super) fn meta(&self, slot: u32) -> Option<&SlotMeta> {
        self.meta.get(slot as usize)?.as_deref()
    }

    /// Every live slot's guarantee state.
    pub(super) fn metas(&self) -> impl Iterator<Item = &SlotMeta> {
        self.meta.iter().flatten().map(|m| &**m)
    }

    /// Drops one reference and returns the message: moved out if this was
    /// the last reference, else a cheap clone (payload shared).
    #[inline(always)]
    pub(super) fn take(&mut self, slot: u32) -> Message {
        let s = &mut self.slots[slot as usize];
        s.1 -= 1;
        if s.1 == 0 {
            self.free.push(slot);
            let m = s.0.take().expect("live slot holds a message");
            self.bytes -= m.payload.heap_bytes();
            self.forget(slot);
            m
        } else {
            s.0.as_ref().expect("live slot holds a message").clone()
        }
    }
}
