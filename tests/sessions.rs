//! Network sessions (`[broker.sessions]`, docs/broker_sessions.md):
//! subscriptions take effect when their packet reaches the broker, lost
//! packets are resent, the broker's registry learns of a crash by
//! keepalive, persistent sessions keep QoS 1 copies for an offline agent
//! (bounded), and everything is traced, conserved and deterministic.

use std::path::Path;

use busbar::network::FaultSpec;
use busbar::trace::export::detail;
use busbar::trace::{DETAIL_CONTROL, SessionOp, SessionPhase, session_detail};
use busbar::{
    Agent, ChannelId, Context, Delivery, EventKind, Message, Reason, Record, Scenario, SimDuration,
    SimTime, Summary,
};

mod common;
use common::assert_conserved;

/// A sensor publishing every 1 ms from 0 on a link of 1 ms, a collector on
/// a link of 5 ms (both ways), FIFO links.
const BASE: &str = r#"
[simulation]
name = "sessions"
seed = 3
duration = "3s"

[network.default]
latency = { dist = "constant", value = "1ms" }

[[network.link]]
from = "collector"
to = "broker"
both = true
latency = { dist = "constant", value = "5ms" }

[[agent]]
type = "periodic"
name = "sensor"
channel = "{env}/t"
period = "1ms"
count = 2000

[[agent]]
type = "sink"
name = "collector"
channels = ["{env}/t"]
"#;

const SESSIONS: &str = "[broker.sessions]\nkeepalive = \"100ms\"\n";
const QOS1: &str = "[[broker.channel]]\ntopic = \"{env}/t\"\nqos = \"at_least_once\"\nack_timeout = \"50ms\"\nmax_retries = 100\n";

fn run_seed(extra: &str, seed: u64) -> (Vec<Record>, Summary) {
    let text = format!("{BASE}\n{extra}");
    let sc = Scenario::parse(&text, "s.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(seed, 0).trace_in_memory().build().unwrap();
    sim.run_until(SimTime::ZERO + sc.spec().simulation.duration)
        .unwrap();
    let records = sim.records();
    let s = sim.finish().unwrap();
    assert_conserved(&s);
    (records, s)
}

fn run(extra: &str) -> (Vec<Record>, Summary) {
    run_seed(extra, 3)
}

const COLLECTOR: u32 = 1;

fn ms(r: &Record) -> f64 {
    r.time_ns as f64 / 1e6
}

fn sessions(rec: &[Record], op: SessionOp, phase: SessionPhase) -> Vec<Record> {
    rec.iter()
        .filter(|r| r.event == EventKind::Session && r.detail == session_detail(op, phase))
        .copied()
        .collect()
}

fn delivered_to(rec: &[Record], agent: u32) -> Vec<Record> {
    rec.iter()
        .filter(|r| r.event == EventKind::Deliver && r.node == agent)
        .copied()
        .collect()
}

#[test]
fn a_subscription_takes_effect_only_when_it_reaches_the_broker() {
    // Off: the collector subscribes at 0 and gets every message.
    let (rec, s) = run("");
    assert!(s.sessions.is_none());
    assert_eq!(delivered_to(&rec, COLLECTOR).len(), 2000);
    assert!(rec.iter().all(|r| r.event != EventKind::Session));

    // On: its SUBSCRIBE, sent at 0, reaches the broker 5 ms later; the
    // messages that reached it before (published at 0..=3 ms, each 1 ms on
    // its way) find no subscriber.
    let (rec, s) = run(SESSIONS);
    let subscribed = sessions(&rec, SessionOp::Subscribe, SessionPhase::Effect);
    assert_eq!(subscribed.len(), 1, "one subscribe took effect");
    assert_eq!(subscribed[0].time_ns, 5_000_000);
    assert_eq!(subscribed[0].node, COLLECTOR);
    let connects = sessions(&rec, SessionOp::Connect, SessionPhase::Effect);
    assert_eq!(connects.iter().filter(|r| r.node == COLLECTOR).count(), 1);
    let got = delivered_to(&rec, COLLECTOR);
    assert_eq!(got.len(), 2000 - 4, "{s:#?}");
    assert!(got.iter().all(|r| r.sent_ns >= 4_000_000));
    assert_eq!(s.dropped_by_reason["no_subscriber"], 4);
    // SUBACK and CONNACK come back 5 ms later.
    let acked = sessions(&rec, SessionOp::Subscribe, SessionPhase::Acked);
    assert_eq!(acked.len(), 1);
    assert_eq!(acked[0].time_ns, 10_000_000);
    let ss = s.sessions.as_ref().unwrap();
    assert_eq!(ss.counts.online, 2);
    assert_eq!(ss.counts.connects, 2);
    assert_eq!(ss.counts.keepalive_timeouts, 0);
    assert_eq!(ss.counts.control_lost, 0);
    // The CSV names the session events.
    assert_eq!(detail(&subscribed[0]), "subscribe");
    assert_eq!(detail(&acked[0]), "subscribe acked");
}

#[test]
fn a_lost_subscribe_is_resent_at_the_next_keepalive_until_acknowledged() {
    // The collector's uplink is down for its first 50 ms: CONNECT and
    // SUBSCRIBE are lost; it resends both at its tick (100 ms).
    let (rec, s) = run(&format!(
        "{SESSIONS}\n[[fault]]\nkind = \"link_down\"\nfrom = \"collector\"\nto = \"broker\"\nat = \"0s\"\nuntil = \"50ms\"\n"
    ));
    let lost: Vec<&Record> = rec
        .iter()
        .filter(|r| r.event == EventKind::Drop && r.detail & 0xff00 == DETAIL_CONTROL)
        .collect();
    assert_eq!(lost.len(), 2, "connect and subscribe lost");
    assert!(
        lost.iter()
            .all(|r| r.detail & 0xff == Reason::LinkDown as u16)
    );
    let resent = sessions(&rec, SessionOp::Subscribe, SessionPhase::Resent);
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].time_ns, 100_000_000);
    let subscribed = sessions(&rec, SessionOp::Subscribe, SessionPhase::Effect);
    assert_eq!(subscribed.len(), 1);
    assert_eq!(subscribed[0].time_ns, 105_000_000);
    let got = delivered_to(&rec, COLLECTOR);
    assert_eq!(got.len(), 2000 - 104);
    let ss = s.sessions.as_ref().unwrap();
    assert_eq!(ss.counts.control_lost, 2);
    assert!(ss.counts.control_resent >= 2);
    assert_eq!(detail(lost[0]), "link_down (control)");
}

