//! The broker-hop hub workload, run by busbar (digest on) and, in the same
//! run, by a hand-written floor. Run with `cargo bench --bench hub`.
//!
//! 100 senders each publish a ping every 1 µs to a hub, which answers each
//! on the sender's own channel; every hop takes U[50 ns, 500 ns); 20 ms are
//! simulated. A ping-pong is five events: the sender's timer, the ping at
//! the broker, the ping at the hub, the pong at the broker, the pong at the
//! sender — 10 million events in all.
//!
//! The floor does the same five events per ping-pong with a `BinaryHeap`,
//! one ChaCha8 draw and a 16-byte trace append per event: what any
//! discrete-event loop must pay. After criterion's figures the bench prints
//! ns/event of each, measured interleaved, and their ratio.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::Instant;

use busbar::{
    Agent, ChannelId, Context, Delivery, Latency, LinkModel, Message, MessageKind, Payload,
    Recipient, SimBuilder, SimDuration, SimTime,
};
use criterion::{Criterion, Throughput, criterion_group};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

const SENDERS: u32 = 100;
const PERIOD_NS: u64 = 1_000;
const HOP_MIN_NS: u64 = 50;
const HOP_SPAN_NS: u64 = 450;
const SIM_NS: u64 = 20_000_000;

/// Sends a ping to the hub every period; receives pongs on its own channel.
struct Sender {
    hub: ChannelId,
    own: ChannelId,
    pongs: u64,
}

impl Agent for Sender {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.hub = ctx.channel("hub");
        let own = format!("pong/{}", ctx.name());
        self.own = ctx.channel(&own);
        ctx.subscribe(self.own, Delivery::Push);
        ctx.set_timer(SimDuration::ZERO, 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _tag: u64) {
        ctx.publish(
            self.hub,
            Recipient::Broadcast,
            MessageKind::INFO,
            Payload::Empty,
        );
        ctx.set_timer(SimDuration(PERIOD_NS), 0);
    }
    fn on_message(&mut self, _ctx: &mut Context<'_>, _msg: &Message) {
        self.pongs += 1;
    }
}

/// Answers every ping on its sender's own channel.
struct Hub {
    /// Each sender's pong channel, by agent index.
    reply: Vec<ChannelId>,
}

impl Agent for Hub {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let hub = ctx.channel("hub");
        ctx.subscribe(hub, Delivery::Push);
        for i in 0..SENDERS {
            let ch = ctx.channel(&format!("pong/s{i}"));
            self.reply.push(ch);
        }
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        let ch = self.reply[msg.sender.index()];
        ctx.publish(ch, Recipient::Broadcast, MessageKind::INFO, Payload::Empty);
    }
}

/// busbar, digest on: returns the number of events.
fn busbar_hub() -> u64 {
    let mut b = SimBuilder::new(1).default_link(LinkModel {
        latency: Latency::Uniform {
            min: SimDuration(HOP_MIN_NS),
            max: SimDuration(HOP_MIN_NS + HOP_SPAN_NS - 1),
        },
        ..LinkModel::default()
    });
    for i in 0..SENDERS {
        b = b.agent(
            &format!("s{i}"),
            Sender {
                hub: ChannelId(0),
                own: ChannelId(0),
                pongs: 0,
            },
        );
    }
    let mut sim = b
        .agent("hub", Hub { reply: Vec::new() })
        .build()
        .expect("valid");
    sim.run_until(SimTime(SIM_NS)).expect("within limits");
    sim.finish().expect("finishes").events
}

/// The five events of a ping-pong, for the floor.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Timer,
    PingAtBroker,
    PingAtHub,
    PongAtBroker,
    PongAtSender,
}

/// The floor: a `BinaryHeap` loop with one ChaCha8 draw and a 16-byte trace
/// append per event. Returns the number of events.
fn floor_hub() -> u64 {
    let mut heap: BinaryHeap<Reverse<(u64, u64, u32, Ev)>> = BinaryHeap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut trace: Vec<[u64; 2]> = Vec::with_capacity(10_100_000);
    let mut seq = 0u64;
    for s in 0..SENDERS {
        heap.push(Reverse((0, seq, s, Ev::Timer)));
        seq += 1;
    }
    while let Some(Reverse((t, s, who, ev))) = heap.pop() {
        if t > SIM_NS {
            break;
        }
        trace.push([t, s]);
        let hop = HOP_MIN_NS + rng.next_u64() % HOP_SPAN_NS;
        let next = match ev {
            Ev::Timer => {
                heap.push(Reverse((t + PERIOD_NS, seq, who, Ev::Timer)));
                seq += 1;
                Some(Ev::PingAtBroker)
            }
            Ev::PingAtBroker => Some(Ev::PingAtHub),
            Ev::PingAtHub => Some(Ev::PongAtBroker),
            Ev::PongAtBroker => Some(Ev::PongAtSender),
            Ev::PongAtSender => None,
        };
        if let Some(ev) = next {
            heap.push(Reverse((t + hop, seq, who, ev)));
            seq += 1;
        }
    }
    trace.len() as u64
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("hub");
    g.sample_size(10);
    g.throughput(Throughput::Elements(busbar_hub()));
    g.bench_function("busbar", |b| b.iter(|| black_box(busbar_hub())));
    g.throughput(Throughput::Elements(floor_hub()));
    g.bench_function("floor", |b| b.iter(|| black_box(floor_hub())));
    g.finish();
}

/// ns per event of each, best of interleaved runs, and their ratio.
fn ratio() {
    let time = |f: fn() -> u64| {
        let start = Instant::now();
        let events = black_box(f());
        start.elapsed().as_nanos() as f64 / events as f64
    };
    let (mut best_busbar, mut best_floor) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        best_busbar = best_busbar.min(time(busbar_hub));
        best_floor = best_floor.min(time(floor_hub));
    }
    println!(
        "hub: busbar {best_busbar:.1} ns/event, floor {best_floor:.1} ns/event, ratio {:.2}",
        best_busbar / best_floor
    );
}

criterion_group!(hub, benches);

fn main() {
    hub();
    Criterion::default().configure_from_args().final_summary();
    ratio();
}
