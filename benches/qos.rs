//! What a delivery guarantee costs per message: 10 publishers every 100 µs
//! to one sink through the broker, constant 50 µs links, 1 simulated s,
//! digest on; per message published (100 000). At QoS 0 a message is two
//! hops (publish, deliver); at QoS 1 and 2 it is four (publish, puback,
//! deliver, ack) plus the tracking of both obligations and their timers.
//!
//! `cargo bench --bench qos`

#[path = "common/fanin.rs"]
mod fanin;
use fanin::fan_in;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};

use busbar::network::LinkModel;
use busbar::{BrokerConfig, ChannelSpec, Qos, SimDuration};

fn run(qos: Qos, loss: f64) -> u64 {
    let link: LinkModel = toml::from_str(&format!(
        "latency = {{ dist = \"constant\", value = \"50us\" }}\nloss = {loss}\n"
    ))
    .expect("valid link");
    let broker = BrokerConfig {
        channels: vec![ChannelSpec {
            topic: "c".into(),
            qos: Some(qos),
            ack_timeout: Some(SimDuration::from_millis(1)),
            ..ChannelSpec::default()
        }],
        ..BrokerConfig::default()
    };
    fan_in(link, broker, 10, 1000)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("qos");
    g.sample_size(10);
    for (name, qos, loss) in [
        ("at_most_once", Qos::AtMostOnce, 0.0),
        ("at_least_once", Qos::AtLeastOnce, 0.0),
        ("exactly_once", Qos::ExactlyOnce, 0.0),
        ("at_least_once_loss_5pct", Qos::AtLeastOnce, 0.05),
    ] {
        g.throughput(Throughput::Elements(run(qos, loss)));
        g.bench_function(name, |b| b.iter(|| black_box(run(qos, loss))));
    }
    g.finish();
}

/// ns per message of QoS 0, 1 and 2 without loss, best of interleaved
/// runs, and QoS 1's and 2's cost relative to QoS 0.
fn ratio() {
    let time = |qos: Qos| {
        let start = std::time::Instant::now();
        let n = black_box(run(qos, 0.0));
        start.elapsed().as_nanos() as f64 / n as f64
    };
    let mut best = [f64::MAX; 3];
    for _ in 0..7 {
        for (i, q) in [Qos::AtMostOnce, Qos::AtLeastOnce, Qos::ExactlyOnce]
            .into_iter()
            .enumerate()
        {
            best[i] = best[i].min(time(q));
        }
    }
    println!(
        "qos: at_most_once {:.0} ns/message, at_least_once {:.0} ({:.2}x), exactly_once {:.0} ({:.2}x)",
        best[0],
        best[1],
        best[1] / best[0],
        best[2],
        best[2] / best[0]
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    ratio();
}
