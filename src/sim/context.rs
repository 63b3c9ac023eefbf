//! The [`Agent`] trait and the [`Context`] through which agents act.
//!
//! **API boundary:** agents never touch the queue, the clock, the network or
//! another agent. Everything they do goes through their `Context`: publish,
//! subscribe, consume/peek their own buffers, set timers, read the time, draw
//! from their own RNG stream, and report lateness or age of information.
//! Each method is one call into the core; only the simulation loop advances
//! time.

use std::any::Any;

use crate::broker::{DeadLetter, Delivery, FilterError, GroupError};
use crate::message::{AgentId, ChannelId, Message, MessageKind, MsgId, Payload, Recipient};
use crate::metrics::Outcomes;
use crate::rng::RngStream;
use crate::time::{SimDuration, SimTime};
use crate::trace::Deadline;

use super::core::Core;
use super::timers::TimerId;

/// A simulated participant: environment, grid agent, device, or your own.
///
/// Every method has a default that does nothing, so an agent implements only
/// what it reacts to. Agents must be `Send` so whole simulations can run on
/// rayon's worker threads; they are `Any` so a finished simulation can hand
/// back a typed reference ([`crate::Simulation::agent`]).
pub trait Agent: Any + Send {
    /// Runs once at time 0, in the order agents were added. Subscribe and set
    /// the first timers here.
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A message copy arrived on a channel this agent subscribes to with
    /// [`Delivery::Push`].
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        let _ = (ctx, msg);
    }

    /// A timer set with [`Context::set_timer`] fired; `tag` is the value it
    /// was set with.
    fn on_timer(&mut self, ctx: &mut Context<'_>, tag: u64) {
        let _ = (ctx, tag);
    }

    /// Request `request` ([`Context::request`]) got no reply within its
    /// timeout.
    fn on_request_timeout(&mut self, ctx: &mut Context<'_>, request: MsgId) {
        let _ = (ctx, request);
    }

    /// The agent crashed and loses what it held in memory (a `crash` fault
    /// with `state = "lost"`): forget it, so that the `on_start` that runs
    /// at the restart begins afresh. busbar cannot reach into an agent's
    /// fields, so the default keeps everything (as `state = "kept"`).
    fn reset(&mut self) {}

    /// Adds what this agent measured to the run's outcomes, at the end of
    /// a run ([`Simulation::finish`](crate::Simulation::finish)), in agent
    /// order. Name them `{what}.{figure}` (`grid.deadline_misses`); see
    /// [`Outcomes`] for how reports of the same name combine.
    fn outcomes(&self, out: &mut Outcomes) {
        let _ = out;
    }
}

/// The unit type is an agent that does nothing: a placeholder node, or a
/// recipient whose arrivals only need to be traced.
impl Agent for () {}

/// An agent's handle on the simulation while one of its handlers runs.
pub struct Context<'a> {
    core: &'a mut Core,
    me: AgentId,
}

