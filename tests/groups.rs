//! Consumer groups (work queues, docs/broker_groups.md): one member per
//! group gets each message, plain subscribers still get theirs; round-robin
//! and least-loaded assignment; redelivery to another member when an ack
//! does not come; group-level dedup on exactly-once channels; lag; the
//! scenario keys and their errors; determinism.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use busbar::metrics::entity::GroupStats;
use busbar::trace::DETAIL_REDELIVER;
use busbar::trace::export::{Names, detail};
use busbar::{
    Agent, ChannelId, Context, Delivery, EventKind, Message, MessageKind, Payload, Reason,
    Recipient, Record, Scenario, SimBuilder, SimDuration, SimTime, Summary,
};

const BASE: &str = r#"
[simulation]
name = "groups"
seed = 3
duration = "2s"

[network.default]
latency = { dist = "uniform", min = "1ms", max = "2ms" }

[[agent]]
type = "periodic"
name = "jobs"
channel = "{env}/jobs"
period = "5ms"
count = 120
"#;

fn sink(name: &str, group: Option<&str>, delivery: &str) -> String {
    let group = group.map_or(String::new(), |g| format!("group = {g:?}\n"));
    format!(
        "\n[[agent]]\ntype = \"sink\"\nname = \"{name}\"\nchannels = [\"{{env}}/jobs\"]\ndelivery = \"{delivery}\"\n{group}"
    )
}

/// Three members of `a`, two of `b`, and one plain subscriber.
fn members() -> String {
    let mut s = String::new();
    for w in ["w1", "w2", "w3"] {
        s += &sink(w, Some("a"), "push");
    }
    for x in ["x1", "x2"] {
        s += &sink(x, Some("b"), "push");
    }
    s += &sink("plain", None, "push");
    s
}

/// Two members of group `a`, `w1` and `w2` (push).
fn pair() -> String {
    sink("w1", Some("a"), "push") + &sink("w2", Some("a"), "push")
}

/// The jobs channel acknowledged with `qos` (publishes not), ack timeout
/// 20 ms.
fn acked(qos: &str) -> String {
    format!(
        "\n[[broker.channel]]\ntopic = \"{{env}}/jobs\"\nqos = \"{qos}\"\npublish_qos = \"at_most_once\"\nack_timeout = \"20ms\"\n"
    )
}

struct Run {
    records: Vec<Record>,
    summary: Summary,
    agents: Vec<String>,
    channels: Vec<String>,
    groups: Vec<GroupStats>,
}

impl Run {
    fn agent(&self, name: &str) -> u32 {
        self.agents.iter().position(|a| a == name).unwrap() as u32
    }

    /// `deliver` records per agent name.
    fn delivered(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for r in self
            .records
            .iter()
            .filter(|r| r.event == EventKind::Deliver)
        {
            *out.entry(self.agents[r.node as usize].clone()).or_default() += 1;
        }
        out
    }

    /// Per message id, the agents a copy was delivered to.
    fn receivers(&self) -> BTreeMap<u64, Vec<String>> {
        let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for r in self
            .records
            .iter()
            .filter(|r| r.event == EventKind::Deliver)
        {
            out.entry(r.msg)
                .or_default()
                .push(self.agents[r.node as usize].clone());
        }
        out
    }

    fn group(&self, name: &str) -> &GroupStats {
        self.groups.iter().find(|g| g.name == name).unwrap()
    }
}

