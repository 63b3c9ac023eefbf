//! One directed link: its model ([`LinkModel`], every field a scenario can
//! set on a link), partial changes to it ([`LinkPatch`]), and the runtime
//! [`Link`] that carries messages through the netem-style chain.
//!
//! The chain, in the order a message meets it (each step draws from its
//! own stream, and only if the step is enabled):
//!
//! 1. **loss**: the loss model decides whether the message is lost; a lost
//!    message takes no place in the queue (as in netem).
//! 2. **queue**: with a `rate_bps`, the message waits behind the messages
//!    not yet serialised; if the queue already holds `queue_messages`
//!    messages or `queue_bytes` bytes, it is dropped (`overflow`, tail drop).
//! 3. **serialisation**: `(payload bytes + header_bytes) * 8 / rate_bps`
//!    seconds, starting when the link has finished the message before.
//! 4. **reorder**: with probability `reorder` the message skips the delay
//!    and the FIFO rule (it is sent at once, as netem's `reorder`), so it
//!    overtakes messages still in flight.
//! 5. **delay**: a draw of `latency`; with `correlation` ρ > 0 the previous
//!    message's draw is reused with probability ρ (the marginal distribution
//!    is unchanged; successive delays have correlation ρ, lag k ρᵏ).
//! 6. **ordering**: on a `fifo` link a message arrives no earlier than the
//!    message sent before it.
//! 7. **corruption**: with probability `corrupt` the message arrives but
//!    the receiver discards it (a drop with reason `corrupt`).
//! 8. **duplication**: with probability `duplicate` a message that was not
//!    lost is sent twice; the copy goes through steps 3–7 on its own (own
//!    serialisation, delay, reordering and corruption draws).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::rng::RngStream;
use crate::time::{SimDuration, SimTime};
use crate::trace::Reason;
use crate::validate::Validator;

use super::latency::{Delays, Latency, LatencySampler};
use super::loss::{Loss, LossState};

/// Whether a link may reorder the messages it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// The link never reorders (except the messages that `reorder` sends
    /// at once): a message arrives no earlier than the one sent on the same
    /// link before it (delays are drawn independently, then each arrival is
    /// pushed back to the previous one's if it would overtake it, like a TCP
    /// connection or an MQTT session). So the observed delay of a message
    /// can exceed its draw: it includes the wait for the one before. Nothing
    /// is promised across different links.
    #[default]
    Fifo,
    /// Delays are independent, so a later message can overtake an earlier one
    /// (like UDP, or independent broker partitions).
    Unordered,
}

/// The default `header_bytes`: a TCP/IPv4 header without options.
pub const DEFAULT_HEADER_BYTES: u64 = 40;

