//! `busbar explore` and `busbar::explore`: the search finds a run that
//! breaks a property, shrinks it to a small scenario that still breaks it,
//! writes a reproducer that replays and verifies, reports coverage, and
//! gives the same result on any number of threads.

use std::path::{Path, PathBuf};
use std::process::Command;

use busbar::Scenario;
use busbar::explore::{Explorer, check_run};
use tempfile::TempDir;

fn busbar(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .output()
        .expect("busbar runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The README's example (examples/unordered.toml): a sensor every 20 ms
/// to two collectors, a second sensor every 30 ms to one of them, over
/// links of 10 ± 2 ms, with rare losses and a partition of the second
/// sensor for a second; links `ordering` as given.
fn scenario_text(ordering: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/unordered.toml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("ordering = \"unordered\""));
    text.replace(
        "ordering = \"unordered\"",
        &format!("ordering = \"{ordering}\""),
    )
}

fn write(dir: &Path, ordering: &str) -> PathBuf {
    let p = dir.join(format!("{ordering}.toml"));
    std::fs::write(&p, scenario_text(ordering)).unwrap();
    p
}

/// `busbar explore SCENARIO --property fifo --runs RUNS --out OUT` and
/// `extra` arguments.
fn explore(scenario: &Path, runs: &str, out: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "explore",
        scenario.to_str().unwrap(),
        "--property",
        "fifo",
        "--runs",
        runs,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    busbar(&args)
}

/// The reproducer file with extension `ext` written into `out`.
fn written(out: &Path, ext: &str) -> PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().unwrap() == ext)
        .unwrap()
}

