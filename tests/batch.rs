//! `busbar batch` and `busbar merge`, and the library's `Batch`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use busbar::Agent;
use busbar::rollout::batch::{Batch, Job, Outcome};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("busbar-batch-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn busbar(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const STUDY: [&str; 6] = [
    "scenarios/two_agents.toml",
    "--envs",
    "3",
    "--sweep",
    "network.default.loss=0,0.1",
    "--seed",
];

fn batch_csv(extra: &[&str], out: &Path) -> (i32, String) {
    let mut args = vec!["batch"];
    args.extend(STUDY);
    args.push("100");
    args.extend(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    let (code, _, err) = busbar(&args);
    (code, err)
}

#[test]
fn one_thread_and_two_threads_write_byte_identical_csv() {
    let (a, b) = (tmp("t1.csv"), tmp("t2.csv"));
    assert_eq!(batch_csv(&["--threads", "1"], &a).0, 0);
    assert_eq!(batch_csv(&["--threads", "2"], &b).0, 0);
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(a, b);
    let text = String::from_utf8(a).unwrap();
    assert_eq!(text.lines().count(), 1 + 6);
    // Environment i of each variant gets seed 100 + i.
    let seeds: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(6).unwrap())
        .collect();
    assert_eq!(seeds, ["100", "101", "102", "100", "101", "102"]);
}

#[test]
fn two_shards_merged_equal_the_unsharded_run_and_merge_refuses_bad_sets() {
    let all = tmp("all.csv");
    let (s0, s1, merged) = (tmp("s0.csv"), tmp("s1.csv"), tmp("merged.csv"));
    assert_eq!(batch_csv(&[], &all).0, 0);
    assert_eq!(batch_csv(&["--shard", "0/2"], &s0).0, 0);
    assert_eq!(batch_csv(&["--shard", "1/2"], &s1).0, 0);
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    let (code, _, err) = busbar(&["merge", &p(&s1), &p(&s0), "-o", &p(&merged)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&all).unwrap(),
        std::fs::read(&merged).unwrap()
    );

    // Incomplete: one shard alone.
    let (code, _, err) = busbar(&["merge", &p(&s0), "-o", &p(&tmp("bad.csv"))]);
    assert_eq!(code, 2);
    assert!(err.contains("incomplete") && err.contains("job 1"), "{err}");
    // Overlapping: a shard and the whole.
    let (code, _, err) = busbar(&["merge", &p(&s0), &p(&all), "-o", &p(&tmp("bad.csv"))]);
    assert_eq!(code, 2);
    assert!(err.contains("overlap"), "{err}");
    // Different batches.
    let other = tmp("other.csv");
    let mut args = vec!["batch", "scenarios/two_agents.toml", "--envs", "2"];
    args.extend(["--out", other.to_str().unwrap()]);
    assert_eq!(busbar(&args).0, 0);
    let (code, _, err) = busbar(&["merge", &p(&s0), &p(&other)]);
    assert_eq!(code, 2);
    assert!(err.contains("other.csv"), "{err}");
}

#[test]
fn a_bad_sweep_value_is_located_at_its_override_before_anything_runs() {
    let out = tmp("never.csv");
    let (code, _, err) = busbar(&[
        "batch",
        "scenarios/two_agents.toml",
        "--sweep",
        "network.default.loss=0.1,7",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--set network.default.loss=7: network.default.loss"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn runs_stopped_by_a_limit_are_rows_and_exit_1() {
    let out = tmp("stopped.csv");
    let (code, err) = batch_csv(&["--set", "limits.max_events=50"], &out);
    assert_eq!(code, 1, "{err}");
    let text = std::fs::read_to_string(out).unwrap();
    assert_eq!(text.lines().count(), 7);
    assert!(
        text.lines().skip(1).all(|l| l.contains(",stopped,")),
        "{text}"
    );
}

/// Panics when it starts in environment 1.
struct Bomb;

impl Agent for Bomb {
    fn on_start(&mut self, ctx: &mut busbar::Context<'_>) {
        assert!(ctx.env() != 1, "boom in env 1");
    }
}

#[test]
fn a_panicking_environment_is_contained() {
    let batch = Batch::new(vec![root().join("scenarios/two_agents.toml")])
        .envs(3)
        .threads(2)
        .customize(Arc::new(|b: busbar::SimBuilder, _job: &Job| {
            b.agent("bomb", Bomb)
        }));
    let prepared = batch.prepare().unwrap();
    let mut rows = Vec::new();
    let complete = prepared
        .run(
            |r| {
                rows.push(r);
                Ok(())
            },
            |_| {},
        )
        .unwrap();
    assert!(complete);
    let status: Vec<&str> = rows.iter().map(|r| r.outcome.status()).collect();
    assert_eq!(status, ["ok", "panic", "ok"]);
    match &rows[1].outcome {
        Outcome::Panicked(m) => assert!(m.contains("boom in env 1"), "{m}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn the_uplink_loss_study_shows_deadline_misses_rising_with_loss() {
    // The README's study, smaller: 4 loss levels x 3 seeds.
    let out = tmp("study.csv");
    let (code, stdout, err) = busbar(&[
        "batch",
        "scenarios/seed_example.toml",
        "--envs",
        "3",
        "--sweep",
        "network.default.loss=0,0.02,0.05,0.1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("grid.deadline_misses"), "{stdout}");
    let mut rdr = csv::Reader::from_path(&out).unwrap();
    let h = rdr.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let (loss, misses) = (col("network.default.loss"), col("grid.deadline_misses"));
    let mut by_loss: Vec<(String, f64)> = Vec::new();
    for r in rdr.records() {
        let r = r.unwrap();
        let m: f64 = r[misses].parse().unwrap();
        match by_loss.iter_mut().find(|(l, _)| *l == r[loss]) {
            Some(e) => e.1 += m,
            None => by_loss.push((r[loss].to_string(), m)),
        }
    }
    assert_eq!(by_loss.len(), 4);
    assert!(
        by_loss.windows(2).all(|w| w[0].1 < w[1].1),
        "misses do not rise with loss: {by_loss:?}"
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_cleanly_and_keeps_the_rows_done() {
    let out = tmp("interrupted.csv");
    let child = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args([
            "batch",
            "scenarios/seed_example.toml",
            "--envs",
            "100000",
            "--threads",
            "2",
            "--out",
            out.to_str().unwrap(),
        ])
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is running batches, then interrupt it as a terminal would.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    // The rows written are complete, in job order, from job 0.
    let mut rdr = csv::Reader::from_path(&out).unwrap();
    let jobs: Vec<u64> = rdr
        .records()
        .map(|r| r.unwrap()[0].parse().unwrap())
        .collect();
    assert!(jobs.len() < 100_000, "{}", jobs.len());
    assert!(jobs.iter().enumerate().all(|(i, &j)| j == i as u64));
}
