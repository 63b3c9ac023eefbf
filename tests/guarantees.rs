//! Which ordering guarantees hold under which settings, found over
//! generated scenarios of periodic publishers and sinks
//! (`busbar::testing`). Each test is one row of `docs/guarantees.md`:
//!
//! - where a guarantee holds, proptest checks it over generated scenarios
//!   of that setting;
//! - where it does not, the test asserts that proptest finds a
//!   counterexample and shrinks it to a small scenario (one or two
//!   publishers, one subscriber, a few messages, no fault it does not
//!   need), and prints that scenario as a TOML file (`--nocapture`), which
//!   `busbar run` and `busbar verify` take as it is.
//!
//! The runner is seeded (ChaCha, proptest's deterministic seed), so the
//! suite finds the same cases on every run.
//! `BUSBAR_PROPTEST_CASES=500 cargo test --test guarantees` searches
//! deeper.

use busbar::Qos;
use busbar::network::{Delays, FaultSpec, Ordering};
use busbar::scenario::{AgentSpec, ScenarioSpec};
use busbar::sim::TieBreak;
use busbar::testing::{ScenarioStrategy, latency_bound, run_and_check, to_toml};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

/// The properties every row looks at (`max_age` has rows of its own).
const ORDER: [&str; 4] = ["fifo", "no_stale", "causal", "exactly_once"];

