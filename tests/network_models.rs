//! The latency and loss models as a scenario file writes them: every model
//! read inside `[network.default]` and `[[network.link]]`, errors at the key
//! inside the model's table, the examples of `docs/network.md`, and the
//! models reaching the links of a run.

use std::path::Path;

use busbar::network::{Latency, Loss};
use busbar::scenario::ScenarioSpec;
use busbar::time::SimDuration;
use busbar::{Scenario, ScenarioError};

/// Two agents and no network table: each test adds its own.
const BASE: &str = r#"
[simulation]
name = "models"
seed = 1
duration = "10s"

[[agent]]
type = "periodic"
name = "sensor"
channel = "{env}/telemetry"
period = "10ms"

[[agent]]
type = "sink"
name = "collector"
channels = ["{env}/telemetry"]
"#;

fn parse(network: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(&format!("{BASE}\n{network}"), "s.toml", Path::new("."))
}

fn ms(x: u64) -> SimDuration {
    SimDuration::from_millis(x)
}

#[test]
fn every_model_reads_inside_network_default_and_a_link() {
    let s = parse(
        r#"
[network.default]
latency = { dist = "gamma", shape = 2.5, scale = "3ms", min = "1ms" }
loss = { model = "gilbert_elliott", p = 0.01, r = 0.25 }

[[network.link]]
from = "sensor"
to = "broker"
latency = { dist = "weibull", shape = 0.7, scale = "6ms" }
loss = { model = "markov4", p13 = 0.02, p31 = 0.3, p32 = 0.4, p23 = 0.2, p14 = 0.005 }

[[network.link]]
from = "broker"
to = "collector"
latency = { dist = "pareto", scale = "2ms", shape = 1.5 }
loss = 0.01
"#,
    )
    .unwrap();
    let net = &s.spec().network;
    assert_eq!(
        net.default.latency,
        Latency::Gamma {
            shape: 2.5,
            scale: ms(3),
            min: ms(1)
        }
    );
    assert_eq!(net.default.loss, Loss::gilbert(0.01, 0.25));
    assert_eq!(
        net.links[0].latency,
        Some(Latency::Weibull {
            shape: 0.7,
            scale: ms(6),
            min: SimDuration::ZERO
        })
    );
    assert_eq!(
        net.links[0].loss,
        Some(Loss::Markov4 {
            p13: 0.02,
            p31: 0.3,
            p32: 0.4,
            p23: 0.2,
            p14: 0.005
        })
    );
    assert_eq!(
        net.links[1].latency,
        Some(Latency::Pareto {
            scale: ms(2),
            shape: 1.5
        })
    );
    // The spec writes back to TOML that reads as the same spec (a
    // Bernoulli loss as its plain number).
    let text = toml::to_string(s.spec()).unwrap();
    assert!(text.contains("loss = 0.01\n"), "{text}");
    let again: ScenarioSpec = toml::from_str(&text).unwrap();
    assert_eq!(&again, s.spec());
    assert!(s.run(1, 0).is_ok());
}

/// The keys of every problem, in file order.
fn keys(network: &str) -> Vec<String> {
    let e = parse(network).expect_err("the scenario is refused");
    e.problems().iter().map(|p| p.key.clone()).collect()
}

