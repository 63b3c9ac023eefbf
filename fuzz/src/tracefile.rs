//! Mutations that know the trace format: the file is split into its
//! frames (`len u32 | tag u8 | body | check u64`; joined again with the
//! checksum chain recomputed, so a structural mutation gets past the
//! checks into the decoders), and a mutation edits the header's
//! fields (the embedded scenario with the TOML mutator, the seed, the
//! environment), the footer's names and counts, a batch's bytes, the frame
//! sequence, or decoded records, which are then written back through
//! `TraceWriter`. Afterwards the footer's count and digest are often fixed
//! up to match the records, so the mutated records get past the digest
//! check into export, diff and replay.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use busbar::message::Payload;
use busbar::trace::{
    Digester, EventKind, Footer, Header, KeptPayload, NODE_BROADCAST, NODE_BROKER, NONE, Record,
    TraceError, TraceReader, TraceWriter,
};

use crate::bytes::{self, INTERESTING};
use crate::rng::Rng;
use crate::targets::REPLAY_MAX_EVENTS;

const PREAMBLE: usize = 10;
/// Bytes of a frame's check.
const CHECK: usize = 8;
const TAG_HEADER: u8 = 1;
const TAG_RECORDS: u8 = 2;
const TAG_FOOTER: u8 = 3;
const TAG_PAYLOADS: u8 = 4;

/// A trace file split into frames; bytes that do not frame are `trailing`.
struct Frames {
    pre: Vec<u8>,
    frames: Vec<(u8, Vec<u8>)>,
    trailing: Vec<u8>,
}

impl Frames {
    fn split(data: &[u8]) -> Option<Frames> {
        if data.len() < PREAMBLE {
            return None;
        }
        let mut frames = Vec::new();
        let mut pos = PREAMBLE;
        while pos + 5 + CHECK <= data.len() {
            let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            if data.len() - pos - 5 - CHECK < len {
                break;
            }
            frames.push((data[pos + 4], data[pos + 5..pos + 5 + len].to_vec()));
            pos += 5 + len + CHECK;
        }
        if frames.is_empty() {
            return None;
        }
        Some(Frames {
            pre: data[..PREAMBLE].to_vec(),
            frames,
            trailing: data[pos..].to_vec(),
        })
    }

    /// The frames again, each with the check the library's chain gives it
    /// (XXH3-64 over length, tag and body, seeded with the previous check;
    /// the first seeded with XXH3-64 of the preamble).
    fn join(&self) -> Vec<u8> {
        use xxhash_rust::xxh3::{Xxh3, xxh3_64};
        let mut out = self.pre.clone();
        let mut seed = xxh3_64(&self.pre);
        for (tag, body) in &self.frames {
            let mut head = (body.len() as u32).to_le_bytes().to_vec();
            head.push(*tag);
            let mut h = Xxh3::with_seed(seed);
            h.update(&head);
            h.update(body);
            seed = h.digest();
            out.extend_from_slice(&head);
            out.extend_from_slice(body);
            out.extend_from_slice(&seed.to_le_bytes());
        }
        out.extend_from_slice(&self.trailing);
        out
    }

    fn indices(&self, tag: u8) -> Vec<usize> {
        (0..self.frames.len())
            .filter(|&i| self.frames[i].0 == tag)
            .collect()
    }
}

/// What the mutator's own calls into the library did wrong (a panic while
/// it decoded or encoded), for the summary.
#[derive(Default)]
pub struct MutatorLog {
    pub panics: u64,
    pub first: Option<String>,
}

fn guarded<T>(log: &mut MutatorLog, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            log.panics += 1;
            let msg = crate::driver::take_panic().unwrap_or_default();
            if log.first.is_none() {
                log.first = Some(msg);
            }
            None
        }
    }
}

/// A trace taken apart: header, footer, the records and kept payloads as
/// far as they decode, and whether all did (and matched the footer).
type Decoded = (
    Header,
    Footer,
    Vec<Record>,
    Vec<KeptPayload>,
    Result<(), TraceError>,
);

