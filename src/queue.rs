//! The event queue: a priority queue ordered by (time, insertion sequence).
//!
//! **Invariant:** events at equal times pop in the order they were pushed
//! (FIFO). The sequence number is the only tie-breaker, so the pop order is a
//! pure function of the push order.
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

/// Bits in one digit of a radix-heap key.
const DIGIT_BITS: u32 = 8;
/// Buckets per level of the radix heap (one per digit value).
const DIGITS: usize = 1 << DIGIT_BITS;
/// Levels of the radix heap (one per digit of a 128-bit key).
const LEVELS: usize = (128 / DIGIT_BITS) as usize;
/// 64-bit words of a level's occupancy mask.
const WORDS: usize = DIGITS.div_ceil(64);
/// Entries per chunk of bucket storage.
const CHUNK: usize = 128;
/// No chunk.
const NIL: u32 = u32::MAX;
/// A bucket of at most this many entries is sorted rather than spread.
const SORT: usize = 4096;
/// A bucket of at most this many entries is sorted by insertion alone.
const SMALL: usize = 32;

/// One bucket of the radix heap: a list of chunks of entries in no order.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// The smallest key; `u128::MAX` when empty.
    min: u128,
    len: u32,
    /// First and last chunk (stale when empty); all but the last are full.
    head: u32,
    tail: u32,
}

impl Bucket {
    const EMPTY: Bucket = Bucket {
        min: u128::MAX,
        len: 0,
        head: NIL,
        tail: NIL,
    };
}

/// A radix heap of events under unique keys, each pushed no smaller than
/// the last key popped.
///
/// A key in the buckets whose highest 8-bit digit (counted from the low
/// end) that differs from `last` is digit `l` lives in bucket `(l, its
/// digit l)`; `last` itself, which only key 0 can equal before the first
/// pop, lives in bucket `(0, its digit 0)`. Every key of a lower level, or
/// of a lower digit in the same level, is smaller, so the smallest key is
/// the smallest of the first non-empty bucket: each bucket keeps its own,
/// and `min` the smallest of all.
///
/// Popping from the buckets takes the first non-empty one and makes its
/// smallest key the new `last`. A lone entry is popped. Up to [`SORT`]
/// entries are sorted into the front run, from which pops then come in
/// order, as long as its head is below `min` (keys pushed meanwhile may
/// interleave with it; popping the front leaves `last` alone, and every
/// push is above it). A larger bucket is spread: its keys agree with the
/// new `last` down to its level, so they go to lower levels, where the
/// first buckets soon are small enough to sort. A hold model of a million
/// events spread over seconds pushes most into level 11 (2²⁴ ns buckets of
/// some 16 000 events), spread once into level 10 (2¹⁶ ns, some 65 each),
/// then sorted: each event is written three times, sequentially.
///
/// The events travel with their keys: a pop reads no side table, whose
/// random reads would cost a cache and TLB miss each once it outgrows the
/// cache. Buckets keep their entries in chunks of [`CHUNK`] from one arena,
/// and the chunk freed last is the next one filled, so entries are mostly
/// written into memory that is still in cache, and the arena holds about as
/// many entries as were ever pending at once, plus a partly filled chunk
/// per non-empty bucket.
#[derive(Clone, Debug)]
struct RadixHeap<E> {
    last: u128,
    /// `LEVELS * DIGITS` buckets, bucket `(l, d)` at `l * DIGITS + d`; none
    /// until the queue first grows large enough to use the radix heap.
    buckets: Vec<Bucket>,
    /// Bit `l` set when level `l` has a non-empty bucket.
    levels: u32,
    /// Bit `d` of level `l` set when bucket `(l, d)` is non-empty.
    occupied: [[u64; WORDS]; LEVELS],
    /// Chunk `c` is `entries[c * CHUNK..][..CHUNK]`.
    entries: Vec<(u128, E)>,
    /// The chunk after chunk `c` in its bucket, or in the free list.
    next: Vec<u32>,
    /// The free chunks, most recently freed first.
    free: u32,
    /// The smallest key in the buckets; `u128::MAX` when they are empty.
    min: u128,
    /// A bucket taken out whole and sorted; `front[at..]` are pending.
    front: Vec<(u128, E)>,
    at: usize,
    /// Entries in the buckets (not the front).
    len: usize,
}

