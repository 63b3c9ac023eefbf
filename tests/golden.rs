//! Golden digests of the shipped scenarios: they pin determinism. Any change
//! that alters a single event of a shipped scenario (a different draw, an
//! extra record, a reordered tie) or a single value an agent published
//! changes its digest and fails here.
//!
//! When a change is *meant* to alter runs, regenerate each value with
//!
//! ```text
//! cargo run --release -- run scenarios/X.toml | grep digest
//! ```
//!
//! and say in the commit message why the digests changed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use busbar::Scenario;

/// (file under `scenarios/`, digest of a run with the file's own seed, env 0).
const GOLDEN: &[(&str, &str)] = &[
    // cargo run --release -- run scenarios/feeder_lte_plc.toml | grep digest
    ("feeder_lte_plc.toml", "a153b3bcd67a17bcfdeb7d0c6ea8e4be"),
    // cargo run --release -- run scenarios/ieee33_microgrids.toml | grep digest
    ("ieee33_microgrids.toml", "b4d7eb71190c1830a43c46b796d885ed"),
    // cargo run --release -- run scenarios/large_100x5.toml | grep digest
    ("large_100x5.toml", "34bce9bb40b345cde6a47014c7b898a1"),
    // cargo run --release -- run scenarios/lossy_jitter.toml | grep digest
    ("lossy_jitter.toml", "3d3e2cbd41d82d90749dea582106add8"),
    // cargo run --release -- run scenarios/qos_levels.toml | grep digest
    ("qos_levels.toml", "5aef70f50f1bbee940a86201b32cd830"),
    // cargo run --release -- run scenarios/seed_example.toml | grep digest
    ("seed_example.toml", "64de50d22467bcd806e362438c36fe67"),
    // cargo run --release -- run scenarios/two_agents.toml | grep digest
    ("two_agents.toml", "2893b7fc0420f07d151957003b5be63f"),
    // cargo run --release -- run scenarios/work_queue.toml | grep digest
    ("work_queue.toml", "bafb864fb0b097144e9b5fe8b4881f0a"),
];

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn shipped() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(scenarios_dir())
        .expect("scenarios/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension() == Some(OsStr::new("toml")))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn load(name: &str) -> Scenario {
    Scenario::from_file(&scenarios_dir().join(name)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn shipped_scenarios_match_their_golden_digests() {
    let mut wrong = Vec::new();
    for (name, golden) in GOLDEN {
        let s = load(name);
        let summary = s.run(s.seed(), 0).unwrap_or_else(|e| panic!("{name}: {e}"));
        if summary.digest != *golden {
            wrong.push(format!(
                "  {name}: golden {golden}, now {} \
                 (regenerate: cargo run --release -- run scenarios/{name} | grep digest)",
                summary.digest
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "shipped scenarios no longer run as they did:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_shipped_scenario_has_a_golden_digest() {
    let pinned: Vec<String> = GOLDEN.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        shipped(),
        pinned,
        "add a GOLDEN entry for each new scenario (and drop entries of removed ones)"
    );
}

#[test]
fn readme_tour_scenario_runs_as_described() {
    // scenarios/two_agents.toml: a sensor publishing every 100 ms over a
    // slow, lossy uplink to a collector with a 20 ms deadline.
    let s = load("two_agents.toml");
    assert_eq!(s.name(), "two-agents");
    assert_eq!(s.agent_names(), ["sensor", "collector"]);
    let sum = s.run(s.seed(), 0).expect("the tour runs");
    assert!(sum.published > 0, "{sum:?}");
    // One reading per 100 ms over 10 s, the first at time 0.
    assert_eq!(sum.published, 101);
    assert!(
        sum.delivered > 0 && sum.delivered <= sum.published,
        "{sum:?}"
    );
    // "some readings are lost and some arrive after the deadline"
    assert!(sum.dropped_by_reason.get("loss").copied().unwrap_or(0) > 0);
    assert!(sum.late > 0, "{sum:?}");
    assert!(sum.late <= sum.delivered);
}
