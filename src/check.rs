//! Checkers of ordering assumptions over a run's event stream: in process
//! over records ([`check_records`]) or over a trace file ([`check_trace`],
//! `busbar verify`). Each [`Checker`] sees every record in order and
//! returns the [`Violation`]s it found, each with the events (their `seq`,
//! the record's position in the trace, and the record with its time) that
//! break the property, not just `false`.
//!
//! Built in ([`parse_property`] reads their names):
//!
//! | name | property | a violation |
//! |---|---|---|
//! | `fifo` | per (sender, recipient, channel), copies reach the recipient in publish order | a delivery of a message published before one already delivered (a repeat of the same message is not a FIFO violation: see `exactly_once`) |
//! | `causal` | causal delivery: if publishing `m'` happened after `m` was published (Lamport's happens-before, through the publishes and deliveries of the run, tracked with vector clocks), no agent handles `m'` before `m` | a delivery of `m` after a delivery of a message that causally follows it |
//! | `no_stale` | per (recipient, sender, channel), an agent never receives an older message (by send time) after a newer one | a delivery whose send time is before the newest already received |
//! | `exactly_once` | every (message, recipient) reaches the recipient's handler at most once | the second delivery |
//! | `max_age=DURATION` | every delivery's age (time − send time) is at most `DURATION` | a delivery older than that |
//! | `deadline` | (grid scenarios) every device's state update of step `k` reaches the environment by step `k`'s deadline, for every step whose deadline is in the trace | a missing (device, step), with its late delivery if there was one |
//!
//! A user's own property is a [`Checker`], or a predicate over single
//! events ([`Predicate`]). Deliveries are `deliver` records; acks and
//! session control packets are not messages to a handler and are skipped.
//!
//! Memory: `fifo`, `no_stale`, `max_age` keep a value per key (pair of
//! agents and channel); `exactly_once` and `deadline` one entry per
//! delivery they track; `causal` a vector clock (one counter per agent) per
//! message, and refuses traces of more than [`MAX_CAUSAL_AGENTS`] agents.
//! At most [`MAX_KEPT`] violations are kept per property; the rest are
//! counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Seek};

use crate::time::SimDuration;
use crate::trace::{EventKind, Footer, Header, NONE, Record, TraceError, TraceReader};

/// Most violations a report keeps (the rest are counted).
pub const MAX_KEPT: usize = 100;

/// Most agents the `causal` checker tracks (its memory is agents ×
/// messages).
pub const MAX_CAUSAL_AGENTS: usize = 256;

/// One event of the stream: its position in the trace and its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the trace, from 0 (the `seq` of `busbar export`).
    pub seq: u64,
    /// The record (its time is `record.time_ns`).
    pub record: Record,
}

/// A property broken: what, and the events that break it (in trace
/// order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// What is wrong, in words.
    pub what: String,
    /// The events involved.
    pub events: Vec<Event>,
}

/// What one checker found over a whole stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The property's name (`fifo`, `max_age=50ms`, ...).
    pub property: String,
    /// How many events it examined (deliveries, for most).
    pub checked: u64,
    /// The first [`MAX_KEPT`] violations.
    pub violations: Vec<Violation>,
    /// How many violations in all.
    pub total: u64,
}

impl Report {
    /// Whether the property held.
    pub fn holds(&self) -> bool {
        self.total == 0
    }
}

/// A property over the event stream.
pub trait Checker {
    /// Its name, as reports print it.
    fn name(&self) -> String;
    /// Sees the next event.
    fn observe(&mut self, e: &Event, out: &mut Found);
    /// The stream ended: what it still has to say.
    fn finish(&mut self, _out: &mut Found) {}
}

/// Where a checker puts what it found.
#[derive(Debug, Default)]
pub struct Found {
    checked: u64,
    kept: Vec<Violation>,
    total: u64,
}

impl Found {
    /// Counts one event examined.
    pub fn checked(&mut self) {
        self.checked += 1;
    }

