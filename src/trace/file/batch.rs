//! The record encoding of a batch frame's body (the same since format
//! version 2), described byte by byte in the module docs of
//! [`crate::trace`]. The encoder and the
//! decoder run the same state machine: the previous record's time, the id
//! of the last published message, and a direct-mapped cache of message
//! headers, all reset at the start of every batch.
//!
//! The encoding is canonical: a flag must be set exactly when its
//! prediction holds and every varint is minimal, so a sequence of records
//! has exactly one encoding and a decoder that accepts two different byte
//! strings never yields the same records from both. A flipped bit that got
//! past the frame's check would therefore either fail to decode or change
//! the records (and so the records digest).

use super::CHUNK;
use crate::trace::{EventKind, Record};

/// Slots of the message-header cache; a record's slot is `msg % CACHE_SLOTS`.
pub(crate) const CACHE_SLOTS: usize = 1024;
const _: () = assert!(CACHE_SLOTS.is_power_of_two());

/// Low nibble of the tag byte: the event code.
const EVENT_MASK: u8 = 0x0F;
/// The time equals the previous record's time (no time field).
const SAME_TIME: u8 = 0x10;
/// The message id is the last published id + 1 (no msg field).
const NEXT_MSG: u8 = 0x20;
/// Channel, sender, kind and sent time come from the cache (no fields).
const CACHED: u8 = 0x40;
/// A detail field follows (the detail is not 0).
const DETAIL: u8 = 0x80;

/// The smallest encoded record: a tag byte and a node byte.
const MIN_RECORD_BYTES: usize = 2;
/// The largest encoded record: tag, time, msg, node, channel, sender, kind,
/// sent, detail.
const MAX_RECORD_BYTES: usize = 1 + 10 + 10 + 5 + 5 + 5 + 1 + 10 + 3;

/// One cache slot: a message header seen earlier in the batch.
#[derive(Clone, Copy, Default)]
struct Entry {
    /// The batch this entry was written in; older entries are empty.
    epoch: u64,
    msg: u64,
    sent_ns: u64,
    channel: u32,
    sender: u32,
    kind: u8,
}

impl Entry {
    #[inline]
    fn matches(&self, r: &Record) -> bool {
        self.msg == r.msg
            && self.channel == r.channel
            && self.sender == r.sender
            && self.kind == r.kind
            && self.sent_ns == r.sent_ns
    }
}

/// The state both sides keep while walking a batch.
struct State {
    /// Counts batches; a cache entry of another epoch is empty, so a reset
    /// does not have to clear the cache.
    epoch: u64,
    time: u64,
    last_pub: u64,
    cache: Box<[Entry]>,
}

impl State {
    fn new() -> State {
        State {
            epoch: 0,
            time: 0,
            last_pub: u64::MAX,
            cache: vec![Entry::default(); CACHE_SLOTS].into_boxed_slice(),
        }
    }

    fn reset(&mut self) {
        self.epoch += 1;
        self.time = 0;
        self.last_pub = u64::MAX;
    }

    #[inline]
    fn slot(msg: u64) -> usize {
        // Truncating to usize keeps the low bits, which are all the mask
        // looks at.
        (msg as usize) & (CACHE_SLOTS - 1)
    }

    /// The live cache entry for `msg`, if any.
    #[inline]
    fn entry(&self, msg: u64) -> Option<&Entry> {
        let e = &self.cache[Self::slot(msg)];
        (e.epoch == self.epoch && e.msg == msg).then_some(e)
    }

    /// Moves past `r`: every record, whatever its event, takes its slot.
    #[inline]
    fn advance(&mut self, r: &Record) {
        self.cache[Self::slot(r.msg)] = Entry {
            epoch: self.epoch,
            msg: r.msg,
            sent_ns: r.sent_ns,
            channel: r.channel,
            sender: r.sender,
            kind: r.kind,
        };
        self.time = r.time_ns;
        if r.event == EventKind::Publish {
            self.last_pub = r.msg;
        }
    }
}

/// Encodes batches; holds its cache across batches so that encoding
/// allocates nothing once the output buffer has grown.
pub(crate) struct Encoder {
    st: State,
    /// Room for the largest batch, allocated once: records are written in
    /// place, with no copy per record and no clearing between batches.
    out: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new() -> Encoder {
        Encoder {
            st: State::new(),
            out: Vec::new(),
        }
    }

    /// The body of one batch frame holding `records` (1..=CHUNK of them).
    pub(crate) fn encode(&mut self, records: &[Record]) -> &[u8] {
        debug_assert!(!records.is_empty() && records.len() <= CHUNK);
        self.st.reset();
        let room = 10 + records.len() * MAX_RECORD_BYTES;
        if self.out.len() < room {
            self.out.resize(10 + CHUNK * MAX_RECORD_BYTES, 0);
        }
        let mut out = std::mem::take(&mut self.out);
        let mut n = put_varint_at(&mut out, 0, records.len() as u64);
        for r in records {
            n = self.record(r, &mut out, n);
        }
        self.out = out;
        &self.out[..n]
    }

