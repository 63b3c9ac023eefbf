//! The simulation: the event loop that ties time, network, broker, agents
//! and trace together.
//!
//! A [`Simulation`] owns all of its state (it is `Send`), so thousands of them
//! can run side by side on rayon's threads. Build one with [`SimBuilder`],
//! then [`Simulation::run_until`] and [`Simulation::finish`].
//!
//! The module is split by concept: `builder` (the one place a simulation is
//! validated and assembled), `core` (everything but the agents; the engine's
//! work for each event), `context` (the [`Agent`] trait and the [`Context`]
//! an agent acts through), `msg_store` (published messages), `timers`,
//! `sink` (trace records, digest, file) and `limits`. This file holds the
//! loop.
//!
//! **Invariant:** a run is a pure function of the builder's inputs and seed.
//! Events pop in (time, insertion sequence) order; every random draw comes
//! from a named [`RngStream`](crate::rng::RngStream); nothing reads the wall
//! clock.
//!
//! Hot path: an event is a few integers; a published message is stored once
//! in a slab and referenced by index from every in-flight copy (no allocation
//! per message once the slab has grown, no payload copy on fan-out); trace
//! records are fixed-size and appended to a reused chunk.

mod builder;
mod clock;
mod context;
mod core;
mod limits;
mod msg_store;
mod sink;
mod timeouts;
mod timers;

pub(crate) use crate::network::resolve_faults;
pub use builder::{SimBuilder, TieBreak};
pub(crate) use builder::{resolve_clocks, too_many_agents};
pub use clock::{ClockOffset, ClockSpec, MAX_DRIFT_PPM};
pub use context::{Agent, Context};
pub use limits::{Limits, MAX_AGENTS, MAX_EVENTS, SimError};
pub use timers::TimerId;

use crate::broker::Delivery;
use crate::message::{AgentId, KindNames, Message};
use crate::metrics::{Metrics, Summary};
use crate::time::SimTime;
use crate::trace::{Digest, Record};

use self::core::{Call, Core};

/// One environment: agents plus everything they act on.
pub struct Simulation {
    core: Core,
    agents: Vec<Box<dyn Agent>>,
    name: String,
    finished: bool,
    stopped: Option<String>,
}

impl Simulation {
    fn new(core: Core, agents: Vec<Box<dyn Agent>>, name: String) -> Simulation {
        Simulation {
            core,
            agents,
            name,
            finished: false,
            stopped: None,
        }
    }

    /// The run's name (shown in the summary).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current virtual time.
    pub fn now(&self) -> SimTime {
        self.core.now()
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.core.seed()
    }

    /// The environment index.
    pub fn env(&self) -> u32 {
        self.core.env()
    }

    /// Metrics so far.
    pub fn metrics(&self) -> &Metrics {
        self.core.metrics()
    }

    /// Metrics per channel and per agent so far, if the builder asked for
    /// them ([`SimBuilder::entity_metrics`]); complete after
    /// [`Simulation::finish`], and still readable then.
    pub fn entity_metrics(&self) -> Option<&crate::metrics::EntityMetrics> {
        self.core.trace().entity()
    }

    /// Message copies currently on the network.
    pub fn in_flight(&self) -> u64 {
        self.core.in_flight()
    }

    /// Whether the broker's registry counts `agent` online now
    /// (`[broker.sessions]`: connected and not timed out); `None` without
    /// sessions, where every agent is always online.
    pub fn online(&self, agent: AgentId) -> Option<bool> {
        self.core.session_online(agent.0)
    }

    /// The dead-letter queue of the channel called `name` (empty if no
    /// such channel), oldest first.
    pub fn dead_letters(&self, name: &str) -> Vec<&crate::broker::DeadLetter> {
        match self.core.lookup_channel(name) {
            Some(ch) => self.core.dead_letters(ch).collect(),
            None => Vec::new(),
        }
    }

    /// Agent names, by id.
    pub fn agent_names(&self) -> Vec<String> {
        self.core.agent_names().map(str::to_string).collect()
    }

    /// Channel names, by id.
    pub fn channel_names(&self) -> &[String] {
        self.core.channel_names()
    }

    /// Router names, by router index (the `[[network.router]]` list).
    pub fn router_names(&self) -> &[String] {
        self.core.router_names()
    }