fn run_text(text: &str, seed: u64) -> Run {
    let sc = Scenario::parse(text, "g.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = sc
        .builder(seed, 0)
        .trace_in_memory()
        .entity_metrics(true)
        .build()
        .unwrap();
    sim.run_until(SimTime::ZERO + sc.spec().simulation.duration)
        .unwrap();
    let records = sim.records();
    let agents = sim.agent_names();
    let channels = sim.channel_names().to_vec();
    let summary = sim.finish().unwrap();
    let groups = sim.entity_metrics().unwrap().groups().to_vec();
    assert_conserved(&summary);
    Run {
        records,
        summary,
        agents,
        channels,
        groups,
    }
}

fn run(extra: &str) -> Run {
    run_text(&format!("{BASE}{extra}"), 3)
}

/// The identities of docs/summary.md, groups included.
fn assert_conserved(s: &Summary) {
    common::assert_conserved(s);
    let (g, q) = (&s.groups, &s.qos.counts);
    assert!(g.redelivered <= q.retransmitted_downlink, "{s:#?}");
    assert!(g.acked <= q.acked_deliveries, "{s:#?}");
    assert!(g.lag <= g.lag_max, "{s:#?}");
}

#[test]
fn each_message_reaches_one_member_per_group_and_every_subscriber() {
    let r = run(&members());
    let receivers = r.receivers();
    assert_eq!(receivers.len(), 120);
    for (id, got) in &receivers {
        let n = |set: &[&str]| got.iter().filter(|a| set.contains(&a.as_str())).count();
        assert_eq!(n(&["w1", "w2", "w3"]), 1, "group a, message {id}: {got:?}");
        assert_eq!(n(&["x1", "x2"]), 1, "group b, message {id}: {got:?}");
        assert_eq!(n(&["plain"]), 1, "the plain subscriber, message {id}");
        assert_eq!(got.len(), 3);
    }
    let s = &r.summary;
    assert_eq!((s.copies, s.delivered), (360, 360));
    assert_eq!(s.groups.groups, 2);
    assert_eq!(s.groups.routed, 240);
    assert_eq!((s.groups.redelivered, s.groups.lag), (0, 0));
    assert_eq!(s.outcomes.get("sink.received"), Some(360.0));
}

#[test]
fn round_robin_spreads_evenly_in_join_order() {
    let r = run(&members());
    let d = r.delivered();
    for w in ["w1", "w2", "w3"] {
        assert_eq!(d[w], 40, "{d:?}");
    }
    for x in ["x1", "x2"] {
        assert_eq!(d[x], 60, "{d:?}");
    }
    assert_eq!(d["plain"], 120);
    // In turn: the first message to w1, the second to w2, ...
    let first: Vec<String> = r
        .receivers()
        .values()
        .take(4)
        .map(|g| g.iter().find(|a| a.starts_with('w')).unwrap().clone())
        .collect();
    assert_eq!(first, ["w1", "w2", "w3", "w1"]);
    let a = r.group("a");
    let share: Vec<u64> = a.members.iter().map(|m| m.1).collect();
    assert_eq!(share, [40, 40, 40]);
    assert_eq!(r.channels[a.channel as usize], "env0/jobs");
}

/// w1's downlink is slow: its acks come back 40 ms after each copy leaves,
/// the others' in about 3 ms.
fn slow_member(strategy: &str) -> String {
    format!(
        r#"{}
[[network.link]]
from = "broker"
to = "w1"
latency = {{ dist = "constant", value = "40ms" }}

[[broker.channel]]
topic = "{{env}}/jobs"
qos = "at_least_once"
publish_qos = "at_most_once"
ack_timeout = "200ms"

[[broker.group]]
name = "a"
strategy = "{strategy}"
"#,
        ["w1", "w2", "w3"]
            .map(|w| sink(w, Some("a"), "push"))
            .concat()
    )
}

#[test]
fn least_loaded_prefers_idle_members() {
    let ll = run(&slow_member("least_loaded"));
    let rr = run(&slow_member("round_robin"));
    let share = |r: &Run, w: &str| r.delivered().get(w).copied().unwrap_or(0);
    assert_eq!(share(&rr, "w1"), 40, "round-robin ignores load");
    // w1 holds a delivery open ~42 ms of every message it gets, a fast
    // member ~3 ms of a 5 ms period: least-loaded gives w1 about one
    // message in nine, w2 (idle, first in join order) the rest but those
    // arriving while it is busy.
    let (w1, w2, w3) = (share(&ll, "w1"), share(&ll, "w2"), share(&ll, "w3"));
    assert_eq!(w1 + w2 + w3, 120);
    assert!(w1 <= 20, "w1 {w1} w2 {w2} w3 {w3}");
    assert!(w2 > w1 && w2 > w3, "w1 {w1} w2 {w2} w3 {w3}");
    assert_eq!(ll.summary.qos.counts.retransmitted_downlink, 0);
    assert_eq!(ll.summary.groups.acked, 120);
}

/// Every copy to `w1` is lost on its downlink.
const LOSSY_W1: &str = r#"
[[network.link]]
from = "broker"
to = "w1"
loss = 1.0

[[broker.channel]]
topic = "{env}/jobs"
qos = "at_least_once"
publish_qos = "at_most_once"
ack_timeout = "20ms"
jitter = 0.0
"#;

#[test]
fn a_lost_copy_is_redelivered_to_another_member() {
    let r = run(&(pair() + LOSSY_W1));
    let (w1, w2) = (r.agent("w1"), r.agent("w2"));
    let d = r.delivered();
    assert_eq!(d.get("w1"), None);
    assert_eq!(
        d["w2"], 120,
        "every message reaches w2, half of them redelivered"
    );
    let redelivered: Vec<&Record> = r
        .records
        .iter()
        .filter(|x| x.event == EventKind::Retransmit)
        .collect();
    assert_eq!(redelivered.len(), 60);
    for x in &redelivered {
        assert_eq!(x.node, w2, "the retransmission goes to the other member");
        assert_eq!(x.detail, 1 | DETAIL_REDELIVER);
        assert_eq!(detail(x), "attempt 1 (redeliver)");
    }
    let lost = r
        .records
        .iter()
        .filter(|x| x.event == EventKind::Drop && x.node == w1 && x.detail == Reason::Loss as u16)
        .count();
    assert_eq!(lost, 60);
    let s = &r.summary;
    assert_eq!(s.qos.counts.dead_lettered, 0);
    assert_eq!((s.groups.routed, s.groups.redelivered), (120, 60));
    assert_eq!((s.groups.acked, s.groups.lag), (120, 0));
    assert!(s.groups.lag_max >= 1, "{:?}", s.groups);
    // w1 was given 60 messages, w2 60 and 60 redeliveries.
    assert_eq!(r.group("a").members, vec![(w1, 60), (w2, 120)]);
}

#[test]
fn a_late_ack_from_the_member_that_had_it_closes_the_delivery() {
    // w1's acks take 50 ms, longer than the 20 ms ack timeout; every copy
    // to w2 is lost. A message first given to w1 is redelivered to w2 at
    // 20 ms and closed by w1's ack at ~52 ms; one first given to w2 goes
    // to w1 at 20 ms, to w2 again at 60 ms, and w1's ack closes it at
    // ~72 ms. (If only the member holding the delivery could ack it, each
    // would go round once more: 300 redeliveries.)
    let r = run(&format!(
        r#"{}{}jitter = 0.0

[[network.link]]
from = "w1"
to = "broker"
latency = {{ dist = "constant", value = "50ms" }}

[[network.link]]
from = "broker"
to = "w2"
loss = 1.0
"#,
        pair(),
        acked("at_least_once")
    ));
    let s = &r.summary;
    assert_eq!(s.groups.redelivered, 60 + 2 * 60);
    assert_eq!((s.groups.acked, s.groups.lag), (120, 0));
    assert_eq!(s.qos.counts.dead_lettered, 0);
}

#[test]
fn a_group_of_one_retransmits_to_its_member_and_dead_letters_as_before() {
    let r = run(&format!(
        "{}{LOSSY_W1}max_retries = 2\n",
        sink("w1", Some("a"), "push")
    ));
    let s = &r.summary;
    assert_eq!(s.groups.redelivered, 0);
    assert_eq!(s.qos.counts.retransmitted_downlink, 240);
    assert_eq!(s.qos.counts.dead_lettered_deliveries, 120);
    assert!(
        r.records
            .iter()
            .filter(|x| x.event == EventKind::Retransmit)
            .all(|x| x.detail & DETAIL_REDELIVER == 0)
    );
    assert_eq!(s.groups.lag, 0, "dead letters leave the lag");
}

#[test]
fn a_crashed_member_is_skipped_and_what_it_missed_goes_to_another() {
    let r = run(&format!(
        r#"{}{}
[[fault]]
kind = "crash"
agent = "w1"
at = "201ms"
restart = "401ms"
"#,
        pair(),
        acked("at_least_once")
    ));
    let w1 = r.agent("w1");
    let ms = |x: &Record| x.time_ns / 1_000_000;
    // While it is down, no copy is sent to w1 (messages published at
    // 205..=395 ms are routed while it is down).
    let to_w1_while_down = r
        .records
        .iter()
        .filter(|x| x.node == w1 && x.event == EventKind::Deliver)
        .filter(|x| (205..=395).contains(&(x.sent_ns / 1_000_000)))
        .count();
    assert_eq!(to_w1_while_down, 0);
    // Not even sent: no copy of those is lost at the crashed w1 (only
    // what was on its way at 201 ms).
    let lost_at_w1 = r
        .records
        .iter()
        .filter(|x| x.node == w1 && x.event == EventKind::Drop)
        .filter(|x| x.detail == Reason::Crashed as u16)
        .filter(|x| (205..=395).contains(&(x.sent_ns / 1_000_000)))
        .count();
    assert_eq!(lost_at_w1, 0);
    assert!(r.summary.groups.redelivered <= 1, "{:?}", r.summary.groups);
    // Before and after, it has its turns.
    assert!(
        r.records
            .iter()
            .any(|x| x.node == w1 && x.event == EventKind::Deliver && ms(x) < 200)
    );
    assert!(
        r.records
            .iter()
            .any(|x| x.node == w1 && x.event == EventKind::Deliver && ms(x) > 410)
    );
    // Every message was handled by a member, none given up on.
    assert_eq!(r.receivers().len(), 120);
    assert_eq!(r.summary.qos.counts.dead_lettered, 0);
    assert_eq!(r.summary.groups.lag, 0);
}

/// Every ack from w1 is lost: w1's handler gets its copies, the broker
/// never learns it and redelivers them to w2.
fn lost_acks(qos: &str) -> String {
    format!(
        "{}{}\n[[network.link]]\nfrom = \"w1\"\nto = \"broker\"\nloss = 1.0\n",
        pair(),
        acked(qos)
    )
}

#[test]
fn exactly_once_holds_across_the_members_of_a_group() {
    let once = run(&lost_acks("exactly_once"));
    let s = &once.summary;
    assert_eq!(s.groups.redelivered, 60);
    assert_eq!(s.qos.counts.duplicates_suppressed, 60);
    assert_eq!(
        s.outcomes.get("sink.received"),
        Some(120.0),
        "each message handled once"
    );
    assert_eq!(s.groups.acked, 120, "w2's acks close the redelivered ones");
    // At least once: the group handles the 60 messages twice.
    let twice = run(&lost_acks("at_least_once"));
    let s = &twice.summary;
    assert_eq!(s.qos.counts.duplicates_seen, 60);
    assert_eq!(s.outcomes.get("sink.received"), Some(180.0));
}

/// Joins group "a" on "c" with pull delivery and consumes everything at
/// `drain` (if any).
struct Puller {
    drain: Option<SimDuration>,
    ch: Option<ChannelId>,
    consumed: u64,
}

impl Agent for Puller {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("c");
        ctx.subscribe_group(ch, "a", Delivery::Pull).unwrap();
        self.ch = Some(ch);
        if let Some(d) = self.drain {
            ctx.set_timer(d, 0);
        }
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        while ctx.consume(self.ch.unwrap()).is_some() {
            self.consumed += 1;
        }
    }
}

