//! Traces: one fixed-size [`Record`] per event, a streaming digest of the whole
//! event stream, and a bounded, versioned binary file format.
//!
//! # File format (version 1)
//!
//! ```text
//! magic    8 bytes  "BUSBARTR"
//! version  u16 LE   FORMAT_VERSION
//! frames   repeated: len u32 LE | tag u8 | body (len bytes, postcard)
//!          tag 1 Header  (once, first)
//!          tag 2 Records (a batch of up to CHUNK records)
//!          tag 3 Footer  (once, last: names, record count, digest)
//! ```
//!
//! The digest is XXH3-128 over the canonical 40-byte little-endian layout of
//! every record ([`Record::to_bytes`]), independent of the file encoding.
//! Reading is bounded: a frame longer than [`MAX_FRAME`] or than what is left
//! of the file is an error before anything is allocated, and so is a
//! truncated file or a digest that does not match.

pub mod export;

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

/// The magic bytes that open every trace file.
pub const MAGIC: &[u8; 8] = b"BUSBARTR";
/// The trace file format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// The largest frame a reader accepts (bytes).
pub const MAX_FRAME: u32 = 64 << 20;
/// Records per batch frame (and per digest update).
pub const CHUNK: usize = 4096;

/// What happened. The names are the `event` column of the CSV export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u8)]
#[non_exhaustive]
pub enum EventKind {
    /// An agent published a message (node: the message's recipient).
    Publish = 0,
    /// The message reached the broker, which routes it to subscribers.
    Route = 1,
    /// A copy reached its recipient agent (node).
    Deliver = 2,
    /// A copy was dropped; `detail` holds the [`Reason`].
    Drop = 3,
    /// A copy was duplicated by the network.
    Duplicate = 4,
    /// A message expired (TTL).
    Expire = 5,
    /// An acknowledgement.
    Ack = 6,
    /// A retransmission.
    Retransmit = 7,
    /// A message was dead-lettered.
    DeadLetter = 8,
    /// A timer fired (msg: the timer's tag; node: the agent).
    Timer = 9,
    /// A fault started or ended.
    Fault = 10,
    /// The receiving agent found the message late for its deadline.
    Late = 11,
}

impl EventKind {
    const ALL: [EventKind; 12] = [
        EventKind::Publish,
        EventKind::Route,
        EventKind::Deliver,
        EventKind::Drop,
        EventKind::Duplicate,
        EventKind::Expire,
        EventKind::Ack,
        EventKind::Retransmit,
        EventKind::DeadLetter,
        EventKind::Timer,
        EventKind::Fault,
        EventKind::Late,
    ];

    /// The CSV name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Publish => "publish",
            EventKind::Route => "route",
            EventKind::Deliver => "deliver",
            EventKind::Drop => "drop",
            EventKind::Duplicate => "duplicate",
            EventKind::Expire => "expire",
            EventKind::Ack => "ack",
            EventKind::Retransmit => "retransmit",
            EventKind::DeadLetter => "dead_letter",
            EventKind::Timer => "timer",
            EventKind::Fault => "fault",
            EventKind::Late => "late",
        }
    }

    /// The kind for a one-byte code.
    pub fn from_code(c: u8) -> Option<EventKind> {
        Self::ALL.get(usize::from(c)).copied()
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a message copy was dropped. The names are the CSV `detail` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[repr(u16)]
#[non_exhaustive]
pub enum Reason {
    /// Lost on a link (the link's loss model).
    Loss = 1,
    /// The ends were partitioned.
    Partition = 2,
    /// Its time to live ran out.
    Ttl = 3,
    /// A bounded buffer was full.
    Overflow = 4,
    /// The recipient or broker was offline.
    Offline = 5,
    /// No agent subscribes to the channel (or the named recipient does not).
    NoSubscriber = 6,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 6] = [
        Reason::Loss,
        Reason::Partition,
        Reason::Ttl,
        Reason::Overflow,
        Reason::Offline,
        Reason::NoSubscriber,
    ];

    /// The CSV name.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Loss => "loss",
            Reason::Partition => "partition",
            Reason::Ttl => "ttl",
            Reason::Overflow => "overflow",
            Reason::Offline => "offline",
            Reason::NoSubscriber => "no_subscriber",
        }
    }

    /// The reason for a code.
    pub fn from_code(c: u16) -> Option<Reason> {
        Self::ALL.iter().copied().find(|r| *r as u16 == c)
    }
}