fn decode(data: &[u8]) -> Option<Decoded> {
    let mut r = TraceReader::new(Cursor::new(data)).ok()?;
    let (h, f) = (r.header().clone(), r.footer().clone());
    let (mut recs, mut kept) = (Vec::new(), Vec::new());
    let mut c = r.cursor();
    let end = loop {
        match c.next_batch_with_payloads() {
            Ok(Some((b, k))) => {
                recs.extend_from_slice(b);
                kept.extend_from_slice(k);
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    Some((h, f, recs, kept, end))
}

/// A payload for each publish of `records`, in order: the kept one of the
/// same message if there is one, else a random one (a mutated record may
/// be a new publish, or a repeated id).
fn payloads_for(records: &[Record], kept: &[KeptPayload], rng: &mut Rng) -> Vec<(u64, Payload)> {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.event == EventKind::Publish) {
        let p = match kept.binary_search_by_key(&r.msg, |k| k.msg) {
            Ok(i) if rng.chance(7, 8) => kept[i].payload.clone(),
            _ => match rng.below(4) {
                0 => Payload::Empty,
                1 => Payload::values(&vec![f64::NAN; rng.small(40)]),
                2 => Payload::Bytes(vec![0xff; rng.small(300)].into()),
                _ => Payload::Text("é".repeat(rng.small(200)).into()),
            },
        };
        out.push((r.msg, p));
    }
    out
}

/// A valid trace of `records` (and, if the header keeps payloads, a payload
/// for each publish), written by the library's writer in slices of random
/// sizes, with the footer's count and digest made to match.
fn encode(
    h: &Header,
    f: &Footer,
    records: &[Record],
    kept: &[KeptPayload],
    rng: &mut Rng,
) -> Option<Vec<u8>> {
    let mut w = TraceWriter::new(Vec::new(), h).ok()?;
    let mut d = Digester::default();
    let mut rest = records;
    while !rest.is_empty() {
        let n = rng.small(rest.len().min(10_000));
        let (a, b) = rest.split_at(n);
        if h.payload_limit.is_some() {
            let p = payloads_for(a, kept, rng);
            w.records_with_payloads(a, &p).ok()?;
        } else {
            w.records(a).ok()?;
        }
        d.update(a);
        rest = b;
    }
    let mut f = f.clone();
    f.records = records.len() as u64;
    f.records_digest = d.digest();
    w.finish(&f).ok()
}

fn interesting_u32(rng: &mut Rng, small_max: u32) -> u32 {
    match rng.below(4) {
        0 => NONE,
        1 => NODE_BROKER,
        2 => rng.below(small_max as usize + 2) as u32,
        _ => *rng.pick(INTERESTING) as u32,
    }
}

fn mutate_record(r: &mut Record, rng: &mut Rng) {
    match rng.below(9) {
        0 => {
            r.time_ns = if rng.chance(1, 2) {
                *rng.pick(INTERESTING)
            } else {
                r.time_ns.wrapping_add(rng.below(3) as u64).wrapping_sub(1)
            }
        }
        1 => r.event = *rng.pick(&EventKind::ALL),
        2 => r.kind = rng.next_u64() as u8,
        3 => r.detail = *rng.pick(&[0u16, 1, 2, 3, 4, 255, u16::MAX]),
        4 => r.channel = interesting_u32(rng, 8),
        5 => r.msg = *rng.pick(INTERESTING),
        6 => r.sender = interesting_u32(rng, 8),
        7 => {
            r.node = match rng.below(3) {
                0 => NODE_BROADCAST,
                _ => interesting_u32(rng, 8),
            }
        }
        _ => {
            r.sent_ns = if rng.chance(1, 2) {
                *rng.pick(INTERESTING)
            } else {
                r.time_ns.wrapping_add(1)
            }
        }
    }
}

fn mutate_records(recs: &mut Vec<Record>, rng: &mut Rng) {
    for _ in 0..rng.small(4) {
        let n = recs.len();
        match rng.below(6) {
            0..=2 if n > 0 => {
                let i = rng.below(n);
                mutate_record(&mut recs[i], rng);
            }
            3 if n > 0 => {
                let i = rng.below(n);
                let c = rng.small(n - i);
                recs.drain(i..i + c);
            }
            4 if n > 0 => {
                let i = rng.below(n);
                let r = recs[i];
                let at = rng.below(n + 1);
                recs.insert(at, r);
            }
            _ if n > 1 => {
                let (i, j) = (rng.below(n), rng.below(n));
                recs.swap(i, j);
            }
            _ => {}
        }
    }
}

fn mutate_names(v: &mut Vec<String>, rng: &mut Rng) {
    match rng.below(5) {
        0 => {
            v.pop();
        }
        1 => v.push(
            rng.pick(&["", "x", "broker", "mg1", "env0/x", "é"])
                .to_string(),
        ),
        2 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = format!("{}{}", v[i], rng.below(10));
        }
        3 => v.clear(),
        _ => {
            let n = v.len();
            if n > 0 {
                let x = v[rng.below(n)].clone();
                v.push(x);
            }
        }
    }
}

fn mutate_header(h: &mut Header, rng: &mut Rng, other_text: &[u8]) {
    match rng.below(10) {
        0..=5 => {
            let mut t = h.scenario.clone().into_bytes();
            crate::toml::mutate(&mut t, rng, other_text, 3, 1 << 16);
            h.scenario = String::from_utf8_lossy(&t).into_owned();
            // Mostly keep the scenario small enough to be replayed.
            if rng.chance(7, 8) {
                let big = |v: &str| crate::targets::lenient_u64(v) > REPLAY_MAX_EVENTS;
                h.scenario = crate::toml::replace_values(&h.scenario, "max_events", big, "20000");
            }
        }
        6 if rng.chance(1, 2) => {
            h.payload_limit = *rng.pick(&[None, Some(1), Some(8), Some(20), Some(65536), Some(0)])
        }
        6 => h.seed = *rng.pick(INTERESTING),
        7 => h.env = *rng.pick(INTERESTING) as u32,
        8 => h.base_dir = rng.pick(&["", ".", "/", "/nonexistent", "\0"]).to_string(),
        _ => {
            h.scenario_path = rng.pick(&["", "x.toml", "/", "\n"]).to_string();
            h.crate_version = rng.pick(&["", "0.0.0", "99.0.0"]).to_string();
        }
    }
}

fn mutate_footer(f: &mut Footer, rng: &mut Rng) {
    match rng.below(6) {
        0 => mutate_names(&mut f.agents, rng),
        1 => mutate_names(&mut f.channels, rng),
        2 => match rng.below(3) {
            0 => f.kinds.push((rng.next_u64() as u8, "k".into())),
            1 if !f.kinds.is_empty() => {
                let i = rng.below(f.kinds.len());
                f.kinds[i].0 = rng.next_u64() as u8;
            }
            _ => f.kinds.clear(),
        },
        3 => {
            f.records = match rng.below(3) {
                0 => f.records.wrapping_add(1),
                1 => f.records.wrapping_sub(1),
                _ => *rng.pick(INTERESTING),
            }
        }
        4 => {
            f.stopped = match f.stopped {
                Some(_) => None,
                None => Some("limit max_events = 1 exceeded".into()),
            }
        }
        _ => f.records_digest.0[rng.below(16)] ^= 1 << rng.below(8),
    }
}

/// One mutation; false if nothing applied.
fn mutate_once(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8], log: &mut MutatorLog) -> bool {
    let Some(mut fr) = Frames::split(data) else {
        return bytes::mutate_once(data, rng, other);
    };
    match rng.below(12) {
        0..=2 => {
            let hs = fr.indices(TAG_HEADER);
            let Some(&i) = hs.first() else { return false };
            let Ok(mut h) = postcard::from_bytes::<Header>(&fr.frames[i].1) else {
                return false;
            };
            let other_text = Frames::split(other)
                .and_then(|o| postcard::from_bytes::<Header>(&o.frames[0].1).ok())
                .map(|o| o.scenario.into_bytes())
                .unwrap_or_default();
            mutate_header(&mut h, rng, &other_text);
            fr.frames[i].1 = postcard::to_stdvec(&h).expect("a header encodes");
        }
        3 => {
            let fs = fr.indices(TAG_FOOTER);
            let Some(&i) = fs.last() else { return false };
            let Ok(mut f) = postcard::from_bytes::<Footer>(&fr.frames[i].1) else {
                return false;
            };
            mutate_footer(&mut f, rng);
            fr.frames[i].1 = postcard::to_stdvec(&f).expect("a footer encodes");
        }
        4 | 5 => {
            let mut rs = fr.indices(TAG_RECORDS);
            rs.extend(fr.indices(TAG_PAYLOADS));
            if rs.is_empty() {
                return false;
            }
            let i = *rng.pick(&rs);
            bytes::mutate(&mut fr.frames[i].1, rng, &[], 3, 1 << 20);
        }
        6 => match rng.below(5) {
            0 => {
                let i = rng.below(fr.frames.len());
                fr.frames.remove(i);
            }
            1 => {
                let i = rng.below(fr.frames.len());
                let f = fr.frames[i].clone();
                fr.frames.insert(rng.below(fr.frames.len() + 1), f);
            }
            2 => {
                let (i, j) = (rng.below(fr.frames.len()), rng.below(fr.frames.len()));
                fr.frames.swap(i, j);
            }
            3 => {
                let i = rng.below(fr.frames.len());
                fr.frames[i].0 = *rng.pick(&[0u8, 1, 2, 3, 4, 255]);
            }
            _ => {
                // A batch from another trace.
                let Some(o) = Frames::split(other) else {
                    return false;
                };
                let rs = o.indices(TAG_RECORDS);
                if rs.is_empty() {
                    return false;
                }
                let f = o.frames[*rng.pick(&rs)].clone();
                let at = rng.range(1.min(fr.frames.len()), fr.frames.len());
                fr.frames.insert(at, f);
            }
        },
        7..=9 => {
            let seed = rng.next_u64();
            let done = guarded(log, || {
                let (h, f, mut recs, kept, _) = decode(data)?;
                let mut rng = Rng::new(seed);
                mutate_records(&mut recs, &mut rng);
                encode(&h, &f, &recs, &kept, &mut rng)
            });
            return match done.flatten() {
                Some(new) => {
                    *data = new;
                    true
                }
                None => false,
            };
        }
        10 => {
            // A frame length made wrong.
            let mut out = fr.join();
            let mut pos = PREAMBLE;
            let k = rng.below(fr.frames.len());
            for (_, body) in &fr.frames[..k] {
                pos += 5 + body.len();
            }
            let v = *rng.pick(INTERESTING) as u32;
            out[pos..pos + 4].copy_from_slice(&v.to_le_bytes());
            *data = out;
            return true;
        }
        _ => return bytes::mutate_once(data, rng, other),
    }
    *data = fr.join();
    true
}