/// Publishes one message on "c" every 10 ms, `n` of them.
struct Feeder {
    n: u64,
    ch: Option<ChannelId>,
}

impl Agent for Feeder {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.ch = Some(ctx.channel("c"));
        ctx.set_timer(SimDuration::ZERO, 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        ctx.publish(
            self.ch.unwrap(),
            Recipient::Broadcast,
            MessageKind::INFO,
            Payload::Empty,
        );
        self.n -= 1;
        if self.n > 0 {
            ctx.set_timer(SimDuration::from_millis(10), 0);
        }
    }
}

/// A simulation builder with 1 ms links and a feeder of `n` messages.
fn feeding(n: u64) -> SimBuilder {
    let link = toml::from_str("latency = { dist = \"constant\", value = \"1ms\" }").unwrap();
    SimBuilder::new(1)
        .default_link(link)
        .agent("feed", Feeder { n, ch: None })
}

#[test]
fn pull_lag_rises_until_members_consume_and_falls_when_they_do() {
    let puller = |ms| Puller {
        drain: Some(SimDuration::from_millis(ms)),
        ch: None,
        consumed: 0,
    };
    let mut sim = feeding(50)
        .entity_metrics(true)
        .agent("p1", puller(300))
        .agent("p2", puller(305))
        .build()
        .unwrap();
    // 30 messages by 295 ms (sent 0..=290 ms), none consumed.
    sim.run_until(SimTime::ZERO + SimDuration::from_millis(295))
        .unwrap();
    let (p1, p2) = (sim.agent_id("p1").unwrap(), sim.agent_id("p2").unwrap());
    assert_eq!((sim.pending("c", p1), sim.pending("c", p2)), (15, 15));
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let s = sim.finish().unwrap();
    // p1 drained 15 at 300 ms, p2 15 at 305 ms (the message of 300 ms,
    // p1's turn, arrived at 302): the lag peaked at 30 (292..300 ms); the
    // last 20 wait at the end.
    assert_eq!(s.groups.routed, 50);
    assert_eq!(s.groups.lag_max, 30);
    assert_eq!(s.groups.lag, 20);
    assert_eq!(sim.pending("c", p1) + sim.pending("c", p2), 20);
    let consumed =
        sim.agent::<Puller>(p1).unwrap().consumed + sim.agent::<Puller>(p2).unwrap().consumed;
    assert_eq!(consumed, 30);
    // The tidy table carries the group and its members' shares.
    let agents = sim.agent_names();
    let names = Names {
        agents: &agents,
        channels: sim.channel_names(),
        kinds: &[],
        routers: &[],
        env: 0,
    };
    let rows = sim.entity_metrics().unwrap().rows(&names);
    let get = |t: &str, e: &str, m: &str| {
        rows.iter()
            .find(|r| r.entity_type == t && r.entity == e && r.metric == m)
            .and_then(|r| r.value)
    };
    assert_eq!(get("group", "c/a", "group_lag_max"), Some(30));
    assert_eq!(get("group", "c/a", "group_lag_end"), Some(20));
    assert_eq!(get("group", "c/a", "group_routed"), Some(50));
    assert_eq!(get("group_member", "c/a/p1", "assigned"), Some(25));
    assert_eq!(get("group_member", "c/a/p2", "assigned"), Some(25));
}

