//! The trace file format, through the library: what a run writes reads back
//! exactly (header, records, footer), replays identically, any record
//! sequence survives the compact batch encoding, every kind of damage is
//! reported as the right [`TraceError`] variant naming the damaged part, never
//! a panic, and the run digest covers the payloads agents published.
//!
//! The number of proptest cases comes from `BUSBAR_PROPTEST_CASES` (default
//! 32); e.g. `BUSBAR_PROPTEST_CASES=2000 cargo test --test trace_file`.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Cursor};
use std::path::{Path, PathBuf};

use busbar::replay::{Comparison, diff, replay};
use busbar::trace::{
    CHUNK, Digest, Digester, FORMAT_VERSION, Footer, Header, MAGIC, NODE_BROADCAST, NODE_BROKER,
    NONE, Part, TraceError, TraceReader, TraceWriter,
};
use busbar::{EventKind, Record, Scenario, Summary};
use proptest::prelude::*;
use proptest::test_runner::Config;
use tempfile::TempDir;

mod common;

fn config() -> Config {
    common::proptest_config(32)
}

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// A finished run written to a trace file.
struct Written {
    path: PathBuf,
    scenario: Scenario,
    summary: Summary,
    channels: Vec<String>,
}

/// Runs `name` with `seed`/`env`, writing the trace into `dir` through
/// `Scenario::builder(..).trace_to(..)`.
fn write_trace(dir: &Path, name: &str, seed: u64, env: u32) -> Written {
    let scenario = Scenario::from_file(&scenario_path(name)).expect("shipped scenario loads");
    let path = dir.join(format!("{name}.{seed}.{env}.bin"));
    let file = File::create(&path).unwrap();
    let mut sim = scenario
        .builder(seed, env)
        .trace_to(Box::new(BufWriter::new(file)), scenario.header(seed, env))
        .build()
        .expect("builds");
    let summary = scenario.run_sim(&mut sim).expect("runs");
    Written {
        path,
        channels: sim.channel_names().to_vec(),
        scenario,
        summary,
    }
}

fn open(path: &Path) -> TraceReader<BufReader<File>> {
    TraceReader::new(BufReader::new(File::open(path).unwrap())).expect("trace opens")
}

/// Opens and fully reads a trace held in memory.
fn read_bytes(bytes: Vec<u8>) -> Result<Vec<Record>, TraceError> {
    TraceReader::new(Cursor::new(bytes)).and_then(|mut r| r.read_all())
}

use common::{frames, rechain};

/// Joins frames (each `len | tag | body | check`, as cut from files) after a
/// preamble, and rechains them.
fn join(preamble: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = preamble.to_vec();
    for p in parts {
        out.extend_from_slice(p);
    }
    rechain(&mut out);
    out
}

/// Writes a trace with the given parts, in-memory.
fn forge(header: &Header, batches: &[&[Record]], footer: &Footer) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), header).unwrap();
    for b in batches {
        w.records(b).unwrap();
    }
    w.finish(footer).unwrap()
}

// ---------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------

#[test]
fn header_and_footer_describe_the_run() {
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "two_agents.toml", 1234, 3);
    let mut r = open(&w.path);

    let h = r.header().clone();
    let file_text = fs::read_to_string(scenario_path("two_agents.toml")).unwrap();
    assert_eq!(h.scenario, file_text, "the header embeds the file as read");
    assert_eq!(h.scenario, w.scenario.text());
    assert_eq!(h.scenario_path, w.scenario.source());
    assert_eq!(h.seed, 1234);
    assert_eq!(h.env, 3);
    assert_eq!(h.crate_version, env!("CARGO_PKG_VERSION"));

    let f = r.footer().clone();
    assert_eq!(f.agents, w.scenario.agent_names());
    let named = |code: u8| f.kinds.iter().any(|(c, _)| *c == code);
    assert_eq!(f.agents, ["sensor", "collector"]);
    assert_eq!(f.channels, w.channels);
    assert_eq!(f.channels, ["env3/telemetry"], "{{env}} expands to env3");
    assert_eq!(f.records, w.summary.trace_records);
    assert_eq!(f.run_digest().to_string(), w.summary.digest);
    assert_eq!(
        f.run_digest(),
        Digest::of_run(f.records_digest, f.payload_digest)
    );

    let records = r.read_all().expect("records check out");
    assert_eq!(records.len() as u64, f.records);
    for x in records.iter().filter(|x| x.event != EventKind::Timer) {
        assert!(
            named(x.kind),
            "the footer names kind {}: {:?}",
            x.kind,
            f.kinds
        );
    }
    let published = records
        .iter()
        .filter(|x| x.event == EventKind::Publish)
        .count() as u64;
    assert_eq!(published, w.summary.published);
}

#[test]
fn file_records_equal_in_memory_records() {
    // The trace target (file, memory, digest only) never changes the run.
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "seed_example.toml", 42, 0);
    let from_file = open(&w.path).read_all().unwrap();
    let s = &w.scenario;
    let mut sim = s.builder(42, 0).trace_in_memory().build().unwrap();
    let summary = s.run_sim(&mut sim).unwrap();
    assert_eq!(from_file, sim.records());
    assert_eq!(summary.digest, w.summary.digest);
    assert_eq!(s.run(42, 0).unwrap().digest, w.summary.digest);
}

#[test]
fn the_same_run_writes_the_same_bytes() {
    // Same scenario, seed and environment: byte-identical files, checks
    // and digests included.
    let (d1, d2) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let a = write_trace(d1.path(), "seed_example.toml", 42, 0);
    let b = write_trace(d2.path(), "seed_example.toml", 42, 0);
    assert_eq!(fs::read(&a.path).unwrap(), fs::read(&b.path).unwrap());
}

