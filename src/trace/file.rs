//! The trace file format: frames and their checksum chain, the header and
//! footer, the writer, the reader and its record cursor, and the errors of
//! reading. The record encoding inside batch frames lives in the `batch`
//! submodule; both are described byte by byte in the module docs of
//! [`crate::trace`].

mod batch;
mod payloads;

pub use payloads::{KeptPayload, MAX_PAYLOAD_LIMIT};

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use super::{Digest, Digester, EventKind, Record};
use crate::message::Payload;

/// The magic bytes that open every trace file.
pub const MAGIC: &[u8; 8] = b"BUSBARTR";
/// The trace file format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 6;
/// The largest frame body a reader accepts (bytes).
pub const MAX_FRAME: u32 = 64 << 20;
/// Most records per batch frame (and per digest update).
pub const CHUNK: usize = 4096;

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
    /// Whether the trace keeps the payloads published, and how much of
    /// each: at most this many bytes (1..=[`MAX_PAYLOAD_LIMIT`]); `None`
    /// keeps none. Since format version 6.
    pub payload_limit: Option<u32>,
}

/// A deadline a `late` record names (the footer's table).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// Its name: `grid.step_deadline`, `sink.deadline`.
    pub name: String,
    /// Its limit, ns.
    pub limit_ns: u64,
    /// 0: the message was due `limit_ns` after it was sent. Else the
    /// deadline recurs every `period_ns` and the message was due at
    /// `step · period_ns + limit_ns`.
    pub period_ns: u64,
    /// The period the message belonged to (0 when `period_ns` is 0).
    pub step: u64,
}

impl Deadline {
    /// When a message sent at `sent_ns` was due, ns (saturating).
    pub fn due_ns(&self, sent_ns: u64) -> u64 {
        match self.period_ns {
            0 => sent_ns.saturating_add(self.limit_ns),
            p => self.step.saturating_mul(p).saturating_add(self.limit_ns),
        }
    }
}

/// The last frame: names for the ids in records, count and digests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Footer {
    /// Agent names by id.
    pub agents: Vec<String>,
    /// Channel names by id.
    pub channels: Vec<String>,
    /// Names of the message kind codes the run used, as (code, name).
    pub kinds: Vec<(u8, String)>,
    /// How many records the file holds.
    pub records: u64,
    /// Digest of all records ([`Digester`]); a reader checks it against
    /// the records it reads.
    pub records_digest: Digest,
    /// Digest of every payload the run's agents published, in publish order
    /// ([`PayloadDigester`](super::PayloadDigester)).
    pub payload_digest: Digest,
    /// Why the run stopped early (an exceeded limit), or `None` if it ran
    /// to its end. A stopped trace is complete up to that point.
    pub stopped: Option<String>,
    /// Router names by router index (node `NODE_ROUTER_BASE + r`).
    pub routers: Vec<String>,
    /// The deadlines `late` records name, by index: a `late` record's
    /// `detail` is the index + 1, or 0 for a deadline not named
    /// ([`Context::mark_late`](crate::Context::mark_late)). Since format
    /// version 5.
    pub deadlines: Vec<super::Deadline>,
}

impl Footer {
    /// The run's digest, as `busbar run` printed it: records and payloads
    /// together ([`Digest::of_run`]).
    pub fn run_digest(&self) -> Digest {
        Digest::of_run(self.records_digest, self.payload_digest)
    }
}

const TAG_HEADER: u8 = 1;
const TAG_RECORDS: u8 = 2;
const TAG_FOOTER: u8 = 3;
const TAG_PAYLOADS: u8 = 4;
/// Magic, then the version.
const PREAMBLE: u64 = 10;
/// A frame's length and tag.
const FRAME_HEAD: u64 = 5;
/// A frame's check, after its body.
const CHECK: u64 = 8;

/// The seed of the first frame's check: XXH3-64 of the magic and version,
/// so the preamble is covered by the chain too.
fn chain_start(preamble: &[u8; PREAMBLE as usize]) -> u64 {
    xxh3_64(preamble)
}

/// A frame's check: XXH3-64 over its length, tag and body, seeded with the
/// check of the frame before it (or [`chain_start`] for the header).
fn frame_check(seed: u64, head: &[u8; FRAME_HEAD as usize], body: &[u8]) -> u64 {
    let mut h = Xxh3::with_seed(seed);
    h.update(head);
    h.update(body);
    h.digest()
}

