//! The broker as a server (docs/broker_server.md): queueing theory's closed
//! forms (M/M/1, M/D/1, M/M/2), the bounded queue and its overflow
//! policies, backpressure, outages, the pull buffers' `drop_oldest`, the
//! conservation identities of docs/summary.md with the new terms, and
//! determinism.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

use busbar::broker::{BufferOverflow, ChannelSpec, QueueOverflow};
use busbar::network::{FaultSpec, Latency, LinkModel};
use busbar::{
    Agent, BrokerConfig, ChannelId, Context, Delivery, EventKind, MessageKind, Payload, Reason,
    Recipient, Record, Scenario, SimBuilder, SimDuration, SimTime, Simulation, Summary,
};

/// Publishes on "c" with exponential inter-arrival times of mean `mean_ns`
/// (a Poisson process drawn from its own stream), until `until`.
struct Poisson {
    mean_ns: f64,
    until: SimTime,
    channel: &'static str,
    ch: Option<ChannelId>,
}

impl Poisson {
    fn new(rate_per_s: f64, until: SimTime) -> Poisson {
        Poisson {
            mean_ns: 1e9 / rate_per_s,
            until,
            channel: "c",
            ch: None,
        }
    }
    fn next(&mut self, ctx: &mut Context<'_>) {
        let gap = ctx.rng().exponential(self.mean_ns);
        let at = ctx.now() + SimDuration::from_nanos_f64(gap);
        if at < self.until {
            ctx.set_timer_at(at, 0);
        }
    }
}

impl Agent for Poisson {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.ch = Some(ctx.channel(self.channel));
        self.next(ctx);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        let ch = self.ch.expect("started");
        ctx.publish(ch, Recipient::Broadcast, MessageKind::INFO, Payload::Empty);
        self.next(ctx);
    }
}

/// Subscribes to "c" (push or pull) and never consumes.
struct Sub(Delivery);

impl Agent for Sub {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let c = ctx.channel("c");
        ctx.subscribe(c, self.0);
        for name in ["hi", "lo"] {
            let c = ctx.channel(name);
            ctx.subscribe(c, self.0);
        }
    }
}

fn us(n: u64) -> SimDuration {
    SimDuration::from_micros(n)
}

fn constant_links() -> LinkModel {
    LinkModel {
        latency: Latency::Constant { value: us(100) },
        ..LinkModel::default()
    }
}

/// One Poisson publisher of `rate` messages/s for `secs` s, one push
/// subscriber, the broker `broker`; runs until everything drained.
fn poisson(broker: BrokerConfig, rate: f64, secs: u64, seed: u64) -> (Summary, Vec<Record>) {
    let until = SimTime::ZERO + SimDuration::from_secs(secs);
    let mut sim = pub_sub(broker, seed, Poisson::new(rate, until));
    let records = sim.records();
    (sim.finish().unwrap(), records)
}

/// `publisher` and one push subscriber through `broker`, run to the end.
fn pub_sub(broker: BrokerConfig, seed: u64, publisher: impl Agent + 'static) -> Simulation {
    let mut sim = SimBuilder::new(seed)
        .default_link(constant_links())
        .broker(broker)
        .agent("pub", publisher)
        .agent("sub", Sub(Delivery::Push))
        .trace_in_memory()
        .build()
        .unwrap();
    sim.run().unwrap();
    sim
}

fn exp_service(mean: SimDuration) -> BrokerConfig {
    BrokerConfig {
        service: Some(Latency::Exponential {
            mean,
            min: SimDuration::ZERO,
        }),
        queue_capacity: Some(1 << 20),
        ..BrokerConfig::default()
    }
}

/// Mean waiting time over several seeds, ns, and mean utilisation.
fn measured(broker: &BrokerConfig, rate: f64, seeds: std::ops::Range<u64>) -> (f64, f64) {
    let (mut w, mut u, n) = (0.0, 0.0, seeds.end - seeds.start);
    for seed in seeds {
        let (s, _) = poisson(broker.clone(), rate, 10, seed);
        let b = s.broker_server.expect("a server model");
        assert_eq!(b.overflow_drops, 0);
        assert_eq!(b.served, s.published);
        w += b.wait.mean_ns as f64;
        // Over the publishing time only (the run ends when the last
        // message is delivered, a little after).
        u += b.busy_ns as f64 / (10e9 * f64::from(b.workers));
    }
    (w / n as f64, u / n as f64)
}