#[test]
fn large_traces_are_split_into_chunks() {
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "seed_example.toml", 42, 0);
    let n = w.summary.trace_records as usize;
    assert!(
        n > 2 * CHUNK,
        "seed_example should need several batches ({n})"
    );
    let bytes = fs::read(&w.path).unwrap();
    assert_eq!(&bytes[..8], MAGIC);
    let tags: Vec<u8> = frames(&bytes).iter().map(|f| f.2).collect();
    let batches = n.div_ceil(CHUNK);
    let mut want = vec![1u8];
    want.extend(std::iter::repeat_n(2u8, batches));
    want.push(3);
    assert_eq!(tags, want, "header, {batches} record batches, footer");
    let mut sizes = Vec::new();
    open(&w.path)
        .for_each_batch(|b| {
            sizes.push(b.len());
            Ok(())
        })
        .unwrap();
    assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == CHUNK));
    assert_eq!(sizes.iter().sum::<usize>(), n);
}

#[test]
fn replay_of_a_written_trace_is_identical() {
    let dir = TempDir::new().unwrap();
    for (name, seed) in [("two_agents.toml", 7), ("lossy_jitter.toml", 5)] {
        let w = write_trace(dir.path(), name, seed, 0);
        let c = replay(&mut open(&w.path)).expect("replay runs");
        assert_eq!(c, Comparison::Identical(w.summary.trace_records), "{name}");
    }
}

#[test]
fn replay_detects_a_trace_that_does_not_match_its_header() {
    // Records of seed 7 under a header that claims seed 8: the re-run
    // (seed 8) diverges, and the first divergence is reported.
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "two_agents.toml", 7, 0);
    let mut r = open(&w.path);
    let mut header = r.header().clone();
    let footer = r.footer().clone();
    let records = r.read_all().unwrap();
    header.seed = 8;
    let forged = forge(&header, &[&records], &footer);
    let mut r = TraceReader::new(Cursor::new(forged)).unwrap();
    match replay(&mut r).unwrap() {
        Comparison::Diverged(d) => {
            assert!(d.seq < records.len() as u64);
            assert_ne!(d.left, d.right);
            assert!(d.left.is_some() && d.right.is_some());
        }
        other => panic!("a re-run with another seed matched: {other:?}"),
    }
}

#[test]
fn diff_compares_two_files() {
    let dir = TempDir::new().unwrap();
    let a = write_trace(dir.path(), "two_agents.toml", 7, 0);
    let b = write_trace(dir.path(), "two_agents.toml", 7, 1);
    let c = write_trace(dir.path(), "two_agents.toml", 9, 0);
    let same = diff(&mut open(&a.path), &mut open(&a.path)).unwrap();
    assert_eq!(same, Comparison::Identical(a.summary.trace_records));
    assert!(matches!(
        diff(&mut open(&a.path), &mut open(&c.path)).unwrap(),
        Comparison::Diverged(_)
    ));
    // Another environment: other streams and other channel names.
    assert!(matches!(
        diff(&mut open(&a.path), &mut open(&b.path)).unwrap(),
        Comparison::Diverged(_)
    ));
}

#[test]
fn replay_and_diff_compare_the_deadline_tables() {
    // lossy_jitter marks late state updates against the grid's deadline.
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "lossy_jitter.toml", 7, 0);
    let mut r = open(&w.path);
    let (header, mut footer) = (r.header().clone(), r.footer().clone());
    let records = r.read_all().unwrap();
    assert!(!footer.deadlines.is_empty(), "the run names a deadline");
    footer.deadlines[0].limit_ns += 1;
    let forged = dir.path().join("forged.bin");
    fs::write(&forged, forge(&header, &[&records], &footer)).unwrap();
    for c in [
        replay(&mut open(&forged)).unwrap(),
        diff(&mut open(&w.path), &mut open(&forged)).unwrap(),
    ] {
        match c {
            Comparison::Diverged(d) => {
                assert_eq!(d.what, busbar::replay::Differs::Deadlines);
                assert!(d.left.unwrap().contains("grid.step_deadline"));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        replay(&mut open(&w.path)).unwrap(),
        Comparison::Identical(records.len() as u64)
    );
}

#[test]
fn an_empty_run_still_writes_a_valid_trace() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("empty.toml");
    fs::write(&path, "[simulation]\nname = \"empty\"\nduration = \"1s\"\n").unwrap();
    let s = Scenario::from_file(&path).unwrap();
    let out = dir.path().join("empty.bin");
    let mut sim = s
        .builder(0, 0)
        .trace_to(
            Box::new(BufWriter::new(File::create(&out).unwrap())),
            s.header(0, 0),
        )
        .build()
        .unwrap();
    let summary = s.run_sim(&mut sim).unwrap();
    assert_eq!(summary.trace_records, 0);
    let mut r = open(&out);
    assert_eq!(r.footer().records, 0);
    assert_eq!(r.footer().run_digest().to_string(), summary.digest);
    assert!(r.read_all().unwrap().is_empty());
    assert_eq!(replay(&mut open(&out)).unwrap(), Comparison::Identical(0));
}

// ---------------------------------------------------------------------------
// Damage
// ---------------------------------------------------------------------------

fn good_bytes(dir: &Path) -> Vec<u8> {
    let w = write_trace(dir, "two_agents.toml", 7, 0);
    fs::read(w.path).unwrap()
}

#[test]
fn bad_magic() {
    let dir = TempDir::new().unwrap();
    let bytes = good_bytes(dir.path());
    for i in 0..8 {
        let mut b = bytes.clone();
        b[i] ^= 0x20;
        let e = read_bytes(b).unwrap_err();
        assert!(matches!(e, TraceError::BadMagic), "byte {i}: {e}");
    }
    // A scenario file is not a trace.
    let toml = fs::read(scenario_path("two_agents.toml")).unwrap();
    assert!(matches!(
        read_bytes(toml).unwrap_err(),
        TraceError::BadMagic
    ));
}

