//! The pull API from outside the loop (consume / peek / pending per channel
//! and recipient) and clearing an environment's buffers.

use busbar::agent::builtin::{Periodic, Sink};
use busbar::{Delivery, SimBuilder, SimDuration, SimTime};

fn sim() -> busbar::Simulation {
    let link = toml::from_str("latency = { dist = \"constant\", value = \"1ms\" }").unwrap();
    SimBuilder::new(1)
        .default_link(link)
        .agent(
            "p",
            Periodic::new("a", SimDuration::from_millis(10)).limit(Some(5)),
        )
        .agent(
            "q",
            Periodic::new("b", SimDuration::from_millis(10)).limit(Some(3)),
        )
        .agent(
            "s",
            Sink::new(&["a".to_string(), "b".to_string()], Delivery::Pull, None),
        )
        .build()
        .unwrap()
}

#[test]
fn consume_peek_and_pending_per_channel_and_recipient() {
    let mut sim = sim();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let s = sim.agent_id("s").unwrap();
    let p = sim.agent_id("p").unwrap();
    assert_eq!((sim.pending("a", s), sim.pending("b", s)), (5, 3));
    assert_eq!(sim.pending("a", p), 0);
    assert_eq!(sim.pending("nope", s), 0);
    let first = sim.peek("a", s).unwrap().id;
    assert_eq!(sim.consume("a", s).unwrap().id, first);
    assert_eq!(sim.pending("a", s), 4);
    let ids: Vec<u64> = std::iter::from_fn(|| sim.consume("a", s))
        .map(|m| m.id.0)
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "oldest first");
    assert!(sim.consume("a", s).is_none());
    assert!(sim.consume("a", busbar::AgentId(99)).is_none());
}

#[test]
fn clearing_the_environment_empties_every_buffer_and_counts() {
    let mut sim = sim();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(1))
        .unwrap();
    let s = sim.agent_id("s").unwrap();
    assert_eq!(sim.clear_channels(), 8);
    assert_eq!(sim.pending("a", s) + sim.pending("b", s), 0);
    assert_eq!(sim.metrics().cleared, 8);
    assert_eq!(sim.clear_channels(), 0);
    let summary = sim.finish().unwrap();
    assert_eq!(summary.delivered, 8, "cleared copies had been delivered");
}
