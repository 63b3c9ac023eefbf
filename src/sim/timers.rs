//! Pending timers. A timer's event carries its slot and generation; a
//! cancelled or already-fired timer bumps the generation, so a stale event
//! or a stale [`TimerId`] is harmless.

/// Identifies a pending timer so it can be cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    pub(super) slot: u32,
    pub(super) generation: u32,
}

/// Timer slots: (tag, generation, live, the owner's incarnation when it
/// was set), reused through a free list.
#[derive(Default)]
pub(super) struct Timers {
    slots: Vec<(u64, u32, bool, u32)>,
    free: Vec<u32>,
}

impl Timers {
    /// A new live timer with `tag`, set by an agent in its `incarnation`
    /// (how many times it has crashed).
    pub(super) fn add(&mut self, tag: u64, incarnation: u32) -> TimerId {
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, 0, false, 0));
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.0 = tag;
        s.2 = true;
        s.3 = incarnation;
        TimerId {
            slot,
            generation: s.1,
        }
    }

    fn retire(&mut self, slot: u32) {
        let s = &mut self.slots[slot as usize];
        s.2 = false;
        s.1 = s.1.wrapping_add(1);
        self.free.push(slot);
    }

    /// The tag of a live timer and the incarnation it was set in, retiring
    /// it; `None` if it was cancelled.
    #[inline]
    pub(super) fn fire(&mut self, slot: u32, generation: u32) -> Option<(u64, u32)> {
        let s = self.slots[slot as usize];
        if s.2 && s.1 == generation {
            self.retire(slot);
            Some((s.0, s.3))
        } else {
            None
        }
    }

    /// Cancels a live timer; false if it fired or was cancelled already.
    pub(super) fn cancel(&mut self, id: TimerId) -> bool {
        match self.slots.get(id.slot as usize) {
            Some(&(_, generation, true, _)) if generation == id.generation => {
                self.retire(id.slot);
                true
            }
            _ => false,
        }
    }
}
