//! Replay and diff: re-run the scenario and seed embedded in a trace, or
//! compare two traces, and report the first record where they differ.

use std::io::{Read, Seek};
use std::path::Path;

use crate::scenario::{RunError, Scenario, ScenarioError};
use crate::trace::export::Names;
use crate::trace::{Record, TraceError, TraceReader};

/// Where two event streams first differ.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// Index of the first differing record.
    pub seq: u64,
    /// The record on the left (the trace file; `None` if it ended first).
    pub left: Option<String>,
    /// The record on the right (the re-run or second trace).
    pub right: Option<String>,
}

/// The result of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Comparison {
    /// The streams are identical: this many records.
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

fn names<'a>(agents: &'a [String], channels: &'a [String], env: u32) -> Names<'a> {
    Names {
        agents,
        channels,
        env,
    }
}

fn describe(names: &Names<'_>, seq: u64, r: &Record) -> String {
    let row = names.row(seq, r);
    format!(
        "t={}ns {} msg={} channel={} {} -> {} kind={} sent={}ns{}",
        row.time_ns,
        row.event,
        row.msg_id,
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

/// Compares two record streams, naming records with each side's tables. Two
/// records are the same when their fields are equal and the names behind
/// their agent and channel ids are equal too.
pub fn compare(
    left: &[Record],
    left_names: &Names<'_>,
    right: &[Record],
    right_names: &Names<'_>,
) -> Comparison {
    let same_names = |a: &[String], b: &[String]| -> Vec<bool> {
        (0..a.len().max(b.len()))
            .map(|i| a.get(i) == b.get(i))
            .collect()
    };
    let agents = same_names(left_names.agents, right_names.agents);
    let chans = same_names(left_names.channels, right_names.channels);
    let ok = |table: &[bool], id: u32| table.get(id as usize).copied().unwrap_or(true);
    let n = left.len().min(right.len());
    let first = (0..n).find(|&i| {
        let r = &left[i];
        r != &right[i] || !ok(&agents, r.sender) || !ok(&agents, r.node) || !ok(&chans, r.channel)
    });
    let seq = match first {
        Some(i) => i,
        None if left.len() == right.len() => return Comparison::Identical(left.len() as u64),
        None => n,
    };
    Comparison::Diverged(Divergence {
        seq: seq as u64,
        left: left.get(seq).map(|r| describe(left_names, seq as u64, r)),
        right: right.get(seq).map(|r| describe(right_names, seq as u64, r)),
    })
}

/// Re-runs the scenario and seed recorded in a trace and compares the new
/// event stream with the recorded one.
pub fn replay<R: Read + Seek>(reader: &mut TraceReader<R>) -> Result<Comparison, ReplayError> {
    let header = reader.header().clone();
    let recorded = reader.read_all()?;
    let base = Path::new(&header.scenario_path)
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let scenario = Scenario::parse(&header.scenario, &header.scenario_path, &base)?;
    let mut sim = scenario
        .builder(header.seed, header.env)
        .trace_in_memory()
        .build()
        .map_err(RunError::from)?;
    // A run that stopped at a limit replays to the same stop: compare what
    // both did up to there.
    let stopped = match scenario.run_sim(&mut sim) {
        Ok(_) => None,
        Err(RunError::Sim(e)) => Some(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let fresh = sim.records();
    let footer = reader.footer();
    if stopped != footer.stopped {
        let seq = recorded.len().min(fresh.len()) as u64;
        let end = |s: &Option<String>| Some(s.as_deref().unwrap_or("ran to its end").to_string());
        if let Comparison::Identical(_) = compare(
            &recorded,
            &names(&footer.agents, &footer.channels, header.env),
            &fresh,
            &names(sim.agent_names(), sim.channel_names(), header.env),
        ) {
            return Ok(Comparison::Diverged(Divergence {
                seq,
                left: end(&footer.stopped),
                right: end(&stopped),
            }));
        }
    }
    let left = Names {
        agents: &footer.agents,
        channels: &footer.channels,
        env: header.env,
    };
    let right = Names {
        agents: sim.agent_names(),
        channels: sim.channel_names(),
        env: header.env,
    };
    Ok(compare(&recorded, &left, &fresh, &right))
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

/// Compares two trace files.
pub fn diff<A: Read + Seek, B: Read + Seek>(
    a: &mut TraceReader<A>,
    b: &mut TraceReader<B>,
) -> Result<Comparison, DiffError> {
    let ra = a.read_all().map_err(|error| DiffError {
        second: false,
        error,
    })?;
    let rb = b.read_all().map_err(|error| DiffError {
        second: true,
        error,
    })?;
    let (fa, fb) = (a.footer(), b.footer());
    let na = Names {
        agents: &fa.agents,
        channels: &fa.channels,
        env: a.header().env,
    };
    let nb = Names {
        agents: &fb.agents,
        channels: &fb.channels,
        env: b.header().env,
    };
    Ok(compare(&ra, &na, &rb, &nb))
}