    /// Records a violation (kept if fewer than [`MAX_KEPT`] are).
    pub fn violation(&mut self, what: String, events: Vec<Event>) {
        self.total += 1;
        if self.kept.len() < MAX_KEPT {
            self.kept.push(Violation { what, events });
        }
    }
}

/// A delivery to a handler: a `deliver` record of a message (not of an
/// ack or a session control packet).
fn is_delivery(r: &Record) -> bool {
    r.event == EventKind::Deliver && r.detail & 0xff00 == 0
}

/// The deliveries of each (sender, recipient, channel) stream, whose
/// `value` (message id, send time) must never go back: the newest event
/// per stream, and a violation, described by `what(this, newer)`, for a
/// delivery whose value is below it. An equal value (a repeat) is skipped.
#[derive(Default)]
struct Monotone {
    newest: BTreeMap<(u32, u32, u32), Event>,
}

impl Monotone {
    fn observe(
        &mut self,
        e: &Event,
        out: &mut Found,
        value: fn(&Record) -> u64,
        what: fn(&Record, &Record) -> String,
    ) {
        let r = &e.record;
        if !is_delivery(r) {
            return;
        }
        out.checked();
        let key = (r.sender, r.node, r.channel);
        match self.newest.get(&key) {
            Some(prev) if value(&prev.record) > value(r) => {
                out.violation(what(r, &prev.record), vec![*prev, *e]);
            }
            Some(prev) if value(&prev.record) == value(r) => {}
            _ => {
                self.newest.insert(key, *e);
            }
        }
    }
}

/// Per (sender, recipient, channel): deliveries in publish (id) order.
#[derive(Default)]
pub struct Fifo(Monotone);

impl Checker for Fifo {
    fn name(&self) -> String {
        "fifo".into()
    }
    fn observe(&mut self, e: &Event, out: &mut Found) {
        self.0.observe(
            e,
            out,
            |r| r.msg,
            |r, newer| {
                format!(
                    "message {} arrived after message {}, published later by the same sender \
                     on the same channel to the same recipient",
                    r.msg, newer.msg
                )
            },
        );
    }
}

/// Per (recipient, sender, channel): send times never go back.
#[derive(Default)]
pub struct NoStale(Monotone);

impl Checker for NoStale {
    fn name(&self) -> String {
        "no_stale".into()
    }
    fn observe(&mut self, e: &Event, out: &mut Found) {
        self.0.observe(
            e,
            out,
            |r| r.sent_ns,
            |r, newer| {
                format!(
                    "message {} (sent at {}) arrived after message {} (sent at {}) from the same \
                     sender on the same channel: an older state after a newer one",
                    r.msg,
                    SimDuration(r.sent_ns).decimal(),
                    newer.msg,
                    SimDuration(newer.sent_ns).decimal()
                )
            },
        );
    }
}

/// Every (message, recipient) handled at most once.
#[derive(Default)]
pub struct ExactlyOnce {
    first: BTreeMap<(u64, u32), Event>,
}

impl Checker for ExactlyOnce {
    fn name(&self) -> String {
        "exactly_once".into()
    }
    fn observe(&mut self, e: &Event, out: &mut Found) {
        let r = &e.record;
        if !is_delivery(r) {
            return;
        }
        out.checked();
        match self.first.get(&(r.msg, r.node)) {
            Some(first) => out.violation(
                format!(
                    "message {} reached the same recipient's handler again",
                    r.msg
                ),
                vec![*first, *e],
            ),
            None => {
                self.first.insert((r.msg, r.node), *e);
            }
        }
    }
}

/// Every delivery at most `limit` old.
pub struct MaxAge {
    /// The bound.
    pub limit: SimDuration,
}

impl Checker for MaxAge {
    fn name(&self) -> String {
        format!("max_age={}", self.limit)
    }
    fn observe(&mut self, e: &Event, out: &mut Found) {
        let r = &e.record;
        if !is_delivery(r) {
            return;
        }
        out.checked();
        let age = r.time_ns.saturating_sub(r.sent_ns);
        if age > self.limit.as_nanos() {
            out.violation(
                format!(
                    "message {} arrived {} after it was sent (limit {})",
                    r.msg,
                    SimDuration(age).decimal(),
                    self.limit
                ),
                vec![*e],
            );
        }
    }
}