fn assert_near(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * want,
        "{what}: measured {got:.1}, closed form {want:.1} (tolerance {:.1} %)",
        rel * 100.0
    );
}

#[test]
fn mm1_waiting_time_and_utilisation_match_the_closed_form() {
    // λ = 12 500/s, μ = 25 000/s: ρ = 0.5, Wq = ρ/(μ−λ) = 40 µs.
    let (lambda, mu) = (12_500.0, 25_000.0);
    let rho = lambda / mu;
    let (w, u) = measured(&exp_service(us(40)), lambda, 1..5);
    assert_near("M/M/1 Wq (ns)", w, rho / (mu - lambda) * 1e9, 0.05);
    assert_near("M/M/1 utilisation", u, rho, 0.01);
}

#[test]
fn md1_waiting_time_matches_pollaczek_khinchine() {
    // Constant service 1/μ (rate = μ): Wq = ρ/(2μ(1−ρ)) = 20 µs, half of
    // M/M/1's, which the test would notice.
    let (lambda, mu) = (12_500.0, 25_000.0);
    let rho = lambda / mu;
    let broker = BrokerConfig {
        rate: Some(mu),
        queue_capacity: Some(1 << 20),
        ..BrokerConfig::default()
    };
    let (w, u) = measured(&broker, lambda, 1..5);
    assert_near(
        "M/D/1 Wq (ns)",
        w,
        rho / (2.0 * mu * (1.0 - rho)) * 1e9,
        0.05,
    );
    assert_near("M/D/1 utilisation", u, rho, 0.01);
}

#[test]
fn mm2_waiting_time_matches_erlang_c() {
    // Two workers of μ = 12 500/s each, λ = 15 000/s: ρ = λ/(2μ) = 0.6,
    // P(wait) = 2ρ²/(1+ρ), Wq = P(wait)/(2μ−λ).
    let (lambda, mu) = (15_000.0, 12_500.0);
    let rho = lambda / (2.0 * mu);
    let p_wait = 2.0 * rho * rho / (1.0 + rho);
    let broker = BrokerConfig {
        workers: Some(2),
        ..exp_service(us(80))
    };
    let (w, u) = measured(&broker, lambda, 1..5);
    assert_near("M/M/2 Wq (ns)", w, p_wait / (2.0 * mu - lambda) * 1e9, 0.06);
    assert_near("M/M/2 utilisation", u, rho, 0.01);
}

/// The conservation identities of docs/summary.md, and the trace agrees.
fn assert_conserved(s: &Summary, records: &[Record]) {
    let no_sub = s
        .dropped_by_reason
        .get("no_subscriber")
        .copied()
        .unwrap_or(0);
    assert_eq!(
        s.published + s.duplicated_uplink,
        s.routed + s.dropped_uplink + s.in_flight_uplink + s.at_broker,
        "uplink identity: {s:?}"
    );
    assert_eq!(
        s.copies + s.duplicated_downlink + s.evicted,
        s.delivered + s.dropped_downlink + s.in_flight_downlink,
        "downlink identity: {s:?}"
    );
    assert_eq!(s.dropped, s.dropped_uplink + s.dropped_downlink + no_sub);
    assert_eq!(s.in_flight, s.in_flight_uplink + s.in_flight_downlink);
    let count = |k: EventKind| records.iter().filter(|r| r.event == k).count() as u64;
    assert_eq!(count(EventKind::Publish), s.published);
    assert_eq!(count(EventKind::Route), s.routed);
    assert_eq!(count(EventKind::Deliver), s.delivered);
    assert_eq!(count(EventKind::Drop), s.dropped);
    if let Some(b) = &s.broker_server {
        assert_eq!(s.at_broker, b.queued + b.in_service + b.held);
        assert_eq!(
            b.arrived,
            b.served + b.overflow_drops + b.outage_drops + s.at_broker,
            "server identity: {b:?}"
        );
        assert_eq!(b.served, s.routed);
    }
}