#[test]
fn unsupported_version() {
    let dir = TempDir::new().unwrap();
    let bytes = good_bytes(dir.path());
    // Version 1 (postcard-encoded record batches), 2 (no checksums), 3
    // (no router names), 4 (no deadline table) and 5 (no payload frames)
    // are no longer read.
    for v in [0u16, 1, 2, 3, 4, 5, 7, 0xFFFF] {
        let mut b = bytes.clone();
        b[8..10].copy_from_slice(&v.to_le_bytes());
        match read_bytes(b).unwrap_err() {
            TraceError::Version { found } => assert_eq!(found, v),
            e => panic!("version {v}: {e}"),
        }
    }
}

#[test]
fn every_truncation_is_reported_as_truncated() {
    let dir = TempDir::new().unwrap();
    let bytes = good_bytes(dir.path());
    for cut in 0..bytes.len() {
        match TraceReader::new(Cursor::new(bytes[..cut].to_vec())) {
            Err(TraceError::Truncated { offset, .. }) => {
                assert!(offset <= cut as u64, "cut {cut}: offset {offset}");
            }
            Err(e) => panic!("cut at {cut} of {}: {e}", bytes.len()),
            Ok(_) => panic!("cut at {cut} of {} was accepted", bytes.len()),
        }
    }
}

/// Whether `e` names `part`, the frame at byte `at`: a damaged part, or one
/// whose length runs past the end of the file (a cut, or a damaged length).
fn names_part(e: &TraceError, part: Part, at: usize) -> bool {
    match e {
        TraceError::Damaged {
            part: p, offset, ..
        } => *p == part && *offset == at as u64,
        TraceError::Truncated { what, .. } => {
            what.contains(&format!("the {part} at byte offset {at} "))
        }
        _ => false,
    }
}

#[test]
fn malformed_frames_are_damaged_and_forged_ones_corrupt() {
    let dir = TempDir::new().unwrap();
    let bytes = good_bytes(dir.path());
    let fr = frames(&bytes);
    let (header_at, records_at, footer_at) = (fr[0].0, fr[1].0, fr[fr.len() - 1].0);
    let is_damaged = |b: Vec<u8>, part: Part, at: usize, what: &str| {
        let e = read_bytes(b).unwrap_err();
        assert!(names_part(&e, part, at), "{what}: {e}");
        assert!(e.to_string().contains(&part.to_string()), "{what}: {e}");
    };
    // With its checks recomputed, a malformed frame is no longer damage:
    // a writer that is not busbar's made it.
    let is_corrupt = |mut b: Vec<u8>, what: &str| {
        rechain(&mut b);
        let e = read_bytes(b).unwrap_err();
        assert!(matches!(e, TraceError::Corrupt { .. }), "{what}: {e}");
    };

    // A length prefix of 0xFFFFFFFF on the first frame.
    let mut b = bytes.clone();
    b[header_at..header_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    is_damaged(b, Part::Header, header_at, "huge header length");
    // ... and on a record frame.
    let mut b = bytes.clone();
    b[records_at..records_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    is_damaged(b, Part::Batch(1), records_at, "huge record frame length");

    // Unknown tags, and frames out of order: the frame is named for what
    // it is, whatever its tag says.
    for (at, tag, part, what) in [
        (header_at, 2u8, Part::Header, "records before the header"),
        (header_at, 9, Part::Header, "unknown first tag"),
        (records_at, 9, Part::Batch(1), "unknown record tag"),
        (records_at, 1, Part::Batch(1), "a second header"),
        (
            records_at,
            3,
            Part::Batch(1),
            "a batch tagged as the footer",
        ),
        (footer_at, 0, Part::Footer, "unknown footer tag"),
        (footer_at, 2, Part::Footer, "a footer tagged as a batch"),
    ] {
        let mut b = bytes.clone();
        b[at + 4] = tag;
        is_damaged(b.clone(), part, at, what);
        if tag != 2 || at != footer_at {
            // (A footer tagged as a batch and checked again leaves a file
            // without a footer: truncated.)
            is_corrupt(b, what);
        }
    }

    // Bytes after the footer.
    let mut b = bytes.clone();
    b.extend_from_slice(b"trailing");
    let e = read_bytes(b).unwrap_err();
    assert!(
        matches!(e, TraceError::Corrupt { .. }),
        "trailing bytes: {e}"
    );

    // A header body that does not decode (its first field, a string
    // length, claims more bytes than the frame has).
    let mut b = bytes.clone();
    b[header_at + 5] = 0xFF;
    b[header_at + 6] = 0xFF;
    is_damaged(b.clone(), Part::Header, header_at, "undecodable header");
    is_corrupt(b, "undecodable header");
}

#[test]
fn altered_records_fail_the_digest() {
    let dir = TempDir::new().unwrap();
    let mut r = open(&write_trace(dir.path(), "two_agents.toml", 7, 0).path);
    let (header, footer) = (r.header().clone(), r.footer().clone());
    let records = r.read_all().unwrap();
    assert!(records.len() > 10);
    let mismatch = |bytes: Vec<u8>, what: &str| match read_bytes(bytes).unwrap_err() {
        TraceError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, footer.records_digest, "{what}");
            assert_ne!(actual, footer.records_digest, "{what}");
        }
        e => panic!("{what}: {e}"),
    };

    // The forging itself is faithful: unaltered parts read back fine.
    assert_eq!(
        read_bytes(forge(&header, &[&records], &footer)).unwrap(),
        records
    );

    let mut changed = records.clone();
    changed[5].time_ns += 1;
    mismatch(forge(&header, &[&changed], &footer), "one time changed");

    let mut swapped = records.clone();
    swapped.swap(3, 4);
    mismatch(forge(&header, &[&swapped], &footer), "two records swapped");

    mismatch(
        forge(&header, &[&records[..records.len() - 1]], &footer),
        "last record missing",
    );
    mismatch(
        forge(&header, &[&records, &records[..1]], &footer),
        "extra batch",
    );

    // Same records, a footer that claims one more: the count is checked.
    let mut more = footer.clone();
    more.records += 1;
    let e = read_bytes(forge(&header, &[&records], &more)).unwrap_err();
    assert!(matches!(e, TraceError::DigestMismatch { .. }), "{e}");
}