/// A `node` value: the broker.
pub const NODE_BROKER: u32 = u32::MAX - 1;
/// A `node` value: every subscriber (a broadcast message's recipient).
pub const NODE_BROADCAST: u32 = u32::MAX;
/// A `channel`/`sender` value: not applicable.
pub const NONE: u32 = u32::MAX;

/// One event. Fixed-size and `Copy`: appending one is a 40-byte copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Virtual time of the event, ns.
    pub time_ns: u64,
    /// What happened.
    pub event: EventKind,
    /// Message id (for timers: the timer's tag).
    pub msg: u64,
    /// Channel id, or [`NONE`].
    pub channel: u32,
    /// Sending agent id, or [`NONE`].
    pub sender: u32,
    /// The node concerned: recipient agent id, [`NODE_BROKER`] or
    /// [`NODE_BROADCAST`].
    pub node: u32,
    /// Message kind code ([`crate::message::MessageKind::code`]).
    pub kind: u8,
    /// Event-specific detail: the [`Reason`] code for drops, else 0.
    pub detail: u16,
    /// Virtual time the message was sent, ns.
    pub sent_ns: u64,
}

impl Record {
    /// Canonical little-endian layout, the input of the digest.
    pub fn to_bytes(&self) -> [u8; 40] {
        let mut b = [0u8; 40];
        b[0..8].copy_from_slice(&self.time_ns.to_le_bytes());
        b[8] = self.event as u8;
        b[9] = self.kind;
        b[10..12].copy_from_slice(&self.detail.to_le_bytes());
        b[12..16].copy_from_slice(&self.channel.to_le_bytes());
        b[16..24].copy_from_slice(&self.msg.to_le_bytes());
        b[24..28].copy_from_slice(&self.sender.to_le_bytes());
        b[28..32].copy_from_slice(&self.node.to_le_bytes());
        b[32..40].copy_from_slice(&self.sent_ns.to_le_bytes());
        b
    }
}

impl Record {
    /// The record whose canonical layout is `b` (the inverse of
    /// [`Record::to_bytes`]); `None` if the event code is unknown.
    pub fn from_bytes(b: &[u8; 40]) -> Option<Record> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Some(Record {
            time_ns: u64_at(0),
            event: EventKind::from_code(b[8])?,
            kind: b[9],
            detail: u16::from_le_bytes([b[10], b[11]]),
            channel: u32_at(12),
            msg: u64_at(16),
            sender: u32_at(24),
            node: u32_at(28),
            sent_ns: u64_at(32),
        })
    }
}

/// A 128-bit digest of an event stream, printed as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 16]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Streaming digest over records.
#[derive(Clone)]
pub struct Digester {
    hasher: Xxh3,
    scratch: Vec<u8>,
}

impl Default for Digester {
    fn default() -> Self {
        Digester {
            hasher: Xxh3::new(),
            scratch: Vec::with_capacity(CHUNK * 40),
        }
    }
}

impl Digester {
    /// Feeds records, in order.
    pub fn update(&mut self, records: &[Record]) {
        self.scratch.clear();
        for r in records {
            self.scratch.extend_from_slice(&r.to_bytes());
        }
        self.hasher.update(&self.scratch);
    }

    /// Feeds records already in their canonical layout
    /// ([`Record::to_bytes`], concatenated).
    pub fn update_bytes(&mut self, canonical: &[u8]) {
        self.hasher.update(canonical);
    }