/// An overloaded broker: λ = 2μ, a queue of 8.
fn overloaded(overflow: QueueOverflow) -> BrokerConfig {
    BrokerConfig {
        queue_capacity: Some(8),
        queue_overflow: Some(overflow),
        ..exp_service(us(80))
    }
}

#[test]
fn the_queue_never_exceeds_its_capacity_and_overflow_is_counted_at_the_broker() {
    for overflow in [QueueOverflow::RejectNew, QueueOverflow::DropOldest] {
        let (s, rec) = poisson(overloaded(overflow), 25_000.0, 1, 7);
        let b = s.broker_server.clone().unwrap();
        assert_eq!(b.queue_length_max, 8, "{overflow:?}");
        assert!(b.queue_length_mean > 4.0 && b.queue_length_mean <= 8.0);
        let enq: Vec<&Record> = rec
            .iter()
            .filter(|r| r.event == EventKind::Enqueue)
            .collect();
        assert!(!enq.is_empty());
        assert!(enq.iter().all(|r| (1..=8).contains(&r.detail)));
        // About half the messages overflow (λ = 2μ).
        let over = s.dropped_by_reason["overflow"];
        assert_eq!(over, b.overflow_drops);
        assert!(
            over * 3 > s.published && over * 3 < 2 * s.published,
            "{s:?}"
        );
        assert_eq!(s.dropped_uplink, over);
        assert!(b.utilisation > 0.95, "{b:?}");
        assert_conserved(&s, &rec);
    }
}

#[test]
fn reject_new_drops_the_arrival_and_drop_oldest_the_oldest_waiting() {
    for overflow in [QueueOverflow::RejectNew, QueueOverflow::DropOldest] {
        let (_, rec) = poisson(overloaded(overflow), 25_000.0, 1, 7);
        // Under drop_oldest a dropped message had entered the queue before
        // (its `enqueue` is earlier than its drop); under reject_new never.
        let mut enqueued = std::collections::BTreeSet::new();
        let mut checked = 0;
        for r in &rec {
            match r.event {
                EventKind::Enqueue => {
                    enqueued.insert(r.msg);
                }
                EventKind::Drop if r.detail == Reason::Overflow as u16 => {
                    checked += 1;
                    assert_eq!(
                        enqueued.contains(&r.msg),
                        overflow == QueueOverflow::DropOldest,
                        "{overflow:?}: message {}",
                        r.msg
                    );
                }
                _ => {}
            }
        }
        assert!(checked > 100);
    }
}

#[test]
fn block_holds_messages_back_and_loses_none() {
    let (s, rec) = poisson(overloaded(QueueOverflow::Block), 15_000.0, 1, 3);
    let b = s.broker_server.clone().unwrap();
    assert_eq!(b.overflow_drops, 0);
    assert_eq!(s.dropped, 0);
    // Everything is eventually served: the run drains.
    assert_eq!(
        (b.served, s.delivered, s.at_broker),
        (s.published, s.published, 0)
    );
    assert!(b.blocked > 0 && b.blocked_ns > 0, "{b:?}");
    assert!(b.queue_length_max <= 8 && b.held_max > 0);
    // Waiting includes blocked time: a blocked message waits longer than a
    // full queue's worth of service on average.
    assert!(b.wait.max_ns > 8 * 80_000, "{b:?}");
    assert_conserved(&s, &rec);
}

#[test]
fn little_law_holds_for_the_time_weighted_queue_length() {
    // L_q = λ W_q, exactly in the areas: ∫ queue dt = Σ waits (every
    // message served, none blocked); the histogram's mean is within 0.1 %.
    let (s, rec) = poisson(exp_service(us(40)), 20_000.0, 2, 11);
    let b = s.broker_server.clone().unwrap();
    let area = b.queue_length_mean * s.sim_time_ns as f64;
    let waits = b.wait.mean_ns as f64 * b.wait.count as f64;
    assert_near("∫ queue dt vs Σ waits", area, waits, 0.002);
    assert_eq!(b.wait.count, s.published);
    assert_conserved(&s, &rec);
}