/// A part of a trace file, as errors name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The header frame.
    Header,
    /// The `n`th records batch frame, counted from 1.
    Batch(u64),
    /// The payload frame before the `n`th records batch.
    Payloads(u64),
    /// The footer frame.
    Footer,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Header => f.write_str("header"),
            Part::Batch(n) => write!(f, "records batch {n}"),
            Part::Payloads(n) => write!(f, "payloads of records batch {n}"),
            Part::Footer => f.write_str("footer"),
        }
    }
}

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
    /// cut short (a crashed writer or a partial copy). When a frame's
    /// length runs past the end of the file, a damaged length cannot be told
    /// from a cut; `what` names the frame and says so.
    #[error("trace is truncated at byte {offset}: {what}")]
    Truncated {
        /// Byte offset where data ran out.
        offset: u64,
        /// What was being read.
        what: String,
    },
    /// A part of the file does not match its checksum (or its length cannot
    /// be right): a flipped bit, a frame removed, duplicated or moved. Nothing
    /// in that part was used.
    #[error("trace {part} at byte offset {offset} is damaged: {why}")]
    Damaged {
        /// The damaged part.
        part: Part,
        /// Byte offset of its frame.
        offset: u64,
        /// What gave the damage away.
        why: &'static str,
    },
    /// A frame that matches its checksum is malformed: unknown tag, frames
    /// out of order, an undecodable body. The writer that made it was not
    /// busbar's (or had a bug).
    #[error("trace is corrupt at byte {offset}: {what}")]
    Corrupt {
        /// Byte offset of the bad frame, or of the bad byte in a batch.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The records do not hash to the records digest in the footer, or their
    /// count differs.
    #[error("trace records digest mismatch: footer says {expected}, records hash to {actual}")]
    DigestMismatch {
        /// Records digest stored in the footer.
        expected: Digest,
        /// Digest of the records actually read.
        actual: Digest,
    },
}

