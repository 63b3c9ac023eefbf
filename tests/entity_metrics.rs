//! Metrics per channel and per agent (`SimBuilder::entity_metrics`,
//! `busbar run --metrics`, `busbar metrics`): their sums are the summary's
//! counters, the live table equals the table computed from the trace file,
//! turning them on changes nothing in the run, and the CLI writes them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use busbar::metrics::EntityMetrics;
use busbar::metrics::entity::{METRICS, MetricRow};
use busbar::trace::TraceReader;
use busbar::trace::export::Names;
use busbar::{
    Agent, ChannelId, Context, Delivery, MessageKind, Payload, Reason, Recipient, Scenario,
    SimBuilder, SimDuration, Simulation, Summary,
};

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// Lossy, duplicating links, a link that goes down, TTLs, exactly-once and
/// at-least-once channels, a pull subscriber that never consumes (so its
/// buffer fills and overflows): every counter has something to count.
const BUSY: &str = r#"
[simulation]
name = "busy"
seed = 11
duration = "3s"

[broker]
buffer_capacity = 20

[network.default]
latency = { dist = "uniform", min = "1ms", max = "4ms" }
loss = 0.1
duplicate = 0.05

[[broker.channel]]
topic = "{env}/eo"
qos = "exactly_once"
ack_timeout = "20ms"
max_retries = 2
ttl = "200ms"

[[broker.channel]]
topic = "{env}/al"
qos = "at_least_once"
ack_timeout = "20ms"
max_retries = 3

[[agent]]
type = "periodic"
name = "s1"
channel = "{env}/eo"
period = "10ms"

[[agent]]
type = "periodic"
name = "s2"
channel = "{env}/al"
period = "7ms"

[[agent]]
type = "periodic"
name = "s3"
channel = "{env}/plain"
period = "5ms"

[[agent]]
type = "sink"
name = "collector"
channels = ["{env}/eo", "{env}/al", "{env}/plain"]
deadline = "5ms"

[[agent]]
type = "sink"
name = "puller"
channels = ["{env}/al", "{env}/plain"]
delivery = "pull"

[[fault]]
kind = "link_down"
from = "broker"
to = "collector"
at = "1s"
until = "1.2s"
"#;

