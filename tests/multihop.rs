//! Messages that cross routers: each hop has its own delay, loss and queue,
//! routers show as `forward` events, faults on an inner link drop at that
//! hop, and the trace file names the routers.

use std::path::Path;

use busbar::trace::TraceReader;
use busbar::trace::export::{Format, export};
use busbar::{EventKind, Reason, Record, Scenario, SimTime};

const NET: &str = r#"
[simulation]
name = "multihop"
seed = 9
duration = "200ms"

[network.default]
latency = { dist = "constant", value = "1ms" }

[[network.router]]
name = "gw"

[[network.edge]]
a = "sensor"
b = "gw"

[[network.edge]]
a = "gw"
b = "broker"
class = "wan"

[network.class.wan]
latency = { dist = "constant", value = "10ms" }

[[agent]]
type = "periodic"
name = "sensor"
channel = "t"
period = "50ms"

[[agent]]
type = "sink"
name = "collector"
channels = ["t"]
"#;

fn run(extra: &str) -> Vec<Record> {
    let text = format!("{NET}\n{extra}");
    let sc = Scenario::parse(&text, "m.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(9, 0).trace_in_memory().build().unwrap();
    sim.run_until(SimTime::ZERO + sc.spec().simulation.duration)
        .unwrap();
    sim.records()
}

#[test]
fn a_message_crosses_each_hop_with_its_own_delay() {
    let rec = run("");
    let first: Vec<(EventKind, u64)> = rec
        .iter()
        .filter(|r| r.msg == 0 && r.event != EventKind::Timer)
        .map(|r| (r.event, r.time_ns / 1_000_000))
        .collect();
    // 1 ms to the router, 10 ms over the WAN to the broker, 1 ms down to
    // the collector (which keeps its star link).
    assert_eq!(
        first,
        [
            (EventKind::Publish, 0),
            (EventKind::Forward, 1),
            (EventKind::Route, 11),
            (EventKind::Deliver, 12),
        ]
    );
    let fwd = rec.iter().find(|r| r.event == EventKind::Forward).unwrap();
    assert_eq!(fwd.node, busbar::trace::NODE_ROUTER_BASE, "router 0");
}

#[test]
fn a_fault_on_the_inner_link_drops_at_that_hop() {
    let rec = run(
        "[[fault]]\nkind = \"link_down\"\nfrom = \"gw\"\nto = \"broker\"\nat = \"0ms\"\nuntil = \"60ms\"\n",
    );
    let drops: Vec<(u64, u16, u32)> = rec
        .iter()
        .filter(|r| r.event == EventKind::Drop)
        .map(|r| (r.time_ns / 1_000_000, r.detail, r.node))
        .collect();
    // Published at 0 and 50 ms, forwarded at 1 and 51: the WAN link is down.
    let broker = busbar::trace::NODE_BROKER;
    assert_eq!(
        drops,
        [
            (1, Reason::LinkDown as u16, broker),
            (51, Reason::LinkDown as u16, broker)
        ]
    );
    // The one published at 100 ms gets through.
    assert!(
        rec.iter()
            .any(|r| r.event == EventKind::Deliver && r.msg == 2)
    );
}

#[test]
fn a_lossy_inner_hop_loses_only_there() {
    let rec = run("[[network.link]]\nfrom = \"gw\"\nto = \"broker\"\nloss = 1.0\n");
    assert!(rec.iter().filter(|r| r.event == EventKind::Forward).count() >= 4);
    assert_eq!(
        rec.iter().filter(|r| r.event == EventKind::Route).count(),
        0
    );
    assert!(
        rec.iter()
            .filter(|r| r.event == EventKind::Drop)
            .all(|r| r.detail == Reason::Loss as u16 && r.node == busbar::trace::NODE_BROKER)
    );
}

#[test]
fn the_trace_file_names_the_router() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("m.bbt");
    let sc = Scenario::parse(NET, "m.toml", Path::new(".")).unwrap();
    let header = busbar::trace::Header {
        crate_version: "test".into(),
        scenario_path: "m.toml".into(),
        base_dir: ".".into(),
        scenario: NET.into(),
        seed: 9,
        env: 0,
        payload_limit: None,
    };
    let file = std::fs::File::create(&path).unwrap();
    let mut sim = sc
        .builder(9, 0)
        .trace_to(Box::new(std::io::BufWriter::new(file)), header)
        .build()
        .unwrap();
    sim.run_until(SimTime::ZERO + sc.spec().simulation.duration)
        .unwrap();
    sim.finish().unwrap();
    let mut reader = TraceReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(reader.footer().routers, ["gw"]);
    let mut csv = Vec::new();
    export(&mut reader, Format::Csv, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let row = csv.lines().find(|l| l.contains(",forward,")).unwrap();
    assert!(row.contains(",sensor,gw,"), "{row}");
}

#[test]
fn the_feeder_scenario_replays_with_every_network_feature() {
    let bin = env!("CARGO_BIN_EXE_busbar");
    let dir = tempfile::TempDir::new().unwrap();
    let trace = dir.path().join("f.bbt");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/feeder_lte_plc.toml");
    let run = std::process::Command::new(bin)
        .args([
            "run",
            scenario.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let replay = std::process::Command::new(bin)
        .args(["replay", trace.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );
    let csv = std::process::Command::new(bin)
        .args(["export", trace.to_str().unwrap(), "--format", "csv"])
        .output()
        .unwrap();
    let csv = String::from_utf8(csv.stdout).unwrap();
    for needle in [
        ",forward,",
        ",duplicate,",
        "partition start",
        "flap start",
        "broker_down end",
        "crash start",
        ",corrupt",
        ",link_down",
    ] {
        assert!(csv.contains(needle), "no {needle:?} in the export");
    }
}