    /// Encodes one record into `b` from index `at`; returns the index after
    /// it. `b` has room for [`MAX_RECORD_BYTES`] from `at`.
    #[inline]
    fn record(&mut self, r: &Record, b: &mut [u8], at: usize) -> usize {
        let st = &mut self.st;
        let mut n = at + 1;
        let mut tag = r.event as u8;
        let dt = r.time_ns.wrapping_sub(st.time);
        if dt == 0 {
            tag |= SAME_TIME;
        } else {
            n = put_varint_at(b, n, dt);
        }
        if r.event == EventKind::Timer {
            n = put_varint_at(b, n, r.msg);
        } else if r.msg == st.last_pub.wrapping_add(1) {
            tag |= NEXT_MSG;
        } else {
            n = put_varint_at(b, n, st.last_pub.wrapping_sub(r.msg));
        }
        n = put_varint_at(b, n, u64::from(r.node.wrapping_add(2)));
        let e = &st.cache[State::slot(r.msg)];
        if e.epoch == st.epoch && e.matches(r) {
            tag |= CACHED;
        } else {
            n = put_varint_at(b, n, u64::from(r.channel.wrapping_add(1)));
            n = put_varint_at(b, n, u64::from(r.sender.wrapping_add(1)));
            b[n] = r.kind;
            n += 1;
            n = put_varint_at(b, n, r.time_ns.wrapping_sub(r.sent_ns));
        }
        if r.detail != 0 {
            tag |= DETAIL;
            n = put_varint_at(b, n, u64::from(r.detail));
        }
        b[at] = tag;
        st.advance(r);
        n
    }
}

/// Decodes batches into a caller's buffer.
pub(crate) struct Decoder {
    st: State,
}

/// Where in a batch body decoding failed (a byte index) and why.
pub(crate) type DecodeError = (usize, String);

impl Decoder {
    pub(crate) fn new() -> Decoder {
        Decoder { st: State::new() }
    }

    /// Replaces the contents of `out` with the records of one batch body.
    /// Never panics; reserves room for at most `body.len() / 2` records
    /// (and at most CHUNK), and only after checking the count against that.
    pub(crate) fn decode(&mut self, body: &[u8], out: &mut Vec<Record>) -> Result<(), DecodeError> {
        out.clear();
        self.st.reset();
        let mut inp = Input::new(body, "a record");
        let count = inp.varint("record count")?;
        let left = body.len() - inp.pos;
        if count == 0 || count > CHUNK as u64 {
            return Err((0, format!("batch claims {count} records (1..={CHUNK})")));
        }
        if count > (left / MIN_RECORD_BYTES) as u64 {
            return Err((
                0,
                format!("batch claims {count} records but holds only {left} bytes"),
            ));
        }
        out.reserve(count as usize);
        for _ in 0..count {
            let r = self.record(&mut inp)?;
            out.push(r);
        }
        if inp.pos != body.len() {
            return Err((
                inp.pos,
                format!("{} stray bytes after the last record", body.len() - inp.pos),
            ));
        }
        Ok(())
    }

    fn record(&mut self, inp: &mut Input<'_>) -> Result<Record, DecodeError> {
        let st = &mut self.st;
        let at = inp.pos;
        let tag = inp.byte("record tag")?;
        let event = EventKind::from_code(tag & EVENT_MASK)
            .ok_or_else(|| (at, format!("unknown event code {}", tag & EVENT_MASK)))?;
        let noncanonical = |what: &str| (at, format!("non-canonical record: {what}"));
        let time_ns = if tag & SAME_TIME != 0 {
            st.time
        } else {
            match inp.varint("time delta")? {
                0 => return Err(noncanonical("a zero time delta without the same-time flag")),
                d => st.time.wrapping_add(d),
            }
        };
        let msg = if event == EventKind::Timer {
            if tag & NEXT_MSG != 0 {
                return Err(noncanonical("a timer with the next-message flag"));
            }
            inp.varint("timer tag")?
        } else if tag & NEXT_MSG != 0 {
            st.last_pub.wrapping_add(1)
        } else {
            match inp.varint("message id")? {
                u64::MAX => return Err(noncanonical("the next message id spelled out")),
                d => st.last_pub.wrapping_sub(d),
            }
        };
        let node = inp.u32("node")?.wrapping_sub(2);
        let mut r = Record {
            time_ns,
            event,
            msg,
            channel: 0,
            sender: 0,
            node,
            kind: 0,
            detail: 0,
            sent_ns: 0,
        };
        if tag & CACHED != 0 {
            let e = st
                .entry(msg)
                .ok_or_else(|| (at, format!("message {msg} is not in the header cache")))?;
            (r.channel, r.sender, r.kind, r.sent_ns) = (e.channel, e.sender, e.kind, e.sent_ns);
        } else {
            r.channel = inp.u32("channel")?.wrapping_sub(1);
            r.sender = inp.u32("sender")?.wrapping_sub(1);
            r.kind = inp.byte("kind")?;
            r.sent_ns = time_ns.wrapping_sub(inp.varint("message age")?);
            if st.entry(msg).is_some_and(|e| e.matches(&r)) {
                return Err(noncanonical("a cached header spelled out"));
            }
        }
        if tag & DETAIL != 0 {
            r.detail = match inp.varint("detail")? {
                0 => return Err(noncanonical("a zero detail with the detail flag")),
                d => u16::try_from(d).map_err(|_| (at, format!("detail {d} exceeds u16")))?,
            };
        }
        st.advance(&r);
        Ok(r)
    }
}