/// Declares [`LinkModel`] and its partial twin [`LinkPatch`] from one list
/// of fields, so a new link setting is one line here plus its use.
macro_rules! link_fields {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty = $default:expr ; )*) => {
        /// Everything that describes one directed link's behaviour. Every
        /// field has a default, so a table sets only what differs.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct LinkModel {
            $( $(#[$doc])* pub $field: $ty, )*
        }

        impl Default for LinkModel {
            fn default() -> Self {
                LinkModel { $( $field: $default, )* }
            }
        }

        /// Changes to a [`LinkModel`]: the fields it sets replace the
        /// model's (a link class `[network.class.NAME]`, or the settings of
        /// a `[[network.link]]`).
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LinkPatch {
            $(
                #[doc = concat!("Replaces [`LinkModel::", stringify!($field), "`].")]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        /// One `[[network.link]]`: the links from the nodes `from` selects to
        /// the nodes `to` selects (a name, or a pattern where `*` matches any
        /// run of characters: `"mg3.*"`, `"*"`) take the settings of
        /// `class` (if given), then the fields set here. With `both = true`
        /// the reverse links do too. Specs apply in order, each on top of
        /// the last.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LinkSpec {
            /// Start of the links: a node name or pattern.
            pub from: String,
            /// End of the links: a node name or pattern.
            pub to: String,
            /// Apply to the reverse direction as well. Default false.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub both: bool,
            /// A link class (`[network.class.NAME]`) applied before the
            /// fields set here.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub class: Option<String>,
            $(
                #[doc = concat!("Replaces [`LinkModel::", stringify!($field), "`].")]
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl LinkSpec {
            /// The fields this spec sets, as a patch.
            pub fn patch(&self) -> LinkPatch {
                LinkPatch { $( $field: self.$field.clone(), )* }
            }

            /// The link `from -> to`, changing nothing yet.
            pub fn new(from: &str, to: &str) -> LinkSpec {
                LinkSpec {
                    from: from.to_string(),
                    to: to.to_string(),
                    both: false,
                    class: None,
                    $( $field: None, )*
                }
            }

            /// Sets every field that `patch` sets.
            pub fn set(mut self, patch: &LinkPatch) -> LinkSpec {
                $( if let Some(x) = &patch.$field { self.$field = Some(x.clone()); } )*
                self
            }
        }

        impl LinkModel {
            /// This model with the fields that `patch` sets replaced.
            pub fn with(&self, patch: &LinkPatch) -> LinkModel {
                LinkModel {
                    $( $field: patch.$field.clone().unwrap_or_else(|| self.$field.clone()), )*
                }
            }
        }

        impl LinkPatch {
            /// `self` then `later`: the fields `later` sets win.
            pub fn then(&self, later: &LinkPatch) -> LinkPatch {
                LinkPatch {
                    $( $field: later.$field.clone().or_else(|| self.$field.clone()), )*
                }
            }

            /// Whether the patch changes nothing.
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_none() )*
            }

            /// Whether the patch sets the field called `field`.
            pub(crate) fn sets(&self, field: &str) -> bool {
                match field {
                    $( stringify!($field) => self.$field.is_some(), )*
                    _ => false,
                }
            }
        }
    };
}

link_fields! {
    /// Delay distribution (see [`Latency`]).
    latency: Latency = Latency::default();
    /// Correlation ρ in [0, 1) of successive delays: each message reuses
    /// the previous message's delay draw with probability ρ, otherwise draws
    /// afresh. The distribution of one delay is unchanged. Default 0.
    correlation: f64 = 0.0;
    /// Loss model (see [`Loss`]): a plain number is the probability of
    /// independent (Bernoulli) loss. Default 0.
    loss: Loss = Loss::default();
    /// Whether the link may reorder (see [`Ordering`]). Default `fifo`.
    ordering: Ordering = Ordering::Fifo;
    /// Probability in [0, 1] that a message is sent at once, without delay
    /// and ahead of the FIFO queue (netem's `reorder`). Default 0.
    reorder: f64 = 0.0;
    /// Probability in [0, 1] that a message that was not lost is sent
    /// twice; the copy has its own delay. Default 0.
    duplicate: f64 = 0.0;
    /// Probability in [0, 1] that a message arrives corrupted: the receiver
    /// discards it (a drop with reason `corrupt`). Default 0.
    corrupt: f64 = 0.0;
    /// Bandwidth in bit/s; 0 (the default) means unlimited (no
    /// serialisation delay, no queue).
    rate_bps: u64 = 0;
    /// Bytes added to each message's payload to make its size on the wire
    /// (protocol headers), at most 1 MiB (1 048 576). Only used with a
    /// `rate_bps`. Default 40.
    header_bytes: u64 = DEFAULT_HEADER_BYTES;
    /// Most messages the link's queue holds (waiting or being serialised);
    /// one more is dropped with reason `overflow`. 0 (default): unbounded.
    /// Needs a `rate_bps`.
    queue_messages: u64 = 0;
    /// Most bytes the link's queue holds; a message that would exceed it is
    /// dropped with reason `overflow`. 0 (default): unbounded. Needs a
    /// `rate_bps`.
    queue_bytes: u64 = 0;
}

/// The largest `header_bytes` a link accepts: per-message overheads are
/// bytes to tens of bytes; the bound keeps a link's byte counts far from
/// overflowing (at most `max_in_flight` messages are on it).
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

impl LinkModel {
    /// Checks the parameters (keys relative to the model's table).
    pub fn validate(&self, v: &mut Validator) {
        self.loss.validate(v);
        v.at("latency", |v| self.latency.validate(v));
        v.check(
            self.correlation.is_finite() && (0.0..1.0).contains(&self.correlation),
            "correlation",
            || format!("correlation must be in [0, 1), got {}", self.correlation),
        );
        for (key, p) in [
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
            ("corrupt", self.corrupt),
        ] {
            v.check((0.0..=1.0).contains(&p), key, || {
                format!("{key} is a probability in [0, 1], got {p}")
            });
        }
        v.check(
            self.header_bytes <= MAX_HEADER_BYTES,
            "header_bytes",
            || {
                format!(
                    "header_bytes must be at most {MAX_HEADER_BYTES} (1 MiB), got {}",
                    self.header_bytes
                )
            },
        );
        for (key, n) in [
            ("queue_messages", self.queue_messages),
            ("queue_bytes", self.queue_bytes),
        ] {
            v.check(n == 0 || self.rate_bps > 0, key, || {
                format!("{key} bounds the queue of a link with a rate: set rate_bps too")
            });
        }
    }

    /// Whether any step beyond loss, delay and ordering is enabled (such a
    /// link keeps the extra streams and state).
    fn has_extras(&self) -> bool {
        self.correlation > 0.0
            || self.reorder > 0.0
            || self.duplicate > 0.0
            || self.corrupt > 0.0
            || self.rate_bps > 0
    }
}

/// What happened to one message (or one duplicate) on one link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transit {
    /// It will arrive at this time.
    Arrive(SimTime),
    /// It will arrive at this time, corrupted: the receiver discards it.
    Corrupt(SimTime),
    /// It never leaves: lost (`loss`) or tail-dropped (`overflow`).
    Dropped(Reason),
}

