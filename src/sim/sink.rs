//! Where trace records go: a reused chunk of [`CHUNK`] records which, when
//! full, is hashed in its canonical byte layout (what the records digest is
//! defined on) and handed to a trace file or kept in memory if one was asked
//! for. Every published payload is hashed into the payload digest as it is
//! published; the run's digest combines the two ([`Digest::of_run`]).
//!
//! A trace file is encoded and written on a thread of its own
//! ([`Background`]): the loop hands it full chunks through a bounded channel
//! and takes emptied ones back, so encoding and I/O overlap the simulation.
//! Nothing the run computes depends on it: records and digest are made on
//! the loop's thread, in order. A write error stops the run at the next
//! chunk, like any trace error.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use crate::message::Payload;
use crate::metrics::EntityMetrics;
use crate::trace::{
    CHUNK, Digest, Digester, Footer, Header, KeptPayload, PayloadDigester, Record, TraceError,
    TraceWriter,
};

type FileWriter = TraceWriter<Box<dyn Write + Send>>;

/// Records to write, with the payloads of their publishes when the trace
/// keeps payloads (`(message id, payload)`, shared, not copied).
#[derive(Default)]
struct Chunk {
    records: Vec<Record>,
    payloads: Vec<(u64, Payload)>,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            records: Vec::with_capacity(CHUNK),
            payloads: Vec::new(),
        }
    }
}

/// Pending payload bytes (as kept) past which the chunk is written early,
/// so that a payload frame stays far below [`MAX_FRAME`](crate::trace::MAX_FRAME).
const PAYLOAD_FLUSH_BYTES: u64 = 16 << 20;

/// The thread that encodes and writes a trace file.
struct Background {
    /// Full chunks to write; bounded, so a slow disk slows the loop down
    /// instead of piling chunks up in memory.
    full: SyncSender<Chunk>,
    /// Chunks written and emptied, for reuse (no allocation per chunk).
    empty: Receiver<Chunk>,
    thread: JoinHandle<Result<FileWriter, TraceError>>,
}

impl Background {
    /// Starts the writer: it writes the header, then each chunk it gets.
    fn start(out: Box<dyn Write + Send>, header: Box<Header>) -> Result<Background, TraceError> {
        let (full, todo) = sync_channel::<Chunk>(2);
        let (done, empty) = channel::<Chunk>();
        let thread = std::thread::Builder::new()
            .name("busbar-trace-writer".into())
            .spawn(move || {
                let mut w = TraceWriter::new(out, &header)?;
                for mut chunk in todo {
                    w.records_with_payloads(&chunk.records, &chunk.payloads)?;
                    chunk.records.clear();
                    chunk.payloads.clear();
                    // The loop may be gone already; the chunk is then dropped.
                    let _ = done.send(chunk);
                }
                Ok(w)
            })?;
        Ok(Background {
            full,
            empty,
            thread,
        })
    }

    /// Hands over a full chunk and returns an empty one to fill next; an
    /// error if the writer stopped (its own error).
    fn write(&mut self, chunk: Chunk) -> Result<Chunk, ()> {
        let next = self.empty.try_recv().unwrap_or_else(|_| Chunk::new());
        self.full.send(chunk).map_err(|_| ())?;
        Ok(next)
    }

    /// Waits for every chunk to be written; the writer, ready for the footer.
    fn join(self) -> Result<FileWriter, TraceError> {
        drop(self.full);
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => Err(TraceError::Io(std::io::Error::other(
                "the trace writer thread panicked",
            ))),
        }
    }
}

/// What the trace keeps.
pub(super) enum TraceTarget {
    /// No records at all, no digests (for measuring the loop without
    /// tracing).
    Off,
    /// Records (and payloads) are hashed into the digests and dropped.
    Digest,
    /// Records are hashed and also kept in memory.
    Memory,
    /// Records are hashed and written to a trace file.
    File(Box<dyn Write + Send>, Box<Header>),
}

/// The names a footer gives to the ids in records.
pub(super) struct Names {
    pub(super) agents: Vec<String>,
    pub(super) channels: Vec<String>,
    pub(super) kinds: Vec<(u8, String)>,
    pub(super) routers: Vec<String>,
    pub(super) deadlines: Vec<crate::trace::Deadline>,
}