/// Causal delivery, with vector clocks over the agents' publishes.
pub struct Causal {
    n: usize,
    /// Each agent's vector clock.
    clock: Vec<Vec<u32>>,
    /// Each message's clock at its publish, and its publish event.
    msgs: BTreeMap<u64, (Vec<u32>, Event)>,
    /// Per recipient and agent `s`: the highest `s` component among the
    /// clocks of the messages the recipient handled, and that delivery.
    known: Vec<Vec<Option<(u32, Event)>>>,
}

impl Causal {
    /// A checker for a run of `agents` agents (at most
    /// [`MAX_CAUSAL_AGENTS`]).
    pub fn new(agents: usize) -> Result<Causal, String> {
        if agents > MAX_CAUSAL_AGENTS {
            return Err(format!(
                "the causal checker tracks at most {MAX_CAUSAL_AGENTS} agents; this run has {agents}"
            ));
        }
        Ok(Causal {
            n: agents,
            clock: vec![vec![0; agents]; agents],
            msgs: BTreeMap::new(),
            known: vec![vec![None; agents]; agents],
        })
    }
}

impl Checker for Causal {
    fn name(&self) -> String {
        "causal".into()
    }
    fn observe(&mut self, e: &Event, out: &mut Found) {
        let r = &e.record;
        let agent = |a: u32| (a != NONE && (a as usize) < self.n).then_some(a as usize);
        if r.event == EventKind::Publish {
            let Some(s) = agent(r.sender) else { return };
            self.clock[s][s] += 1;
            self.msgs.insert(r.msg, (self.clock[s].clone(), *e));
            return;
        }
        if !is_delivery(r) {
            return;
        }
        let (Some(c), Some(s)) = (agent(r.node), agent(r.sender)) else {
            return;
        };
        let Some((vc, _)) = self.msgs.get(&r.msg) else {
            return;
        };
        out.checked();
        let own = vc[s];
        if let Some((seen, later)) = self.known[c][s]
            && seen >= own
            && later.record.msg != r.msg
        {
            out.violation(
                format!(
                    "message {} was handled after message {}, which causally follows it (when \
                     message {} was published, its sender had seen message {}'s publish or a \
                     later one of the same sender)",
                    r.msg, later.record.msg, later.record.msg, r.msg
                ),
                vec![later, *e],
            );
        }
        let (known, clock) = (&mut self.known[c], &mut self.clock[c]);
        for (k, &v) in vc.iter().enumerate() {
            if known[k].is_none_or(|(seen, _)| v > seen) {
                known[k] = Some((v, *e));
            }
            clock[k] = clock[k].max(v);
        }
    }
}

/// The grid's deadlines: every device's state update of each step reaches
/// the environment by that step's deadline.
pub struct StepDeadline {
    step_ns: u64,
    deadline_ns: u64,
    env: u32,
    kind: u8,
    devices: BTreeSet<u32>,
    on_time: BTreeSet<(u32, u64)>,
    late: BTreeMap<(u32, u64), Event>,
    /// The publish of each (device, step)'s state update.
    published: BTreeMap<(u32, u64), Event>,
    agents: Vec<String>,
    end_ns: u64,
}

impl StepDeadline {
    /// A checker for the grid of a trace (its header's scenario and its
    /// footer's names), or why the trace has none.
    pub fn for_trace(header: &Header, footer: &Footer) -> Result<StepDeadline, String> {
        StepDeadline::for_run(header, &footer.agents)
    }

