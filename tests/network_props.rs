//! Properties of the network under every link setting and fault at once:
//! every message is accounted for, FIFO links never reorder, nothing
//! crosses a partition while it holds, and a run is a function of its seed.
//!
//! `BUSBAR_PROPTEST_CASES=500 cargo test --test network_props` searches
//! deeper than the default.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use busbar::{EventKind, Reason, Record, Scenario, SimTime, Summary};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Link {
    jitter_us: u64,
    loss: f64,
    duplicate: f64,
    corrupt: f64,
    reorder: f64,
    correlation: f64,
    rate_bps: u64,
    queue_messages: u64,
    fifo: bool,
}

#[derive(Clone, Debug)]
enum Fault {
    LinkDown {
        agent: usize,
        up: bool,
        at_ms: u64,
        len_ms: u64,
    },
    Partition {
        a: usize,
        b: Option<usize>,
        one_way: bool,
        at_ms: u64,
        len_ms: u64,
    },
    Degrade {
        agent: usize,
        factor: f64,
        extra_loss: f64,
        at_ms: u64,
        len_ms: u64,
    },
    Crash {
        agent: usize,
        at_ms: u64,
        len_ms: Option<u64>,
    },
    BrokerDown {
        at_ms: u64,
        len_ms: u64,
    },
    Flap {
        agent: usize,
        mtbf_ms: u64,
        mttr_ms: u64,
    },
}

#[derive(Clone, Debug)]
struct Gen {
    seed: u64,
    senders: usize,
    sinks: usize,
    link: Link,
    uplink: Option<Link>,
    /// Senders reach the broker through a router (two hops up).
    router: bool,
    faults: Vec<Fault>,
}

fn link() -> impl Strategy<Value = Link> {
    (
        (0u64..3_000, 0.0..0.3f64, 0.0..0.3f64, 0.0..0.2f64),
        (
            0.0..0.3f64,
            0.0..0.9f64,
            prop_oneof![Just(0u64), 100_000u64..2_000_000],
        ),
        (0u64..6, any::<bool>()),
    )
        .prop_map(|((j, l, d, c), (r, rho, rate), (q, fifo))| Link {
            jitter_us: j,
            loss: l,
            duplicate: d,
            corrupt: c,
            reorder: r,
            correlation: rho,
            rate_bps: rate,
            queue_messages: if rate > 0 { q } else { 0 },
            fifo,
        })
}

fn fault(agents: usize) -> impl Strategy<Value = Fault> {
    let a = 0..agents;
    let at = 0u64..400;
    let len = 1u64..200;
    prop_oneof![
        (a.clone(), any::<bool>(), at.clone(), len.clone()).prop_map(
            |(agent, up, at_ms, len_ms)| Fault::LinkDown {
                agent,
                up,
                at_ms,
                len_ms
            }
        ),
        (
            a.clone(),
            prop::option::of(a.clone()),
            any::<bool>(),
            at.clone(),
            len.clone()
        )
            .prop_map(|(a, b, one_way, at_ms, len_ms)| Fault::Partition {
                a,
                b,
                one_way,
                at_ms,
                len_ms
            }),
        (a.clone(), 0.0..4.0f64, 0.0..0.5f64, at.clone(), len.clone()).prop_map(
            |(agent, factor, extra_loss, at_ms, len_ms)| Fault::Degrade {
                agent,
                factor,
                extra_loss,
                at_ms,
                len_ms
            }
        ),
        (a.clone(), at.clone(), prop::option::of(len.clone())).prop_map(
            |(agent, at_ms, len_ms)| Fault::Crash {
                agent,
                at_ms,
                len_ms
            }
        ),
        (at, len).prop_map(|(at_ms, len_ms)| Fault::BrokerDown { at_ms, len_ms }),
        (a, 5u64..100, 1u64..50).prop_map(|(agent, mtbf_ms, mttr_ms)| Fault::Flap {
            agent,
            mtbf_ms,
            mttr_ms
        }),
    ]
}