    /// The digest of everything fed so far.
    pub fn digest(&self) -> Digest {
        Digest(self.hasher.digest128().to_le_bytes())
    }
}

/// The first frame of a trace file: what is needed to re-run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// `CARGO_PKG_VERSION` of the writer.
    pub crate_version: String,
    /// Where the scenario was read from, as it was named.
    pub scenario_path: String,
    /// The absolute directory that relative paths inside the scenario (CSV
    /// profiles) were resolved from, so a replay finds them from any
    /// working directory.
    pub base_dir: String,
    /// The full scenario text.
    pub scenario: String,
    /// The run's seed.
    pub seed: u64,
    /// The environment index.
    pub env: u32,
}

/// The last frame: names for the ids in records, count and digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    /// Agent names by id.
    pub agents: Vec<String>,
    /// Channel names by id.
    pub channels: Vec<String>,
    /// Names of the message kind codes (code, name).
    pub kinds: Vec<(u8, String)>,
    /// How many records the file holds.
    pub records: u64,
    /// Digest of all records.
    pub digest: Digest,
    /// Why the run stopped early (an exceeded limit), or `None` if it ran
    /// to its end. A stopped trace is complete up to that point.
    pub stopped: Option<String>,
}

const TAG_HEADER: u8 = 1;
const TAG_RECORDS: u8 = 2;
const TAG_FOOTER: u8 = 3;

/// Why a trace could not be written or read. Reading never panics and never
/// allocates more than the file's size.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The file could not be read or written.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with the trace magic: not a busbar trace.
    #[error("not a busbar trace (bad magic bytes)")]
    BadMagic,
    /// Written by a format version this build cannot read.
    #[error(
        "trace format version {found} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    Version {
        /// The version in the file.
        found: u16,
    },
    /// The file ends in the middle of a frame or before its footer: it was
    /// cut short (a crashed writer or a partial copy).
    #[error("trace is truncated at byte {offset}: {what}")]
    Truncated {
        /// Byte offset where data ran out.
        offset: u64,
        /// What was being read.
        what: &'static str,
    },
    /// A frame is malformed: bad length, unknown tag, undecodable body, or
    /// frames out of order. The file is corrupt.
    #[error("trace is corrupt at byte {offset}: {what}")]
    Corrupt {
        /// Byte offset of the bad frame.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The records do not hash to the digest in the footer, or their count
    /// differs: the file was altered.
    #[error("trace digest mismatch: footer says {expected}, records hash to {actual}")]
    DigestMismatch {
        /// Digest stored in the footer.
        expected: Digest,
        /// Digest of the records actually read.
        actual: Digest,
    },
}

