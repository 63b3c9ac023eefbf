//! The event queue: a priority queue ordered by (time, insertion sequence).
//!
//! **Invariant:** events at equal times pop in the order they were pushed
//! (FIFO). The sequence number is the only tie-breaker, so the pop order is a
//! pure function of the push order. With seeded ties
//! ([`EventQueue::set_seeded_ties`], the exploration mode of
//! `[simulation] tie_break = "seeded"`) the tie-breaker of an event
//! scheduled ahead is a keyed bijection of its sequence number instead, so
//! the order is a pure function of the push order and the salt.
//!
//! Every pending event has a unique 128-bit key: time in the high 64 bits,
//! then the insertion sequence (40 bits), then 24 bits for the event's slot
//! in a side table (zero where the event is kept with its key). Keys are
//! unique, so any exact priority queue pops them in the same order, and the
//! queue can switch structure with its size without changing a run:
//!
//! - up to about a thousand pending events, a 4-ary min-heap of keys (shallow,
//!   and the four children of a node sit in 64 contiguous bytes), with the
//!   events in a side table of reused slots;
//! - beyond that, a radix heap of keys with their events: keys popped from a
//!   simulation never decrease (nothing is scheduled in the past), so a key
//!   can be bucketed by the highest 8-bit digit in which it differs from the
//!   last key popped, and by its value in that digit, and every key of a
//!   lower bucket is smaller. Push is O(1); a pop takes the first non-empty
//!   bucket, sorting it whole into a run that the next pops take in order
//!   when it is small, spreading it over the buckets of lower digits when it
//!   is large. Each event is written a few times over its life, in
//!   sequential runs, instead of costing a heap's O(log n) cache misses: on
//!   the hold model of `benches/hold.rs`, a pop and a push cost about 55 ns
//!   with a million events pending, less than with a thousand in the heap.
//!
//! The queue allocates only when it reaches a new size (both structures keep
//! their memory while the other is in use).

use crate::time::SimTime;

// Spelled out so that `benches/hold.rs`, which includes this file by path,
// finds it too.
#[path = "queue/radix.rs"]
mod radix;

use radix::RadixHeap;

#[cfg(test)]
thread_local! {
    /// Keys examined (compared, moved or scanned) by the queues of this
    /// thread; tests only.
    static EXAMINED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts `n` keys examined, in test builds; compiles to nothing otherwise.
#[inline(always)]
fn examined(n: usize) {
    #[cfg(test)]
    EXAMINED.with(|c| c.set(c.get() + n as u64));
    let _ = n;
}

/// Bits of a key that hold the event's slot in the side table.
const SLOT_BITS: u32 = 24;
/// The slot bits of a key.
const SLOT_MASK: u128 = (1 << SLOT_BITS) - 1;
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

/// Bits of a seeded tie: the sequence's 40 bits less the one that marks
/// an event scheduled for the current instant.
const TIE_BITS: u32 = 64 - SLOT_BITS - 1;

/// The tie-breaker of an event in seeded mode: for an event scheduled
/// ahead, a bijective permutation of its sequence number on `TIE_BITS`
/// bits keyed by `salt` (xor, odd multiplications and xor-shifts modulo
/// 2^39, each a bijection), so ties stay unique; for one scheduled for the
/// current instant, its sequence number with the top bit set, after every
/// permuted tie and in FIFO order among its like.
#[inline]
fn seeded_tie(seq: u64, salt: u64, current: bool) -> u64 {
    let mask = (1u64 << TIE_BITS) - 1;
    if current {
        return (1 << TIE_BITS) | (seq & mask);
    }
    let mut x = (seq ^ salt) & mask;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask;
    x ^= x >> 19;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & mask;
    x ^= x >> 20;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB) & mask;
    x ^ (x >> 17)
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
            examined(1);
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

    /// Removes the minimum. The hole left at the root walks down to a leaf
    /// along the smallest children (three comparisons per level, made
    /// without branches), then the last key rises from there: it came from
    /// the bottom, so it rarely rises far, and the walk down needs no
    /// unpredictable comparison with it (the method of std's `BinaryHeap`).
    #[inline]
    fn pop(&mut self) -> Option<u128> {
        let last = self.keys.pop()?;
        let Some(&top) = self.keys.first() else {
            return Some(last);
        };
        let keys = &mut self.keys[..];
        let n = keys.len();
        let mut i = 0;
        loop {
            let first = 4 * i + 1;
            examined(4);
            if first + 4 <= n {
                let k = &keys[first..first + 4];
                let lo = usize::from(k[1] < k[0]);
                let hi = 2 + usize::from(k[3] < k[2]);
                let m = std::hint::select_unpredictable(k[hi] < k[lo], hi, lo);
                keys[i] = k[m];
                i = first + m;
            } else {
                if first < n {
                    let mut m = first;
                    for j in first + 1..n {
                        if keys[j] < keys[m] {
                            m = j;
                        }
                    }
                    keys[i] = keys[m];
                    i = m;
                }
                break;
            }
        }
        while i > 0 {
            examined(1);
            let parent = (i - 1) / 4;
            let pk = keys[parent];
            if pk <= last {
                break;
            }
            keys[i] = pk;
            i = parent;
        }
        keys[i] = last;
        Some(top)
    }

    fn peek(&self) -> Option<u128> {
        self.keys.first().copied()
    }
}

