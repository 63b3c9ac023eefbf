//! `[simulation] delays = "adversarial"`: every link delay is one end of
//! its model's range, by a seeded coin, so messages overtake each other on
//! unordered links as often as the model allows; the run replays exactly
//! from its trace.

mod common;

use std::path::Path;

use busbar::check::{Checker, Fifo, check_records};
use busbar::{EventKind, Scenario};

/// A sensor publishing every 5 ms to a collector over unordered links of
/// 1 to 20 ms.
fn scenario(delays: &str) -> Scenario {
    let text = format!(
        r#"
[simulation]
name = "adversarial"
seed = 3
duration = "2s"
delays = "{delays}"

[network.default]
latency = {{ dist = "uniform", min = "1ms", max = "20ms" }}
ordering = "unordered"

[[agent]]
type = "periodic"
name = "sensor"
channel = "{{env}}/x"
period = "5ms"

[[agent]]
type = "sink"
name = "collector"
channels = ["{{env}}/x"]
"#
    );
    Scenario::parse(&text, "adversarial.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn records(s: &Scenario, seed: u64) -> Vec<busbar::Record> {
    let mut sim = s.builder(seed, 0).trace_in_memory().build().unwrap();
    s.run_sim(&mut sim).unwrap();
    sim.records()
}

fn reorderings(recs: &[busbar::Record]) -> u64 {
    let c: Vec<Box<dyn Checker>> = vec![Box::new(Fifo::default())];
    check_records(recs, c).remove(0).total
}

#[test]
fn every_delay_is_an_end_of_the_range_and_reorderings_are_more_frequent() {
    let adv = records(&scenario("adversarial"), 3);
    // Two hops of 1 or 20 ms each (no broker processing): 2, 21 or 40 ms.
    let ages: std::collections::BTreeSet<u64> = adv
        .iter()
        .filter(|r| r.event == EventKind::Deliver)
        .map(|r| r.time_ns - r.sent_ns)
        .collect();
    assert_eq!(
        ages.into_iter().collect::<Vec<_>>(),
        [2_000_000, 21_000_000, 40_000_000]
    );
    let sampled = reorderings(&records(&scenario("sampled"), 3));
    let adversarial = reorderings(&adv);
    assert!(
        adversarial > sampled,
        "adversarial {adversarial} reorderings, sampled {sampled}"
    );
}

#[test]
fn an_adversarial_run_is_a_function_of_its_seed_and_replays_identically() {
    let s = scenario("adversarial");
    assert_eq!(records(&s, 4), records(&s, 4));
    assert_ne!(records(&s, 4), records(&s, 5));
    let header = common::assert_replays(&s, 4);
    // The mode is in the header's scenario text, so the replay uses it.
    assert!(header.scenario.contains("delays = \"adversarial\""));
}