/// Writes a trace file frame by frame.
pub struct TraceWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the magic, version and header frame.
    pub fn new(mut out: W, header: &Header) -> Result<Self, TraceError> {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        let mut w = TraceWriter {
            out,
            buf: Vec::new(),
        };
        w.frame(TAG_HEADER, header)?;
        Ok(w)
    }

    fn frame<T: Serialize>(&mut self, tag: u8, body: &T) -> Result<(), TraceError> {
        self.buf.clear();
        let buf = std::mem::take(&mut self.buf);
        let buf = postcard::to_extend(body, buf).map_err(|e| TraceError::Corrupt {
            offset: 0,
            what: format!("cannot encode frame: {e}"),
        })?;
        let len = u32::try_from(buf.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME)
            .ok_or_else(|| TraceError::Corrupt {
                offset: 0,
                what: format!(
                    "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                    buf.len()
                ),
            })?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&[tag])?;
        self.out.write_all(&buf)?;
        self.buf = buf;
        Ok(())
    }

    /// Writes one batch of records.
    pub fn records(&mut self, records: &[Record]) -> Result<(), TraceError> {
        self.frame(TAG_RECORDS, &records)
    }

    /// Writes the footer and flushes; returns the inner writer.
    pub fn finish(mut self, footer: &Footer) -> Result<W, TraceError> {
        self.frame(TAG_FOOTER, footer)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a trace file: header first, then records batch by batch; the footer
/// is located up front by skipping over frames (no record is decoded twice).
pub struct TraceReader<R: Read + Seek> {
    inp: R,
    len: u64,
    header: Header,
    footer: Footer,
    records_start: u64,
}

impl<R: Read + Seek> TraceReader<R> {
    /// Opens a trace: checks magic and version, reads the header and footer.
    pub fn new(mut inp: R) -> Result<Self, TraceError> {
        let len = inp.seek(SeekFrom::End(0))?;
        inp.seek(SeekFrom::Start(0))?;
        let mut magic = [0u8; 10];
        read_exact_at(&mut inp, &mut magic, 0, "magic and version")?;
        if &magic[..8] != MAGIC {
            return Err(TraceError::BadMagic);
        }
        let found = u16::from_le_bytes([magic[8], magic[9]]);
        if found != FORMAT_VERSION {
            return Err(TraceError::Version { found });
        }
        let mut pos = 10u64;
        let (tag, body) = read_frame(&mut inp, &mut pos, len)?;
        if tag != TAG_HEADER {
            return Err(corrupt(
                10,
                format!("first frame has tag {tag}, expected the header"),
            ));
        }
        let header: Header = decode(&body, 10)?;
        let records_start = pos;
        // Skip record frames to find the footer.
        loop {
            let at = pos;
            let (tag, frame_len) = read_frame_head(&mut inp, &mut pos, len)?;
            match tag {
                TAG_RECORDS => {
                    pos += u64::from(frame_len);
                    inp.seek(SeekFrom::Start(pos))?;
                }
                TAG_FOOTER => {
                    let body = read_body(&mut inp, &mut pos, frame_len)?;
                    let footer: Footer = decode(&body, at)?;
                    if pos != len {
                        return Err(corrupt(
                            pos,
                            format!("{} bytes after the footer", len - pos),
                        ));
                    }
                    inp.seek(SeekFrom::Start(records_start))?;
                    return Ok(TraceReader {
                        inp,
                        len,
                        header,
                        footer,
                        records_start,
                    });
                }
                t => return Err(corrupt(at, format!("unexpected frame tag {t}"))),
            }
        }
    }

    /// The header (scenario, seed, env).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The footer (names, count, digest).
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// A cursor over the records, from the first; it checks the count and
    /// digest against the footer when it reaches the end.
    pub fn cursor(&mut self) -> RecordCursor<'_, R> {
        RecordCursor {
            pos: self.records_start,
            reader: self,
            batch: Vec::new(),
            next: 0,
            digester: Digester::default(),
            count: 0,
            done: false,
        }
    }

    /// Calls `f` on every record batch in order, then checks the count and
    /// digest against the footer.
    pub fn for_each_batch(
        &mut self,
        mut f: impl FnMut(&[Record]) -> Result<(), TraceError>,
    ) -> Result<(), TraceError> {
        let mut c = self.cursor();
        while let Some(batch) = c.next_batch()? {
            f(batch)?;
        }
        Ok(())
    }

    /// All records, checked against the footer. Memory grows with the trace;
    /// prefer [`TraceReader::cursor`] or [`TraceReader::for_each_batch`] for
    /// large files.
    pub fn read_all(&mut self) -> Result<Vec<Record>, TraceError> {
        let mut all = Vec::new();
        self.for_each_batch(|b| {
            all.extend_from_slice(b);
            Ok(())
        })?;
        Ok(all)
    }
}

/// Reads a trace's records batch by batch, holding one batch at a time.
/// Reaching the footer checks the record count and digest: a mismatch is an
/// error then, after the records already returned.
pub struct RecordCursor<'a, R: Read + Seek> {
    reader: &'a mut TraceReader<R>,
    pos: u64,
    batch: Vec<Record>,
    next: usize,
    digester: Digester,
    count: u64,
    done: bool,
}