    /// The names of the message kinds (the trace footer's table).
    pub fn kind_names(&self) -> &KindNames {
        self.core.kinds()
    }

    /// The id of the agent called `name`.
    pub fn agent_id(&self, name: &str) -> Option<AgentId> {
        self.core.agent_id(name)
    }

    /// The subscribers of channel `name` now, in subscription order (empty
    /// for a channel nobody has used).
    pub fn subscribers(&self, channel: &str) -> Vec<(AgentId, Delivery)> {
        self.core
            .lookup_channel(channel)
            .map(|c| self.core.subscribers(c).collect())
            .unwrap_or_default()
    }

    /// The pull API from outside the loop, in the shape of an in-memory
    /// broker's `consume(channel, recipient)`: takes the oldest copy
    /// waiting in `recipient`'s pull buffer for `channel` (destructive).
    /// `None` if either name is unknown or nothing waits.
    pub fn consume(&mut self, channel: &str, recipient: AgentId) -> Option<Message> {
        let ch = self.core.lookup_channel(channel)?;
        if recipient.index() >= self.agents.len() {
            return None;
        }
        self.core.consume(recipient, ch)
    }

    /// The oldest copy waiting for `recipient` on `channel`, left in place.
    pub fn peek(&self, channel: &str, recipient: AgentId) -> Option<&Message> {
        let ch = self.core.lookup_channel(channel)?;
        if recipient.index() >= self.agents.len() {
            return None;
        }
        self.core.peek(recipient, ch)
    }

    /// How many copies wait for `recipient` on `channel`.
    pub fn pending(&self, channel: &str, recipient: AgentId) -> usize {
        match self.core.lookup_channel(channel) {
            Some(ch) if recipient.index() < self.agents.len() => self.core.pending(recipient, ch),
            _ => 0,
        }
    }

    /// Empties every pull buffer of this environment (every channel, every
    /// agent), as an in-memory broker's "clear the environment's channels"
    /// between episodes; returns how many copies were discarded (counted in
    /// `Metrics::cleared`; they had been delivered).
    pub fn clear_channels(&mut self) -> u64 {
        self.core.clear_buffers(None)
    }

    /// The message channel `name` retains now (its policy says `retain =
    /// true` and a broadcast was routed on it), until [`Simulation::finish`]
    /// releases it.
    pub fn retained(&self, channel: &str) -> Option<&Message> {
        self.core
            .lookup_channel(channel)
            .and_then(|c| self.core.retained_message(c))
    }

    /// A typed reference to agent `id`, if it is a `T`.
    pub fn agent<T: Agent>(&self, id: AgentId) -> Option<&T> {
        let a: &dyn std::any::Any = self.agents.get(id.index())?.as_ref();
        a.downcast_ref::<T>()
    }

    /// What the agents measured so far ([`Agent::outcomes`], in agent
    /// order); [`Simulation::finish`] puts the same into the summary. Before
    /// the run it names every figure the run will report.
    pub fn outcomes(&self) -> crate::metrics::Outcomes {
        let mut out = crate::metrics::Outcomes::default();
        for a in &self.agents {
            a.outcomes(&mut out);
        }
        out
    }

    /// A typed mutable reference to agent `id`, if it is a `T`: to hand an
    /// agent input from outside between events (the vector environment
    /// supplies a grid agent's setpoints this way). What an agent does with
    /// it must still go through its `Context`, in its handlers.
    pub fn agent_mut<T: Agent>(&mut self, id: AgentId) -> Option<&mut T> {
        let a: &mut dyn std::any::Any = self.agents.get_mut(id.index())?.as_mut();
        a.downcast_mut::<T>()
    }

    /// The digest of the run so far: of its events and of the payloads its
    /// agents published ([`Digest::of_run`]). [`Summary::digest`] is its
    /// final value.
    pub fn digest(&self) -> Digest {
        self.core.trace().digest()
    }

    /// The digest of the payloads published so far, in publish order
    /// ([`PayloadDigester`](crate::trace::PayloadDigester)).
    pub fn payload_digest(&self) -> Digest {
        self.core.trace().payload_digest()
    }

    /// The deadlines named so far by `late` records
    /// ([`Context::mark_late_for`](crate::Context::mark_late_for)), by index:
    /// a `late` record's `detail` is the index + 1 (the trace footer's
    /// table).
    pub fn deadlines(&self) -> Vec<crate::trace::Deadline> {
        self.core.deadline_names()
    }