#[test]
fn errors_point_at_the_key_inside_the_model_table() {
    let cases: [(&str, &[&str]); 10] = [
        (
            r#"latency = { dist = "gamma", shape = -1.0, scale = "0s" }"#,
            &[
                "network.default.latency.shape",
                "network.default.latency.scale",
            ],
        ),
        (
            r#"latency = { dist = "pareto", scale = "2ms", shape = "heavy" }"#,
            &["network.default.latency.shape"],
        ),
        (
            r#"latency = { dist = "weibull", shape = 0.0, scale = "2ms", min = "fast" }"#,
            &["network.default.latency.min"],
        ),
        (
            r#"latency = { dist = "weibull", shape = 0.0, scale = "2ms" }"#,
            &["network.default.latency.shape"],
        ),
        (
            r#"latency = { dist = "empirical", path = "d.csv", column = 3 }"#,
            &["network.default.latency.column"],
        ),
        (
            r#"loss = { model = "gilbert_elliott", p = 1.5, r = -0.2, loss_bad = 2 }"#,
            &[
                "network.default.loss.p",
                "network.default.loss.r",
                "network.default.loss.loss_bad",
            ],
        ),
        (
            r#"loss = { model = "gilbert_elliott", p = "x", r = 0.1 }"#,
            &["network.default.loss.p"],
        ),
        (
            r#"loss = { model = "markov4", p13 = 0.8, p31 = 0.1, p32 = 0.1, p23 = 0.1, p14 = 0.4 }"#,
            &["network.default.loss"],
        ),
        (
            r#"loss = { model = "markov4", p13 = 0.1, p31 = 0.1, p32 = 0.1, p23 = -1, p14 = 0.4 }"#,
            &["network.default.loss.p23"],
        ),
        ("loss = 1.5", &["network.default.loss"]),
    ];
    for (line, want) in cases {
        assert_eq!(
            keys(&format!("[network.default]\n{line}\n")),
            want,
            "{line}"
        );
    }
    let link = r#"
[[network.link]]
from = "sensor"
to = "broker"
latency = { dist = "pareto", scale = "0s", shape = 2.0 }
loss = { model = "gilbert_elliott", p = 2, r = 0.1 }
"#;
    assert_eq!(
        keys(link),
        ["network.link[0].latency.scale", "network.link[0].loss.p"]
    );
    // Located on the line that wrote the model.
    let e = parse("[network.default]\nloss = { model = \"gilbert_elliott\", p = 2, r = 0.1 }\n")
        .unwrap_err();
    let text = format!("{BASE}\n");
    let line = text.lines().count() + 2;
    assert_eq!(e.problems()[0].line, line, "{e}");
    assert!(
        e.to_string()
            .contains("p is a probability in [0, 1], got 2"),
        "{e}"
    );
}

