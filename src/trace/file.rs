//! The trace file format: frames, the header and footer, the writer, the
//! reader and its record cursor, and the errors of reading. The record
//! encoding inside batch frames lives in the `batch` submodule; both are
//! described byte by byte in the module docs of [`crate::trace`].

mod batch;

use std::io::{self, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};

use super::{Digest, Digester, Record};

/// The magic bytes that open every trace file.
pub const MAGIC: &[u8; 8] = b"BUSBARTR";
/// The trace file format version this build writes and reads.
pub const FORMAT_VERSION: u16 = 2;
/// The largest frame a reader accepts (bytes).
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
}

/// The last frame: names for the ids in records, count and digest.
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
    /// Digest of all records.
    pub digest: Digest,
    /// Why the run stopped early (an exceeded limit), or `None` if it ran
    /// to its end. A stopped trace is complete up to that point.
    pub stopped: Option<String>,
}

const TAG_HEADER: u8 = 1;
const TAG_RECORDS: u8 = 2;
const TAG_FOOTER: u8 = 3;
/// Magic, then the version.
const PREAMBLE: u64 = 10;
/// A frame's length and tag.
const FRAME_HEAD: u64 = 5;

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
        /// Byte offset of the bad frame, or of the bad byte in a batch.
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
    encoder: batch::Encoder,
}

impl<W: Write> TraceWriter<W> {
    /// Writes the magic, version and header frame.
    pub fn new(mut out: W, header: &Header) -> Result<Self, TraceError> {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        let mut w = TraceWriter {
            out,
            buf: Vec::new(),
            encoder: batch::Encoder::new(),
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
        Self::write_frame(&mut self.out, tag, &self.buf)
    }

    /// Writes `body` as a frame.
    fn write_frame(out: &mut W, tag: u8, body: &[u8]) -> Result<(), TraceError> {
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
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&[tag])?;
        out.write_all(body)?;
        Ok(())
    }