/// The state and streams of the steps a plain link does not use.
#[derive(Clone, Debug)]
struct Extras {
    correlation: f64,
    reorder: f64,
    duplicate: f64,
    corrupt: f64,
    rate_bps: u64,
    header_bytes: u64,
    queue_messages: u64,
    queue_bytes: u64,
    correlation_rng: RngStream,
    reorder_rng: RngStream,
    duplicate_rng: RngStream,
    corrupt_rng: RngStream,
    /// The previous delay draw (for correlation).
    last_delay: Option<SimDuration>,
    /// When the link finishes serialising what it has accepted.
    busy_until: SimTime,
    /// Messages accepted and not yet serialised: (finish time, bytes).
    backlog: VecDeque<(SimTime, u64)>,
    backlog_bytes: u64,
    /// The duplicate of the last message sent, if it had one.
    dup: Option<Transit>,
}

/// One directed link with its own state and random streams
/// (`link/{name}/latency`, `/loss`, and `/correlation`, `/reorder`,
/// `/duplicate`, `/corrupt` when those steps are enabled).
///
/// The engine drives one per directed link of a simulation; a test, a tool
/// or a benchmark can drive one by hand, message by message:
///
/// ```
/// use busbar::network::{Latency, Link, LinkModel, Transit};
/// use busbar::{SimDuration, SimTime};
///
/// let model = LinkModel {
///     latency: Latency::Constant { value: SimDuration::from_millis(2) },
///     rate_bps: 1_000_000,
///     ..LinkModel::default()
/// };
/// let mut link = Link::new(&model, 42, 0, "a->broker");
/// // 60 payload bytes + 40 header bytes at 1 Mbit/s: 800 us on the wire.
/// assert_eq!(link.transmit(SimTime::ZERO, 60, 1.0), Transit::Arrive(SimTime(2_800_000)));
/// ```
#[derive(Clone, Debug)]
pub struct Link {
    sampler: LatencySampler,
    loss: LossState,
    fifo: bool,
    latency_rng: RngStream,
    loss_rng: RngStream,
    /// The earliest arrival the next message may have on a FIFO link: the
    /// latest arrival scheduled so far, plus `fifo_gap`.
    floor: SimTime,
    /// 0, or 1 ns under a seeded tie-break ([`Link::distinct_arrivals`]).
    fifo_gap: SimDuration,
    extras: Option<Box<Extras>>,
}

