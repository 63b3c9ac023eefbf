//! Trace export as Chrome trace-event JSON (the JSON Object Format), which
//! ui.perfetto.dev and chrome://tracing open.
//!
//! One process (pid 1, named after the scenario, seed and environment)
//! with one thread track per node: the broker (tid 1), every agent
//! (tid 3 + agent id), every router (after the agents), and a `run` track
//! (tid 2) for faults that concern no node. Metadata events (`ph: "M"`)
//! name every track and give it a sort index: broker, agents in id order,
//! routers, then `run`.
//!
//! Virtual time is in microseconds (`ts`, three decimals: exact
//! nanoseconds). Handler calls and the ends of a message's journey are
//! slices (`ph: "X"`): `timer` and `deliver` (the agent's handler runs),
//! `publish` (on the sender's track) and `drop: REASON` (category `drop`,
//! on the node where the copy was lost). Handlers take no virtual time, so
//! a slice is drawn [`SLICE_NS`] long (100 µs), cut short where the next
//! slice on its track starts sooner; slices at the same instant on a track
//! nest. A flow arrow (`ph: "s"` to `ph: "f"`, `bp: "e"`, one id per
//! arrow) runs from each publish to each delivery and each drop of that
//! message when both are in the export. Every other event (route, forward,
//! ack, retransmit, expire, dead_letter, enqueue, session, duplicate,
//! retained, late, fault) is an instant event (`ph: "i"`, `s: "t"`) on the
//! node where it happens, named `event` or `event: detail`, category the
//! event name. `args` hold the message id (`msg`; `tag` for a timer),
//! channel, kind, sender and detail.
//!
//! The output is a function of the trace and the selection only: the same
//! trace gives the same bytes.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Seek, Write};

use crate::trace::export::Names;
use crate::trace::window::{Matcher, Selection, VizError, footer_names, stream};
use crate::trace::{
    EventKind, NODE_BROADCAST, NODE_BROKER, NODE_ROUTER_BASE, NONE, Record, TraceReader,
};

/// How long a slice is drawn, ns of virtual time (handlers take none).
pub const SLICE_NS: u64 = 100_000;

/// Past this many trace events, `busbar export` warns that the file may be
/// slow to load and suggests a window.
pub const WARN_EVENTS: u64 = 1_000_000;

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerfettoStats {
    /// Trace records selected.
    pub records: u64,
    /// JSON trace events written (metadata, slices, instants, flows).
    pub events: u64,
    /// Flow arrows (pairs of `s` and `f` events).
    pub flows: u64,
}

const PID: u32 = 1;
const TID_BROKER: u32 = 1;
const TID_RUN: u32 = 2;
const TID_AGENT0: u32 = 3;

/// A slice waiting for the next slice on its track, which sets its length.
struct Slice {
    ts: u64,
    /// The event up to `"dur":` (exclusive).
    head: Vec<u8>,
    /// `,"pid":...}` and the `args`.
    tail: Vec<u8>,
    /// Flow events to write after it (so a reader that keeps file order
    /// for equal times sees the slice first).
    after: Vec<u8>,
}

#[derive(Default)]
struct Track {
    /// Bumped on each flush: a publish remembers it to know whether its
    /// slice is still pending.
    generation: u64,
    pending: Vec<Slice>,
}

#[derive(Clone, Copy)]
struct Published {
    ts: u64,
    tid: u32,
    generation: u64,
    index: usize,
}

/// Streams records into a trace-event JSON file.
struct Writer<'n, W: Write> {
    out: BufWriter<W>,
    names: &'n Names<'n>,
    matcher: Matcher,
    tracks: Vec<Track>,
    published: BTreeMap<u64, Published>,
    stats: PerfettoStats,
    first: bool,
}