/// The collector crashes at 1 s and restarts at 1.6 s.
const CRASH: &str =
    "[[fault]]\nkind = \"crash\"\nagent = \"collector\"\nat = \"1s\"\nrestart = \"1600ms\"\n";

#[test]
fn keepalive_detects_a_crash_within_one_and_a_half_keepalives() {
    let (rec, s) = run(&format!("{SESSIONS}\n{CRASH}"));
    let timeouts = sessions(&rec, SessionOp::KeepaliveTimeout, SessionPhase::Effect);
    assert_eq!(timeouts.len(), 1, "{s:#?}");
    let t = ms(&timeouts[0]);
    // The last ping before the crash was sent at 900 ms and heard at 905;
    // silence for 150 ms after that.
    assert_eq!(t, 1055.0);
    assert!(t > 1000.0 && t <= 1000.0 + 150.0 + 5.0);
    assert_eq!(timeouts[0].node, COLLECTOR);
    // Back online with its CONNECT after the restart.
    let connects = sessions(&rec, SessionOp::Connect, SessionPhase::Effect);
    let again: Vec<f64> = connects
        .iter()
        .filter(|r| r.node == COLLECTOR)
        .map(ms)
        .collect();
    assert_eq!(again, [5.0, 1605.0]);
    // Before the broker knew, copies reached the crashed agent (`crashed`);
    // after, QoS 0 copies for it were dropped at the broker (`offline`).
    let drops = |reason: Reason| -> Vec<f64> {
        rec.iter()
            .filter(|r| {
                r.event == EventKind::Drop && r.detail == reason as u16 && r.node == COLLECTOR
            })
            .map(ms)
            .collect()
    };
    let crashed = drops(Reason::Crashed);
    let offline = drops(Reason::Offline);
    assert!(
        !crashed.is_empty() && crashed.iter().all(|&t| (1000.0..1060.0).contains(&t)),
        "{crashed:?}"
    );
    assert!(!offline.is_empty() && offline.iter().all(|&t| (1055.0..1605.0).contains(&t)));
    assert_eq!(s.dropped_by_reason["offline"], offline.len() as u64);
    assert_eq!(s.sessions.as_ref().unwrap().counts.online, 2);
}