/// `default` cases, or `BUSBAR_PROPTEST_CASES`.
fn cases(default: u32) -> u32 {
    std::env::var("BUSBAR_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runner that finds the same cases on every run and writes no
/// regression files (a counterexample here is expected, not a regression).
fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        max_shrink_iters: 4096,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

/// Every setting pinned to the quietest choice: FIFO links without loss,
/// duplication or netem reordering, at-most-once, no retransmission, no
/// fault, no router, no clock skew, FIFO tie-break. Rows turn one or two
/// settings on.
fn quiet() -> ScenarioStrategy {
    ScenarioStrategy {
        ordering: Some(Ordering::Fifo),
        loss: false,
        duplicate: false,
        reorder: false,
        qos: Some(Qos::AtMostOnce),
        max_retries: Some(0),
        faults: false,
        routes: Some(false),
        clock_skew: false,
        tie_break: Some(TieBreak::Fifo),
        delays: Some(Delays::Sampled),
        ..ScenarioStrategy::default()
    }
}

/// Runs `spec` with its own seed (as `busbar run` would) and returns the
/// reports of `props`.
fn check(spec: &ScenarioSpec, props: &[&str]) -> Vec<busbar::check::Report> {
    run_and_check(spec, spec.simulation.seed, props)
        .unwrap_or_else(|e| panic!("{e}\n{}", to_toml(spec)))
}

/// Asserts that every property in `props` holds over generated scenarios
/// of `setting`.
fn assert_holds(setting: &ScenarioStrategy, props: &[&str], default_cases: u32) {
    let mut runner = runner(cases(default_cases));
    let result = runner.run(&setting.strategy(), |spec| {
        for r in check(&spec, props) {
            prop_assert!(
                r.holds(),
                "{r}: {:?}\n{}",
                r.violations.first(),
                to_toml(&spec)
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("a guarantee thought to hold is broken: {e}");
    }
}

/// Asserts that proptest finds a scenario of `setting` that breaks `prop`,
/// prints the shrunk one as TOML and returns it (checked to still break
/// `prop`).
fn counterexample(
    row: &str,
    setting: &ScenarioStrategy,
    prop: &str,
    default_cases: u32,
) -> ScenarioSpec {
    let mut runner = runner(cases(default_cases));
    let result = runner.run(&setting.strategy(), |spec| {
        let r = check(&spec, &[prop]).remove(0);
        prop_assert!(r.holds(), "{}", r);
        Ok(())
    });
    let minimal = match result {
        Err(TestError::Fail(_, minimal)) => minimal,
        Err(e) => panic!("{row}: {prop}: the search gave up: {e}"),
        Ok(()) => panic!("{row}: {prop}: no counterexample found; does it hold now?"),
    };
    let r = check(&minimal, &[prop]).remove(0);
    assert!(!r.holds(), "the shrunk scenario must still break {prop}");
    let what = r.violations.first().map_or("", |v| v.what.as_str());
    println!(
        "# {row}: {prop} broken; minimal counterexample ({}):\n# {what}\n{}",
        describe(&minimal),
        to_toml(&minimal)
    );
    minimal
}

/// The size of a scenario, as the docs' table gives it.
#[derive(Debug)]
struct Size {
    publishers: usize,
    subscribers: usize,
    messages: u64,
    faults: usize,
    clocks: usize,
    duration_ms: u64,
}

fn size(spec: &ScenarioSpec) -> Size {
    let mut s = Size {
        publishers: 0,
        subscribers: 0,
        messages: 0,
        faults: spec.faults.len(),
        clocks: spec.clocks.len(),
        duration_ms: spec.simulation.duration.as_nanos() / 1_000_000,
    };
    for a in &spec.agents {
        match a {
            AgentSpec::Periodic { count, .. } => {
                s.publishers += 1;
                s.messages += count.unwrap_or(u64::MAX);
            }
            AgentSpec::Sink { .. } => s.subscribers += 1,
            // Neither: it passes on what it is given.
            AgentSpec::Relay { .. } => {}
        }
    }
    s
}

fn describe(spec: &ScenarioSpec) -> String {
    let s = size(spec);
    format!(
        "{} publisher(s), {} subscriber(s), {} message(s), {} fault(s), {} ms",
        s.publishers, s.subscribers, s.messages, s.faults, s.duration_ms
    )
}

/// The bound on the messages of a counterexample whose failure rests on a
/// random draw (see [`assert_small`]); generated publishers send up to 20
/// each, up to 60 in all.
const RANDOM: u64 = 12;

/// Asserts the counterexample is small: at most `publishers` publishers,
/// one subscriber, at most `messages` messages in all, a run of at most
/// 100 ms (generated: up to 2 s), no fault and no skewed clock (none of
/// the rows needs one).
///
/// How many messages a counterexample needs depends on its seed: when a
/// link's random draw reorders or loses message `k`, the scenario needs at
/// least `k + 1` messages, and shrinking the count further makes the
/// failure go away. So `messages` is a loose bound where the failure rests
/// on a random draw, and exact (1 or 2) where it does not.
fn assert_small(spec: &ScenarioSpec, publishers: usize, messages: u64) {
    assert!(messages <= RANDOM);
    let s = size(spec);
    assert!(
        s.publishers <= publishers
            && s.subscribers == 1
            && s.messages <= messages
            && s.duration_ms <= 100
            && s.faults == 0
            && s.clocks == 0,
        "not shrunk enough: {s:?}\n{}",
        to_toml(spec)
    );
}

// Rows where every ordering guarantee holds.

#[test]
fn fifo_links_with_loss_keep_every_order() {
    let setting = ScenarioStrategy {
        loss: true,
        ..quiet()
    };
    assert_holds(&setting, &ORDER, 32);
}

#[test]
fn multi_hop_routes_of_fifo_links_keep_every_order() {
    let setting = ScenarioStrategy {
        loss: true,
        routes: Some(true),
        ..quiet()
    };
    assert_holds(&setting, &ORDER, 32);
}

#[test]
fn faults_on_fifo_links_lose_messages_but_never_reorder_them() {
    let setting = ScenarioStrategy {
        loss: true,
        faults: true,
        routes: None,
        ..quiet()
    };
    // The setting does generate faults of every kind.
    let mut runner = runner(1);
    let kinds: std::collections::BTreeSet<&str> = (0..64)
        .flat_map(|_| {
            use proptest::strategy::ValueTree;
            let spec = setting.strategy().new_tree(&mut runner).unwrap().current();
            spec.faults.iter().map(FaultSpec::kind).collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert_holds(&setting, &ORDER, 32);
}

#[test]
fn skewed_clocks_change_when_messages_are_sent_not_their_order() {
    let setting = ScenarioStrategy {
        loss: true,
        clock_skew: true,
        ..quiet()
    };
    assert_holds(&setting, &ORDER, 32);
}

#[test]
fn at_least_once_without_retransmissions_keeps_every_order() {
    let setting = ScenarioStrategy {
        loss: true,
        qos: Some(Qos::AtLeastOnce),
        max_retries: Some(0),
        ..quiet()
    };
    assert_holds(&setting, &ORDER, 32);
}

// Rows where a guarantee breaks: proptest finds and shrinks the
// counterexample.

#[test]
fn duplicating_fifo_links_keep_the_order_but_not_exactly_once() {
    let setting = ScenarioStrategy {
        duplicate: true,
        ..quiet()
    };
    assert_holds(&setting, &["fifo", "no_stale", "causal"], 32);
    let m = counterexample("fifo links, duplication", &setting, "exactly_once", 64);
    assert_small(&m, 1, RANDOM);
    assert!(m.network.default.duplicate > 0.0);
}

#[test]
fn netem_reordering_breaks_fifo_links() {
    let setting = ScenarioStrategy {
        reorder: true,
        ..quiet()
    };
    assert_holds(&setting, &["exactly_once"], 32);
    for prop in ["fifo", "no_stale", "causal"] {
        let m = counterexample("fifo links, netem reorder", &setting, prop, 64);
        assert_small(&m, 1, RANDOM);
        assert!(m.network.default.reorder > 0.0);
    }
}

#[test]
fn unordered_links_break_every_order_but_not_exactly_once() {
    let setting = ScenarioStrategy {
        ordering: Some(Ordering::Unordered),
        loss: true,
        ..quiet()
    };
    assert_holds(&setting, &["exactly_once"], 32);
    for prop in ["fifo", "no_stale", "causal"] {
        let m = counterexample("unordered links", &setting, prop, 64);
        assert_small(&m, 1, RANDOM);
        assert_eq!(
            m.network.default.loss.mean_rate(),
            0.0,
            "loss is not needed"
        );
    }
}

#[test]
fn unordered_hops_of_a_multi_hop_route_reorder() {
    let setting = ScenarioStrategy {
        ordering: Some(Ordering::Unordered),
        routes: Some(true),
        ..quiet()
    };
    let m = counterexample("multi-hop route, unordered links", &setting, "fifo", 64);
    assert_small(&m, 1, RANDOM);
    assert_eq!(m.network.routers.len(), 1);
}

#[test]
fn retransmissions_of_at_least_once_duplicate_and_reorder() {
    // No loss at all: an ack timeout shorter than the round trip is enough.
    let setting = ScenarioStrategy {
        qos: Some(Qos::AtLeastOnce),
        max_retries: None,
        ..quiet()
    };
    for prop in ORDER {
        let m = counterexample("at-least-once, retransmissions", &setting, prop, 64);
        assert_small(&m, 1, RANDOM);
        assert_eq!(
            m.network.default.loss.mean_rate(),
            0.0,
            "loss is not needed"
        );
        assert!(m.broker.channels[0].max_retries.unwrap() >= 1);
    }
}

#[test]
fn exactly_once_holds_under_duplication_and_faults_but_retransmissions_reorder() {
    let setting = ScenarioStrategy {
        qos: Some(Qos::ExactlyOnce),
        max_retries: None,
        loss: true,
        duplicate: true,
        faults: true,
        routes: None,
        ..quiet()
    };
    assert_holds(&setting, &["exactly_once"], 32);
    for prop in ["fifo", "no_stale", "causal"] {
        let m = counterexample("exactly-once, retransmissions", &setting, prop, 64);
        assert_small(&m, 1, RANDOM);
        assert!(m.broker.channels[0].max_retries.unwrap() >= 1);
    }
}

/// A FIFO link pushes a message that would overtake the one before it back
/// to that one's arrival; under the seeded tie-break, which permutes
/// simultaneous events, it pushes it 1 ns later instead, so the
/// permutation never reorders a FIFO link. Adversarial delays (every delay
/// at an end of its range) make such collisions frequent.
#[test]
fn seeded_tie_break_and_adversarial_delays_keep_fifo_links_in_order() {
    let setting = ScenarioStrategy {
        tie_break: Some(TieBreak::Seeded),
        delays: None,
        ..quiet()
    };
    assert_holds(
        &setting,
        &["fifo", "no_stale", "causal", "exactly_once"],
        32,
    );
    // The counterexample an earlier engine gave (two copies of a FIFO link
    // arriving at the same instant, permuted): in order now, one 1 ns
    // after the other.
    let text = r#"
[simulation]
duration = "20ms"
name = "generated"
seed = 154897214619589282
tie_break = "seeded"

[network.default.latency]
dist = "lognormal"
median = "2045us"
sigma = 0.9913144234943867

[[agent]]
type = "periodic"
name = "p0"
channel = "c0"
period = "1ms"
count = 3

[[agent]]
type = "sink"
name = "s0"
channels = ["c0"]
"#;
    let spec: ScenarioSpec = toml::from_str(text).unwrap();
    let r = check(&spec, &["fifo"]).remove(0);
    assert!(r.holds() && r.checked == 3, "{r}");
}

/// Adversarial delays on unordered links: the slow end then the fast one
/// reorders as soon as two messages are closer than the range is wide.
#[test]
fn adversarial_delays_reorder_unordered_links() {
    let setting = ScenarioStrategy {
        ordering: Some(Ordering::Unordered),
        delays: Some(Delays::Adversarial),
        ..quiet()
    };
    let m = counterexample("unordered links, adversarial delays", &setting, "fifo", 64);
    assert_small(&m, 1, RANDOM);
}

// Ages: with bounded delays and no retransmission, a copy is never older
// than the sum of the largest delay of each hop.

/// The bound, plus under the seeded tie-break 1 ns per message a FIFO link
/// may have held a copy back behind (each hop adds at most one per
/// message before it).
fn max_age_of(spec: &ScenarioSpec) -> String {
    let bound = latency_bound(&spec.network.default.latency).expect("a bounded latency");
    let hops = if spec.network.routers.is_empty() {
        2
    } else {
        3
    };
    let slack = if spec.simulation.tie_break == TieBreak::Seeded {
        let messages: u64 = spec
            .agents
            .iter()
            .map(|a| match a {
                AgentSpec::Periodic { count, .. } => count.unwrap_or(0),
                _ => 0,
            })
            .sum();
        hops * messages
    } else {
        0
    };
    format!("max_age={}ns", bound.as_nanos() * hops + slack)
}

#[test]
fn bounded_delays_bound_the_age_without_retransmissions() {
    let setting = ScenarioStrategy {
        bounded_latency: true,
        ordering: None,
        loss: true,
        duplicate: true,
        reorder: true,
        faults: true,
        routes: None,
        clock_skew: true,
        tie_break: None,
        ..quiet()
    };
    let mut runner = runner(cases(32));
    let result = runner.run(&setting.strategy(), |spec| {
        let limit = max_age_of(&spec);
        let r = check(&spec, &[&limit]).remove(0);
        prop_assert!(
            r.holds(),
            "{}: {:?}\n{}",
            r,
            r.violations.first(),
            to_toml(&spec)
        );
        // The bound is tight: with a constant delay and no netem
        // reordering, every copy is exactly that old, so one nanosecond
        // less is broken as soon as one copy arrived.
        let link = &spec.network.default;
        if let busbar::Latency::Constant { value } = link.latency
            && value.as_nanos() > 0
            && link.reorder == 0.0
            && r.checked > 0
        {
            let hops = if spec.network.routers.is_empty() {
                2
            } else {
                3
            };
            let tighter = format!("max_age={}ns", value.as_nanos() * hops - 1);
            let t = check(&spec, &[&tighter]).remove(0);
            prop_assert_eq!(t.total, t.checked, "{}\n{}", t, to_toml(&spec));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn retransmissions_unbound_the_age() {
    let setting = ScenarioStrategy {
        bounded_latency: true,
        loss: true,
        qos: Some(Qos::AtLeastOnce),
        max_retries: None,
        ..quiet()
    };
    let mut runner = runner(cases(64));
    let result = runner.run(&setting.strategy(), |spec| {
        let limit = max_age_of(&spec);
        let r = check(&spec, &[&limit]).remove(0);
        prop_assert!(r.holds(), "{}", r);
        Ok(())
    });
    let Err(TestError::Fail(_, m)) = result else {
        panic!("no counterexample found: {result:?}");
    };
    println!(
        "# at-least-once, retransmissions: {} broken; minimal counterexample ({}):\n{}",
        max_age_of(&m),
        describe(&m),
        to_toml(&m)
    );
    assert_small(&m, 1, RANDOM);
    assert!(m.broker.channels[0].max_retries.unwrap() >= 1);
}

// A relay: where `causal` parts from `fifo`. A sensor publishes on `c0`;
// a relay forwards each message it handles to `c1`; a collector
// subscribes to both. The forwarded copy causally follows the original but
// comes from another sender, so `fifo` never compares the two.

/// A sensor sending 1 to `max_count` messages, a relay from `c0` to `c1`
/// and a collector of both, over links of `latency` and `ordering`.
/// Shrinks toward a constant delay, one message, a short run.
fn relayed(ordering: Ordering, max_count: u64) -> impl Strategy<Value = ScenarioSpec> {
    (
        busbar::testing::latency(),
        1u64..=20,
        1u64..=max_count,
        20u64..=200,
        0..=i64::MAX as u64,
    )
        .prop_map(move |(latency, period_ms, count, duration_ms, seed)| {
            let text = format!(
                r#"
[simulation]
name = "relayed"
seed = {seed}
duration = "{duration_ms}ms"

[[agent]]
type = "periodic"
name = "p0"
channel = "c0"
period = "{period_ms}ms"
count = {count}

[[agent]]
type = "relay"
name = "r0"
channels = ["c0"]
channel = "c1"

[[agent]]
type = "sink"
name = "s0"
channels = ["c0", "c1"]
"#
            );
            let mut spec: ScenarioSpec = toml::from_str(&text).expect("a valid scenario");
            spec.network.default.latency = latency;
            spec.network.default.ordering = ordering;
            spec
        })
}

/// On FIFO links causal order holds even through a relay: every copy to
/// the collector crosses the same broker-to-collector FIFO link, and the
/// relay's copy is routed only after the original was.
#[test]
fn a_relay_on_fifo_links_keeps_causal_order() {
    let mut holds = runner(cases(32));
    let result = holds.run(&relayed(Ordering::Fifo, 10), |spec| {
        for r in check(&spec, &ORDER) {
            prop_assert!(r.holds(), "{r}\n{}", to_toml(&spec));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("a guarantee thought to hold is broken: {e}");
    }
}

/// On unordered links the relay's copy can overtake the original: with a
/// single message from the sensor (so `fifo`, per sender, has nothing to
/// compare and holds), causal order breaks.
#[test]
fn a_relay_on_unordered_links_breaks_causal_order_but_not_fifo() {
    let mut search = runner(cases(64));
    let result = search.run(&relayed(Ordering::Unordered, 1), |spec| {
        let r = check(&spec, &["causal"]).remove(0);
        prop_assert!(r.holds(), "{r}");
        Ok(())
    });
    let Err(TestError::Fail(_, m)) = result else {
        panic!("no causal violation found: {result:?}");
    };
    let r = check(&m, &["causal"]).remove(0);
    let what = &r.violations[0].what;
    println!(
        "# relay, unordered links: causal broken; minimal counterexample ({}):\n# {what}\n{}",
        describe(&m),
        to_toml(&m)
    );
    assert_eq!(size(&m).messages, 1, "{}", to_toml(&m));
    assert!(check(&m, &["fifo"])[0].holds());
    // The violation pairs the relay's copy with the original.
    let senders: Vec<u32> = r.violations[0]
        .events
        .iter()
        .map(|e| e.record.sender)
        .collect();
    assert_eq!(senders.len(), 2);
    assert_ne!(senders[0], senders[1], "{r:?}");
}