    /// Records kept in memory (with [`SimBuilder::trace_in_memory`]), including
    /// those not yet flushed.
    pub fn records(&self) -> Vec<Record> {
        self.core.trace().records()
    }

    /// The payloads kept in memory (with [`SimBuilder::trace_in_memory`] and
    /// [`SimBuilder::keep_payloads`]), one per message published, in publish
    /// order, each cut to the limit; empty if none are kept.
    pub fn payloads(&self) -> Vec<crate::trace::KeptPayload> {
        self.core.trace().kept_payloads()
    }

    /// Takes the records kept in memory so far (with
    /// [`SimBuilder::trace_in_memory`]), leaving the rest to come: a long run
    /// can be consumed piece by piece. Records still in the current chunk
    /// (up to 4096) arrive with a later call or after `finish`.
    pub fn take_records(&mut self) -> Vec<Record> {
        self.core.trace_mut().take_records()
    }

    /// How many records [`Simulation::take_records`] would return now.
    pub fn kept_records(&self) -> usize {
        self.core.trace().kept()
    }

    /// The time of the next pending event.
    pub fn next_event_time(&self) -> Option<SimTime> {
        self.core.next_event_time()
    }

    /// Processes one event. Returns false when nothing is pending.
    pub fn step(&mut self) -> Result<bool, SimError> {
        if self.finished {
            return Err(SimError::Finished);
        }
        if let Some(why) = &self.stopped {
            return Err(SimError::Stopped(why.clone()));
        }
        let Some((t, ev)) = self.core.pop() else {
            return Ok(false);
        };
        if let Some(call) = self.core.dispatch(t, ev) {
            match call {
                Call::Message(agent, msg) => {
                    let mut ctx = Context::new(&mut self.core, agent);
                    self.agents[agent.index()].on_message(&mut ctx, &msg);
                }
                Call::RequestTimeout(agent, request) => {
                    let mut ctx = Context::new(&mut self.core, agent);
                    self.agents[agent.index()].on_request_timeout(&mut ctx, request);
                }
                Call::Timer(agent, tag) => {
                    let mut ctx = Context::new(&mut self.core, agent);
                    self.agents[agent.index()].on_timer(&mut ctx, tag);
                }
                Call::Start(agent) => {
                    let mut ctx = Context::new(&mut self.core, agent);
                    self.agents[agent.index()].on_start(&mut ctx);
                }
                Call::Reset(fault) => {
                    for agent in self.core.crash_agents(fault) {
                        self.agents[agent.index()].reset();
                    }
                }
                Call::Restart(fault) => {
                    for agent in self.core.crash_agents(fault) {
                        let mut ctx = Context::new(&mut self.core, agent);
                        self.agents[agent.index()].on_start(&mut ctx);
                    }
                }
            }
        }
        match self.core.take_fault() {
            None => Ok(true),
            Some(err) => {
                self.stopped = Some(err.to_string());
                Err(err)
            }
        }
    }

