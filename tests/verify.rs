//! Ordering properties checked over real runs (`busbar::check`) and from
//! the command line (`busbar verify`): a property that the settings
//! guarantee holds, one they do not is found violated, with its events.

use std::path::Path;
use std::process::Command;

use busbar::Scenario;
use busbar::check::{Checker, Report, check_records, property};
use tempfile::TempDir;

/// A sensor publishing every 5 ms to a collector, over links of
/// `ordering` with jitter well above the period.
fn scenario(ordering: &str, loss: f64, qos: &str) -> String {
    format!(
        r##"
[simulation]
name = "order"
seed = 3
duration = "2s"

[network.default]
latency = {{ dist = "uniform", min = "1ms", max = "30ms" }}
ordering = "{ordering}"
loss = {loss}

[[broker.channel]]
topic = "#"
qos = "{qos}"
ack_timeout = "50ms"

[[agent]]
type = "periodic"
name = "sensor"
channel = "{{env}}/telemetry"
period = "5ms"

[[agent]]
type = "sink"
name = "collector"
channels = ["{{env}}/telemetry"]
"##
    )
}

fn check(text: &str, properties: &[&str]) -> Vec<Report> {
    let s = Scenario::parse(text, "order.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = s.builder(s.seed(), 0).trace_in_memory().build().unwrap();
    s.run_sim(&mut sim).unwrap();
    let records = sim.records();
    let header = s.header(s.seed(), 0);
    let checkers: Vec<Box<dyn Checker>> = properties
        .iter()
        .map(|p| property(p, &header, &sim.agent_names()).unwrap())
        .collect();
    check_records(&records, checkers)
}

#[test]
fn fifo_links_keep_fifo_and_unordered_ones_break_it() {
    let fifo = check(
        &scenario("fifo", 0.0, "at_most_once"),
        &["fifo", "no_stale", "causal"],
    );
    for r in &fifo {
        assert!(r.holds(), "{r}: {:?}", r.violations.first());
        assert!(r.checked > 300, "{r}");
    }
    let unordered = check(
        &scenario("unordered", 0.0, "at_most_once"),
        &["fifo", "no_stale"],
    );
    for r in &unordered {
        assert!(!r.holds(), "{r}");
        let v = &r.violations[0];
        assert_eq!(v.events.len(), 2);
        // The later-published message arrived first.
        assert!(v.events[0].record.msg > v.events[1].record.msg, "{v:?}");
        assert!(v.events[0].seq < v.events[1].seq);
    }
}

#[test]
fn retries_over_a_lossy_link_deliver_twice_unless_exactly_once() {
    let once = |qos: &str| check(&scenario("fifo", 0.2, qos), &["exactly_once"]).remove(0);
    let at_least = once("at_least_once");
    assert!(!at_least.holds(), "{at_least}");
    let e = &at_least.violations[0].events;
    assert_eq!(e[0].record.msg, e[1].record.msg);
    assert_eq!(e[0].record.node, e[1].record.node);
    assert!(once("exactly_once").holds());
}

#[test]
fn max_age_is_the_latency_bound() {
    let r = check(
        &scenario("fifo", 0.0, "at_most_once"),
        &["max_age=62ms", "max_age=20ms"],
    );
    // Two hops of at most 30 ms, plus the broker's processing.
    assert!(r[0].holds(), "{}", r[0]);
    assert!(!r[1].holds(), "{}", r[1]);
}

#[test]
fn verify_from_the_command_line() {
    let dir = TempDir::new().unwrap();
    let toml = dir.path().join("order.toml");
    std::fs::write(&toml, scenario("unordered", 0.0, "at_most_once")).unwrap();
    let trace = dir.path().join("t.bbt");
    let bin = env!("CARGO_BIN_EXE_busbar");
    let ok = Command::new(bin)
        .args([
            "run",
            toml.to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let verify = |props: &[&str]| {
        let mut c = Command::new(bin);
        c.args(["verify", trace.to_str().unwrap(), "--json"]);
        for p in props {
            c.args(["--property", p]);
        }
        c.output().unwrap()
    };
    let out = verify(&["exactly_once"]);
    assert_eq!(out.status.code(), Some(0));
    let out = verify(&["exactly_once", "fifo"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["holds"], true);
    assert_eq!(v[1]["property"], "fifo");
    let first = &v[1]["violations"][0]["events"][1];
    assert_eq!(first["event"], "deliver");
    assert_eq!(first["recipient"], "collector");
    let out = verify(&["deadline"]);
    assert_eq!(out.status.code(), Some(2), "no grid: refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("grid scenario"));
    let out = verify(&["fifoo"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_deadline_property_agrees_with_the_grids_own_count() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed_example.toml");
    let dir = TempDir::new().unwrap();
    let trace = dir.path().join("s.bbt");
    let bin = env!("CARGO_BIN_EXE_busbar");
    let run = Command::new(bin)
        .args(["run", path.to_str().unwrap(), "--json", "--trace"])
        .arg(&trace)
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let misses = summary["outcomes"]["grid.deadline_misses"]
        .as_f64()
        .unwrap();
    let out = Command::new(bin)
        .args([
            "verify",
            trace.to_str().unwrap(),
            "--json",
            "--property",
            "deadline",
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = v[0]["total"].as_f64().unwrap();
    // The grid counts by the step number in the payload, the property by
    // the send time: they agree on seed_example.
    assert!(misses > 0.0);
    assert_eq!(total, misses, "{}", v[0]);
}