fn scenario() -> impl Strategy<Value = Gen> {
    (1usize..=3, 1usize..=2).prop_flat_map(|(senders, sinks)| {
        (
            any::<u64>(),
            link(),
            prop::option::of(link()),
            any::<bool>(),
            prop::collection::vec(fault(senders + sinks), 0..4),
        )
            .prop_map(move |(seed, link, uplink, router, faults)| Gen {
                seed,
                senders,
                sinks,
                link,
                uplink,
                router,
                faults,
            })
    })
}

fn name(g: &Gen, i: usize) -> String {
    if i < g.senders {
        format!("p{i}")
    } else {
        format!("s{}", i - g.senders)
    }
}

fn model(l: &Link) -> String {
    format!(
        "latency = {{ dist = \"uniform\", min = \"1ms\", max = \"{}us\" }}\nloss = {}\n\
         duplicate = {}\ncorrupt = {}\nreorder = {}\ncorrelation = {}\nrate_bps = {}\n\
         queue_messages = {}\nordering = \"{}\"\n",
        1_000 + l.jitter_us,
        l.loss,
        l.duplicate,
        l.corrupt,
        l.reorder,
        l.correlation,
        l.rate_bps,
        l.queue_messages,
        if l.fifo { "fifo" } else { "unordered" }
    )
}

impl Gen {
    /// The node at the other end of agent `i`'s first link.
    fn next_hop(&self, i: usize) -> String {
        if self.router && i < self.senders {
            "gw".into()
        } else {
            "broker".into()
        }
    }

    fn toml(&self) -> String {
        let mut t = String::from(
            "[simulation]\nname = \"props\"\nduration = \"500ms\"\n\n[broker]\nprocessing = \"100us\"\n\n",
        );
        t += "[network.default]\n";
        t += &model(&self.link);
        if self.router {
            t += "\n[[network.router]]\nname = \"gw\"\n\n[[network.edge]]\na = \"p*\"\nb = \"gw\"\n\n[[network.edge]]\na = \"gw\"\nb = \"broker\"\n";
        }
        if let Some(u) = &self.uplink {
            let to = if self.router { "gw" } else { "broker" };
            let _ = write!(t, "\n[[network.link]]\nfrom = \"p*\"\nto = \"{to}\"\n");
            t += &model(u);
        }
        for i in 0..self.senders {
            let _ = write!(
                t,
                "\n[[agent]]\ntype = \"periodic\"\nname = \"p{i}\"\nchannel = \"c\"\nperiod = \"{}us\"\n",
                2_000 + 700 * i
            );
        }
        for k in 0..self.sinks {
            let _ = write!(
                t,
                "\n[[agent]]\ntype = \"sink\"\nname = \"s{k}\"\nchannels = [\"c\"]\n"
            );
        }
        for f in &self.faults {
            t += "\n[[fault]]\n";
            match f {
                Fault::LinkDown {
                    agent,
                    up,
                    at_ms,
                    len_ms,
                } => {
                    let (from, to) = if *up {
                        (name(self, *agent), self.next_hop(*agent))
                    } else {
                        (self.next_hop(*agent), name(self, *agent))
                    };
                    let _ = write!(
                        t,
                        "kind = \"link_down\"\nfrom = \"{from}\"\nto = \"{to}\"\nat = \"{at_ms}ms\"\nuntil = \"{}ms\"\n",
                        at_ms + len_ms
                    );
                }
                Fault::Partition {
                    a,
                    b,
                    one_way,
                    at_ms,
                    len_ms,
                } => {
                    let _ = write!(
                        t,
                        "kind = \"partition\"\na = \"{}\"\none_way = {one_way}\nat = \"{at_ms}ms\"\nuntil = \"{}ms\"\n",
                        name(self, *a),
                        at_ms + len_ms
                    );
                    if let Some(b) = b.filter(|b| b != a) {
                        let _ = writeln!(t, "b = \"{}\"", name(self, b));
                    }
                }
                Fault::Degrade {
                    agent,
                    factor,
                    extra_loss,
                    at_ms,
                    len_ms,
                } => {
                    let _ = write!(
                        t,
                        "kind = \"degrade\"\nfrom = \"{}\"\nto = \"{}\"\nboth = true\n\
                         latency_factor = {factor}\nextra_loss = {extra_loss}\nat = \"{at_ms}ms\"\nuntil = \"{}ms\"\n",
                        name(self, *agent),
                        self.next_hop(*agent),
                        at_ms + len_ms
                    );
                }
                Fault::Crash {
                    agent,
                    at_ms,
                    len_ms,
                } => {
                    let _ = write!(
                        t,
                        "kind = \"crash\"\nagent = \"{}\"\nat = \"{at_ms}ms\"\n",
                        name(self, *agent)
                    );
                    if let Some(l) = len_ms {
                        let _ = writeln!(t, "restart = \"{}ms\"", at_ms + l);
                    }
                }
                Fault::BrokerDown { at_ms, len_ms } => {
                    let _ = write!(
                        t,
                        "kind = \"broker_down\"\nat = \"{at_ms}ms\"\nuntil = \"{}ms\"\n",
                        at_ms + len_ms
                    );
                }
                Fault::Flap {
                    agent,
                    mtbf_ms,
                    mttr_ms,
                } => {
                    let _ = write!(
                        t,
                        "kind = \"flap\"\nfrom = \"{}\"\nto = \"{}\"\nboth = true\nmtbf = \"{mtbf_ms}ms\"\nmttr = \"{mttr_ms}ms\"\n",
                        name(self, *agent),
                        self.next_hop(*agent)
                    );
                }
            }
        }
        t
    }
}

