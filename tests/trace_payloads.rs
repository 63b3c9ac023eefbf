//! Payloads kept in the trace (`[simulation] trace_payloads`, format
//! version 6): written with every publish, cut to the limit, read back by
//! the cursor, exported in JSON Lines and shown by `busbar show`; a file
//! whose payload frames do not match its records is refused.

use std::fs::File;
use std::io::{BufWriter, Cursor};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use busbar::message::Payload;
use busbar::scenario::Override;
use busbar::trace::{
    KeptPayload, PayloadDigester, Record, TraceError, TraceReader, TraceWriter, export,
};
use busbar::{EventKind, Scenario, SimBuilder};
use tempfile::TempDir;

mod common;
use common::{frames, rechain};

const TAG_PAYLOADS: u8 = 4;

fn scenario(name: &str, limit: Option<u32>) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let sets: Vec<Override> = limit
        .map(|l| format!("simulation.trace_payloads={l}").parse().unwrap())
        .into_iter()
        .collect();
    Scenario::from_file_with(&path, &sets).expect("shipped scenario loads")
}

/// Runs `name` with a payload limit into a trace file; its bytes.
fn trace_bytes(dir: &Path, name: &str, limit: Option<u32>) -> (Vec<u8>, busbar::Summary) {
    let sc = scenario(name, limit);
    let path = dir.join(format!("{name}.{limit:?}.bbt"));
    let file = File::create(&path).unwrap();
    let seed = sc.seed();
    let mut sim = sc
        .builder(seed, 0)
        .trace_to(Box::new(BufWriter::new(file)), sc.header(seed, 0))
        .build()
        .unwrap();
    let summary = sc.run_sim(&mut sim).unwrap();
    (std::fs::read(&path).unwrap(), summary)
}

/// Every record and every kept payload of a trace, through the cursor.
fn read_with_payloads(bytes: Vec<u8>) -> Result<(Vec<Record>, Vec<KeptPayload>), TraceError> {
    let mut r = TraceReader::new(Cursor::new(bytes))?;
    let mut c = r.cursor();
    let (mut records, mut kept) = (Vec::new(), Vec::new());
    while let Some((batch, k)) = c.next_batch_with_payloads()? {
        records.extend_from_slice(batch);
        kept.extend_from_slice(k);
    }
    Ok((records, kept))
}

#[test]
fn every_publish_keeps_its_payload_and_they_rehash_to_the_footer_digest() {
    let dir = TempDir::new().unwrap();
    let (bytes, summary) = trace_bytes(dir.path(), "seed_example.toml", Some(65536));
    let footer = TraceReader::new(Cursor::new(bytes.clone()))
        .unwrap()
        .footer()
        .clone();
    let (records, kept) = read_with_payloads(bytes).unwrap();
    let publishes: Vec<u64> = records
        .iter()
        .filter(|r| r.event == EventKind::Publish)
        .map(|r| r.msg)
        .collect();
    assert_eq!(publishes.len() as u64, summary.published);
    assert_eq!(kept.iter().map(|k| k.msg).collect::<Vec<_>>(), publishes);
    assert!(kept.iter().all(|k| !k.truncated()));
    // seed_example publishes no replies and builds every payload with
    // Payload::values, so the kept payloads, hashed again in order, must
    // give the payload digest the run computed from the real ones.
    let mut d = PayloadDigester::default();
    for k in &kept {
        d.update(&k.payload);
    }
    assert_eq!(d.digest(), footer.payload_digest);
}

#[test]
fn keeping_payloads_changes_neither_the_run_nor_its_records() {
    let dir = TempDir::new().unwrap();
    let (with, s1) = trace_bytes(dir.path(), "seed_example.toml", Some(24));
    let (without, s0) = trace_bytes(dir.path(), "seed_example.toml", None);
    assert_eq!(s1.digest, s0.digest);
    assert!(!frames(&without).iter().any(|f| f.2 == TAG_PAYLOADS));
    assert!(frames(&with).iter().any(|f| f.2 == TAG_PAYLOADS));
    let (r1, _) = read_with_payloads(with).unwrap();
    let (r0, k0) = read_with_payloads(without).unwrap();
    assert_eq!(r1, r0);
    assert!(k0.is_empty());
}

