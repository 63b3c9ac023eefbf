//! Topologies, link classes and selectors (README "Topology, classes and
//! selectors"): routes of least expected latency, classes and link specs
//! applied in order, asymmetric changes, every error named and located, the
//! star unchanged, TOML round trips, and `busbar check --explain`.

use std::path::Path;
use std::process::Command;

use busbar::Scenario;
use busbar::network::{EdgeSpec, NetworkSpec, RouterSpec, Selector};

/// Two microgrids behind a gateway each; gw2's own uplink is slow, so mg2
/// goes up through the backup link to gw1, and comes down directly.
const TOPO: &str = r#"
[simulation]
name = "topo"
duration = "2s"

[network.default]
latency = { dist = "constant", value = "1ms" }

[network.class.lan]
latency = { dist = "constant", value = "200us" }

[network.class.wan]
latency = { dist = "lognormal", median = "20ms", sigma = 0.5 }
loss = 0.01

[network.class.lte]
latency = { dist = "constant", value = "40ms" }
rate_bps = 1_000_000

[[network.router]]
name = "gw1"

[[network.router]]
name = "gw2"

[[network.edge]]
a = "mg1*"
b = "gw1"
class = "lan"

[[network.edge]]
a = "mg2*"
b = "gw2"
class = "lan"

[[network.edge]]
a = "gw*"
b = "broker"
class = "wan"

[[network.edge]]
a = "gw1"
b = "gw2"
class = "lte"

[[network.link]]
from = "gw2"
to = "broker"
latency = { dist = "constant", value = "100ms" }

[[microgrid]]
id = "mg"
count = 2

[[microgrid.device]]
type = "pv"
id = "pv"
peak_mw = 0.4
"#;

fn parse(text: &str) -> Result<Scenario, String> {
    Scenario::parse(text, "t.toml", Path::new(".")).map_err(|e| e.to_string())
}

fn load(text: &str) -> Scenario {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

/// The error of a scenario that must not load.
fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("loaded, but should not have:\n{text}"),
        Err(e) => e,
    }
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn explain_shows_every_link_its_model_and_the_longer_routes() {
    let s = load(TOPO);
    let e = s.explain_network();
    let expect = [
        "network: 5 agents, 2 routers and the broker; 16 directed links",
        "routers: gw1, gw2",
        "  env -> broker: latency 1ms, loss 0, fifo",
        "  mg1.pv -> gw1: latency 200us, loss 0, fifo",
        // The edge's class, then (upward only) the link spec.
        "  gw2 -> broker: latency 100ms, loss 0.01, fifo",
        "  broker -> gw2: latency lognormal median 20ms sigma 0.5, loss 0.01, fifo",
        "  gw1 -> gw2: latency 40ms, loss 0, fifo, rate_bps 1000000",
        // Up: 0.2 + 40 + 0.32 (header at 1 Mbit/s) + 20·e^(1/8) ms.
        "  mg2.pv up: mg2.pv -> gw2 -> gw1 -> broker (expected 63.183ms)",
        "  mg2.pv down: broker -> gw2 -> mg2.pv (expected 22.863ms)",
        "  mg1 up: mg1 -> gw1 -> broker (expected 22.863ms)",
    ];
    for line in expect {
        assert!(has_line(&e, line), "missing {line:?} in:\n{e}");
    }
    // env is on no edge: one hop each way, so not among the routes.
    assert!(!e.contains("env up"), "{e}");
    // It builds and runs (the engine carries messages hop by hop).
    s.run(1, 0).unwrap();
}

#[test]
fn an_explicit_star_is_the_implicit_star() {
    let star = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/two_agents.toml"),
    )
    .unwrap();
    let explicit = format!("{star}\n[[network.edge]]\na = \"*\"\nb = \"broker\"\n");
    let (a, b) = (load(&star), load(&explicit));
    assert_eq!(a.explain_network(), b.explain_network());
    assert_eq!(a.run(7, 0).unwrap().digest, b.run(7, 0).unwrap().digest);
    // The uplink spec is asymmetric: broker -> sensor keeps the default.
    let e = a.explain_network();
    assert!(has_line(
        &e,
        "  sensor -> broker: latency lognormal median 8ms sigma 0.6, loss 0.05, fifo"
    ));
    assert!(has_line(
        &e,
        "  broker -> sensor: latency 2ms, loss 0, fifo"
    ));
    assert!(has_line(
        &e,
        "routes: every agent is one hop from the broker"
    ));
}

