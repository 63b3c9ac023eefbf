//! Where trace records go: a reused chunk of [`CHUNK`] records which, when
//! full, is hashed in its canonical byte layout (what the digest is defined
//! on) and handed to a trace file or kept in memory if one was asked for.

use std::io::Write;

use crate::trace::{CHUNK, Digest, Digester, Footer, Header, Record, TraceError, TraceWriter};

/// What the trace keeps.
pub(super) enum TraceTarget {
    /// No records at all, no digest (for measuring the loop without tracing).
    Off,
    /// Records are hashed into the digest and dropped.
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
}

pub(super) struct TraceSink {
    enabled: bool,
    /// Records not yet flushed (at most [`CHUNK`]).
    chunk: Vec<Record>,
    digester: Digester,
    keep: Option<Vec<Record>>,
    writer: Option<TraceWriter<Box<dyn Write + Send>>>,
    pending_header: Option<(Box<dyn Write + Send>, Box<Header>)>,
    count: u64,
    max: u64,
    error: Option<TraceError>,
}

impl TraceSink {
    pub(super) fn new(target: TraceTarget, max: u64) -> TraceSink {
        let mut s = TraceSink {
            enabled: true,
            chunk: Vec::with_capacity(CHUNK),
            digester: Digester::default(),
            keep: None,
            writer: None,
            pending_header: None,
            count: 0,
            max,
            error: None,
        };
        match target {
            TraceTarget::Off => s.enabled = false,
            TraceTarget::Digest => {}
            TraceTarget::Memory => s.keep = Some(Vec::new()),
            TraceTarget::File(w, h) => s.pending_header = Some((w, h)),
        }
        s
    }

    /// Appends a record; false when the record limit was exceeded.
    #[inline]
    pub(super) fn push(&mut self, r: &Record) -> bool {
        if !self.enabled {
            return true;
        }
        self.count += 1;
        self.chunk.push(*r);
        if self.chunk.len() == CHUNK {
            self.flush();
        }
        self.count <= self.max
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
        self.error.take()
    }

    fn flush(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        self.digester.update(&self.chunk);
        if let Some((w, h)) = self.pending_header.take() {
            match TraceWriter::new(w, &h) {
                Ok(tw) => self.writer = Some(tw),
                Err(e) => self.error = Some(e),
            }
        }
        if let Some(keep) = &mut self.keep {
            keep.extend_from_slice(&self.chunk);
        }
        if let Some(w) = &mut self.writer
            && let Err(e) = w.records(&self.chunk)
        {
            self.error.get_or_insert(e);
            self.writer = None;
        }
        self.chunk.clear();
    }

    /// The digest of every record so far.
    pub(super) fn digest(&self) -> Digest {
        let mut d = self.digester.clone();
        d.update(&self.chunk);
        d.digest()
    }

    /// Records kept in memory, including those not yet flushed.
    pub(super) fn records(&self) -> Vec<Record> {
        let mut v = self.keep.clone().unwrap_or_default();
        if self.keep.is_some() {
            v.extend_from_slice(&self.chunk);
        }
        v
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
    /// file even when the run recorded nothing). Returns the digest.
    pub(super) fn finish(
        &mut self,
        names: Names,
        stopped: Option<String>,
    ) -> Result<Digest, TraceError> {
        if self.pending_header.is_some() && self.chunk.is_empty() {
            // An empty run still gets a valid file: header, no batch, footer.
            let (w, h) = self.pending_header.take().expect("checked");
            self.writer = Some(TraceWriter::new(w, &h)?);
        }
        self.flush();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let digest = self.digester.digest();
        if let Some(w) = self.writer.take() {
            w.finish(&Footer {
                agents: names.agents,
                channels: names.channels,
                kinds: names.kinds,
                records: self.count,
                digest,
                stopped,
            })?;
        }
        Ok(digest)
    }
}