impl<R: Read + Seek> RecordCursor<'_, R> {
    fn load(&mut self) -> Result<bool, TraceError> {
        if self.done {
            return Ok(false);
        }
        let r = &mut *self.reader;
        if self.count == 0 && self.batch.is_empty() {
            // Frames follow each other: position once, then read on.
            r.inp.seek(SeekFrom::Start(self.pos))?;
        }
        let at = self.pos;
        let (tag, body) = read_frame(&mut r.inp, &mut self.pos, r.len)?;
        if tag == TAG_FOOTER {
            self.done = true;
            self.batch.clear();
            self.next = 0;
            let actual = self.digester.digest();
            if actual != r.footer.digest || self.count != r.footer.records {
                return Err(TraceError::DigestMismatch {
                    expected: r.footer.digest,
                    actual,
                });
            }
            return Ok(false);
        }
        if tag != TAG_RECORDS {
            return Err(corrupt(at, format!("unexpected frame tag {tag}")));
        }
        self.batch = decode(&body, at)?;
        self.next = 0;
        self.digester.update(&self.batch);
        self.count += self.batch.len() as u64;
        Ok(true)
    }

    /// The rest of the current batch (or the next one), or `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<&[Record]>, TraceError> {
        while self.next == self.batch.len() {
            if !self.load()? {
                return Ok(None);
            }
        }
        let from = self.next;
        self.next = self.batch.len();
        Ok(Some(&self.batch[from..]))
    }

    /// The next record, or `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<Record>, TraceError> {
        while self.next == self.batch.len() {
            if !self.load()? {
                return Ok(None);
            }
        }
        self.next += 1;
        Ok(Some(self.batch[self.next - 1]))
    }
}

fn corrupt(offset: u64, what: String) -> TraceError {
    TraceError::Corrupt { offset, what }
}

fn decode<'a, T: Deserialize<'a>>(body: &'a [u8], at: u64) -> Result<T, TraceError> {
    let (v, rest) = postcard::take_from_bytes(body)
        .map_err(|e| corrupt(at, format!("cannot decode frame: {e}")))?;
    if !rest.is_empty() {
        return Err(corrupt(at, format!("{} stray bytes in frame", rest.len())));
    }
    Ok(v)
}

fn read_exact_at<R: Read>(
    inp: &mut R,
    buf: &mut [u8],
    offset: u64,
    what: &'static str,
) -> Result<(), TraceError> {
    inp.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => TraceError::Truncated { offset, what },
        _ => TraceError::Io(e),
    })
}

