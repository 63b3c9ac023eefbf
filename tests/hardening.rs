//! Bounded work on any input: each test is named after a defect found by
//! attacking busbar with hostile scenarios and files, and fails if it
//! comes back.

use std::path::{Path, PathBuf};
use std::process::Command;

use busbar::scenario::RunError;
use busbar::{Limits, Scenario, ScenarioError, SimError};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("busbar-hardening-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, "test.toml", Path::new("."))
}

/// The one problem of a scenario that fails validation, as printed.
fn problem(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("the scenario was accepted:\n{text}"),
        Err(e) => {
            assert_eq!(e.problems().len(), 1, "{e}");
            e.problems()[0].to_string()
        }
    }
}

fn microgrids(count: u64, limits: &str) -> String {
    format!(
        r#"
[simulation]
name = "many"
seed = 1
duration = "1s"
{limits}
[[microgrid]]
id = "mg"
count = {count}
[[microgrid.device]]
type = "load"
id = "load"
base_mw = 0.5
"#
    )
}

#[test]
fn microgrid_count_of_four_billion_is_refused_before_expanding() {
    // Once: abort after trying to allocate 103 GB.
    let p = problem(&microgrids(4_294_967_295, ""));
    assert!(p.contains("microgrid[0].count"), "{p}");
    assert!(
        p.contains("8589934591 agents") && p.contains("max_agents = 100000"),
        "{p}"
    );
    // Located at the `count` line.
    assert!(p.starts_with("9:"), "{p}");
}

#[test]
fn more_agents_than_pending_events_is_refused_by_the_scenario_check() {
    // Found by the fuzzer: the file loaded, then the builder refused it.
    let p = problem(&microgrids(3, "[limits]\nmax_pending_events = 2\n"));
    assert!(p.contains("microgrid[0].count"), "{p}");
    assert!(
        p.contains("7 agents need as many pending start events"),
        "{p}"
    );
    assert!(p.contains("max_pending_events = 2"), "{p}");
}

#[test]
fn a_large_count_within_a_raised_limit_checks_every_name() {
    // Once: quadratic name checks, 48 s for 100 000 microgrids.
    let s = parse(&microgrids(50_000, "[limits]\nmax_agents = 200000\n")).unwrap();
    let names = s.agent_names();
    assert_eq!(names.len(), 100_001);
    assert_eq!(names[100_000], "mg50000.load");
}

#[test]
fn duplicate_names_after_expansion_are_still_found() {
    // `mg1` written by hand collides with the first of `count = 3`.
    let text = microgrids(3, "")
        + "[[microgrid]]\nid = \"mg1\"\n[[microgrid.device]]\ntype = \"load\"\nid = \"load\"\nbase_mw = 0.1\n";
    let e = parse(&text).unwrap_err().to_string();
    assert!(e.contains("\"mg1\""), "{e}");
}

#[test]
fn a_duration_beyond_max_sim_time_is_refused_before_running() {
    // Once: ran 20-40 s with defaults before a limit stopped it.
    let text = microgrids(1, "").replace("\"1s\"", "\"999999h\"");
    let p = problem(&text);
    assert!(
        p.starts_with("5:") && p.contains("simulation.duration") && p.contains("max_sim_time"),
        "{p}"
    );
}

#[test]
fn buffer_capacity_of_a_trillion_is_refused() {
    let text = microgrids(1, "[broker]\nbuffer_capacity = 1000000000000\n");
    let p = problem(&text);
    assert!(
        p.contains("broker.buffer_capacity") && p.contains("at most 16777216"),
        "{p}"
    );
}

#[test]
fn pull_buffers_are_bounded_in_total() {
    // Once: 1 000 pull subscribers on default settings reached 1 GB.
    let sinks: String = (0..200)
        .map(|i| {
            format!(
                "[[agent]]\ntype = \"sink\"\nname = \"s{i}\"\nchannels = [\"x\"]\ndelivery = \"pull\"\n"
            )
        })
        .collect();
    let text = format!(
        "[simulation]\nname = \"pull\"\nseed = 7\nduration = \"10s\"\n\
         [limits]\nmax_buffered = 5000\n\
         [[agent]]\ntype = \"periodic\"\nname = \"p\"\nchannel = \"x\"\nperiod = \"1ms\"\n{sinks}"
    );
    let s = parse(&text).unwrap();
    match s.run(7, 0) {
        Err(RunError::Sim(SimError::LimitExceeded {
            limit, max, seed, ..
        })) => {
            assert_eq!((limit, max, seed), ("max_buffered", 5000, 7));
        }
        other => panic!("expected max_buffered to stop the run, got {other:?}"),
    }
    // The default total keeps every buffered copy's slot under 256 MB.
    let per_copy = std::mem::size_of::<busbar::Message>() as u64;
    assert!(Limits::default().max_buffered * per_copy <= 256 << 20);
}

