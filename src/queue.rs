//! The event queue: a min-heap ordered by (time, insertion sequence).
//!
//! **Invariant:** events at equal times pop in the order they were pushed
//! (FIFO). The sequence number is the only tie-breaker, so the pop order is a
//! pure function of the push order.
//!
//! Heap entries are 16 bytes (time, and the sequence packed with the slot of
//! the event in a side table of reused slots), so sifting moves little
//! memory and pushing allocates only when the queue reaches a new size.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::time::SimTime;

/// Bits of an entry's key that hold the event's slot in the side table.
const SLOT_BITS: u32 = 24;
/// Most events that can be pending at once (16 777 216).
pub const MAX_PENDING: usize = 1 << SLOT_BITS;
/// Most events that can ever be pushed into one queue (about 1.1 × 10¹²).
pub const MAX_PUSHES: u64 = 1 << (64 - SLOT_BITS);

/// A heap entry: 16 bytes, so sifting moves little memory. `key` is the
/// insertion sequence in the high 40 bits and the event's slot in the low
/// 24; sequences are unique, so the slot never decides an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    time: u64,
    key: u64,
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the smallest key.
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.key).cmp(&(self.time, self.key))
    }
}

/// Why an event could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueFull {
    /// More than [`MAX_PENDING`] events are pending at once.
    #[error("more than {MAX_PENDING} events pending at once")]
    Pending,
    /// More than [`MAX_PUSHES`] events were pushed over the run.
    #[error("more than {MAX_PUSHES} events pushed")]
    Pushes,
}

/// A priority queue of events keyed by (time, seq). Events live in a side
/// table of reused slots; the heap holds only 16-byte keys.
#[derive(Clone, Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry>,
    slots: Vec<E>,
    free: Vec<u32>,
    next_seq: u64,
}

impl<E: Copy> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Copy> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty queue with room for `n` events.
    pub fn with_capacity(n: usize) -> Self {
        EventQueue {
            heap: BinaryHeap::with_capacity(n),
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            next_seq: 0,
        }
    }

    /// Schedules `event` at `time`, after every event already scheduled at
    /// that same time.
    #[inline]
    pub fn push(&mut self, time: SimTime, event: E) -> Result<(), QueueFull> {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = event;
                s
            }
            None => {
                if self.slots.len() >= MAX_PENDING {
                    return Err(QueueFull::Pending);
                }
                self.slots.push(event);
                (self.slots.len() - 1) as u32
            }
        };
        let seq = self.next_seq;
        if seq >= MAX_PUSHES {
            self.free.push(slot);
            return Err(QueueFull::Pushes);
        }
        self.next_seq += 1;
        self.heap.push(Entry {
            time: time.0,
            key: (seq << SLOT_BITS) | u64::from(slot),
        });
        Ok(())
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let e = self.heap.pop()?;
        let slot = (e.key & ((1 << SLOT_BITS) - 1)) as u32;
        self.free.push(slot);
        Some((SimTime(e.time), self.slots[slot as usize]))
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        self.heap.peek().map(|e| SimTime(e.time))
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// How many events were ever pushed (the next sequence number).
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_times_are_fifo() {
        let mut q = EventQueue::new();
        for i in 0..100u32 {
            q.push(SimTime(5), i).unwrap();
        }
        q.push(SimTime(1), 1000).unwrap();
        assert_eq!(q.pop(), Some((SimTime(1), 1000)));
        for i in 0..100u32 {
            assert_eq!(q.pop(), Some((SimTime(5), i)));
        }
        assert_eq!(q.pop(), None);
    }

    proptest! {
        #[test]
        fn pops_in_time_then_insertion_order(times in proptest::collection::vec(0u64..20, 0..200)) {
            let mut q = EventQueue::new();
            for (i, &t) in times.iter().enumerate() {
                q.push(SimTime(t), i).unwrap();
            }
            let mut expected: Vec<(u64, usize)> = times.iter().copied().zip(0..).collect();
            expected.sort();
            let got: Vec<(u64, usize)> = std::iter::from_fn(|| q.pop()).map(|(t, i)| (t.0, i)).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