    /// A checker for the grid of the run with `header` (its scenario) and
    /// agents `agents` (names in id order), or why the run has none.
    pub fn for_run(header: &Header, agents: &[String]) -> Result<StepDeadline, String> {
        let (step, deadline) = crate::trace::life::grid_timing(header)
            .ok_or("the deadline property needs a grid scenario ([[microgrid]])")?;
        let env = agents
            .iter()
            .position(|a| a == crate::grid::ENV_AGENT)
            .ok_or("the trace has no environment agent")? as u32;
        let kind = crate::grid::protocol::STATE_UPDATE.code();
        Ok(StepDeadline {
            step_ns: step.as_nanos(),
            deadline_ns: deadline.as_nanos(),
            env,
            kind,
            devices: BTreeSet::new(),
            on_time: BTreeSet::new(),
            late: BTreeMap::new(),
            published: BTreeMap::new(),
            agents: agents.to_vec(),
            end_ns: 0,
        })
    }
}

impl Checker for StepDeadline {
    fn name(&self) -> String {
        "deadline".into()
    }
    fn observe(&mut self, e: &Event, out: &mut Found) {
        let r = &e.record;
        self.end_ns = self.end_ns.max(r.time_ns);
        if r.kind != self.kind || r.channel == NONE {
            return;
        }
        let step = r.sent_ns / self.step_ns.max(1);
        if r.event == EventKind::Publish {
            self.devices.insert(r.sender);
            self.published.entry((r.sender, step)).or_insert(*e);
            return;
        }
        if !is_delivery(r) || r.node != self.env {
            return;
        }
        out.checked();
        let k = r.sent_ns / self.step_ns.max(1);
        let due = k
            .saturating_mul(self.step_ns)
            .saturating_add(self.deadline_ns);
        if r.time_ns <= due {
            self.on_time.insert((r.sender, k));
        } else {
            self.late.entry((r.sender, k)).or_insert(*e);
        }
    }
    fn finish(&mut self, out: &mut Found) {
        if self.end_ns < self.deadline_ns {
            return;
        }
        let last = (self.end_ns - self.deadline_ns) / self.step_ns.max(1);
        for k in 0..=last {
            for &d in &self.devices {
                if self.on_time.contains(&(d, k)) {
                    continue;
                }
                let late = self.late.get(&(d, k));
                let published = self.published.get(&(d, k));
                let name = self.agents.get(d as usize).map_or("?", String::as_str);
                let what = match (late, published) {
                    (Some(_), _) => format!("{name}'s state update of step {k} arrived late"),
                    (None, Some(_)) => format!("{name}'s state update of step {k} never arrived"),
                    (None, None) => format!(
                        "{name} published no state update of step {k} (its setpoint was lost \
                         or late)"
                    ),
                };
                let events = published.into_iter().chain(late).copied().collect();
                out.violation(what, events);
            }
        }
    }
}

/// A user's property over single events: `f` returns what is wrong with
/// an event, or `None`.
pub struct Predicate<F> {
    name: String,
    f: F,
}

impl<F: FnMut(&Event) -> Option<String>> Predicate<F> {
    /// A property named `name`.
    pub fn new(name: &str, f: F) -> Predicate<F> {
        Predicate {
            name: name.to_string(),
            f,
        }
    }
}

impl<F: FnMut(&Event) -> Option<String>> Checker for Predicate<F> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn observe(&mut self, e: &Event, out: &mut Found) {
        out.checked();
        if let Some(what) = (self.f)(e) {
            out.violation(what, vec![*e]);
        }
    }
}

/// A built-in property by name, for the run whose trace has `header` and
/// `footer` (the names in the module docs).
pub fn parse_property(
    name: &str,
    header: &Header,
    footer: &Footer,
) -> Result<Box<dyn Checker>, String> {
    property(name, header, &footer.agents)
}

/// A built-in property by name, for a run (in process or recorded) with
/// `header` and agents `agents` (names in id order, as
/// [`Simulation::agent_names`](crate::Simulation::agent_names) gives them).
pub fn property(
    name: &str,
    header: &Header,
    agents: &[String],
) -> Result<Box<dyn Checker>, String> {
    Ok(match name {
        "fifo" => Box::new(Fifo::default()),
        "no_stale" => Box::new(NoStale::default()),
        "exactly_once" => Box::new(ExactlyOnce::default()),
        "causal" => Box::new(Causal::new(agents.len())?),
        "deadline" => Box::new(StepDeadline::for_run(header, agents)?),
        _ => match name.strip_prefix("max_age=") {
            Some(d) => Box::new(MaxAge {
                limit: d
                    .parse::<SimDuration>()
                    .map_err(|e| format!("max_age={d}: {e}"))?,
            }),
            None => {
                return Err(format!(
                    "unknown property {name:?}; expected fifo, causal, no_stale, exactly_once, \
                     max_age=DURATION or deadline"
                ));
            }
        },
    })
}