/// The output without the line that carries wall-clock speed.
fn stable(out: &str) -> String {
    out.lines()
        .filter(|l| !l.contains("runs/s"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_violation_is_found_shrunk_written_and_replayed() {
    let dir = TempDir::new().unwrap();
    let s = write(dir.path(), "unordered");
    let out = dir.path().join("repro");
    let (code, stdout, stderr) = explore(&s, "40", &out, &[]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("fifo: broken in"), "{stdout}");
    assert!(stdout.contains("coverage over 40 runs"), "{stdout}");
    let (toml, trace) = (written(&out, "toml"), written(&out, "bbt"));
    // Shrunk to one sensor and one collector, no fault, no loss, a few
    // messages.
    let small = Scenario::from_file(&toml).unwrap();
    assert_eq!(small.agent_names().len(), 2, "{}", small.text());
    assert!(small.spec().faults.is_empty());
    assert!(small.duration() < busbar::SimDuration::from_millis(100));
    assert!(small.text().contains("delays = "), "the mode is written in");
    // The printed commands work: replay is identical, verify finds it.
    assert!(stdout.contains(&format!("busbar replay {}", trace.display())));
    let (code, replayed, _) = busbar(&["replay", trace.to_str().unwrap()]);
    assert_eq!(code, 0, "{replayed}");
    assert!(replayed.contains("identical"), "{replayed}");
    let (code, verified, _) = busbar(&["verify", trace.to_str().unwrap(), "--property", "fifo"]);
    assert_eq!(code, 1, "{verified}");
    // The scenario file alone, with its seed, breaks the property too.
    let seed = small.seed();
    let checked = check_run(&small, seed, &["fifo".to_string()]).unwrap();
    assert!(!checked.reports[0].holds());
}

#[test]
fn the_result_is_the_same_on_one_and_two_threads() {
    let dir = TempDir::new().unwrap();
    let s = write(dir.path(), "unordered");
    let run = |threads: &str| {
        let out = dir.path().join("same");
        let _ = std::fs::remove_dir_all(&out);
        let extra = ["--property", "no_stale", "--threads", threads];
        let (code, stdout, stderr) = explore(&s, "70", &out, &extra);
        assert_eq!(code, 1, "{stderr}");
        (
            stable(&stdout),
            std::fs::read(written(&out, "bbt")).unwrap(),
        )
    };
    assert_eq!(run("1"), run("2"));
}

#[test]
fn a_property_that_holds_exits_0_with_coverage() {
    let dir = TempDir::new().unwrap();
    let s = write(dir.path(), "fifo");
    let out = dir.path().join("none");
    let (code, stdout, stderr) = explore(&s, "10", &out, &[]);
    // FIFO links keep order under a seeded tie-break too: adversarial
    // delays make many arrivals on a link coincide, and the tie-break must
    // not permute them.
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("fifo: held in all 10 runs"), "{stdout}");
    // The partition and the losses were exercised; nothing was reordered.
    assert!(
        stdout.contains("runs that saw a reordering 0, a repeated delivery 0, a drop 10"),
        "{stdout}"
    );
    assert!(!out.exists(), "no reproducer without a violation");
}

#[test]
fn bad_input_exits_2_and_says_why() {
    let dir = TempDir::new().unwrap();
    let s = write(dir.path(), "fifo");
    let (code, _, stderr) = busbar(&["explore", s.to_str().unwrap(), "--property", "fiffo"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown property \"fiffo\""), "{stderr}");
    let (code, _, stderr) = busbar(&["explore", s.to_str().unwrap(), "--property", "deadline"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("needs a grid scenario"), "{stderr}");
}

#[test]
fn coverage_counts_what_the_runs_saw() {
    let dir = TempDir::new().unwrap();
    let s = Scenario::from_file(&write(dir.path(), "unordered")).unwrap();
    let ex = Explorer::new(s, &["fifo".to_string()], 6);
    let found = ex.explore(|_| {}).unwrap();
    let c = &found.coverage;
    assert_eq!(c.runs, 6);
    let x = &c.channels["env0/x"];
    let y = &c.channels["env0/y"];
    // 501 messages per run on x (one per 20 ms from 0 to 10 s, both
    // included), two recipients.
    assert_eq!(x.published, 6 * 501);
    assert!(x.delivered <= 2 * x.published && x.delivered > x.published);
    assert!(x.reordered > 0);
    // Only sensor2 is partitioned: only its channel has partition drops.
    assert!(y.partitioned > 0 && x.partitioned == 0);
    assert_eq!(c.runs_with[4], 6, "every run crosses the partition");
    // The counts agree with the runs taken one by one.
    let mut sum = busbar::explore::Coverage::default();
    for i in 0..6 {
        let plan = ex.run_of(i);
        let one = busbar::explore::with_mode(ex.scenario(), plan.mode).unwrap();
        sum.merge(
            &check_run(&one, plan.seed, &["fifo".to_string()])
                .unwrap()
                .coverage,
        );
    }
    assert_eq!(&sum, c);
}

#[test]
fn a_sweep_searches_model_parameters_and_the_reproducer_keeps_the_variant() {
    let dir = TempDir::new().unwrap();
    let s = write(dir.path(), "fifo");
    let out = dir.path().join("sweep");
    let sweep = ["--sweep", "network.default.ordering=fifo,unordered"];
    let (code, stdout, stderr) = explore(&s, "8", &out, &sweep);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "variants [network.default.ordering=fifo; network.default.ordering=unordered]"
        ),
        "{stdout}"
    );
    // Runs 0, 1 are the FIFO variant, 2, 3 the unordered one, and so on:
    // only the unordered variant's adversarial runs break FIFO here.
    assert!(
        stdout.contains("first counterexample: run 3 (seed 4, tie_break = \"seeded\", delays = \"adversarial\", network.default.ordering=unordered)"),
        "{stdout}"
    );
    let small = Scenario::from_file(&written(&out, "toml")).unwrap();
    assert_eq!(
        small.spec().network.default.ordering,
        busbar::Ordering::Unordered
    );
}

#[test]
fn json_output_carries_the_counts_the_coverage_and_the_counterexample() {
    let dir = TempDir::new().unwrap();
    let s = write(dir.path(), "unordered");
    let out = dir.path().join("json");
    let (code, stdout, stderr) = explore(&s, "10", &out, &["--json"]);
    assert_eq!(code, 1, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(v["runs"], 10);
    assert_eq!(v["seeds"], serde_json::json!([1, 10]));
    let broken = v["properties"][0]["broken_runs"].as_u64().unwrap();
    assert!(broken > 0 && broken < 10, "{broken}");
    // The total is the sum of the channels.
    let total = v["coverage"]["total"]["published"].as_u64().unwrap();
    let sum: u64 = v["coverage"]["channels"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["published"].as_u64().unwrap())
        .sum();
    assert_eq!(total, sum);
    let cx = &v["counterexample"];
    assert_eq!(cx["property"], "fifo");
    assert_eq!(cx["shrunk"]["agents"][1], 2);
    assert!(cx["violation"][0]["total"].as_u64().unwrap() >= 1);
    let trace = cx["trace"].as_str().unwrap();
    assert!(Path::new(trace).exists());
    assert_eq!(
        cx["commands"]["replay"].as_str().unwrap(),
        format!("busbar replay {trace}")
    );
}

/// A scenario may hold integers above i64::MAX (the documented default of
/// `max_trace_records` is u64::MAX), which a plain TOML table cannot: the
/// deadline checker and the shrinker read it all the same.
#[test]
fn integers_above_i64_do_not_stop_the_deadline_checker_or_the_shrinker() {
    let dir = TempDir::new().unwrap();
    let seed_example = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed_example.toml");
    let mut text = std::fs::read_to_string(seed_example).unwrap();
    text = text.replace("duration = \"5m\"", "duration = \"20s\"");
    text.push_str("\n[limits]\nmax_trace_records = 18446744073709551615\n");
    let s = dir.path().join("big.toml");
    std::fs::write(&s, text).unwrap();
    let out = dir.path().join("big");
    let (code, stdout, stderr) = busbar(&[
        "explore",
        s.to_str().unwrap(),
        "--property",
        "deadline",
        "--runs",
        "4",
        "--shrink-budget",
        "30",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let (code, verified, stderr) = busbar(&[
        "verify",
        written(&out, "bbt").to_str().unwrap(),
        "--property",
        "deadline",
    ]);
    assert_eq!(code, 1, "{verified}\n{stderr}");
    assert!(verified.contains("deadline: violated"), "{verified}");
}