    /// Processes at most `max_events` events at or before `until`. When none
    /// is left at or before `until`, sets the clock to `until` (if it is
    /// later) and returns true: the run has reached `until`.
    pub fn advance(&mut self, until: SimTime, max_events: u64) -> Result<bool, SimError> {
        for _ in 0..max_events {
            match self.core.next_event_time() {
                Some(t) if t <= until => {
                    self.step()?;
                }
                _ => {
                    if until > self.core.now() {
                        self.core.set_clock(until);
                    }
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Processes every event up to and including time `until`, then sets the
    /// clock to `until`.
    pub fn run_until(&mut self, until: SimTime) -> Result<(), SimError> {
        while !self.advance(until, u64::MAX)? {}
        Ok(())
    }

    /// Runs until nothing is pending (bounded by the limits).
    pub fn run(&mut self) -> Result<(), SimError> {
        while self.step()? {}
        Ok(())
    }

    /// Why the run stopped early, if a limit or the trace stopped it. The
    /// simulation refuses to go on after that, but [`Simulation::finish`]
    /// still writes a complete, readable trace of what happened up to there.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// Ends the run: flushes the trace, writes the footer, and returns the
    /// summary. Agents stay readable afterwards. After an error from `step`
    /// this still writes a valid trace of the events so far, marked as
    /// stopped in its footer.
    pub fn finish(&mut self) -> Result<Summary, SimError> {
        if self.finished {
            return Err(SimError::Finished);
        }
        self.finished = true;
        self.core.release_retained();
        let names = sink::Names {
            agents: self.agent_names(),
            channels: self.core.channel_names().to_vec(),
            kinds: self.core.kinds().table().to_vec(),
            routers: self.core.router_names().to_vec(),
            deadlines: self.core.deadline_names(),
        };
        let stopped = self.stopped.clone();
        let digest = self.core.trace_mut().finish(names, stopped.clone())?;
        let mut summary = Summary::new(
            &self.name,
            self.core.seed(),
            self.core.env(),
            self.core.now().0,
            self.core.metrics(),
            self.core.in_flight(),
            self.core.trace().count(),
            digest,
            stopped,
        );
        summary.outcomes = self.outcomes();
        self.core.open_obligations(&mut summary.qos);
        self.core.report_groups(&mut summary);
        summary.sessions = self.core.session_summary().map(|s| s.0);
        self.core.release_sessions();
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::BrokerConfig;
    use crate::message::{ChannelId, Message, MessageKind, MsgId, Payload, Recipient};
    use crate::time::SimDuration;

    /// Publishes `n` messages on "c" one per `every`, starting at time 0.
    struct Talker {
        ch: Option<ChannelId>,
        left: u32,
        every: SimDuration,
    }
    impl Agent for Talker {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            self.ch = Some(ctx.channel("c"));
            ctx.set_timer(SimDuration::ZERO, 0);
        }
        fn on_timer(&mut self, ctx: &mut Context<'_>, _tag: u64) {
            if self.left == 0 {
                return;
            }
            self.left -= 1;
            let ch = self.ch.expect("set in on_start");
            ctx.publish(
                ch,
                Recipient::Broadcast,
                MessageKind::INFO,
                Payload::values(&[f64::from(self.left)]),
            );
            ctx.set_timer(self.every, 0);
        }
    }

    #[derive(Default)]
    struct Listener {
        got: Vec<(SimTime, MsgId)>,
        pull: bool,
        ch: Option<ChannelId>,
    }
    impl Agent for Listener {
        fn on_start(&mut self, ctx: &mut Context<'_>) {
            let ch = ctx.channel("c");
            self.ch = Some(ch);
            let d = if self.pull {
                Delivery::Pull
            } else {
                Delivery::Push
            };
            ctx.subscribe(ch, d);
        }
        fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
            self.got.push((ctx.now(), msg.id));
        }
    }

    fn talk(n: u32) -> SimBuilder {
        SimBuilder::new(1)
            .agent(
                "talker",
                Talker {
                    ch: None,
                    left: n,
                    every: SimDuration::from_millis(1),
                },
            )
            .agent("a", Listener::default())
            .agent("b", Listener::default())
    }

    #[test]
    fn every_subscriber_gets_every_message_in_order_on_fifo_links() {
        let mut sim = talk(50).build().unwrap();
        sim.run().unwrap();
        for name in ["a", "b"] {
            let l: &Listener = sim.agent(sim.agent_id(name).unwrap()).unwrap();
            let ids: Vec<u64> = l.got.iter().map(|g| g.1.0).collect();
            assert_eq!(ids, (0..50).collect::<Vec<_>>());
        }
        let s = sim.finish().unwrap();
        assert_eq!(
            (s.published, s.routed, s.delivered, s.dropped),
            (50, 50, 100, 0)
        );
        assert_eq!(s.in_flight, 0);
        // Default link: 1 ms up + 1 ms down; HDR buckets are exact to 0.1%.
        assert!(
            s.latency.p50_ns.abs_diff(2_000_000) <= 2_000,
            "{:?}",
            s.latency
        );
    }

    #[test]
    fn pull_subscribers_buffer_until_consumed_and_overflow_is_counted() {
        let mut sim = talk(5)
            .agent(
                "p",
                Listener {
                    pull: true,
                    ..Listener::default()
                },
            )
            .broker(BrokerConfig {
                buffer_capacity: 3,
                ..BrokerConfig::default()
            })
            .build()
            .unwrap();
        sim.run().unwrap();
        let p: &Listener = sim.agent(sim.agent_id("p").unwrap()).unwrap();
        assert!(p.got.is_empty(), "pull subscribers get no on_message");
        let subs = sim.subscribers("c");
        assert_eq!(
            subs,
            vec![
                (AgentId(1), Delivery::Push),
                (AgentId(2), Delivery::Push),
                (AgentId(3), Delivery::Pull)
            ]
        );
        assert!(sim.subscribers("nobody-uses-this").is_empty());
        let s = sim.finish().unwrap();
        assert_eq!(s.dropped_by_reason.get("overflow"), Some(&2));
        assert_eq!(s.delivered, 5 + 5 + 3);
    }

    #[test]
    fn limits_name_themselves_and_the_seed() {
        let mut sim = talk(1000)
            .limits(Limits {
                max_events: 100,
                ..Limits::default()
            })
            .build()
            .unwrap();
        let err = sim.run().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("max_events") && text.contains("seed 1"),
            "{text}"
        );
        let mut sim = talk(1000)
            .limits(Limits {
                max_sim_time: SimDuration::from_millis(10),
                ..Limits::default()
            })
            .build()
            .unwrap();
        assert!(sim.run().unwrap_err().to_string().contains("max_sim_time"));
        let mut sim = talk(1000)
            .limits(Limits {
                max_trace_records: 10,
                ..Limits::default()
            })
            .build()
            .unwrap();
        assert!(
            sim.run()
                .unwrap_err()
                .to_string()
                .contains("max_trace_records")
        );
    }

    #[test]
    fn a_stopped_run_stays_stopped_and_still_finishes() {
        let mut sim = talk(1000)
            .limits(Limits {
                max_events: 50,
                ..Limits::default()
            })
            .trace_in_memory()
            .build()
            .unwrap();
        assert!(matches!(sim.run(), Err(SimError::LimitExceeded { .. })));
        assert!(sim.stopped().unwrap().contains("max_events"));
        assert!(matches!(sim.step(), Err(SimError::Stopped(_))));
        let s = sim.finish().unwrap();
        assert_eq!(s.events, 50);
        assert!(s.stopped.unwrap().contains("max_events"));
        assert_eq!(sim.records().len() as u64, s.trace_records);
    }

    /// A writer that fails once `budget` bytes are written.
    struct Failing {
        budget: usize,
    }
    impl std::io::Write for Failing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.budget {
                return Err(std::io::Error::other("disk full"));
            }
            self.budget -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn header() -> crate::trace::Header {
        crate::trace::Header {
            crate_version: "test".into(),
            scenario_path: "t".into(),
            base_dir: ".".into(),
            scenario: String::new(),
            seed: 1,
            env: 0,
            payload_limit: None,
        }
    }

    #[test]
    fn a_trace_write_error_stops_the_run_and_finish_reports_it() {
        let mut sim = talk(200_000)
            .trace_to(Box::new(Failing { budget: 50_000 }), header())
            .build()
            .unwrap();
        let err = sim.run().unwrap_err();
        assert!(matches!(err, SimError::Trace(_)), "{err}");
        assert!(err.to_string().contains("disk full"), "{err}");
        assert!(sim.stopped().is_some());
        assert!(matches!(sim.step(), Err(SimError::Stopped(_))));
        assert!(
            sim.finish().is_err(),
            "the file is incomplete: finish says so"
        );
        // A writer that never fails gets the same digest as no file at all.
        let mut a = talk(2_000)
            .trace_to(Box::new(std::io::sink()), header())
            .build()
            .unwrap();
        a.run().unwrap();
        let mut b = talk(2_000).build().unwrap();
        b.run().unwrap();
        assert_eq!(a.finish().unwrap().digest, b.finish().unwrap().digest);
    }

    #[test]
    fn unsubscribed_recipient_is_a_counted_drop() {
        struct Direct;
        impl Agent for Direct {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let ch = ctx.channel("c");
                let b = ctx.agent_id("b").unwrap();
                ctx.publish(ch, Recipient::Agent(b), MessageKind::INFO, Payload::Empty);
            }
        }
        let mut sim = SimBuilder::new(0)
            .agent("d", Direct)
            .agent("b", ())
            .build()
            .unwrap();
        sim.run().unwrap();
        let s = sim.finish().unwrap();
        assert_eq!(s.dropped_by_reason.get("no_subscriber"), Some(&1));
    }

    #[test]
    fn fan_out_shares_the_payload_and_mailboxes_are_private() {
        use std::sync::Arc;
        struct Big;
        impl Agent for Big {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let ch = ctx.channel("c");
                ctx.publish(
                    ch,
                    Recipient::Broadcast,
                    MessageKind::INFO,
                    Payload::values(&[1.0; 64]),
                );
            }
        }
        /// Keeps every payload it is pushed, and consumes its pull buffer.
        #[derive(Default)]
        struct Keep {
            pushed: Vec<Payload>,
        }
        impl Agent for Keep {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let ch = ctx.channel("c");
                ctx.subscribe(ch, Delivery::Push);
            }
            fn on_message(&mut self, _ctx: &mut Context<'_>, msg: &Message) {
                self.pushed.push(msg.payload.clone());
            }
        }
        /// Pulls: consumes everything on its first timer after the arrivals.
        #[derive(Default)]
        struct Puller {
            taken: Vec<Payload>,
            greedy: bool,
        }
        impl Agent for Puller {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let ch = ctx.channel("c");
                ctx.subscribe(ch, Delivery::Pull);
                ctx.set_timer(SimDuration::from_secs(1), 0);
            }
            fn on_timer(&mut self, ctx: &mut Context<'_>, _tag: u64) {
                let ch = ctx.channel("c");
                assert_eq!(ctx.pending(ch), 1, "each puller has its own copy");
                if self.greedy {
                    let peeked = ctx.peek(ch).expect("waiting").id;
                    let m = ctx.consume(ch).expect("waiting");
                    assert_eq!(m.id, peeked, "peek shows what consume takes");
                    self.taken.push(m.payload);
                    assert_eq!(ctx.consume(ch), None);
                }
            }
        }
        let mut sim = SimBuilder::new(0)
            .agent("big", Big)
            .agent("k1", Keep::default())
            .agent("k2", Keep::default())
            .agent(
                "greedy",
                Puller {
                    greedy: true,
                    ..Puller::default()
                },
            )
            .agent("patient", Puller::default())
            .build()
            .unwrap();
        sim.run().unwrap();
        let k1: &Keep = sim.agent(AgentId(1)).unwrap();
        let k2: &Keep = sim.agent(AgentId(2)).unwrap();
        let g: &Puller = sim.agent(AgentId(3)).unwrap();
        let (Payload::Floats(a), Payload::Floats(b), Payload::Floats(c)) =
            (&k1.pushed[0], &k2.pushed[0], &g.taken[0])
        else {
            panic!("64 floats are a shared payload");
        };
        assert!(
            Arc::ptr_eq(a, b) && Arc::ptr_eq(a, c),
            "no copy per subscriber"
        );
    }

    #[test]
    fn cancelled_timers_do_not_fire() {
        #[derive(Default)]
        struct T {
            fired: Vec<u64>,
        }
        impl Agent for T {
            fn on_start(&mut self, ctx: &mut Context<'_>) {
                let a = ctx.set_timer(SimDuration(10), 1);
                ctx.set_timer(SimDuration(20), 2);
                assert!(ctx.cancel_timer(a));
                assert!(!ctx.cancel_timer(a));
            }
            fn on_timer(&mut self, _ctx: &mut Context<'_>, tag: u64) {
                self.fired.push(tag);
            }
        }
        let mut sim = SimBuilder::new(0).agent("t", T::default()).build().unwrap();
        sim.run().unwrap();
        let t: &T = sim.agent(AgentId(0)).unwrap();
        assert_eq!(t.fired, vec![2]);
    }

    #[test]
    fn builder_reports_every_bad_name_and_link_at_its_path() {
        use crate::network::LinkSpec;
        let err = SimBuilder::new(0)
            .agent("x", ())
            .agent("x", ())
            .agent("broker", ())
            .agent("a/b", ())
            .link(LinkSpec::new("x", "y"))
            .link(LinkSpec::new("x", "broker").loss(2.0))
            .limits(Limits {
                max_events: 0,
                ..Limits::default()
            })
            .build()
            .err()
            .expect("invalid");
        let paths: Vec<String> = err.issues.iter().map(|i| i.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "limits.max_events",
                "agent[2].name",
                "agent[3].name",
                "agent[1].name",
                "network.link[0].to",
                "network.link[1].loss",
            ],
            "{err}"
        );
    }

    #[test]
    fn simulation_is_send() {
        fn is_send<T: Send>() {}
        is_send::<Simulation>();
    }
}
