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

#[path = "common/fanin.rs"]
mod fanin;
use fanin::fan_in;

use std::hint::black_box;

use busbar::broker::QueueOverflow;
use busbar::network::{Latency, LinkModel};
use busbar::{BrokerConfig, SimDuration};
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
    let link = LinkModel {
        latency: Latency::Constant {
            value: SimDuration::from_micros(100),
        },
        ..LinkModel::default()
    };
    fan_in(link, broker.clone(), 100, 50)
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
