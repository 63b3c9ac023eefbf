//! What a run reports: conservation from the summary alone, the grid's
//! outcomes, and JSON also for a stopped run.

use std::path::Path;

use busbar::scenario::Override;
use busbar::{Scenario, Summary};

fn scenario(name: &str, sets: &[&str]) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let sets: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    Scenario::from_file_with(&path, &sets).unwrap()
}

fn conserved(s: &Summary) {
    let no_sub = s
        .dropped_by_reason
        .get("no_subscriber")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        s.published,
        s.routed + s.dropped_uplink + s.in_flight_uplink,
        "{s:?}"
    );
    assert_eq!(
        s.copies + s.retained_copies + s.duplicated_downlink,
        s.delivered + s.dropped_downlink + s.in_flight_downlink,
        "{s:?}"
    );
    assert_eq!(
        s.dropped,
        s.dropped_uplink + s.dropped_downlink + no_sub,
        "{s:?}"
    );
    assert_eq!(
        s.in_flight,
        s.in_flight_uplink + s.in_flight_downlink,
        "{s:?}"
    );
}

#[test]
fn conservation_holds_from_the_summary_alone() {
    for name in ["seed_example.toml", "two_agents.toml", "lossy_jitter.toml"] {
        for loss in ["0", "0.3"] {
            let s = scenario(name, &[&format!("network.default.loss={loss}")]);
            let sum = s.run(3, 0).unwrap();
            conserved(&sum);
            if loss != "0" {
                assert!(sum.dropped_uplink > 0 && sum.dropped_downlink > 0, "{name}");
            }
        }
    }
}

#[test]
fn overflow_counts_as_dropped_after_the_broker() {
    let text = "[simulation]\nname = \"o\"\nduration = \"1s\"\n\
        [broker]\nbuffer_capacity = 3\n\
        [[agent]]\ntype = \"periodic\"\nname = \"p\"\nchannel = \"x\"\nperiod = \"10ms\"\n\
        [[agent]]\ntype = \"sink\"\nname = \"s\"\nchannels = [\"x\"]\ndelivery = \"pull\"\n\
        [[agent]]\ntype = \"periodic\"\nname = \"q\"\nchannel = \"nobody\"\nperiod = \"100ms\"\n";
    let s = Scenario::parse(text, "o.toml", Path::new(".")).unwrap();
    let sum = s.run(1, 0).unwrap();
    conserved(&sum);
    assert!(sum.dropped_by_reason["overflow"] > 0);
    assert!(sum.dropped_by_reason["no_subscriber"] > 0);
    assert_eq!(sum.dropped_downlink, sum.dropped_by_reason["overflow"]);
}

#[test]
fn deadline_misses_rise_with_uplink_loss() {
    let misses = |loss: &str| {
        let s = scenario(
            "seed_example.toml",
            &[&format!("network.default.loss={loss}")],
        );
        let o = s.run(1, 0).unwrap().outcomes;
        assert_eq!(o.get("grid.steps"), Some(300.0));
        o.get("grid.deadline_misses").unwrap()
    };
    let (a, b, c) = (misses("0"), misses("0.05"), misses("0.2"));
    assert!(a < b && b < c, "{a} {b} {c}");
}

#[test]
fn grid_outcomes_are_consistent() {
    let sum = scenario("seed_example.toml", &[]).run(1, 0).unwrap();
    let o = &sum.outcomes;
    let g = |k: &str| o.get(k).unwrap_or_else(|| panic!("no {k}"));
    assert!(g("grid.steps_with_misses") <= g("grid.steps"));
    assert!(g("grid.max_misses_per_step") <= 9.0); // 3 microgrids x 3 devices
    assert!(
        g("grid.deadline_misses") <= g("grid.steps_with_misses") * g("grid.max_misses_per_step")
    );
    assert!(
        (g("grid.deadline_misses_per_step") - g("grid.deadline_misses") / g("grid.steps")).abs()
            < 1e-12
    );
    let (lo, hi) = (g("grid.soc_min"), g("grid.soc_max"));
    assert!(
        (0.0..=1.0).contains(&lo) && lo <= hi && hi <= 1.0,
        "{lo} {hi}"
    );
    assert!(g("grid.state_age_p50_ns") <= g("grid.state_age_p95_ns"));
    assert!(g("grid.state_age_p95_ns") <= g("grid.state_age_max_ns"));
    assert!(g("grid.energy_imported_mwh") >= 0.0 && g("grid.energy_exported_mwh") >= 0.0);
    // The age percentiles are the environment's share of the run's.
    assert!(g("grid.state_age_max_ns") <= sum.age_of_information.max_ns as f64);
}

#[test]
fn json_is_printed_when_a_limit_stops_the_run() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_busbar"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "scenarios/seed_example.toml",
            "--json",
            "--set",
            "limits.max_events=500",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let stopped = v["stopped"].as_str().expect("stopped is set");
    assert!(stopped.contains("max_events"), "{stopped}");
    assert_eq!(v["events"], 500);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_events"), "{err}");
}
