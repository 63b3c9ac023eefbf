//! Request–reply: requests waiting for their reply, each with a deadline
//! in virtual time.
//!
//! A request is an ordinary message; what makes it one is the entry here
//! (requester, deadline) and a `RequestTimeout` event at the deadline. A
//! message whose `correlation` names a waiting request of the agent it is
//! delivered to completes that request; the timeout event then finds
//! nothing and does nothing. A request that times out is an `expire`
//! trace event with detail `request_timeout`.

use std::collections::BTreeMap;

use crate::message::{AgentId, MsgId};
use crate::time::{SimDuration, SimTime};
use crate::trace::{EXPIRED_REQUEST, EventKind, NONE};

use super::{Call, Core, Event, MsgHead};

/// The requests waiting for a reply, by id (looked up, never iterated in
/// a way that affects a run).
#[derive(Default)]
pub(in crate::sim) struct Requests {
    /// Request id → (requester, time sent).
    waiting: BTreeMap<u64, (u32, SimTime)>,
    /// Request id → requester, for requests that timed out (so a late
    /// reply is told from a stray one); bounded by the requests made.
    timed_out: BTreeMap<u64, u32>,
}

impl Core {
    /// `agent` sent request `id`; it times out after `timeout`.
    pub(in crate::sim) fn track_request(
        &mut self,
        agent: AgentId,
        id: MsgId,
        timeout: SimDuration,
    ) {
        self.metrics.qos.requests += 1;
        self.requests.waiting.insert(id.0, (agent.0, self.now));
        let at = self.now + timeout;
        self.push(
            at,
            Event::RequestTimeout {
                agent: agent.0,
                lo: id.0 as u32,
                hi: (id.0 >> 32) as u32,
            },
        );
    }

    /// A reply to request `request` reached `agent`.
    #[cold]
    pub(super) fn reply_arrived(&mut self, agent: u32, request: MsgId) {
        match self.requests.waiting.get(&request.0) {
            Some(&(requester, at)) if requester == agent => {
                self.requests.waiting.remove(&request.0);
                self.metrics.qos.requests_answered += 1;
                self.metrics
                    .request_rtt
                    .saturating_record(self.now.0.saturating_sub(at.0));
            }
            _ => {
                if self.requests.timed_out.get(&request.0) == Some(&agent) {
                    self.metrics.qos.replies_late += 1;
                } else {
                    self.metrics.qos.replies_unmatched += 1;
                }
            }
        }
    }

    /// Request `id`'s deadline: unless it was answered, it times out.
    pub(super) fn request_timeout(&mut self, agent: u32, id: u64) -> Option<Call> {
        self.requests.waiting.remove(&id)?;
        self.requests.timed_out.insert(id, agent);
        self.metrics.qos.requests_timed_out += 1;
        let h = MsgHead {
            id,
            channel: NONE,
            sender: agent,
            kind: 0,
            sent_ns: self.now.0,
        };
        self.record(EventKind::Expire, h, agent, EXPIRED_REQUEST);
        Some(Call::RequestTimeout(AgentId(agent), MsgId(id)))
    }

    /// Requests still waiting for their reply.
    pub(in crate::sim) fn requests_waiting(&self) -> u64 {
        self.requests.waiting.len() as u64
    }
}