#[test]
fn a_crashed_agent_gets_its_kept_qos1_copies_when_it_reconnects() {
    let (rec, s) = run(&format!("{SESSIONS}\n{CRASH}\n{QOS1}"));
    let ss = s.sessions.as_ref().unwrap();
    // Published while the broker counted it offline: 1055 - 1 ms .. 1605 - 1 ms.
    assert!(ss.counts.queued >= 540, "{s:#?}");
    assert_eq!(ss.counts.resumed, ss.counts.queued);
    assert_eq!(ss.held, 0);
    assert!(!s.dropped_by_reason.contains_key("offline"), "{s:#?}");
    let queued = sessions(&rec, SessionOp::Queued, SessionPhase::Effect);
    let resumed = sessions(&rec, SessionOp::Resumed, SessionPhase::Effect);
    assert!(resumed.iter().all(|r| r.time_ns == 1_605_000_000));
    let mut q: Vec<u64> = queued.iter().map(|r| r.msg).collect();
    let r: Vec<u64> = resumed.iter().map(|r| r.msg).collect();
    assert_eq!(q, r, "resumed in the order kept");
    // Every kept copy is delivered to the collector after its restart.
    let got: Vec<(u64, u64)> = delivered_to(&rec, COLLECTOR)
        .iter()
        .map(|r| (r.msg, r.time_ns))
        .collect();
    q.sort_unstable();
    for m in &q {
        let t = got.iter().find(|(g, _)| g == m).map(|g| g.1);
        assert!(
            t.is_some_and(|t| t >= 1_610_000_000),
            "kept copy {m} not delivered"
        );
    }
    // Nothing published is lost: QoS 1 and a persistent session.
    let mut msgs: Vec<u64> = got.iter().map(|g| g.0).collect();
    msgs.sort_unstable();
    msgs.dedup();
    assert_eq!(msgs.len() as u64, 2000 - 4, "{s:#?}");
}

#[test]
fn a_session_keeps_at_most_session_queue_copies_and_drops_the_rest_as_overflow() {
    let (rec, s) = run(&format!(
        "[broker.sessions]\nkeepalive = \"100ms\"\nsession_queue = 7\n\n{CRASH}\n{QOS1}"
    ));
    let ss = s.sessions.as_ref().unwrap();
    assert_eq!(ss.counts.queued, 7, "{s:#?}");
    assert!(ss.counts.overflow_drops > 500, "{s:#?}");
    assert!(s.dropped_by_reason["overflow"] >= ss.counts.overflow_drops);
    // The queue never held more than the bound.
    let mut held = 0i64;
    for r in &rec {
        if r.event == EventKind::Session && r.node == COLLECTOR {
            match r.detail {
                d if d == session_detail(SessionOp::Queued, SessionPhase::Effect) => held += 1,
                d if d == session_detail(SessionOp::Resumed, SessionPhase::Effect) => held -= 1,
                _ => {}
            }
        }
        assert!(held <= 7);
    }
    assert_eq!(held, 0);
}

#[test]
fn offline_qos0_and_clean_sessions_drop_with_reason_offline() {
    // QoS 0, persistent: nothing kept.
    let (_, s) = run(&format!("{SESSIONS}\n{CRASH}"));
    let ss = s.sessions.as_ref().unwrap();
    assert_eq!(ss.counts.queued, 0);
    assert!(s.dropped_by_reason["offline"] > 500);
    // QoS 1, clean session: nothing kept either.
    let (_, s) = run(&format!(
        "[broker.sessions]\nkeepalive = \"100ms\"\npersistent = false\n\n{CRASH}\n{QOS1}"
    ));
    let ss = s.sessions.as_ref().unwrap();
    assert_eq!(ss.counts.queued, 0);
    assert!(s.dropped_by_reason["offline"] > 500, "{s:#?}");
}

#[test]
fn an_expired_session_drops_what_it_kept() {
    let (rec, s) = run(&format!(
        "[broker.sessions]\nkeepalive = \"100ms\"\nsession_expiry = \"200ms\"\n\n{CRASH}\n{QOS1}"
    ));
    let ss = s.sessions.as_ref().unwrap();
    let expired = sessions(&rec, SessionOp::SessionExpired, SessionPhase::Effect);
    assert_eq!(expired.len(), 1);
    assert_eq!(ms(&expired[0]), 1255.0);
    assert_eq!(ss.counts.sessions_expired, 1);
    assert!(ss.counts.expired_drops >= 190, "{s:#?}");
    assert!(s.dropped_by_reason["offline"] >= ss.counts.expired_drops + 300);
    assert_eq!(ss.counts.resumed, 0);
}