impl Link {
    /// A link named `name` (e.g. `mg1->broker`) with its own RNG streams
    /// for `seed` and environment `env`. The model must be valid
    /// ([`LinkModel::validate`]).
    pub fn new(model: &LinkModel, seed: u64, env: u64, name: &str) -> Link {
        Link::with_delays(model, seed, env, name, Delays::Sampled)
    }

    /// [`Link::new`], drawing its delays as `delays` says.
    pub fn with_delays(model: &LinkModel, seed: u64, env: u64, name: &str, delays: Delays) -> Link {
        let stream = |process: &str| RngStream::new(seed, env, &format!("link/{name}/{process}"));
        let extras = model.has_extras().then(|| {
            Box::new(Extras {
                correlation: model.correlation,
                reorder: model.reorder,
                duplicate: model.duplicate,
                corrupt: model.corrupt,
                rate_bps: model.rate_bps,
                header_bytes: model.header_bytes,
                queue_messages: model.queue_messages,
                queue_bytes: model.queue_bytes,
                correlation_rng: stream("correlation"),
                reorder_rng: stream("reorder"),
                duplicate_rng: stream("duplicate"),
                corrupt_rng: stream("corrupt"),
                last_delay: None,
                busy_until: SimTime::ZERO,
                backlog: VecDeque::new(),
                backlog_bytes: 0,
                dup: None,
            })
        });
        Link {
            sampler: match delays {
                Delays::Sampled => model.latency.compile(),
                Delays::Adversarial => model.latency.compile_adversarial(),
            },
            loss: model.loss.compile(),
            fifo: model.ordering == Ordering::Fifo,
            latency_rng: stream("latency"),
            loss_rng: stream("loss"),
            floor: SimTime::ZERO,
            fifo_gap: SimDuration::ZERO,
            extras,
        }
    }

    /// Makes the arrivals of a FIFO link distinct: one that would coincide
    /// with (or come before) the arrival before it is 1 ns after it. For a
    /// seeded tie-break ([`TieBreak::Seeded`](crate::sim::TieBreak)), which
    /// permutes simultaneous events and would otherwise reorder them.
    pub fn distinct_arrivals(mut self) -> Link {
        self.fifo_gap = SimDuration(1);
        self
    }

    /// Sends one message of `payload_bytes` at `now` through the chain (see
    /// the module docs). `factor` scales the delay draw (1 unless a
    /// degradation fault holds). A duplicate, if one is made, is taken with
    /// [`Link::take_duplicate`].
    #[inline(always)]
    pub fn transmit(&mut self, now: SimTime, payload_bytes: u64, factor: f64) -> Transit {
        if self.loss.lose(&mut self.loss_rng) {
            return Transit::Dropped(Reason::Loss);
        }
        if self.extras.is_some() || factor != 1.0 {
            return self.transmit_extras(now, payload_bytes, factor);
        }
        let at = now + self.sampler.sample(&mut self.latency_rng);
        Transit::Arrive(keep_order(self.fifo, self.fifo_gap, &mut self.floor, at))
    }