#[test]
fn flips_behind_recomputed_checks_still_fail_decoding_or_the_digest() {
    // Beneath the checksums, the batch encoding is canonical and the
    // records digest is checked: a flip whose checks were recomputed (a
    // faulty writer, not a faulty disk) is still caught.
    let dir = TempDir::new().unwrap();
    let bytes = good_bytes(dir.path());
    let fr = frames(&bytes);
    let (records_at, records_len) = (fr[1].0, fr[1].1);
    let mut seen_corrupt = 0;
    let mut seen_mismatch = 0;
    // Every 17th byte of the records frame body (17 is prime, so the flips
    // land on every field position of the varint-encoded records), and a
    // few bit positions.
    for i in (records_at + 5..records_at + 5 + records_len).step_by(17) {
        for bit in [0x01u8, 0x40, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            rechain(&mut b);
            match read_bytes(b) {
                Err(TraceError::Corrupt { .. }) => seen_corrupt += 1,
                Err(TraceError::DigestMismatch { .. }) => seen_mismatch += 1,
                Err(e) => panic!("byte {i} bit {bit:#x}: unexpected {e}"),
                Ok(_) => panic!("byte {i} bit {bit:#x}: corruption accepted"),
            }
        }
    }
    // Both kinds occur: some flips break the encoding, most only the digest.
    assert!(seen_corrupt > 0 && seen_mismatch > 0);
}

/// A run stopped by a limit still leaves a valid trace, marked as stopped,
/// and replaying it reproduces the stop event for event.
#[test]
fn a_run_stopped_by_a_limit_writes_a_replayable_partial_trace() {
    let text = "[simulation]\nname = \"lim\"\nduration = \"10s\"\n[limits]\nmax_events = 100\n\
                [[agent]]\ntype = \"periodic\"\nname = \"p\"\nchannel = \"c\"\nperiod = \"10ms\"\n\
                [[agent]]\ntype = \"sink\"\nname = \"s\"\nchannels = [\"c\"]\n";
    let scenario = busbar::Scenario::parse(text, "lim.toml", std::path::Path::new(".")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lim.bin");
    let file = std::fs::File::create(&path).unwrap();
    let mut sim = scenario
        .builder(3, 0)
        .trace_to(Box::new(file), scenario.header(3, 0))
        .build()
        .unwrap();
    let err = scenario.run_sim(&mut sim).unwrap_err();
    assert!(err.to_string().contains("max_events"), "{err}");
    let summary = sim.finish().unwrap();
    let mut reader = busbar::trace::TraceReader::new(std::io::BufReader::new(
        std::fs::File::open(&path).unwrap(),
    ))
    .unwrap();
    assert!(
        reader
            .footer()
            .stopped
            .as_deref()
            .unwrap()
            .contains("max_events")
    );
    assert_eq!(reader.footer().records, summary.trace_records);
    assert_eq!(reader.footer().run_digest().to_string(), summary.digest);
    assert_eq!(
        busbar::replay::replay(&mut reader).unwrap(),
        busbar::replay::Comparison::Identical(summary.trace_records)
    );
}

/// Streaming diff and replay find the same first divergence as comparing the
/// whole record lists in memory, also when it lies several batches in.
#[test]
fn streamed_comparisons_agree_with_whole_list_comparison() {
    use busbar::replay::compare;
    use busbar::trace::export::Names;
    let dir = TempDir::new().unwrap();
    // Same scenario, seeds 42 and 43: the runs start alike (timers at fixed
    // times) and part ways once a random draw matters.
    let a = write_trace(dir.path(), "seed_example.toml", 42, 0);
    let b = write_trace(dir.path(), "seed_example.toml", 43, 0);
    let (mut ra, mut rb) = (open(&a.path), open(&b.path));
    let (fa, fb) = (ra.footer().clone(), rb.footer().clone());
    let (la, lb) = (ra.read_all().unwrap(), rb.read_all().unwrap());
    assert!(la.len() > 3 * CHUNK, "several batches: {}", la.len());
    let names = |f: &Footer| -> (Vec<String>, Vec<String>, Vec<(u8, String)>) {
        (f.agents.clone(), f.channels.clone(), f.kinds.clone())
    };
    let ((aa, ac, ak), (ba, bc, bk)) = (names(&fa), names(&fb));
    let na = Names {
        agents: &aa,
        channels: &ac,
        kinds: &ak,
        routers: &[],
        env: 0,
    };
    let nb = Names {
        agents: &ba,
        channels: &bc,
        kinds: &bk,
        routers: &[],
        env: 0,
    };
    let whole = compare(&la, &na, &lb, &nb);
    let streamed = diff(&mut open(&a.path), &mut open(&b.path)).unwrap();
    assert_eq!(streamed, whole);
    assert!(matches!(whole, Comparison::Diverged(_)));

    // Replay of a trace whose header claims another seed diverges exactly
    // where the two seeds' runs part.
    let mut header = open(&a.path).header().clone();
    header.seed = 43;
    let batches: Vec<&[Record]> = la.chunks(CHUNK).collect();
    let forged = forge(&header, &batches, &fa);
    let replayed = replay(&mut TraceReader::new(Cursor::new(forged)).unwrap()).unwrap();
    let (Comparison::Diverged(w), Comparison::Diverged(r)) = (&whole, &replayed) else {
        panic!("both diverge");
    };
    assert_eq!(r.seq, w.seq, "replay: {r:?}\nwhole: {w:?}");
    assert_eq!(r.left, w.left);
    assert_eq!(r.right, w.right);
}

// ---------------------------------------------------------------------------
// The compact record encoding
// ---------------------------------------------------------------------------

fn test_header() -> Header {
    Header {
        crate_version: "test".into(),
        scenario_path: "t.toml".into(),
        base_dir: ".".into(),
        scenario: String::new(),
        seed: 1,
        env: 0,
        payload_limit: None,
    }
}

/// Writes `records` as batches of the given sizes (the rest in one last
/// batch), with a footer whose count and digest are right.
fn write_batches(records: &[Record], sizes: &[usize]) -> Vec<u8> {
    let mut w = TraceWriter::new(Vec::new(), &test_header()).unwrap();
    let mut rest = records;
    for &n in sizes {
        let (batch, tail) = rest.split_at(n.min(rest.len()));
        w.records(batch).unwrap();
        rest = tail;
    }
    w.records(rest).unwrap();
    let mut d = Digester::default();
    d.update(records);
    w.finish(&Footer {
        agents: vec!["a".into()],
        channels: vec!["c".into()],
        kinds: vec![(0, "k".into())],
        records: records.len() as u64,
        records_digest: d.digest(),
        payload_digest: Digest([0; 16]),
        stopped: None,
        routers: Vec::new(),
        deadlines: Vec::new(),
    })
    .unwrap()
}

/// How a generated record's time relates to the previous one.
#[derive(Clone, Debug)]
enum Step {
    Same,
    Small(u64),
    Back(u64),
    Huge,
    Exactly(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Same),
        4 => (1u64..100_000).prop_map(Step::Small),
        1 => (1u64..1_000_000).prop_map(Step::Back),
        1 => Just(Step::Huge),
        1 => prop_oneof![Just(0), Just(u64::MAX), Just(u64::MAX - 1), any::<u64>()]
            .prop_map(Step::Exactly),
    ]
}