fn profile_scenario(path: &Path) -> String {
    format!(
        r#"
[simulation]
name = "profile"
seed = 1
duration = "1s"
[[microgrid]]
id = "mg"
[[microgrid.device]]
type = "load"
id = "load"
base_mw = 0.5
profile = {{ kind = "csv", path = "{}", column = "p" }}
"#,
        path.display()
    )
}

#[cfg(unix)]
#[test]
fn a_profile_on_dev_zero_is_refused_without_reading() {
    // Once: grew to 4 GB in 5 s.
    let e = parse(&profile_scenario(Path::new("/dev/zero")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/dev/zero") && e.contains("not a regular file"),
        "{e}"
    );
}

#[cfg(unix)]
#[test]
fn a_profile_on_a_fifo_is_refused_without_blocking() {
    // Once: blocked forever.
    let fifo = dir().join("profile.fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("mkfifo is not available; skipped");
        return;
    }
    let e = parse(&profile_scenario(&fifo)).unwrap_err().to_string();
    assert!(e.contains("a FIFO"), "{e}");
}

#[cfg(unix)]
#[test]
fn check_of_dev_zero_is_refused_at_once() {
    // Once: `busbar check /dev/zero` read without end.
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(["check", "/dev/zero"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/dev/zero") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn an_oversized_scenario_names_the_file_and_the_bound() {
    let p = dir().join("huge.toml");
    let mut text = microgrids(1, "");
    text.push_str(&"# padding\n".repeat(500_000));
    std::fs::write(&p, text).unwrap();
    let e = Scenario::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("huge.toml") && e.contains("4 MiB"), "{e}");
}

#[test]
fn too_many_agents_for_the_builder_is_an_error_naming_max_agents() {
    let mut b = busbar::SimBuilder::new(1).limits(Limits {
        max_agents: 3,
        ..Limits::default()
    });
    for i in 0..4 {
        b = b.agent(
            &format!("a{i}"),
            busbar::agent::builtin::Sink::new(&[], busbar::Delivery::Push, None),
        );
    }
    let e = b.build().map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("max_agents = 3"), "{e}");
}

/// A trace whose header holds `scenario` (checksums intact: a crafted
/// file, not a damaged one).
fn crafted_trace(scenario: &str) -> PathBuf {
    use busbar::trace::{Digester, Footer, Header, TraceWriter};
    let header = Header {
        crate_version: "0".into(),
        scenario_path: "crafted.toml".into(),
        base_dir: ".".into(),
        scenario: scenario.into(),
        seed: 1,
        env: 0,
        payload_limit: None,
    };
    let empty = Digester::default().digest();
    let footer = Footer {
        agents: vec![],
        channels: vec![],
        kinds: vec![],
        records: 0,
        records_digest: empty,
        payload_digest: empty,
        stopped: None,
        routers: Vec::new(),
        deadlines: Vec::new(),
    };
    let w = TraceWriter::new(Vec::new(), &header).unwrap();
    let bytes = w.finish(&footer).unwrap();
    let p = dir().join("crafted.bbt");
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn replay_of_a_crafted_header_is_checked_and_bounded_like_run() {
    // Once: a crafted header with a hostile scenario aborted the process.
    let p = crafted_trace(&microgrids(4_294_967_295, ""));
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(["replay", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_agents"), "{err}");
}

#[test]
fn a_uniform_latency_up_to_the_largest_duration_does_not_overflow() {
    // Found by the fuzzer: `max - min + 1` overflowed when compiling the link.
    let text = "[simulation]\nname = \"u\"\nduration = \"1s\"\n\
        [network.default]\n\
        latency = { dist = \"uniform\", min = \"0s\", max = \"18446744073709551615ns\" }\n\
        [[agent]]\ntype = \"periodic\"\nname = \"p\"\nchannel = \"x\"\nperiod = \"100ms\"\n\
        [[agent]]\ntype = \"sink\"\nname = \"s\"\nchannels = [\"x\"]\n";
    let s = parse(text).unwrap();
    let sum = s.run(1, 0).unwrap();
    assert_eq!(sum.published, 11); // at 0, 100 ms, ..., 1 s
}

#[test]
fn payload_bytes_on_the_network_are_bounded() {
    // Found by the fuzzer: 812 microgrids with a heavy-tailed latency kept
    // every step's network-state payload (39 KB each) in flight: 661 MiB
    // from an 820-byte scenario, within every count limit.
    let text = microgrids(
        50,
        "[limits]\nmax_in_flight_bytes = 20000\n\
         [network.default]\nlatency = { dist = \"lognormal\", median = \"25ms\", sigma = 32.5 }\n",
    )
    .replace("\"1s\"", "\"1h\"");
    let s = parse(&text).unwrap();
    match s.run(1, 0) {
        Err(RunError::Sim(SimError::LimitExceeded { limit, .. })) => {
            assert_eq!(limit, "max_in_flight_bytes")
        }
        other => panic!("expected max_in_flight_bytes to stop the run: {other:?}"),
    }
}