    /// Steps 2–8 of the chain, for a link with extras or a degraded delay.
    #[inline(never)]
    fn transmit_extras(&mut self, now: SimTime, payload_bytes: u64, factor: f64) -> Transit {
        let Some(x) = self.extras.as_deref_mut() else {
            let d = scale(self.sampler.sample(&mut self.latency_rng), factor);
            let at = keep_order(self.fifo, self.fifo_gap, &mut self.floor, now + d);
            return Transit::Arrive(at);
        };
        let bytes = payload_bytes.saturating_add(x.header_bytes);
        if x.rate_bps > 0 {
            while x.backlog.front().is_some_and(|&(done, _)| done <= now) {
                let (_, b) = x.backlog.pop_front().expect("front exists");
                x.backlog_bytes -= b;
            }
            let full_msgs = x.queue_messages > 0 && x.backlog.len() as u64 >= x.queue_messages;
            let full_bytes =
                x.queue_bytes > 0 && x.backlog_bytes.saturating_add(bytes) > x.queue_bytes;
            if full_msgs || full_bytes {
                x.dup = None;
                return Transit::Dropped(Reason::Overflow);
            }
        }
        let first = Self::carry(
            x,
            &self.sampler,
            &mut self.latency_rng,
            (self.fifo, self.fifo_gap),
            &mut self.floor,
            now,
            bytes,
            factor,
        );
        x.dup = None;
        if x.duplicate > 0.0 && x.duplicate_rng.bernoulli(x.duplicate) {
            x.dup = Some(Self::carry(
                x,
                &self.sampler,
                &mut self.latency_rng,
                (self.fifo, self.fifo_gap),
                &mut self.floor,
                now,
                bytes,
                factor,
            ));
        }
        first
    }

    /// The duplicate made by the last [`Link::transmit`], if any.
    #[inline]
    pub fn take_duplicate(&mut self) -> Option<Transit> {
        self.extras.as_deref_mut().and_then(|x| x.dup.take())
    }

    /// Steps 3–7 of the chain for one message (or duplicate) of `bytes`.
    #[allow(clippy::too_many_arguments)]
    fn carry(
        x: &mut Extras,
        sampler: &LatencySampler,
        latency_rng: &mut RngStream,
        fifo: (bool, SimDuration),
        floor: &mut SimTime,
        now: SimTime,
        bytes: u64,
        factor: f64,
    ) -> Transit {
        let mut sent = now;
        if x.rate_bps > 0 {
            let start = now.max(x.busy_until);
            let bits = u128::from(bytes) * 8 * 1_000_000_000;
            let ns = bits.div_ceil(u128::from(x.rate_bps));
            sent = start + SimDuration(u64::try_from(ns).unwrap_or(u64::MAX));
            x.busy_until = sent;
            x.backlog.push_back((sent, bytes));
            x.backlog_bytes += bytes;
        }
        let reordered = x.reorder > 0.0 && x.reorder_rng.bernoulli(x.reorder);
        let at = if reordered {
            sent
        } else {
            let d = match x.last_delay {
                Some(last) if x.correlation > 0.0 && x.correlation_rng.bernoulli(x.correlation) => {
                    last
                }
                _ => sampler.sample(latency_rng),
            };
            x.last_delay = Some(d);
            let at = sent + if factor != 1.0 { scale(d, factor) } else { d };
            keep_order(fifo.0, fifo.1, floor, at)
        };
        if x.corrupt > 0.0 && x.corrupt_rng.bernoulli(x.corrupt) {
            Transit::Corrupt(at)
        } else {
            Transit::Arrive(at)
        }
    }
}

/// A FIFO link's arrival `at` kept in send order: never before `floor`, the
/// latest arrival so far plus `gap`, which it then moves up. With `gap` 0,
/// equal arrival times keep send order through the queue's FIFO tie-break;
/// with 1 ns they are never equal, for a tie-break that permutes them.
#[inline(always)]
fn keep_order(fifo: bool, gap: SimDuration, floor: &mut SimTime, at: SimTime) -> SimTime {
    let at = if fifo && at < *floor { *floor } else { at };
    let next = at + gap;
    if next > *floor {
        *floor = next;
    }
    at
}

