//! Engine benchmarks. Run with `cargo bench --bench engine`.
//!
//! - `bare_loop`: the reference loop from the project brief (BinaryHeap +
//!   one ChaCha8 draw + a 16-byte trace append per event), to compare
//!   busbar's per-event cost against.
//! - `relay`: busbar's loop on the simplest traffic (a periodic publisher
//!   and a sink), tracing on and off.
//! - `engine_minimal`: the same traffic with agents that do no work of their
//!   own (empty payloads, a subscriber that ignores what it gets): the
//!   engine's own per-event cost, tracing on.
//! - `large_100x5`: the shipped 100 microgrids × 5 devices scenario, 2
//!   simulated minutes; throughput is in simulated events per second.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::path::Path;

use busbar::agent::builtin::{Periodic, Sink};
use busbar::scenario::Scenario;
use busbar::{Delivery, Latency, LinkModel, SimBuilder, SimDuration, SimTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

fn bare_loop(n: u64) -> u64 {
    let mut heap = BinaryHeap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut trace: Vec<[u64; 2]> = Vec::with_capacity(n as usize);
    for i in 0..64u64 {
        heap.push(Reverse((i, i)));
    }
    let mut seq = 64u64;
    while let Some(Reverse((t, s))) = heap.pop() {
        trace.push([t, s]);
        if seq < n {
            let d = rng.next_u64() % 1000;
            heap.push(Reverse((t + d, seq)));
            seq += 1;
        }
    }
    trace.len() as u64
}

fn relay(events_target: u64, trace: bool) -> u64 {
    let every = SimDuration::from_micros(10);
    let mut b = SimBuilder::new(1)
        .default_link(LinkModel {
            latency: Latency::Uniform {
                min: SimDuration::from_micros(50),
                max: SimDuration::from_micros(150),
            },
            ..LinkModel::default()
        })
        .agent("src", Periodic::new("env0/x", every))
        .agent("dst", Sink::new(&["env0/x".into()], Delivery::Push, None));
    if !trace {
        b = b.trace_off();
    }
    let mut sim = b.build().expect("valid");
    // Each message costs a timer, a route and a delivery: 3 events.
    let until = SimTime(every.as_nanos() * events_target / 3);
    sim.run_until(until).expect("no limit");
    sim.finish().expect("finishes").events
}

/// The smallest agent that drives the loop: one empty message per timer.
struct Tick {
    ch: Option<busbar::ChannelId>,
    every: SimDuration,
}

impl busbar::Agent for Tick {
    fn on_start(&mut self, ctx: &mut busbar::Context<'_>) {
        self.ch = Some(ctx.channel("x"));
        ctx.set_timer(SimDuration::ZERO, 0);
    }
    fn on_timer(&mut self, ctx: &mut busbar::Context<'_>, _tag: u64) {
        let ch = self.ch.expect("interned at start");
        ctx.publish(
            ch,
            busbar::Recipient::Broadcast,
            busbar::MessageKind::INFO,
            busbar::Payload::Empty,
        );
        ctx.set_timer(self.every, 0);
    }
}

/// A subscriber that does nothing with what it gets.
struct Quiet;

impl busbar::Agent for Quiet {
    fn on_start(&mut self, ctx: &mut busbar::Context<'_>) {
        let ch = ctx.channel("x");
        ctx.subscribe(ch, Delivery::Push);
    }
}

/// busbar's own per-event cost: agents that do no work of their own.
fn engine_minimal(events_target: u64) -> u64 {
    let every = SimDuration::from_micros(10);
    let mut sim = SimBuilder::new(1)
        .default_link(LinkModel {
            latency: Latency::Uniform {
                min: SimDuration::from_micros(50),
                max: SimDuration::from_micros(150),
            },
            ..LinkModel::default()
        })
        .agent("tick", Tick { ch: None, every })
        .agent("quiet", Quiet)
        .build()
        .expect("valid");
    let until = SimTime(every.as_nanos() * events_target / 3);
    sim.run_until(until).expect("no limit");
    sim.finish().expect("finishes").events
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("loop");
    let n = 1_000_000;
    g.throughput(Throughput::Elements(n));
    g.bench_function("bare_loop", |b| b.iter(|| black_box(bare_loop(n))));
    let events = relay(n, true);
    g.throughput(Throughput::Elements(events));
    g.bench_function("relay_traced", |b| b.iter(|| black_box(relay(n, true))));
    g.bench_function("relay_untraced", |b| b.iter(|| black_box(relay(n, false))));
    g.throughput(Throughput::Elements(engine_minimal(n)));
    g.bench_function("engine_minimal", |b| {
        b.iter(|| black_box(engine_minimal(n)))
    });
    g.finish();

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/large_100x5.toml");
    let scenario = Scenario::from_file(&path).expect("shipped scenario loads");
    let events = scenario.run(scenario.seed(), 0).expect("runs").events;
    let mut g = c.benchmark_group("scenario");
    g.sample_size(20);
    g.throughput(Throughput::Elements(events));
    g.bench_function("large_100x5", |b| {
        b.iter(|| black_box(scenario.run(scenario.seed(), 0).expect("runs").events))
    });
    g.finish();
}

criterion_group!(engine, benches);
criterion_main!(engine);
