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
    scenario.run_sim(&mut sim)?;
    let fresh = sim.records();
    let footer = reader.footer();
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

/// Compares two trace files.
pub fn diff<A: Read + Seek, B: Read + Seek>(
    a: &mut TraceReader<A>,
    b: &mut TraceReader<B>,
) -> Result<Comparison, TraceError> {
    let ra = a.read_all()?;
    let rb = b.read_all()?;
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