#[test]
fn same_seed_same_digest_and_lossy_sessions_stay_conserved() {
    let lossy = format!(
        "[broker.sessions]\nkeepalive = \"20ms\"\n\n{CRASH}\n{QOS1}\n[[network.link]]\nfrom = \"*\"\nto = \"*\"\nloss = 0.2\nduplicate = 0.05\n"
    );
    let (a, sa) = run_seed(&lossy, 11);
    let (b, sb) = run_seed(&lossy, 11);
    assert_eq!(sa.digest, sb.digest);
    assert_eq!(a, b);
    let (_, sc) = run_seed(&lossy, 12);
    assert_ne!(sa.digest, sc.digest);
    let ss = sa.sessions.as_ref().unwrap();
    assert!(
        ss.counts.control_lost > 0 && ss.counts.keepalive_timeouts > 0,
        "{sa:#?}"
    );
    assert!(ss.counts.control_duplicated > 0, "{sa:#?}");
    // With sessions on, the run differs from the same scenario without.
    let (_, off) = run_seed(
        &lossy.replace("[broker.sessions]\nkeepalive = \"20ms\"\n", ""),
        11,
    );
    assert_ne!(off.digest, sa.digest);
    assert!(off.sessions.is_none());
}

#[test]
fn session_settings_are_validated_at_their_key() {
    let text = format!(
        "{BASE}\n[broker.sessions]\nkeepalive = \"10us\"\nsession_queue = 0\nsession_expiry = \"1s\"\npersistent = false\n"
    );
    let Err(err) = Scenario::parse(&text, "s.toml", Path::new(".")) else {
        panic!("invalid settings accepted");
    };
    let err = err.to_string();
    for key in [
        "broker.sessions.keepalive",
        "broker.sessions.session_queue",
        "broker.sessions.session_expiry",
    ] {
        assert!(err.contains(key), "{key} missing from: {err}");
    }
    assert!(err.contains("s.toml:"), "{err}");
    let unknown = format!("{BASE}\n[broker.sessions]\nkeep_alive = \"1s\"\n");
    let Err(err) = Scenario::parse(&unknown, "s.toml", Path::new(".")) else {
        panic!("unknown key accepted");
    };
    let err = err.to_string();
    assert!(err.contains("keep_alive"), "{err}");
}

#[test]
fn the_example_of_docs_broker_sessions_runs_and_resumes_kept_copies() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/broker_sessions.md"),
    )
    .unwrap();
    let start = doc.find("```toml\n").expect("a toml block") + 8;
    let end = start + doc[start..].find("```").unwrap();
    let sc = Scenario::parse(&doc[start..end], "doc.toml", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(1, 0).build().unwrap();
    sim.run_until(SimTime::ZERO + sc.spec().simulation.duration)
        .unwrap();
    let s = sim.finish().unwrap();
    assert_conserved(&s);
    let ss = s.sessions.as_ref().unwrap();
    // The crash, and any ping the 1 % loss took (1.5 × keepalive: one lost
    // ping is enough).
    assert!(ss.counts.keepalive_timeouts >= 1, "{s:#?}");
    assert!(ss.counts.resumed > 20, "{s:#?}");
}

/// Subscribes to `env0/t` at its start and unsubscribes at 20 ms.
struct Flip {
    ch: Option<ChannelId>,
    got: u64,
}

impl Agent for Flip {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("env0/t");
        self.ch = Some(ch);
        ctx.subscribe(ch, Delivery::Push);
        ctx.set_timer(SimDuration::from_millis(20), 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _tag: u64) {
        ctx.unsubscribe(self.ch.unwrap());
    }
    fn on_message(&mut self, _ctx: &mut Context<'_>, _msg: &Message) {
        self.got += 1;
    }
}

