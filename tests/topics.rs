//! Wildcard subscriptions and retained messages (docs/broker_topics.md):
//! filters cover channels interned before and after them, overlapping
//! subscriptions give one copy, unsubscribing, `$` topics, a scenario with
//! a filter runs exactly as with the names it covers, and retained
//! messages reach late subscribers through the network, are replaced by
//! newer ones, reach wildcard subscribers, show in the trace and the
//! summary, and keep runs deterministic.

use std::path::Path;

use busbar::broker::{ChannelSpec, FilterError};
use busbar::trace::export::Names;
use busbar::{
    Agent, BrokerConfig, Context, Delivery, EventKind, FaultSpec, LinkSpec, Message, MessageKind,
    MsgId, Payload, Recipient, Record, Scenario, SimBuilder, SimDuration, SimTime, Simulation,
    Summary,
};

/// What a [`Script`] does at a given time.
#[derive(Clone, Debug)]
enum Act {
    /// Broadcast on the channel (interning it if new) a payload of `n`
    /// floats.
    Publish(&'static str, usize),
    /// Send to one agent.
    PublishTo(&'static str, &'static str),
    /// `subscribe_filter`.
    Sub(&'static str, Delivery),
    /// `unsubscribe_filter`; the result is kept.
    Unsub(&'static str),
    /// `subscribe(channel(name))`.
    SubChannel(&'static str),
    /// `unsubscribe(channel(name))`; the result is kept.
    UnsubChannel(&'static str),
}

/// An agent that acts at fixed times (ms) and keeps what it receives.
#[derive(Default)]
struct Script {
    plan: Vec<(u64, Act)>,
    /// (arrival time, channel, message id, payload) of every pushed copy.
    got: Vec<(SimTime, String, u64, Payload)>,
    /// Results of the unsubscribe calls, in order.
    unsubs: Vec<bool>,
}

impl Script {
    fn new(plan: Vec<(u64, Act)>) -> Script {
        Script {
            plan,
            ..Script::default()
        }
    }
}

impl Agent for Script {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        for (i, (ms, _)) in self.plan.iter().enumerate() {
            ctx.set_timer_at(SimTime::ZERO + SimDuration::from_millis(*ms), i as u64);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, tag: u64) {
        match self.plan[tag as usize].1.clone() {
            Act::Publish(ch, n) => {
                let ch = ctx.channel(ch);
                let payload = Payload::values(&vec![tag as f64; n]);
                ctx.publish(ch, Recipient::Broadcast, MessageKind::INFO, payload);
            }
            Act::PublishTo(ch, to) => {
                let ch = ctx.channel(ch);
                let to = ctx.agent_id(to).expect("an agent");
                ctx.publish(ch, Recipient::Agent(to), MessageKind::INFO, Payload::Empty);
            }
            Act::Sub(f, d) => ctx.subscribe_filter(f, d).expect("a valid filter"),
            Act::Unsub(f) => self.unsubs.push(ctx.unsubscribe_filter(f)),
            Act::SubChannel(name) => {
                let ch = ctx.channel(name);
                ctx.subscribe(ch, Delivery::Push);
            }
            Act::UnsubChannel(name) => {
                let ch = ctx.channel(name);
                self.unsubs.push(ctx.unsubscribe(ch));
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        let ch = ctx.channel_name(msg.channel).to_string();
        self.got
            .push((ctx.now(), ch, msg.id.0, msg.payload.clone()));
    }
}

fn ms(n: u64) -> SimTime {
    SimTime::ZERO + SimDuration::from_millis(n)
}

fn script<'a>(sim: &'a Simulation, name: &str) -> &'a Script {
    sim.agent(sim.agent_id(name).expect("agent"))
        .expect("a Script")
}

/// The channels and ids `name` received, in arrival order.
fn received(sim: &Simulation, name: &str) -> Vec<(String, u64)> {
    script(sim, name)
        .got
        .iter()
        .map(|(_, c, id, _)| (c.clone(), *id))
        .collect()
}

fn run(b: SimBuilder) -> (Simulation, Summary, Vec<Record>) {
    let mut sim = b.trace_in_memory().build().expect("valid");
    sim.run().expect("runs");
    let records = sim.records();
    let s = sim.finish().expect("finishes");
    (sim, s, records)
}

/// `copies + retained_copies + duplicated_downlink = delivered +
/// dropped_downlink + in_flight_downlink` (docs/summary.md), and the
/// uplink side.
fn conserved(s: &Summary) {
    assert_eq!(
        s.copies + s.retained_copies + s.duplicated_downlink,
        s.delivered + s.dropped_downlink + s.in_flight_downlink,
        "{s:?}"
    );
    assert_eq!(
        s.published + s.duplicated_uplink,
        s.routed + s.dropped_uplink + s.in_flight_uplink,
        "{s:?}"
    );
}

fn retaining(topic: &str) -> BrokerConfig {
    BrokerConfig {
        channels: vec![ChannelSpec {
            topic: topic.into(),
            retain: Some(true),
            ..ChannelSpec::default()
        }],
        ..BrokerConfig::default()
    }
}

fn count(records: &[Record], kind: EventKind) -> usize {
    records.iter().filter(|r| r.event == kind).count()
}

// ----- wildcard subscriptions ------------------------------------------------

#[test]
fn a_wildcard_covers_channels_interned_before_and_after_it() {
    let b = SimBuilder::new(1)
        .agent(
            "pub",
            Script::new(vec![
                // Interned before the subscription at 5 ms.
                (0, Act::Publish("env0/agent/a/device_actions", 1)),
                (10, Act::Publish("env0/agent/a/device_actions", 1)),
                // Interned after it.
                (20, Act::Publish("env0/agent/b/device_actions", 1)),
                (20, Act::Publish("env0/agent/b/state", 1)),
                (20, Act::Publish("env0/agent/b/device_actions/x", 1)),
                (20, Act::Publish("env1/agent/b/device_actions", 1)),
            ]),
        )
        .agent(
            "watch",
            Script::new(vec![(
                5,
                Act::Sub("env0/agent/+/device_actions", Delivery::Push),
            )]),
        );
    let (sim, s, _) = run(b);
    assert_eq!(
        received(&sim, "watch"),
        [
            ("env0/agent/a/device_actions".to_string(), 1),
            ("env0/agent/b/device_actions".to_string(), 2),
        ]
    );
    let watch = sim.agent_id("watch").unwrap();
    assert_eq!(
        sim.subscribers("env0/agent/b/device_actions"),
        [(watch, Delivery::Push)]
    );
    assert!(sim.subscribers("env0/agent/b/state").is_empty());
    assert_eq!((s.published, s.copies, s.delivered), (6, 2, 2));
    conserved(&s);
}

#[test]
fn channels_interned_later_list_wildcard_subscribers_in_subscription_order() {
    let b = SimBuilder::new(1)
        .agent(
            "late",
            Script::new(vec![(2, Act::Sub("env0/#", Delivery::Pull))]),
        )
        .agent(
            "early",
            Script::new(vec![(1, Act::Sub("env0/+", Delivery::Push))]),
        )
        .agent("pub", Script::new(vec![(5, Act::Publish("env0/x", 1))]));
    let (sim, s, records) = run(b);
    let (late, early) = (
        sim.agent_id("late").unwrap(),
        sim.agent_id("early").unwrap(),
    );
    assert_eq!(
        sim.subscribers("env0/x"),
        [(early, Delivery::Push), (late, Delivery::Pull)]
    );
    // The broadcast's copies leave in that order: `early` first.
    let delivered: Vec<u32> = records
        .iter()
        .filter(|r| r.event == EventKind::Deliver)
        .map(|r| r.node)
        .collect();
    assert_eq!(delivered, [early.0, late.0]);
    assert_eq!(s.delivered, 2);
}

#[test]
fn overlapping_subscriptions_give_one_copy_and_the_newest_mode() {
    let b = SimBuilder::new(1)
        .agent(
            "pub",
            Script::new(vec![
                (0, Act::Publish("env0/x/y", 1)),
                (10, Act::Publish("env0/x/y", 1)),
                (20, Act::Publish("env0/x/y", 1)),
            ]),
        )
        .agent(
            "watch",
            Script::new(vec![
                (2, Act::SubChannel("env0/x/y")),
                (3, Act::Sub("env0/#", Delivery::Push)),
                (4, Act::Sub("env0/x/+", Delivery::Push)),
                (5, Act::Sub("env0/x/y", Delivery::Push)),
            ]),
        )
        .agent(
            "pull",
            Script::new(vec![
                (2, Act::Sub("env0/#", Delivery::Push)),
                (3, Act::Sub("+/x/y", Delivery::Pull)),
            ]),
        );
    let (sim, s, _) = run(b);
    // The first message was routed (at 1 ms) before anyone subscribed.
    assert_eq!(
        received(&sim, "watch"),
        [("env0/x/y".to_string(), 1), ("env0/x/y".to_string(), 2)]
    );
    assert!(script(&sim, "pull").got.is_empty(), "the newest mode: pull");
    let (watch, pull) = (
        sim.agent_id("watch").unwrap(),
        sim.agent_id("pull").unwrap(),
    );
    assert_eq!(
        sim.subscribers("env0/x/y"),
        [(watch, Delivery::Push), (pull, Delivery::Pull)]
    );
    assert_eq!((s.copies, s.delivered), (4, 4));
}

#[test]
fn unsubscribing_ends_only_what_no_other_subscription_covers() {
    let b = SimBuilder::new(1)
        .agent(
            "pub",
            Script::new(vec![
                (10, Act::Publish("env0/a/y", 1)),
                (10, Act::Publish("env0/z", 1)),
                (20, Act::Publish("env0/a/y", 1)),
                (20, Act::Publish("env0/z", 1)),
                (30, Act::Publish("env0/a/y", 1)),
                (40, Act::Publish("env0/a/y", 1)),
            ]),
        )
        .agent(
            "watch",
            Script::new(vec![
                (1, Act::Sub("env0/#", Delivery::Push)),
                (1, Act::Sub("env0/+/y", Delivery::Push)),
                (1, Act::SubChannel("env0/a/y")),
                (15, Act::Unsub("env0/#")),
                (15, Act::Unsub("env0/#")),
                (15, Act::Unsub("never/+")),
                (25, Act::Unsub("env0/+/y")),
                (35, Act::UnsubChannel("env0/a/y")),
                (35, Act::UnsubChannel("env0/a/y")),
            ]),
        );
    let (sim, s, _) = run(b);
    let w = script(&sim, "watch");
    assert_eq!(w.unsubs, [true, false, false, true, true, false]);
    let y = "env0/a/y".to_string();
    assert_eq!(
        received(&sim, "watch"),
        [
            (y.clone(), 0),
            ("env0/z".to_string(), 1),
            // `#` ended: `+/y` and the direct subscription still cover y.
            (y.clone(), 2),
            // `+/y` ended: the direct subscription still covers it.
            (y, 4)
        ]
    );
    // After the last unsubscribe, the message at 40 ms finds nobody.
    assert_eq!(s.dropped_by_reason.get("no_subscriber"), Some(&2));
    assert!(sim.subscribers("env0/a/y").is_empty());
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    let b = SimBuilder::new(1)
        .agent(
            "all",
            Script::new(vec![
                (0, Act::Sub("#", Delivery::Push)),
                (0, Act::Sub("+/load", Delivery::Push)),
            ]),
        )
        .agent(
            "sys",
            Script::new(vec![(0, Act::Sub("$SYS/#", Delivery::Push))]),
        )
        .agent(
            "pub",
            Script::new(vec![
                (5, Act::Publish("$SYS/load", 1)),
                (5, Act::Publish("grid/load", 1)),
            ]),
        );
    let (sim, _, _) = run(b);
    assert_eq!(received(&sim, "all"), [("grid/load".to_string(), 1)]);
    assert_eq!(received(&sim, "sys"), [("$SYS/load".to_string(), 0)]);
}

#[test]
fn an_invalid_filter_is_an_error_and_changes_nothing() {
    struct Bad(Vec<FilterError>);
    impl Agent for Bad {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            for f in ["a/#/b", "a+", "", "#x"] {
                self.0
                    .push(ctx.subscribe_filter(f, Delivery::Push).unwrap_err());
            }
        }
    }
    let mut sim = SimBuilder::new(0)
        .agent("bad", Bad(Vec::new()))
        .build()
        .unwrap();
    sim.run().unwrap();
    let bad: &Bad = sim.agent(sim.agent_id("bad").unwrap()).unwrap();
    assert_eq!(bad.0.len(), 4);
    assert!(bad.0[0].to_string().contains("`#`"), "{}", bad.0[0]);
    assert!(sim.channel_names().is_empty());
}

const FILTER_SCENARIO: &str = r#"
[simulation]
name = "filters"
duration = "2s"
seed = 5

[network.default]
loss = 0.2
latency = { dist = "uniform", min = "1ms", max = "9ms" }
ordering = "unordered"

[[agent]]
type = "periodic"
name = "a"
channel = "{env}/agent/a/device_actions"
period = "30ms"

[[agent]]
type = "periodic"
name = "b"
channel = "{env}/agent/b/device_actions"
period = "70ms"

[[agent]]
type = "periodic"
name = "other"
channel = "{env}/agent/b/state"
period = "50ms"

[[agent]]
type = "sink"
name = "s"
channels = CHANNELS
delivery = "push"
deadline = "5ms"
"#;

fn filter_scenario(channels: &str) -> Scenario {
    let text = FILTER_SCENARIO.replace("CHANNELS", channels);
    Scenario::parse(&text, "filters.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_sink_with_a_filter_runs_exactly_as_with_the_names_it_covers() {
    let names =
        filter_scenario(r#"["{env}/agent/a/device_actions", "{env}/agent/b/device_actions"]"#);
    let filter = filter_scenario(r#"["{env}/agent/+/device_actions"]"#);
    for (seed, env) in [(5, 0), (6, 3)] {
        let (x, y) = (
            names.run(seed, env).unwrap(),
            filter.run(seed, env).unwrap(),
        );
        assert_eq!(x.digest, y.digest, "seed {seed} env {env}");
        assert_eq!(
            x,
            Summary {
                name: x.name.clone(),
                ..y
            },
            "every figure"
        );
        assert!(x.delivered > 0 && x.dropped > 0, "{x:?}");
    }
    // A filter that covers more is a different run.
    let more = filter_scenario(r#"["{env}/agent/#"]"#);
    let m = more.run(5, 0).unwrap();
    assert_ne!(m.digest, names.run(5, 0).unwrap().digest);
    assert!(m.delivered > names.run(5, 0).unwrap().delivered);
}

#[test]
fn a_bad_filter_in_a_scenario_is_located() {
    let text = FILTER_SCENARIO.replace("CHANNELS", r#"["{env}/x", "{env}/a/#/b"]"#);
    let e = Scenario::parse(&text, "filters.toml", Path::new(".")).unwrap_err();
    let p = &e.problems()[0];
    assert_eq!(p.key, "agent[3].channels[1]", "{e}");
    let line = text
        .lines()
        .position(|l| l.starts_with("channels = "))
        .unwrap()
        + 1;
    assert_eq!(p.line, line, "{e}");
    assert!(p.column > 1, "{e}");
    assert!(p.message.contains("`#`"), "{e}");
    assert_eq!(e.problems().len(), 1, "{e}");
}

// ----- retained messages -----------------------------------------------------

/// `pub` broadcasts on env0/status at 0 and 10 ms (64 floats: a shared
/// payload); `late` subscribes at 100 ms; the broker retains env0/status.
fn late_subscriber(seed: u64, down_loss: f64) -> SimBuilder {
    SimBuilder::new(seed)
        .broker(BrokerConfig {
            processing: SimDuration::from_micros(250),
            ..retaining("{env}/status")
        })
        .link(LinkSpec::new("broker", "late").loss(down_loss))
        .agent(
            "pub",
            Script::new(vec![
                (0, Act::Publish("env0/status", 64)),
                (10, Act::Publish("env0/status", 64)),
                (10, Act::Publish("env0/other", 1)),
            ]),
        )
        .agent(
            "late",
            Script::new(vec![
                (100, Act::SubChannel("env0/status")),
                // Already a subscriber: no second retained copy.
                (150, Act::Sub("env0/#", Delivery::Push)),
                (160, Act::SubChannel("env0/status")),
            ]),
        )
}

#[test]
fn a_late_subscriber_gets_the_retained_message_through_its_lossy_downlink() {
    let (mut delivered, mut lost) = (0, 0);
    for seed in 0..40 {
        let (sim, s, records) = run(late_subscriber(seed, 0.5));
        let late = sim.agent_id("late").unwrap();
        let retained: Vec<&Record> = records
            .iter()
            .filter(|r| r.event == EventKind::Retained)
            .collect();
        assert_eq!(retained.len(), 1, "seed {seed}");
        let r = retained[0];
        assert_eq!((r.node, r.msg, r.time_ns), (late.0, 1, ms(100).0));
        assert_eq!(r.sent_ns, ms(10).0, "the record names the retained message");
        assert_eq!(s.retained_copies, 1);
        assert_eq!(
            s.copies, 0,
            "nobody subscribed when the messages were routed"
        );
        conserved(&s);
        match received(&sim, "late").as_slice() {
            [] => {
                lost += 1;
                assert_eq!(s.dropped_by_reason.get("loss"), Some(&1), "seed {seed}");
            }
            [(ch, 1)] => {
                delivered += 1;
                assert_eq!(ch, "env0/status");
                // Subscribed at 100 ms + 250 us processing + 1 ms link.
                let at = script(&sim, "late").got[0].0;
                assert_eq!(at, ms(101) + SimDuration::from_micros(250));
            }
            other => panic!("seed {seed}: {other:?}"),
        }
    }
    assert!(
        delivered > 5 && lost > 5,
        "{delivered} delivered, {lost} lost"
    );
}

#[test]
fn a_newer_message_replaces_the_retained_one_and_shares_its_payload() {
    let mut sim = late_subscriber(3, 0.0).trace_in_memory().build().unwrap();
    sim.run_until(ms(5)).unwrap();
    assert_eq!(sim.retained("env0/status").map(|m| m.id), Some(MsgId(0)));
    sim.run_until(ms(50)).unwrap();
    let kept = sim.retained("env0/status").expect("retained").clone();
    assert_eq!(kept.id, MsgId(1));
    assert!(
        sim.retained("env0/other").is_none(),
        "its policy does not retain"
    );
    assert!(sim.retained("env0/nothing").is_none());
    sim.run().unwrap();
    let got = &script(&sim, "late").got;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, 1, "only the newest");
    let (Payload::Floats(a), Payload::Floats(b)) = (&kept.payload, &got[0].3) else {
        panic!("64 floats are shared")
    };
    assert!(std::sync::Arc::ptr_eq(a, b), "never deep-copied");
    let s = sim.finish().unwrap();
    assert_eq!((s.retained_copies, s.delivered), (1, 1));
    assert!(sim.retained("env0/status").is_none(), "released at the end");
}

#[test]
fn a_wildcard_subscriber_gets_each_covered_channels_retained_message() {
    let b = SimBuilder::new(2)
        .broker(retaining("env0/s/#"))
        .agent(
            "pub",
            Script::new(vec![
                (0, Act::Publish("env0/s/b", 1)),
                (1, Act::Publish("env0/s/a", 1)),
                (2, Act::Publish("env0/s/a", 1)),
                (3, Act::Publish("env0/t/c", 1)),
                // Addressed to one agent: not retained.
                (4, Act::PublishTo("env0/s/d", "other")),
                // Interned after the subscription: its messages arrive as
                // usual, and nothing was retained there before.
                (60, Act::Publish("env0/s/e", 1)),
            ]),
        )
        .agent("other", Script::new(vec![(0, Act::SubChannel("env0/s/d"))]))
        .agent(
            "watch",
            Script::new(vec![(50, Act::Sub("env0/#", Delivery::Push))]),
        );
    let (sim, s, records) = run(b);
    let watch = sim.agent_id("watch").unwrap();
    // In channel-id order: env0/s/b was interned first.
    assert_eq!(
        received(&sim, "watch"),
        [
            ("env0/s/b".to_string(), 0),
            ("env0/s/a".to_string(), 2),
            ("env0/s/e".to_string(), 5),
        ]
    );
    let retained: Vec<(u32, u64)> = records
        .iter()
        .filter(|r| r.event == EventKind::Retained)
        .map(|r| (r.node, r.msg))
        .collect();
    assert_eq!(retained, [(watch.0, 0), (watch.0, 2)]);
    assert_eq!(s.retained_copies, 2);
    assert_eq!(received(&sim, "other"), [("env0/s/d".to_string(), 4)]);
    conserved(&s);
}

#[test]
fn the_trace_names_retained_events() {
    let mut sim = late_subscriber(1, 0.0).trace_in_memory().build().unwrap();
    sim.run().unwrap();
    let records = sim.records();
    let agents = sim.agent_names();
    let channels = sim.channel_names().to_vec();
    let kinds = sim.kind_names().table().to_vec();
    let names = Names {
        agents: &agents,
        channels: &channels,
        kinds: &kinds,
        routers: &[],
        env: 0,
    };
    let rows: Vec<_> = records
        .iter()
        .enumerate()
        .map(|(i, r)| names.row(i as u64, r))
        .filter(|row| row.event == "retained")
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].channel, rows[0].sender, rows[0].recipient),
        ("env0/status", "pub", "late")
    );
    assert_eq!(EventKind::from_code(13), Some(EventKind::Retained));
    assert_eq!(count(&records, EventKind::Retained), 1);
}

#[test]
fn no_retained_copy_while_the_broker_is_down() {
    let b = late_subscriber(1, 0.0).fault(FaultSpec::BrokerDown {
        at: SimDuration::from_millis(90),
        until: Some(SimDuration::from_millis(120)),
    });
    let (sim, s, records) = run(b);
    assert_eq!(count(&records, EventKind::Retained), 0);
    assert_eq!(s.retained_copies, 0);
    assert!(received(&sim, "late").is_empty());
}

#[test]
fn runs_with_filters_and_retained_messages_are_deterministic() {
    let build = |seed| {
        late_subscriber(seed, 0.3)
            .link(LinkSpec::new("pub", "broker").loss(0.2))
            .agent(
                "more",
                Script::new(vec![
                    (0, Act::Sub("+/#", Delivery::Pull)),
                    (120, Act::Unsub("+/#")),
                    (130, Act::Sub("env0/+", Delivery::Push)),
                ]),
            )
    };
    let digests: Vec<String> = (0..6)
        .map(|seed| {
            let (_, a, ra) = run(build(seed));
            let (_, b, rb) = run(build(seed));
            assert_eq!(a, b, "seed {seed}");
            assert_eq!(ra, rb, "seed {seed}");
            a.digest
        })
        .collect();
    let mut distinct = digests.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 1, "the seed matters: {digests:?}");
}