#[test]
fn link_specs_apply_in_file_order_by_selector_and_both_ways() {
    let text = format!(
        "{TOPO}
[network.class.slow]
latency = {{ dist = \"constant\", value = \"7ms\" }}
reorder = 0.1

[[network.link]]
from = \"mg*.pv\"
to = \"gw*\"
both = true
class = \"slow\"
loss = 0.2

[[network.link]]
from = \"gw1\"
to = \"mg1.pv\"
loss = 0.3
"
    );
    let e = load(&text).explain_network();
    for line in [
        "  mg1.pv -> gw1: latency 7ms, loss 0.2, fifo, reorder 0.1",
        "  gw1 -> mg1.pv: latency 7ms, loss 0.3, fifo, reorder 0.1",
        "  mg2.pv -> gw2: latency 7ms, loss 0.2, fifo, reorder 0.1",
        "  mg1 -> gw1: latency 200us, loss 0, fifo",
    ] {
        assert!(has_line(&e, line), "missing {line:?} in:\n{e}");
    }
}

#[test]
fn topology_errors_are_named_and_located() {
    let text = format!(
        "{TOPO}
[[network.router]]
name = \"gw3\"

[[network.edge]]
a = \"mg3.*\"
b = \"gw3\"

[[network.edge]]
a = \"gw1\"
b = \"gw2\"
class = \"fibre\"

[[network.link]]
from = \"mg1.pv\"
to = \"gw2\"
"
    );
    let err = error(&text);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].ends_with(
            "network.edge[4].a: \"mg3.*\" matches no node; the nodes are: env, mg1, mg1.pv, \
             mg2, mg2.pv, broker, gw1, gw2, gw3"
        ),
        "{err}"
    );
    assert!(
        lines[1].ends_with(
            "network.edge[5].class: no link class \"fibre\"; the classes are: lan, lte, wan"
        ),
        "{err}"
    );
    assert!(
        lines[2].ends_with(
            "network.link[1].to: no link from \"mg1.pv\" to \"gw2\"; links from mg1.pv go to: gw1"
        ),
        "{err}"
    );
    // Each is located at its line.
    assert!(lines.iter().all(|l| l.starts_with("t.toml:")), "{err}");
}

#[test]
fn an_agent_without_a_route_is_an_error_naming_it() {
    // x3 is joined to mg1.pv and mg1 only, and mg1 would be the only way
    // on: no route passes through an agent.
    let text = TOPO
        .replace(
            "[[network.link]]",
            "[[network.router]]\nname = \"x3\"\n\n[[network.edge]]\na = \"mg1.pv\"\nb = \"x3\"\n\n\
         [[network.edge]]\na = \"x3\"\nb = \"mg1\"\n\n[[network.link]]",
        )
        .replace("a = \"mg1*\"", "a = \"mg1\"");
    let err = error(&text);
    assert!(
        err.contains(
            "network.edge[4]: agent \"mg1.pv\" has no route to or from the broker (its edges \
             join it to: x3)"
        ),
        "{err}"
    );
    // Two agents are never joined.
    let text = format!("{TOPO}\n[[network.edge]]\na = \"mg1\"\nb = \"mg1.pv\"\n");
    let err = error(&text);
    assert!(
        err.contains("would join agent \"mg1\" to agent \"mg1.pv\""),
        "{err}"
    );
}

#[test]
fn a_bad_value_is_reported_where_it_was_written() {
    let text = TOPO.replace("loss = 0.01", "loss = 1.5")
        + "\n[[network.link]]\nfrom = \"env\"\nto = \"broker\"\ncorrupt = 2.0\n";
    let err = error(&text);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.contains("network.class.wan.loss: loss is a probability"),
        "{err}"
    );
    assert!(
        err.contains("network.link[1].corrupt: corrupt is a probability"),
        "{err}"
    );
}

#[test]
fn the_new_tables_round_trip_through_toml() {
    let s = load(TOPO);
    let text = toml::to_string(s.spec()).unwrap();
    let again = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(again.spec(), s.spec());
    assert_eq!(again.explain_network(), s.explain_network());
    let net = &s.spec().network;
    assert_eq!(
        net.routers,
        [RouterSpec::new("gw1"), RouterSpec::new("gw2")]
    );
    assert_eq!(net.edges[0], EdgeSpec::new("mg1*", "gw1").class("lan"));
    let spec: NetworkSpec = toml::from_str(&toml::to_string(net).unwrap()).unwrap();
    assert_eq!(&spec, net);
}

#[test]
fn selectors_match_names_and_globs() {
    let nodes = ["env", "mg1", "mg1.bat", "mg1.pv", "mg12.pv", "broker"];
    let hits = |p: &str| Selector::parse(p).unwrap().resolve(&nodes);
    assert_eq!(hits("mg1.*").unwrap(), [2, 3]);
    assert_eq!(hits("mg*.pv").unwrap(), [3, 4]);
    assert_eq!(hits("*").unwrap().len(), nodes.len());
    assert_eq!(hits("broker").unwrap(), [5]);
    assert_eq!(hits("mg1").unwrap(), [1]);
    assert!(hits("mg4.*").unwrap_err().contains("matches no node"));
    assert!(Selector::parse("").is_err());
    assert!(Selector::parse("*.pv").unwrap().matches("mg12.pv"));
}

#[test]
fn check_explain_prints_the_resolved_network() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topo.toml");
    std::fs::write(&path, TOPO).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(["check", "--explain"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: topo (5 agents"), "{stdout}");
    assert!(
        has_line(
            &stdout,
            "  mg2.pv up: mg2.pv -> gw2 -> gw1 -> broker (expected 63.183ms)"
        ),
        "{stdout}"
    );
    // Without --explain: the one line.
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // A broken topology: exit 2, located.
    std::fs::write(&path, TOPO.replace("b = \"gw2\"", "b = \"gw9\"")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(["check", "--explain"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("network.edge[1].b: \"gw9\" matches no node"),
        "{stderr}"
    );
    assert!(stderr.contains("topo.toml:"), "{stderr}");
}