    /// Writes records as batch frames of at most [`CHUNK`] records each
    /// (none for an empty slice). Each batch is encoded on its own.
    pub fn records(&mut self, records: &[Record]) -> Result<(), TraceError> {
        for chunk in records.chunks(CHUNK) {
            let body = self.encoder.encode(chunk);
            Self::write_frame(&mut self.out, TAG_RECORDS, body)?;
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
        let mut magic = [0u8; PREAMBLE as usize];
        read_exact_at(&mut inp, &mut magic, 0, "magic and version")?;
        if &magic[..8] != MAGIC {
            return Err(TraceError::BadMagic);
        }
        let found = u16::from_le_bytes([magic[8], magic[9]]);
        if found != FORMAT_VERSION {
            return Err(TraceError::Version { found });
        }
        let mut pos = PREAMBLE;
        let mut body = Vec::new();
        let tag = read_frame(&mut inp, &mut pos, len, &mut body)?;
        if tag != TAG_HEADER {
            return Err(corrupt(
                PREAMBLE,
                format!("first frame has tag {tag}, expected the header"),
            ));
        }
        let header: Header = decode_postcard(&body, PREAMBLE)?;
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
                    read_body(&mut inp, &mut pos, frame_len, &mut body)?;
                    let footer: Footer = decode_postcard(&body, at)?;
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
            body: Vec::new(),
            batch: Vec::new(),
            decoder: batch::Decoder::new(),
            next: 0,
            digester: Digester::default(),
            count: 0,
            started: false,
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
    body: Vec<u8>,
    batch: Vec<Record>,
    decoder: batch::Decoder,
    next: usize,
    digester: Digester,
    count: u64,
    started: bool,
    done: bool,
}

impl<R: Read + Seek> RecordCursor<'_, R> {
    fn load(&mut self) -> Result<bool, TraceError> {
        if self.done {
            return Ok(false);
        }
        let r = &mut *self.reader;
        if !self.started {
            // Frames follow each other: position once, then read on.
            r.inp.seek(SeekFrom::Start(self.pos))?;
            self.started = true;
        }
        let at = self.pos;
        self.batch.clear();
        self.next = 0;
        let tag = read_frame(&mut r.inp, &mut self.pos, r.len, &mut self.body)?;
        if tag == TAG_FOOTER {
            self.done = true;
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
        self.decoder
            .decode(&self.body, &mut self.batch)
            .map_err(|(i, what)| corrupt(at + FRAME_HEAD + i as u64, what))?;
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
        io::ErrorKind::UnexpectedEof => TraceError::Truncated { offset, what },
        _ => TraceError::Io(e),
    })
}

fn read_frame_head<R: Read>(
    inp: &mut R,
    pos: &mut u64,
    file_len: u64,
) -> Result<(u8, u32), TraceError> {
    let mut head = [0u8; FRAME_HEAD as usize];
    if *pos + FRAME_HEAD > file_len {
        return Err(TraceError::Truncated {
            offset: *pos,
            what: "frame header (the footer is missing)",
        });
    }
    read_exact_at(inp, &mut head, *pos, "frame header")?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let at = *pos;
    *pos += FRAME_HEAD;
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

/// Reads a frame body of `len` bytes into `body` (reused).
fn read_body<R: Read>(
    inp: &mut R,
    pos: &mut u64,
    len: u32,
    body: &mut Vec<u8>,
) -> Result<(), TraceError> {
    // `len` was checked against the file's remaining size before this
    // allocation.
    body.clear();
    body.resize(len as usize, 0);
    read_exact_at(inp, body, *pos, "frame body")?;
    *pos += u64::from(len);
    Ok(())
}

/// Reads the next frame into `body`; returns its tag.
fn read_frame<R: Read>(
    inp: &mut R,
    pos: &mut u64,
    file_len: u64,
    body: &mut Vec<u8>,
) -> Result<u8, TraceError> {
    let (tag, len) = read_frame_head(inp, pos, file_len)?;
    read_body(inp, pos, len, body)?;
    Ok(tag)
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
            digest: d.digest(),
            stopped: None,
        })
        .unwrap()
    }

    /// (offset, body length) of the first records frame.
    fn first_batch(bytes: &[u8]) -> (usize, usize) {
        let header_len = u32::from_le_bytes(bytes[10..14].try_into().unwrap()) as usize;
        let at = 10 + 5 + header_len;
        assert_eq!(bytes[at + 4], TAG_RECORDS);
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        (at, len)
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
                digest: d.digest(),
                stopped: None,
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
        assert!(matches!(err, TraceError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn flipped_record_byte_is_caught() {
        let bytes = write(&(0..100).map(rec).collect::<Vec<_>>());
        let (at, len) = first_batch(&bytes);
        // Flip every bit of the first records frame's body.
        for i in at + 5..at + 5 + len {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let res = TraceReader::new(Cursor::new(b)).and_then(|mut r| r.read_all());
                assert!(res.is_err(), "byte {i} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn a_corrupt_batch_names_the_bad_byte() {
        let bytes = write(&(0..100).map(rec).collect::<Vec<_>>());
        let (at, _) = first_batch(&bytes);
        let mut b = bytes.clone();
        // The first record's tag: event code 15 does not exist.
        let tag_at = at + 5 + 1;
        b[tag_at] |= 0x0F;
        let err = TraceReader::new(Cursor::new(b))
            .and_then(|mut r| r.read_all())
            .unwrap_err();
        match err {
            TraceError::Corrupt { offset, what } => {
                assert_eq!(offset, tag_at as u64);
                assert!(what.contains("event code 15"), "{what}");
            }
            e => panic!("{e}"),
        }
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
        for v in [1u16, 3, 99] {
            bytes[8..10].copy_from_slice(&v.to_le_bytes());
            match TraceReader::new(Cursor::new(bytes.clone())).err().unwrap() {
                TraceError::Version { found } => assert_eq!(found, v),
                e => panic!("{e}"),
            }
        }
    }
}