#[test]
fn acked_lag_counts_unacknowledged_deliveries() {
    // w1's copies are all lost: each stays in the lag until redelivered to
    // w2 and acked; at the end nothing is open.
    let r = run(&(pair() + LOSSY_W1));
    let a = r.group("a").counts;
    // A message every 5 ms, a lost one waits 20 ms plus a round trip: up
    // to about 3 of w1's and one of w2's are open at once.
    assert!((3..=8).contains(&a.lag_max), "{a:?}");
    assert_eq!(a.lag, 0);
    assert_eq!(r.summary.qos.unacked_deliveries, 0);
}

/// Joins group "a" on "c" (push) and records what arrives.
#[derive(Default)]
struct Member {
    got: Vec<u64>,
}

impl Agent for Member {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("c");
        ctx.subscribe_group(ch, "a", Delivery::Push).unwrap();
        // Refused: a member already receives the channel.
        assert!(ctx.subscribe_group(ch, "b", Delivery::Push).is_err());
        // Joining again only changes the delivery.
        ctx.subscribe_group(ch, "a", Delivery::Push).unwrap();
    }
    fn on_message(&mut self, _: &mut Context<'_>, msg: &Message) {
        self.got.push(msg.id.0);
    }
}

#[test]
fn members_take_turns_and_cannot_join_a_second_group() {
    let mut sim = feeding(20)
        .agent("m1", Member::default())
        .agent("m2", Member::default())
        .build()
        .unwrap();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let got = |name: &str| {
        sim.agent::<Member>(sim.agent_id(name).unwrap())
            .unwrap()
            .got
            .clone()
    };
    assert_eq!(got("m1"), (0..20).step_by(2).collect::<Vec<u64>>());
    assert_eq!(got("m2"), (1..20).step_by(2).collect::<Vec<u64>>());
}