fn busy() -> Scenario {
    Scenario::parse(BUSY, "busy.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn shipped(name: &str) -> Scenario {
    Scenario::from_file(&scenario_path(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `sc` to its end with entity metrics on (and `trace` as the trace
/// file, if given).
fn run_with_metrics(sc: &Scenario, trace: Option<&Path>) -> (Simulation, Summary) {
    let mut b = sc.builder(sc.seed(), 0).entity_metrics(true);
    if let Some(t) = trace {
        let f = std::fs::File::create(t).unwrap();
        b = b.trace_to(
            Box::new(std::io::BufWriter::new(f)),
            sc.header(sc.seed(), 0),
        );
    }
    let mut sim = b.build().unwrap();
    let s = sc.run_sim(&mut sim).unwrap();
    (sim, s)
}

fn names(sim: &Simulation) -> (Vec<String>, Vec<String>, Vec<(u8, String)>) {
    (
        sim.agent_names(),
        sim.channel_names().to_vec(),
        sim.kind_names().table().to_vec(),
    )
}

fn rows_of(sim: &Simulation) -> Vec<MetricRow> {
    let (agents, channels, kinds) = names(sim);
    let n = Names {
        agents: &agents,
        channels: &channels,
        kinds: &kinds,
        routers: sim.router_names(),
        env: sim.env(),
    };
    sim.entity_metrics().unwrap().rows(&n)
}

/// Every check that the per-entity counters add up to the summary's.
fn assert_sums_match(m: &EntityMetrics, s: &Summary) {
    let q = &s.qos.counts;
    let t = m.totals();
    let c = &t.counts;
    // The run's totals are the channels' sums.
    let sum = |f: fn(&busbar::metrics::entity::Counters) -> u64| {
        m.channels().iter().map(|e| f(&e.counts)).sum::<u64>()
    };
    assert_eq!(sum(|c| c.published), c.published);
    assert_eq!(sum(|c| c.delivered), c.delivered);
    assert_eq!(sum(|c| c.dropped_total()), c.dropped_total());
    assert_eq!(
        (c.published, c.routed, c.delivered, c.late),
        (s.published, s.routed, s.delivered, s.late)
    );
    assert_eq!(c.dropped_total(), s.dropped);
    for r in Reason::ALL {
        assert_eq!(
            c.dropped(r),
            s.dropped_by_reason.get(r.name()).copied().unwrap_or(0),
            "dropped {}",
            r.name()
        );
    }
    assert_eq!(c.duplicated, s.duplicated_uplink + s.duplicated_downlink);
    assert_eq!(c.duplicates_suppressed, q.duplicates_suppressed);
    assert_eq!(c.retransmitted_uplink, q.retransmitted_uplink);
    assert_eq!(c.retransmitted_downlink, q.retransmitted_downlink);
    assert_eq!(c.expired_uplink, q.expired_uplink);
    assert_eq!(c.expired_publishes, q.expired_publishes);
    assert_eq!(c.expired_deliveries, q.expired_deliveries);
    assert_eq!(c.dead_lettered_publishes, q.dead_lettered_publishes);
    assert_eq!(c.dead_lettered_deliveries, q.dead_lettered_deliveries);
    assert_eq!(c.acks_received + c.pubacks_received, q.acks_received);
    assert_eq!(c.acks_dropped, q.acks_dropped);
    assert_eq!(c.acks_duplicated, q.acks_duplicated);
    assert_eq!(t.latency_percentiles(), s.latency, "merged latency");
    // Every delivery has an agent as its recipient; every publish an
    // agent as its publisher.
    let agents = |f: fn(&busbar::metrics::entity::Counters) -> u64| {
        m.agents().iter().map(|e| f(&e.counts)).sum::<u64>()
    };
    assert_eq!(agents(|c| c.delivered), s.delivered);
    assert_eq!(agents(|c| c.published), s.published);
    assert_eq!(agents(|c| c.routed), s.routed);
    assert_eq!(agents(|c| c.late), s.late);
    let agent_latencies: u64 = m
        .agents()
        .iter()
        .map(|a| a.latency_percentiles().count)
        .sum();
    assert_eq!(agent_latencies, s.latency.count);
    assert_eq!(m.records(), s.trace_records);
}

#[test]
fn per_channel_sums_equal_the_summary_on_a_shipped_scenario() {
    let (sim, s) = run_with_metrics(&shipped("lossy_jitter.toml"), None);
    let m = sim.entity_metrics().expect("asked for");
    assert!(s.dropped > 0 && s.delivered > 0, "{s:?}");
    assert!(m.channels().len() > 3, "one per channel the run used");
    assert_sums_match(m, &s);
}

#[test]
fn per_channel_sums_equal_the_summary_with_guarantees_faults_and_pull() {
    let (sim, s) = run_with_metrics(&busy(), None);
    let q = &s.qos.counts;
    // The scenario exercises what it is meant to.
    for (what, v) in [
        ("retransmitted_downlink", q.retransmitted_downlink),
        ("retransmitted_uplink", q.retransmitted_uplink),
        ("duplicates_suppressed", q.duplicates_suppressed),
        ("acks_dropped", q.acks_dropped),
        ("dead_lettered_deliveries", q.dead_lettered_deliveries),
        ("late", s.late),
        (
            "overflow",
            s.dropped_by_reason.get("overflow").copied().unwrap_or(0),
        ),
        (
            "link_down",
            s.dropped_by_reason.get("link_down").copied().unwrap_or(0),
        ),
        ("duplicated", s.duplicated_downlink),
    ] {
        assert!(v > 0, "{what} is 0: {s:#?}");
    }
    let m = sim.entity_metrics().unwrap();
    assert_sums_match(m, &s);
    // The pull subscriber never consumes: its buffers fill to capacity.
    let puller = sim.agent_id("puller").unwrap().0;
    let lags: Vec<(u32, u64, u64)> = m
        .lags()
        .map(|(a, c, l)| {
            assert_eq!(a, puller, "only the puller has pull buffers");
            (c, l.max, l.now)
        })
        .collect();
    assert_eq!(lags.len(), 2, "{lags:?}");
    for (_, max, now) in lags {
        assert_eq!((max, now), (20, 20), "buffer_capacity");
    }
    let p = &m.agents()[puller as usize].counts;
    assert!(p.dropped(Reason::Overflow) > 0);
}

/// The rows without consumer lag (which only a live run knows).
fn without_lag(rows: Vec<MetricRow>) -> Vec<MetricRow> {
    rows.into_iter()
        .filter(|r| !r.metric.starts_with("consumer_lag"))
        .collect()
}

#[test]
fn the_live_table_equals_the_table_of_the_trace_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, sc) in [
        ("busy", busy()),
        ("lossy_jitter", shipped("lossy_jitter.toml")),
    ] {
        let path = dir.path().join(format!("{name}.bin"));
        let (sim, s) = run_with_metrics(&sc, Some(&path));
        let live = rows_of(&sim);
        let f = std::fs::File::open(&path).unwrap();
        let mut r = TraceReader::new(std::io::BufReader::new(f)).unwrap();
        let from_file = EntityMetrics::from_trace(&mut r).unwrap();
        assert_eq!(from_file.records(), s.trace_records);
        let footer = r.footer();
        let n = Names {
            agents: &footer.agents,
            channels: &footer.channels,
            kinds: &footer.kinds,
            routers: &footer.routers,
            env: 0,
        };
        let file_rows = from_file.rows(&n);
        assert!(
            file_rows
                .iter()
                .all(|r| !r.metric.starts_with("consumer_lag")),
            "{name}: a file has no lag"
        );
        assert_eq!(file_rows, without_lag(live), "{name}");
    }
}

#[test]
fn entity_metrics_do_not_change_the_run() {
    for sc in [
        busy(),
        shipped("two_agents.toml"),
        shipped("lossy_jitter.toml"),
    ] {
        let plain = sc.run(sc.seed(), 0).unwrap();
        let (sim, with) = run_with_metrics(&sc, None);
        assert_eq!(plain, with, "{}", sc.name());
        // With the trace off, the records are still made and counted.
        let mut off = sc
            .builder(sc.seed(), 0)
            .trace_off()
            .entity_metrics(true)
            .build()
            .unwrap();
        sc.run_sim(&mut off).unwrap();
        assert_eq!(rows_of(&off), rows_of(&sim), "{}", sc.name());
        // And off means off.
        let mut none = sc.build(sc.seed(), 0).unwrap();
        sc.run_sim(&mut none).unwrap();
        assert!(none.entity_metrics().is_none());
    }
}

/// Publishes `n` messages, one per millisecond.
struct Burst {
    n: u32,
    ch: Option<ChannelId>,
}
impl Agent for Burst {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.ch = Some(ctx.channel("c"));
        ctx.set_timer(SimDuration::ZERO, 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        if self.n == 0 {
            return;
        }
        self.n -= 1;
        let ch = self.ch.unwrap();
        ctx.publish(ch, Recipient::Broadcast, MessageKind::INFO, Payload::Empty);
        ctx.set_timer(SimDuration::from_millis(1), 0);
    }
}

/// Pulls: at 100 ms consumes `take` copies.
struct Reader {
    take: usize,
}
impl Agent for Reader {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("c");
        ctx.subscribe(ch, Delivery::Pull);
        ctx.set_timer(SimDuration::from_millis(100), 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        let ch = ctx.channel("c");
        for _ in 0..self.take {
            ctx.consume(ch).expect("waiting");
        }
    }
}

#[test]
fn consumer_lag_is_the_buffer_peak_and_what_is_left() {
    let mut sim = SimBuilder::new(3)
        .agent("burst", Burst { n: 12, ch: None })
        .agent("reader", Reader { take: 5 })
        .agent("idle", Reader { take: 0 })
        .entity_metrics(true)
        .build()
        .unwrap();
    sim.run().unwrap();
    sim.finish().unwrap();
    let m = sim.entity_metrics().unwrap();
    let l = m.lag(1, 0).unwrap();
    assert_eq!((l.max, l.now), (12, 7));
    let l = m.lag(2, 0).unwrap();
    assert_eq!((l.max, l.now), (12, 12));
    assert_eq!(m.lag(0, 0), None, "the publisher pulls nothing");
    let rows = rows_of(&sim);
    let get = |t: &str, e: &str, metric: &str| {
        rows.iter()
            .find(|r| r.entity_type == t && r.entity == e && r.metric == metric)
            .unwrap_or_else(|| panic!("{t} {e} {metric}"))
            .value
    };
    assert_eq!(get("subscription", "reader/c", "consumer_lag_end"), Some(7));
    assert_eq!(get("agent", "idle", "consumer_lag_max"), Some(12));
    assert_eq!(get("channel", "c", "consumer_lag_end"), Some(19));
    assert_eq!(get("run", "all", "consumer_lag_max"), Some(12));
    assert_eq!(get("channel", "c", "delivered"), Some(24));
    assert!(
        !rows
            .iter()
            .any(|r| r.entity == "burst" && r.metric.starts_with("consumer_lag")),
        "an agent without pull buffers has no lag rows"
    );
}

#[test]
fn docs_define_every_metric() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md"))
            .expect("docs/metrics.md");
    for (name, unit) in METRICS {
        let row = format!("| `{name}` |");
        let line = doc
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("docs/metrics.md has no row for {name}"));
        assert!(
            line.contains(&format!("| {unit} |")),
            "{name}: unit {unit}: {line}"
        );
    }
}

// ----- the command line ----------------------------------------------------

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn busbar<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .output()
        .expect("the busbar binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(o: &Out) {
    assert_eq!(o.code, 0, "stdout:\n{}\nstderr:\n{}", o.stdout, o.stderr);
}

fn bad(o: &Out, mentions: &str) {
    assert_eq!(o.code, 2, "stdout:\n{}\nstderr:\n{}", o.stdout, o.stderr);
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    assert!(
        o.stderr.contains("error") && o.stderr.contains(mentions),
        "wanted an error naming {mentions}:\n{}",
        o.stderr
    );
}

fn digest(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("digest: "))
        .expect("a digest line")
}