/// A frame body being read.
pub(super) struct Input<'a> {
    b: &'a [u8],
    pub(super) pos: usize,
    /// What the body is made of, for "ends inside ...": `a record`.
    inside: &'static str,
}

impl<'a> Input<'a> {
    pub(super) fn new(b: &'a [u8], inside: &'static str) -> Input<'a> {
        Input { b, pos: 0, inside }
    }

    #[inline]
    pub(super) fn byte(&mut self, what: &str) -> Result<u8, DecodeError> {
        let b = *self.b.get(self.pos).ok_or_else(|| {
            (
                self.pos,
                format!("frame ends inside {} ({what})", self.inside),
            )
        })?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes, or an error if fewer are left.
    pub(super) fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], DecodeError> {
        let left = self.b.len() - self.pos;
        if n > left as u64 {
            return Err((
                self.pos,
                format!(
                    "frame ends inside {} ({what}: {n} bytes, {left} left)",
                    self.inside
                ),
            ));
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    /// An unsigned LEB128 varint: minimal, at most 10 bytes, no overflow.
    #[inline]
    pub(super) fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte(what)?;
            if i == 9 && b > 1 {
                return Err((at, format!("varint overflows 64 bits ({what})")));
            }
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err((at, format!("overlong varint ({what})")));
                }
                return Ok(v);
            }
        }
        Err((at, format!("varint overflows 64 bits ({what})")))
    }

    #[inline]
    fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let at = self.pos;
        let v = self.varint(what)?;
        u32::try_from(v).map_err(|_| (at, format!("{what} {v} exceeds u32")))
    }
}

/// Appends `v` as a varint.
pub(super) fn put_varint(out: &mut Vec<u8>, v: u64) {
    let mut b = [0u8; 10];
    let n = put_varint_at(&mut b, 0, v);
    out.extend_from_slice(&b[..n]);
}

