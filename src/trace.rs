//! Traces: one fixed-size [`Record`] per event, streaming digests of the
//! event stream and of the payloads published, and a bounded, versioned,
//! checksummed, compact binary file format.
//!
//! The module is split by concept: `record` holds [`Record`], its canonical
//! layout, [`EventKind`], [`Reason`] and the node constants; `digest` holds
//! [`Digest`], the [`Digester`] over records and the [`PayloadDigester`];
//! `file` holds the file format ([`TraceWriter`], [`TraceReader`],
//! [`RecordCursor`], [`Header`], [`Footer`], [`Part`], [`TraceError`]);
//! [`export`] writes them as CSV or JSON Lines, [`perfetto`] as Chrome
//! trace-event JSON and [`mermaid`] as a sequence diagram, both over a
//! [`window`] of time and filters; [`life`] follows one message through
//! them (`busbar show --msg`) (replay and diff, which also read traces,
//! sit above in `crate::replay`).
//!
//! # Digests
//!
//! The **records digest** is XXH3-128 over the canonical 40-byte
//! little-endian layout of every record ([`Record::to_bytes`]: `time_ns
//! u64, event u8, kind u8, detail u16, channel u32, msg u64, sender u32,
//! node u32, sent_ns u64`), concatenated in order. It does not depend on the
//! file encoding.
//!
//! The **payload digest** is XXH3-128 over the canonical encoding of every
//! payload published, in publish order (message id order, lost messages
//! included), concatenated; [`PayloadDigester`] gives the encoding byte by
//! byte (a code byte per variant, lengths, `f64` values as their
//! little-endian bits).
//!
//! The **run digest** — what `busbar run` prints, [`Summary::digest`]
//! holds, and golden tests pin — is XXH3-128 over the records digest's 16
//! bytes followed by the payload digest's 16 bytes ([`Digest::of_run`]).
//! Equal run digests mean the same events *and* the same message contents.
//! A digest prints as the 32 hex digits of its 16 bytes, in order; each
//! digest's 16 bytes are its XXH3-128 value, little-endian.
//!
//! A simulation whose trace is off computes none of them.
//!
//! [`Summary::digest`]: crate::metrics::Summary::digest
//!
//! # File format (version 6)
//!
//! ```text
//! magic    8 bytes  "BUSBARTR"
//! version  u16 LE   FORMAT_VERSION (6; any other version is refused)
//! frames   repeated: len u32 LE | tag u8 | body (len bytes) | check u64 LE
//!          (len <= MAX_FRAME)
//!          tag 1 Header   once, first; postcard: crate_version, scenario_path,
//!                         base_dir, scenario text, seed, env,
//!                         payload_limit (Option<u32>, since version 6)
//!          tag 2 Records  zero or more batches of 1..=CHUNK records, encoded
//!                         as below
//!          tag 4 Payloads (since version 6) only in a trace whose header has
//!                         a payload_limit: just before each records batch
//!                         that holds a publish, the payloads of that batch's
//!                         publishes, encoded as below
//!          tag 3 Footer   once, last; postcard: agent names, channel names,
//!                         kind names as (code, name) pairs, record count,
//!                         records digest (16 bytes), payload digest
//!                         (16 bytes), stop reason (Option<String>),
//!                         router names, deadlines (since version 5:
//!                         [`Deadline`] name, limit_ns, period_ns, step;
//!                         a `late` record's detail is its index + 1,
//!                         0 for none)
//! ```
//!
//! Nothing may follow the footer.
//!
//! ## Checks
//!
//! Every byte of the file is covered by a check, and the checks form a
//! chain:
//!
//! ```text
//! seed_0      = XXH3-64(magic | version)              (the 10 preamble bytes)
//! check_k     = XXH3-64 with seed seed_k over  len | tag | body  of frame k
//! seed_(k+1)  = check_k
//! ```
//!
//! A reader verifies a frame's check before it uses anything in its body:
//! [`TraceReader::new`] verifies the header and the footer (whose seed is
//! the check stored just before it) before it returns, and the cursor
//! verifies each batch before decoding it. Since each check is seeded by
//! the one before, a frame matches only in its own place: a frame removed,
//! repeated or moved, or a header or footer taken from another trace, fails
//! a check like a flipped bit does. The preamble seeds the chain, so a
//! flipped magic or version byte is refused even if it made another
//! valid-looking preamble.
//!
//! A failed check is [`TraceError::Damaged`], naming the part — `header`,
//! `records batch N` (counted from 1) or `footer` — and its frame's byte
//! offset. To name it, a reader that meets an inconsistency while locating
//! the footer walks the frames again, checking each: the first frame that
//! fails is the damaged part (named for what it is: if it would match under
//! the other of the tags 2 and 3, the tag was the damage). A frame whose
//! length runs past the end of the file is [`TraceError::Truncated`] — a cut
//! and a damaged length look alike there — and the message names the frame.
//! A frame that passes its check but is malformed (unknown tag, frames out
//! of order, an undecodable body) is [`TraceError::Corrupt`]: it was made
//! by a writer that is not busbar's. Checks are XXH3, which catches
//! accidents (a flipped bit, a bad copy), not forgery.
//!
//! ## Record batches
//!
//! A `varint` is unsigned LEB128: 7 bits per byte, least significant group
//! first, high bit set on every byte but the last. It must be minimal (a
//! multi-byte varint does not end in `0x00`), at most 10 bytes long, and fit
//! in 64 bits (a 10th byte is `0x00` or `0x01`). Arithmetic on `u64`
//! fields wraps modulo 2^64, on `u32` fields modulo 2^32.
//!
//! A batch body is `varint count` (1 ≤ count ≤ [`CHUNK`]) followed by
//! exactly `count` records. Each batch decodes on its own: at its start the
//! decoder sets
//!
//! ```text
//! prev_time = 0
//! last_pub  = 2^64 - 1            (so a first publish of id 0 is "next")
//! cache     = 1024 empty slots    (slot of a record: msg mod 1024)
//! ```
//!
//! and reads each record as follows.
//!
//! ```text
//! tag      u8    bits 0..=3  event code: 0 publish, 1 route, 2 deliver,
//!                            3 drop, 4 duplicate, 5 expire, 6 ack,
//!                            7 retransmit, 8 dead_letter, 9 timer,
//!                            10 fault, 11 late, 12 forward, 13 retained,
//!                            14 enqueue, 15 session (every code of the
//!                            nibble is taken: a new kind needs a new
//!                            format version)
//!                bit 4 (0x10) SAME_TIME   bit 5 (0x20) NEXT_MSG
//!                bit 6 (0x40) CACHED      bit 7 (0x80) DETAIL
//! time     if SAME_TIME: no bytes, time_ns = prev_time
//!          else: varint dt (dt != 0), time_ns = prev_time + dt
//! msg      timer:       varint, msg = value (NEXT_MSG must be clear)
//!          NEXT_MSG:    no bytes, msg = last_pub + 1
//!          otherwise:   varint d (d != 2^64 - 1), msg = last_pub - d
//! node     varint v < 2^32, node = v - 2
//!          (0 = NODE_BROKER, 1 = NODE_BROADCAST, k + 2 = agent k,
//!          NODE_ROUTER_BASE + r + 2 = router r)
//! header   if CACHED: no bytes; the slot of msg must hold msg (written
//!          earlier in this batch); channel, sender, kind and sent_ns are
//!          the slot's
//!          else:
//!            channel  varint v < 2^32, channel = v - 1 (0 = NONE)
//!            sender   varint v < 2^32, sender  = v - 1 (0 = NONE)
//!            kind     u8
//!            age      varint a, sent_ns = time_ns - a
//! detail   if DETAIL: varint 1..=65535; else detail = 0
//! ```
//!
//! After every record, whatever its event: the slot of `msg` is overwritten
//! with `(msg, channel, sender, kind, sent_ns)`, `prev_time = time_ns`, and
//! if the event is publish, `last_pub = msg`. Bytes left after the last
//! record are an error.
//!
//! The encoding is canonical, so each record sequence has exactly one
//! encoding: a writer sets SAME_TIME exactly when `time_ns == prev_time`,
//! NEXT_MSG exactly when the event is not a timer and `msg == last_pub + 1`,
//! CACHED exactly when the slot of `msg` holds `msg` with the same channel,
//! sender, kind and sent_ns, and DETAIL exactly when `detail != 0`; a
//! reader rejects anything else (a zero time delta, a spelled-out next id
//! or cached header, a zero detail, a non-minimal varint). So even behind
//! a check recomputed over it (a faulty writer rather than a faulty disk),
//! a flipped bit either fails to decode or changes the records and so the
//! records digest.
//!
//! ## Payload frames
//!
//! A trace keeps payloads when its header's `payload_limit` is set
//! (`[simulation] trace_payloads`, 1..=[`MAX_PAYLOAD_LIMIT`] bytes). Then
//! every records batch that holds a `publish` record is preceded by exactly
//! one payload frame with one entry per publish of the batch, in the same
//! (message id) order; a batch without publishes has none. The body:
//!
//! ```text
//! count    varint (1 ≤ count ≤ CHUNK)
//! entry    repeated count times:
//!   msg    varint: the first entry's message id; then id − previous id − 1
//!   type   u8: 0 empty (nothing follows), 1 floats, 2 bytes, 3 text
//!   full   varint: the whole payload's length (floats: values; else bytes)
//!   kept   varint: how much of it follows: min(full, limit / 8) floats,
//!          min(full, limit) bytes, or for text the longest prefix of at
//!          most min(full, limit) bytes that ends on a UTF-8 character
//!   data   kept × 8 bytes (f64 little-endian) or kept bytes
//! ```
//!
//! A reader checks all of it: the count against the body, the kept lengths
//! against the limit, text as UTF-8, no stray bytes, and the entries' ids
//! against the publishes of the batch that follows
//! ([`RecordCursor::payloads`], [`KeptPayload`]).
//!
//! A message's publish costs its header once; its route, deliveries, drops
//! and late marks in the same batch find the header in the cache and cost a
//! tag, a time delta (often none), the distance of its id below the last
//! published id, and the node.
//!
//! ## Bounds
//!
//! Reading is bounded: a frame longer than [`MAX_FRAME`] or than what is
//! left of the file (for a batch: what is left before the footer) is an
//! error before anything is allocated; a batch's count is checked against
//! [`CHUNK`] and against its body (each record takes at least 2 bytes)
//! before room for it is reserved; a truncated file, a damaged part, a
//! corrupt batch or records that do not match the footer's count and
//! records digest are errors, never a panic.

mod digest;
mod file;
mod record;

pub mod export;
pub mod life;
pub mod mermaid;
pub mod perfetto;
pub mod window;

pub use digest::{Digest, Digester, PayloadDigester};
pub use file::{
    CHUNK, Deadline, FORMAT_VERSION, Footer, Header, KeptPayload, MAGIC, MAX_FRAME,
    MAX_PAYLOAD_LIMIT, Part, RecordCursor, TraceError, TraceReader, TraceWriter,
};
pub use record::{
    DETAIL_ACK, DETAIL_CONTROL, DETAIL_CONTROL_ACK, DETAIL_PUBACK, DETAIL_REDELIVER, DETAIL_REPLY,
    DeadCause, EXPIRED_ON_ARRIVAL, EXPIRED_REQUEST, EXPIRED_UNACKED, EventKind, FaultKind,
    NODE_BROADCAST, NODE_BROKER, NODE_ROUTER_BASE, NONE, Reason, Record, SessionOp, SessionPhase,
    session_detail,
};
