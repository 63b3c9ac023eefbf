//! Replay and diff: re-run the scenario and seed embedded in a trace, or
//! compare two traces, and report the first record where they differ — or,
//! when every record matches, that the runs ended differently (stop reason)
//! or that their agents published different payloads (payload digests).
//!
//! Replay is orchestration: it sits above both `trace` (reading) and
//! `scenario` (re-running, through [`Scenario::run_to_end`], the one
//! function that runs a scenario). Both stream: the recorded side is read
//! batch by batch and the re-run is drained as it goes, so memory stays
//! bounded by a few batches whatever the length of the trace.

use std::io::{Read, Seek};
use std::ops::ControlFlow;
use std::path::Path;

use crate::scenario::{RunError, Scenario, ScenarioError};
use crate::sim::Simulation;
use crate::trace::export::Names;
use crate::trace::{
    CHUNK, Deadline, Digest, EventKind, Record, RecordCursor, TraceError, TraceReader,
};

/// Where two runs first differ.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// What differs.
    pub what: Differs,
    /// Index of the first differing record; the record count when every
    /// record matches but the runs stopped differently or published
    /// different payloads (`left` and `right` then say which).
    pub seq: u64,
    /// The record on the left (the trace file; `None` if it ended first).
    pub left: Option<String>,
    /// The record on the right (the re-run or second trace).
    pub right: Option<String>,
}

/// What differs between two runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Differs {
    /// A record (or one run has more records).
    Record,
    /// Every record matches, but one run was stopped by a limit and the
    /// other was not (or by another limit).
    Stop,
    /// Every record matches, but a published payload differs.
    Payloads,
    /// Every record and payload matches, but the deadlines the `late`
    /// records name (the footer's table) differ.
    Deadlines,
}

/// The result of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Comparison {
    /// The runs are identical: this many records, and the same payloads
    /// (when the payload digests were compared: replay and diff).
    Identical(u64),
    /// They differ.
    Diverged(Divergence),
}

/// Why a replay could not be carried out (as opposed to diverging).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The embedded scenario no longer loads (e.g. a CSV profile it names is
    /// gone).
    #[error("the scenario embedded in the trace does not load: {0}")]
    Scenario(#[from] ScenarioError),
    /// The re-run failed.
    #[error("re-run failed: {0}")]
    Run(#[from] RunError),
}

fn names<'a>(
    agents: &'a [String],
    channels: &'a [String],
    kinds: &'a [(u8, String)],
    routers: &'a [String],
    env: u32,
) -> Names<'a> {
    Names {
        agents,
        channels,
        kinds,
        routers,
        env,
    }
}

fn describe(names: &Names<'_>, seq: u64, r: &Record) -> String {
    let row = names.row(seq, r);
    format!(
        "t={}ns {} msg={} channel={} {} -> {} kind={} sent={}ns{}",
        row.time_ns,
        row.event,
        r.msg,
        row.channel,
        row.sender,
        row.recipient,
        row.kind,
        row.sent_ns,
        if row.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", row.detail)
        }
    )
}

/// Two records are the same when their fields are equal and the names
/// behind their agent, channel and kind ids are equal too (a timer's kind
/// code names nothing).
fn same(l: &Record, ln: &Names<'_>, r: &Record, rn: &Names<'_>) -> bool {
    let agent = |id: u32| ln.agents.get(id as usize) == rn.agents.get(id as usize);
    let channel = |id: u32| ln.channels.get(id as usize) == rn.channels.get(id as usize);
    l == r
        && agent(r.sender)
        && agent(r.node)
        && channel(r.channel)
        && (r.event == EventKind::Timer || ln.kind_name(r.kind) == rn.kind_name(r.kind))
}

fn diverged(
    seq: u64,
    left: Option<&Record>,
    ln: &Names<'_>,
    right: Option<&Record>,
    rn: &Names<'_>,
) -> Comparison {
    Comparison::Diverged(Divergence {
        what: Differs::Record,
        seq,
        left: left.map(|r| describe(ln, seq, r)),
        right: right.map(|r| describe(rn, seq, r)),
    })
}