/// Checkers fed a stream piece by piece: the records of a run as they
/// come (e.g. [`Simulation::take_records`](crate::Simulation::take_records)
/// between two calls of a run's hook), then [`Checking::finish`].
pub struct Checking {
    checkers: Vec<Box<dyn Checker>>,
    found: Vec<Found>,
    seq: u64,
}

impl Checking {
    /// Starts checking `checkers` from the first record of a stream.
    pub fn new(checkers: Vec<Box<dyn Checker>>) -> Checking {
        let found = checkers.iter().map(|_| Found::default()).collect();
        Checking {
            checkers,
            found,
            seq: 0,
        }
    }

    /// Sees the next records of the stream.
    pub fn observe(&mut self, records: &[Record]) {
        for r in records {
            let e = Event {
                seq: self.seq,
                record: *r,
            };
            for (c, f) in self.checkers.iter_mut().zip(&mut self.found) {
                c.observe(&e, f);
            }
            self.seq += 1;
        }
    }

    /// The stream ended: each checker's report, in the order given.
    pub fn finish(self) -> Vec<Report> {
        let Checking {
            mut checkers,
            found,
            ..
        } = self;
        checkers
            .iter_mut()
            .zip(found)
            .map(|(c, mut f)| {
                c.finish(&mut f);
                Report {
                    property: c.name(),
                    checked: f.checked,
                    violations: f.kept,
                    total: f.total,
                }
            })
            .collect()
    }
}

/// Runs `checkers` over `records` (the whole stream, in order).
pub fn check_records(records: &[Record], checkers: Vec<Box<dyn Checker>>) -> Vec<Report> {
    let mut c = Checking::new(checkers);
    c.observe(records);
    c.finish()
}