/// Writes `ns` as microseconds with three decimals.
fn micros(out: &mut Vec<u8>, ns: u64) {
    let _ = write!(out, "{}.{:03}", ns / 1000, ns % 1000);
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

impl<'n, W: Write> Writer<'n, W> {
    fn new(
        names: &'n Names<'n>,
        title: &str,
        other: &[(&str, String)],
        matcher: Matcher,
        out: W,
    ) -> Result<Self, VizError> {
        let n_tracks = TID_AGENT0 as usize + names.agents.len() + names.routers.len();
        let mut w = Writer {
            out: BufWriter::new(out),
            names,
            matcher,
            tracks: (0..n_tracks).map(|_| Track::default()).collect(),
            published: BTreeMap::new(),
            stats: PerfettoStats::default(),
            first: true,
        };
        w.out
            .write_all(b"{\"displayTimeUnit\":\"ns\",\"otherData\":{")?;
        for (i, (k, v)) in other.iter().enumerate() {
            let mut b = Vec::new();
            if i > 0 {
                b.push(b',');
            }
            json_str(&mut b, k);
            b.push(b':');
            json_str(&mut b, v);
            w.out.write_all(&b)?;
        }
        w.out.write_all(b"},\"traceEvents\":[\n")?;
        w.metadata(0, "process_name", "name", title)?;
        let mut tracks: Vec<(u32, String)> = vec![(TID_BROKER, "broker".to_string())];
        for (i, a) in names.agents.iter().enumerate() {
            tracks.push((TID_AGENT0 + i as u32, a.clone()));
        }
        for (i, r) in names.routers.iter().enumerate() {
            let tid = TID_AGENT0 + names.agents.len() as u32 + i as u32;
            tracks.push((tid, format!("router {r}")));
        }
        tracks.push((TID_RUN, "run (faults)".to_string()));
        for (sort, (tid, name)) in tracks.iter().enumerate() {
            w.metadata(*tid, "thread_name", "name", name)?;
            w.metadata_num(*tid, "thread_sort_index", sort as u64)?;
        }
        Ok(w)
    }

    fn emit(&mut self, event: &[u8]) -> Result<(), VizError> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        self.out.write_all(event)?;
        self.stats.events += 1;
        Ok(())
    }

    fn metadata(&mut self, tid: u32, name: &str, key: &str, value: &str) -> Result<(), VizError> {
        let mut b = Vec::new();
        let _ = write!(
            b,
            "{{\"name\":\"{name}\",\"ph\":\"M\",\"ts\":0,\"pid\":{PID},"
        );
        if tid != 0 {
            let _ = write!(b, "\"tid\":{tid},");
        } else {
            let _ = write!(b, "\"tid\":0,");
        }
        let _ = write!(b, "\"args\":{{\"{key}\":");
        json_str(&mut b, value);
        b.extend_from_slice(b"}}");
        self.emit(&b)
    }

    fn metadata_num(&mut self, tid: u32, name: &str, value: u64) -> Result<(), VizError> {
        let b = format!(
            "{{\"name\":\"{name}\",\"ph\":\"M\",\"ts\":0,\"pid\":{PID},\"tid\":{tid},\"args\":{{\"sort_index\":{value}}}}}"
        );
        self.emit(b.as_bytes())
    }

    /// The track of a node id.
    fn tid(&self, node: u32) -> u32 {
        let agents = self.names.agents.len() as u64;
        match node {
            NODE_BROKER | NODE_BROADCAST => TID_BROKER,
            r if r >= NODE_ROUTER_BASE => {
                let r = u64::from(r - NODE_ROUTER_BASE);
                if r < self.names.routers.len() as u64 {
                    (u64::from(TID_AGENT0) + agents + r) as u32
                } else {
                    TID_RUN
                }
            }
            a if u64::from(a) < agents => TID_AGENT0 + a,
            _ => TID_RUN,
        }
    }

    /// The track of a record: a publish's is its sender's, a fault without
    /// a node is on the `run` track.
    fn track(&self, r: &Record) -> u32 {
        match r.event {
            EventKind::Publish => self.tid(r.sender),
            EventKind::Fault if r.node == NONE => TID_RUN,
            _ => self.tid(r.node),
        }
    }

    /// Writes the pending slices of a track, each `dur` long at most.
    fn flush(&mut self, tid: u32, next_ts: Option<u64>) -> Result<(), VizError> {
        let track = &mut self.tracks[tid as usize];
        if track.pending.is_empty() {
            return Ok(());
        }
        track.generation += 1;
        let pending = std::mem::take(&mut track.pending);
        for s in pending {
            // A damaged trace may go back in time: no panic, a full slice.
            let dur = match next_ts {
                Some(n) if n > s.ts => SLICE_NS.min(n - s.ts),
                _ => SLICE_NS,
            };
            let mut b = s.head;
            b.extend_from_slice(b",\"dur\":");
            micros(&mut b, dur);
            b.extend_from_slice(&s.tail);
            self.emit(&b)?;
            if !s.after.is_empty() {
                self.out.write_all(&s.after)?;
            }
        }
        Ok(())
    }

    /// The common fields after `ph`: `ts`, and `pid`, `tid` in `tail`.
    fn args(&mut self, r: &Record) -> Vec<u8> {
        let row = self.names.row(0, r);
        let mut b = Vec::new();
        let _ = write!(b, ",\"pid\":{PID},\"tid\":{},\"args\":{{", self.track(r));
        if r.event == EventKind::Timer {
            let _ = write!(b, "\"tag\":{}", r.msg);
        } else {
            let _ = write!(b, "\"msg\":{}", r.msg);
        }
        for (k, v) in [
            ("channel", row.channel),
            ("kind", &row.kind),
            ("sender", row.sender),
            ("node", row.recipient),
            ("detail", &row.detail),
        ] {
            if !v.is_empty() {
                let _ = write!(b, ",\"{k}\":");
                json_str(&mut b, v);
            }
        }
        if r.event != EventKind::Timer && r.sent_ns != r.time_ns {
            let _ = write!(b, ",\"sent_ns\":{}", r.sent_ns);
        }
        b.extend_from_slice(b"}}");
        b
    }

    fn flow(&mut self, ph: char, id: u64, ts: u64, tid: u32) -> Vec<u8> {
        let mut b = Vec::new();
        let _ = write!(
            b,
            ",\n{{\"name\":\"message\",\"cat\":\"flow\",\"ph\":\"{ph}\",\"id\":{id},\"ts\":"
        );
        micros(&mut b, ts);
        let _ = write!(b, ",\"pid\":{PID},\"tid\":{tid}");
        if ph == 'f' {
            b.extend_from_slice(b",\"bp\":\"e\"");
        }
        b.push(b'}');
        self.stats.events += 1;
        b
    }

    /// Handles one record; `false` once past the window.
    fn record(&mut self, r: &Record) -> Result<bool, VizError> {
        if self.matcher.past(r.time_ns) {
            return Ok(false);
        }
        if !self.matcher.selects(r) {
            return Ok(true);
        }
        self.stats.records += 1;
        let tid = self.track(r);
        let row = self.names.row(0, r);
        let (name, cat): (String, &str) = match r.event {
            EventKind::Publish => (format!("publish {}", row.channel), "publish"),
            EventKind::Deliver => (format!("deliver {}", row.channel), "deliver"),
            EventKind::Drop => (format!("drop: {}", row.detail), "drop"),
            EventKind::Timer => (format!("timer {}", r.msg), "timer"),
            e if row.detail.is_empty() => (e.name().to_string(), e.name()),
            e => (format!("{}: {}", e.name(), row.detail), e.name()),
        };
        let tail = self.args(r);
        let mut b = Vec::new();
        b.extend_from_slice(b"{\"name\":");
        json_str(&mut b, &name);
        let _ = write!(b, ",\"cat\":\"{cat}\"");
        let slice = matches!(
            r.event,
            EventKind::Publish | EventKind::Deliver | EventKind::Drop | EventKind::Timer
        );
        if !slice {
            b.extend_from_slice(b",\"ph\":\"i\",\"s\":\"t\",\"ts\":");
            micros(&mut b, r.time_ns);
            b.extend_from_slice(&tail);
            self.emit(&b)?;
            return Ok(true);
        }
        b.extend_from_slice(b",\"ph\":\"X\",\"ts\":");
        micros(&mut b, r.time_ns);
        let track = &self.tracks[tid as usize];
        if track.pending.first().is_some_and(|s| s.ts != r.time_ns) {
            self.flush(tid, Some(r.time_ns))?;
        }
        let mut slice = Slice {
            ts: r.time_ns,
            head: b,
            tail,
            after: Vec::new(),
        };
        // An arrow from the publish to this copy's end, when the publish is
        // in the export. Acks and session packets do not count.
        let ends = matches!(r.event, EventKind::Deliver)
            || (r.event == EventKind::Drop && r.detail & 0xff00 == 0);
        if ends && let Some(p) = self.published.get(&r.msg).copied() {
            let id = self.stats.flows;
            self.stats.flows += 1;
            let start = self.flow('s', id, p.ts, p.tid);
            let track = &mut self.tracks[p.tid as usize];
            if track.generation == p.generation && p.index < track.pending.len() {
                track.pending[p.index].after.extend_from_slice(&start);
            } else {
                self.out.write_all(&start)?;
            }
            let finish = self.flow('f', id, r.time_ns, tid);
            slice.after.extend_from_slice(&finish);
        }
        let track = &mut self.tracks[tid as usize];
        if r.event == EventKind::Publish {
            self.published.insert(
                r.msg,
                Published {
                    ts: r.time_ns,
                    tid,
                    generation: track.generation,
                    index: track.pending.len(),
                },
            );
        }
        track.pending.push(slice);
        Ok(true)
    }

    fn finish(mut self) -> Result<PerfettoStats, VizError> {
        for tid in 0..self.tracks.len() as u32 {
            self.flush(tid, None)?;
        }
        self.out.write_all(b"\n]}\n")?;
        self.out.flush()?;
        Ok(self.stats)
    }
}

