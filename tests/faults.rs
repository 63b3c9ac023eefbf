//! Faults from a scenario: each starts and ends at its time, shows in the
//! trace, and drops exactly the messages that meet it, with its reason.

use std::path::Path;

use busbar::network::FaultKind;
use busbar::{EventKind, Reason, Record, Scenario, SimTime};

const BASE: &str = r#"
[simulation]
name = "faults"
seed = 3
duration = "1s"

[network.default]
latency = { dist = "constant", value = "1ms" }

[[agent]]
type = "periodic"
name = "sensor"
channel = "t"
period = "10ms"

[[agent]]
type = "sink"
name = "collector"
channels = ["t"]
"#;

fn run(faults: &str) -> Vec<Record> {
    run_text(&format!("{BASE}\n{faults}"))
}

fn run_text(text: &str) -> Vec<Record> {
    let sc = Scenario::parse(text, "f.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(3, 0).trace_in_memory().build().unwrap();
    sim.run_until(SimTime::ZERO + sc.spec().simulation.duration)
        .unwrap();
    sim.records()
}

fn ms(r: &Record) -> u64 {
    r.time_ns / 1_000_000
}

fn drops(records: &[Record]) -> Vec<(u64, Reason)> {
    records
        .iter()
        .filter(|r| r.event == EventKind::Drop)
        .map(|r| (r.time_ns, Reason::from_code(r.detail).unwrap()))
        .collect()
}

fn faults(records: &[Record]) -> Vec<(u64, FaultKind, bool)> {
    records
        .iter()
        .filter(|r| r.event == EventKind::Fault)
        .map(|r| {
            let (k, start) = FaultKind::from_detail(r.detail).unwrap();
            (ms(r), k, start)
        })
        .collect()
}

#[test]
fn a_link_down_window_drops_what_is_sent_on_it_and_nothing_else() {
    let rec = run(r#"
[[fault]]
kind = "link_down"
from = "sensor"
to = "broker"
at = "200ms"
until = "400ms"
"#);
    assert_eq!(
        faults(&rec),
        [
            (200, FaultKind::LinkDown, true),
            (400, FaultKind::LinkDown, false)
        ]
    );
    let d = drops(&rec);
    // Publishes at 200, 210, ..., 390 ms: 20 messages.
    assert_eq!(d.len(), 20, "{d:?}");
    assert!(
        d.iter()
            .all(|&(t, r)| r == Reason::LinkDown && (200_000_000..400_000_000).contains(&t))
    );
    let delivered = rec.iter().filter(|r| r.event == EventKind::Deliver).count();
    let published = rec.iter().filter(|r| r.event == EventKind::Publish).count();
    assert_eq!(
        published,
        delivered + d.len() + 1,
        "one still in flight at 1 s"
    );
}

#[test]
fn a_message_in_flight_when_its_link_goes_down_is_dropped_on_arrival() {
    let rec = run(r#"
[[fault]]
kind = "link_down"
from = "broker"
to = "collector"
at = "100500us"
until = "101500us"
"#);
    // The message published at 100 ms reaches the broker at 101 ms, while
    // the downlink is down: its copy is dropped as it is sent.
    let d = drops(&rec);
    assert_eq!(d, [(101_000_000, Reason::LinkDown)]);
    let rec = run(r#"
[[fault]]
kind = "link_down"
from = "broker"
to = "collector"
at = "101500us"
until = "101600us"
"#);
    // Sent at 101 ms, on the link during the window, arriving at 102 ms
    // after it ended: it got through. Arrival is checked at arrival only.
    assert!(drops(&rec).is_empty());
    let rec = run(r#"
[[fault]]
kind = "link_down"
from = "broker"
to = "collector"
at = "101500us"
until = "102500us"
"#);
    assert_eq!(drops(&rec), [(102_000_000, Reason::LinkDown)]);
}

#[test]
fn partitions_broker_outages_and_crashes_drop_with_their_reasons() {
    let rec = run(r#"
[[fault]]
kind = "partition"
a = "sensor"
b = "collector"
at = "100ms"
until = "150ms"

[[fault]]
kind = "broker_down"
at = "300ms"
until = "350ms"

[[fault]]
kind = "crash"
agent = "collector"
at = "500ms"
restart = "550ms"
"#);
    let d = drops(&rec);
    let within = |r: Reason, lo: u64, hi: u64| {
        d.iter()
            .filter(|&&(t, x)| x == r && (lo * 1_000_000..hi * 1_000_000).contains(&t))
            .count()
    };
    assert_eq!(within(Reason::Partition, 100, 151), 5);
    assert_eq!(within(Reason::BrokerDown, 300, 351), 5);
    assert_eq!(within(Reason::Crashed, 500, 551), 5);
    assert_eq!(d.len(), 15, "{d:?}");
    let crash: Vec<_> = rec
        .iter()
        .filter(|r| r.event == EventKind::Fault && r.detail / 2 == FaultKind::Crash as u16)
        .map(|r| (ms(r), r.node))
        .collect();
    assert_eq!(crash, [(500, 1), (550, 1)], "the collector is agent 1");
}

#[test]
fn a_crashed_sender_stops_publishing_and_its_old_timers_never_fire() {
    let rec = run(r#"
[[fault]]
kind = "crash"
agent = "sensor"
at = "95ms"
restart = "205ms"
"#);
    let publishes: Vec<u64> = rec
        .iter()
        .filter(|r| r.event == EventKind::Publish)
        .map(ms)
        .collect();
    // 0..90 ms before; the timer due at 100 ms died with the crash; the
    // restart runs on_start again, which publishes at 205 ms and every 10 ms.
    assert_eq!(&publishes[..10], &[0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
    assert_eq!(publishes[10], 205);
    assert!(
        publishes.windows(2).all(|w| w[0] != w[1]),
        "no doubled timers"
    );
}

#[test]
fn a_degradation_slows_and_loses() {
    let rec = run(r#"
[[fault]]
kind = "degrade"
from = "sensor"
to = "broker"
latency_factor = 5.0
extra_loss = 1.0
at = "0ms"
until = "100ms"

[[fault]]
kind = "degrade"
from = "broker"
to = "*"
latency_factor = 5.0
at = "100ms"
"#);
    let d = drops(&rec);
    assert_eq!(d.len(), 10);
    assert!(d.iter().all(|&(t, r)| r == Reason::Loss && t < 100_000_000));
    // After 100 ms: 1 ms up, 5 ms down.
    let first_late = rec
        .iter()
        .find(|r| r.event == EventKind::Deliver && r.time_ns > 100_000_000)
        .unwrap();
    assert_eq!(first_late.time_ns - first_late.sent_ns, 6_000_000);
}

#[test]
fn random_link_failures_follow_their_means_and_the_seed() {
    let spec = r#"
[[fault]]
kind = "flap"
from = "sensor"
to = "broker"
mtbf = "50ms"
mttr = "20ms"
"#;
    let rec = run(spec);
    let f = faults(&rec);
    assert!(f.len() > 10, "{f:?}");
    // Starts alternate with ends, beginning with a failure.
    assert!(
        f.iter()
            .enumerate()
            .all(|(i, &(_, k, s))| k == FaultKind::Flap && s == (i % 2 == 0))
    );
    // Down about mttr / (mtbf + mttr) of the time: 2/7 of the messages lost.
    let lost = drops(&rec).len() as f64 / 100.0;
    assert!((0.1..0.5).contains(&lost), "{lost}");
    assert_eq!(rec, run(spec), "same seed, same failures");
}

#[test]
fn fault_errors_name_their_keys() {
    let bad = r#"
[[fault]]
kind = "link_down"
from = "ghost"
to = "broker"
at = "2s"
until = "1s"

[[fault]]
kind = "crash"
agent = "broker"
at = "1s"

[[fault]]
kind = "flap"
from = "sensor"
to = "collector"
mtbf = "0s"
mttr = "1s"
"#;
    let text = format!("{BASE}\n{bad}");
    let err = Scenario::parse(&text, "f.toml", Path::new(".")).unwrap_err();
    let msg = err.to_string();
    for key in [
        "fault[0].until",
        "fault[0].from",
        "fault[1].agent",
        "fault[2].mtbf",
        "fault[2].to",
    ] {
        assert!(msg.contains(key), "{key} missing from: {msg}");
    }
}

#[test]
fn a_crash_that_loses_state_resets_the_agent_and_one_that_keeps_it_does_not() {
    // The sensor publishes 5 readings at most; it crashes after 3.
    let published = |state: &str| {
        let text = format!(
            "{}\n[[fault]]\nkind = \"crash\"\nagent = \"sensor\"\nat = \"25ms\"\n\
             restart = \"100ms\"\nstate = \"{state}\"\n",
            BASE.replace("period = \"10ms\"", "period = \"10ms\"\ncount = 5")
        );
        run_text(&text)
            .iter()
            .filter(|r| r.event == EventKind::Publish)
            .count()
    };
    // Lost: it forgot its count and sends 5 more after the restart.
    assert_eq!(published("lost"), 3 + 5);
    // Kept: it remembers having sent 3 and sends the last 2.
    assert_eq!(published("kept"), 5);
}