/// A broker of one worker with a constant 1 ms service, 2 000 messages/s
/// (ρ = 2: the queue fills) and a broker outage from 200 ms to 300 ms.
fn with_outage(seed: u64) -> (Summary, Vec<Record>) {
    let until = SimTime::ZERO + SimDuration::from_millis(500);
    let mut sim = SimBuilder::new(seed)
        .default_link(constant_links())
        .broker(BrokerConfig {
            rate: Some(1000.0),
            queue_capacity: Some(50),
            queue_overflow: Some(QueueOverflow::Block),
            ..BrokerConfig::default()
        })
        .fault(FaultSpec::BrokerDown {
            at: SimDuration::from_millis(200),
            until: Some(SimDuration::from_millis(300)),
        })
        .agent("pub", Poisson::new(2000.0, until))
        .agent("sub", Sub(Delivery::Push))
        .trace_in_memory()
        .build()
        .unwrap();
    sim.run().unwrap();
    let rec = sim.records();
    (sim.finish().unwrap(), rec)
}

#[test]
fn an_outage_loses_every_message_the_broker_holds_at_its_start() {
    let (s, rec) = with_outage(5);
    let b = s.broker_server.clone().unwrap();
    let at_200 = 200_000_000;
    let lost_at_start: Vec<&Record> = rec
        .iter()
        .filter(|r| r.event == EventKind::Drop && r.detail == Reason::BrokerDown as u16)
        .filter(|r| r.time_ns == at_200)
        .collect();
    // 1 in service + 50 queued + the blocked ones (ρ = 2 for 200 ms).
    assert!(lost_at_start.len() > 51, "{}", lost_at_start.len());
    assert_eq!(lost_at_start.len() as u64, b.outage_drops);
    assert!(
        lost_at_start
            .iter()
            .all(|r| r.node == busbar::trace::NODE_BROKER)
    );
    // The service under way at 200 ms never finishes: no route in (200, 300] ms.
    assert!(
        !rec.iter()
            .any(|r| r.event == EventKind::Route && r.time_ns > at_200 && r.time_ns <= 300_000_000)
    );
    // Arrivals during the outage are refused as before the server model.
    let refused = rec
        .iter()
        .filter(|r| r.event == EventKind::Drop && r.detail == Reason::BrokerDown as u16)
        .filter(|r| r.time_ns > at_200)
        .count();
    assert!(refused > 100, "{refused}");
    // Service resumes after it.
    assert!(
        rec.iter()
            .any(|r| r.event == EventKind::Route && r.time_ns > 300_000_000)
    );
    assert_conserved(&s, &rec);
}

#[test]
fn the_run_is_a_function_of_the_seed() {
    let a = with_outage(9).0;
    let b = with_outage(9).0;
    let c = with_outage(10).0;
    assert_eq!(a, b);
    assert_ne!(a.digest, c.digest);
    let x = poisson(overloaded(QueueOverflow::DropOldest), 25_000.0, 1, 1).0;
    let y = poisson(overloaded(QueueOverflow::DropOldest), 25_000.0, 1, 1).0;
    assert_eq!(x.digest, y.digest);
}

#[test]
fn conservation_holds_when_the_run_ends_with_messages_at_the_broker() {
    for overflow in [
        QueueOverflow::RejectNew,
        QueueOverflow::DropOldest,
        QueueOverflow::Block,
    ] {
        let until = SimTime::ZERO + SimDuration::from_secs(1);
        let mut sim = SimBuilder::new(2)
            .default_link(constant_links())
            .broker(overloaded(overflow))
            .agent("pub", Poisson::new(25_000.0, until))
            .agent("sub", Sub(Delivery::Push))
            .trace_in_memory()
            .build()
            .unwrap();
        sim.run_until(SimTime::ZERO + SimDuration::from_millis(500))
            .unwrap();
        let rec = sim.records();
        let s = sim.finish().unwrap();
        assert!(s.at_broker > 0 && s.in_flight > 0, "{overflow:?}");
        if overflow == QueueOverflow::Block {
            assert!(s.broker_server.as_ref().unwrap().held > 0);
        }
        assert_conserved(&s, &rec);
    }
}