/// The TOML blocks of a markdown file.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```toml") => current = Some(String::new()),
            (Some(b), l) if l.starts_with("```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

#[test]
fn the_examples_of_the_network_docs_parse_and_run() {
    let docs = include_str!("../docs/network.md");
    let blocks = toml_blocks(docs);
    for model in [
        "\"constant\"",
        "\"uniform\"",
        "\"normal\"",
        "\"lognormal\"",
        "\"exponential\"",
        "\"pareto\"",
        "\"gamma\"",
        "\"weibull\"",
        "\"empirical\"",
        "\"gilbert_elliott\"",
        "\"markov4\"",
        "loss = 0.01",
    ] {
        assert!(
            blocks.iter().any(|b| b.contains(model)),
            "no example of {model}"
        );
    }
    for block in &blocks {
        if block.contains("\"empirical\"") {
            // Its CSV file is not in the repository: it reads as a model, and
            // the scenario is refused at the file.
            let spec: ScenarioSpec = toml::from_str(&format!("{BASE}\n{block}")).unwrap();
            assert_eq!(
                spec.network.default.latency.file(),
                Some(Path::new("delays/lte_uplink.csv"))
            );
            assert_eq!(keys(block), ["network.default.latency.path"], "{block}");
            continue;
        }
        let s = parse(block).unwrap_or_else(|e| panic!("{block}: {e}"));
        let summary = s.run(1, 0).unwrap_or_else(|e| panic!("{block}: {e}"));
        assert!(summary.published > 0, "{block}");
    }
}

#[test]
fn a_loss_model_decides_on_the_link_it_is_set_on() {
    let run = |loss: &str| {
        let s = parse(&format!(
            "[[network.link]]\nfrom = \"sensor\"\nto = \"broker\"\nloss = {loss}\n"
        ))
        .unwrap();
        s.run(1, 0).unwrap()
    };
    // Straight into state 3 and never out of it: everything is lost upstream.
    let all = run("{ model = \"markov4\", p13 = 1, p31 = 0, p32 = 0, p23 = 0, p14 = 0 }");
    assert!(all.published > 900);
    assert_eq!((all.dropped_uplink, all.delivered), (all.published, 0));
    // Bad at once and for good.
    let bad = run("{ model = \"gilbert_elliott\", p = 1, r = 0 }");
    assert_eq!((bad.dropped_uplink, bad.delivered), (bad.published, 0));
    // Bad at every other message, from the first: half lost, rounded up.
    let half = run("{ model = \"gilbert_elliott\", p = 1, r = 1 }");
    assert_eq!(half.dropped_uplink, half.published.div_ceil(2));
    // Never leaves Good.
    let none = run("{ model = \"gilbert_elliott\", p = 0, r = 0.5 }");
    assert_eq!(none.dropped_uplink, 0);
}

#[test]
fn empirical_samples_given_in_rust_run_and_unloaded_ones_are_refused() {
    use busbar::agent::builtin::{Periodic, Sink};
    use busbar::{Delivery, LinkModel, Ordering, SimBuilder};
    let build = |latency: Latency| {
        SimBuilder::new(1)
            .agent("sensor", Periodic::new("env0/x", ms(10)))
            .agent(
                "collector",
                Sink::new(&["env0/x".into()], Delivery::Push, None),
            )
            .default_link(LinkModel {
                latency,
                ordering: Ordering::Unordered,
                ..LinkModel::default()
            })
            .build()
    };
    let samples = Latency::empirical_samples(vec![ms(10), ms(30), ms(20)]).unwrap();
    let mut sim = build(samples).unwrap();
    sim.run_until(busbar::time::SimTime(1_000_000_000)).unwrap();
    let summary = sim.finish().unwrap();
    // Two links, each 10 to 30 ms.
    let l = &summary.latency;
    assert!(l.count > 90, "{l:?}");
    assert!(
        l.max_ns <= 60_000_000 + 60_000 && l.p50_ns >= 20_000_000,
        "{l:?}"
    );
    // A file never loaded is refused, not drawn as zero.
    let unloaded = Latency::Empirical {
        path: "d.csv".into(),
        column: None,
        data: None,
    };
    let e = build(unloaded).err().expect("refused");
    assert!(e.has("network.default.latency.path"), "{e}");
}

#[test]
fn empirical_latency_loads_through_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("delays")).unwrap();
    std::fs::write(
        dir.path().join("delays/uplink.csv"),
        "# measured\ntime_s,delay_ms\n0,10\n1,30\n2,20\n",
    )
    .unwrap();
    let text = format!(
        "{BASE}\n[network.default]\nlatency = {{ dist = \"empirical\", path = \"delays/uplink.csv\", column = \"delay_ms\" }}\n"
    );
    let s = Scenario::parse(&text, "s.toml", dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.spec().network.default.latency.mean_ns(), Some(20e6));
    assert!(
        s.input_files()
            .contains(&dir.path().join("delays/uplink.csv"))
    );
    assert!(s.run(1, 0).is_ok());
    std::fs::write(dir.path().join("delays/uplink.csv"), "delay_ms\n10\nsoon\n").unwrap();
    let e = Scenario::parse(&text, "s.toml", dir.path()).unwrap_err();
    assert_eq!(e.problems()[0].key, "network.default.latency.path");
    assert!(e.to_string().contains("uplink.csv:3:"), "{e}");
}

#[test]
fn an_absurd_header_size_is_refused_at_its_key() {
    // Found by the scenario fuzzer: 1.7e19 header bytes overflowed a link's
    // queued-byte count once payloads were large.
    let e = parse("[network.default]\nrate_bps = 50_000\nheader_bytes = 17798153080712530725\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("network.default.header_bytes"), "{e}");
    assert!(e.contains("at most 1048576"), "{e}");
    parse("[network.default]\nrate_bps = 50_000\nheader_bytes = 1048576\n").unwrap();
}
