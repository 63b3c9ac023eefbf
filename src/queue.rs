//! The event queue: a priority queue ordered by (time, insertion sequence).
//!
//! **Invariant:** events at equal times pop in the order they were pushed
//! (FIFO). The sequence number is the only tie-breaker, so the pop order is a
//! pure function of the push order.
//!
//! Every pending event has a unique 128-bit key: time in the high 64 bits,
//! then the insertion sequence (40 bits), then the event's slot in a side
//! table of reused slots (24 bits). Keys are unique, so any exact priority
//! queue pops them in the same order, and the queue can switch structure
//! with its size without changing a run:
//!
//! - up to about a thousand pending events, a 4-ary min-heap of keys (shallow,
//!   and the four children of a node sit in 64 contiguous bytes);
//! - beyond that, a radix heap: keys popped from a simulation never decrease
//!   (nothing is scheduled in the past), so a key can be bucketed by the
//!   highest bit in which it differs from the last key popped. Push is O(1)
//!   and each key moves down at most 128 buckets over its life, which beats
//!   a heap's O(log n) cache misses when the pending set is large.
//!
//! Pushing allocates only when the queue reaches a new size.

use crate::time::SimTime;

/// Bits of a key that hold the event's slot in the side table.
const SLOT_BITS: u32 = 24;
/// Most events that can be pending at once (16 777 216).
pub const MAX_PENDING: usize = 1 << SLOT_BITS;
/// Most events that can ever be pushed into one queue (about 1.1 × 10¹²).
pub const MAX_PUSHES: u64 = 1 << (64 - SLOT_BITS);
/// Switch from the 4-ary heap to the radix heap above this many events.
const TO_RADIX: usize = 1024;
/// Switch back below this many (hysteresis, so a size that hovers around
/// the threshold does not migrate every event).
const TO_HEAP: usize = 256;

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

/// A 4-ary min-heap of unique keys.
#[derive(Clone, Debug, Default)]
struct QuadHeap {
    keys: Vec<u128>,
}

impl QuadHeap {
    #[inline]
    fn push(&mut self, key: u128) {
        let mut i = self.keys.len();
        self.keys.push(key);
        while i > 0 {
            let parent = (i - 1) / 4;
            let pk = self.keys[parent];
            if pk <= key {
                break;
            }
            self.keys[i] = pk;
            i = parent;
        }
        self.keys[i] = key;
    }

    #[inline]
    fn pop(&mut self) -> Option<u128> {
        let last = self.keys.pop()?;
        let Some(&top) = self.keys.first() else {
            return Some(last);
        };
        let n = self.keys.len();
        let mut i = 0;
        loop {
            let first = 4 * i + 1;
            if first >= n {
                break;
            }
            let end = (first + 4).min(n);
            let (mut m, mut mk) = (first, self.keys[first]);
            for j in first + 1..end {
                let kj = self.keys[j];
                if kj < mk {
                    (m, mk) = (j, kj);
                }
            }
            if mk >= last {
                break;
            }
            self.keys[i] = mk;
            i = m;
        }
        self.keys[i] = last;
        Some(top)
    }

    fn peek(&self) -> Option<u128> {
        self.keys.first().copied()
    }
}

/// A radix heap of unique keys that are pushed no smaller than the last
/// key popped. Bucket `b` holds keys whose highest bit differing from
/// `last` is bit `b - 1` (bucket 0: equal to `last`), so every key in a
/// lower bucket is smaller than every key in a higher one. The minimum is
/// kept up to date so that peeking needs no `&mut`.
#[derive(Clone, Debug)]
struct RadixHeap {
    last: u128,
    min: Option<u128>,
    buckets: Vec<Vec<u128>>,
    /// Bit `b` set when bucket `b` is non-empty.
    nonempty: [u64; 3],
    len: usize,
}

impl RadixHeap {
    fn new(last: u128) -> RadixHeap {
        RadixHeap {
            last,
            min: None,
            buckets: vec![Vec::new(); 129],
            nonempty: [0; 3],
            len: 0,
        }
    }

    #[inline]
    fn put(&mut self, key: u128) {
        let b = (128 - (key ^ self.last).leading_zeros()) as usize;
        self.buckets[b].push(key);
        self.nonempty[b >> 6] |= 1 << (b & 63);
    }

    #[inline]
    fn push(&mut self, key: u128) {
        debug_assert!(key >= self.last, "radix heap keys must not decrease");
        self.put(key);
        self.len += 1;
        self.min = Some(self.min.map_or(key, |m| m.min(key)));
    }

    fn first_nonempty(&self) -> Option<usize> {
        (0..3)
            .find(|&w| self.nonempty[w] != 0)
            .map(|w| w * 64 + self.nonempty[w].trailing_zeros() as usize)
    }

    #[inline]
    fn pop(&mut self) -> Option<u128> {
        let m = self.min?;
        if m != self.last {
            // `m` sits in the lowest non-empty bucket: re-bucket it around `m`.
            let i = self.first_nonempty().expect("min exists");
            let mut keys = std::mem::take(&mut self.buckets[i]);
            self.nonempty[i >> 6] &= !(1 << (i & 63));
            self.last = m;
            for &k in &keys {
                self.put(k);
            }
            keys.clear();
            if self.buckets[i].is_empty() {
                // Keep the allocation for the next time this bucket fills.
                self.buckets[i] = keys;
            }
        }
        // Keys are unique: bucket 0 holds exactly `m`.
        let popped = self.buckets[0].pop();
        debug_assert_eq!(popped, Some(m));
        self.nonempty[0] &= !1;
        self.len -= 1;
        self.min = self
            .first_nonempty()
            .and_then(|j| self.buckets[j].iter().copied().min());
        Some(m)
    }