/// Publishes `n` messages on "c" at once.
struct Burst(u64);

impl Agent for Burst {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let c = ctx.channel("c");
        for i in 0..self.0 {
            ctx.publish(
                c,
                Recipient::Broadcast,
                MessageKind::INFO,
                Payload::values(&[i as f64]),
            );
        }
    }
}

fn pull_burst(overflow: BufferOverflow) -> (Summary, Vec<Record>) {
    let mut sim = SimBuilder::new(1)
        .broker(BrokerConfig {
            buffer_capacity: 4,
            buffer_overflow: overflow,
            ..BrokerConfig::default()
        })
        .agent("sub", Sub(Delivery::Pull))
        .agent("pub", Burst(10))
        .trace_in_memory()
        .build()
        .unwrap();
    sim.run().unwrap();
    let rec = sim.records();
    (sim.finish().unwrap(), rec)
}

#[test]
fn a_full_pull_buffer_rejects_the_new_copy_or_evicts_the_oldest() {
    let (s, rec) = pull_burst(BufferOverflow::RejectNew);
    assert_eq!((s.delivered, s.evicted, s.dropped), (4, 0, 6));
    let dropped: Vec<u64> = rec
        .iter()
        .filter(|r| r.event == EventKind::Drop)
        .map(|r| r.msg)
        .collect();
    assert_eq!(dropped, [4, 5, 6, 7, 8, 9]);
    assert_conserved(&s, &rec);

    let (s, rec) = pull_burst(BufferOverflow::DropOldest);
    // Every copy entered the buffer (delivered); the 6 oldest were evicted.
    assert_eq!((s.delivered, s.evicted, s.dropped), (10, 6, 6));
    assert_eq!(s.dropped_by_reason["overflow"], 6);
    let dropped: Vec<u64> = rec
        .iter()
        .filter(|r| r.event == EventKind::Drop)
        .map(|r| r.msg)
        .collect();
    assert_eq!(dropped, [0, 1, 2, 3, 4, 5]);
    assert_conserved(&s, &rec);
}

#[test]
fn drop_oldest_leaves_the_newest_copies_in_the_buffer() {
    struct Reader(Vec<f64>);
    impl Agent for Reader {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            let c = ctx.channel("c");
            ctx.subscribe(c, Delivery::Pull);
            ctx.set_timer(SimDuration::from_secs(1), 0);
        }
        fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
            let c = ctx.channel("c");
            while let Some(m) = ctx.consume(c) {
                self.0.push(m.payload.as_f64s()[0]);
            }
        }
    }
    let mut sim = SimBuilder::new(1)
        .broker(BrokerConfig {
            buffer_capacity: 3,
            buffer_overflow: BufferOverflow::DropOldest,
            ..BrokerConfig::default()
        })
        .agent("r", Reader(Vec::new()))
        .agent("pub", Burst(10))
        .build()
        .unwrap();
    sim.run().unwrap();
    let r: &Reader = sim.agent(sim.agent_id("r").unwrap()).unwrap();
    assert_eq!(r.0, [7.0, 8.0, 9.0]);
}

