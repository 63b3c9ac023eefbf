//! The broker as a server of finite capacity (`docs/broker_server.md`):
//! `workers` parallel workers, each serving one message for a drawn service
//! time, a bounded FIFO queue in front of them, an overflow policy, and an
//! unbounded holding line for `block` (backpressure). Also the overflow
//! policy of pull buffers.
//!
//! The engine reaches this file through three hooks in `core.rs`: the
//! `AtBroker` arm calls [`Core::arrive_at_broker`] (which routes at once
//! when no server model is configured: one predictable branch), the
//! `ServiceDone` arm calls [`Core::service_done`], and the start of a
//! `broker_down` fault calls [`Core::broker_outage`].
//!
//! A message held by the server keeps the store reference its `AtBroker`
//! event carried; `route` (at the end of service) or a drop releases it.

use std::collections::VecDeque;

use crate::broker::{BrokerConfig, BufferOverflow, QueueOverflow};
use crate::message::Message;
use crate::metrics::ServerMetrics;
use crate::network::LatencySampler;
use crate::rng::RngStream;
use crate::trace::{EventKind, NODE_BROKER, Reason};

use super::{Core, Event, MsgHead};

/// A worker that serves nothing.
const IDLE: u32 = u32::MAX;

/// A message held by the server: its store slot, its channel's priority
/// and when it arrived at the broker, ns.
#[derive(Clone, Copy, Debug)]
struct Held {
    slot: u32,
    priority: u8,
    arrived_ns: u64,
}

/// The waiting messages: one FIFO per priority level, served highest level
/// first (strict priority), oldest first within a level. A bit per level
/// says which are non-empty, so taking the next message is one
/// leading-zeros count, whatever the number of levels.
#[derive(Default)]
struct Waiting {
    levels: Vec<VecDeque<Held>>,
    /// Bit `p` is set when level `p` holds a message.
    nonempty: u16,
    len: usize,
}

impl Waiting {
    fn len(&self) -> usize {
        self.len
    }

    fn push_back(&mut self, h: Held) {
        let p = usize::from(h.priority);
        if self.levels.len() <= p {
            self.levels.resize_with(p + 1, VecDeque::new);
        }
        self.levels[p].push_back(h);
        self.nonempty |= 1 << p;
        self.len += 1;
    }

    fn take(&mut self, p: usize) -> Option<Held> {
        let h = self.levels[p].pop_front()?;
        if self.levels[p].is_empty() {
            self.nonempty &= !(1 << p);
        }
        self.len -= 1;
        Some(h)
    }

    /// The next message to serve: the oldest of the highest priority.
    fn pop_front(&mut self) -> Option<Held> {
        if self.nonempty == 0 {
            return None;
        }
        self.take(15 - self.nonempty.leading_zeros() as usize)
    }

    /// The lowest priority that has a waiting message.
    fn lowest(&self) -> Option<u8> {
        (self.nonempty != 0).then(|| self.nonempty.trailing_zeros() as u8)
    }

    /// The oldest message of the lowest priority (what `drop_oldest`
    /// evicts).
    fn pop_lowest(&mut self) -> Option<Held> {
        let p = self.lowest()?;
        self.take(usize::from(p))
    }

    /// Every waiting message, in service order; leaves the queue empty.
    fn drain(&mut self) -> impl Iterator<Item = Held> + '_ {
        self.nonempty = 0;
        self.len = 0;
        self.levels.iter_mut().rev().flat_map(|l| l.drain(..))
    }
}

/// The server's state (its figures are in `Metrics::server`).
pub(super) struct Server {
    sampler: LatencySampler,
    /// `broker/service`: the service times, in the order services start.
    rng: RngStream,
    capacity: usize,
    overflow: QueueOverflow,
    /// Messages waiting for a worker, by priority.
    queue: Waiting,
    /// Messages refused by a full queue under `block`, oldest first.
    holding: VecDeque<Held>,
    /// The slot each worker serves, or [`IDLE`].
    workers: Vec<u32>,
    /// Idle workers, a stack (worker 0 on top at first).
    free: Vec<u32>,
    /// Bumped by every outage: a `ServiceDone` of an earlier epoch is stale.
    epoch: u32,
}