/// `d` times `factor` (a degradation), rounded to whole nanoseconds.
fn scale(d: SimDuration, factor: f64) -> SimDuration {
    SimDuration::from_nanos_f64(d.0 as f64 * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(model: LinkModel) -> Link {
        Link::new(&model, 1, 0, "a->broker")
    }

    #[test]
    fn distinct_arrivals_space_a_fifo_links_equal_arrivals_by_a_nanosecond() {
        let model = LinkModel {
            latency: Latency::Uniform {
                min: SimDuration::from_millis(1),
                max: SimDuration::from_millis(9),
            },
            ..LinkModel::default()
        };
        let times = |l: Link| -> Vec<u64> {
            let mut l = l;
            (0..200)
                .map(|_| match l.transmit(SimTime(0), 32, 1.0) {
                    Transit::Arrive(t) => t.0,
                    other => panic!("{other:?}"),
                })
                .collect()
        };
        // All sent at once: the plain link clamps many to the same time...
        let plain = times(link(model.clone()));
        assert!(plain.windows(2).all(|w| w[0] <= w[1]));
        assert!(plain.windows(2).filter(|w| w[0] == w[1]).count() > 50);
        // ...the distinct one 1 ns after each other, from the same draws.
        let distinct = times(link(model).distinct_arrivals());
        assert!(distinct.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(distinct[0], plain[0]);
        let clamped = plain.windows(2).position(|w| w[0] == w[1]).unwrap();
        assert_eq!(distinct[clamped + 1], distinct[clamped] + 1);
    }

    fn arrivals(l: &mut Link, n: u64, gap_ns: u64) -> Vec<Transit> {
        (0..n)
            .map(|i| l.transmit(SimTime(i * gap_ns), 32, 1.0))
            .collect()
    }

    fn at(t: Transit) -> SimTime {
        match t {
            Transit::Arrive(t) | Transit::Corrupt(t) => t,
            Transit::Dropped(r) => panic!("dropped: {r:?}"),
        }
    }

    #[test]
    fn fifo_link_never_reorders_unordered_does() {
        let latency = Latency::Uniform {
            min: SimDuration::from_millis(1),
            max: SimDuration::from_millis(50),
        };
        let run = |ordering| {
            let mut l = link(LinkModel {
                latency: latency.clone(),
                ordering,
                ..LinkModel::default()
            });
            arrivals(&mut l, 1000, 100_000)
                .into_iter()
                .map(at)
                .collect::<Vec<_>>()
        };
        let fifo = run(Ordering::Fifo);
        assert!(fifo.windows(2).all(|w| w[0] <= w[1]));
        let unordered = run(Ordering::Unordered);
        assert!(unordered.windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn loss_rate_is_close_to_its_probability() {
        let mut l = link(LinkModel {
            loss: Loss::bernoulli(0.2),
            ..LinkModel::default()
        });
        let lost = arrivals(&mut l, 20_000, 0)
            .into_iter()
            .filter(|t| *t == Transit::Dropped(Reason::Loss))
            .count();
        assert!((3_600..4_400).contains(&lost), "{lost}");
    }

    #[test]
    fn a_rate_serialises_and_a_full_queue_tail_drops() {
        // 1 Mbit/s, 100-byte messages (60 + 40 header): 800 us each.
        let mut l = link(LinkModel {
            latency: Latency::Constant {
                value: SimDuration::ZERO,
            },
            rate_bps: 1_000_000,
            queue_messages: 3,
            ..LinkModel::default()
        });
        let t: Vec<Transit> = (0..5).map(|_| l.transmit(SimTime::ZERO, 60, 1.0)).collect();
        assert_eq!(
            t,
            [
                Transit::Arrive(SimTime(800_000)),
                Transit::Arrive(SimTime(1_600_000)),
                Transit::Arrive(SimTime(2_400_000)),
                Transit::Dropped(Reason::Overflow),
                Transit::Dropped(Reason::Overflow),
            ]
        );
        // Once the first has left, one more fits.
        assert_eq!(
            l.transmit(SimTime(800_000), 60, 1.0),
            Transit::Arrive(SimTime(3_200_000))
        );
        assert_eq!(
            l.transmit(SimTime(800_000), 60, 1.0),
            Transit::Dropped(Reason::Overflow)
        );
    }

    #[test]
    fn a_byte_bound_counts_header_and_payload() {
        let mut l = link(LinkModel {
            rate_bps: 8_000,
            queue_bytes: 250,
            ..LinkModel::default()
        });
        // 100 bytes each: two fit in 250, the third does not.
        let t: Vec<Transit> = (0..3).map(|_| l.transmit(SimTime::ZERO, 60, 1.0)).collect();
        assert!(matches!(t[0], Transit::Arrive(_)));
        assert!(matches!(t[1], Transit::Arrive(_)));
        assert_eq!(t[2], Transit::Dropped(Reason::Overflow));
    }

    #[test]
    fn duplicates_and_corruption_happen_at_their_rates() {
        let mut l = link(LinkModel {
            duplicate: 0.25,
            corrupt: 0.1,
            ordering: Ordering::Unordered,
            ..LinkModel::default()
        });
        let (mut dups, mut corrupt, n) = (0, 0, 40_000);
        for i in 0..n {
            let t = l.transmit(SimTime(i), 0, 1.0);
            corrupt += usize::from(matches!(t, Transit::Corrupt(_)));
            if let Some(d) = l.take_duplicate() {
                dups += 1;
                corrupt += usize::from(matches!(d, Transit::Corrupt(_)));
            }
        }
        let sent = n + dups;
        assert!((9_400..10_600).contains(&dups), "{dups}");
        let rate = corrupt as f64 / sent as f64;
        assert!((rate - 0.1).abs() < 0.006, "{rate}");
    }

    #[test]
    fn reordered_messages_skip_the_delay_and_the_fifo_rule() {
        let mut l = link(LinkModel {
            latency: Latency::Constant {
                value: SimDuration::from_millis(10),
            },
            reorder: 0.3,
            ..LinkModel::default()
        });
        let t: Vec<SimTime> = arrivals(&mut l, 10_000, 1_000)
            .into_iter()
            .map(at)
            .collect();
        let at_once = (0..t.len()).filter(|&i| t[i].0 == i as u64 * 1_000).count();
        assert!((2_800..3_200).contains(&at_once), "{at_once}");
        assert!(t.windows(2).any(|w| w[0] > w[1]), "reordering happened");
    }

    #[test]
    fn correlation_keeps_the_marginal_and_correlates_successive_delays() {
        let model = |correlation| LinkModel {
            latency: Latency::Uniform {
                min: SimDuration(0),
                max: SimDuration(1_000_000),
            },
            ordering: Ordering::Unordered,
            correlation,
            ..LinkModel::default()
        };
        let n = 200_000u64;
        let delays = |rho| {
            let mut l = link(model(rho));
            (0..n)
                .map(|i| (at(l.transmit(SimTime(i * 10), 0, 1.0)).0 - i * 10) as f64)
                .collect::<Vec<f64>>()
        };
        let d = delays(0.6);
        let mean = d.iter().sum::<f64>() / n as f64;
        let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let lag1 = d
            .windows(2)
            .map(|w| (w[0] - mean) * (w[1] - mean))
            .sum::<f64>()
            / ((n - 1) as f64 * var);
        // Uniform on [0, 1e6]: mean 5e5, sd 1e6/sqrt(12).
        assert!((mean - 5e5).abs() < 3e3, "{mean}");
        assert!((var.sqrt() - 288_675.0).abs() < 3e3, "{}", var.sqrt());
        assert!((lag1 - 0.6).abs() < 0.01, "{lag1}");
    }

    #[test]
    fn a_degradation_factor_scales_the_delay() {
        let mut l = link(LinkModel {
            latency: Latency::Constant {
                value: SimDuration::from_millis(2),
            },
            ..LinkModel::default()
        });
        assert_eq!(
            l.transmit(SimTime::ZERO, 0, 3.0),
            Transit::Arrive(SimTime(6_000_000))
        );
    }

    #[test]
    fn patches_apply_in_order_and_validation_names_every_key() {
        let a = LinkPatch {
            loss: Some(Loss::bernoulli(0.1)),
            rate_bps: Some(9_600),
            ..LinkPatch::default()
        };
        let b = LinkPatch {
            loss: Some(Loss::bernoulli(0.2)),
            ..LinkPatch::default()
        };
        let m = LinkModel::default().with(&a.then(&b));
        assert_eq!((m.loss, m.rate_bps), (Loss::bernoulli(0.2), 9_600));
        let bad = LinkModel {
            loss: Loss::bernoulli(1.5),
            correlation: 1.0,
            duplicate: -0.1,
            queue_bytes: 10,
            latency: Latency::Uniform {
                min: SimDuration(5),
                max: SimDuration(1),
            },
            ..LinkModel::default()
        };
        let mut v = Validator::new();
        bad.validate(&mut v);
        let paths: Vec<String> = v.issues().iter().map(|i| i.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "loss",
                "latency.max",
                "correlation",
                "duplicate",
                "queue_bytes"
            ]
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever is sent when, a link with a rate never finishes a
        /// message sooner than its serialisation time after the one before
        /// (nor before it was sent): it never exceeds its rate.
        #[test]
        fn a_link_never_exceeds_its_rate(
            rate_bps in 1_000u64..100_000_000,
            sends in proptest::collection::vec((0u64..2_000_000, 0u64..1_500), 1..200),
        ) {
            let mut l = link(LinkModel {
                latency: Latency::Constant { value: SimDuration::ZERO },
                ordering: Ordering::Unordered,
                rate_bps,
                ..LinkModel::default()
            });
            let (mut now, mut last_done) = (0u64, 0u64);
            for (gap, payload) in sends {
                now += gap;
                let done = at(l.transmit(SimTime(now), payload, 1.0)).0;
                let bits = u128::from(payload + DEFAULT_HEADER_BYTES) * 8 * 1_000_000_000;
                let ser = bits.div_ceil(u128::from(rate_bps)) as u64;
                proptest::prop_assert_eq!(done, now.max(last_done) + ser);
                last_done = done;
            }
        }

        /// A FIFO link never reorders, whatever its jitter, correlation,
        /// duplication or rate.
        #[test]
        fn a_fifo_link_never_reorders(
            max_us in 0u64..10_000,
            correlation in 0.0..0.99f64,
            duplicate in 0.0..0.5f64,
            rate in proptest::prop_oneof![proptest::strategy::Just(0u64), 10_000u64..10_000_000],
            gaps in proptest::collection::vec(0u64..1_000_000, 1..300),
        ) {
            let mut l = link(LinkModel {
                latency: Latency::Uniform {
                    min: SimDuration::ZERO,
                    max: SimDuration::from_micros(max_us),
                },
                correlation,
                duplicate,
                rate_bps: rate,
                ..LinkModel::default()
            });
            let (mut now, mut last) = (0u64, SimTime::ZERO);
            for gap in gaps {
                now += gap;
                let first = at(l.transmit(SimTime(now), 32, 1.0));
                proptest::prop_assert!(first >= last);
                last = first;
                if let Some(d) = l.take_duplicate() {
                    proptest::prop_assert!(at(d) >= last);
                    last = at(d);
                }
            }
        }
    }
}