/// Runs `checkers` over a trace file, streaming it once (the records are
/// checked against the footer's digest as they are read).
pub fn check_trace<R: Read + Seek>(
    reader: &mut TraceReader<R>,
    checkers: Vec<Box<dyn Checker>>,
) -> Result<Vec<Report>, TraceError> {
    let mut c = Checking::new(checkers);
    reader.for_each_batch(|batch| {
        c.observe(batch);
        Ok(())
    })?;
    Ok(c.finish())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.holds() {
            write!(
                f,
                "{}: holds ({} events checked)",
                self.property, self.checked
            )
        } else {
            write!(
                f,
                "{}: violated {} times ({} events checked)",
                self.property, self.total, self.checked
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: EventKind, msg: u64, sender: u32, node: u32, t: u64, sent: u64) -> Record {
        Record {
            time_ns: t,
            event,
            kind: 5,
            detail: 0,
            channel: 0,
            msg,
            sender,
            node,
            sent_ns: sent,
        }
    }

    fn run(records: &[Record], c: Box<dyn Checker>) -> Report {
        check_records(records, vec![c]).remove(0)
    }

    use EventKind::{Deliver, Publish};

    #[test]
    fn fifo_flags_a_reordering_and_names_both_events() {
        let ok = [
            rec(Publish, 0, 0, 1, 0, 0),
            rec(Publish, 1, 0, 1, 1, 1),
            rec(Deliver, 0, 0, 1, 5, 0),
            rec(Deliver, 0, 0, 1, 6, 0), // a repeat: not fifo's business
            rec(Deliver, 1, 0, 1, 7, 1),
        ];
        assert!(run(&ok, Box::new(Fifo::default())).holds());
        let bad = [
            rec(Publish, 0, 0, 1, 0, 0),
            rec(Publish, 1, 0, 1, 1, 1),
            rec(Deliver, 1, 0, 1, 5, 1),
            rec(Deliver, 0, 0, 1, 7, 0),
        ];
        let r = run(&bad, Box::new(Fifo::default()));
        assert_eq!(r.total, 1);
        let seqs: Vec<u64> = r.violations[0].events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3]);
        // Another recipient or channel is another stream.
        let mut other = bad;
        other[3].node = 2;
        assert!(run(&other, Box::new(Fifo::default())).holds());
    }

    #[test]
    fn exactly_once_flags_the_second_delivery() {
        let recs = [
            rec(Publish, 0, 0, 1, 0, 0),
            rec(Deliver, 0, 0, 1, 5, 0),
            rec(Deliver, 0, 0, 2, 5, 0),
            rec(Deliver, 0, 0, 1, 9, 0),
        ];
        let r = run(&recs, Box::new(ExactlyOnce::default()));
        assert_eq!((r.total, r.checked), (1, 3));
        assert_eq!(r.violations[0].events[1].seq, 3);
    }

    #[test]
    fn no_stale_and_max_age() {
        let recs = [rec(Deliver, 3, 0, 1, 50, 40), rec(Deliver, 2, 0, 1, 60, 30)];
        assert_eq!(run(&recs, Box::new(NoStale::default())).total, 1);
        let age = |ns| {
            Box::new(MaxAge {
                limit: SimDuration(ns),
            })
        };
        assert_eq!(run(&recs, age(29)).total, 1);
        assert!(run(&recs, age(30)).holds());
    }

    #[test]
    fn causal_sees_through_a_relay() {
        // Agent 0 publishes m0 to 1 and 2; agent 1 handles m0 then
        // publishes m1 to 2. Agent 2 handling m1 before m0 breaks causal
        // order, though no single sender's FIFO order is broken.
        let recs = [
            rec(Publish, 0, 0, 1, 0, 0),
            rec(Deliver, 0, 0, 1, 1, 0),
            rec(Publish, 1, 1, 2, 2, 2),
            rec(Deliver, 1, 1, 2, 3, 2),
            rec(Deliver, 0, 0, 2, 9, 0),
        ];
        let r = run(&recs, Box::new(Causal::new(3).unwrap()));
        assert_eq!(r.total, 1, "{r:?}");
        let seqs: Vec<u64> = r.violations[0].events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4]);
        assert!(run(&recs, Box::new(Fifo::default())).holds());
        // If agent 1 publishes m1 before it handles m0, m1 does not follow
        // m0, and agent 2 may handle them in either order.
        let unrelated = [
            rec(Publish, 0, 0, 1, 0, 0),
            rec(Publish, 1, 1, 2, 1, 1),
            rec(Deliver, 0, 0, 1, 2, 0),
            rec(Deliver, 1, 1, 2, 3, 1),
            rec(Deliver, 0, 0, 2, 9, 0),
        ];
        assert!(run(&unrelated, Box::new(Causal::new(3).unwrap())).holds());
        assert!(Causal::new(MAX_CAUSAL_AGENTS + 1).is_err());
    }

    #[test]
    fn a_users_predicate_reports_its_events() {
        let recs = [rec(Deliver, 0, 0, 1, 5, 0), rec(Deliver, 1, 0, 7, 5, 0)];
        let p = Predicate::new("never_to_7", |e: &Event| {
            (e.record.node == 7).then(|| "delivered to 7".to_string())
        });
        let r = run(&recs, Box::new(p));
        assert_eq!((r.property.as_str(), r.total), ("never_to_7", 1));
        assert_eq!(r.violations[0].events[0].seq, 1);
    }

    #[test]
    fn violations_beyond_the_cap_are_counted() {
        let recs: Vec<Record> = (0..(MAX_KEPT as u64 + 5))
            .map(|i| rec(Deliver, i, 0, 1, 100, 0))
            .collect();
        let r = run(
            &recs,
            Box::new(MaxAge {
                limit: SimDuration(1),
            }),
        );
        assert_eq!(r.total, MAX_KEPT as u64 + 5);
        assert_eq!(r.violations.len(), MAX_KEPT);
    }
}
