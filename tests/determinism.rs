//! Determinism, ordering, common random numbers and conservation, checked on
//! randomly generated scenarios through the library API.
//!
//! The number of proptest cases comes from `BUSBAR_PROPTEST_CASES`
//! (default 16, so CI stays fast); e.g. `BUSBAR_PROPTEST_CASES=500 cargo
//! test --test determinism` for a deeper search.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use busbar::agent::builtin::Sink;
use busbar::trace::{NODE_BROADCAST, NODE_BROKER};
use busbar::{EventKind, Reason, Record, Scenario, Summary};
use proptest::prelude::*;
use proptest::test_runner::Config;
use rayon::prelude::*;

mod common;

fn config() -> Config {
    common::proptest_config(16)
}

// ---------------------------------------------------------------------------
// Scenario generator
// ---------------------------------------------------------------------------

/// A latency distribution, in microseconds.
#[derive(Clone, Debug)]
enum Lat {
    Constant(u64),
    Uniform(u64, u64),
    Normal(u64, u64),
    Lognormal(u64, u32), // median, sigma in hundredths
    Exponential(u64, u64),
}

impl Lat {
    fn toml(&self) -> String {
        match self {
            Lat::Constant(v) => format!(r#"{{ dist = "constant", value = "{v}us" }}"#),
            Lat::Uniform(a, b) => {
                format!(
                    r#"{{ dist = "uniform", min = "{a}us", max = "{}us" }}"#,
                    a + b
                )
            }
            Lat::Normal(m, s) => format!(r#"{{ dist = "normal", mean = "{m}us", std = "{s}us" }}"#),
            Lat::Lognormal(m, s) => format!(
                r#"{{ dist = "lognormal", median = "{m}us", sigma = {}.{:02} }}"#,
                s / 100,
                s % 100
            ),
            Lat::Exponential(m, f) => {
                format!(r#"{{ dist = "exponential", mean = "{m}us", min = "{f}us" }}"#)
            }
        }
    }
}

fn latency() -> impl Strategy<Value = Lat> {
    prop_oneof![
        (0u64..20_000).prop_map(Lat::Constant),
        (0u64..10_000, 0u64..30_000).prop_map(|(a, b)| Lat::Uniform(a, b)),
        (0u64..20_000, 0u64..10_000).prop_map(|(m, s)| Lat::Normal(m, s)),
        (1u64..20_000, 0u32..150).prop_map(|(m, s)| Lat::Lognormal(m, s)),
        (0u64..10_000, 0u64..5_000).prop_map(|(m, f)| Lat::Exponential(m, f)),
    ]
}

/// A link model: latency, loss in thousandths, fifo?
#[derive(Clone, Debug)]
struct LinkGen {
    latency: Lat,
    loss_milli: u32,
    fifo: bool,
}

impl LinkGen {
    fn body(&self) -> String {
        format!(
            "latency = {}\nloss = 0.{:03}\nordering = \"{}\"\n",
            self.latency.toml(),
            self.loss_milli,
            if self.fifo { "fifo" } else { "unordered" }
        )
    }
}

fn link(fifo: Option<bool>) -> impl Strategy<Value = LinkGen> {
    let ordering = match fifo {
        Some(f) => Just(f).boxed(),
        None => any::<bool>().boxed(),
    };
    (latency(), 0u32..=300, ordering).prop_map(|(latency, loss_milli, fifo)| LinkGen {
        latency,
        loss_milli,
        fifo,
    })
}

#[derive(Clone, Debug)]
enum Dev {
    /// capacity, p_max, soc_min, soc_max, soc_init (hundredths)
    Storage(u32, u32, u32, u32, u32),
    /// peak (hundredths of MW), noise (hundredths)
    Pv(u32, u32),
    /// base (hundredths of MW), noise (hundredths)
    Load(u32, u32),
}

fn device() -> impl Strategy<Value = Dev> {
    prop_oneof![
        (10u32..400, 5u32..100, 0u32..30, 70u32..=100, 0u32..=100).prop_map(
            |(cap, p, lo, hi, at)| Dev::Storage(cap, p, lo, hi, lo + at * (hi - lo) / 100)
        ),
        (5u32..150, 0u32..30).prop_map(|(p, n)| Dev::Pv(p, n)),
        (5u32..150, 0u32..20).prop_map(|(b, n)| Dev::Load(b, n)),
    ]
}

fn hundredths(x: u32) -> String {
    format!("{}.{:02}", x / 100, x % 100)
}

#[derive(Clone, Debug)]
struct Publisher {
    period_us: u64,
    start_us: u64,
    channel: usize,
    count: Option<u64>,
    /// Address to sink `k` instead of broadcasting.
    to: Option<usize>,
}

#[derive(Clone, Debug)]
struct SinkGen {
    channels: BTreeSet<usize>,
    pull: bool,
    deadline_us: Option<u64>,
}

/// A random small scenario, rendered as TOML by [`Gen::toml`].
#[derive(Clone, Debug)]
struct Gen {
    seed: u64,
    step_us: u64,
    /// Deadline as a per-mille of the step (`None`: end of step).
    deadline_permille: Option<u64>,
    steps: u64,
    start_hour: u32,
    processing_us: u64,
    buffer_capacity: usize,
    default: LinkGen,
    microgrids: Vec<Vec<Dev>>,
    publishers: Vec<Publisher>,
    sinks: Vec<SinkGen>,
    /// (agent index into `agent_names()`, both directions?, model)
    overrides: Vec<(usize, bool, LinkGen)>,
}

const CHANNELS: usize = 3;

impl Gen {
    fn duration_us(&self) -> u64 {
        self.step_us * self.steps
    }

    fn agent_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if !self.microgrids.is_empty() {
            names.push("env".to_string());
        }
        for (i, devs) in self.microgrids.iter().enumerate() {
            names.push(format!("mg{i}"));
            for j in 0..devs.len() {
                names.push(format!("mg{i}.d{j}"));
            }
        }
        for i in 0..self.publishers.len() {
            names.push(format!("p{i}"));
        }
        for i in 0..self.sinks.len() {
            names.push(format!("s{i}"));
        }
        names
    }

    /// Who subscribes to each channel (by channel name), as the built-in
    /// agents do it: the environment to state updates, grid agents to
    /// actions and network state, devices to their grid agent's setpoints,
    /// sinks to their channels.
    fn subscribers(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut subs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if !self.microgrids.is_empty() {
            subs.entry("env0/state_updates".into())
                .or_default()
                .insert("env".into());
        }
        for (i, devs) in self.microgrids.iter().enumerate() {
            let mg = format!("mg{i}");
            for ch in ["env0/actions", "env0/network_state"] {
                subs.entry(ch.into()).or_default().insert(mg.clone());
            }
            for j in 0..devs.len() {
                subs.entry(format!("env0/agent/{mg}/device_actions"))
                    .or_default()
                    .insert(format!("{mg}.d{j}"));
            }
        }
        for (k, s) in self.sinks.iter().enumerate() {
            for c in &s.channels {
                subs.entry(format!("env0/c{c}"))
                    .or_default()
                    .insert(format!("s{k}"));
            }
        }
        subs
    }

    fn toml(&self) -> String {
        let mut t = String::new();
        let w = &mut t;
        writeln!(w, "[simulation]\nname = \"gen\"\nseed = {}", self.seed).unwrap();
        writeln!(w, "duration = \"{}us\"", self.duration_us()).unwrap();
        writeln!(w, "\n[grid]\nstep = \"{}us\"", self.step_us).unwrap();
        if let Some(p) = self.deadline_permille {
            let d = (self.step_us * p / 1000).max(1);
            writeln!(w, "deadline = \"{d}us\"").unwrap();
        }
        writeln!(w, "start_hour = {}.0", self.start_hour).unwrap();
        writeln!(
            w,
            "\n[broker]\nprocessing = \"{}us\"\nbuffer_capacity = {}",
            self.processing_us, self.buffer_capacity
        )
        .unwrap();
        writeln!(w, "\n[network.default]\n{}", self.default.body()).unwrap();
        for (i, devs) in self.microgrids.iter().enumerate() {
            writeln!(w, "[[microgrid]]\nid = \"mg{i}\"").unwrap();
            for (j, d) in devs.iter().enumerate() {
                writeln!(w, "[[microgrid.device]]\nid = \"d{j}\"").unwrap();
                match *d {
                    Dev::Storage(cap, p, lo, hi, at) => writeln!(
                        w,
                        "type = \"storage\"\ncapacity_mwh = {}\np_max_mw = {}\n\
                         soc_min = {}\nsoc_max = {}\nsoc_init = {}",
                        hundredths(cap),
                        hundredths(p),
                        hundredths(lo),
                        hundredths(hi),
                        hundredths(at)
                    ),
                    Dev::Pv(p, n) => writeln!(
                        w,
                        "type = \"pv\"\npeak_mw = {}\nnoise = {}",
                        hundredths(p),
                        hundredths(n)
                    ),
                    Dev::Load(b, n) => writeln!(
                        w,
                        "type = \"load\"\nbase_mw = {}\nnoise = {}",
                        hundredths(b),
                        hundredths(n)
                    ),
                }
                .unwrap();
            }
            writeln!(w).unwrap();
        }
        for (i, p) in self.publishers.iter().enumerate() {
            writeln!(
                w,
                "[[agent]]\ntype = \"periodic\"\nname = \"p{i}\"\nchannel = \"{{env}}/c{}\"\n\
                 period = \"{}us\"\nstart = \"{}us\"",
                p.channel, p.period_us, p.start_us
            )
            .unwrap();
            if let Some(c) = p.count {
                writeln!(w, "count = {c}").unwrap();
            }
            if let Some(k) = p.to {
                writeln!(w, "to = \"s{k}\"").unwrap();
            }
            writeln!(w).unwrap();
        }
        for (i, s) in self.sinks.iter().enumerate() {
            let chans: Vec<String> = s
                .channels
                .iter()
                .map(|c| format!("\"{{env}}/c{c}\""))
                .collect();
            writeln!(
                w,
                "[[agent]]\ntype = \"sink\"\nname = \"s{i}\"\nchannels = [{}]\ndelivery = \"{}\"",
                chans.join(", "),
                if s.pull { "pull" } else { "push" }
            )
            .unwrap();
            if let Some(d) = s.deadline_us {
                writeln!(w, "deadline = \"{d}us\"").unwrap();
            }
            writeln!(w).unwrap();
        }
        let names = self.agent_names();
        for (a, both, l) in &self.overrides {
            let name = &names[a % names.len()];
            writeln!(
                w,
                "[[network.link]]\nfrom = \"{name}\"\nto = \"broker\"\nboth = {both}\n{}",
                l.body()
            )
            .unwrap();
        }
        t
    }
}

fn publisher(n_sinks: usize) -> impl Strategy<Value = Publisher> {
    (
        2_000u64..200_000,
        0u64..50_000,
        0..CHANNELS,
        prop::option::of(1u64..40),
        prop::option::weighted(0.3, 0..n_sinks.max(1)),
    )
        .prop_map(move |(period_us, start_us, channel, count, to)| Publisher {
            period_us,
            start_us,
            channel,
            count,
            to: to.filter(|_| n_sinks > 0),
        })
}

fn sink() -> impl Strategy<Value = SinkGen> {
    (
        prop::collection::btree_set(0..CHANNELS, 1..=CHANNELS),
        prop::bool::weighted(0.25),
        prop::option::of(1_000u64..30_000),
    )
        .prop_map(|(channels, pull, deadline_us)| SinkGen {
            channels,
            pull,
            deadline_us,
        })
}

/// Random scenarios; `fifo: Some(true)` makes every link FIFO.
fn scenario(fifo: Option<bool>) -> impl Strategy<Value = Gen> {
    let grid = prop::collection::vec(prop::collection::vec(device(), 1..=3), 0..=4);
    let agents = (0usize..=3).prop_flat_map(|n_sinks| {
        (
            prop::collection::vec(publisher(n_sinks), 0..=3),
            prop::collection::vec(sink(), n_sinks),
        )
    });
    (
        (
            any::<u64>(),
            50_000u64..1_000_000,
            prop::option::of(100u64..=1000),
            1u64..=6,
            0u32..24,
            0u64..500,
            1usize..20,
        ),
        link(fifo),
        grid,
        agents,
        prop::collection::vec((0usize..64, any::<bool>(), link(fifo)), 0..=3),
    )
        .prop_filter(
            "a scenario needs a microgrid or a publisher",
            |(_, _, grid, (pubs, _), _)| !grid.is_empty() || !pubs.is_empty(),
        )
        .prop_map(
            |(
                (
                    seed,
                    step_us,
                    deadline_permille,
                    steps,
                    start_hour,
                    processing_us,
                    buffer_capacity,
                ),
                default,
                microgrids,
                (publishers, sinks),
                overrides,
            )| Gen {
                seed,
                step_us,
                deadline_permille,
                steps,
                start_hour,
                processing_us,
                buffer_capacity,
                default,
                microgrids,
                publishers,
                sinks,
                overrides,
            },
        )
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

fn load(text: &str) -> Scenario {
    Scenario::parse(text, "gen.toml", Path::new("."))
        .unwrap_or_else(|e| panic!("generated scenario does not load: {e}\n{text}"))
}

/// One run with every record kept.
struct Run {
    summary: Summary,
    records: Vec<Record>,
    agents: Vec<String>,
    channels: Vec<String>,
}

fn run(s: &Scenario, seed: u64) -> Run {
    let mut sim = s
        .builder(seed, 0)
        .trace_in_memory()
        .build()
        .expect("a validated scenario builds");
    let summary = s.run_sim(&mut sim).expect("the run stays within limits");
    Run {
        records: sim.records(),
        agents: sim.agent_names().to_vec(),
        channels: sim.channel_names().to_vec(),
        summary,
    }
}

fn digest(s: &Scenario, seed: u64) -> String {
    s.run(seed, 0).expect("run").digest
}

// ---------------------------------------------------------------------------
// Same inputs, same run
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn same_seed_same_records(g in scenario(None)) {
        let text = g.toml();
        let s = load(&text);
        let a = run(&s, g.seed);
        let b = run(&s, g.seed);
        prop_assert_eq!(&a.summary.digest, &b.summary.digest);
        prop_assert!(a.records == b.records, "record streams differ");
        prop_assert_eq!(&a.summary, &b.summary);
        // The in-memory trace target does not change what is hashed.
        prop_assert_eq!(&a.summary.digest, &digest(&s, g.seed));
        // Parsing the text again gives the same run.
        prop_assert_eq!(digest(&load(&text), g.seed), digest(&s, g.seed));
    }

    #[test]
    fn thread_placement_does_not_change_runs(
        gens in prop::collection::vec(scenario(None), 2..=4)
    ) {
        let scenarios: Vec<(Scenario, u64)> =
            gens.iter().map(|g| (load(&g.toml()), g.seed)).collect();
        // Each scenario twice, plus a second seed, so that the same work
        // lands on different worker threads in different orders.
        let jobs: Vec<(usize, u64)> = (0..scenarios.len())
            .flat_map(|i| {
                let seed = scenarios[i].1;
                [(i, seed), (i, seed.wrapping_add(1)), (i, seed)]
            })
            .collect();
        let sequential: Vec<String> =
            jobs.iter().map(|&(i, seed)| digest(&scenarios[i].0, seed)).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .expect("thread pool");
        let parallel: Vec<String> = pool.install(|| {
            jobs.par_iter()
                .rev()
                .map(|&(i, seed)| digest(&scenarios[i].0, seed))
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect()
        });
        prop_assert_eq!(&sequential, &parallel);
        for k in (0..jobs.len()).step_by(3) {
            prop_assert_eq!(&sequential[k], &sequential[k + 2]);
        }
    }
}

#[test]
fn seeds_differ_runs_differ() {
    // A guard against a generator or loader that ignores the seed: the
    // shipped lossy scenario under two seeds must not collide.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/two_agents.toml"),
    )
    .unwrap();
    let s = load(&text);
    assert_ne!(digest(&s, 1), digest(&s, 2));
    assert_eq!(digest(&s, 1), digest(&s, 1));
    // The environment index is part of every stream, too.
    let e1 = s.run(1, 1).unwrap().digest;
    assert_ne!(digest(&s, 1), e1);
}

// ---------------------------------------------------------------------------
// FIFO links never reorder
// ---------------------------------------------------------------------------

/// For each record kind, the records of a run grouped as the ordering
/// checks need them.
struct Flow {
    /// Route order of every routed message: msg id -> position.
    route_pos: BTreeMap<u64, usize>,
    /// Per sender: msg ids in the order they reached the broker.
    routes_by_sender: BTreeMap<u32, Vec<u64>>,
    /// Per recipient: msg ids (with sender) in the order they were delivered.
    delivered_to: BTreeMap<u32, Vec<(u64, u32)>>,
}

fn flow(records: &[Record]) -> Flow {
    let mut f = Flow {
        route_pos: BTreeMap::new(),
        routes_by_sender: BTreeMap::new(),
        delivered_to: BTreeMap::new(),
    };
    for r in records {
        match r.event {
            EventKind::Route => {
                let n = f.route_pos.len();
                assert!(
                    f.route_pos.insert(r.msg, n).is_none(),
                    "message {} routed twice",
                    r.msg
                );
                f.routes_by_sender.entry(r.sender).or_default().push(r.msg);
            }
            EventKind::Deliver => f
                .delivered_to
                .entry(r.node)
                .or_default()
                .push((r.msg, r.sender)),
            _ => {}
        }
    }
    f
}

/// Counts the adjacent inversions of `ids` (0 for an increasing sequence).
fn inversions(ids: impl Iterator<Item = u64>) -> usize {
    let v: Vec<u64> = ids.collect();
    v.windows(2).filter(|w| w[0] >= w[1]).count()
}

/// What the code guarantees on FIFO links (`Link::transmit` pushes an
/// arrival back to the previous one's; equal times pop in push order):
/// 1. one uplink per agent: a sender's messages reach the broker in the
///    order they were published (increasing msg id);
/// 2. one downlink per agent: a recipient gets its copies in the order the
///    broker routed them;
/// 3. hence per (sender, recipient): deliveries in increasing msg id.
fn assert_fifo(records: &[Record]) {
    let f = flow(records);
    for (sender, ids) in &f.routes_by_sender {
        assert_eq!(
            inversions(ids.iter().copied()),
            0,
            "sender {sender}: routed out of publish order: {ids:?}"
        );
    }
    for (recipient, got) in &f.delivered_to {
        let pos: Vec<u64> = got.iter().map(|(m, _)| f.route_pos[m] as u64).collect();
        assert_eq!(
            inversions(pos.iter().copied()),
            0,
            "recipient {recipient}: delivered out of route order"
        );
        let mut per_sender: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (m, s) in got {
            per_sender.entry(*s).or_default().push(*m);
        }
        for (s, ids) in per_sender {
            assert_eq!(
                inversions(ids.iter().copied()),
                0,
                "{s} -> {recipient}: delivered out of publish order: {ids:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fifo_links_never_reorder(g in scenario(Some(true))) {
        let s = load(&g.toml());
        let r = run(&s, g.seed);
        assert_fifo(&r.records);
        // The sinks' own reorder counters agree.
        let mut sim = s.build(g.seed, 0).unwrap();
        s.run_sim(&mut sim).unwrap();
        for k in 0..g.sinks.len() {
            let id = sim.agent_id(&format!("s{k}")).unwrap();
            let sink: &Sink = sim.agent(id).expect("sinks are Sink agents");
            prop_assert_eq!(sink.reordered(), 0);
        }
    }
}

/// A sensor publishing every millisecond over a link with 1–50 ms of jitter.
fn jittery(ordering: &str) -> String {
    format!(
        r#"
[simulation]
name = "jitter"
duration = "500ms"

[network.default]
latency = {{ dist = "uniform", min = "1ms", max = "50ms" }}
ordering = "{ordering}"

[[agent]]
type = "periodic"
name = "sensor"
channel = "{{env}}/t"
period = "1ms"

[[agent]]
type = "sink"
name = "collector"
channels = ["{{env}}/t"]
"#
    )
}

#[test]
fn unordered_links_with_jitter_do_reorder() {
    let unordered = load(&jittery("unordered"));
    let r = run(&unordered, 1);
    let f = flow(&r.records);
    let sensor = r.agents.iter().position(|a| a == "sensor").unwrap() as u32;
    let collector = r.agents.iter().position(|a| a == "collector").unwrap() as u32;
    let up = inversions(f.routes_by_sender[&sensor].iter().copied());
    let down = inversions(f.delivered_to[&collector].iter().map(|(m, _)| *m));
    assert!(up > 10, "uplink reorderings: {up}");
    assert!(down > 10, "end-to-end reorderings: {down}");
    let mut sim = unordered.build(1, 0).unwrap();
    unordered.run_sim(&mut sim).unwrap();
    let sink: &Sink = sim.agent(sim.agent_id("collector").unwrap()).unwrap();
    assert!(sink.reordered() > 0);

    // The same scenario on FIFO links: no reordering at all.
    let fifo = run(&load(&jittery("fifo")), 1);
    assert_fifo(&fifo.records);
    assert_eq!(fifo.summary.published, r.summary.published);
}

// ---------------------------------------------------------------------------
// Common random numbers
// ---------------------------------------------------------------------------

/// Two periodic publishers `a` and `b` and a sink; `a_link` is the body of
/// the `a -> broker` override.
fn crn_scenario(a_link: &str) -> String {
    format!(
        r#"
[simulation]
name = "crn"
duration = "2s"

[network.default]
latency = {{ dist = "lognormal", median = "5ms", sigma = 0.8 }}
loss = 0.1
ordering = "unordered"

[[network.link]]
from = "a"
to = "broker"
{a_link}

[[agent]]
type = "periodic"
name = "a"
channel = "{{env}}/a"
period = "7ms"

[[agent]]
type = "periodic"
name = "b"
channel = "{{env}}/b"
period = "5ms"

[[agent]]
type = "sink"
name = "s"
channels = ["{{env}}/a", "{{env}}/b"]
"#
    )
}

/// (sent, arrival at the broker) of every message from `sender` that got
/// there, and the send times of those lost on the way.
fn uplink_of(r: &Run, sender: &str) -> (Vec<(u64, u64)>, Vec<u64>) {
    let id = r.agents.iter().position(|a| a == sender).unwrap() as u32;
    let routed = r
        .records
        .iter()
        .filter(|x| x.event == EventKind::Route && x.sender == id)
        .map(|x| (x.sent_ns, x.time_ns))
        .collect();
    let lost = r
        .records
        .iter()
        .filter(|x| x.event == EventKind::Drop && x.sender == id && x.node == NODE_BROKER)
        .map(|x| x.sent_ns)
        .collect();
    (routed, lost)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn changing_one_link_leaves_other_links_draws_alone(
        lat in latency(),
        loss_milli in 0u32..=300,
        seed in any::<u64>(),
    ) {
        let base = load(&crn_scenario(
            "latency = { dist = \"constant\", value = \"1ms\" }",
        ));
        let changed = load(&crn_scenario(&format!(
            "latency = {}\nloss = 0.{loss_milli:03}",
            lat.toml()
        )));
        let (r0, r1) = (run(&base, seed), run(&changed, seed));
        let (b0, b1) = (uplink_of(&r0, "b"), uplink_of(&r1, "b"));
        prop_assert!(!b0.0.is_empty());
        prop_assert_eq!(b0, b1, "b's uplink changed with a's parameters");
    }
}

#[test]
fn common_random_numbers_are_not_vacuous() {
    // The override does change a's own arrivals, so the property above is
    // comparing something that could differ.
    let base = run(
        &load(&crn_scenario(
            "latency = { dist = \"constant\", value = \"1ms\" }",
        )),
        3,
    );
    let slow = run(
        &load(&crn_scenario(
            "latency = { dist = \"uniform\", min = \"1ms\", max = \"9ms\" }",
        )),
        3,
    );
    assert_ne!(uplink_of(&base, "a").0, uplink_of(&slow, "a").0);
    assert_eq!(uplink_of(&base, "b"), uplink_of(&slow, "b"));
    assert_ne!(base.summary.digest, slow.summary.digest);
}

// ---------------------------------------------------------------------------
// Conservation: nothing is lost silently
// ---------------------------------------------------------------------------

/// What became of one message.
#[derive(Default, Debug)]
struct Fate {
    published: u32,
    uplink_lost: u32,
    routed: u32,
    no_subscriber: u32,
    /// Per recipient: deliveries and drops (with reason) of its copy.
    copies: BTreeMap<u32, Vec<EventKind>>,
    channel: u32,
    recipient: u32,
}

fn check_conservation(g: &Gen, r: &Run) {
    let subs = g.subscribers();
    let agent_id = |n: &str| r.agents.iter().position(|a| a == n).unwrap() as u32;
    let mut fates: BTreeMap<u64, Fate> = BTreeMap::new();
    let mut counts: BTreeMap<EventKind, u64> = BTreeMap::new();
    let mut drops_by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for x in &r.records {
        *counts.entry(x.event).or_default() += 1;
        if x.event == EventKind::Timer {
            continue;
        }
        let f = fates.entry(x.msg).or_default();
        match x.event {
            EventKind::Publish => {
                f.published += 1;
                f.channel = x.channel;
                f.recipient = x.node;
            }
            EventKind::Route => f.routed += 1,
            EventKind::Drop => {
                let reason = Reason::from_code(x.detail).expect("a drop names its reason");
                *drops_by_reason.entry(reason.name().into()).or_default() += 1;
                if x.node == NODE_BROKER {
                    assert_eq!(reason, Reason::Loss, "uplink drop {x:?}");
                    f.uplink_lost += 1;
                } else if reason == Reason::NoSubscriber {
                    f.no_subscriber += 1;
                } else {
                    assert!(matches!(reason, Reason::Loss | Reason::Overflow), "{x:?}");
                    f.copies.entry(x.node).or_default().push(x.event);
                }
            }
            EventKind::Deliver => f.copies.entry(x.node).or_default().push(x.event),
            EventKind::Late => {}
            other => panic!("unexpected event {other:?} in {x:?}"),
        }
    }
    let mut in_flight = 0u64;
    for (id, f) in &fates {
        assert_eq!(f.published, 1, "msg {id}: {f:?}");
        assert!(f.uplink_lost + f.routed <= 1, "msg {id}: {f:?}");
        if f.uplink_lost == 1 {
            assert!(
                f.copies.is_empty() && f.no_subscriber == 0,
                "msg {id}: {f:?}"
            );
            continue;
        }
        if f.routed == 0 {
            // Still on its way to the broker.
            assert!(
                f.copies.is_empty() && f.no_subscriber == 0,
                "msg {id}: {f:?}"
            );
            in_flight += 1;
            continue;
        }
        let channel = &r.channels[f.channel as usize];
        let expected: BTreeSet<u32> = subs
            .get(channel)
            .into_iter()
            .flatten()
            .map(|n| agent_id(n))
            .filter(|&a| f.recipient == NODE_BROADCAST || f.recipient == a)
            .collect();
        if expected.is_empty() {
            assert_eq!(f.no_subscriber, 1, "msg {id} on {channel}: {f:?}");
            assert!(f.copies.is_empty(), "msg {id}: {f:?}");
            continue;
        }
        assert_eq!(f.no_subscriber, 0, "msg {id} on {channel}: {f:?}");
        for (node, events) in &f.copies {
            assert!(expected.contains(node), "msg {id}: copy for {node}: {f:?}");
            assert_eq!(events.len(), 1, "msg {id}: copy for {node} ended twice");
        }
        in_flight += (expected.len() - f.copies.len()) as u64;
    }
    let s = &r.summary;
    let count = |e: EventKind| counts.get(&e).copied().unwrap_or(0);
    assert_eq!(s.published, count(EventKind::Publish));
    assert_eq!(s.routed, count(EventKind::Route));
    assert_eq!(s.delivered, count(EventKind::Deliver));
    assert_eq!(s.dropped, count(EventKind::Drop));
    assert_eq!(s.late, count(EventKind::Late));
    assert_eq!(s.timers, count(EventKind::Timer));
    assert_eq!(s.dropped_by_reason, drops_by_reason);
    assert_eq!(s.trace_records, r.records.len() as u64);
    assert_eq!(s.latency.count, s.delivered);
    assert_eq!(
        s.in_flight, in_flight,
        "copies unaccounted for: the summary's in-flight count disagrees with the records"
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_message_is_accounted_for(g in scenario(None)) {
        let s = load(&g.toml());
        let r = run(&s, g.seed);
        check_conservation(&g, &r);
    }
}

#[test]
fn conservation_holds_on_a_lossy_scenario_with_overflow() {
    // Pull sinks with a tiny buffer overflow; a directed publisher to a sink
    // that does not subscribe is a no_subscriber drop; 30% loss everywhere.
    let g = Gen {
        seed: 11,
        step_us: 200_000,
        deadline_permille: Some(500),
        steps: 5,
        start_hour: 12,
        processing_us: 100,
        buffer_capacity: 3,
        default: LinkGen {
            latency: Lat::Lognormal(4_000, 90),
            loss_milli: 300,
            fifo: false,
        },
        microgrids: vec![vec![Dev::Storage(100, 50, 10, 90, 50), Dev::Pv(80, 10)]],
        publishers: vec![
            Publisher {
                period_us: 3_000,
                start_us: 0,
                channel: 0,
                count: None,
                to: None,
            },
            Publisher {
                period_us: 10_000,
                start_us: 500,
                channel: 1,
                count: Some(20),
                to: Some(0),
            },
        ],
        sinks: vec![
            SinkGen {
                channels: [0].into(),
                pull: true,
                deadline_us: None,
            },
            SinkGen {
                channels: [0, 1].into(),
                pull: false,
                deadline_us: Some(5_000),
            },
        ],
        overrides: vec![],
    };
    let r = run(&load(&g.toml()), g.seed);
    check_conservation(&g, &r);
    let by = &r.summary.dropped_by_reason;
    for reason in ["loss", "overflow", "no_subscriber"] {
        assert!(
            by.get(reason).copied().unwrap_or(0) > 0,
            "no {reason} drops: {by:?}"
        );
    }
    assert!(r.summary.late > 0);
}