fn read_frame_head<R: Read>(
    inp: &mut R,
    pos: &mut u64,
    file_len: u64,
) -> Result<(u8, u32), TraceError> {
    let mut head = [0u8; 5];
    if *pos + 5 > file_len {
        return Err(TraceError::Truncated {
            offset: *pos,
            what: "frame header (the footer is missing)",
        });
    }
    read_exact_at(inp, &mut head, *pos, "frame header")?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let at = *pos;
    *pos += 5;
    if len > MAX_FRAME {
        return Err(corrupt(
            at,
            format!("frame length {len} exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    if *pos + u64::from(len) > file_len {
        return Err(TraceError::Truncated {
            offset: file_len,
            what: "frame body",
        });
    }
    Ok((head[4], len))
}

fn read_body<R: Read>(inp: &mut R, pos: &mut u64, len: u32) -> Result<Vec<u8>, TraceError> {
    // `len` was checked against the file's remaining size before this allocation.
    let mut body = vec![0u8; len as usize];
    read_exact_at(inp, &mut body, *pos, "frame body")?;
    *pos += u64::from(len);
    Ok(body)
}

fn read_frame<R: Read>(
    inp: &mut R,
    pos: &mut u64,
    file_len: u64,
) -> Result<(u8, Vec<u8>), TraceError> {
    let (tag, len) = read_frame_head(inp, pos, file_len)?;
    let body = read_body(inp, pos, len)?;
    Ok((tag, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn rec(i: u64) -> Record {
        Record {
            time_ns: i * 10,
            event: EventKind::from_code((i % 12) as u8).unwrap(),
            msg: i,
            channel: 1,
            sender: 2,
            node: NODE_BROKER,
            kind: 3,
            detail: 0,
            sent_ns: i,
        }
    }

    fn write(records: &[Record]) -> Vec<u8> {
        let header = Header {
            crate_version: "x".into(),
            scenario_path: "s.toml".into(),
            base_dir: ".".into(),
            scenario: "[simulation]".into(),
            seed: 7,
            env: 0,
        };
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        let mut d = Digester::default();
        for c in records.chunks(CHUNK) {
            w.records(c).unwrap();
            d.update(c);
        }
        w.finish(&Footer {
            agents: vec!["a".into()],
            channels: vec!["c".into()],
            kinds: vec![(5, "info".into())],
            records: records.len() as u64,
            digest: d.digest(),
            stopped: None,
        })
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let records: Vec<Record> = (0..10_000).map(rec).collect();
        let bytes = write(&records);
        let mut r = TraceReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(r.header().seed, 7);
        assert_eq!(r.read_all().unwrap(), records);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = write(&(0..100).map(rec).collect::<Vec<_>>());
        for cut in 0..bytes.len() {
            let res =
                TraceReader::new(Cursor::new(bytes[..cut].to_vec())).and_then(|mut r| r.read_all());
            assert!(res.is_err(), "cut at {cut} was accepted");
        }
    }

    #[test]
    fn a_huge_length_prefix_is_rejected_before_allocating() {
        let mut bytes = write(&[rec(1)]);
        bytes[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = TraceReader::new(Cursor::new(bytes)).err().unwrap();
        assert!(matches!(err, TraceError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn flipped_record_byte_is_caught() {
        let bytes = write(&(0..100).map(rec).collect::<Vec<_>>());
        let mut caught = 0;
        // Flip each byte inside the first records frame.
        let header_end = {
            let len = u32::from_le_bytes(bytes[10..14].try_into().unwrap()) as usize;
            10 + 5 + len
        };
        for i in header_end + 5..header_end + 200 {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            let res = TraceReader::new(Cursor::new(b)).and_then(|mut r| r.read_all());
            if res.is_err() {
                caught += 1;
            }
        }
        assert_eq!(caught, 195);
    }

    #[test]
    fn bad_magic_and_version() {
        let mut bytes = write(&[rec(1)]);
        bytes[0] = b'X';
        assert!(matches!(
            TraceReader::new(Cursor::new(bytes.clone())).err().unwrap(),
            TraceError::BadMagic
        ));
        bytes[0] = b'B';
        bytes[8] = 99;
        assert!(matches!(
            TraceReader::new(Cursor::new(bytes)).err().unwrap(),
            TraceError::Version { found: 99 }
        ));
    }

    #[test]
    fn canonical_bytes_round_trip_and_reject_unknown_events() {
        for i in 0..50 {
            let r = Record {
                detail: i as u16 * 7,
                ..rec(i * 0x0101_0101_0101)
            };
            assert_eq!(Record::from_bytes(&r.to_bytes()), Some(r));
        }
        let mut b = rec(1).to_bytes();
        b[8] = 200;
        assert_eq!(Record::from_bytes(&b), None);
    }

    #[test]
    fn event_and_reason_codes_round_trip() {
        for e in EventKind::ALL {
            assert_eq!(EventKind::from_code(e as u8), Some(e));
        }
        for r in Reason::ALL {
            assert_eq!(Reason::from_code(r as u16), Some(r));
        }
    }
}