fn id32() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 0u32..6,
        1 => Just(NONE),
        1 => Just(NODE_BROKER),
        1 => any::<u32>(),
    ]
}

/// Generated records: ids from small pools so that the encoder's
/// predictions (next id, cached header) hit often, mixed with extremes.
fn records() -> impl Strategy<Value = Vec<Record>> {
    let msg = prop_oneof![
        6 => 0u64..40,
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => any::<u64>(),
    ];
    let node = prop_oneof![
        3 => 0u32..6,
        2 => Just(NODE_BROKER),
        2 => Just(NODE_BROADCAST),
        1 => any::<u32>(),
    ];
    let detail = prop_oneof![
        4 => Just(0u16),
        2 => prop::sample::select(vec![1u16, 4, 6]),
        1 => Just(u16::MAX),
        1 => any::<u16>(),
    ];
    let sent = prop_oneof![
        // A header that is a function of the message id, so that the
        // records of one message agree and can be cached.
        4 => Just(None),
        1 => prop_oneof![Just(0), Just(u64::MAX), any::<u64>()].prop_map(Some),
    ];
    let one = (
        step(),
        prop::sample::select(EventKind::ALL.to_vec()),
        msg,
        (id32(), id32(), node, any::<u8>()),
        detail,
        sent,
        any::<bool>(),
    );
    prop::collection::vec(one, 0..400).prop_map(|v| {
        let mut t = 0u64;
        let mut next_msg = 0u64;
        v.into_iter()
            .map(
                |(step, event, msg, (ch, snd, node, kind), detail, sent, fresh)| {
                    t = match step {
                        Step::Same => t,
                        Step::Small(d) => t.wrapping_add(d),
                        Step::Back(d) => t.wrapping_sub(d),
                        Step::Huge => t.wrapping_add(1 << 62),
                        Step::Exactly(x) => x,
                    };
                    // Publishes mostly take the next id, as a run's do.
                    let msg = if event == EventKind::Publish && fresh {
                        next_msg += 1;
                        next_msg - 1
                    } else {
                        msg
                    };
                    let (channel, sender, kind, sent_ns) = match sent {
                        None => (
                            (msg % 3) as u32,
                            (msg % 5) as u32,
                            (msg % 2) as u8,
                            msg.wrapping_mul(1000),
                        ),
                        Some(s) => (ch, snd, kind, s),
                    };
                    Record {
                        time_ns: t,
                        event,
                        msg,
                        channel,
                        sender,
                        node,
                        kind,
                        detail,
                        sent_ns,
                    }
                },
            )
            .collect()
    })
}

proptest! {
    #![proptest_config(config())]

    /// Whatever the records (times that go back, extreme ids, every event
    /// kind, any detail), what is written reads back exactly and passes the
    /// digest check, however the records are cut into batches.
    #[test]
    fn any_record_sequence_round_trips(
        records in records(),
        sizes in prop::collection::vec(1usize..150, 0..4),
    ) {
        let bytes = write_batches(&records, &sizes);
        let mut r = TraceReader::new(Cursor::new(bytes)).unwrap();
        prop_assert_eq!(r.read_all().unwrap(), records);
    }
}

#[test]
fn versions_1_to_5_are_refused() {
    let bytes = write_batches(&[], &[]);
    assert_eq!(FORMAT_VERSION, 6);
    for v in [1u16, 2, 3, 4, 5] {
        let mut b = bytes.clone();
        b[8..10].copy_from_slice(&v.to_le_bytes());
        let e = read_bytes(b).unwrap_err();
        match e {
            TraceError::Version { found } if found == v => {}
            e => panic!("{e}"),
        }
        assert!(e.to_string().contains("this build reads version 6"), "{e}");
    }
}