/// Makes the footer's record count and digest match the records, if every
/// batch decodes and only they disagree.
fn fix_footer(data: &mut Vec<u8>, log: &mut MutatorLog) {
    let fixed = guarded(log, || {
        let (_, _, recs, _, end) = decode(data)?;
        if !matches!(end, Err(TraceError::DigestMismatch { .. })) {
            return None;
        }
        let mut fr = Frames::split(data)?;
        let i = *fr.indices(TAG_FOOTER).last()?;
        let mut f: Footer = postcard::from_bytes(&fr.frames[i].1).ok()?;
        let mut d = Digester::default();
        d.update(&recs);
        f.records = recs.len() as u64;
        f.records_digest = d.digest();
        fr.frames[i].1 = postcard::to_stdvec(&f).ok()?;
        Some(fr.join())
    });
    if let Some(Some(new)) = fixed {
        *data = new;
    }
}

/// `1..=max` stacked mutations of a trace file, then (half the time) the
/// footer fixed up to the records.
pub fn mutate(
    data: &mut Vec<u8>,
    rng: &mut Rng,
    other: &[u8],
    max: usize,
    max_len: usize,
    log: &mut MutatorLog,
) {
    let n = rng.small(max);
    let mut done = 0;
    for _ in 0..n * 4 {
        if done == n {
            break;
        }
        if mutate_once(data, rng, other, log) {
            done += 1;
        }
    }
    if rng.chance(1, 2) {
        fix_footer(data, log);
    }
    data.truncate(max_len);
}