/// Writes a trace file frame by frame.
pub struct TraceWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    encoder: batch::Encoder,
    /// The check of the last frame written (the next frame's seed).
    chain: u64,
    /// The header's `payload_limit`.
    payload_limit: Option<u32>,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the magic, version and header frame. A header's
    /// `payload_limit` must be in 1..=[`MAX_PAYLOAD_LIMIT`] if set.
    pub fn new(mut out: W, header: &Header) -> Result<Self, TraceError> {
        if let Some(l) = header
            .payload_limit
            .filter(|&l| l == 0 || l > MAX_PAYLOAD_LIMIT)
        {
            return Err(TraceError::Corrupt {
                offset: 0,
                what: format!("payload_limit must be in 1..={MAX_PAYLOAD_LIMIT}, got {l}"),
            });
        }
        let mut preamble = [0u8; PREAMBLE as usize];
        preamble[..8].copy_from_slice(MAGIC);
        preamble[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.write_all(&preamble)?;
        let mut w = TraceWriter {
            out,
            buf: Vec::new(),
            encoder: batch::Encoder::new(),
            chain: chain_start(&preamble),
            payload_limit: header.payload_limit,
        };
        w.postcard_frame(TAG_HEADER, header)?;
        Ok(w)
    }

    fn postcard_frame<T: Serialize>(&mut self, tag: u8, body: &T) -> Result<(), TraceError> {
        self.buf.clear();
        let buf = std::mem::take(&mut self.buf);
        self.buf = postcard::to_extend(body, buf).map_err(|e| TraceError::Corrupt {
            offset: 0,
            what: format!("cannot encode frame: {e}"),
        })?;
        Self::write_frame(&mut self.out, &mut self.chain, tag, &self.buf)
    }

    /// Writes `body` as a frame, its check chained to the previous one.
    fn write_frame(out: &mut W, chain: &mut u64, tag: u8, body: &[u8]) -> Result<(), TraceError> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&l| l <= MAX_FRAME)
            .ok_or_else(|| TraceError::Corrupt {
                offset: 0,
                what: format!(
                    "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                    body.len()
                ),
            })?;
        let mut head = [0u8; FRAME_HEAD as usize];
        head[..4].copy_from_slice(&len.to_le_bytes());
        head[4] = tag;
        let check = frame_check(*chain, &head, body);
        out.write_all(&head)?;
        out.write_all(body)?;
        out.write_all(&check.to_le_bytes())?;
        *chain = check;
        Ok(())
    }

    /// Writes records as batch frames of at most [`CHUNK`] records each
    /// (none for an empty slice). Each batch is encoded on its own. For a
    /// trace that keeps payloads, use [`TraceWriter::records_with_payloads`].
    pub fn records(&mut self, records: &[Record]) -> Result<(), TraceError> {
        self.records_with_payloads(records, &[])
    }

    /// Writes records as [`TraceWriter::records`] does and, in a trace
    /// whose header keeps payloads, each batch's payloads in a frame before
    /// it: `payloads` holds `(message id, payload)` for every `publish`
    /// record in `records`, in the same order (an error otherwise). Each
    /// payload is cut to the header's `payload_limit`. A batch ends early
    /// where a publish's id is not above the batch's previous publish (the
    /// payload frame lists them in increasing order). In a trace that
    /// keeps none, `payloads` must be empty.
    pub fn records_with_payloads(
        &mut self,
        records: &[Record],
        payloads: &[(u64, Payload)],
    ) -> Result<(), TraceError> {
        let mismatch = |what: String| TraceError::Corrupt { offset: 0, what };
        let Some(limit) = self.payload_limit else {
            if !payloads.is_empty() {
                return Err(mismatch(
                    "payloads given for a trace whose header keeps none (payload_limit)".into(),
                ));
            }
            for chunk in records.chunks(CHUNK) {
                let body = self.encoder.encode(chunk);
                Self::write_frame(&mut self.out, &mut self.chain, TAG_RECORDS, body)?;
            }
            return Ok(());
        };
        let mut left = payloads;
        let mut rest = records;
        while !rest.is_empty() {
            // A payload frame lists its batch's publishes in increasing id
            // order: a publish whose id is not above the batch's last one
            // starts a new batch (the engine never makes one).
            let mut n = 0;
            let mut last: Option<u64> = None;
            for r in &rest[..rest.len().min(CHUNK)] {
                if r.event == EventKind::Publish {
                    if last.is_some_and(|l| r.msg <= l) {
                        break;
                    }
                    last = Some(r.msg);
                }
                n += 1;
            }
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let publishes = chunk.iter().filter(|r| r.event == EventKind::Publish);
            let n = publishes.clone().count();
            if left.len() < n || !publishes.zip(left).all(|(r, (m, _))| r.msg == *m) {
                return Err(mismatch(format!(
                    "the payloads do not match the publish records \
                     ({} payloads left for {n} publishes in a batch)",
                    left.len()
                )));
            }
            if n > 0 {
                self.buf.clear();
                payloads::encode(&left[..n], limit, &mut self.buf);
                Self::write_frame(&mut self.out, &mut self.chain, TAG_PAYLOADS, &self.buf)?;
            }
            left = &left[n..];
            let body = self.encoder.encode(chunk);
            Self::write_frame(&mut self.out, &mut self.chain, TAG_RECORDS, body)?;
        }
        if !left.is_empty() {
            return Err(mismatch(format!(
                "{} payloads have no publish record",
                left.len()
            )));
        }
        Ok(())
    }

    /// Writes the footer and flushes; returns the inner writer.
    pub fn finish(mut self, footer: &Footer) -> Result<W, TraceError> {
        self.postcard_frame(TAG_FOOTER, footer)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A frame's head as read, before anything in it is trusted.
struct Frame {
    /// Offset of its first byte.
    at: u64,
    head: [u8; FRAME_HEAD as usize],
    len: u32,
    tag: u8,
    /// Offset just past its check.
    end: u64,
}

impl Frame {
    /// Reads the head of the frame at `at`, the reader being positioned
    /// there; `what` names the frame if the file ends first.
    fn head<R: Read>(
        inp: &mut R,
        at: u64,
        file_len: u64,
        what: impl FnOnce() -> String,
    ) -> Result<Frame, TraceError> {
        if at + FRAME_HEAD > file_len {
            return Err(TraceError::Truncated {
                offset: file_len,
                what: what(),
            });
        }
        let mut head = [0u8; FRAME_HEAD as usize];
        read_exact_at(inp, &mut head, at, "frame head")?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        Ok(Frame {
            at,
            head,
            len,
            tag: head[4],
            end: at + FRAME_HEAD + u64::from(len) + CHECK,
        })
    }

    /// Checks the length against [`MAX_FRAME`] and the end of the file,
    /// naming the frame `part`.
    fn fits(&self, file_len: u64, part: Part) -> Result<(), TraceError> {
        if self.len > MAX_FRAME {
            return Err(TraceError::Damaged {
                part,
                offset: self.at,
                why: "its length exceeds the frame size limit",
            });
        }
        if self.end > file_len {
            return Err(TraceError::Truncated {
                offset: file_len,
                what: format!(
                    "the {part} at byte offset {} runs past the end of the file \
                     (the file was cut short, or the frame's length is damaged)",
                    self.at
                ),
            });
        }
        Ok(())
    }

    /// Reads the body (into `body`, reused) and the check, the reader being
    /// positioned after the head; returns the check as stored and whether
    /// the frame matches it with `seed`. Call [`Frame::fits`] first: the
    /// length must have been checked against the file before allocating.
    fn read_body<R: Read>(
        &self,
        inp: &mut R,
        seed: u64,
        body: &mut Vec<u8>,
    ) -> Result<(u64, bool), TraceError> {
        let len = self.len as usize;
        body.clear();
        body.resize(len + CHECK as usize, 0);
        read_exact_at(inp, body, self.at + FRAME_HEAD, "frame body")?;
        let stored = u64::from_le_bytes(body[len..].try_into().expect("8 bytes"));
        body.truncate(len);
        Ok((stored, frame_check(seed, &self.head, body) == stored))
    }

    /// Whether the body would match `stored` under another tag: tells a
    /// damaged tag from damage elsewhere in the frame.
    fn matches_with_tag(&self, tag: u8, seed: u64, body: &[u8], stored: u64) -> bool {
        let mut head = self.head;
        head[4] = tag;
        frame_check(seed, &head, body) == stored
    }
}

/// Reads a trace file: header first, then records batch by batch. Opening
/// verifies the header and the footer against their checks (the footer is
/// found by skipping over the batches, which are checked as they are read).
pub struct TraceReader<R: Read + Seek> {
    inp: R,
    header: Header,
    footer: Footer,
    records_start: u64,
    footer_at: u64,
    /// The header's check: the seed of the first batch's.
    header_check: u64,
}

impl<R: Read + Seek> TraceReader<R> {
    /// Opens a trace: checks magic and version, reads and verifies the
    /// header and the footer. Nothing of either is used unverified.
    pub fn new(mut inp: R) -> Result<Self, TraceError> {
        let len = inp.seek(SeekFrom::End(0))?;
        inp.seek(SeekFrom::Start(0))?;
        let mut preamble = [0u8; PREAMBLE as usize];
        if len < PREAMBLE {
            return Err(TraceError::Truncated {
                offset: len,
                what: "magic and version".into(),
            });
        }
        read_exact_at(&mut inp, &mut preamble, 0, "magic and version")?;
        if &preamble[..8] != MAGIC {
            return Err(TraceError::BadMagic);
        }
        let found = u16::from_le_bytes([preamble[8], preamble[9]]);
        if found != FORMAT_VERSION {
            return Err(TraceError::Version { found });
        }
        let mut body = Vec::new();
        let h = Frame::head(&mut inp, PREAMBLE, len, || "the header".into())?;
        h.fits(len, Part::Header)?;
        let (header_check, ok) = h.read_body(&mut inp, chain_start(&preamble), &mut body)?;
        if !ok {
            return Err(damaged(Part::Header, PREAMBLE, "checksum mismatch"));
        }
        if h.tag != TAG_HEADER {
            return Err(corrupt(
                PREAMBLE,
                format!("first frame has tag {}, expected the header", h.tag),
            ));
        }
        let header: Header = decode_postcard(&body, PREAMBLE)?;
        if let Some(l) = header
            .payload_limit
            .filter(|&l| l == 0 || l > MAX_PAYLOAD_LIMIT)
        {
            return Err(corrupt(
                PREAMBLE,
                format!("the header's payload_limit {l} is not in 1..={MAX_PAYLOAD_LIMIT}"),
            ));
        }
        let records_start = h.end;
        let (footer_at, footer) = match find_footer(&mut inp, len, records_start, &mut body) {
            Ok(found) => found,
            Err(TraceError::Io(e)) => return Err(TraceError::Io(e)),
            Err(first) => {
                // Something is off: walk again checking every frame to name
                // the part at fault; a check that finds nothing keeps the
                // first error.
                return Err(
                    diagnose(&mut inp, len, records_start, header_check, &mut body)
                        .err()
                        .unwrap_or(first),
                );
            }
        };
        Ok(TraceReader {
            inp,
            header,
            footer,
            records_start,
            footer_at,
            header_check,
        })
    }

    /// The header (scenario, seed, env).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The footer (names, count, digests).
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// A cursor over the records, from the first; it checks each batch
    /// against its checksum before decoding it, and the count and records
    /// digest against the footer when it reaches the end.
    pub fn cursor(&mut self) -> RecordCursor<'_, R> {
        RecordCursor {
            pos: self.records_start,
            seed: self.header_check,
            batches: 0,
            reader: self,
            body: Vec::new(),
            batch: Vec::new(),
            decoder: batch::Decoder::new(),
            next: 0,
            digester: Digester::default(),
            count: 0,
            started: false,
            done: false,
            kept: Vec::new(),
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

/// Skips over the record batches (reading only their heads) to the footer,
/// and verifies the footer against its check, whose seed is the check stored
/// just before it (the last batch's, or the header's).
fn find_footer<R: Read + Seek>(
    inp: &mut R,
    len: u64,
    records_start: u64,
    body: &mut Vec<u8>,
) -> Result<(u64, Footer), TraceError> {
    let mut pos = records_start;
    let mut batches = 0;
    loop {
        let f = Frame::head(inp, pos, len, || "the footer is missing".into())?;
        match f.tag {
            TAG_RECORDS | TAG_PAYLOADS => {
                let part = if f.tag == TAG_RECORDS {
                    batches += 1;
                    Part::Batch(batches)
                } else {
                    Part::Payloads(batches + 1)
                };
                f.fits(len, part)?;
                pos = f.end;
                inp.seek(SeekFrom::Start(pos))?;
            }
            TAG_FOOTER => {
                f.fits(len, Part::Footer)?;
                inp.seek(SeekFrom::Start(pos - CHECK))?;
                let mut seed = [0u8; CHECK as usize];
                read_exact_at(inp, &mut seed, pos - CHECK, "check")?;
                inp.seek(SeekFrom::Start(pos + FRAME_HEAD))?;
                let (_, ok) = f.read_body(inp, u64::from_le_bytes(seed), body)?;
                if !ok {
                    return Err(damaged(Part::Footer, pos, "checksum mismatch"));
                }
                if f.end != len {
                    return Err(corrupt(
                        f.end,
                        format!("{} bytes after the footer", len - f.end),
                    ));
                }
                let footer: Footer = decode_postcard(body, pos)?;
                inp.seek(SeekFrom::Start(records_start))?;
                return Ok((pos, footer));
            }
            t => return Err(corrupt(pos, format!("unexpected frame tag {t}"))),
        }
    }
}

/// Walks the frames after the header checking each against its check, to
/// name the first part that is damaged (or cut short). `Ok` if it finds
/// nothing wrong.
///
/// A frame that fails its check is named by what it is: a records batch,
/// a payload frame or the footer. If it would match under another of
/// those tags, its tag is what was damaged; otherwise its tag is trusted,
/// and an unknown tag is the footer's if the frame ends where the file
/// does.
fn diagnose<R: Read + Seek>(
    inp: &mut R,
    len: u64,
    records_start: u64,
    header_check: u64,
    body: &mut Vec<u8>,
) -> Result<(), TraceError> {
    inp.seek(SeekFrom::Start(records_start))?;
    let mut pos = records_start;
    let mut seed = header_check;
    let mut batches = 0u64;
    loop {
        let f = Frame::head(inp, pos, len, || match batches {
            0 => "the file ends after the header: the footer is missing".into(),
            n => format!("the file ends after records batch {n}: the footer is missing"),
        })?;
        let next = Part::Batch(batches + 1);
        let payloads = Part::Payloads(batches + 1);
        let by_tag = match f.tag {
            TAG_FOOTER => Part::Footer,
            TAG_PAYLOADS => payloads,
            _ => next,
        };
        f.fits(len, by_tag)?;
        let (stored, ok) = f.read_body(inp, seed, body)?;
        if !ok {
            // Named by the tag it matches under (a damaged tag), else by
            // its own tag; an unknown tag is the footer's if the frame
            // ends the file, a batch's otherwise.
            let matches = |tag| f.matches_with_tag(tag, seed, body, stored);
            let part = if matches(TAG_FOOTER) {
                Part::Footer
            } else if matches(TAG_RECORDS) {
                next
            } else if matches(TAG_PAYLOADS) {
                payloads
            } else {
                match f.tag {
                    TAG_RECORDS => next,
                    TAG_PAYLOADS => payloads,
                    TAG_FOOTER => Part::Footer,
                    _ if f.end == len => Part::Footer,
                    _ => next,
                }
            };
            return Err(damaged(part, pos, "checksum mismatch"));
        }
        match f.tag {
            TAG_RECORDS | TAG_PAYLOADS => {
                batches += u64::from(f.tag == TAG_RECORDS);
                seed = stored;
                pos = f.end;
            }
            TAG_FOOTER => {
                if f.end != len {
                    return Err(corrupt(
                        f.end,
                        format!("{} bytes after the footer", len - f.end),
                    ));
                }
                return Ok(());
            }
            t => return Err(corrupt(pos, format!("unexpected frame tag {t}"))),
        }
    }
}

/// Records of a batch, with the payloads kept for the batch's publishes.
pub type BatchPayloads<'a> = (&'a [Record], &'a [KeptPayload]);

/// Reads a trace's records batch by batch, holding one batch at a time.
/// Each batch is verified against its check before it is decoded; reaching
/// the footer checks the record count and digest: a mismatch is an error
/// then, after the records already returned.
pub struct RecordCursor<'a, R: Read + Seek> {
    reader: &'a mut TraceReader<R>,
    pos: u64,
    /// The check of the last frame verified (the next one's seed).
    seed: u64,
    /// Batches read so far.
    batches: u64,
    body: Vec<u8>,
    batch: Vec<Record>,
    decoder: batch::Decoder,
    next: usize,
    digester: Digester,
    count: u64,
    started: bool,
    done: bool,
    /// The payloads of the current batch's publishes (traces that keep
    /// payloads), in message id order.
    kept: Vec<KeptPayload>,
}

impl<R: Read + Seek> RecordCursor<'_, R> {
    fn load(&mut self) -> Result<bool, TraceError> {
        if self.done {
            return Ok(false);
        }
        let r = &mut *self.reader;
        if self.pos == r.footer_at {
            // Every batch matched its check, chained from the header's to
            // the footer's (verified when the file was opened).
            self.done = true;
            let actual = self.digester.digest();
            if actual != r.footer.records_digest || self.count != r.footer.records {
                return Err(TraceError::DigestMismatch {
                    expected: r.footer.records_digest,
                    actual,
                });
            }
            return Ok(false);
        }
        if !self.started {
            // Frames follow each other: position once, then read on.
            r.inp.seek(SeekFrom::Start(self.pos))?;
            self.started = true;
        }
        self.batch.clear();
        self.kept.clear();
        self.next = 0;
        let limit = r.header.payload_limit;
        let mut f = self.frame()?;
        if f.tag == TAG_PAYLOADS {
            let at = f.at;
            let Some(limit) = limit else {
                return Err(corrupt(
                    at,
                    "a payload frame in a trace whose header keeps no payloads".into(),
                ));
            };
            payloads::decode(&self.body, limit, &mut self.kept)
                .map_err(|(i, what)| corrupt(at + FRAME_HEAD + i as u64, what))?;
            if self.pos == self.reader.footer_at {
                return Err(corrupt(at, "a payload frame just before the footer".into()));
            }
            f = self.frame()?;
        }
        let at = f.at;
        if f.tag != TAG_RECORDS {
            return Err(corrupt(at, format!("unexpected frame tag {}", f.tag)));
        }
        self.decoder
            .decode(&self.body, &mut self.batch)
            .map_err(|(i, what)| corrupt(at + FRAME_HEAD + i as u64, what))?;
        if limit.is_some() {
            let publishes = self.batch.iter().filter(|r| r.event == EventKind::Publish);
            let n = publishes.clone().count();
            if n != self.kept.len() || !publishes.zip(&self.kept).all(|(r, k)| r.msg == k.msg) {
                return Err(corrupt(
                    at,
                    format!(
                        "records batch {} has {n} publishes but {} kept payloads, \
                         or their message ids differ",
                        self.batches,
                        self.kept.len()
                    ),
                ));
            }
        }
        self.digester.update(&self.batch);
        self.count += self.batch.len() as u64;
        Ok(true)
    }

    /// Reads and verifies the next frame (a records batch or a payload
    /// frame) into `body`; on return `pos`, `seed` and `batches` have moved
    /// past it.
    fn frame(&mut self) -> Result<Frame, TraceError> {
        let r = &mut *self.reader;
        let at = self.pos;
        let part = Part::Batch(self.batches + 1);
        // The file was complete when opened: a frame that does not end
        // before the footer has a damaged length.
        let past_footer = |e| match e {
            TraceError::Truncated { .. } => damaged(part, at, "its length runs past the footer"),
            e => e,
        };
        let f = Frame::head(&mut r.inp, at, r.footer_at, String::new).map_err(past_footer)?;
        let part = match f.tag {
            TAG_PAYLOADS => Part::Payloads(self.batches + 1),
            _ => part,
        };
        f.fits(r.footer_at, part).map_err(past_footer)?;
        let (stored, ok) = f.read_body(&mut r.inp, self.seed, &mut self.body)?;
        if !ok {
            return Err(damaged(part, at, "checksum mismatch"));
        }
        self.seed = stored;
        self.batches += u64::from(f.tag == TAG_RECORDS);
        self.pos = f.end;
        Ok(f)
    }

    /// The payloads kept for the publishes of the batch last returned, in
    /// message id order (empty for a trace that keeps none: see
    /// [`Header::payload_limit`]).
    pub fn payloads(&self) -> &[KeptPayload] {
        &self.kept
    }

    /// The rest of the current batch (or the next one) with the payloads
    /// kept for the whole batch, or `None` at the end.
    pub fn next_batch_with_payloads(&mut self) -> Result<Option<BatchPayloads<'_>>, TraceError> {
        while self.next == self.batch.len() {
            if !self.load()? {
                return Ok(None);
            }
        }
        let from = self.next;
        self.next = self.batch.len();
        Ok(Some((&self.batch[from..], &self.kept)))
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

fn damaged(part: Part, offset: u64, why: &'static str) -> TraceError {
    TraceError::Damaged { part, offset, why }
}

fn decode_postcard<'a, T: Deserialize<'a>>(body: &'a [u8], at: u64) -> Result<T, TraceError> {
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
        io::ErrorKind::UnexpectedEof => TraceError::Truncated {
            offset,
            what: what.into(),
        },
        _ => TraceError::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    use crate::trace::record::sample_record as rec;

    fn write(records: &[Record]) -> Vec<u8> {
        let header = Header {
            crate_version: "x".into(),
            scenario_path: "s.toml".into(),
            base_dir: ".".into(),
            scenario: "[simulation]".into(),
            seed: 7,
            env: 0,
            payload_limit: None,
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
            kinds: vec![(3, "k".into())],
            records: records.len() as u64,
            records_digest: d.digest(),
            payload_digest: Digest([7; 16]),
            stopped: None,
            routers: Vec::new(),
            deadlines: Vec::new(),
        })
        .unwrap()
    }

    /// (offset, body length) of the first records frame.
    fn first_batch(bytes: &[u8]) -> (usize, usize) {
        let header_len = u32::from_le_bytes(bytes[10..14].try_into().unwrap()) as usize;
        let at = 10 + 5 + header_len + 8;
        assert_eq!(bytes[at + 4], TAG_RECORDS);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        (at, len)
    }

    /// Recomputes every frame's check, as a writer would have: what a flip
    /// inside a body does once the checksums are out of the way.
    fn rechain(bytes: &mut [u8]) {
        let mut seed = chain_start(bytes[..10].try_into().unwrap());
        let mut pos = 10;
        while pos < bytes.len() {
            let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            let head: [u8; 5] = bytes[pos..pos + 5].try_into().unwrap();
            let end = pos + 5 + len;
            seed = frame_check(seed, &head, &bytes[pos + 5..end]);
            bytes[end..end + 8].copy_from_slice(&seed.to_le_bytes());
            pos = end + 8;
        }
    }

    #[test]
    fn round_trip() {
        let records: Vec<Record> = (0..10_000).map(rec).collect();
        let bytes = write(&records);
        let mut r = TraceReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(r.header().seed, 7);
        assert_eq!(r.footer().kinds, [(3, "k".to_string())]);
        assert_eq!(r.read_all().unwrap(), records);
    }

    #[test]
    fn a_long_slice_is_written_as_several_batches() {
        let records: Vec<Record> = (0..2 * CHUNK as u64 + 1).map(rec).collect();
        let header = Header {
            crate_version: "x".into(),
            scenario_path: "s.toml".into(),
            base_dir: ".".into(),
            scenario: String::new(),
            seed: 0,
            env: 0,
            payload_limit: None,
        };
        let mut w = TraceWriter::new(Vec::new(), &header).unwrap();
        w.records(&records).unwrap();
        w.records(&[]).unwrap();
        let mut d = Digester::default();
        d.update(&records);
        let bytes = w
            .finish(&Footer {
                agents: vec![],
                channels: vec![],
                kinds: vec![],
                records: records.len() as u64,
                records_digest: d.digest(),
                payload_digest: Digest([0; 16]),
                stopped: None,
                routers: Vec::new(),
                deadlines: Vec::new(),
            })
            .unwrap();
        let mut r = TraceReader::new(Cursor::new(bytes)).unwrap();
        let mut sizes = Vec::new();
        r.for_each_batch(|b| {
            sizes.push(b.len());
            Ok(())
        })
        .unwrap();
        assert_eq!(sizes, [CHUNK, CHUNK, 1]);
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
        assert!(
            matches!(
                err,
                TraceError::Damaged {
                    part: Part::Header,
                    offset: 10,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn flipped_record_byte_is_caught_by_the_batch_check() {
        let bytes = write(&(0..100).map(rec).collect::<Vec<_>>());
        let (at, len) = first_batch(&bytes);
        // Flip every bit of the first records frame's body.
        for i in at + 5..at + 5 + len {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let res = TraceReader::new(Cursor::new(b)).and_then(|mut r| r.read_all());
                match res {
                    Err(TraceError::Damaged {
                        part: Part::Batch(1),
                        offset,
                        ..
                    }) => assert_eq!(offset, at as u64),
                    Err(e) => panic!("byte {i} bit {bit}: {e}"),
                    Ok(_) => panic!("byte {i} bit {bit} went unnoticed"),
                }
            }
        }
    }

    #[test]
    fn a_corrupt_batch_that_matches_its_check_names_the_bad_byte() {
        let bytes = write(&(0..100).map(rec).collect::<Vec<_>>());
        let (at, _) = first_batch(&bytes);
        let mut b = bytes.clone();
        // The first record's tag: a cache flag (0x40) with nothing cached
        // yet (every event code of the tag's low nibble exists).
        let tag_at = at + 5 + 1;
        b[tag_at] |= 0x40;
        rechain(&mut b);
        let err = TraceReader::new(Cursor::new(b))
            .and_then(|mut r| r.read_all())
            .unwrap_err();
        match err {
            TraceError::Corrupt { offset, what } => {
                assert_eq!(offset, tag_at as u64);
                assert!(what.contains("cache"), "{what}");
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn the_check_chain_is_pinned() {
        // The chain's definition, spelled out: XXH3-64 of the preamble seeds
        // the header's check; each check seeds the next.
        let bytes = write(&[]);
        let mut pre = Vec::from(&MAGIC[..]);
        pre.extend_from_slice(&6u16.to_le_bytes());
        assert_eq!(bytes[..10], pre[..]);
        let mut seed = xxhash_rust::xxh3::xxh3_64(&pre);
        let mut pos = 10;
        let mut tags = Vec::new();
        while pos < bytes.len() {
            let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            let framed = &bytes[pos..pos + 5 + len];
            let stored = u64::from_le_bytes(bytes[pos + 5 + len..][..8].try_into().unwrap());
            assert_eq!(
                stored,
                xxhash_rust::xxh3::xxh3_64_with_seed(framed, seed),
                "frame at {pos}"
            );
            tags.push(bytes[pos + 4]);
            seed = stored;
            pos += 5 + len + 8;
        }
        assert_eq!(tags, [TAG_HEADER, TAG_FOOTER]);
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
        for v in [1u16, 2, 3, 4, 5, 7, 99] {
            bytes[8..10].copy_from_slice(&v.to_le_bytes());
            match TraceReader::new(Cursor::new(bytes.clone())).err().unwrap() {
                TraceError::Version { found } => assert_eq!(found, v),
                e => panic!("{e}"),
            }
        }
    }
}
