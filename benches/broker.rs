//! Cost per message of the broker's server model. Run with
//! `cargo bench --bench broker`.
//!
//! 100 publishers every 100 µs (1 000 000 messages/s in all) to one push
//! sink through the broker, constant 100 µs links, 50 simulated ms, digest
//! on; throughput per message published (50 000):
//!
//! - `off`: no server model (the broker routes at arrival; the baseline);
//! - `idle`: `rate = 1e9` (1 ns service, one worker): every message goes
//!   through the server but never waits;
//! - `mm1_rho0.8`: exponential service of mean 0.8 µs (ρ = 0.8 with the
//!   publishers in lockstep, so bursts of 100 queue up);
//! - `mm4_drop_oldest`: four workers, exponential 3.2 µs, a queue of 16
//!   with `drop_oldest` (overflow drops on every burst).

use std::hint::black_box;

use busbar::agent::builtin::{Periodic, Sink};
use busbar::broker::QueueOverflow;
use busbar::network::{Latency, LinkModel};
use busbar::{BrokerConfig, Delivery, SimBuilder, SimDuration, SimTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn configs() -> Vec<(&'static str, BrokerConfig)> {
    let exp = |ns| {
        Some(Latency::Exponential {
            mean: SimDuration(ns),
            min: SimDuration::ZERO,
        })
    };
    vec![
        ("off", BrokerConfig::default()),
        (
            "idle",
            BrokerConfig {
                rate: Some(1e9),
                ..BrokerConfig::default()
            },
        ),
        (
            "mm1_rho0.8",
            BrokerConfig {
                service: exp(800),
                ..BrokerConfig::default()
            },
        ),
        (
            "mm4_drop_oldest",
            BrokerConfig {
                service: exp(3_200),
                workers: Some(4),
                queue_capacity: Some(16),
                queue_overflow: Some(QueueOverflow::DropOldest),
                ..BrokerConfig::default()
            },
        ),
    ]
}

fn run(broker: &BrokerConfig) -> u64 {
    let mut b = SimBuilder::new(3)
        .default_link(LinkModel {
            latency: Latency::Constant {
                value: SimDuration::from_micros(100),
            },
            ..LinkModel::default()
        })
        .broker(broker.clone());
    for i in 0..100 {
        b = b.agent(
            &format!("p{i}"),
            Periodic::new("c", SimDuration::from_micros(100)),
        );
    }
    let mut sim = b
        .agent("s", Sink::new(&["c".to_string()], Delivery::Push, None))
        .build()
        .expect("valid");
    sim.run_until(SimTime::ZERO + SimDuration::from_millis(50))
        .expect("within limits");
    sim.finish().expect("finished").published
}

fn server(c: &mut Criterion) {
    let mut g = c.benchmark_group("broker_server");
    g.sample_size(20);
    for (name, config) in configs() {
        g.throughput(Throughput::Elements(run(&config)));
        g.bench_function(name, |b| b.iter(|| black_box(run(&config))));
    }
    g.finish();
}

criterion_group!(benches, server);
criterion_main!(benches);