#[test]
fn a_run_costs_a_few_bytes_per_record() {
    // A guard against silently losing the compact encoding: seed_example
    // takes about 6 bytes per record (version 1 took about 23).
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "seed_example.toml", 42, 0);
    let bytes = fs::read(&w.path).unwrap();
    let batches: usize = frames(&bytes)
        .iter()
        .filter(|f| f.2 == 2)
        .map(|f| 5 + f.1 + 8)
        .sum();
    let per_record = batches as f64 / w.summary.trace_records as f64;
    assert!(per_record <= 8.0, "{per_record:.2} bytes per record");
}

/// Real records of a run, cut into three batches.
fn three_batches() -> Vec<u8> {
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "two_agents.toml", 7, 0);
    let records = open(&w.path).read_all().unwrap();
    assert!(records.len() > 300, "{}", records.len());
    let bytes = write_batches(&records[..300], &[120, 100]);
    assert_eq!(frames(&bytes).iter().filter(|f| f.2 == 2).count(), 3);
    bytes
}

#[test]
fn every_truncation_of_a_multi_batch_file_is_an_error() {
    let bytes = three_batches();
    for cut in 0..bytes.len() {
        let res = TraceReader::new(Cursor::new(&bytes[..cut])).and_then(|mut r| r.read_all());
        match res {
            Err(TraceError::Truncated { offset, .. }) => {
                assert!(offset <= cut as u64, "cut {cut}: offset {offset}");
            }
            Err(e) => panic!("cut at {cut} of {}: {e}", bytes.len()),
            Ok(_) => panic!("cut at {cut} of {} was accepted", bytes.len()),
        }
    }
}

#[test]
fn every_single_bit_flip_in_a_records_frame_names_its_batch() {
    let bytes = three_batches();
    let mut batch = 0;
    for (at, len, tag) in frames(&bytes) {
        if tag != 2 {
            continue;
        }
        batch += 1;
        // The whole frame: length prefix, tag, body and check.
        for i in at..at + 5 + len + 8 {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                match read_bytes(b) {
                    Err(e) => assert!(
                        names_part(&e, Part::Batch(batch), at),
                        "byte {i} bit {bit}: {e}"
                    ),
                    Ok(_) => panic!("byte {i} bit {bit}: the flip went unnoticed"),
                }
            }
        }
    }
    assert_eq!(batch, 3);
}

/// Replaces the body of the first records frame of `bytes` with `body`,
/// with checks recomputed: the decoder, not the checksum, must reject it.
fn with_first_batch(bytes: &[u8], body: &[u8]) -> Vec<u8> {
    let fr = frames(bytes);
    let (at, len, tag) = fr[1];
    assert_eq!(tag, 2);
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.push(2);
    out.extend_from_slice(body);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&bytes[at + 5 + len + 8..]);
    rechain(&mut out);
    out
}

#[test]
fn hostile_batch_headers_are_rejected() {
    let bytes = three_batches();
    let leb = |mut v: u64| {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for (what, count) in [
        ("count u32::MAX", u64::from(u32::MAX)),
        ("count u64::MAX", u64::MAX),
        ("count CHUNK + 1", CHUNK as u64 + 1),
        ("count CHUNK, few bytes", CHUNK as u64),
        ("count 0", 0),
    ] {
        let mut body = leb(count);
        body.extend_from_slice(&[0x10, 0x00, 0x10, 0x00]);
        cases.push((what, body));
    }
    cases.push(("empty body", Vec::new()));
    cases.push(("overlong count", vec![0x81, 0x80, 0x00, 0x10, 0x00]));
    cases.push((
        "count overflows 64 bits",
        vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
    ));
    cases.push(("unknown event code", vec![1, 0x1F, 0x00]));
    cases.push(("record cut short", vec![1, 0x00]));
    cases.push((
        "stray byte",
        vec![1, 0x10, 0x00, 0x01, 0x01, 0x00, 0x00, 0xAA],
    ));
    for (what, body) in cases {
        match read_bytes(with_first_batch(&bytes, &body)) {
            Err(TraceError::Corrupt { .. }) => {}
            Err(e) => panic!("{what}: {e}"),
            Ok(_) => panic!("{what}: accepted"),
        }
    }
}

// ---------------------------------------------------------------------------
// Kind names
// ---------------------------------------------------------------------------

fn kind_record(event: EventKind, kind: u8) -> Record {
    Record {
        time_ns: 5,
        event,
        msg: 1,
        channel: 0,
        sender: 0,
        node: NODE_BROKER,
        kind,
        detail: 0,
        sent_ns: 2,
    }
}

#[test]
fn records_differ_when_the_names_behind_their_kind_codes_do() {
    use busbar::replay::compare;
    use busbar::trace::export::Names;
    let (agents, channels) = (["a".to_string()], ["c".to_string()]);
    let left = [(0u8, "action".to_string()), (1, "info".to_string())];
    let right = [(0u8, "action".to_string()), (1, "trade".to_string())];
    let names = |kinds| Names {
        agents: &agents,
        channels: &channels,
        kinds,
        routers: &[],
        env: 0,
    };
    let (ln, rn) = (names(&left), names(&right));
    let alike = [
        kind_record(EventKind::Publish, 0),
        kind_record(EventKind::Timer, 1),
    ];
    assert_eq!(
        compare(&alike, &ln, &alike, &rn),
        Comparison::Identical(2),
        "code 0 is `action` on both sides; a timer's kind names nothing"
    );
    let renamed = [
        kind_record(EventKind::Publish, 0),
        kind_record(EventKind::Route, 1),
    ];
    match compare(&renamed, &ln, &renamed, &rn) {
        Comparison::Diverged(d) => {
            assert_eq!(d.seq, 1);
            assert!(d.left.unwrap().contains("kind=info"));
            assert!(d.right.unwrap().contains("kind=trade"));
        }
        c => panic!("{c:?}"),
    }
    // A code only one side names differs too.
    let one = [kind_record(EventKind::Deliver, 1)];
    let rn = names(&right[..1]);
    assert!(matches!(
        compare(&one, &ln, &one, &rn),
        Comparison::Diverged(_)
    ));
}

// ---------------------------------------------------------------------------
// Checksums: every byte of the file is covered
// ---------------------------------------------------------------------------

/// A real run's trace (header with the scenario text, footer with agent,
/// channel and kind names) with its records cut into three batches.
fn real_three_batches() -> Vec<u8> {
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "two_agents.toml", 7, 0);
    let mut r = open(&w.path);
    let (header, footer) = (r.header().clone(), r.footer().clone());
    let records = r.read_all().unwrap();
    assert!(records.len() > 300, "{}", records.len());
    let bytes = forge(
        &header,
        &[&records[..150], &records[150..300], &records[300..]],
        &footer,
    );
    assert_eq!(read_bytes(bytes.clone()).unwrap(), records);
    bytes
}