/// The scenario embedded in a trace's header, if the header decodes.
pub fn embedded_scenario(data: &[u8]) -> Option<String> {
    let fr = Frames::split(data)?;
    let (tag, body) = fr.frames.first()?;
    (*tag == TAG_HEADER).then_some(())?;
    postcard::from_bytes::<Header>(body)
        .ok()
        .map(|h| h.scenario)
}

/// `data` with its embedded scenario replaced by `scenario` (for the
/// minimizer), if the header decodes.
pub fn with_scenario(data: &[u8], scenario: &str) -> Option<Vec<u8>> {
    let mut fr = Frames::split(data)?;
    let (tag, body) = fr.frames.first_mut()?;
    (*tag == TAG_HEADER).then_some(())?;
    let mut h: Header = postcard::from_bytes(body).ok()?;
    h.scenario = scenario.to_string();
    *body = postcard::to_stdvec(&h).ok()?;
    Some(fr.join())
}

/// `data` without frame `i` (for the minimizer).
pub fn without_frame(data: &[u8], i: usize) -> Option<Vec<u8>> {
    let mut fr = Frames::split(data)?;
    if i >= fr.frames.len() {
        return None;
    }
    fr.frames.remove(i);
    Some(fr.join())
}

/// How many frames `data` splits into.
pub fn frame_count(data: &[u8]) -> usize {
    Frames::split(data).map_or(0, |f| f.frames.len())
}