#[test]
fn a_late_resend_never_undoes_a_newer_unsubscribe() {
    // `flip`'s SUBSCRIBE (0 ms) is lost on its uplink, down until 10 ms;
    // its UNSUBSCRIBE (20 ms) arrives at 21 ms; the SUBSCRIBE, resent at the
    // 100 ms tick, arrives after it and must not take effect.
    let text = format!("{BASE}\n{SESSIONS}");
    let sc = Scenario::parse(&text, "s.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let fault: FaultSpec = toml::from_str(
        "kind = \"link_down\"\nfrom = \"flip\"\nto = \"broker\"\nat = \"0s\"\nuntil = \"10ms\"\n",
    )
    .unwrap();
    let mut sim = sc
        .builder(3, 0)
        .agent("flip", Flip { ch: None, got: 0 })
        .fault(fault)
        .trace_in_memory()
        .build()
        .unwrap();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let rec = sim.records();
    let s = sim.finish().unwrap();
    assert_conserved(&s);
    const FLIP: u32 = 2;
    let mine = |op, phase| -> Vec<f64> {
        sessions(&rec, op, phase)
            .iter()
            .filter(|r| r.node == FLIP)
            .map(ms)
            .collect()
    };
    assert_eq!(mine(SessionOp::Unsubscribe, SessionPhase::Effect), [21.0]);
    assert_eq!(mine(SessionOp::Subscribe, SessionPhase::Resent), [100.0]);
    // Acknowledged, but not applied.
    assert_eq!(mine(SessionOp::Subscribe, SessionPhase::Acked), [102.0]);
    assert_eq!(
        mine(SessionOp::Subscribe, SessionPhase::Effect),
        [] as [f64; 0]
    );
    assert!(delivered_to(&rec, FLIP).is_empty());
}