impl<E: Copy> RadixHeap<E> {
    /// An empty heap with room for about `n` entries (no buckets yet).
    fn with_capacity(n: usize) -> Self {
        RadixHeap {
            last: 0,
            buckets: Vec::new(),
            levels: 0,
            occupied: [[0; WORDS]; LEVELS],
            entries: Vec::with_capacity(n.next_multiple_of(CHUNK)),
            next: Vec::with_capacity(n.div_ceil(CHUNK)),
            free: NIL,
            min: u128::MAX,
            front: Vec::new(),
            at: 0,
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len + self.front.len() - self.at
    }

    /// Sets the floor of the keys to come (the heap must be empty).
    fn reset(&mut self, last: u128) {
        debug_assert_eq!(self.len(), 0);
        if self.buckets.is_empty() {
            self.buckets = vec![Bucket::EMPTY; LEVELS * DIGITS];
        }
        self.last = last;
    }

    #[inline(always)]
    fn put(&mut self, key: u128, event: E) {
        // A key equal to `last` (key 0 before the first pop, or the minimum
        // of a bucket being spread) goes to bucket (0, its low digit), below
        // every other key.
        let diff = (key ^ self.last) | 1;
        let level = ((127 - diff.leading_zeros()) / DIGIT_BITS) as usize;
        let digit = usize::from(key.to_le_bytes()[level]);
        let b = level * DIGITS + digit;
        let Bucket { min, len, tail, .. } = self.buckets[b];
        let at = len as usize % CHUNK;
        let chunk = if at == 0 {
            self.grow(b, len, (key, event))
        } else {
            tail
        };
        self.entries[chunk as usize * CHUNK + at] = (key, event);
        let bucket = &mut self.buckets[b];
        bucket.len = len + 1;
        bucket.min = min.min(key);
    }

    /// Adds a chunk to bucket `b`, which holds `len` entries, all in full
    /// chunks, and marks it non-empty. A new chunk is filled with `filler`
    /// until written.
    #[inline(never)]
    fn grow(&mut self, b: usize, len: u32, filler: (u128, E)) -> u32 {
        let c = if self.free != NIL {
            let c = self.free;
            self.free = self.next[c as usize];
            c
        } else {
            let c = self.next.len() as u32;
            self.next.push(NIL);
            self.entries.resize(self.entries.len() + CHUNK, filler);
            c
        };
        if len == 0 {
            self.buckets[b].head = c;
            let (level, digit) = (b / DIGITS, b % DIGITS);
            self.occupied[level][digit / 64] |= 1 << (digit % 64);
            self.levels |= 1 << level;
        } else {
            self.next[self.buckets[b].tail as usize] = c;
        }
        self.buckets[b].tail = c;
        c
    }

    #[inline]
    fn push(&mut self, key: u128, event: E) {
        debug_assert!(key >= self.last, "radix heap keys must not decrease");
        self.put(key, event);
        self.min = self.min.min(key);
        self.len += 1;
    }

    /// The first non-empty bucket.
    #[inline]
    fn first(&self) -> Option<usize> {
        if self.levels == 0 {
            return None;
        }
        let level = self.levels.trailing_zeros() as usize;
        let words = &self.occupied[level];
        let w = words.iter().position(|&w| w != 0)?;
        Some(level * DIGITS + w * 64 + words[w].trailing_zeros() as usize)
    }

    #[inline]
    fn pop(&mut self) -> Option<(u128, E)> {
        self.pop_front().or_else(|| self.pop_bucket())
    }

    /// Pops the head of the front if it is the smallest key.
    #[inline(always)]
    fn pop_front(&mut self) -> Option<(u128, E)> {
        let &(k, e) = self.front.get(self.at)?;
        if k > self.min {
            return None;
        }
        self.at += 1;
        if self.at == self.front.len() {
            self.front.clear();
            self.at = 0;
        }
        Some((k, e))
    }

    /// Pops the smallest key of the buckets (below the front's head).
    #[inline(never)]
    fn pop_bucket(&mut self) -> Option<(u128, E)> {
        loop {
            let b = self.first()?;
            let bucket = self.take(b);
            self.last = bucket.min;
            if bucket.len == 1 {
                self.len -= 1;
                self.release(bucket.head);
                self.min = self.first().map_or(u128::MAX, |b| self.buckets[b].min);
                return Some(self.entries[bucket.head as usize * CHUNK]);
            }
            if bucket.len as usize <= SORT && self.front.is_empty() {
                self.len -= bucket.len as usize;
                self.sort_into_front(bucket, b / DIGITS);
                self.min = self.first().map_or(u128::MAX, |b| self.buckets[b].min);
                return self.pop_front();
            }
            // The keys agree with the minimum down to this level: with it as
            // `last`, they move to lower levels, and it alone to level 0,
            // where the next round pops it (`min` stays).
            self.each(bucket, Self::put);
        }
    }

    /// Empties bucket `b`, returning what it held.
    #[inline]
    fn take(&mut self, b: usize) -> Bucket {
        let bucket = std::mem::replace(&mut self.buckets[b], Bucket::EMPTY);
        let (level, digit) = (b / DIGITS, b % DIGITS);
        let words = &mut self.occupied[level];
        words[digit / 64] &= !(1 << (digit % 64));
        if words.iter().all(|&w| w == 0) {
            self.levels &= !(1 << level);
        }
        bucket
    }

    /// Calls `f` on each entry of a taken bucket, freeing each chunk once
    /// read (so `f` may reuse it).
    #[inline(always)]
    fn each(&mut self, bucket: Bucket, mut f: impl FnMut(&mut Self, u128, E)) {
        let (mut c, mut left) = (bucket.head, bucket.len as usize);
        while left > 0 {
            let n = left.min(CHUNK);
            for i in c as usize * CHUNK..c as usize * CHUNK + n {
                let (k, e) = self.entries[i];
                f(self, k, e);
            }
            left -= n;
            let after = self.next[c as usize];
            self.release(c);
            c = after;
        }
    }

    /// Puts chunk `c` on the free list.
    #[inline]
    fn release(&mut self, c: u32) {
        self.next[c as usize] = self.free;
        self.free = c;
    }

    /// Moves a taken bucket of level `level` into the (empty) front, in key
    /// order: a counting sort on the digit below `level` (above it, the
    /// keys agree), then an insertion sort among keys that share it.
    fn sort_into_front(&mut self, bucket: Bucket, level: usize) {
        debug_assert!(self.front.is_empty());
        let n = bucket.len as usize;
        if n <= SMALL || level == 0 {
            self.each(bucket, |heap, k, e| heap.front.push((k, e)));
        } else if n <= 256 {
            // Enough groups that most hold one entry or two.
            self.counting_sort::<64>(bucket, level);
        } else {
            self.counting_sort::<256>(bucket, level);
        }
        insertion_sort(&mut self.front);
    }

    /// Moves a taken bucket into the front in the order of the top
    /// `log2(G)` bits of the digit below `level`.
    fn counting_sort<const G: usize>(&mut self, bucket: Bucket, level: usize) {
        let shift = DIGITS.ilog2() - G.ilog2();
        let group = |k: u128| usize::from(k.to_le_bytes()[level - 1] >> shift);
        // Count each group, then turn the counts into where each starts.
        let mut start = [0u32; G];
        let (mut c, mut left) = (bucket.head, bucket.len as usize);
        while left > 0 {
            let m = left.min(CHUNK);
            for &(k, _) in &self.entries[c as usize * CHUNK..][..m] {
                start[group(k)] += 1;
            }
            left -= m;
            c = self.next[c as usize];
        }
        let mut sum = 0;
        for s in &mut start {
            (*s, sum) = (sum, sum + *s);
        }
        let filler = self.entries[bucket.head as usize * CHUNK];
        self.front.resize(bucket.len as usize, filler);
        self.each(bucket, |heap, k, e| {
            let g = group(k);
            heap.front[start[g] as usize] = (k, e);
            start[g] += 1;
        });
    }

    #[inline]
    fn peek(&self) -> Option<u128> {
        let radix = (self.len > 0).then_some(self.min);
        match self.front.get(self.at) {
            Some(&(k, _)) => Some(radix.map_or(k, |m| m.min(k))),
            None => radix,
        }
    }

    /// Empties the heap, calling `f` on every entry in no order.
    fn drain(&mut self, mut f: impl FnMut(u128, E)) {
        for &(k, e) in &self.front[self.at..] {
            f(k, e);
        }
        self.front.clear();
        self.at = 0;
        while let Some(b) = self.first() {
            let bucket = self.take(b);
            self.each(bucket, |_, k, e| f(k, e));
        }
        self.len = 0;
        self.min = u128::MAX;
    }
}

/// Sorts entries by key: fast on a nearly sorted slice; after 8 shifts per
/// entry it leaves the rest to `sort_unstable`.
fn insertion_sort<E: Copy>(v: &mut [(u128, E)]) {
    let mut budget = 8 * v.len();
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && v[j - 1].0 > x.0 {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
        budget = budget.saturating_sub(i - j);
        if budget == 0 {
            v.sort_unstable_by_key(|&(k, _)| k);
            return;
        }
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
        if self.len >= MAX_PENDING {
            return Err(QueueFull::Pending);
        }
        self.next_seq += 1;
        self.len += 1;
        let time = time.0.max((self.floor >> 64) as u64);
        let key = (u128::from(time) << 64) | u128::from(seq << SLOT_BITS);
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