impl Server {
    /// The server the broker settings ask for, if any.
    pub(super) fn new(config: &BrokerConfig, seed: u64, env: u32) -> Option<Box<Server>> {
        let model = config.server_model()?;
        let n = model.workers;
        Some(Box::new(Server {
            sampler: model.service.compile(),
            rng: RngStream::new(seed, u64::from(env), "broker/service"),
            capacity: model.queue_capacity,
            overflow: model.overflow,
            queue: Waiting::default(),
            holding: VecDeque::new(),
            workers: vec![IDLE; n as usize],
            free: (0..n).rev().collect(),
            epoch: 0,
        }))
    }

    /// Its figures at time 0.
    pub(super) fn metrics(&self) -> Box<ServerMetrics> {
        Box::new(ServerMetrics::new(self.workers.len() as u32))
    }
}

impl Core {
    fn srv(&mut self) -> &mut Server {
        self.server.as_deref_mut().expect("a server model")
    }

    fn srv_metrics(&mut self) -> &mut ServerMetrics {
        self.metrics.server.as_deref_mut().expect("a server model")
    }

    /// The message in `slot` reached the broker (past the fault checks):
    /// routed now without a server model, else served.
    #[inline(always)]
    pub(super) fn arrive_at_broker(&mut self, slot: u32) {
        if self.server.is_none() {
            self.route(slot);
        } else {
            self.serve(slot);
        }
    }

    /// An arrival at the server: into service if a worker is idle, else
    /// into the queue, else the overflow policy.
    #[inline(never)]
    fn serve(&mut self, slot: u32) {
        let now = self.now.0;
        let m = self.srv_metrics();
        m.advance(now);
        m.arrived += 1;
        let channel = self.msgs.get(slot).channel;
        let held = Held {
            slot,
            priority: self.broker.policy(channel).priority,
            arrived_ns: now,
        };
        if let Some(w) = self.srv().free.pop() {
            return self.start_service(w, held);
        }
        let srv = self.srv();
        if srv.queue.len() < srv.capacity {
            return self.enqueue(held);
        }
        match srv.overflow {
            QueueOverflow::RejectNew => self.overflow_at_broker(slot),
            QueueOverflow::DropOldest => match srv.queue.lowest() {
                Some(p) if p <= held.priority => {
                    let old = srv.queue.pop_lowest().expect("a waiting message");
                    self.srv_metrics().queue_len -= 1;
                    self.overflow_at_broker(old.slot);
                    self.enqueue(held);
                }
                // A queue of capacity 0 has nothing older to evict, and
                // an arrival never evicts a message of a higher priority.
                _ => self.overflow_at_broker(slot),
            },
            QueueOverflow::Block => {
                srv.holding.push_back(held);
                let m = self.srv_metrics();
                m.held += 1;
                m.blocked += 1;
                m.held_max = m.held_max.max(m.held);
                let held = m.held;
                if self.in_flight + held > self.limits.max_in_flight {
                    self.limit("max_in_flight", self.limits.max_in_flight);
                }
            }
        }
    }

    /// Puts a message at the back of the queue (which has room) and traces
    /// `enqueue` with the queue's new length.
    fn enqueue(&mut self, held: Held) {
        self.srv().queue.push_back(held);
        let m = self.srv_metrics();
        m.queue_len += 1;
        m.queue_max = m.queue_max.max(m.queue_len);
        let len = u16::try_from(m.queue_len).unwrap_or(u16::MAX);
        let h = MsgHead::of(self.msgs.get(held.slot));
        self.record(EventKind::Enqueue, h, NODE_BROKER, len);
    }

    /// Worker `w` (idle) starts serving `held` now.
    fn start_service(&mut self, w: u32, held: Held) {
        let now = self.now;
        let m = self.srv_metrics();
        m.busy += 1;
        m.record_wait(held.priority, now.0 - held.arrived_ns);
        let srv = self.srv();
        srv.workers[w as usize] = held.slot;
        let service = srv.sampler.sample(&mut srv.rng);
        let epoch = srv.epoch;
        self.push(now + service, Event::ServiceDone { worker: w, epoch });
    }