#[test]
fn a_wildcard_subscription_travels_too() {
    let text = BASE.replace("channels = [\"{env}/t\"]", "channels = [\"{env}/#\"]");
    let sc = Scenario::parse(&format!("{text}\n{SESSIONS}"), "s.toml", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(3, 0).trace_in_memory().build().unwrap();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let rec = sim.records();
    let s = sim.finish().unwrap();
    assert_conserved(&s);
    let effect = sessions(&rec, SessionOp::SubscribeFilter, SessionPhase::Effect);
    assert_eq!(effect.iter().map(ms).collect::<Vec<_>>(), [5.0]);
    assert_eq!(detail(&effect[0]), "subscribe_filter");
    // Until it arrived, nobody subscribed (the collector's CONNECT arrived
    // with it: not `offline`).
    assert_eq!(s.dropped_by_reason.get("no_subscriber"), Some(&4));
    assert_eq!(s.dropped_by_reason.get("offline"), None);
    let got = delivered_to(&rec, COLLECTOR);
    // Published at 4 ms (the first after the filter took effect) to 994 ms
    // (delivered at 1 s).
    assert_eq!(got.len(), 991);
    assert!(got.iter().all(|r| r.sent_ns >= 4_000_000));
}

#[test]
fn a_session_trace_file_reads_back_replays_and_feeds_the_entity_metrics() {
    use busbar::metrics::entity::EntityMetrics;
    use busbar::replay::{Comparison, replay};
    use busbar::trace::TraceReader;
    use std::io::{BufReader, BufWriter};

    let text = format!("{BASE}\n{SESSIONS}\n{CRASH}");
    let sc = Scenario::parse(&text, "s.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bin");
    let file = std::fs::File::create(&path).unwrap();
    let mut sim = sc
        .builder(3, 0)
        .trace_to(Box::new(BufWriter::new(file)), sc.header(3, 0))
        .build()
        .unwrap();
    let s = sc.run_sim(&mut sim).unwrap();
    let open = || TraceReader::new(BufReader::new(std::fs::File::open(&path).unwrap())).unwrap();
    let records = open().read_all().unwrap();
    assert_eq!(records.len() as u64, s.trace_records);
    let n_sessions = records
        .iter()
        .filter(|r| r.event == EventKind::Session)
        .count();
    assert!(n_sessions > 60, "{n_sessions}");
    match replay(&mut open()).unwrap() {
        Comparison::Identical(n) => assert_eq!(n, s.trace_records),
        other => panic!("{other:?}"),
    }
    // Offline drops are per-channel drops; control packets count for no
    // channel.
    let m = EntityMetrics::from_trace(&mut open()).unwrap();
    let t = m.totals().counts;
    assert_eq!(t.dropped(Reason::Offline), s.dropped_by_reason["offline"]);
    assert_eq!(t.dropped_total(), s.dropped);
    assert_eq!(t.acks_dropped, s.qos.counts.acks_dropped);
}

#[test]
fn the_registry_says_who_is_online_as_the_run_goes() {
    let text = format!("{BASE}\n{SESSIONS}\n{CRASH}");
    let sc = Scenario::parse(&text, "s.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(3, 0).build().unwrap();
    let collector = sim.agent_id("collector").unwrap();
    let at = |ms: u64| SimTime::ZERO + SimDuration::from_millis(ms);
    // Offline until its CONNECT arrives (5 ms); online through the crash
    // (1 s) until the keepalive timeout (1055 ms); online again with the
    // CONNECT after its restart (1605 ms).
    for (t, want) in [
        (4, false),
        (6, true),
        (1054, true),
        (1056, false),
        (1604, false),
        (1606, true),
    ] {
        sim.run_until(at(t)).unwrap();
        assert_eq!(sim.online(collector), Some(want), "at {t} ms");
    }
    let plain = Scenario::parse(BASE, "s.toml", Path::new(".")).unwrap();
    let sim = plain.builder(3, 0).build().unwrap();
    assert_eq!(sim.online(collector), None);
}

mod props {
    //! Random networks, faults, policies and session settings: every
    //! identity holds, the trace agrees with the counters, the bound holds,
    //! and a run is a function of its seed.

    use super::*;
    use busbar::agent::builtin::{Periodic, Sink};
    use busbar::{BrokerConfig, LinkModel, SessionConfig, SimBuilder};
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    struct Case {
        subscribers: usize,
        qos1: bool,
        keepalive_ms: u64,
        persistent: bool,
        expiry_ms: Option<u64>,
        queue: usize,
        loss: f64,
        duplicate: f64,
        corrupt: f64,
        broker_down: Option<(u64, u64)>,
        crash: Option<(usize, u64, u64)>,
        seed: u64,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            (1usize..4, any::<bool>(), 0u64..80, any::<bool>()),
            (proptest::option::of(1u64..300), 1usize..40),
            (0.0..0.3f64, 0.0..0.2f64, 0.0..0.1f64),
            (
                proptest::option::of((0u64..1500, 10u64..500)),
                proptest::option::of((0usize..3, 0u64..1500, 10u64..800)),
            ),
            any::<u64>(),
        )
            .prop_map(
                |(
                    (subscribers, qos1, keepalive_ms, persistent),
                    (expiry_ms, queue),
                    (loss, duplicate, corrupt),
                    (broker_down, crash),
                    seed,
                )| Case {
                    subscribers,
                    qos1,
                    // 0 (off) or at least 1 ms.
                    keepalive_ms: if keepalive_ms < 5 { 0 } else { keepalive_ms },
                    persistent,
                    expiry_ms: expiry_ms.filter(|_| persistent),
                    queue,
                    loss,
                    duplicate,
                    corrupt,
                    broker_down,
                    crash,
                    seed,
                },
            )
    }

    fn fault(text: &str) -> busbar::network::FaultSpec {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn run(c: &Case) -> (Vec<Record>, Summary) {
        let link: LinkModel = toml::from_str(&format!(
            "latency = {{ dist = \"uniform\", min = \"1ms\", max = \"6ms\" }}\n\
             loss = {}\nduplicate = {}\ncorrupt = {}\n",
            c.loss, c.duplicate, c.corrupt
        ))
        .unwrap();
        let mut broker: BrokerConfig = if c.qos1 {
            toml::from_str(
                "[[channel]]\ntopic = \"#\"\nqos = \"at_least_once\"\nack_timeout = \"30ms\"\nmax_retries = 3\n",
            )
            .unwrap()
        } else {
            BrokerConfig::default()
        };
        broker.sessions = Some(SessionConfig {
            keepalive: SimDuration::from_millis(c.keepalive_ms),
            persistent: c.persistent,
            session_expiry: c.expiry_ms.map(SimDuration::from_millis),
            session_queue: c.queue,
            ..SessionConfig::default()
        });
        let mut b = SimBuilder::new(c.seed)
            .default_link(link)
            .broker(broker)
            .trace_in_memory()
            .agent(
                "p",
                Periodic::new("env0/c", SimDuration::from_millis(3)).limit(Some(600)),
            );
        for s in 0..c.subscribers {
            b = b.agent(
                &format!("s{s}"),
                Sink::new(&["env0/#".into()], Delivery::Push, None),
            );
        }
        if let Some((at, d)) = c.broker_down {
            b = b.fault(fault(&format!(
                "kind = \"broker_down\"\nat = \"{at}ms\"\nuntil = \"{}ms\"\n",
                at + d
            )));
        }
        if let Some((i, at, d)) = c.crash {
            b = b.fault(fault(&format!(
                "kind = \"crash\"\nagent = \"s{}\"\nat = \"{at}ms\"\nrestart = \"{}ms\"\n",
                i % c.subscribers,
                at + d
            )));
        }
        let mut sim = b.build().unwrap();
        sim.run_until(SimTime::ZERO + SimDuration::from_secs(3))
            .unwrap();
        let rec = sim.records();
        (rec, sim.finish().unwrap())
    }

    fn check(c: &Case) -> Result<(), TestCaseError> {
        let (rec, s) = run(c);
        assert_conserved(&s);
        let ss = s.sessions.as_ref().unwrap();
        let k = &ss.counts;
        let session = |op, phase| sessions(&rec, op, phase).len() as u64;
        let effect = |op| session(op, SessionPhase::Effect);
        prop_assert_eq!(effect(SessionOp::Queued), k.queued);
        prop_assert_eq!(effect(SessionOp::Resumed), k.resumed);
        prop_assert_eq!(effect(SessionOp::KeepaliveTimeout), k.keepalive_timeouts);
        prop_assert_eq!(effect(SessionOp::SessionExpired), k.sessions_expired);
        let all_ops = |phase| -> u64 { SessionOp::ALL.iter().map(|&op| session(op, phase)).sum() };
        prop_assert_eq!(
            all_ops(SessionPhase::Sent) + all_ops(SessionPhase::Resent),
            k.control_sent
        );
        prop_assert_eq!(all_ops(SessionPhase::Resent), k.control_resent);
        prop_assert_eq!(all_ops(SessionPhase::Acked), k.acks_arrived);
        let flagged = |flag: u16| {
            rec.iter()
                .filter(|r| r.event == EventKind::Drop && r.detail & 0xff00 == flag)
                .count() as u64
        };
        prop_assert_eq!(flagged(DETAIL_CONTROL), k.control_lost);
        prop_assert_eq!(flagged(busbar::trace::DETAIL_CONTROL_ACK), k.acks_lost);
        let offline = rec
            .iter()
            .filter(|r| r.event == EventKind::Drop && r.detail == Reason::Offline as u16)
            .count() as u64;
        prop_assert_eq!(
            offline,
            s.dropped_by_reason.get("offline").copied().unwrap_or(0)
        );
        if !c.qos1 || !c.persistent {
            prop_assert_eq!(k.queued, 0);
        }
        if c.keepalive_ms == 0 {
            prop_assert_eq!(k.control_resent + k.keepalive_timeouts, 0);
        }
        // No session ever keeps more than `session_queue` copies.
        let mut kept = vec![0usize; c.subscribers + 1];
        for r in &rec {
            if r.event != EventKind::Session {
                continue;
            }
            let a = r.node as usize;
            if r.detail == session_detail(SessionOp::Queued, SessionPhase::Effect) {
                kept[a] += 1;
                prop_assert!(kept[a] <= c.queue);
            } else if r.detail == session_detail(SessionOp::Resumed, SessionPhase::Effect) {
                kept[a] -= 1;
            } else if r.detail == session_detail(SessionOp::SessionExpired, SessionPhase::Effect) {
                kept[a] = 0;
            }
        }
        prop_assert_eq!(kept.iter().sum::<usize>() as u64, ss.held);
        Ok(())
    }

    proptest! {
        #![proptest_config(common::proptest_config(24))]

        #[test]
        fn random_sessions_stay_conserved_and_bounded(c in case()) {
            check(&c)?;
        }
    }

    #[test]
    fn random_sessions_are_a_function_of_the_seed() {
        let c = Case {
            subscribers: 3,
            qos1: true,
            keepalive_ms: 20,
            persistent: true,
            expiry_ms: Some(150),
            queue: 10,
            loss: 0.2,
            duplicate: 0.1,
            corrupt: 0.05,
            broker_down: Some((700, 200)),
            crash: Some((1, 300, 500)),
            seed: 9,
        };
        let (a, sa) = run(&c);
        let (b, sb) = run(&c);
        assert_eq!(sa.digest, sb.digest);
        assert_eq!(a, b);
        assert!(check(&c).is_ok());
    }
}