/// A priority queue of events keyed by (time, seq).
#[derive(Clone, Debug)]
pub struct EventQueue<E> {
    /// While at most [`TO_RADIX`] events are pending: their keys, with the
    /// events in `slots`...
    heap: QuadHeap,
    /// ...and while more are: keys and events together (both structures
    /// keep their allocations while the other is in use).
    radix: RadixHeap<E>,
    in_radix: bool,
    len: usize,
    /// The heap's side table of events, reused through `free`.
    slots: Vec<E>,
    free: Vec<u32>,
    next_seq: u64,
    /// The last key popped: nothing may be scheduled before it.
    floor: u128,
    /// The equal-time order: `None` FIFO, `Some(salt)` seeded
    /// ([`EventQueue::set_seeded_ties`]).
    shuffle: Option<u64>,
    /// Pushes allowed: [`MAX_PUSHES`], half that with seeded ties.
    max_pushes: u64,
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
        let small = n.min(TO_RADIX + 1);
        EventQueue {
            heap: QuadHeap {
                keys: Vec::with_capacity(small),
            },
            radix: RadixHeap::with_capacity(if n > TO_RADIX { n } else { 0 }),
            in_radix: false,
            len: 0,
            slots: Vec::with_capacity(small),
            free: Vec::with_capacity(small),
            next_seq: 0,
            floor: 0,
            shuffle: None,
            max_pushes: MAX_PUSHES,
        }
    }

    #[cold]
    #[inline(never)]
    fn seeded(&self, seq: u64, current: bool) -> u64 {
        seeded_tie(seq, self.shuffle.unwrap_or(0), current)
    }

    /// Orders events scheduled ahead for the same instant by a seeded
    /// permutation of their insertion order instead of FIFO (`None`: FIFO
    /// again). An event scheduled for the instant being processed (or for
    /// the past) still runs after every event already scheduled for that
    /// instant, in insertion order: nothing runs before what already ran.
    /// Keys stay unique, so the order is still a pure function of the
    /// pushes and the salt. Set it before the first push.
    pub fn set_seeded_ties(&mut self, salt: Option<u64>) {
        self.shuffle = salt;
        // Seeded ties use one bit of the sequence's room.
        self.max_pushes = MAX_PUSHES >> u32::from(salt.is_some());
    }

    /// Schedules `event` at `time`, after every event already scheduled at
    /// that same time. A time before the last event popped is treated as
    /// that event's time (the simulation never schedules in the past).
    #[inline(always)]
    pub fn push(&mut self, time: SimTime, event: E) -> Result<(), QueueFull> {
        let seq = self.next_seq;
        if seq >= self.max_pushes {
            return Err(QueueFull::Pushes);
        }
        if self.len >= MAX_PENDING {
            return Err(QueueFull::Pending);
        }
        self.next_seq += 1;
        self.len += 1;
        let now = (self.floor >> 64) as u64;
        let time = time.0.max(now);
        // FIFO keeps the push small: the seeded key is computed out of line.
        let tie = if self.shuffle.is_none() {
            seq
        } else {
            self.seeded(seq, time == now)
        };
        let key = (u128::from(time) << 64) | u128::from(tie << SLOT_BITS);
        if self.in_radix {
            self.radix.push(key, event);
            return Ok(());
        }
        // Inlined into the caller so the event is built in its slot, not
        // copied through the stack.
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = event;
                s
            }
            None => {
                self.slots.push(event);
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(key | u128::from(slot));
        if self.len > TO_RADIX {
            self.switch_to_radix();
        }
        Ok(())
    }

    #[cold]
    fn switch_to_radix(&mut self) {
        self.radix.reset(self.floor);
        // The radix heap has no slots: its keys keep zero there.
        for k in self.heap.keys.drain(..) {
            self.radix
                .push(k & !SLOT_MASK, self.slots[(k & SLOT_MASK) as usize]);
        }
        self.slots.clear();
        self.free.clear();
        self.in_radix = true;
    }

    #[cold]
    fn switch_to_heap(&mut self) {
        debug_assert!(self.slots.is_empty() && self.heap.keys.is_empty());
        let (heap, slots) = (&mut self.heap, &mut self.slots);
        // Radix-heap keys have zero slot bits: each event gets a new slot.
        self.radix.drain(|k, e| {
            heap.push(k | slots.len() as u128);
            slots.push(e);
        });
        self.in_radix = false;
    }

    /// Removes and returns the earliest event.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        let (key, event) = if self.in_radix {
            let popped = self.radix.pop()?;
            if self.len <= TO_HEAP {
                self.switch_to_heap();
            }
            popped
        } else {
            let key = self.heap.pop()?;
            let slot = (key & SLOT_MASK) as u32;
            self.free.push(slot);
            (key, self.slots[slot as usize])
        };
        self.len -= 1;
        self.floor = key;
        Some((SimTime((key >> 64) as u64), event))
    }

    /// The time of the earliest event.
    #[inline]
    pub fn peek_time(&self) -> Option<SimTime> {
        let key = if self.in_radix {
            self.radix.peek()
        } else {
            self.heap.peek()
        }?;
        Some(SimTime((key >> 64) as u64))
    }

    /// Number of pending events.
    #[allow(dead_code)] // tests and benches/hold.rs
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is pending.
    #[allow(dead_code)] // tests and benches/hold.rs
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many events were ever pushed (the next sequence number).
    #[allow(dead_code)] // tests and benches/hold.rs
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seeded_ties_permute_equal_times_and_nothing_else() {
        let order = |salt: Option<u64>| {
            let mut q = EventQueue::new();
            q.set_seeded_ties(salt);
            // Pop one event at 0 so that 10 and 20 are ahead.
            q.push(SimTime(0), 999u32).unwrap();
            q.pop();
            for i in 0..50u32 {
                q.push(SimTime(10 + u64::from(i % 2) * 10), i).unwrap();
            }
            let mut out = Vec::new();
            while let Some((t, e)) = q.pop() {
                out.push((t.0, e));
                if e == 0 {
                    // Scheduled for the current instant: after the rest
                    // of time 10, in order.
                    q.push(SimTime(10), 100).unwrap();
                    q.push(SimTime(10), 101).unwrap();
                }
            }
            out
        };
        let fifo = order(None);
        let a = order(Some(1));
        let b = order(Some(2));
        assert_eq!(a, order(Some(1)), "deterministic for a salt");
        assert_ne!(a, fifo);
        assert_ne!(a, b);
        for o in [&fifo, &a, &b] {
            assert_eq!(o.len(), 52);
            assert!(
                o.windows(2).all(|w| w[0].0 <= w[1].0),
                "times never go back"
            );
            let at10: Vec<u32> = o.iter().filter(|x| x.0 == 10).map(|x| x.1).collect();
            assert_eq!(&at10[at10.len() - 2..], &[100, 101], "{at10:?}");
        }
        let mut sorted = a.clone();
        sorted.sort();
        let mut f = fifo.clone();
        f.sort();
        assert_eq!(sorted, f, "the same events");
        // The permutation is a bijection on its bits (sampled).
        let mut seen = std::collections::BTreeSet::new();
        for seq in 0..100_000u64 {
            assert!(seen.insert(seeded_tie(seq, 7, false)));
        }
    }

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

    /// A small seeded generator (SplitMix64). Not the crate's `RngStream`:
    /// `benches/hold.rs` compiles this file with `time.rs` alone, and in a
    /// bench build these tests are compiled too.
    struct TestRng(u64);

    impl TestRng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in `0..n` (up to a negligible bias).
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bernoulli(&mut self, p: f64) -> bool {
            ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
        }
    }

    /// A simulation-shaped workload: pop one, push a few later ones.
    fn hold_model(pending: usize, n: usize, seed: u64) -> Vec<(u64, u32)> {
        let mut rng = TestRng(seed);
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

    /// Keys examined per pop (and its pushes) of a hold model at `pending`
    /// events: pop one, push one at a random later time.
    fn examined_per_pop(pending: usize, pops: usize) -> f64 {
        let mut rng = TestRng(pending as u64);
        let mut q = EventQueue::new();
        for i in 0..pending {
            q.push(SimTime(rng.below(1 << 30)), i as u32).unwrap();
        }
        // Warm up (the radix heap's first pops spread the initial pushes).
        let mut hold = |q: &mut EventQueue<u32>, n: usize| {
            for _ in 0..n {
                let (t, e) = q.pop().unwrap();
                q.push(SimTime(t.0 + 1 + rng.below(1 << 30)), e).unwrap();
            }
        };
        hold(&mut q, pops);
        let before = EXAMINED.with(|c| c.get());
        hold(&mut q, pops);
        let after = EXAMINED.with(|c| c.get());
        (after - before) as f64 / pops as f64
    }

    /// The radix heap once rescanned its lowest bucket on every pop: a pop
    /// cost grew linearly with the pending count (0.7 s at 50 k pending,
    /// 42 s at 400 k for the same pops). Counted, not timed: the keys a pop
    /// examines may grow no faster than the logarithm of the pending count.
    #[test]
    fn queue_pop_cost_does_not_grow_with_pending_events() {
        let pops = 20_000;
        let base = examined_per_pop(1_000, pops);
        for pending in [10_000, 100_000, 1_000_000] {
            let cost = examined_per_pop(pending, pops);
            let allowed = base * (pending as f64 / 1_000.0).log2().max(1.0) / 2.0;
            assert!(
                cost <= allowed.max(2.0 * base),
                "{cost:.1} keys examined per pop at {pending} pending, {base:.1} at 1 000"
            );
        }
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

    /// The reference: a binary heap of (time, push order), with the same
    /// clamp of times to the last time popped.
    #[derive(Default)]
    struct Reference {
        heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, u64, u32)>>,
        pushed: u64,
        floor: u64,
    }

    impl Reference {
        fn push(&mut self, time: u64, event: u32) {
            let time = time.max(self.floor);
            self.heap
                .push(std::cmp::Reverse((time, self.pushed, event)));
            self.pushed += 1;
        }

        fn pop(&mut self) -> Option<(SimTime, u32)> {
            let std::cmp::Reverse((time, _, event)) = self.heap.pop()?;
            self.floor = time;
            Some((SimTime(time), event))
        }

        fn peek_time(&self) -> Option<SimTime> {
            self.heap.peek().map(|r| SimTime(r.0.0))
        }
    }

    /// A queue and the reference, driven in lockstep.
    #[derive(Default)]
    struct Lockstep {
        q: EventQueue<u32>,
        r: Reference,
    }

    impl Lockstep {
        fn push(&mut self, time: u64) {
            let id = self.r.pushed as u32;
            self.q.push(SimTime(time), id).unwrap();
            self.r.push(time, id);
            self.check();
        }

        fn pop(&mut self) -> Option<(SimTime, u32)> {
            let got = self.q.pop();
            assert_eq!(got, self.r.pop());
            self.check();
            got
        }

        fn check(&self) {
            assert_eq!(self.q.len(), self.r.heap.len());
            assert_eq!(self.q.is_empty(), self.r.heap.is_empty());
            assert_eq!(self.q.pushed(), self.r.pushed);
            assert_eq!(self.q.peek_time(), self.r.peek_time());
        }

        /// The time of the last pop (the floor of pushes).
        fn now(&self) -> u64 {
            self.r.floor
        }
    }

    /// A push time relative to `now`: often equal (FIFO ties), often close,
    /// sometimes far, in the past (clamped) or at the end of time.
    fn some_time(rng: &mut TestRng, now: u64) -> u64 {
        match rng.below(100) {
            0..25 => now,
            25..50 => now.saturating_add(rng.below(8)),
            50..75 => now.saturating_add(rng.below(1_000_000)),
            75..85 => now.saturating_add(rng.below(1 << 40)),
            85..90 => now.saturating_sub(rng.below(1000)),
            90..95 => u64::MAX - rng.below(4),
            _ => rng.below(1 << 63),
        }
    }

    fn config() -> ProptestConfig {
        let cases = std::env::var("BUSBAR_PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(24);
        ProptestConfig {
            cases,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// Runs of interleaved pushes and pops, each run mostly one or the
        /// other (`push_percent`), long enough to cross into the radix heap
        /// (above 1024 pending) and back (below 256); then a full drain.
        #[test]
        fn matches_a_reference_across_the_switches(
            seed in any::<u64>(),
            runs in proptest::collection::vec((0u64..=100, 1usize..5000), 1..10),
        ) {
            let mut rng = TestRng(seed);
            let mut s = Lockstep::default();
            for (push_percent, n) in runs {
                for _ in 0..n {
                    if rng.below(100) < push_percent {
                        let t = some_time(&mut rng, s.now());
                        s.push(t);
                    } else {
                        s.pop();
                    }
                }
            }
            while s.pop().is_some() {}
        }
    }

    #[test]
    fn hold_model_above_the_switch_matches_a_reference() {
        // 20 000 pending (the radix heap) over a spread of about a second:
        // pop one, push one, a tenth of them at the same time (ties).
        let mut rng = TestRng(11);
        let mut s = Lockstep::default();
        for _ in 0..20_000 {
            let t = rng.below(1 << 30);
            s.push(t);
        }
        for _ in 0..100_000 {
            let (t, _) = s.pop().expect("never empty");
            let d = match rng.below(10) {
                0 => 0,
                1 => rng.below(1000),
                _ => rng.below(1 << 31),
            };
            s.push(t.0 + d);
        }
        assert_eq!(s.q.len(), 20_000);
        while s.pop().is_some() {}
    }

    #[test]
    fn a_chain_of_near_events_below_a_far_cluster() {
        // Once quadratic: a big cluster of far events, and a chain of near
        // events each scheduling the next, all popped before the cluster.
        let mut s = Lockstep::default();
        for i in 0..5000 {
            s.push(1_000_000_000 + i);
        }
        s.push(0);
        for _ in 0..20_000 {
            let (t, _) = s.pop().unwrap();
            assert!(t.0 < 1_000_000_000);
            s.push(t.0 + 1000);
        }
        while s.pop().is_some() {}
    }

    #[test]
    fn floods_of_equal_times_pop_fifo_in_the_radix_heap() {
        // Thousands of events at a few instants, pushed interleaved and
        // again while those instants are being popped.
        let mut s = Lockstep::default();
        for i in 0..6000u64 {
            s.push([5, 3, 5, 7][i as usize % 4]);
        }
        for i in 0..3000u64 {
            let (t, _) = s.pop().unwrap();
            s.push(t.0 + i % 2);
        }
        while s.pop().is_some() {}
    }

    #[test]
    fn decreasing_push_times_within_one_bucket() {
        // Pushed in the reverse of their order: the insertion sort of a
        // bucket gives up and sorts outright.
        let mut s = Lockstep::default();
        for i in 0..4000u64 {
            s.push(1 << 20 | (4000 - i));
        }
        for i in 0..2000u64 {
            s.push(1 << 21 | (2000 - i));
            s.pop();
        }
        while s.pop().is_some() {}
    }

    #[test]
    fn insertion_sort_sorts() {
        use super::radix::insertion_sort;
        let mut rng = TestRng(5);
        for n in [0u32, 1, 2, 3, 10, 100, 1000] {
            let random: Vec<(u128, u32)> = (0..n).map(|i| (u128::from(rng.below(50)), i)).collect();
            let descending: Vec<(u128, u32)> = (0..n).map(|i| (u128::from(n - i), i)).collect();
            let nearly: Vec<(u128, u32)> = (0..n)
                .map(|i| (u128::from(i) + u128::from(rng.below(3)), i))
                .collect();
            for mut v in [random, descending, nearly] {
                let mut expected = v.clone();
                expected.sort_by_key(|&(k, _)| k);
                insertion_sort(&mut v);
                // Equal keys may come in either order: compare the keys.
                let keys = |v: &[(u128, u32)]| v.iter().map(|&(k, _)| k).collect::<Vec<_>>();
                assert_eq!(keys(&v), keys(&expected));
                let mut ids: Vec<u32> = v.iter().map(|&(_, i)| i).collect();
                ids.sort_unstable();
                assert_eq!(ids, (0..n).collect::<Vec<_>>());
            }
        }
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