/// Compares two record streams held in memory.
pub fn compare(
    left: &[Record],
    left_names: &Names<'_>,
    right: &[Record],
    right_names: &Names<'_>,
) -> Comparison {
    let n = left.len().min(right.len());
    match (0..n).find(|&i| !same(&left[i], left_names, &right[i], right_names)) {
        None if left.len() == right.len() => Comparison::Identical(n as u64),
        first => {
            let i = first.unwrap_or(n);
            diverged(i as u64, left.get(i), left_names, right.get(i), right_names)
        }
    }
}

/// Reads a cursor to its end, so that its digest is checked: a difference
/// found in a corrupt file is the corruption, not a divergence.
fn verify_rest<R: Read + Seek>(c: &mut RecordCursor<'_, R>) -> Result<(), TraceError> {
    while c.next_batch()?.is_some() {}
    Ok(())
}

/// Checks records arriving in pieces against a cursor over a trace file.
struct Against<'c, R: Read + Seek> {
    file: RecordCursor<'c, R>,
    seq: u64,
}

impl<R: Read + Seek> Against<'_, R> {
    /// Compares `fresh` with the file's next records; `Some` at the first
    /// difference.
    fn check(
        &mut self,
        fresh: &[Record],
        ln: &Names<'_>,
        rn: &Names<'_>,
    ) -> Result<Option<Comparison>, TraceError> {
        for r in fresh {
            match self.file.next_record()? {
                Some(l) if same(&l, ln, r, rn) => self.seq += 1,
                l => {
                    verify_rest(&mut self.file)?;
                    return Ok(Some(diverged(self.seq, l.as_ref(), ln, Some(r), rn)));
                }
            }
        }
        Ok(None)
    }

    /// After the last fresh record: the file must end too.
    fn end(&mut self, ln: &Names<'_>, rn: &Names<'_>) -> Result<Comparison, TraceError> {
        Ok(match self.file.next_record()? {
            Some(l) => {
                verify_rest(&mut self.file)?;
                diverged(self.seq, Some(&l), ln, None, rn)
            }
            None => Comparison::Identical(self.seq),
        })
    }
}

/// The names of a re-run's ids: agents and kinds are fixed once it is built;
/// channels are read each time, as agents may intern new ones.
struct ReRunNames {
    agents: Vec<String>,
    kinds: Vec<(u8, String)>,
    routers: Vec<String>,
    env: u32,
}

impl ReRunNames {
    fn of<'a>(&'a self, sim: &'a Simulation) -> Names<'a> {
        names(
            &self.agents,
            sim.channel_names(),
            &self.kinds,
            &self.routers,
            self.env,
        )
    }
}

/// Takes the re-run's kept records and checks them against the file.
fn drain<R: Read + Seek>(
    sim: &mut Simulation,
    against: &mut Against<'_, R>,
    ln: &Names<'_>,
    rerun: &ReRunNames,
) -> Result<Option<Comparison>, TraceError> {
    let fresh = sim.take_records();
    against.check(&fresh, ln, &rerun.of(sim))
}

/// Re-runs the scenario and seed recorded in a trace and compares the new
/// event stream with the recorded one, event by event, as the re-run goes;
/// then the way each ended, and the payload digests.
pub fn replay<R: Read + Seek>(reader: &mut TraceReader<R>) -> Result<Comparison, ReplayError> {
    let header = reader.header().clone();
    let footer = reader.footer().clone();
    let base = Path::new(&header.base_dir);
    let scenario = Scenario::parse(&header.scenario, &header.scenario_path, base)?;
    let mut sim = scenario
        .builder(header.seed, header.env)
        .trace_in_memory()
        // The payload digest covers them; no need to hold them.
        .keep_payloads(None)
        .build()
        .map_err(RunError::from)?;
    let ln = names(
        &footer.agents,
        &footer.channels,
        &footer.kinds,
        &footer.routers,
        header.env,
    );
    let rerun = ReRunNames {
        agents: sim.agent_names(),
        kinds: sim.kind_names().table().to_vec(),
        routers: sim.router_names().to_vec(),
        env: header.env,
    };
    let mut against = Against {
        file: reader.cursor(),
        seq: 0,
    };
    // Compare the re-run's records with the file's as they come.
    let mut found: Result<Option<Comparison>, TraceError> = Ok(None);
    // A run that stopped at a limit replays to the same stop: compare what
    // both did up to there.
    let run = scenario.run_to_end(&mut sim, |sim| {
        if sim.kept_records() < CHUNK {
            return ControlFlow::Continue(());
        }
        found = drain(sim, &mut against, &ln, &rerun);
        match found {
            Ok(None) => ControlFlow::Continue(()),
            _ => ControlFlow::Break(()),
        }
    });
    let stopped = run.err().map(|e| e.to_string());
    if let Some(d) = found? {
        return Ok(d);
    }
    sim.finish().map_err(RunError::from)?;
    if let Some(d) = drain(&mut sim, &mut against, &ln, &rerun)? {
        return Ok(d);
    }
    let result = against.end(&ln, &rerun.of(&sim))?;
    if stopped != footer.stopped && matches!(result, Comparison::Identical(_)) {
        let end = |s: &Option<String>| Some(s.as_deref().unwrap_or("ran to its end").to_string());
        return Ok(Comparison::Diverged(Divergence {
            what: Differs::Stop,
            seq: against.seq,
            left: end(&footer.stopped),
            right: end(&stopped),
        }));
    }
    let result = payloads(result, footer.payload_digest, sim.payload_digest());
    Ok(deadlines(result, &footer.deadlines, &sim.deadlines()))
}

