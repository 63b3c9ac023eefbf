//! The hot path allocates nothing per message once warm: the event queue,
//! the message slab, timers and the trace buffer reuse their memory, and
//! small payloads are inline. Counted with a global allocator that tallies
//! allocations (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use busbar::agent::builtin::{Periodic, Sink};
use busbar::{Delivery, Latency, LinkModel, SimBuilder, SimDuration, SimTime, Simulation};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's allocations: for a test that runs its subject on its
    /// own thread, unaffected by tests that build simulations meanwhile.
    static MINE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    // A thread being torn down has no slot any more: not counted there.
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The count is global: the tests take turns so that none counts
/// another's allocations.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `sim` for 20 000 warm-up periods of 10 µs, then 100 000 more, and
/// asserts that the second part allocates a handful of times at most (a
/// table growing to a rare new peak), never once per message.
fn assert_no_allocation_per_message_when_warm(sim: Simulation) {
    assert_allocations_when_warm(sim, 20);
}

/// The same with a bound of `max` allocations.
fn assert_allocations_when_warm(mut sim: Simulation, max: u64) {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let every = SimDuration::from_micros(10);
    // Warm up: every table reaches its working size.
    sim.run_until(SimTime(every.as_nanos() * 20_000)).unwrap();
    let events_before = sim.metrics().events;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    sim.run_until(SimTime(every.as_nanos() * 120_000)).unwrap();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let events = sim.metrics().events - events_before;
    sim.finish().unwrap();
    assert!(events > 350_000, "{events}");
    assert!(
        allocations < max,
        "{allocations} allocations over {events} events"
    );
}

/// A publisher every 10 µs and two subscribers.
fn traffic() -> SimBuilder {
    let every = SimDuration::from_micros(10);
    SimBuilder::new(1)
        .agent("src", Periodic::new("env0/x", every))
        .agent("a", Sink::new(&["env0/x".into()], Delivery::Push, None))
        .agent("b", Sink::new(&["env0/x".into()], Delivery::Push, None))
}

/// Lognormal latency around 80 µs, 1 % loss.
fn lossy_link() -> LinkModel {
    LinkModel {
        latency: Latency::Lognormal {
            median: SimDuration::from_micros(80),
            sigma: 0.5,
        },
        loss: busbar::network::Loss::bernoulli(0.01),
        ..LinkModel::default()
    }
}

#[test]
fn a_warm_loop_allocates_nothing_per_message() {
    let sim = traffic().default_link(lossy_link()).build().unwrap();
    assert_no_allocation_per_message_when_warm(sim);
}

#[test]
fn writing_a_trace_file_allocates_nothing_per_record() {
    // Same traffic, every record encoded into trace batches: the encoder
    // reuses its output buffer and header cache.
    let header = busbar::trace::Header {
        crate_version: "test".into(),
        scenario_path: "no_alloc".into(),
        base_dir: ".".into(),
        scenario: String::new(),
        seed: 1,
        env: 0,
        payload_limit: None,
    };
    let sim = traffic()
        .trace_to(Box::new(std::io::sink()), header)
        .build()
        .unwrap();
    assert_no_allocation_per_message_when_warm(sim);
}

#[test]
fn a_consumer_group_on_an_acknowledged_channel_allocates_nothing_per_message() {
    // Each message to the plain subscriber and to one of three members;
    // 1 % of copies and acks lost, so some are redelivered to another
    // member. An acknowledged channel keeps per-message state (the open
    // deliveries, who has seen it) in boxes from a pool that grows with
    // the most messages open at once, a peak the retransmission tail
    // raises now and then (a few dozen times over 100 000 messages, with
    // or without a group): rare, never per message.
    let every = SimDuration::from_micros(10);
    let member = || Sink::new(&["env0/x".into()], Delivery::Push, None).group(Some("w".into()));
    let broker = busbar::BrokerConfig {
        channels: vec![busbar::ChannelSpec {
            topic: "env0/x".into(),
            qos: Some(busbar::Qos::AtLeastOnce),
            publish_qos: Some(busbar::Qos::AtMostOnce),
            ack_timeout: Some(SimDuration::from_micros(500)),
            ..busbar::ChannelSpec::default()
        }],
        ..busbar::BrokerConfig::default()
    };
    let sim = SimBuilder::new(1)
        .broker(broker)
        .default_link(lossy_link())
        .agent("src", Periodic::new("env0/x", every))
        .agent("plain", Sink::new(&["env0/x".into()], Delivery::Push, None))
        .agent("w1", member())
        .agent("w2", member())
        .agent("w3", member())
        .build()
        .unwrap();
    assert_allocations_when_warm(sim, 100);
}

#[test]
fn sessions_allocate_nothing_per_message_when_warm() {
    // Sessions on, a short keepalive (a ping per agent every 1 ms), a
    // QoS 1 channel, and subscriber `b` crashed three times: twice while
    // warming up (the first crash and resume grow the tables to their
    // peak, the second may still set a new peak), once after, so copies
    // are kept in its session (1 000, then `overflow`) and resumed.
    let broker: busbar::BrokerConfig = toml::from_str(
        "[sessions]\nkeepalive = \"1ms\"\n\n[[channel]]\ntopic = \"#\"\nqos = \"at_least_once\"\nack_timeout = \"2ms\"\n",
    )
    .unwrap();
    let crash = |at: &str, restart: &str| -> busbar::network::FaultSpec {
        toml::from_str(&format!(
            "kind = \"crash\"\nagent = \"b\"\nat = \"{at}\"\nrestart = \"{restart}\"\n"
        ))
        .unwrap()
    };
    let sim = traffic()
        .broker(broker)
        .fault(crash("50ms", "100ms"))
        .fault(crash("120ms", "170ms"))
        .fault(crash("500ms", "550ms"))
        .build()
        .unwrap();
    assert_no_allocation_per_message_when_warm(sim);
}

/// Once sized, neither power flow allocates in `solve`, converged or not,
/// warm or flat.
#[test]
fn power_flows_allocate_nothing_once_sized() {
    use busbar::grid::{AcSweep, Feeder, FlowResult, LinDistFlow, PowerFlow};
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let feeder = Feeder::chain(33, 0.01, 0.02, 5.0);
    let mut ac = AcSweep::new(&feeder).unwrap();
    let mut lin = LinDistFlow::new(&feeder).unwrap();
    let mut out = FlowResult::new(&feeder);
    let load: Vec<(f64, f64)> = (0..33).map(|b| (-0.01 * b as f64, -0.003)).collect();
    let collapse: Vec<(f64, f64)> = vec![(-5.0, -5.0); 33];
    // Counted on this thread only: the solvers run here, and other tests
    // build their simulations on theirs meanwhile.
    let before = MINE.with(|c| c.get());
    for inj in [&load, &collapse, &load, &load] {
        ac.solve(&feeder, inj, &mut out);
        lin.solve(&feeder, inj, &mut out);
    }
    assert_eq!(MINE.with(|c| c.get()) - before, 0);
}