/// The part each byte of a well-formed trace belongs to, with its frame's
/// offset; `None` for the magic and version.
fn parts(bytes: &[u8]) -> Vec<Option<(Part, usize)>> {
    let mut v = vec![None; 10];
    let mut batch = 0;
    for (at, len, tag) in frames(bytes) {
        let part = match tag {
            1 => Part::Header,
            2 => {
                batch += 1;
                Part::Batch(batch)
            }
            _ => Part::Footer,
        };
        v.extend(std::iter::repeat_n(Some((part, at)), 5 + len + 8));
    }
    v
}

/// The defect: the digest covered the records only, so a flipped bit in
/// the header (scenario text, seed, env) or the footer (agent and channel
/// names) read as a valid trace. Now every single-bit flip anywhere in the
/// file is refused, by opening it or by reading it through, and the error
/// names the part that is damaged.
#[test]
fn corrupted_header_or_footer_is_never_read_as_valid() {
    let bytes = real_three_batches();
    let parts = parts(&bytes);
    let mut seen = [0usize; 4];
    for (i, part) in parts.iter().enumerate() {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let e = match read_bytes(b) {
                Ok(_) => panic!("byte {i} bit {bit} ({part:?}): the flip went unnoticed"),
                Err(e) => e,
            };
            match part {
                None if i < 8 => assert!(matches!(e, TraceError::BadMagic), "byte {i}: {e}"),
                None => assert!(matches!(e, TraceError::Version { .. }), "byte {i}: {e}"),
                Some((p, at)) => {
                    assert!(
                        names_part(&e, *p, *at),
                        "byte {i} bit {bit} in the {p} at {at}: {e}"
                    );
                    seen[match p {
                        Part::Header => 0,
                        Part::Batch(_) => 1,
                        Part::Footer => 2,
                        _ => 3,
                    }] += 1;
                }
            }
        }
    }
    assert!(
        seen[0] > 0 && seen[1] > 0 && seen[2] > 0 && seen[3] == 0,
        "{seen:?}"
    );
}