#[test]
fn run_metrics_writes_the_tidy_csv_and_metrics_recomputes_it_from_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario_path("two_agents.toml");
    let (trace, live, again) = (
        dir.path().join("t.bin"),
        dir.path().join("live.csv"),
        dir.path().join("again.csv"),
    );
    let with = busbar([
        OsStr::new("run"),
        sc.as_os_str(),
        OsStr::new("--trace"),
        trace.as_os_str(),
        OsStr::new("--metrics"),
        live.as_os_str(),
    ]);
    ok(&with);
    let plain = busbar([OsStr::new("run"), sc.as_os_str()]);
    ok(&plain);
    assert_eq!(digest(&with.stdout), digest(&plain.stdout));

    let text = std::fs::read_to_string(&live).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("entity_type,entity,metric,value,unit"));
    assert_eq!(
        lines.next(),
        Some("channel,env0/telemetry,published,101,messages")
    );
    for want in [
        "agent,sensor,published,101,messages",
        "agent,collector,delivered,",
        "run,all,latency_p99_ns,",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    // 1 channel + 2 agents + the run, every metric but the lag.
    assert_eq!(text.lines().count(), 1 + 4 * (METRICS.len() - 2));

    ok(&busbar([
        OsStr::new("metrics"),
        trace.as_os_str(),
        OsStr::new("-o"),
        again.as_os_str(),
    ]));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
    let to_stdout = busbar([OsStr::new("metrics"), trace.as_os_str()]);
    ok(&to_stdout);
    assert_eq!(to_stdout.stdout, text);
}

