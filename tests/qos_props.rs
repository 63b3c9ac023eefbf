//! Conservation under every guarantee: over random networks (loss,
//! duplication, corruption), random faults (broker outages, links down,
//! crashed subscribers) and random channel policies, every message and ack
//! is accounted for, at-least-once delivers everything it did not give up
//! on, exactly-once never shows a handler a duplicate, and at-most-once
//! never retransmits. With a consumer group beside the subscribers, the
//! group gets each routed message once (redelivered to another member when
//! unacknowledged) and exactly-once holds across its members.
//!
//! `BUSBAR_PROPTEST_CASES=500 cargo test --test qos_props` searches deeper.

mod common;

use std::collections::BTreeSet;

use proptest::prelude::*;

use busbar::network::{FaultSpec, LinkModel};
use busbar::{
    Agent, BrokerConfig, ChannelId, ChannelSpec, Context, Delivery, EventKind, GroupSpec, Message,
    MessageKind, Payload, Qos, Recipient, SimBuilder, SimDuration, SimTime,
};

/// Publishes `left` messages on "c", one every `every`.
struct Pub {
    ch: Option<ChannelId>,
    left: u32,
    every: SimDuration,
}

impl Agent for Pub {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.ch = Some(ctx.channel("c"));
        if self.left > 0 {
            ctx.set_timer(SimDuration::ZERO, 0);
        }
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        ctx.publish(
            self.ch.unwrap(),
            Recipient::Broadcast,
            MessageKind::INFO,
            Payload::values(&[self.left as f64]),
        );
        self.left -= 1;
        if self.left > 0 {
            ctx.set_timer(self.every, 0);
        }
    }
}

/// Subscribes to "c" and keeps the ids its handler sees.
#[derive(Default)]
struct Sub {
    seen: Vec<u64>,
}

impl Agent for Sub {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("c");
        ctx.subscribe(ch, Delivery::Push);
    }
    fn on_message(&mut self, _: &mut Context<'_>, msg: &Message) {
        self.seen.push(msg.id.0);
    }
}

/// Joins group "g" on "c" and keeps the ids its handler sees.
#[derive(Default)]
struct Member {
    seen: Vec<u64>,
}

impl Agent for Member {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("c");
        ctx.subscribe_group(ch, "g", Delivery::Push).unwrap();
    }
    fn on_message(&mut self, _: &mut Context<'_>, msg: &Message) {
        self.seen.push(msg.id.0);
    }
}

#[derive(Clone, Debug)]
struct Case {
    /// Members of group "g" (0: no group) and whether it is least-loaded.
    group: (usize, bool),
    publishers: usize,
    subscribers: usize,
    messages: u32,
    qos: Qos,
    publish_qos: Qos,
    ttl_ms: Option<u64>,
    ack_timeout_ms: u64,
    max_retries: u32,
    jitter: f64,
    loss: f64,
    duplicate: f64,
    corrupt: f64,
    broker_down: Option<(u64, u64)>,
    link_down: Option<(usize, u64, u64)>,
    crash: Option<(usize, u64, u64)>,
    seed: u64,
}

fn qos() -> impl Strategy<Value = Qos> {
    prop_oneof![
        Just(Qos::AtMostOnce),
        Just(Qos::AtLeastOnce),
        Just(Qos::ExactlyOnce)
    ]
}

fn window() -> impl Strategy<Value = (u64, u64)> {
    (0u64..800, 10u64..500)
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..3, 1usize..4, 1u32..30, qos(), qos()),
        (
            proptest::option::of(20u64..400),
            5u64..60,
            0u32..5,
            0.0..0.5f64,
        ),
        (0.0..0.4f64, 0.0..0.3f64, 0.0..0.1f64),
        (
            proptest::option::of(window()),
            proptest::option::of((0usize..3, window())),
            proptest::option::of((0usize..3, window())),
        ),
        (any::<u64>(), 0usize..4, any::<bool>()),
    )
        .prop_map(
            |(
                (publishers, subscribers, messages, qos, publish_qos),
                (ttl_ms, ack_timeout_ms, max_retries, jitter),
                (loss, duplicate, corrupt),
                (broker_down, link_down, crash),
                (seed, members, least_loaded),
            )| Case {
                group: (members, least_loaded),
                publishers,
                subscribers,
                messages,
                qos,
                publish_qos,
                ttl_ms,
                ack_timeout_ms,
                max_retries,
                jitter,
                loss,
                duplicate,
                corrupt,
                broker_down,
                link_down: link_down.map(|(i, (a, d))| (i, a, d)),
                crash: crash.map(|(i, (a, d))| (i, a, d)),
                seed,
            },
        )
}

