//! Batch publish: one transmission on the first link, then each message on
//! its own.

use std::collections::BTreeMap;

use busbar::network::LinkModel;
use busbar::{
    Agent, ChannelId, Context, Delivery, EventKind, MessageKind, Payload, Recipient, SimBuilder,
    SimDuration, SimTime,
};

/// Every 10 ms, publishes a batch of 8 on "c".
struct Batcher {
    ch: Option<ChannelId>,
    left: u32,
    firsts: Vec<u64>,
}

impl Agent for Batcher {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.ch = Some(ctx.channel("c"));
        ctx.set_timer(SimDuration::ZERO, 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        let payloads = (0..8).map(|i| Payload::values(&[f64::from(i)])).collect();
        let first = ctx
            .publish_batch(
                self.ch.unwrap(),
                Recipient::Broadcast,
                MessageKind::INFO,
                payloads,
            )
            .unwrap();
        self.firsts.push(first.0);
        assert_eq!(
            ctx.publish_batch(
                self.ch.unwrap(),
                Recipient::Broadcast,
                MessageKind::INFO,
                vec![]
            ),
            None
        );
        self.left -= 1;
        if self.left > 0 {
            ctx.set_timer(SimDuration::from_millis(10), 0);
        }
    }
}

struct Sub;
impl Agent for Sub {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let ch = ctx.channel("c");
        ctx.subscribe(ch, Delivery::Push);
    }
}

#[test]
fn a_batch_shares_its_first_links_fate_then_parts() {
    let link: LinkModel = toml::from_str(
        "latency = { dist = \"uniform\", min = \"1ms\", max = \"9ms\" }\nloss = 0.3\n",
    )
    .unwrap();
    let mut sim = SimBuilder::new(2)
        .default_link(link)
        .agent(
            "b",
            Batcher {
                ch: None,
                left: 100,
                firsts: Vec::new(),
            },
        )
        .agent("s", Sub)
        .trace_in_memory()
        .build()
        .unwrap();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(2))
        .unwrap();
    let id = sim.agent_id("b").unwrap();
    let firsts = sim.agent::<Batcher>(id).unwrap().firsts.clone();
    let rec = sim.records();
    let s = sim.finish().unwrap();
    assert_eq!(s.published, 800);
    // Ids are consecutive within a batch.
    assert!(firsts.windows(2).all(|w| w[1] == w[0] + 8));
    // Per batch: all eight reached the broker at one time, or all eight
    // were lost on the uplink.
    let mut routed: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut lost: BTreeMap<u64, u32> = BTreeMap::new();
    for r in &rec {
        let batch = r.msg / 8;
        match r.event {
            EventKind::Route => routed.entry(batch).or_default().push(r.time_ns),
            EventKind::Drop if r.node == busbar::trace::NODE_BROKER => {
                *lost.entry(batch).or_default() += 1
            }
            _ => {}
        }
    }
    assert_eq!(routed.len() + lost.len(), 100);
    assert!(!lost.is_empty() && !routed.is_empty());
    for (b, times) in &routed {
        assert_eq!(times.len(), 8, "batch {b} parted on the uplink");
        assert!(times.iter().all(|&t| t == times[0]));
        assert!(!lost.contains_key(b));
    }
    assert!(lost.values().all(|&n| n == 8));
    // Downlinks: each message alone, so deliveries of a batch spread out.
    let spread = rec.iter().filter(|r| r.event == EventKind::Deliver).fold(
        BTreeMap::<u64, (u64, u64)>::new(),
        |mut m, r| {
            let e = m.entry(r.msg / 8).or_insert((u64::MAX, 0));
            e.0 = e.0.min(r.time_ns);
            e.1 = e.1.max(r.time_ns);
            m
        },
    );
    assert!(spread.values().any(|(lo, hi)| hi > lo));
    assert_eq!(
        s.published + s.duplicated_uplink,
        s.routed + s.dropped_uplink + s.in_flight_uplink
    );
}
