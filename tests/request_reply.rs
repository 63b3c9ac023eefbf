//! Request–reply: correlation ids, virtual-time timeouts, late and stray
//! replies, and what the trace and summary show.

use std::collections::BTreeSet;

use busbar::network::LinkModel;
use busbar::trace::{DETAIL_REPLY, EXPIRED_REQUEST};
use busbar::{
    Agent, ChannelId, Context, Delivery, EventKind, Message, MessageKind, MsgId, Payload,
    Recipient, SimBuilder, SimDuration, SimTime,
};

/// Sends a request to "server" every 20 ms on "req" (timeout 30 ms) and
/// keeps what happened to each.
#[derive(Default)]
struct Client {
    req: Option<ChannelId>,
    left: u32,
    sent: Vec<MsgId>,
    answered: Vec<MsgId>,
    timed_out: Vec<MsgId>,
    after_timeout: Vec<MsgId>,
}

impl Agent for Client {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.req = Some(ctx.channel("req"));
        let rep = ctx.channel("rep");
        ctx.subscribe(rep, Delivery::Push);
        ctx.set_timer(SimDuration::ZERO, 0);
    }
    fn on_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        let server = ctx.agent_id("server").unwrap();
        let id = ctx.request(
            self.req.unwrap(),
            Recipient::Agent(server),
            MessageKind::INFO,
            Payload::values(&[self.left as f64]),
            SimDuration::from_millis(30),
        );
        self.sent.push(id);
        self.left -= 1;
        if self.left > 0 {
            ctx.set_timer(SimDuration::from_millis(20), 0);
        }
    }
    fn on_message(&mut self, _: &mut Context<'_>, msg: &Message) {
        let r = msg.correlation.expect("replies carry their request");
        if self.timed_out.contains(&r) {
            self.after_timeout.push(r);
        } else {
            self.answered.push(r);
        }
    }
    fn on_request_timeout(&mut self, _: &mut Context<'_>, request: MsgId) {
        assert!(!self.answered.contains(&request));
        self.timed_out.push(request);
    }
}

/// Answers every request on "rep", doubling its value.
struct Server;

impl Agent for Server {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let req = ctx.channel("req");
        ctx.subscribe(req, Delivery::Push);
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        let rep = ctx.channel("rep");
        let v = msg.payload.as_f64s()[0];
        ctx.reply(msg, rep, MessageKind::INFO, Payload::values(&[2.0 * v]));
    }
}

fn run(seed: u64) -> (Client, busbar::Summary, Vec<busbar::Record>) {
    // Round trip: four hops of U[1, 12] ms, so some replies beat the 30 ms
    // timeout and some do not; 10 % loss per hop loses some outright.
    let link: LinkModel = toml::from_str(
        "latency = { dist = \"uniform\", min = \"1ms\", max = \"12ms\" }\nloss = 0.1\nordering = \"unordered\"\n",
    )
    .unwrap();
    let mut sim = SimBuilder::new(seed)
        .default_link(link)
        .agent(
            "client",
            Client {
                left: 200,
                ..Client::default()
            },
        )
        .agent("server", Server)
        .trace_in_memory()
        .build()
        .unwrap();
    sim.run_until(SimTime::ZERO + SimDuration::from_secs(10))
        .unwrap();
    let id = sim.agent_id("client").unwrap();
    let c = sim.agent_mut::<Client>(id).unwrap();
    let client = std::mem::take(c);
    let rec = sim.records();
    (client, sim.finish().unwrap(), rec)
}

#[test]
fn every_request_is_answered_or_times_out_once() {
    let (c, s, rec) = run(3);
    let q = &s.qos.counts;
    assert_eq!(c.sent.len(), 200);
    assert_eq!(q.requests, 200);
    assert_eq!(
        q.requests_answered + q.requests_timed_out + s.qos.requests_waiting,
        200
    );
    assert_eq!(s.qos.requests_waiting, 0);
    assert_eq!(c.answered.len() as u64, q.requests_answered);
    assert_eq!(c.timed_out.len() as u64, q.requests_timed_out);
    assert_eq!(c.after_timeout.len() as u64, q.replies_late);
    assert!(
        q.requests_answered > 50 && q.requests_timed_out > 20,
        "{q:#?}"
    );
    assert!(q.replies_late > 0, "some replies arrive after the timeout");
    let answered: BTreeSet<_> = c.answered.iter().collect();
    let timed_out: BTreeSet<_> = c.timed_out.iter().collect();
    assert!(answered.is_disjoint(&timed_out));
    // In the trace: one `expire` per timed-out request, at its deadline;
    // replies' publishes say so.
    let timeouts: Vec<_> = rec
        .iter()
        .filter(|r| r.event == EventKind::Expire && r.detail == EXPIRED_REQUEST)
        .collect();
    assert_eq!(timeouts.len() as u64, q.requests_timed_out);
    for t in &timeouts {
        let publish = rec
            .iter()
            .find(|r| r.event == EventKind::Publish && r.msg == t.msg)
            .unwrap();
        assert_eq!(t.time_ns - publish.time_ns, 30_000_000);
    }
    let replies = rec
        .iter()
        .filter(|r| r.event == EventKind::Publish && r.detail == DETAIL_REPLY)
        .count();
    assert!(replies > 0 && replies < 200);
    let rtt = &s.qos.request_rtt;
    assert_eq!(rtt.count, q.requests_answered);
    assert!(
        rtt.max_ns <= 30_100_000 && rtt.p50_ns >= 4_000_000,
        "{rtt:?}"
    );
}

#[test]
fn correlation_is_part_of_the_run_digest() {
    let a = run(4).1;
    assert_eq!(a.digest, run(4).1.digest);
    assert_ne!(a.digest, run(5).1.digest);
}
