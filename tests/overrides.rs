//! `--set key=value` overrides: applied before validation, with errors at
//! the override and everything else located in the file as usual.

use std::path::Path;

use busbar::scenario::Override;
use busbar::{Scenario, ScenarioError};

fn shipped(name: &str) -> (String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    (
        std::fs::read_to_string(&path).unwrap(),
        path.display().to_string(),
    )
}

fn with(text: &str, sets: &[&str]) -> Result<Scenario, ScenarioError> {
    let overrides: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    Scenario::parse_with(
        text,
        "s.toml",
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &overrides,
    )
}

#[test]
fn a_set_changes_the_run_and_the_text_replays_it() {
    let (text, _) = shipped("seed_example.toml");
    let base = with(&text, &[]).unwrap();
    let lossy = with(&text, &["network.default.loss=0.2"]).unwrap();
    assert_eq!(
        lossy.spec().network.default.loss,
        busbar::network::Loss::bernoulli(0.2)
    );
    let a = base.run(1, 0).unwrap();
    let b = lossy.run(1, 0).unwrap();
    assert!(b.dropped > a.dropped, "{} vs {}", b.dropped, a.dropped);
    assert_ne!(a.digest, b.digest);
    // The effective text is what a trace embeds: it parses to the same spec.
    let again = Scenario::parse(lossy.text(), "again", Path::new(".")).unwrap();
    assert_eq!(again.spec(), lossy.spec());
    assert_eq!(again.run(1, 0).unwrap().digest, b.digest);
}

#[test]
fn a_bad_value_is_reported_at_the_override() {
    let (text, _) = shipped("seed_example.toml");
    let e = with(&text, &["network.default.loss=2"]).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("s.toml: --set network.default.loss=2: network.default.loss: "),
        "{msg}"
    );
    assert_eq!(
        e.problems()[0].set.as_deref(),
        Some("network.default.loss=2")
    );
}

#[test]
fn a_wrong_type_or_unknown_key_is_reported_at_the_override() {
    let (text, _) = shipped("seed_example.toml");
    let e = with(&text, &["simulation.seed=abc"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--set simulation.seed=abc: simulation.seed: "),
        "{e}"
    );
    let e = with(&text, &["network.default.los=0.1"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--set network.default.los=0.1: network.default.los: unknown field"),
        "{e}"
    );
    let e = with(&text, &["microgrid[9].count=2"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("there is no [9]"), "{e}");
}

#[test]
fn problems_in_the_file_keep_their_lines_beside_overrides() {
    let text = "[simulation]\nname = \"x\"\nduration = \"1s\"\n\n[broker]\nbuffer_capacity = 0\n";
    let e = with(text, &["simulation.seed=3"]).unwrap_err();
    let p = &e.problems()[0];
    assert_eq!((p.line, p.set.as_deref()), (6, None), "{e}");
}

#[test]
fn later_overrides_win_and_strings_need_no_quotes() {
    let (text, _) = shipped("seed_example.toml");
    let s = with(
        &text,
        &["simulation.duration=2s", "simulation.duration=\"3s\""],
    )
    .unwrap();
    assert_eq!(s.duration().to_string(), "3s");
}

fn busbar(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_set_errors_name_the_override_and_exit_2() {
    let (code, _, err) = busbar(&[
        "check",
        "scenarios/seed_example.toml",
        "--set",
        "network.default.loss=2",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--set network.default.loss=2: network.default.loss: loss is a probability"),
        "{err}"
    );
    let (code, _, err) = busbar(&["check", "scenarios/seed_example.toml", "--set", "nokey"]);
    assert_eq!(code, 2);
    assert!(err.contains("write key.path=value"), "{err}");
}

#[test]
fn cli_set_changes_the_digest_and_its_trace_replays() {
    let digest = |args: &[&str]| {
        let (code, out, err) = busbar(args);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .find(|l| l.starts_with("digest:"))
            .unwrap()
            .to_string()
    };
    let plain = digest(&["run", "scenarios/seed_example.toml"]);
    let trace = std::env::temp_dir().join(format!("busbar-set-{}.bbt", std::process::id()));
    let t = trace.to_str().unwrap();
    let set = digest(&[
        "run",
        "scenarios/seed_example.toml",
        "--set",
        "network.default.loss=0.2",
        "--trace",
        t,
    ]);
    assert_ne!(plain, set);
    let (code, out, err) = busbar(&["replay", t]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("identical"), "{out}");
}