/// Each flip of the header or footer, given to `busbar export`: exit 2,
/// and the message names the file and the damaged part (one bit per byte;
/// every bit is covered by the test above).
#[test]
fn exporting_a_damaged_header_or_footer_exits_2_naming_file_and_part() {
    let dir = TempDir::new().unwrap();
    let w = write_trace(dir.path(), "two_agents.toml", 7, 0);
    let bytes = fs::read(&w.path).unwrap();
    let fr = frames(&bytes);
    let (header, footer) = (fr[0], fr[fr.len() - 1]);
    let bad = dir.path().join("bad.bin");
    let name = bad.display().to_string();
    let mut checked = 0;
    for (at, len, part) in [
        (header.0, header.1, "header"),
        (footer.0, footer.1, "footer"),
    ] {
        // The length, tag and check, and every 7th byte of the body.
        let body = (at + 5..at + 5 + len).step_by(7);
        let check = at + 5 + len..at + 5 + len + 8;
        for (k, i) in (at..at + 5).chain(body).chain(check).enumerate() {
            let mut b = bytes.clone();
            b[i] ^= 1 << (k % 8);
            fs::write(&bad, &b).unwrap();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_busbar"))
                .args([std::ffi::OsStr::new("export"), bad.as_os_str()])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "byte {i}: {stderr}");
            assert!(
                stderr.contains(&name) && stderr.contains(part),
                "byte {i}: {stderr}"
            );
            assert!(!stderr.contains("panicked"), "byte {i}: {stderr}");
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
}

/// The frames of a trace (each `len | tag | body | check`, as in the file),
/// after its 10-byte preamble.
fn raw_frames(bytes: &[u8]) -> Vec<&[u8]> {
    frames(bytes)
        .into_iter()
        .map(|(at, len, _)| &bytes[at..at + 5 + len + 8])
        .collect()
}

/// Frames removed, repeated or moved — each one intact — are caught: every
/// check is seeded with the check before it, so a frame only matches in its
/// own place.
#[test]
fn frames_swapped_duplicated_or_removed_are_detected() {
    let bytes = real_three_batches();
    let pre = &bytes[..10];
    let f = raw_frames(&bytes);
    assert_eq!(f.len(), 5, "header, three batches, footer");
    let (h, b1, b2, b3, foot) = (f[0], f[1], f[2], f[3], f[4]);
    let cat = |parts: &[&[u8]]| {
        let mut out = pre.to_vec();
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    };
    // The control: put back together unchanged, it reads.
    assert!(read_bytes(cat(&[h, b1, b2, b3, foot])).is_ok());
    // Another run's header (another seed) in front of these records.
    let dir = TempDir::new().unwrap();
    let other = fs::read(write_trace(dir.path(), "two_agents.toml", 8, 0).path).unwrap();
    let other_header = raw_frames(&other)[0];
    let other_footer = *raw_frames(&other).last().unwrap();
    for (what, parts) in [
        ("batches 1 and 2 swapped", vec![h, b2, b1, b3, foot]),
        ("batches 2 and 3 swapped", vec![h, b1, b3, b2, foot]),
        ("batch 2 repeated", vec![h, b1, b2, b2, b3, foot]),
        ("batch 1 removed", vec![h, b2, b3, foot]),
        ("batch 2 removed", vec![h, b1, b3, foot]),
        ("last batch removed", vec![h, b1, b2, foot]),
        ("every batch removed", vec![h, foot]),
        ("footer repeated", vec![h, b1, b2, b3, foot, foot]),
        ("header repeated", vec![h, h, b1, b2, b3, foot]),
        ("another run's header", vec![other_header, b1, b2, b3, foot]),
        ("another run's footer", vec![h, b1, b2, b3, other_footer]),
    ] {
        let res = read_bytes(cat(&parts));
        assert!(res.is_err(), "{what}: read as valid");
        let e = res.unwrap_err();
        assert!(
            matches!(e, TraceError::Damaged { .. } | TraceError::Corrupt { .. }),
            "{what}: {e}"
        );
    }
    // The chain is what catches a foreign header: with the checks
    // recomputed, the records and their digest are intact and the file
    // reads.
    assert!(read_bytes(join(pre, &[other_header, b1, b2, b3, foot])).is_ok());
}

// ---------------------------------------------------------------------------
// The payload digest
// ---------------------------------------------------------------------------

/// Publishes a state of charge every millisecond, ten times.
struct Battery {
    soc: f64,
    left: u32,
    ch: Option<busbar::ChannelId>,
}

impl busbar::Agent for Battery {
    fn on_start(&mut self, ctx: &mut busbar::Context<'_>) {
        self.ch = Some(ctx.channel("soc"));
        ctx.set_timer(busbar::SimDuration::ZERO, 0);
    }
    fn on_timer(&mut self, ctx: &mut busbar::Context<'_>, _tag: u64) {
        let ch = self.ch.expect("set in on_start");
        ctx.publish(
            ch,
            busbar::Recipient::Broadcast,
            busbar::MessageKind::INFO,
            busbar::Payload::values(&[self.soc, 230.0]),
        );
        self.left -= 1;
        if self.left > 0 {
            ctx.set_timer(busbar::SimDuration::from_millis(1), 0);
        }
    }
}

/// Subscribes to the state of charge.
struct Controller;

impl busbar::Agent for Controller {
    fn on_start(&mut self, ctx: &mut busbar::Context<'_>) {
        let ch = ctx.channel("soc");
        ctx.subscribe(ch, busbar::Delivery::Push);
    }
}

/// Runs a battery reporting `soc` to a controller, tracing to `path`.
fn battery_run(path: &Path, soc: f64) -> Summary {
    let mut sim = busbar::SimBuilder::new(3)
        .agent(
            "battery",
            Battery {
                soc,
                left: 10,
                ch: None,
            },
        )
        .agent("controller", Controller)
        .trace_to(
            Box::new(BufWriter::new(File::create(path).unwrap())),
            test_header(),
        )
        .build()
        .unwrap();
    sim.run().unwrap();
    sim.finish().unwrap()
}

/// Two runs that differ only in a value inside their messages have the same
/// records, but not the same digest, and replay and diff say they differ.
#[test]
fn payload_only_difference_changes_the_digest() {
    let dir = TempDir::new().unwrap();
    let (pa, pb) = (dir.path().join("a.bin"), dir.path().join("b.bin"));
    let a = battery_run(&pa, 0.5);
    let b = battery_run(&pb, 0.25);
    assert_eq!(
        battery_run(&dir.path().join("a2.bin"), 0.5).digest,
        a.digest
    );
    let (mut ra, mut rb) = (open(&pa), open(&pb));
    let (fa, fb) = (ra.footer().clone(), rb.footer().clone());
    let records = ra.read_all().unwrap();
    assert_eq!(records, rb.read_all().unwrap(), "the same events");
    assert!(records.len() > 20, "{}", records.len());
    assert_eq!(fa.records_digest, fb.records_digest);
    assert_ne!(fa.payload_digest, fb.payload_digest);
    assert_ne!(a.digest, b.digest, "a value differs: so does the digest");
    assert_eq!(fa.run_digest().to_string(), a.digest);

    // diff: the records match, the payloads do not.
    assert_eq!(
        diff(&mut open(&pa), &mut open(&pa)).unwrap(),
        Comparison::Identical(records.len() as u64)
    );
    match diff(&mut open(&pa), &mut open(&pb)).unwrap() {
        Comparison::Diverged(d) => {
            assert_eq!(d.seq, records.len() as u64);
            assert_eq!(d.what, busbar::replay::Differs::Payloads);
            let (l, r) = (d.left.unwrap(), d.right.unwrap());
            assert!(
                l.contains(&format!("payload digest {}", fa.payload_digest)),
                "{l}"
            );
            assert!(
                r.contains(&format!("payload digest {}", fb.payload_digest)),
                "{r}"
            );
        }
        c => panic!("diff of runs with different payloads: {c:?}"),
    }

    // replay: a trace whose footer records other payloads than its
    // scenario publishes (checks intact: the file is sound, the run is not
    // the one recorded).
    let w = write_trace(dir.path(), "two_agents.toml", 7, 0);
    let mut r = open(&w.path);
    let (header, mut footer) = (r.header().clone(), r.footer().clone());
    let records = r.read_all().unwrap();
    let recorded = footer.payload_digest;
    footer.payload_digest = fb.payload_digest;
    let forged = forge(&header, &[&records], &footer);
    match replay(&mut TraceReader::new(Cursor::new(forged)).unwrap()).unwrap() {
        Comparison::Diverged(d) => {
            assert_eq!(d.seq, records.len() as u64);
            assert!(d.left.unwrap().contains(&fb.payload_digest.to_string()));
            assert!(d.right.unwrap().contains(&recorded.to_string()));
        }
        c => panic!("replay with other payloads: {c:?}"),
    }
}
