//! Ack timeouts: an indexed min-heap of deadlines, one entry per open
//! acknowledged delivery or publish, removed the moment its ack arrives.
//!
//! Most acks beat their timeout, so most timeouts never fire. Keeping them
//! out of the event queue means the queue holds one "next timeout" event,
//! not one event per message in flight: the queue stays small (its cost
//! grows with its size) and an acknowledged message costs no event for its
//! timeout at all.
//!
//! **Invariant:** entries pop in (deadline, insertion sequence) order, so
//! equal deadlines fire in the order they were set, as events would.

/// What a timeout is for: the obligation of `agent` (a delivery to it, or
/// its publish) on the message in `slot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Due {
    pub(super) slot: u32,
    pub(super) agent: u32,
    pub(super) publish: bool,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline: u64,
    seq: u64,
    /// Index in `heap`, or `FREE`.
    pos: u32,
    due: Due,
}

const FREE: u32 = u32::MAX;

/// The heap. Handles are reused after removal.
#[derive(Default)]
pub(super) struct Timeouts {
    /// Handles, heap-ordered by (deadline, seq).
    heap: Vec<u32>,
    /// Entries by handle.
    entries: Vec<Entry>,
    free: Vec<u32>,
    next_seq: u64,
}

impl Timeouts {
    /// Adds a timeout; returns its handle.
    pub(super) fn insert(&mut self, deadline: u64, due: Due) -> u32 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry {
            deadline,
            seq,
            pos: self.heap.len() as u32,
            due,
        };
        let h = match self.free.pop() {
            Some(h) => {
                self.entries[h as usize] = entry;
                h
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.heap.push(h);
        self.up(self.heap.len() - 1);
        h
    }

    /// Removes a timeout that has not fired.
    pub(super) fn remove(&mut self, h: u32) {
        let pos = self.entries[h as usize].pos;
        debug_assert_ne!(pos, FREE, "a live timeout");
        let pos = pos as usize;
        let last = self.heap.len() - 1;
        self.heap.swap(pos, last);
        self.heap.pop();
        self.entries[h as usize].pos = FREE;
        self.free.push(h);
        if pos < self.heap.len() {
            // The moved entry goes up or down, never both.
            if pos > 0 && self.key(pos) < self.key((pos - 1) / 2) {
                self.up(pos);
            } else {
                self.down(pos);
            }
        }
    }

    /// The earliest deadline.
    #[inline]
    pub(super) fn next(&self) -> Option<u64> {
        self.heap
            .first()
            .map(|&h| self.entries[h as usize].deadline)
    }

    /// Removes and returns the earliest timeout if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: u64) -> Option<Due> {
        let &h = self.heap.first()?;
        let e = self.entries[h as usize];
        if e.deadline > now {
            return None;
        }
        self.remove(h);
        Some(e.due)
    }

    /// How many timeouts are set.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }

    fn key(&self, i: usize) -> (u64, u64) {
        let e = &self.entries[self.heap[i] as usize];
        (e.deadline, e.seq)
    }

    fn set(&mut self, i: usize) {
        let h = self.heap[i];
        self.entries[h as usize].pos = i as u32;
    }

    fn up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.key(i) >= self.key(parent) {
                break;
            }
            self.heap.swap(i, parent);
            self.set(i);
            i = parent;
        }
        self.set(i);
    }

    fn down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < n && self.key(l) < self.key(m) {
                m = l;
            }
            if r < n && self.key(r) < self.key(m) {
                m = r;
            }
            if m == i {
                break;
            }
            self.heap.swap(i, m);
            self.set(i);
            i = m;
        }
        self.set(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::RngStream;

    fn due(slot: u32) -> Due {
        Due {
            slot,
            agent: 0,
            publish: false,
        }
    }

    #[test]
    fn pops_in_deadline_then_insertion_order_and_removes_anywhere() {
        // Against a sorted list, through random inserts, removals and pops.
        let mut rng = RngStream::new(1, 0, "timeouts");
        let mut t = Timeouts::default();
        let mut model: Vec<(u64, u64, u32, u32)> = Vec::new(); // deadline, seq, slot, handle
        let mut seq = 0;
        let mut now = 0;
        for step in 0..20_000u32 {
            match rng.below(4) {
                0 | 1 => {
                    let d = now + rng.below(50);
                    let h = t.insert(d, due(step));
                    model.push((d, seq, step, h));
                    seq += 1;
                }
                2 if !model.is_empty() => {
                    let i = rng.below(model.len() as u64) as usize;
                    let (_, _, _, h) = model.swap_remove(i);
                    t.remove(h);
                }
                _ => {
                    now += rng.below(5);
                    model.sort();
                    while let Some(d) = t.pop_due(now) {
                        let (dl, _, slot, _) = model.remove(0);
                        assert!(dl <= now);
                        assert_eq!(d.slot, slot);
                    }
                    assert!(model.first().is_none_or(|m| m.0 > now));
                }
            }
            assert_eq!(t.len(), model.len());
            assert_eq!(t.next(), model.iter().map(|m| m.0).min());
        }
    }
}