pub(super) struct TraceSink {
    enabled: bool,
    /// Records not yet flushed (at most [`CHUNK`]), with their payloads.
    chunk: Chunk,
    /// Flush when the chunk holds this many records: [`CHUNK`], or fewer
    /// when the payloads kept make the chunk large.
    cap: usize,
    /// Bytes per payload the trace keeps, or `None` to keep none.
    payload_limit: Option<u32>,
    /// Payload bytes (as kept) in the chunk.
    payload_bytes: u64,
    /// Payloads kept in memory (memory target), in publish order.
    keep_payloads: Option<Vec<(u64, Payload)>>,
    digester: Digester,
    payloads: PayloadDigester,
    keep: Option<Vec<Record>>,
    background: Option<Background>,
    pending_header: Option<(Box<dyn Write + Send>, Box<Header>)>,
    count: u64,
    max: u64,
    error: Option<TraceError>,
    /// Why writing the file failed, kept after the error itself was handed
    /// to the run: the file is then incomplete and `finish` must say so.
    write_failed: Option<String>,
    /// Metrics per channel and agent, fed every record when asked for
    /// (whatever the target, `Off` included).
    entity: Option<Box<EntityMetrics>>,
}

impl TraceSink {
    /// A sink for `target`, stopping after `max` records; `payload_limit`
    /// keeps that many bytes of each payload published (memory and file
    /// targets; a file's header must say the same).
    pub(super) fn new(target: TraceTarget, max: u64, payload_limit: Option<u32>) -> TraceSink {
        let mut s = TraceSink {
            enabled: true,
            chunk: Chunk::new(),
            cap: CHUNK,
            payload_limit: None,
            payload_bytes: 0,
            keep_payloads: None,
            digester: Digester::default(),
            payloads: PayloadDigester::default(),
            keep: None,
            background: None,
            pending_header: None,
            count: 0,
            max,
            error: None,
            write_failed: None,
            entity: None,
        };
        match target {
            TraceTarget::Off => s.enabled = false,
            TraceTarget::Digest => {}
            TraceTarget::Memory => {
                s.keep = Some(Vec::new());
                s.payload_limit = payload_limit;
                s.keep_payloads = payload_limit.map(|_| Vec::new());
            }
            TraceTarget::File(w, h) => {
                s.payload_limit = h.payload_limit;
                s.pending_header = Some((w, h));
            }
        }
        s
    }

    /// Feeds every record from now on to a per-channel and per-agent
    /// aggregator ([`TraceSink::entity`]).
    pub(super) fn enable_entity_metrics(&mut self) {
        self.entity = Some(Box::default());
    }

    /// The per-channel and per-agent metrics, if enabled.
    pub(super) fn entity(&self) -> Option<&EntityMetrics> {
        self.entity.as_deref()
    }

    /// The same, to report what the records do not say (consumer lag).
    #[inline]
    pub(super) fn entity_mut(&mut self) -> Option<&mut EntityMetrics> {
        self.entity.as_deref_mut()
    }

    /// Appends a record; false when the record limit was exceeded.
    #[inline]
    pub(super) fn push(&mut self, r: &Record) -> bool {
        // Off: one predictable branch per record (the work stays out of
        // line, so this function stays small enough to inline).
        if self.entity.is_some() {
            self.observe(r);
        }
        if !self.enabled {
            return true;
        }
        self.count += 1;
        self.chunk.records.push(*r);
        if self.chunk.records.len() == self.cap {
            self.flush();
        }
        self.count <= self.max
    }

    #[cold]
    #[inline(never)]
    fn observe(&mut self, r: &Record) {
        if let Some(e) = &mut self.entity {
            e.observe(r);
        }
    }

