//! The fan-in workload several benches share: `publishers` periodic
//! publishers every 100 µs on channel "c" to one push sink, through the
//! broker, for `millis` simulated ms, digest on. Returns the messages
//! published (the throughput unit).

use busbar::agent::builtin::{Periodic, Sink};
use busbar::network::LinkModel;
use busbar::{BrokerConfig, Delivery, SimBuilder, SimDuration, SimTime};

pub fn fan_in(link: LinkModel, broker: BrokerConfig, publishers: usize, millis: u64) -> u64 {
    let mut b = SimBuilder::new(3).default_link(link).broker(broker);
    for i in 0..publishers {
        b = b.agent(
            &format!("p{i}"),
            Periodic::new("c", SimDuration::from_micros(100)),
        );
    }
    let mut sim = b
        .agent("s", Sink::new(&["c".to_string()], Delivery::Push, None))
        .build()
        .expect("valid");
    sim.run_until(SimTime::ZERO + SimDuration::from_millis(millis))
        .expect("within limits");
    sim.finish().expect("finished").published
}