fn fault(text: &str) -> FaultSpec {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let link: LinkModel = toml::from_str(&format!(
        "latency = {{ dist = \"uniform\", min = \"1ms\", max = \"6ms\" }}\n\
         loss = {}\nduplicate = {}\ncorrupt = {}\n",
        c.loss, c.duplicate, c.corrupt
    ))
    .unwrap();
    let broker = BrokerConfig {
        channels: vec![ChannelSpec {
            topic: "c".into(),
            qos: Some(c.qos),
            publish_qos: Some(c.publish_qos),
            ttl: c.ttl_ms.map(SimDuration::from_millis),
            ack_timeout: Some(SimDuration::from_millis(c.ack_timeout_ms)),
            max_retries: Some(c.max_retries),
            jitter: Some(c.jitter),
            ..ChannelSpec::default()
        }],
        groups: vec![GroupSpec {
            name: "g".into(),
            strategy: if c.group.1 {
                busbar::Strategy::LeastLoaded
            } else {
                busbar::Strategy::RoundRobin
            },
        }],
        ..BrokerConfig::default()
    };
    let mut b = SimBuilder::new(c.seed)
        .default_link(link)
        .broker(broker)
        .trace_in_memory();
    for p in 0..c.publishers {
        b = b.agent(
            &format!("p{p}"),
            Pub {
                ch: None,
                left: c.messages,
                every: SimDuration::from_millis(7),
            },
        );
    }
    for s in 0..c.subscribers {
        b = b.agent(&format!("s{s}"), Sub::default());
    }
    for m in 0..c.group.0 {
        b = b.agent(&format!("m{m}"), Member::default());
    }
    // Faults hit subscribers and members alike.
    let receivers: Vec<String> = (0..c.subscribers)
        .map(|s| format!("s{s}"))
        .chain((0..c.group.0).map(|m| format!("m{m}")))
        .collect();
    if let Some((at, d)) = c.broker_down {
        b = b.fault(fault(&format!(
            "kind = \"broker_down\"\nat = \"{at}ms\"\nuntil = \"{}ms\"\n",
            at + d
        )));
    }
    if let Some((i, at, d)) = c.link_down {
        let s = &receivers[i % receivers.len()];
        b = b.fault(fault(&format!(
            "kind = \"link_down\"\nfrom = \"broker\"\nto = \"{s}\"\nat = \"{at}ms\"\nuntil = \"{}ms\"\n",
            at + d
        )));
    }
    if let Some((i, at, d)) = c.crash {
        let s = &receivers[i % receivers.len()];
        b = b.fault(fault(&format!(
            "kind = \"crash\"\nagent = \"{s}\"\nat = \"{at}ms\"\nrestart = \"{}ms\"\n",
            at + d
        )));
    }
    let mut sim = b.build().unwrap();
    // Long enough for every retransmission schedule to end.
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(30))
        .unwrap();
    let subs: Vec<_> = (0..c.subscribers)
        .map(|s| sim.agent_id(&format!("s{s}")).unwrap())
        .collect();
    let seen: Vec<Vec<u64>> = subs
        .iter()
        .map(|&id| sim.agent::<Sub>(id).unwrap().seen.clone())
        .collect();
    let members: Vec<_> = (0..c.group.0)
        .map(|m| sim.agent_id(&format!("m{m}")).unwrap())
        .collect();
    // The group's handlers together.
    let group_seen: Vec<u64> = members
        .iter()
        .flat_map(|&id| sim.agent::<Member>(id).unwrap().seen.clone())
        .collect();
    let rec = sim.records();
    let s = sim.finish().unwrap();
    let q = &s.qos.counts;

    // Conservation (docs/summary.md).
    prop_assert_eq!(
        s.published + s.duplicated_uplink + q.retransmitted_uplink,
        s.routed + s.dropped_uplink + q.expired_uplink + s.in_flight_uplink
    );
    prop_assert_eq!(
        s.copies + q.retransmitted_downlink + s.duplicated_downlink,
        s.delivered + s.dropped_downlink + s.in_flight_downlink
    );
    prop_assert_eq!(
        q.acks_sent + q.acks_duplicated,
        q.acks_received + q.acks_dropped + s.qos.acks_in_flight
    );
    prop_assert_eq!(
        q.tracked_deliveries,
        q.acked_deliveries
            + q.expired_deliveries
            + q.dead_lettered_deliveries
            + s.qos.unacked_deliveries
    );
    prop_assert_eq!(
        q.tracked_publishes,
        q.acked_publishes
            + q.expired_publishes
            + q.dead_lettered_publishes
            + s.qos.unacked_publishes
    );
    // Drained: nothing left open.
    prop_assert_eq!(s.in_flight + s.qos.acks_in_flight, 0);
    prop_assert_eq!(s.qos.unacked_deliveries + s.qos.unacked_publishes, 0);
    // The trace agrees with the counters.
    let n = |k| rec.iter().filter(|r| r.event == k).count() as u64;
    prop_assert_eq!(
        n(EventKind::Retransmit),
        q.retransmitted_uplink + q.retransmitted_downlink
    );
    prop_assert_eq!(n(EventKind::Ack), q.acks_received);
    prop_assert_eq!(
        n(EventKind::DeadLetter),
        q.dead_lettered_deliveries + q.dead_lettered_publishes
    );

    // The group: one copy of each routed message, nothing left in its lag.
    let g = &s.groups;
    if c.group.0 > 0 {
        prop_assert_eq!(g.routed, s.routed);
        prop_assert_eq!(g.lag, 0);
        prop_assert!(g.redelivered <= q.retransmitted_downlink);
        let redelivered = rec
            .iter()
            .filter(|r| {
                r.event == EventKind::Retransmit && r.detail & busbar::trace::DETAIL_REDELIVER != 0
            })
            .count() as u64;
        prop_assert_eq!(redelivered, g.redelivered);
        if c.group.0 == 1 {
            prop_assert_eq!(g.redelivered, 0);
        }
    } else {
        prop_assert_eq!(*g, busbar::metrics::GroupsSummary::default());
    }

    if c.qos == Qos::AtMostOnce && c.publish_qos == Qos::AtMostOnce {
        prop_assert_eq!(n(EventKind::Retransmit), 0);
        prop_assert_eq!(q.acks_sent, 0);
    }
    if c.qos.acked() {
        // Every routed message reached every subscriber, or its delivery
        // was given up on (dead-lettered) or expired.
        let routed: BTreeSet<u64> = rec
            .iter()
            .filter(|r| r.event == EventKind::Route)
            .map(|r| r.msg)
            .collect();
        let ended: BTreeSet<(u64, u32)> = rec
            .iter()
            .filter(|r| {
                matches!(
                    r.event,
                    EventKind::Deliver | EventKind::DeadLetter | EventKind::Expire
                )
            })
            .map(|r| (r.msg, r.node))
            .collect();
        for &m in &routed {
            for a in &subs {
                prop_assert!(
                    ended.contains(&(m, a.0)),
                    "message {} never reached {:?} and was not given up on",
                    m,
                    a
                );
            }
            if !members.is_empty() {
                prop_assert!(
                    members.iter().any(|a| ended.contains(&(m, a.0))),
                    "message {} never reached the group and was not given up on",
                    m
                );
            }
        }
    }
    let group_distinct = group_seen.iter().collect::<BTreeSet<_>>().len();
    if c.qos == Qos::ExactlyOnce {
        for ids in &seen {
            let distinct: BTreeSet<_> = ids.iter().collect();
            prop_assert_eq!(distinct.len(), ids.len(), "a handler saw a duplicate");
        }
        prop_assert_eq!(
            group_distinct,
            group_seen.len(),
            "the group saw a duplicate"
        );
    } else if c.qos == Qos::AtLeastOnce {
        let total: usize = seen.iter().map(Vec::len).sum();
        let distinct: usize = seen
            .iter()
            .map(|ids| ids.iter().collect::<BTreeSet<_>>().len())
            .sum();
        // A group counts as one receiver.
        let group_dups = group_seen.len() - group_distinct;
        prop_assert_eq!((total - distinct + group_dups) as u64, q.duplicates_seen);
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::proptest_config(48))]

    #[test]
    fn every_message_and_ack_is_accounted_for_under_every_guarantee(c in case()) {
        check(&c)?;
    }
}