/// Writes `v` as a varint at `b[n..]`; returns the index after it.
#[inline]
fn put_varint_at(b: &mut [u8], mut n: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        b[n] = (v as u8) | 0x80;
        v >>= 7;
        n += 1;
    }
    b[n] = v as u8;
    n + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{NODE_BROADCAST, NODE_BROKER, NONE};

    fn rec(event: EventKind, time_ns: u64, msg: u64) -> Record {
        Record {
            time_ns,
            event,
            msg,
            channel: 3,
            sender: 4,
            node: NODE_BROKER,
            kind: 1,
            detail: 0,
            sent_ns: time_ns,
        }
    }

    fn encode(records: &[Record]) -> Vec<u8> {
        Encoder::new().encode(records).to_vec()
    }

    fn decode(body: &[u8]) -> Result<Vec<Record>, DecodeError> {
        let mut out = Vec::new();
        Decoder::new().decode(body, &mut out).map(|()| out)
    }

    #[test]
    fn varints_are_leb128_minimal_and_bounded() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut inp = Input::new(&out, "a record");
            assert_eq!(inp.varint("v").unwrap(), v);
            assert_eq!(inp.pos, out.len());
        }
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        let nine_ff = [0xFF; 9];
        let overflow_10th: Vec<u8> = nine_ff.iter().copied().chain([0x02]).collect();
        let eleven: Vec<u8> = nine_ff.iter().copied().chain([0x81, 0x01]).collect();
        let bad: [(&str, &[u8]); 5] = [
            ("overlong zero", &[0x80, 0x00]),
            ("overlong", &[0xFF, 0x80, 0x00]),
            ("10th byte above 1", &overflow_10th),
            ("11 bytes", &eleven),
            ("ends inside", &[0x80, 0x80]),
        ];
        for (what, b) in bad {
            assert!(Input::new(b, "a record").varint("v").is_err(), "{what}");
        }
    }

    #[test]
    fn the_typical_life_of_a_message_is_a_few_bytes() {
        let p = Record {
            node: NODE_BROADCAST,
            ..rec(EventKind::Publish, 1_000_000, 0)
        };
        let route = Record {
            time_ns: 3_000_000,
            event: EventKind::Route,
            ..p
        };
        let deliver = Record {
            time_ns: 5_000_000,
            event: EventKind::Deliver,
            node: 7,
            ..p
        };
        let records = [p, route, deliver];
        let body = encode(&records);
        assert_eq!(decode(&body).unwrap(), records);
        // count; publish: tag, time(3), node, channel, sender, kind, age;
        // route: tag, time(3), msg, node; deliver: the same.
        assert_eq!(body.len(), 1 + 9 + 6 + 6, "{body:x?}");
        assert_eq!(body[1], NEXT_MSG, "publish: event 0, next id");
        assert_eq!(body[10], 1 | CACHED, "route: event 1, cached header");
    }

    #[test]
    fn extremes_round_trip() {
        let mut v = Vec::new();
        for (i, e) in EventKind::ALL.iter().enumerate() {
            for t in [0, 1, u64::MAX, u64::MAX - 1, 5] {
                v.push(Record {
                    time_ns: t,
                    event: *e,
                    msg: [0, u64::MAX, 1 << 63, 7][i % 4],
                    channel: [NONE, 0, u32::MAX - 1][i % 3],
                    sender: [0, NONE, 12345][i % 3],
                    node: [NODE_BROKER, NODE_BROADCAST, 0, 99][i % 4],
                    kind: [0, 255, 64][i % 3],
                    detail: [0, 1, u16::MAX][i % 3],
                    sent_ns: [0, u64::MAX, t][i % 3],
                });
            }
        }
        assert_eq!(decode(&encode(&v)).unwrap(), v);
    }

    #[test]
    fn hostile_counts_are_rejected_before_reserving() {
        for count in [0u64, CHUNK as u64 + 1, u64::from(u32::MAX), u64::MAX] {
            let mut body = Vec::new();
            put_varint(&mut body, count);
            body.extend_from_slice(&[0x10; 64]);
            let mut out = Vec::new();
            let err = Decoder::new().decode(&body, &mut out).unwrap_err();
            assert!(err.1.contains("records"), "{count}: {err:?}");
            assert_eq!(out.capacity(), 0, "{count}: reserved before checking");
        }
        // A plausible count with too few bytes behind it.
        let mut body = Vec::new();
        put_varint(&mut body, CHUNK as u64);
        body.extend_from_slice(&[0x10, 0x00, 0x10]);
        let mut out = Vec::new();
        assert!(Decoder::new().decode(&body, &mut out).is_err());
        assert_eq!(out.capacity(), 0);
    }

    #[test]
    fn stray_and_non_canonical_bytes_are_rejected() {
        let a = rec(EventKind::Publish, 10, 0);
        let b = rec(EventKind::Route, 10, 0);
        let body = encode(&[a, b]);
        assert_eq!(decode(&body).unwrap(), [a, b]);
        let mut stray = body.clone();
        stray.push(0);
        assert!(decode(&stray).unwrap_err().1.contains("stray"));

        // The route is cached and at the same time: tag, msg distance 0, node.
        let route_at = body.len() - 3;
        assert_eq!(body[route_at..], [1 | SAME_TIME | CACHED, 0, 0]);
        // Spelling out what the flags say is refused.
        let mut spelled = body[..route_at].to_vec();
        spelled.extend_from_slice(&[1 | CACHED, 0, 0]); // no SAME_TIME, no delta
        assert!(decode(&spelled).is_err());
        let mut spelled = body[..route_at].to_vec();
        // SAME_TIME, msg 0, node, then channel 4, sender 5, kind 1, age 0.
        spelled.extend_from_slice(&[1 | SAME_TIME, 0, 0, 4, 5, 1, 0]);
        assert!(decode(&spelled).unwrap_err().1.contains("non-canonical"));
        // A cache flag for a message that is not cached.
        let mut missing = body[..route_at].to_vec();
        missing.extend_from_slice(&[1 | SAME_TIME | CACHED, 1, 0]);
        assert!(decode(&missing).unwrap_err().1.contains("cache"));
        // Unknown event codes.
        for code in 0..16u8 {
            let mut b = body.clone();
            b[route_at] = (b[route_at] & !EVENT_MASK) | code;
            let known = EventKind::from_code(code).is_some();
            if !known {
                assert!(decode(&b).unwrap_err().1.contains("event code"), "{code}");
            }
        }
    }
}
