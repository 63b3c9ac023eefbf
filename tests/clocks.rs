//! Agent clocks: what `now()` returns and what timers and ages mean when an
//! agent's clock is offset or drifts; the trace keeps true time.

use std::path::Path;

use busbar::{EventKind, Record, Scenario, SimTime, Summary};

const BASE: &str = r#"
[simulation]
name = "clocks"
duration = "1s"

[network.default]
latency = { dist = "constant", value = "5ms" }

[[agent]]
type = "periodic"
name = "sensor"
channel = "t"
period = "100ms"

[[agent]]
type = "sink"
name = "collector"
channels = ["t"]
deadline = "15ms"
"#;

fn run(clocks: &str) -> (Summary, Vec<Record>) {
    let text = format!("{BASE}\n{clocks}");
    let sc = Scenario::parse(&text, "c.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(1, 0).trace_in_memory().build().unwrap();
    sim.run_until(SimTime::ZERO + sc.spec().simulation.duration)
        .unwrap();
    (sim.finish().unwrap(), sim.records())
}

/// Within the histogram's precision (3 significant digits).
fn assert_near(got: u64, want: u64) {
    let err = got.abs_diff(want) as f64 / want as f64;
    assert!(err < 1e-3, "{got} is not {want}");
}

fn publish_times_ms(rec: &[Record]) -> Vec<f64> {
    rec.iter()
        .filter(|r| r.event == EventKind::Publish)
        .map(|r| r.time_ns as f64 / 1e6)
        .collect()
}

#[test]
fn without_clocks_ages_are_true_delays() {
    let (s, rec) = run("");
    assert_eq!(s.late, 0);
    // 10 ms end to end (5 up, 5 down).
    assert_near(s.age_of_information.max_ns, 10_000_000);
    assert_eq!(publish_times_ms(&rec)[..3], [0.0, 100.0, 200.0]);
}

#[test]
fn a_fast_clock_fires_its_timers_early_in_true_time() {
    // +100 000 ppm: 100 ms local pass in 90.909... ms true.
    let (_, rec) = run("[[clock]]\nagent = \"sensor\"\ndrift_ppm = 100000\n");
    let t = publish_times_ms(&rec);
    assert_eq!(t[0], 0.0);
    assert!((t[1] - 90.909_091).abs() < 1e-5, "{t:?}");
    assert!((t[10] - 909.090_910).abs() < 1e-5, "{t:?}");
    // The trace keeps true time: delivery is 10 ms after publishing.
    let d = rec.iter().find(|r| r.event == EventKind::Deliver).unwrap();
    assert_eq!(d.time_ns - d.sent_ns, 10_000_000);
}

#[test]
fn a_receiver_ahead_of_the_sender_sees_old_messages() {
    // The collector's clock is 8 ms ahead: a 10 ms trip looks like 18 ms,
    // past its 15 ms deadline; every copy is late.
    let (s, _) = run("[[clock]]\nagent = \"collector\"\noffset = \"8ms\"\n");
    assert_eq!(s.late, s.delivered);
    assert_near(s.age_of_information.max_ns, 18_000_000);
    // The sender ahead instead: the trip looks 2 ms long.
    let (s, _) = run("[[clock]]\nagent = \"sensor\"\noffset = \"8ms\"\n");
    assert_eq!(s.late, 0);
    assert_near(s.age_of_information.max_ns, 2_000_000);
    // Both ahead by the same: nothing changes. The sensor's timers are
    // relative (`set_timer(period)`), so an offset alone does not move them.
    let (s, rec) = run("[[clock]]\nagent = \"*\"\noffset = \"8ms\"\n");
    assert_near(s.age_of_information.max_ns, 10_000_000);
    assert_eq!(publish_times_ms(&rec)[..2], [0.0, 100.0]);
}

#[test]
fn a_grid_environment_with_a_skewed_clock_steps_on_its_own_time() {
    let text = std::fs::read_to_string("scenarios/seed_example.toml").unwrap()
        + "\n[[clock]]\nagent = \"env\"\noffset = \"-300ms\"\n";
    let sc = Scenario::parse(&text, "s.toml", Path::new("scenarios")).unwrap();
    let plain = Scenario::from_file(Path::new("scenarios/seed_example.toml")).unwrap();
    let skewed = sc.run(42, 0).unwrap();
    let base = plain.run(42, 0).unwrap();
    assert_ne!(skewed.digest, base.digest);
    // Steps start 300 ms late in true time; the run covers the same span.
    assert!(
        skewed.published < base.published,
        "{} vs {}",
        skewed.published,
        base.published
    );
}

#[test]
fn clock_errors_name_their_keys() {
    let text = format!(
        "{BASE}\n[[clock]]\nagent = \"ghost*\"\ndrift_ppm = 2e6\n\n[[clock]]\nagent = \"sensor\"\noffset = \"soon\"\n"
    );
    let e = Scenario::parse(&text, "c.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("clock[1].offset"), "{e}");
    let text = format!("{BASE}\n[[clock]]\nagent = \"ghost*\"\ndrift_ppm = 2e6\n");
    let e = Scenario::parse(&text, "c.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("clock[0].agent") && e.contains("clock[0].drift_ppm"),
        "{e}"
    );
}
