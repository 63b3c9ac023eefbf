//! What a delivery guarantee costs per message: 10 publishers every 100 µs
//! to one sink through the broker, constant 50 µs links, 200 simulated ms,
//! digest on; per message published (20 000). At QoS 0 a message is two
//! hops (publish, deliver); at QoS 1 and 2 it is four (publish, puback,
//! deliver, ack) plus the tracking of both obligations and their timers.
//!
//! `cargo bench --bench qos`

#[path = "common/fanin.rs"]
mod fanin;
use fanin::fan_in;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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
    fan_in(link, broker, 10, 200)
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

criterion_group!(benches, bench);
criterion_main!(benches);