/// `data` with the records `range` removed and the footer fixed (for the
/// minimizer), if every batch decodes.
pub fn without_records(data: &[u8], from: usize, to: usize) -> Option<Vec<u8>> {
    let (h, f, mut recs, kept, end) = decode(data)?;
    if end.is_err() || to > recs.len() || from >= to {
        return None;
    }
    recs.drain(from..to);
    // One slice: the writer's own batching; the kept payloads of the
    // publishes that remain.
    let published: std::collections::BTreeSet<u64> = recs
        .iter()
        .filter(|r| r.event == EventKind::Publish)
        .map(|r| r.msg)
        .collect();
    let payloads: Vec<(u64, Payload)> = kept
        .into_iter()
        .filter(|k| published.contains(&k.msg))
        .map(|k| (k.msg, k.payload))
        .collect();
    let mut w = TraceWriter::new(Vec::new(), &h).ok()?;
    w.records_with_payloads(&recs, &payloads).ok()?;
    let mut d = Digester::default();
    d.update(&recs);
    let mut f = f.clone();
    f.records = recs.len() as u64;
    f.records_digest = d.digest();
    w.finish(&f).ok()
}

/// How many records decode from `data`.
pub fn record_count(data: &[u8]) -> usize {
    decode(data).map_or(0, |(_, _, r, _, _)| r.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_join_round_trip() {
        let h = Header {
            crate_version: "x".into(),
            scenario_path: "s".into(),
            base_dir: ".".into(),
            scenario: "[simulation]".into(),
            seed: 1,
            env: 0,
            payload_limit: None,
        };
        let f = Footer {
            agents: vec!["a".into()],
            channels: vec![],
            kinds: vec![],
            records: 0,
            records_digest: Digester::default().digest(),
            payload_digest: Digester::default().digest(),
            stopped: None,
            routers: Vec::new(),
            deadlines: Vec::new(),
        };
        let bytes = TraceWriter::new(Vec::new(), &h)
            .unwrap()
            .finish(&f)
            .unwrap();
        let fr = Frames::split(&bytes).unwrap();
        assert_eq!(fr.frames.len(), 2);
        assert_eq!(fr.join(), bytes);
        assert_eq!(embedded_scenario(&bytes).unwrap(), "[simulation]");
        let again = with_scenario(&bytes, "x").unwrap();
        assert_eq!(embedded_scenario(&again).unwrap(), "x");
    }
}