    /// Hashes the payload of message `msg`, published now, into the
    /// payload digest, and keeps it (shared) if the trace keeps payloads.
    /// Its `publish` record must follow.
    #[inline]
    pub(super) fn payload(&mut self, msg: u64, p: &Payload) {
        if self.enabled {
            self.payloads.update(p);
            if let Some(limit) = self.payload_limit {
                self.keep_payload(msg, p, limit);
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn keep_payload(&mut self, msg: u64, p: &Payload, limit: u32) {
        self.chunk.payloads.push((msg, p.clone()));
        self.payload_bytes += p.wire_bytes().min(u64::from(limit));
        if self.payload_bytes > PAYLOAD_FLUSH_BYTES {
            // Written with the publish record that follows.
            self.cap = self.chunk.records.len() + 1;
        }
    }

    /// Hashes a reply's correlation into the payload digest.
    pub(super) fn correlation(&mut self, request: u64) {
        if self.enabled {
            self.payloads.correlation(request);
        }
    }

    /// Records appended so far.
    pub(super) fn count(&self) -> u64 {
        self.count
    }

    /// Whether writing failed (the error waits in [`TraceSink::take_error`]).
    #[inline]
    pub(super) fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The first write error, taken (it stops the run).
    pub(super) fn take_error(&mut self) -> Option<TraceError> {
        let e = self.error.take()?;
        self.write_failed.get_or_insert_with(|| e.to_string());
        Some(e)
    }

    fn flush(&mut self) {
        if self.chunk.records.is_empty() {
            return;
        }
        self.cap = CHUNK;
        self.payload_bytes = 0;
        self.digester.update(&self.chunk.records);
        if let Some(keep) = &mut self.keep {
            keep.extend_from_slice(&self.chunk.records);
        }
        if let Some(keep) = &mut self.keep_payloads {
            keep.append(&mut self.chunk.payloads);
        }
        if let Some((w, h)) = self.pending_header.take() {
            match Background::start(w, h) {
                Ok(bg) => self.background = Some(bg),
                Err(e) => self.error = Some(e),
            }
        }
        if let Some(bg) = &mut self.background {
            let chunk = std::mem::take(&mut self.chunk);
            match bg.write(chunk) {
                Ok(next) => self.chunk = next,
                Err(()) => {
                    // The writer stopped on an error: collect it.
                    let bg = self.background.take().expect("present");
                    let e = bg.join().err().unwrap_or_else(|| {
                        TraceError::Io(std::io::Error::other("the trace writer stopped"))
                    });
                    self.error.get_or_insert(e);
                    self.chunk = Chunk::new();
                }
            }
        } else {
            self.chunk.records.clear();
            self.chunk.payloads.clear();
        }
    }

    /// The digest of every record so far.
    pub(super) fn records_digest(&self) -> Digest {
        let mut d = self.digester.clone();
        d.update(&self.chunk.records);
        d.digest()
    }

    /// The digest of every payload published so far.
    pub(super) fn payload_digest(&self) -> Digest {
        self.payloads.digest()
    }

    /// The run's digest so far: records and payloads.
    pub(super) fn digest(&self) -> Digest {
        Digest::of_run(self.records_digest(), self.payload_digest())
    }

    /// Records kept in memory, including those not yet flushed.
    pub(super) fn records(&self) -> Vec<Record> {
        let mut v = self.keep.clone().unwrap_or_default();
        if self.keep.is_some() {
            v.extend_from_slice(&self.chunk.records);
        }
        v
    }

    /// Payloads kept in memory (memory target with a payload limit),
    /// including those not yet flushed, each cut to the limit; empty if
    /// none are kept.
    pub(super) fn kept_payloads(&self) -> Vec<KeptPayload> {
        let (Some(limit), Some(keep)) = (self.payload_limit, &self.keep_payloads) else {
            return Vec::new();
        };
        keep.iter()
            .chain(&self.chunk.payloads)
            .map(|(msg, p)| KeptPayload::keep(*msg, p, limit))
            .collect()
    }

    /// Takes the records kept in memory so far (flushed chunks only).
    pub(super) fn take_records(&mut self) -> Vec<Record> {
        self.keep.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// How many records [`TraceSink::take_records`] would return.
    pub(super) fn kept(&self) -> usize {
        self.keep.as_ref().map_or(0, Vec::len)
    }

    /// Flushes everything and writes the footer (a file target gets a valid
    /// file even when the run recorded nothing). Returns the run's digest.
    pub(super) fn finish(
        &mut self,
        names: Names,
        stopped: Option<String>,
    ) -> Result<Digest, TraceError> {
        let writer = if self.pending_header.is_some() && self.chunk.records.is_empty() {
            // An empty run still gets a valid file: header, no batch, footer.
            let (w, h) = self.pending_header.take().expect("checked");
            Some(TraceWriter::new(w, &h)?)
        } else {
            self.flush();
            match self.background.take() {
                Some(bg) => match bg.join() {
                    Ok(w) => Some(w),
                    Err(e) => {
                        self.error.get_or_insert(e);
                        None
                    }
                },
                None => None,
            }
        };
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(why) = &self.write_failed {
            return Err(TraceError::Io(std::io::Error::other(format!(
                "the trace file is incomplete: {why}"
            ))));
        }
        let records_digest = self.digester.digest();
        let payload_digest = self.payloads.digest();
        if let Some(w) = writer {
            w.finish(&Footer {
                agents: names.agents,
                channels: names.channels,
                kinds: names.kinds,
                records: self.count,
                records_digest,
                payload_digest,
                stopped,
                routers: names.routers,
                deadlines: names.deadlines,
            })?;
        }
        Ok(Digest::of_run(records_digest, payload_digest))
    }
}