#[test]
fn payloads_over_the_limit_are_cut_and_say_so() {
    let dir = TempDir::new().unwrap();
    let (bytes, _) = trace_bytes(dir.path(), "seed_example.toml", Some(24));
    let (_, kept) = read_with_payloads(bytes).unwrap();
    let cut: Vec<&KeptPayload> = kept.iter().filter(|k| k.truncated()).collect();
    // network_state carries 1 + 6 values per microgrid: more than 3 floats.
    assert!(!cut.is_empty());
    for k in &kept {
        assert!(k.payload.wire_bytes() <= 24, "{k:?}");
        assert_eq!(k.truncated(), k.wire_bytes > 24, "{k:?}");
    }
    assert!(cut.iter().all(|k| k.payload.as_f64s().len() == 3));
}

#[test]
fn the_file_and_the_memory_target_keep_the_same_payloads() {
    let dir = TempDir::new().unwrap();
    let (bytes, _) = trace_bytes(dir.path(), "two_agents.toml", Some(12));
    let (_, from_file) = read_with_payloads(bytes).unwrap();
    let sc = scenario("two_agents.toml", Some(12));
    let mut sim = sc.builder(sc.seed(), 0).trace_in_memory().build().unwrap();
    sc.run_sim(&mut sim).unwrap();
    let in_memory = sim.payloads();
    assert!(!in_memory.is_empty());
    assert_eq!(in_memory, from_file);
}

#[test]
fn a_limit_out_of_range_names_the_key() {
    for bad in [0u32, 65537] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/two_agents.toml");
        let set: Override = format!("simulation.trace_payloads={bad}").parse().unwrap();
        let e = Scenario::from_file_with(&path, &[set])
            .unwrap_err()
            .to_string();
        assert!(e.contains("simulation.trace_payloads"), "{e}");
        assert!(e.contains("1..=65536"), "{e}");
    }
    let e = SimBuilder::new(0)
        .keep_payloads(Some(0))
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("trace_payloads"), "{e}");
}

fn header(limit: Option<u32>) -> busbar::trace::Header {
    busbar::trace::Header {
        crate_version: "test".into(),
        scenario_path: "x.toml".into(),
        base_dir: ".".into(),
        scenario: String::new(),
        seed: 1,
        env: 0,
        payload_limit: limit,
    }
}

fn publish(msg: u64) -> Record {
    Record {
        time_ns: msg,
        event: EventKind::Publish,
        kind: 5,
        detail: 0,
        channel: 0,
        msg,
        sender: 0,
        node: 1,
        sent_ns: msg,
    }
}

fn footer(records: &[Record]) -> busbar::trace::Footer {
    let mut d = busbar::trace::Digester::default();
    d.update(records);
    busbar::trace::Footer {
        agents: vec!["a".into()],
        channels: vec!["c".into()],
        kinds: vec![],
        records: records.len() as u64,
        records_digest: d.digest(),
        payload_digest: PayloadDigester::default().digest(),
        stopped: None,
        routers: vec![],
        deadlines: vec![],
    }
}

/// A small trace that keeps payloads: three publishes, one a text.
fn small(limit: u32) -> Vec<u8> {
    let records = [publish(0), publish(1), publish(2)];
    let payloads = [
        (0, Payload::values(&[1.0, 2.0])),
        (1, Payload::Text(Arc::from("hello"))),
        (2, Payload::Empty),
    ];
    let mut w = TraceWriter::new(Vec::new(), &header(Some(limit))).unwrap();
    w.records_with_payloads(&records, &payloads).unwrap();
    w.finish(&footer(&records)).unwrap()
}

#[test]
fn the_writer_refuses_payloads_that_do_not_match_the_publishes() {
    let records = [publish(0), publish(1)];
    let p = |m| (m, Payload::values(&[1.0]));
    let mut w = TraceWriter::new(Vec::new(), &header(Some(16))).unwrap();
    assert!(w.records_with_payloads(&records, &[p(0)]).is_err());
    assert!(w.records_with_payloads(&records, &[p(0), p(2)]).is_err());
    assert!(
        w.records_with_payloads(&records, &[p(0), p(1), p(2)])
            .is_err()
    );
    assert!(w.records(&records).is_err(), "publishes without payloads");
    let mut w = TraceWriter::new(Vec::new(), &header(None)).unwrap();
    assert!(w.records_with_payloads(&records, &[p(0), p(1)]).is_err());
    assert!(TraceWriter::new(Vec::new(), &header(Some(0))).is_err());
}