impl<'a> Context<'a> {
    pub(super) fn new(core: &'a mut Core, me: AgentId) -> Context<'a> {
        Context { core, me }
    }

    /// The current time on this agent's clock: virtual time, unless a
    /// `[[clock]]` gives the agent an offset or drift.
    #[inline]
    pub fn now(&self) -> SimTime {
        self.core.local_now(self.me)
    }

    /// The time the sender's clock showed when it published `msg` (its
    /// stamp): `msg.sent` is true virtual time, which a real agent could not
    /// know; compare this with [`Context::now`] for the age an agent would
    /// compute. Equal to `msg.sent` when the sender has no clock.
    #[inline]
    pub fn stamp(&self, msg: &Message) -> SimTime {
        self.core.local_time(msg.sender, msg.sent)
    }

    /// This agent's id.
    #[inline]
    pub fn me(&self) -> AgentId {
        self.me
    }

    /// This agent's name.
    pub fn name(&self) -> &str {
        self.core.agent_name(self.me)
    }

    /// The environment index of this simulation.
    pub fn env(&self) -> u32 {
        self.core.env()
    }

    /// The channel-name prefix of this environment (`env0`, ...): channel
    /// names start with it so that environments never share a channel.
    pub fn env_prefix(&self) -> &str {
        self.core.env_prefix()
    }

    /// The id of channel `name`, creating it on first use. Intern names once
    /// (in `on_start`) and keep the ids: ids are cheap, names are strings.
    pub fn channel(&mut self, name: &str) -> ChannelId {
        self.core.channel(name)
    }

    /// The name of a channel.
    pub fn channel_name(&self, id: ChannelId) -> &str {
        self.core.channel_name(id)
    }

    /// The id of the agent called `name`.
    pub fn agent_id(&self, name: &str) -> Option<AgentId> {
        self.core.agent_id(name)
    }

    /// The name of an agent.
    pub fn agent_name(&self, id: AgentId) -> &str {
        self.core.agent_name(id)
    }

    /// Subscribes this agent to `channel` (takes effect at once at the
    /// broker, unless sessions are on: below).
    ///
    /// If the agent was not a subscriber yet and the channel retains a
    /// message (`retain = true` in its `[[broker.channel]]` policy), the
    /// broker sends it that message now. Subscribing again, directly or
    /// through a [wildcard](Context::subscribe_filter), only changes
    /// `delivery`: the agent still gets one copy per message.
    ///
    /// With `[broker.sessions]` (docs/broker_sessions.md) this sends a
    /// SUBSCRIBE packet up the agent's uplink instead: the subscription
    /// takes effect when it reaches the broker (a lost packet is resent at
    /// the agent's next keepalive tick until the broker acknowledges it).
    pub fn subscribe(&mut self, channel: ChannelId, delivery: Delivery) {
        self.core.subscribe(self.me, channel, delivery);
    }

    /// Ends this agent's direct subscription; copies already on the way still
    /// arrive. While a wildcard subscription of the agent covers the channel,
    /// it stays a subscriber. True if it had a direct subscription.
    ///
    /// With `[broker.sessions]`, an UNSUBSCRIBE packet that takes effect
    /// when it reaches the broker; true if the broker held the
    /// subscription when the packet left.
    pub fn unsubscribe(&mut self, channel: ChannelId) -> bool {
        self.core.unsubscribe(self.me, channel)
    }

    /// Joins consumer group `group` on `channel` (a work queue;
    /// docs/broker_groups.md): each message of the channel goes to every
    /// plain subscriber and to **one** member of each group, picked by the
    /// group's strategy (`[[broker.group]]`: round-robin unless configured
    /// `least_loaded`). On an acknowledged channel a message whose ack does
    /// not come in time is redelivered to another member. Joining again
    /// only changes `delivery`.
    ///
    /// Refused ([`GroupError`]) for a bad name, or when this agent already
    /// receives the channel otherwise (as a subscriber, or in another
    /// group): it would get a message twice. Messages addressed to this
    /// agent reach it as if it subscribed; a retained message is not sent
    /// to a group member.
    ///
    /// ```
    /// # use busbar::{Agent, Context, Delivery, Message};
    /// struct Worker;
    /// impl Agent for Worker {
    ///     fn on_start(&mut self, ctx: &mut Context<'_>) {
    ///         let jobs = ctx.channel("env0/jobs");
    ///         ctx.subscribe_group(jobs, "workers", Delivery::Push).expect("a new member");
    ///     }
    ///     fn on_message(&mut self, _ctx: &mut Context<'_>, msg: &Message) {
    ///         // This member's share of the jobs.
    ///     }
    /// }
    /// ```
    pub fn subscribe_group(
        &mut self,
        channel: ChannelId,
        group: &str,
        delivery: Delivery,
    ) -> Result<(), GroupError> {
        self.core.subscribe_group(self.me, channel, group, delivery)
    }

    /// Leaves consumer group `group` on `channel`; true if this agent was a
    /// member. Copies on their way still arrive; what it held
    /// unacknowledged is redelivered to another member at its ack timeout.
    pub fn unsubscribe_group(&mut self, channel: ChannelId, group: &str) -> bool {
        self.core.unsubscribe_group(self.me, channel, group)
    }

    /// Subscribes this agent to every channel whose name matches the MQTT
    /// topic filter `filter`: `+` matches one level, `#` (last) the rest,
    /// and a filter starting with a wildcard does not match names starting
    /// with `$`. It covers the channels that exist now and every channel
    /// interned later. A filter without wildcards is exactly
    /// `subscribe(channel(filter), delivery)`. `{env}` is not replaced: use
    /// [`Context::env_prefix`].
    ///
    /// However many of its subscriptions cover a channel, the agent gets one
    /// copy of each message; it receives by the `delivery` of the most
    /// recent of them. For each channel it newly subscribes to that retains
    /// a message, the broker sends it that message. Details:
    /// docs/broker_topics.md.
    ///
    /// With `[broker.sessions]`, the filter is checked here and travels to
    /// the broker as a packet, taking effect when it arrives (as
    /// [`Context::subscribe`]).
    ///
    /// ```
    /// # use busbar::{Agent, Context, Delivery};
    /// struct Watcher;
    /// impl Agent for Watcher {
    ///     fn on_start(&mut self, ctx: &mut Context<'_>) {
    ///         let filter = format!("{}/agent/+/device_actions", ctx.env_prefix());
    ///         ctx.subscribe_filter(&filter, Delivery::Push).expect("a valid filter");
    ///     }
    /// }
    /// ```
    pub fn subscribe_filter(
        &mut self,
        filter: &str,
        delivery: Delivery,
    ) -> Result<(), FilterError> {
        self.core.subscribe_filter(self.me, filter, delivery)
    }

    /// Ends this agent's subscription to `filter` (as given to
    /// [`Context::subscribe_filter`]; without wildcards, its direct
    /// subscription to that channel). It stays a subscriber of each channel
    /// another of its subscriptions covers. True if it had the subscription.
    ///
    /// With `[broker.sessions]`, a packet that takes effect when it reaches
    /// the broker; always true (whether the broker held the filter is known
    /// there only).
    pub fn unsubscribe_filter(&mut self, filter: &str) -> bool {
        self.core.unsubscribe_filter(self.me, filter)
    }

    /// Publishes a message now. It travels this agent's uplink to the broker,
    /// which sends a copy to each subscriber (or only to `recipient`) over
    /// their downlinks. Returns the message's id.
    #[inline]
    pub fn publish(
        &mut self,
        channel: ChannelId,
        recipient: Recipient,
        kind: MessageKind,
        payload: Payload,
    ) -> MsgId {
        self.core
            .publish(self.me, channel, recipient, kind, payload, None)
    }

    /// Publishes several messages on `channel` in one transmission: they
    /// share the first link's fate (one latency, loss and duplication draw;
    /// the link's rate charges their bytes plus one header) and part at its
    /// far end, each then routed on its own, in order. Returns the first
    /// id (the others follow it); `None` for an empty batch. On a channel
    /// whose publishes are acknowledged, each is sent and tracked alone.
    pub fn publish_batch(
        &mut self,
        channel: ChannelId,
        recipient: Recipient,
        kind: MessageKind,
        payloads: Vec<Payload>,
    ) -> Option<MsgId> {
        self.core
            .publish_batch(self.me, channel, recipient, kind, payloads)
    }

    /// Publishes a request: a message like [`Context::publish`] whose
    /// answer is expected within `timeout` (virtual time). A reply to it
    /// ([`Context::reply`]) that reaches this agent in time completes it;
    /// otherwise [`Agent::on_request_timeout`] runs at the deadline (a
    /// `timeout` trace event) and a later reply counts as late. The reply
    /// arrives through `on_message` (or the pull buffer) like any message,
    /// with `msg.correlation` = this request's id; subscribe to the channel
    /// it will come on.
    pub fn request(
        &mut self,
        channel: ChannelId,
        recipient: Recipient,
        kind: MessageKind,
        payload: Payload,
        timeout: SimDuration,
    ) -> MsgId {
        let id = self
            .core
            .publish(self.me, channel, recipient, kind, payload, None);
        self.core.track_request(self.me, id, timeout);
        id
    }

    /// Answers `request`: publishes on `channel`, addressed to the
    /// request's sender, with `correlation` = the request's id (the trace's
    /// `publish` detail says `reply`).
    pub fn reply(
        &mut self,
        request: &Message,
        channel: ChannelId,
        kind: MessageKind,
        payload: Payload,
    ) -> MsgId {
        self.core.publish(
            self.me,
            channel,
            Recipient::Agent(request.sender),
            kind,
            payload,
            Some(request.id),
        )
    }

    /// Takes the oldest copy waiting in this agent's buffer for `channel`
    /// (only for [`Delivery::Pull`] subscriptions). Never takes another
    /// agent's copy.
    pub fn consume(&mut self, channel: ChannelId) -> Option<Message> {
        self.core.consume(self.me, channel)
    }

    /// The oldest copy waiting for `channel`, left in the buffer.
    pub fn peek(&self, channel: ChannelId) -> Option<&Message> {
        self.core.peek(self.me, channel)
    }

    /// How many copies wait in this agent's buffer for `channel`.
    pub fn pending(&self, channel: ChannelId) -> usize {
        self.core.pending(self.me, channel)
    }

    /// Discards every copy waiting in this agent's buffer for `channel`;
    /// returns how many (counted in `Metrics::cleared`).
    pub fn clear(&mut self, channel: ChannelId) -> u64 {
        self.core.clear_buffers(Some((self.me, channel)))
    }

    /// Fires [`Agent::on_timer`] with `tag` after `after` (measured on
    /// this agent's clock).
    #[inline]
    pub fn set_timer(&mut self, after: SimDuration, tag: u64) -> TimerId {
        let at = self.now() + after;
        self.set_timer_at(at, tag)
    }

    /// Fires [`Agent::on_timer`] with `tag` when this agent's clock shows
    /// `at` (or now, if `at` has passed).
    #[inline]
    pub fn set_timer_at(&mut self, at: SimTime, tag: u64) -> TimerId {
        let at = self.core.true_time(self.me, at);
        self.core.set_timer(self.me, at, tag)
    }

    /// Cancels a pending timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.core.cancel_timer(id)
    }