    fn peek(&self) -> Option<u128> {
        self.min
    }

    fn drain(&mut self) -> impl Iterator<Item = u128> + '_ {
        self.nonempty = [0; 3];
        self.len = 0;
        self.min = None;
        self.buckets.iter_mut().flat_map(|b| b.drain(..))
    }
}

#[derive(Clone, Debug)]
enum Keys {
    Heap(QuadHeap),
    Radix(RadixHeap),
}

/// A priority queue of events keyed by (time, seq). Events live in a side
/// table of reused slots; the structure orders 128-bit keys only.
#[derive(Clone, Debug)]
pub struct EventQueue<E> {
    keys: Keys,
    len: usize,
    slots: Vec<E>,
    free: Vec<u32>,
    next_seq: u64,
    /// The last key popped: nothing may be scheduled before it.
    floor: u128,
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
            keys: Keys::Heap(QuadHeap {
                keys: Vec::with_capacity(n),
            }),
            len: 0,
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
            next_seq: 0,
            floor: 0,
        }
    }

    /// Schedules `event` at `time`, after every event already scheduled at
    /// that same time. A time before the last event popped is treated as
    /// that event's time (the simulation never schedules in the past).
    #[inline(always)]
    pub fn push(&mut self, time: SimTime, event: E) -> Result<(), QueueFull> {
        let seq = self.next_seq;
        if seq >= MAX_PUSHES {
            return Err(QueueFull::Pushes);
        }
        // Inlined into the caller so the event is built in its slot, not
        // copied through the stack.
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
        self.next_seq += 1;
        let time = time.0.max((self.floor >> 64) as u64);
        self.push_key((u128::from(time) << 64) | u128::from((seq << SLOT_BITS) | u64::from(slot)));
        Ok(())
    }

    #[inline]
    fn push_key(&mut self, key: u128) {
        self.len += 1;
        match &mut self.keys {
            Keys::Heap(h) => {
                h.push(key);
                if self.len > TO_RADIX {
                    self.switch_to_radix();
                }
            }
            Keys::Radix(r) => r.push(key),
        }
    }

    #[cold]
    fn switch_to_radix(&mut self) {
        if let Keys::Heap(h) = &mut self.keys {
            let mut r = RadixHeap::new(self.floor);
            for k in h.keys.drain(..) {
                r.push(k);
            }
            self.keys = Keys::Radix(r);
        }
    }

    #[cold]
    fn switch_to_heap(&mut self) {
        if let Keys::Radix(r) = &mut self.keys {
            let mut h = QuadHeap {
                keys: Vec::with_capacity(TO_RADIX + 1),
            };
            for k in r.drain() {
                h.push(k);
            }
            self.keys = Keys::Heap(h);
        }
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let key = match &mut self.keys {
            Keys::Heap(h) => h.pop()?,
            Keys::Radix(r) => {
                let k = r.pop()?;
                if r.len < TO_HEAP {
                    self.switch_to_heap();
                }
                k
            }
        };
        self.len -= 1;
        self.floor = key;
        let slot = (key as u64 & ((1 << SLOT_BITS) - 1)) as u32;
        self.free.push(slot);
        Some((SimTime((key >> 64) as u64), self.slots[slot as usize]))
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        let key = match &self.keys {
            Keys::Heap(h) => h.peek(),
            Keys::Radix(r) => r.peek(),
        }?;
        Some(SimTime((key >> 64) as u64))
    }

    /// Number of pending events.
    #[allow(dead_code)] // tests and benches
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is pending.
    #[allow(dead_code)] // tests and benches
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many events were ever pushed (the next sequence number).
    #[allow(dead_code)] // tests and benches
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

    /// A simulation-shaped workload: pop one, push a few later ones.
    fn hold_model(pending: usize, n: usize, seed: u64) -> Vec<(u64, u32)> {
        let mut rng = crate::rng::RngStream::new(seed, 0, "queue-test");
        let mut q = EventQueue::new();
        for i in 0..pending {
            q.push(SimTime(rng.below(1000)), i as u32).unwrap();
        }
        let mut out = Vec::new();
        let mut next = pending as u32;
        while let Some((t, e)) = q.pop() {
            out.push((t.0, e));
            if out.len() + q.len() < n {
                // Sometimes at the same time (FIFO matters), sometimes later.
                for _ in 0..rng.below(3) {
                    let d = if rng.bernoulli(0.3) {
                        0
                    } else {
                        rng.below(5000)
                    };
                    q.push(SimTime(t.0 + d), next).unwrap();
                    next += 1;
                }
            }
        }
        out
    }

    #[test]
    fn large_pending_sets_switch_structure_without_changing_order() {
        // 20 000 pending events crosses into the radix heap and back.
        let got = hold_model(20_000, 60_000, 3);
        assert!(got.len() >= 60_000, "{}", got.len());
        // Time never decreases, and equal times pop in push (id) order
        // whenever both were pushed while the time was in the future...
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
        // ...and the exact order equals a sort by (time, push order).
        let mut sorted = got.clone();
        sorted.sort_by_key(|&(t, e)| (t, e));
        let same_time_groups_fifo = got
            .windows(2)
            .filter(|w| w[0].0 == w[1].0)
            .all(|w| w[0].1 < w[1].1);
        assert!(same_time_groups_fifo);
        assert_eq!(got, sorted);
    }

    proptest! {
        #[test]
        fn pops_in_time_then_insertion_order(times in proptest::collection::vec(0u64..20, 0..2_000)) {
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