#[test]
fn metrics_errors_exit_2_and_leave_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let sc = scenario_path("two_agents.toml");
    let nowhere = dir.path().join("no/such/dir/m.csv");
    let o = busbar([
        OsStr::new("run"),
        sc.as_os_str(),
        OsStr::new("--metrics"),
        nowhere.as_os_str(),
    ]);
    bad(&o, "m.csv");
    assert!(!o.stdout.contains("digest"), "fails before the run");

    // The metrics over the scenario itself: refused, scenario untouched.
    let copy = dir.path().join("s.toml");
    std::fs::copy(&sc, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    bad(
        &busbar([
            OsStr::new("run"),
            copy.as_os_str(),
            OsStr::new("--metrics"),
            copy.as_os_str(),
        ]),
        "s.toml",
    );
    assert_eq!(std::fs::read(&copy).unwrap(), before);

    // A missing trace, a scenario given as a trace, a corrupt trace.
    let out = dir.path().join("out.csv");
    let missing = dir.path().join("missing.bin");
    bad(
        &busbar([
            OsStr::new("metrics"),
            missing.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
        ]),
        "missing.bin",
    );
    bad(
        &busbar([
            OsStr::new("metrics"),
            copy.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
        ]),
        "s.toml",
    );
    let trace = dir.path().join("t.bin");
    ok(&busbar([
        OsStr::new("run"),
        sc.as_os_str(),
        OsStr::new("--trace"),
        trace.as_os_str(),
    ]));
    let mut bytes = std::fs::read(&trace).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let flipped = dir.path().join("flipped.bin");
    std::fs::write(&flipped, &bytes).unwrap();
    bad(
        &busbar([
            OsStr::new("metrics"),
            flipped.as_os_str(),
            OsStr::new("-o"),
            out.as_os_str(),
        ]),
        "flipped.bin",
    );
    assert!(!out.exists(), "no output from a failed command");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(names.is_empty(), "temporary files left: {names:?}");
}