    /// This agent's own random stream (`agent/{name}`).
    pub fn rng(&mut self) -> &mut RngStream {
        self.core.rng(self.me)
    }

    /// The dead-letter queue of `channel`: messages given up on (out of
    /// retries, or expired with `dead_letter_expired`), oldest first.
    pub fn dead_letters(&self, channel: ChannelId) -> impl ExactSizeIterator<Item = &DeadLetter> {
        self.core.dead_letters(channel)
    }

    /// Takes every letter of `channel`'s dead-letter queue, emptying it.
    pub fn take_dead_letters(&mut self, channel: ChannelId) -> Vec<DeadLetter> {
        self.core.take_dead_letters(channel)
    }

    /// Publishes a dead letter again, as a new message from this agent (a
    /// new id, sent now): on its channel, with its kind and payload (shared,
    /// not copied), to the subscriber it failed to reach, or as originally
    /// addressed when the publish itself failed.
    pub fn republish(&mut self, letter: &DeadLetter) -> MsgId {
        let m = &letter.message;
        let to = letter.recipient.map_or(m.recipient, Recipient::Agent);
        self.core.publish(
            self.me,
            m.channel,
            to,
            m.kind,
            m.payload.clone(),
            m.correlation,
        )
    }

    /// Reports that `msg` arrived too late for this agent's deadline: counted
    /// in the `late` metric and recorded as a `late` trace event.
    pub fn mark_late(&mut self, msg: &Message) {
        self.core.mark_late(self.me, msg);
    }