/// Subscribes to "c" plainly, then tries to join a group on it.
struct Both;

impl Agent for Both {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("c");
        ctx.subscribe(ch, Delivery::Push);
        let e = ctx.subscribe_group(ch, "a", Delivery::Push).unwrap_err();
        assert!(e.to_string().contains("as a subscriber"), "{e}");
        assert!(ctx.subscribe_group(ch, "", Delivery::Push).is_err());
        assert!(!ctx.unsubscribe_group(ch, "a"));
    }
}

/// Leaves group "a" on "c" after `at`.
struct Quitter {
    at: SimDuration,
    got: u64,
}

impl Agent for Quitter {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("c");
        ctx.subscribe_group(ch, "a", Delivery::Push).unwrap();
        ctx.set_timer(self.at, 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        let ch = ctx.channel("c");
        assert!(ctx.unsubscribe_group(ch, "a"));
        assert!(!ctx.unsubscribe_group(ch, "a"));
    }
    fn on_message(&mut self, _: &mut Context<'_>, _: &Message) {
        self.got += 1;
    }
}

#[test]
fn a_member_that_leaves_gets_nothing_more() {
    let mut sim = feeding(20)
        .agent(
            "q",
            Quitter {
                at: SimDuration::from_millis(55),
                got: 0,
            },
        )
        .agent("m", Member::default())
        .agent("both", Both)
        .build()
        .unwrap();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let q = sim
        .agent::<Quitter>(sim.agent_id("q").unwrap())
        .unwrap()
        .got;
    let m = sim
        .agent::<Member>(sim.agent_id("m").unwrap())
        .unwrap()
        .got
        .len() as u64;
    // Messages at 0..=50 ms alternate (q gets 0, 20, 40 ms: 3); after
    // 55 ms m gets them all. "both" subscribes plainly: all 20.
    assert_eq!((q, m), (3, 17));
    let s = sim.finish().unwrap();
    assert_eq!(s.delivered, 40);
    assert_eq!(s.groups.routed, 20);
}

