//! Cost per message of each link model. Run with
//! `cargo bench --bench links`.
//!
//! One [`Link`] is driven by hand, one message per iteration, 1 µs apart
//! (so a link with a rate stays below saturation and its queue drains):
//! `transmit` plus taking any duplicate, exactly what the engine does per
//! hop. `constant` is the plain hop every other figure is compared with;
//! `full_chain` enables every step of the netem-style chain at once
//! (bursty loss, correlated heavy-tailed delay, reordering, corruption,
//! duplication, a rate with a bounded queue) on a lognormal delay, and
//! `full_chain_constant` the same chain on a constant delay, so that the
//! cost of the chain can be told from the cost of drawing a heavy-tailed
//! delay (`lognormal` alone: a Box–Muller normal on `libm`).

#[path = "common/fanin.rs"]
mod fanin;
use fanin::fan_in;

use std::hint::black_box;

use busbar::network::{Latency, Link, LinkModel, Loss, Ordering};
use busbar::{BrokerConfig, SimDuration, SimTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn ms(n: u64) -> SimDuration {
    SimDuration::from_millis(n)
}

fn models() -> Vec<(&'static str, LinkModel)> {
    let constant = LinkModel {
        latency: Latency::Constant { value: ms(2) },
        ..LinkModel::default()
    };
    let lognormal = LinkModel {
        latency: Latency::Lognormal {
            median: ms(2),
            sigma: 0.5,
        },
        ..LinkModel::default()
    };
    vec![
        ("constant", constant.clone()),
        (
            "uniform",
            LinkModel {
                latency: Latency::Uniform {
                    min: ms(1),
                    max: ms(3),
                },
                ..LinkModel::default()
            },
        ),
        ("lognormal", lognormal.clone()),
        (
            "bernoulli_loss",
            LinkModel {
                loss: Loss::bernoulli(0.01),
                ..constant.clone()
            },
        ),
        (
            "rate_and_queue",
            LinkModel {
                rate_bps: 10_000_000_000,
                queue_messages: 64,
                ..constant.clone()
            },
        ),
        (
            "full_chain_constant",
            LinkModel {
                loss: Loss::bernoulli(0.01),
                correlation: 0.25,
                reorder: 0.01,
                duplicate: 0.01,
                corrupt: 0.001,
                rate_bps: 10_000_000_000,
                queue_messages: 64,
                ..constant.clone()
            },
        ),
        (
            "full_chain",
            LinkModel {
                loss: Loss::bernoulli(0.01),
                correlation: 0.25,
                reorder: 0.01,
                duplicate: 0.01,
                corrupt: 0.001,
                rate_bps: 10_000_000_000,
                queue_messages: 64,
                ordering: Ordering::Fifo,
                ..lognormal
            },
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("link");
    g.throughput(Throughput::Elements(1));
    for (name, model) in models() {
        let mut link = Link::new(&model, 7, 0, "a->broker");
        let mut t = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                t += 1_000;
                let first = link.transmit(SimTime(t), black_box(32), 1.0);
                (first, link.take_duplicate())
            })
        });
    }
    g.finish();
}

/// The same models in a whole simulation: 10 publishers every 100 µs to one
/// sink through the broker (two hops per message, each on the model under
/// test), 200 simulated ms, digest on; per message published (20 000).
fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_hop");
    g.sample_size(10);
    for (name, model) in models() {
        if !matches!(
            name,
            "constant" | "full_chain_constant" | "lognormal" | "full_chain"
        ) {
            continue;
        }
        let run = || fan_in(model.clone(), BrokerConfig::default(), 10, 200);
        g.throughput(Throughput::Elements(run()));
        g.bench_function(name, |b| b.iter(|| black_box(run())));
    }
    g.finish();
}

criterion_group!(benches, bench, engine);
criterion_main!(benches);