    /// Reports that `msg` missed the deadline called `deadline`: it had to
    /// arrive within `limit` of being sent. Like [`Context::mark_late`],
    /// and the `late` trace record names the deadline (the trace footer
    /// keeps each name with its limit; the export prints
    /// `deadline NAME LIMIT, late by X`, where X = (time − sent) − limit).
    /// Name deadlines `{what}.{deadline}` (`sink.deadline`); a name is
    /// interned with its limit, so two limits under one name are two
    /// deadlines.
    pub fn mark_late_for(&mut self, msg: &Message, deadline: &str, limit: SimDuration) {
        let d = Deadline {
            name: deadline.to_string(),
            limit_ns: limit.as_nanos(),
            period_ns: 0,
            step: 0,
        };
        self.core.mark_late_for(self.me, msg, d);
    }

    /// Like [`Context::mark_late_for`] for a deadline that recurs every
    /// `period` (virtual time, from 0): `msg` belonged to period `step` and
    /// had to arrive by `step · period + limit` — the grid's step deadline
    /// (`grid.step_deadline`: period the step, limit the deadline offset,
    /// `step` the one in the state update's payload). The export's
    /// lateness is then time − (step · period + limit). Each step is its own
    /// entry of the footer's table (at most 65 535 entries in all; later
    /// ones are recorded unnamed).
    pub fn mark_late_for_step(
        &mut self,
        msg: &Message,
        deadline: &str,
        step: u64,
        period: SimDuration,
        limit: SimDuration,
    ) {
        let d = Deadline {
            name: deadline.to_string(),
            limit_ns: limit.as_nanos(),
            period_ns: period.as_nanos(),
            step,
        };
        self.core.mark_late_for(self.me, msg, d);
    }

    /// Reports the age of a piece of information at the moment this agent
    /// used it (age-of-information metric).
    pub fn record_age(&mut self, age: SimDuration) {
        self.core.record_age(age);
    }
}