#[test]
fn payload_frames_that_do_not_match_their_batch_are_refused() {
    let good = small(4);
    let (_, kept) = read_with_payloads(good.clone()).unwrap();
    assert_eq!(kept[1].payload.as_text(), Some("hell"));
    assert_eq!(kept[1].wire_bytes, 5);
    let fr = frames(&good);
    let (p_at, p_len, tag) = fr[1];
    assert_eq!(tag, TAG_PAYLOADS);
    let corrupt = |b: Vec<u8>| match read_with_payloads(b) {
        Err(TraceError::Corrupt { .. }) => {}
        other => panic!("{other:?}"),
    };
    // The payload frame removed: publishes without their payloads.
    let mut b = good[..p_at].to_vec();
    b.extend_from_slice(&good[p_at + 5 + p_len + 8..]);
    rechain(&mut b);
    corrupt(b);
    // Its first id moved to another message.
    let mut b = good.clone();
    b[p_at + 6] = 9;
    rechain(&mut b);
    corrupt(b);
    // The header says no payloads are kept (same length: Some(4) is 2
    // bytes of postcard, None is 1, so rewrite the header frame whole).
    let mut w = TraceWriter::new(Vec::new(), &header(None)).unwrap();
    w.records(&[publish(0), publish(1), publish(2)]).unwrap();
    let plain = w
        .finish(&footer(&[publish(0), publish(1), publish(2)]))
        .unwrap();
    let pf = frames(&plain);
    let mut b = plain[..pf[1].0].to_vec();
    b.extend_from_slice(&good[p_at..p_at + 5 + p_len + 8]);
    b.extend_from_slice(&plain[pf[1].0..]);
    rechain(&mut b);
    corrupt(b);
    // A flipped bit anywhere in the frame, without rechaining, is damage
    // to "payloads of records batch 1".
    let mut b = good.clone();
    b[p_at + 7] ^= 0x10;
    match read_with_payloads(b) {
        Err(TraceError::Damaged { part, .. }) => {
            assert_eq!(part.to_string(), "payloads of records batch 1")
        }
        other => panic!("{other:?}"),
    }
    // Every cut is an error, never a panic.
    for cut in 0..good.len() {
        assert!(read_with_payloads(good[..cut].to_vec()).is_err());
    }
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

fn busbar() -> Command {
    Command::new(env!("CARGO_BIN_EXE_busbar"))
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

#[test]
fn cli_keeps_exports_and_shows_payloads() {
    let dir = TempDir::new().unwrap();
    let t = dir.path().join("t.bbt");
    let out = busbar()
        .args(["run", shipped("seed_example.toml").to_str().unwrap()])
        .args(["--trace", t.to_str().unwrap(), "--trace-payloads", "40"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = busbar()
        .args(["export", t.to_str().unwrap(), "--format", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut publishes = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let has = v.get("payload").is_some();
        assert_eq!(has, v["event"] == "publish", "{line}");
        if v["event"] == "publish" {
            publishes += 1;
            let p = &v["payload"];
            assert_eq!(p["type"], "floats", "{line}");
            let n = p["values"].as_array().unwrap().len() as u64;
            let bytes = p["bytes"].as_u64().unwrap();
            assert_eq!(p["truncated"], bytes > 40, "{line}");
            assert_eq!(n, (bytes / 8).min(5), "{line}");
        }
        if v["kind"] == "action" && v["event"] == "publish" {
            // [k, price]: the step number first.
            assert_eq!(p_step(&v), v["step"].as_f64().unwrap(), "{line}");
        }
    }
    assert!(publishes > 0);
    let out = busbar()
        .args(["show", t.to_str().unwrap(), "--msg", "0"])
        .output()
        .unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(shown.contains("payload: [0.0, "), "{shown}");
    // Without --trace the flag is a usage error.
    let out = busbar()
        .args(["run", shipped("two_agents.toml").to_str().unwrap()])
        .args(["--trace-payloads", "40"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn p_step(v: &serde_json::Value) -> f64 {
    v["payload"]["values"][0].as_f64().unwrap()
}

#[test]
fn export_of_a_trace_without_payloads_has_no_payload_field() {
    let dir = TempDir::new().unwrap();
    let (bytes, _) = trace_bytes(dir.path(), "two_agents.toml", None);
    let mut r = TraceReader::new(Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    export::export(&mut r, export::Format::Jsonl, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(!text.is_empty() && !text.contains("\"payload\""));
}
