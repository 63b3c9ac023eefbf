//! Delivery guarantees from a scenario and from the library: acks travel
//! the network, retransmissions back off, dead letters and expiry, and the
//! promise of each QoS level.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use busbar::network::{FaultSpec, LinkModel};
use busbar::trace::{DeadCause, NODE_BROKER};
use busbar::{
    Agent, ChannelId, Context, Delivery, EventKind, Message, MessageKind, Payload, Reason,
    Recipient, Record, Scenario, SimBuilder, SimTime, Summary,
};
use busbar::{BrokerConfig, ChannelSpec, Qos, SimDuration};

fn at(ms: u64) -> SimTime {
    SimTime::ZERO + SimDuration::from_millis(ms)
}

const BASE: &str = r#"
[simulation]
name = "qos"
seed = 5
duration = "2s"

[network.default]
latency = { dist = "uniform", min = "1ms", max = "3ms" }

[[agent]]
type = "periodic"
name = "sensor"
channel = "{env}/t"
period = "10ms"
count = 100

[[agent]]
type = "sink"
name = "collector"
channels = ["{env}/t"]

[[agent]]
type = "sink"
name = "logger"
channels = ["{env}/t"]
"#;

fn run_text(text: &str, seed: u64) -> (Vec<Record>, Summary) {
    let sc = Scenario::parse(text, "q.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc.builder(seed, 0).trace_in_memory().build().unwrap();
    sim.run_until(SimTime::ZERO + sc.spec().simulation.duration)
        .unwrap();
    let records = sim.records();
    (records, sim.finish().unwrap())
}

fn run(extra: &str) -> (Vec<Record>, Summary) {
    run_text(&format!("{BASE}\n{extra}"), 5)
}

fn count(records: &[Record], kind: EventKind) -> usize {
    records.iter().filter(|r| r.event == kind).count()
}

/// (message id, node) pairs.
type Pairs = BTreeSet<(u64, u32)>;

/// (message, recipient) pairs delivered, and dead-lettered.
fn fates(records: &[Record]) -> (Pairs, Pairs) {
    let pick = |k| {
        records
            .iter()
            .filter(|r| r.event == k)
            .map(|r| (r.msg, r.node))
            .collect()
    };
    (pick(EventKind::Deliver), pick(EventKind::DeadLetter))
}

const LOSSY_DOWN: &str = r#"
[[network.link]]
from = "broker"
to = "*"
loss = 0.3
"#;

#[test]
fn at_most_once_loses_what_the_network_loses_and_never_retransmits() {
    let (rec, s) = run(&format!(
        "{LOSSY_DOWN}\n[[broker.channel]]\ntopic = \"{{env}}/t\"\nqos = \"at_most_once\"\n"
    ));
    assert_eq!(count(&rec, EventKind::Retransmit), 0);
    assert_eq!(count(&rec, EventKind::Ack), 0);
    assert_eq!(s.qos.counts, Default::default());
    assert!(s.dropped_by_reason["loss"] > 30, "{s:#?}");
    assert!(s.delivered < 200);
    common::assert_conserved(&s);
}

#[test]
fn at_least_once_delivers_every_message_it_did_not_dead_letter() {
    let (rec, s) = run(&format!(
        "{LOSSY_DOWN}\n[[broker.channel]]\ntopic = \"{{env}}/t\"\nqos = \"at_least_once\"\nack_timeout = \"20ms\"\nmax_retries = 3\n"
    ));
    let (delivered, dead) = fates(&rec);
    let published: Vec<u64> = rec
        .iter()
        .filter(|r| r.event == EventKind::Publish)
        .map(|r| r.msg)
        .collect();
    assert_eq!(published.len(), 100);
    for id in published {
        for agent in [1, 2] {
            assert!(
                delivered.contains(&(id, agent)) || dead.contains(&(id, agent)),
                "message {id} neither delivered to {agent} nor dead-lettered"
            );
        }
    }
    let q = &s.qos.counts;
    assert!(q.retransmitted_downlink > 50, "{q:#?}");
    assert!(q.acks_dropped > 0 && q.acked_deliveries > 150, "{q:#?}");
    // Lost acks make the broker send copies that had arrived: the handler
    // sees those twice.
    assert!(q.duplicates_seen > 0, "{q:#?}");
    assert_eq!(s.qos.unacked_deliveries, 0);
    common::assert_conserved(&s);
}

#[test]
fn retransmissions_back_off_exponentially_then_dead_letter() {
    // The collector's downlink loses everything: the broker retransmits at
    // 10, 20, 40 ms after each attempt (no jitter) and then gives up.
    let (rec, s) = run(r#"
[[network.link]]
from = "broker"
to = "collector"
loss = 1.0

[[broker.channel]]
topic = "{env}/t"
qos = "at_least_once"
ack_timeout = "10ms"
backoff = 2.0
jitter = 0.0
max_retries = 3
"#);
    let first = rec
        .iter()
        .find(|r| r.event == EventKind::Route && r.msg == 0)
        .unwrap()
        .time_ns;
    let times: Vec<(EventKind, u64, u16)> = rec
        .iter()
        .filter(|r| r.msg == 0 && r.node == 1)
        .filter(|r| matches!(r.event, EventKind::Retransmit | EventKind::DeadLetter))
        .map(|r| (r.event, (r.time_ns - first) / 1_000_000, r.detail))
        .collect();
    assert_eq!(
        times,
        [
            (EventKind::Retransmit, 10, 1),
            (EventKind::Retransmit, 30, 2),
            (EventKind::Retransmit, 70, 3),
            (EventKind::DeadLetter, 150, DeadCause::Retries as u16),
        ]
    );
    let q = &s.qos.counts;
    assert_eq!(q.dead_lettered_deliveries, 100);
    assert_eq!(q.retransmitted_downlink, 300);
    // The logger's deliveries were all acknowledged.
    assert_eq!(q.acked_deliveries, 100);
    common::assert_conserved(&s);
}

#[test]
fn jitter_spreads_retransmissions_within_its_bounds() {
    let (rec, _) = run(r#"
[[network.link]]
from = "broker"
to = "collector"
loss = 1.0

[[broker.channel]]
topic = "{env}/t"
qos = "at_least_once"
ack_timeout = "100ms"
jitter = 0.5
max_retries = 1
"#);
    let route: BTreeMap<u64, u64> = rec
        .iter()
        .filter(|r| r.event == EventKind::Route)
        .map(|r| (r.msg, r.time_ns))
        .collect();
    let waits: Vec<u64> = rec
        .iter()
        .filter(|r| r.event == EventKind::Retransmit)
        .map(|r| r.time_ns - route[&r.msg])
        .collect();
    assert_eq!(waits.len(), 100);
    assert!(waits.iter().all(|w| (50_000_000..=150_000_000).contains(w)));
    let distinct: BTreeSet<u64> = waits.iter().copied().collect();
    assert!(distinct.len() > 90, "jitter draws differ");
}

/// Records the id of every message its handler sees.
struct Counter {
    name: &'static str,
    seen: Vec<u64>,
}

impl Agent for Counter {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel(self.name);
        ctx.subscribe(ch, Delivery::Push);
    }
    fn on_message(&mut self, _: &mut Context<'_>, msg: &Message) {
        self.seen.push(msg.id.0);
    }
}

/// Publishes `n` messages, one every 5 ms.
struct Pub {
    ch: Option<ChannelId>,
    left: u32,
}

impl Agent for Pub {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.ch = Some(ctx.channel("c"));
        ctx.set_timer(SimDuration::ZERO, 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        ctx.publish(
            self.ch.unwrap(),
            Recipient::Broadcast,
            MessageKind::INFO,
            Payload::values(&[1.0]),
        );
        self.left -= 1;
        if self.left > 0 {
            ctx.set_timer(SimDuration::from_millis(5), 0);
        }
    }
}

fn dup_link() -> LinkModel {
    let text = r#"
latency = { dist = "uniform", min = "1ms", max = "4ms" }
loss = 0.2
duplicate = 0.3
"#;
    toml::from_str(text).unwrap()
}

fn handler_run(qos: Qos, publish_qos: Qos, seed: u64) -> (Vec<u64>, Summary, Vec<Record>) {
    let broker = BrokerConfig {
        channels: vec![ChannelSpec {
            topic: "c".into(),
            qos: Some(qos),
            publish_qos: Some(publish_qos),
            ack_timeout: Some(SimDuration::from_millis(15)),
            max_retries: Some(8),
            ..ChannelSpec::default()
        }],
        ..BrokerConfig::default()
    };
    let mut sim = SimBuilder::new(seed)
        .default_link(dup_link())
        .broker(broker)
        .agent(
            "p",
            Pub {
                ch: None,
                left: 200,
            },
        )
        .agent(
            "r",
            Counter {
                name: "c",
                seen: Vec::new(),
            },
        )
        .trace_in_memory()
        .build()
        .unwrap();
    sim.run_until(at(5000)).unwrap();
    let r = sim.agent_id("r").unwrap();
    let seen = sim.agent::<Counter>(r).unwrap().seen.clone();
    let rec = sim.records();
    (seen, sim.finish().unwrap(), rec)
}

fn has_duplicates(ids: &[u64]) -> bool {
    ids.iter().collect::<BTreeSet<_>>().len() < ids.len()
}

#[test]
fn exactly_once_never_shows_a_handler_a_duplicate_and_at_least_once_does() {
    let (seen, s, rec) = handler_run(Qos::ExactlyOnce, Qos::AtLeastOnce, 1);
    assert!(
        !has_duplicates(&seen),
        "exactly-once handler saw a duplicate"
    );
    let q = &s.qos.counts;
    assert!(q.duplicates_suppressed > 10, "{q:#?}");
    assert_eq!(q.duplicates_seen, 0);
    assert!(
        rec.iter().any(|r| r.event == EventKind::Drop
            && Reason::from_code(r.detail) == Some(Reason::Duplicate))
    );
    // Every message reached the handler (none was dead-lettered).
    assert_eq!(q.dead_lettered_deliveries + q.dead_lettered_publishes, 0);
    assert_eq!(seen.len(), 200);
    common::assert_conserved(&s);

    let (seen, s, _) = handler_run(Qos::AtLeastOnce, Qos::AtLeastOnce, 1);
    assert!(has_duplicates(&seen), "at-least-once showed no duplicate");
    assert_eq!(
        seen.len() as u64,
        200 + s.qos.counts.duplicates_seen,
        "{s:#?}"
    );
    common::assert_conserved(&s);
}

#[test]
fn exactly_once_publish_is_routed_once_and_at_least_once_publish_may_be_routed_twice() {
    let routes = |rec: &[Record]| {
        let mut n: BTreeMap<u64, u32> = BTreeMap::new();
        for r in rec.iter().filter(|r| r.event == EventKind::Route) {
            *n.entry(r.msg).or_default() += 1;
        }
        n
    };
    let (_, s, rec) = handler_run(Qos::ExactlyOnce, Qos::ExactlyOnce, 2);
    let n = routes(&rec);
    assert_eq!(n.len(), 200, "every publish reached the broker");
    assert!(n.values().all(|&k| k == 1));
    assert!(s.qos.counts.retransmitted_uplink > 0);
    common::assert_conserved(&s);

    let (_, s, rec) = handler_run(Qos::AtLeastOnce, Qos::AtLeastOnce, 2);
    let n = routes(&rec);
    assert_eq!(n.len(), 200);
    assert!(n.values().any(|&k| k > 1), "a lost puback or a duplicate");
    assert_eq!(s.qos.counts.acked_publishes, 200);
    common::assert_conserved(&s);
}

#[test]
fn at_most_once_publish_with_acked_delivery_sends_no_puback() {
    let (_, s, rec) = handler_run(Qos::AtLeastOnce, Qos::AtMostOnce, 3);
    assert_eq!(s.qos.counts.tracked_publishes, 0);
    assert!(
        rec.iter()
            .filter(|r| r.event == EventKind::Ack)
            .all(|r| r.detail == busbar::trace::DETAIL_ACK)
    );
    common::assert_conserved(&s);
}

#[test]
fn messages_older_than_their_ttl_expire_at_the_broker_and_can_be_dead_lettered() {
    // The uplink takes 5 to 15 ms; a TTL of 10 ms expires about half.
    let (rec, s) = run(r#"
[[network.link]]
from = "sensor"
to = "broker"
latency = { dist = "uniform", min = "5ms", max = "15ms" }

[[broker.channel]]
topic = "{env}/t"
ttl = "10ms"
dead_letter_expired = true
"#);
    let q = &s.qos.counts;
    assert!(q.expired_uplink > 25 && q.expired_uplink < 75, "{q:#?}");
    assert_eq!(count(&rec, EventKind::Expire) as u64, q.expired_uplink);
    assert_eq!(q.dead_lettered, q.expired_uplink);
    assert_eq!(s.routed + q.expired_uplink, 100);
    for r in rec.iter().filter(|r| r.event == EventKind::Expire) {
        assert!(r.time_ns - r.sent_ns > 10_000_000);
    }
    common::assert_conserved(&s);
}

#[test]
fn unacknowledged_deliveries_expire_before_their_next_retransmission() {
    let (rec, s) = run(r#"
[[network.link]]
from = "broker"
to = "collector"
loss = 1.0

[[broker.channel]]
topic = "{env}/t"
qos = "at_least_once"
ttl = "50ms"
ack_timeout = "20ms"
jitter = 0.0
"#);
    let q = &s.qos.counts;
    // 20 ms, then 40 ms later (60 ms > 50 ms): one retransmission each.
    assert_eq!(q.retransmitted_downlink, 100);
    assert_eq!(q.expired_deliveries, 100);
    assert_eq!(q.dead_lettered, 0);
    assert!(
        rec.iter()
            .filter(|r| r.event == EventKind::Expire)
            .all(|r| r.detail == busbar::trace::EXPIRED_UNACKED && r.node == 1)
    );
    common::assert_conserved(&s);
}

/// At `at`, takes the dead letters of "c" and publishes them again.
struct Medic {
    at: SimDuration,
    took: usize,
}

impl Agent for Medic {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        ctx.set_timer(self.at, 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        let ch = ctx.channel("c");
        let letters = ctx.take_dead_letters(ch);
        self.took = letters.len();
        for l in &letters {
            ctx.republish(l);
        }
        assert_eq!(ctx.dead_letters(ch).len(), 0);
    }
}

#[test]
fn dead_letters_are_inspectable_and_republishable() {
    let broker = BrokerConfig {
        channels: vec![ChannelSpec {
            topic: "c".into(),
            qos: Some(Qos::AtLeastOnce),
            ack_timeout: Some(SimDuration::from_millis(10)),
            max_retries: Some(2),
            ..ChannelSpec::default()
        }],
        ..BrokerConfig::default()
    };
    let text = "latency = { dist = \"constant\", value = \"1ms\" }";
    let mut sim = SimBuilder::new(1)
        .default_link(toml::from_str(text).unwrap())
        .broker(broker)
        .agent("p", Pub { ch: None, left: 10 })
        .agent(
            "r",
            Counter {
                name: "c",
                seen: Vec::new(),
            },
        )
        .agent(
            "medic",
            Medic {
                at: SimDuration::from_secs(1),
                took: 0,
            },
        )
        .fault(
            toml::from_str::<FaultSpec>(
                r#"
kind = "link_down"
from = "broker"
to = "r"
at = "0s"
until = "500ms"
"#,
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    sim.run_until(at(900)).unwrap();
    let (r, medic) = (sim.agent_id("r").unwrap(), sim.agent_id("medic").unwrap());
    let dead = sim.dead_letters("c");
    assert_eq!(dead.len(), 10);
    assert!(dead.iter().all(|l| l.cause == DeadCause::Retries
        && l.attempts == 2
        && l.recipient == Some(busbar::AgentId(1))));
    assert!(sim.agent::<Counter>(r).unwrap().seen.is_empty());
    sim.run_until(at(2000)).unwrap();
    assert_eq!(sim.agent::<Medic>(medic).unwrap().took, 10);
    // Republished after the link came back: all arrive, as new messages.
    let seen = &sim.agent::<Counter>(r).unwrap().seen;
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|&id| id >= 10));
    assert!(sim.dead_letters("c").is_empty());
}

#[test]
fn a_broker_outage_holds_retransmissions_until_it_ends() {
    let (rec, s) = run(r#"
[[network.link]]
from = "broker"
to = "collector"
loss = 0.5

[[broker.channel]]
topic = "{env}/t"
qos = "at_least_once"
ack_timeout = "5ms"
jitter = 0.0
max_retries = 3

[[fault]]
kind = "broker_down"
at = "300ms"
until = "600ms"
"#);
    // The broker sends nothing again while it is down; publishers, who
    // cannot know, go on retransmitting their unacknowledged publishes.
    let during = |r: &&Record| {
        r.event == EventKind::Retransmit && (300..600).contains(&(r.time_ns / 1_000_000))
    };
    assert!(!rec.iter().filter(during).any(|r| r.node != NODE_BROKER));
    assert!(rec.iter().filter(during).any(|r| r.node == NODE_BROKER));
    assert!(s.qos.counts.retransmitted_downlink > 0);
    common::assert_conserved(&s);
}

#[test]
fn guarantees_are_a_function_of_the_seed() {
    let extra = format!(
        "{LOSSY_DOWN}\n[[broker.channel]]\ntopic = \"#\"\nqos = \"exactly_once\"\nttl = \"200ms\"\n"
    );
    let a = run(&extra).1;
    let b = run(&extra).1;
    assert_eq!(a.digest, b.digest);
    let c = run_text(&format!("{BASE}\n{extra}"), 6).1;
    assert_ne!(a.digest, c.digest);
}

#[test]
fn bad_channel_settings_are_reported_at_their_key() {
    let text = format!(
        "{BASE}\n[[broker.channel]]\ntopic = \"a/#/b\"\nqos = \"at_least_once\"\nbackoff = 0.5\n"
    );
    let err = Scenario::parse(&text, "q.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("broker.channel[0].topic"), "{err}");
    assert!(err.contains("broker.channel[0].backoff"), "{err}");
    assert!(err.contains("q.toml:"), "{err}");
    let text = format!("{BASE}\n[[broker.channel]]\ntopic = \"#\"\nqos = \"twice\"\n");
    let err = Scenario::parse(&text, "q.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(err.contains("qos"), "{err}");
}