/// When every record and payload matched, the deadline tables must match
/// too: a `late` record names its deadline by index into it.
fn deadlines(c: Comparison, left: &[Deadline], right: &[Deadline]) -> Comparison {
    match c {
        Comparison::Identical(n) if left != right => {
            let i = left
                .iter()
                .zip(right)
                .position(|(a, b)| a != b)
                .unwrap_or(left.len().min(right.len()));
            let say = |t: &[Deadline]| {
                Some(match t.get(i) {
                    Some(d) => format!(
                        "deadline {} of {}: {} limit {} ns, period {} ns, step {}",
                        i + 1,
                        t.len(),
                        d.name,
                        d.limit_ns,
                        d.period_ns,
                        d.step
                    ),
                    None => format!("{} deadlines", t.len()),
                })
            };
            Comparison::Diverged(Divergence {
                what: Differs::Deadlines,
                seq: n,
                left: say(left),
                right: say(right),
            })
        }
        c => c,
    }
}

/// When every record matched, the payload digests must match too: a value
/// inside a message (a state of charge, a voltage) is part of the run.
fn payloads(records: Comparison, left: Digest, right: Digest) -> Comparison {
    match records {
        Comparison::Identical(n) if left != right => {
            let say = |d: Digest| {
                Some(format!(
                    "payload digest {d} (every record matches; a published payload differs)"
                ))
            };
            Comparison::Diverged(Divergence {
                what: Differs::Payloads,
                seq: n,
                left: say(left),
                right: say(right),
            })
        }
        c => c,
    }
}

/// Which of the two traces given to [`diff`] could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{} trace: {error}", if *.second { "second" } else { "first" })]
pub struct DiffError {
    /// False for the first trace, true for the second.
    pub second: bool,
    /// What went wrong with it.
    #[source]
    pub error: TraceError,
}

/// Compares two trace files, streaming both: their records, then their
/// payload digests.
pub fn diff<A: Read + Seek, B: Read + Seek>(
    a: &mut TraceReader<A>,
    b: &mut TraceReader<B>,
) -> Result<Comparison, DiffError> {
    let (fa, fb) = (a.footer().clone(), b.footer().clone());
    let na = names(
        &fa.agents,
        &fa.channels,
        &fa.kinds,
        &fa.routers,
        a.header().env,
    );
    let nb = names(
        &fb.agents,
        &fb.channels,
        &fb.kinds,
        &fb.routers,
        b.header().env,
    );
    let side = |second: bool| move |error| DiffError { second, error };
    let (mut ca, mut cb) = (a.cursor(), b.cursor());
    let mut seq = 0u64;
    loop {
        let l = ca.next_record().map_err(side(false))?;
        let r = cb.next_record().map_err(side(true))?;
        match (l, r) {
            (None, None) => {
                let same = Comparison::Identical(seq);
                let same = payloads(same, fa.payload_digest, fb.payload_digest);
                return Ok(deadlines(same, &fa.deadlines, &fb.deadlines));
            }
            (Some(l), Some(r)) if same(&l, &na, &r, &nb) => seq += 1,
            (l, r) => {
                verify_rest(&mut ca).map_err(side(false))?;
                verify_rest(&mut cb).map_err(side(true))?;
                return Ok(diverged(seq, l.as_ref(), &na, r.as_ref(), &nb));
            }
        }
    }
}