#[test]
fn a_message_addressed_to_a_member_reaches_it() {
    let r = run(&format!(
        "{}\n[[agent]]\ntype = \"periodic\"\nname = \"direct\"\nchannel = \"{{env}}/jobs\"\nperiod = \"7ms\"\ncount = 10\nto = \"w2\"\n",
        pair()
    ));
    let d = r.delivered();
    assert_eq!((d["w1"], d["w2"]), (60, 70));
    assert_eq!(r.summary.groups.routed, 120);
    assert_eq!(r.summary.dropped, 0);
}

#[test]
fn a_group_with_no_member_up_is_no_subscriber() {
    // Only a group member, which leaves: later messages have no receiver.
    let mut sim = feeding(10)
        .agent(
            "q",
            Quitter {
                at: SimDuration::from_millis(45),
                got: 0,
            },
        )
        .build()
        .unwrap();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let s = sim.finish().unwrap();
    assert_eq!(s.delivered, 5);
    assert_eq!(s.dropped_by_reason.get("no_subscriber"), Some(&5));
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let text = format!(
        "{BASE}{}{}",
        members(),
        LOSSY_W1.replace("loss = 1.0", "loss = 0.3")
    );
    let (a, b) = (run_text(&text, 9), run_text(&text, 9));
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.records, b.records);
    assert_eq!(a.groups, b.groups);
    let c = run_text(&text, 10);
    assert_ne!(a.summary.digest, c.summary.digest);
    assert!(a.summary.groups.redelivered > 0, "{:?}", a.summary.groups);
}