#[test]
fn the_server_model_from_a_scenario_file_reports_its_figures() {
    let text = r#"
[simulation]
name = "server"
duration = "1s"

[broker]
service = { dist = "lognormal", median = "40us", sigma = 0.3 }
workers = 2
queue_capacity = 100
queue_overflow = "drop_oldest"
buffer_overflow = "drop_oldest"

[[agent]]
type = "periodic"
name = "p"
channel = "c"
period = "1ms"

[[agent]]
type = "sink"
name = "s"
channels = ["c"]
"#;
    let sc = Scenario::parse(text, "s.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(1, 0).trace_in_memory().build().unwrap();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let rec = sim.records();
    let s = sim.finish().unwrap();
    let b = s.broker_server.clone().unwrap();
    assert_eq!(b.workers, 2);
    assert!(
        b.served > 900 && b.utilisation > 0.01 && b.utilisation < 0.05,
        "{b:?}"
    );
    // One publisher 1 ms apart, services ≈ 40 µs: nobody ever waits.
    assert_eq!((b.queue_length_max, b.wait.max_ns), (0, 0));
    assert_conserved(&s, &rec);
    let json = serde_json::to_value(&s).unwrap();
    for key in [
        "served",
        "utilisation",
        "queue_length_mean",
        "queue_length_max",
        "wait",
        "overflow_drops",
        "blocked",
        "blocked_ns",
    ] {
        assert!(json["broker_server"].get(key).is_some(), "{key}");
    }
    assert_eq!(json["at_broker"], s.at_broker);
    assert!(s.at_broker <= 2);
    assert_eq!(json["evicted"], 0);
}

#[test]
fn without_a_server_model_the_summary_says_so() {
    let (s, _) = poisson(BrokerConfig::default(), 1000.0, 1, 1);
    assert_eq!((s.broker_server, s.at_broker, s.evicted), (None, 0, 0));
    let json = serde_json::to_value(poisson(BrokerConfig::default(), 1000.0, 1, 1).0).unwrap();
    assert!(json["broker_server"].is_null());
}

/// Runs `busbar check` on `text`; its stderr.
fn check(text: &str) -> String {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("bad.toml");
    fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args([OsStr::new("check"), path.as_os_str()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "bad.toml")
}

const MINIMAL: &str = r#"[simulation]
name = "x"
duration = "1s"

[[agent]]
type = "periodic"
name = "p"
channel = "c"
period = "1ms"

[broker]
"#;

#[test]
fn check_locates_bad_server_settings() {
    let err = check(&format!(
        "{MINIMAL}service = {{ dist = \"lognormal\", median = \"0s\", sigma = 0.3 }}\nworkers = 0\n"
    ));
    assert!(
        err.contains("bad.toml:12:33: broker.service.median:"),
        "{err}"
    );
    assert!(err.contains("bad.toml:13:1: broker.workers:"), "{err}");
    let err = check(&format!(
        "{MINIMAL}rate = 1000\nservice = {{ dist = \"constant\", value = \"1ms\" }}\n"
    ));
    assert!(
        err.contains("bad.toml:12:1: broker.rate:") && err.contains("not both"),
        "{err}"
    );
    let err = check(&format!("{MINIMAL}queue_overflow = \"spill\"\nrate = 10\n"));
    assert!(err.contains("broker.queue_overflow"), "{err}");
    let err = check(&format!("{MINIMAL}queue_capacity = 5\n"));
    assert!(
        err.contains("bad.toml:12:1: broker.queue_capacity:") && err.contains("server model"),
        "{err}"
    );
    let err = check(&format!("{MINIMAL}workerz = 2\n"));
    assert!(err.contains("workerz"), "{err}");
}

// ---------------------------------------------------------------------------
// Priority levels (docs/broker_server.md, "Priority levels")

/// `priority = p` on channel `topic`.
fn prioritised(mut broker: BrokerConfig, levels: &[(&str, u8)]) -> BrokerConfig {
    for &(topic, p) in levels {
        broker.channels.push(ChannelSpec {
            topic: topic.into(),
            priority: Some(p),
            ..ChannelSpec::default()
        });
    }
    broker
}

#[test]
fn two_priority_classes_match_cobhams_formula() {
    // Non-preemptive priority M/M/1 (Cobham 1954): class k waits
    // W0 / ((1 − σ(k−1)) (1 − σk)), with W0 = Σ λi E[Si²]/2 = ρ/μ for
    // exponential service and σk the load of classes 1..k, highest first.
    // λhi = λlo = 8 750/s, μ = 25 000/s: ρ = 0.7, W0 = 28 µs,
    // Whi = 28/0.65 = 43.1 µs, Wlo = 28/(0.65 × 0.3) = 143.6 µs (FIFO
    // would give both ρ/(μ−λ) = 93.3 µs).
    let (lambda, mu) = (8_750.0, 25_000.0);
    let (rho_hi, rho) = (lambda / mu, 2.0 * lambda / mu);
    let w0 = rho / mu;
    let broker = prioritised(exp_service(us(40)), &[("hi", 7), ("lo", 0)]);
    let (mut hi, mut lo) = (0.0, 0.0);
    let seeds = 1..5u64;
    for seed in seeds.clone() {
        let until = SimTime::ZERO + SimDuration::from_secs(10);
        let mut sim = SimBuilder::new(seed)
            .default_link(constant_links())
            .broker(broker.clone())
            .agent(
                "pub_hi",
                Poisson {
                    channel: "hi",
                    ..Poisson::new(lambda, until)
                },
            )
            .agent(
                "pub_lo",
                Poisson {
                    channel: "lo",
                    ..Poisson::new(lambda, until)
                },
            )
            .agent("sub", Sub(Delivery::Push))
            .build()
            .unwrap();
        sim.run().unwrap();
        let s = sim.finish().unwrap();
        let b = s.broker_server.expect("a server model");
        let levels: Vec<u8> = b.wait_by_priority.iter().map(|w| w.priority).collect();
        assert_eq!(levels, vec![7, 0], "highest first");
        assert_eq!(
            b.wait_by_priority.iter().map(|w| w.served).sum::<u64>(),
            b.served
        );
        hi += b.wait_by_priority[0].wait.mean_ns as f64;
        lo += b.wait_by_priority[1].wait.mean_ns as f64;
    }
    let n = (seeds.end - seeds.start) as f64;
    assert_near(
        "high class Wq (ns)",
        hi / n,
        w0 / (1.0 - rho_hi) * 1e9,
        0.06,
    );
    assert_near(
        "low class Wq (ns)",
        lo / n,
        w0 / ((1.0 - rho_hi) * (1.0 - rho)) * 1e9,
        0.06,
    );
}

/// Publishes `burst` (channel, count) at time 0, in order.
struct Mixed(Vec<(&'static str, u32)>);

impl Agent for Mixed {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        for &(name, n) in &self.0 {
            let ch = ctx.channel(name);
            for _ in 0..n {
                ctx.publish(ch, Recipient::Broadcast, MessageKind::INFO, Payload::Empty);
            }
        }
    }
}

/// Runs one burst through a one-worker constant-time broker; the channel
/// names in the order the broker routed them, and the channels of the
/// messages dropped at the broker.
fn mixed(broker: BrokerConfig, burst: Vec<(&'static str, u32)>) -> (Vec<String>, Vec<String>) {
    let sim = pub_sub(broker, 3, Mixed(burst));
    let records = sim.records();
    let names = |k: EventKind, node: Option<u32>| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.event == k && node.is_none_or(|n| r.node == n))
            .map(|r| sim.channel_names()[r.channel as usize].clone())
            .collect()
    };
    let routed = names(EventKind::Route, None);
    let dropped = names(EventKind::Drop, Some(busbar::trace::NODE_BROKER));
    (routed, dropped)
}

#[test]
fn the_highest_priority_waiting_is_served_first_fifo_within_a_level() {
    let broker = prioritised(
        BrokerConfig {
            rate: Some(1000.0),
            ..BrokerConfig::default()
        },
        &[("hi", 9), ("lo", 1)],
    );
    // All arrive together: the first (a "c", priority 0) finds the worker
    // idle; then every "hi", every "lo", and the remaining "c" last.
    let (routed, dropped) = mixed(broker, vec![("c", 2), ("lo", 2), ("hi", 2)]);
    assert!(dropped.is_empty());
    assert_eq!(routed, ["c", "hi", "hi", "lo", "lo", "c"]);
}

#[test]
fn drop_oldest_evicts_the_lowest_priority_and_never_a_higher_one() {
    let broker = prioritised(
        BrokerConfig {
            rate: Some(1000.0),
            queue_capacity: Some(2),
            queue_overflow: Some(QueueOverflow::DropOldest),
            ..BrokerConfig::default()
        },
        &[("hi", 9), ("lo", 1)],
    );
    // "lo" #1 is served; "lo" #2, #3 wait. Each "hi" evicts the oldest
    // "lo" waiting; the last "lo" finds two "hi" waiting and is dropped
    // itself.
    let (routed, dropped) = mixed(broker, vec![("lo", 3), ("hi", 2), ("lo", 1)]);
    assert_eq!(dropped, ["lo", "lo", "lo"]);
    assert_eq!(routed, ["lo", "hi", "hi"]);
}