/// The names, title and extra data of a trace file's export.
fn trace_info<R: Read + Seek>(reader: &TraceReader<R>) -> (String, Vec<(&'static str, String)>) {
    let h = reader.header();
    let title = format!("busbar {} seed {} env {}", h.scenario_path, h.seed, h.env);
    let other = vec![
        ("busbar", h.crate_version.clone()),
        ("scenario", h.scenario_path.clone()),
        ("seed", h.seed.to_string()),
        ("env", h.env.to_string()),
    ];
    (title, other)
}

/// Writes the selected records of a trace as trace-event JSON. Stops
/// reading at the end of the window.
pub fn perfetto<R: Read + Seek, W: Write>(
    reader: &mut TraceReader<R>,
    selection: &Selection,
    out: W,
) -> Result<PerfettoStats, VizError> {
    let footer = reader.footer().clone();
    let names = footer_names(&footer, reader.header().env);
    let (title, other) = trace_info(reader);
    let mut w = Writer::new(&names, &title, &other, selection.matcher(&names)?, out)?;
    stream(reader, |r| w.record(r))?;
    w.finish()
}

/// Writes records (in trace order) as trace-event JSON; `title` names the
/// process track.
pub fn perfetto_records<'r, W: Write>(
    records: impl IntoIterator<Item = &'r Record>,
    names: &Names<'_>,
    title: &str,
    selection: &Selection,
    out: W,
) -> Result<PerfettoStats, VizError> {
    let names = names.clone();
    let mut w = Writer::new(&names, title, &[], selection.matcher(&names)?, out)?;
    for r in records {
        if !w.record(r)? {
            break;
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::trace::window::test_record as rec;

    fn export(records: &[Record]) -> (PerfettoStats, String) {
        let agents = ["a".to_string(), "b\"q".to_string()];
        let channels = ["c".to_string()];
        let names = Names {
            agents: &agents,
            channels: &channels,
            kinds: &[],
            routers: &[],
            env: 0,
        };
        let mut out = Vec::new();
        let stats =
            perfetto_records(records, &names, "t", &Selection::default(), &mut out).unwrap();
        (stats, String::from_utf8(out).unwrap())
    }

    #[test]
    fn slices_are_cut_at_the_next_slice_and_flows_follow_their_slices() {
        let (stats, text) = export(&[
            rec(0, EventKind::Timer, 7, 0, 0),
            rec(0, EventKind::Publish, 0, 0, NODE_BROADCAST),
            rec(30_000, EventKind::Deliver, 0, 0, 1),
            rec(30_000, EventKind::Drop, 0, 0, 1),
            rec(30_001, EventKind::Timer, 8, 1, 1),
        ]);
        assert_eq!(stats.flows, 2);
        assert_eq!(stats.records, 5);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("\"ph\":\"M\""))
            .collect();
        // The publish slice is pending until the sender's track ends, and
        // its flow starts come after it in the file.
        let find = |s: &str| {
            lines
                .iter()
                .position(|l| l.contains(s))
                .unwrap_or_else(|| panic!("{s} in {text}"))
        };
        let publish = find("\"cat\":\"publish\"");
        let deliver = find("\"cat\":\"deliver\"");
        assert!(find("\"ph\":\"s\",\"id\":0") > publish);
        assert!(find("\"ph\":\"s\",\"id\":1") > publish);
        assert!(find("\"ph\":\"f\",\"id\":0") > deliver);
        assert!(
            lines[publish].contains("\"dur\":100.000"),
            "{}",
            lines[publish]
        );
        // Two slices at one instant nest; the next one 1 ns later cuts them.
        assert!(
            lines[deliver].contains("\"ts\":30.000,\"dur\":0.001"),
            "{}",
            lines[deliver]
        );
        assert!(
            text.contains("\"name\":\"b\\\"q\""),
            "names are JSON strings"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["traceEvents"].as_array().unwrap().len() as u64,
            stats.events
        );
    }

    #[test]
    fn time_going_back_or_unknown_nodes_do_not_panic() {
        let (_, text) = export(&[
            rec(50, EventKind::Deliver, 0, 0, 1),
            rec(10, EventKind::Deliver, 1, 0, 1),
            rec(20, EventKind::Deliver, 2, 0, 99),
            rec(30, EventKind::Forward, 2, 0, NODE_ROUTER_BASE + 5),
            rec(40, EventKind::Publish, 3, 77, NODE_BROADCAST),
        ]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v["traceEvents"].is_array());
    }
}