#[test]
fn scenario_errors_name_the_key_and_place() {
    let text = format!(
        r#"{BASE}{}
[[broker.group]]
name = "a"

[[broker.group]]
name = "a"
strategy = "least_loaded"
"#,
        sink("w1", Some(""), "push")
    );
    let e = Scenario::parse(&text, "g.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("g.toml:"), "{e}");
    assert!(e.contains("broker.group[1].name"), "{e}");
    assert!(e.contains("configured twice"), "{e}");
    assert!(e.contains("agent[1].group"), "{e}");
    assert!(!e.contains("broker.group[0].name:"), "{e}");
    let bad = format!("{BASE}\n[[broker.group]]\nname = \"a\"\nstrategy = \"random\"\n");
    let e = Scenario::parse(&bad, "g.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(e.contains("g.toml:") && e.contains("strategy"), "{e}");
    let filter = format!(
        "{BASE}\n[[agent]]\ntype = \"sink\"\nname = \"w\"\nchannels = [\"{{env}}/+\"]\ngroup = \"a\"\n"
    );
    let e = Scenario::parse(&filter, "g.toml", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("agent[1].channels[0]") && e.contains("topic filter"),
        "{e}"
    );
}

#[test]
fn the_documented_example_runs_and_shares_the_work() {
    let doc = include_str!("../docs/broker_groups.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let text = &doc[start..start + doc[start..].find("```").unwrap()];
    let r = run_text(text, 1);
    let s = &r.summary;
    assert_eq!((s.groups.groups, s.groups.routed), (1, 300));
    assert_eq!(s.groups.lag, 0);
    let d = r.delivered();
    assert_eq!(d["audit"], 300);
    assert_eq!(d["worker1"] + d["worker2"], 300);
    // Both are fast: least-loaded finds worker1 idle most of the time, and
    // ties go to the member that joined first.
    assert!(d["worker1"] > d["worker2"] && d["worker2"] > 0, "{d:?}");
}

#[test]
fn the_shipped_work_queue_hands_each_job_to_one_worker() {
    let sc = Scenario::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/work_queue.toml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/work_queue.toml"),
    )
    .unwrap();
    let r = run_text(&text, sc.seed());
    let s = &r.summary;
    assert_eq!(
        (s.groups.routed, s.groups.acked, s.groups.lag),
        (1000, 1000, 0)
    );
    assert!(s.groups.redelivered > 0);
    // Exactly once across the workers, and the auditor got every job.
    assert_eq!(s.outcomes.get("sink.received"), Some(2000.0));
    assert_eq!(s.outcomes.get("sink.unique"), Some(2000.0));
    let g = r.group("workers");
    let share = |w: &str| g.members.iter().find(|m| m.0 == r.agent(w)).unwrap().1;
    // The fast, reliable worker2 holds its jobs the shortest: the largest
    // share. Every assignment is a job or a redelivery.
    assert!(share("worker2") > share("worker1") && share("worker2") > share("worker3"));
    let assigned: u64 = g.members.iter().map(|m| m.1).sum();
    assert_eq!(assigned, s.groups.routed + s.groups.redelivered);
}