    /// Worker `worker` finished: its message is routed (`processing` then
    /// delays its copies), and the next waiting message enters service.
    pub(super) fn service_done(&mut self, worker: u32, epoch: u32) {
        let now = self.now.0;
        let srv = self.srv();
        if epoch != srv.epoch {
            return; // an outage lost the message
        }
        let slot = std::mem::replace(&mut srv.workers[worker as usize], IDLE);
        srv.free.push(worker);
        let m = self.srv_metrics();
        m.advance(now);
        m.busy -= 1;
        m.served += 1;
        self.route(slot);
        self.refill();
    }

    /// Idle workers take the oldest waiting messages (from the queue, then,
    /// with a queue of capacity 0, from the holding line), and blocked
    /// messages move into the queue's free places.
    fn refill(&mut self) {
        loop {
            let srv = self.srv();
            if srv.free.is_empty() {
                break;
            }
            let (next, queued) = match srv.queue.pop_front() {
                Some(h) => (h, true),
                None => match srv.holding.pop_front() {
                    Some(h) => (h, false),
                    None => break,
                },
            };
            let w = srv.free.pop().expect("checked");
            let m = self.srv_metrics();
            if queued {
                m.queue_len -= 1;
            } else {
                m.held -= 1;
            }
            self.start_service(w, next);
        }
        loop {
            let srv = self.srv();
            if srv.queue.len() >= srv.capacity {
                break;
            }
            let Some(next) = srv.holding.pop_front() else {
                break;
            };
            self.srv_metrics().held -= 1;
            self.enqueue(next);
        }
    }

    /// Drops a message held at the broker (an uplink drop).
    fn drop_at_broker(&mut self, slot: u32, reason: Reason) {
        let h = MsgHead::of(self.msgs.get(slot));
        self.metrics.dropped_uplink += 1;
        self.drop_copy(h, NODE_BROKER, reason);
        self.msgs.release(slot);
    }

    fn overflow_at_broker(&mut self, slot: u32) {
        self.srv_metrics().overflow += 1;
        self.drop_at_broker(slot, Reason::Overflow);
    }

    /// A `broker_down` outage began: the broker loses every message it
    /// holds — in service (by worker), waiting, then blocked, each in
    /// order — with reason `broker_down`; services under way never finish.
    #[cold]
    pub(super) fn broker_outage(&mut self) {
        let now = self.now.0;
        self.srv_metrics().advance(now);
        let srv = self.srv();
        srv.epoch = srv.epoch.wrapping_add(1);
        let n = srv.workers.len() as u32;
        let mut lost: Vec<u32> = srv.workers.iter().copied().filter(|&s| s != IDLE).collect();
        lost.extend(srv.queue.drain().map(|h| h.slot));
        lost.extend(srv.holding.drain(..).map(|h| h.slot));
        srv.workers.fill(IDLE);
        srv.free = (0..n).rev().collect();
        let m = self.srv_metrics();
        m.busy = 0;
        m.queue_len = 0;
        m.held = 0;
        m.outage += lost.len() as u64;
        for slot in lost {
            self.drop_at_broker(slot, Reason::BrokerDown);
        }
    }

    /// A copy reached agent `agent`'s full pull buffer: dropped
    /// (`reject_new`), or it evicts the oldest copy (`drop_oldest`: that
    /// copy is dropped with reason `overflow` and counted `evicted`, the new
    /// one is delivered).
    #[cold]
    pub(super) fn pull_overflow(&mut self, h: MsgHead, agent: u32, msg: Message) {
        let config = self.broker.config();
        match config.buffer_overflow {
            BufferOverflow::RejectNew => self.drop_copy(h, agent, Reason::Overflow),
            BufferOverflow::DropOldest => {
                let cap = config.buffer_capacity;
                let mailbox = &mut self.agents[agent as usize].mailbox;
                let old = mailbox
                    .consume(msg.channel)
                    .expect("a full buffer holds a copy");
                if mailbox.push(msg, cap).is_err() {
                    unreachable!("a place was just freed");
                }
                self.metrics.evicted += 1;
                self.drop_copy(MsgHead::of(&old), agent, Reason::Overflow);
                self.deliver(h, agent);
            }
        }
    }
}