fn run(g: &Gen) -> (Summary, Vec<Record>, Scenario) {
    let text = g.toml();
    let s = Scenario::parse(&text, "props.toml", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut sim = s.builder(g.seed, 0).trace_in_memory().build().unwrap();
    sim.run_until(SimTime::ZERO + s.spec().simulation.duration)
        .unwrap();
    let summary = sim.finish().unwrap();
    let records = sim.records();
    (summary, records, s)
}

proptest! {
    #![proptest_config(common::proptest_config(48))]

    #[test]
    fn every_message_is_accounted_for(g in scenario()) {
        let (s, rec, _) = run(&g);
        prop_assert_eq!(
            s.published + s.duplicated_uplink,
            s.routed + s.dropped_uplink + s.in_flight_uplink,
            "uplink side: {:?}", s
        );
        prop_assert_eq!(
            s.copies + s.retained_copies + s.duplicated_downlink,
            s.delivered + s.dropped_downlink + s.in_flight_downlink,
            "downlink side: {:?}", s
        );
        // The same from the trace alone, copy by copy.
        let count = |k: EventKind| rec.iter().filter(|r| r.event == k).count() as u64;
        let no_sub = rec
            .iter()
            .filter(|r| r.event == EventKind::Drop && r.detail == Reason::NoSubscriber as u16)
            .count() as u64;
        prop_assert_eq!(count(EventKind::Publish), s.published);
        prop_assert_eq!(count(EventKind::Duplicate), s.duplicated_uplink + s.duplicated_downlink);
        prop_assert_eq!(count(EventKind::Retained), s.retained_copies);
        prop_assert_eq!(count(EventKind::Drop), s.dropped_uplink + s.dropped_downlink + no_sub);
        prop_assert_eq!(count(EventKind::Deliver), s.delivered);
    }

    #[test]
    fn fifo_links_without_reordering_deliver_in_send_order(mut g in scenario()) {
        g.link.fifo = true;
        g.link.reorder = 0.0;
        if let Some(u) = g.uplink.as_mut() {
            u.fifo = true;
            u.reorder = 0.0;
        }
        let (_, rec, _) = run(&g);
        // Per (sender, recipient): message ids never go down (a duplicate
        // may repeat one).
        let mut last = std::collections::BTreeMap::new();
        for r in rec.iter().filter(|r| r.event == EventKind::Deliver) {
            let prev = last.insert((r.sender, r.node), r.msg);
            prop_assert!(prev.is_none_or(|p| p <= r.msg), "{:?} after {:?}", r, prev);
        }
    }

    #[test]
    fn nothing_crosses_a_partition_while_it_holds(g in scenario()) {
        let (_, rec, sc) = run(&g);
        let agents = sc.agent_names();
        let id = |n: &str| agents.iter().position(|a| a == n).unwrap() as u32;
        for f in &g.faults {
            let Fault::Partition { a, b, one_way, at_ms, len_ms } = *f else { continue };
            let side_a = id(&name(&g, a));
            let b = b.filter(|&b| b != a).map(|b| id(&name(&g, b)));
            let in_b = |x: u32| x != side_a && b.is_none_or(|b| b == x);
            let window = at_ms * 1_000_000..(at_ms + len_ms) * 1_000_000;
            for r in &rec {
                if !window.contains(&r.time_ns) {
                    continue;
                }
                let crosses = (r.sender == side_a && in_b(r.node))
                    || (!one_way && in_b(r.sender) && r.node == side_a);
                prop_assert!(
                    !(r.event == EventKind::Deliver && crosses),
                    "delivered across the partition: {:?}", r
                );
                if b.is_none() {
                    // Everything else is on the other side, so nothing from
                    // `a` arrives at the end of its first link (the broker,
                    // or the router it sits behind) while the cut holds.
                    let first_hop = if g.next_hop(a) == "gw" {
                        EventKind::Forward
                    } else {
                        EventKind::Route
                    };
                    prop_assert!(
                        !(r.event == first_hop && r.sender == side_a),
                        "arrived over a cut link: {:?}", r
                    );
                }
            }
        }
    }

    #[test]
    fn a_run_is_a_function_of_its_seed(g in scenario()) {
        let (a, ra, _) = run(&g);
        let (b, rb, _) = run(&g);
        prop_assert_eq!(a.digest, b.digest);
        prop_assert!(ra == rb);
    }
}

/// Common random numbers: changing one link's model (here every network
/// feature on `p0`'s uplink) leaves the draws of every other link as they
/// were, so `p1`'s messages reach the broker at exactly the same times.
#[test]
fn changing_one_link_leaves_other_links_draws_alone() {
    let base = r#"
[simulation]
name = "crn"
duration = "2s"

[network.default]
latency = { dist = "lognormal", median = "3ms", sigma = 0.8 }
loss = 0.05
ordering = "unordered"

[[agent]]
type = "periodic"
name = "p0"
channel = "c"
period = "7ms"

[[agent]]
type = "periodic"
name = "p1"
channel = "c"
period = "5ms"

[[agent]]
type = "sink"
name = "s0"
channels = ["c"]
"#;
    let changed = format!(
        "{base}\n[[network.link]]\nfrom = \"p0\"\nto = \"broker\"\n\
         loss = {{ model = \"gilbert_elliott\", p = 0.1, r = 0.3 }}\n\
         latency = {{ dist = \"pareto\", scale = \"1ms\", shape = 1.5 }}\n\
         duplicate = 0.2\ncorrupt = 0.1\nreorder = 0.1\ncorrelation = 0.5\nrate_bps = 100000\n"
    );
    let p1_routes = |text: &str| {
        let s = Scenario::parse(text, "crn.toml", Path::new(".")).unwrap();
        let mut sim = s.builder(5, 0).trace_in_memory().build().unwrap();
        sim.run_until(SimTime::ZERO + s.spec().simulation.duration)
            .unwrap();
        let p1 = sim.agent_id("p1").unwrap().0;
        let all: Vec<Record> = sim.records();
        let routes: Vec<(u64, u64)> = all
            .iter()
            .filter(|r| r.sender == p1 && matches!(r.event, EventKind::Route | EventKind::Drop))
            .filter(|r| r.node == busbar::trace::NODE_BROKER)
            .map(|r| (r.sent_ns, r.time_ns))
            .collect();
        let p0_routes = all
            .iter()
            .filter(|r| r.sender != p1 && r.event == EventKind::Route)
            .count();
        (routes, p0_routes)
    };
    let (a, a0) = p1_routes(base);
    let (b, b0) = p1_routes(&changed);
    assert!(a.len() > 300);
    assert_eq!(a, b, "p1's uplink draws changed");
    assert_ne!(a0, b0, "p0's link did change");
}
