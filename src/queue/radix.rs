//! The radix heap the event queue uses above `TO_RADIX` pending events (see
//! the module docs of `queue`): keys and events together, bucketed by the
//! highest 8-bit digit in which a key differs from the last key popped.

use super::examined;

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
pub(super) struct RadixHeap<E> {
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
    pub(super) fn with_capacity(n: usize) -> Self {
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

    pub(super) fn len(&self) -> usize {
        self.len + self.front.len() - self.at
    }

    /// Sets the floor of the keys to come (the heap must be empty).
    pub(super) fn reset(&mut self, last: u128) {
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
    pub(super) fn push(&mut self, key: u128, event: E) {
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
        examined(w + 1);
        Some(level * DIGITS + w * 64 + words[w].trailing_zeros() as usize)
    }

    #[inline]
    pub(super) fn pop(&mut self) -> Option<(u128, E)> {
        self.pop_front().or_else(|| self.pop_bucket())
    }

    /// Pops the head of the front if it is the smallest key.
    #[inline(always)]
    fn pop_front(&mut self) -> Option<(u128, E)> {
        let &(k, e) = self.front.get(self.at)?;
        examined(1);
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
            examined(n);
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
            examined(m);
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
    pub(super) fn peek(&self) -> Option<u128> {
        let radix = (self.len > 0).then_some(self.min);
        match self.front.get(self.at) {
            Some(&(k, _)) => Some(radix.map_or(k, |m| m.min(k))),
            None => radix,
        }
    }

    /// Empties the heap, calling `f` on every entry in no order.
    pub(super) fn drain(&mut self, mut f: impl FnMut(u128, E)) {
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
pub(super) fn insertion_sort<E: Copy>(v: &mut [(u128, E)]) {
    let mut budget = 8 * v.len();
    for i in 1..v.len() {
        let x = v[i];
        let mut j = i;
        while j > 0 && v[j - 1].0 > x.0 {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = x;
        examined(1 + i - j);
        budget = budget.saturating_sub(i - j);
        if budget == 0 {
            examined(v.len() * (v.len().ilog2() as usize + 1));
            v.sort_unstable_by_key(|&(k, _)| k);
            return;
        }
    }
}
