//! Per-channel delivery guarantees: `[[broker.channel]]` entries select
//! channels by topic filter and set their QoS, TTL, retention and retry
//! policy. Every channel's policy is resolved once, when the channel is
//! interned, so routing reads a small struct, never a filter.

use serde::{Deserialize, Serialize};

use crate::time::SimDuration;
use crate::validate::Validator;

use super::topic;

/// A delivery guarantee (MQTT's QoS levels, by their meaning).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qos {
    /// QoS 0: sent once, never acknowledged, never retransmitted; a copy
    /// lost on a link is lost.
    #[default]
    AtMostOnce,
    /// QoS 1: the receiver acknowledges over the network; the sender keeps
    /// the message and retransmits it after an ack timeout (exponential
    /// backoff with jitter) until acknowledged or out of retries, then
    /// dead-letters it. A handler can see a message more than once.
    AtLeastOnce,
    /// QoS 2: at-least-once, plus deduplication at the receiver: a handler
    /// sees each message at most once (duplicates are acknowledged and
    /// dropped with reason `duplicate`).
    ExactlyOnce,
}

impl Qos {
    /// The scenario-file name.
    pub fn name(self) -> &'static str {
        match self {
            Qos::AtMostOnce => "at_most_once",
            Qos::AtLeastOnce => "at_least_once",
            Qos::ExactlyOnce => "exactly_once",
        }
    }

    /// Whether messages are acknowledged (and retransmitted).
    #[inline]
    pub fn acked(self) -> bool {
        self != Qos::AtMostOnce
    }
}

/// One `[[broker.channel]]`: settings for the channels whose names match
/// `topic`. Entries apply in file order, each setting the fields it names,
/// so a later, narrower entry refines an earlier one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// An MQTT topic filter (`{env}/state_updates`, `{env}/agent/+/#`,
    /// `#`); `{env}` is replaced by the environment prefix.
    pub topic: String,
    /// Guarantee from the broker to each subscriber. Default
    /// `at_most_once`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<Qos>,
    /// Guarantee from the publisher to the broker (the broker acknowledges
    /// each publish). Default: the channel's `qos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_qos: Option<Qos>,
    /// Time to live from publication: a message older than this is not
    /// routed, retransmitted or delivered but expires (`expire` event).
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<SimDuration>,
    /// Send an expired message to the dead-letter queue too. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_expired: Option<bool>,
    /// Keep the channel's last message and send it to each new subscriber.
    /// Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<bool>,
    /// Time the sender waits for an ack before the first retransmission.
    /// Default 100 ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_timeout: Option<SimDuration>,
    /// Each retransmission waits this many times longer than the last
    /// (≥ 1). Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<f64>,
    /// The longest wait between retransmissions, before jitter. Default 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<SimDuration>,
    /// Each wait is multiplied by a uniform factor in [1 − jitter,
    /// 1 + jitter] (0 ≤ jitter < 1). Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<f64>,
    /// Retransmissions before the message is dead-lettered. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Priority at the broker's server queue, 0 (lowest, the default) to
    /// [`MAX_PRIORITY`]: a waiting message of a higher priority enters
    /// service before any of a lower one (`docs/broker_server.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// The resolved policy of one channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelPolicy {
    /// Broker → subscriber guarantee.
    pub qos: Qos,
    /// Publisher → broker guarantee.
    pub publish_qos: Qos,
    /// Time to live from publication.
    pub ttl: Option<SimDuration>,
    /// Dead-letter expired messages.
    pub dead_letter_expired: bool,
    /// Keep the last message for new subscribers.
    pub retain: bool,
    /// First wait for an ack.
    pub ack_timeout: SimDuration,
    /// Growth factor of the wait.
    pub backoff: f64,
    /// Cap of the wait, before jitter.
    pub max_backoff: SimDuration,
    /// Relative jitter of each wait.
    pub jitter: f64,
    /// Retransmissions before dead-lettering.
    pub max_retries: u32,
    /// Priority at the broker's server queue (0 to [`MAX_PRIORITY`]).
    pub priority: u8,
}

impl Default for ChannelPolicy {
    fn default() -> Self {
        ChannelPolicy {
            qos: Qos::AtMostOnce,
            publish_qos: Qos::AtMostOnce,
            ttl: None,
            dead_letter_expired: false,
            retain: false,
            ack_timeout: SimDuration::from_millis(100),
            backoff: 2.0,
            max_backoff: SimDuration::from_secs(10),
            jitter: 0.1,
            max_retries: 5,
            priority: 0,
        }
    }
}

impl ChannelPolicy {
    /// Whether the channel needs nothing beyond at-most-once routing: no
    /// acks, no TTL, no retention (the fast path).
    #[inline]
    pub fn is_plain(&self) -> bool {
        !self.qos.acked() && !self.publish_qos.acked() && self.ttl.is_none() && !self.retain
    }

    /// The policy of channel `name`: the defaults, then every entry whose
    /// filter (with `{env}` replaced by `prefix`) matches, in order.
    pub fn resolve(specs: &[ChannelSpec], prefix: &str, name: &str) -> ChannelPolicy {
        let mut p = ChannelPolicy::default();
        let mut publish_qos = None;
        for s in specs {
            let filter = s.topic.replace("{env}", prefix);
            if !topic::matches(&filter, name) {
                continue;
            }
            if let Some(q) = s.qos {
                p.qos = q;
            }
            if s.publish_qos.is_some() {
                publish_qos = s.publish_qos;
            }
            if s.ttl.is_some() {
                p.ttl = s.ttl;
            }
            set(&mut p.dead_letter_expired, s.dead_letter_expired);
            set(&mut p.retain, s.retain);
            set(&mut p.ack_timeout, s.ack_timeout);
            set(&mut p.backoff, s.backoff);
            set(&mut p.max_backoff, s.max_backoff);
            set(&mut p.jitter, s.jitter);
            set(&mut p.max_retries, s.max_retries);
            set(&mut p.priority, s.priority);
        }
        p.publish_qos = publish_qos.unwrap_or(p.qos);
        p
    }

    /// The wait before retransmission `attempt` (1 for the first), before
    /// jitter: `min(ack_timeout × backoff^(attempt−1), max_backoff)`, in
    /// integer nanoseconds. (The power is repeated multiplication: exact
    /// IEEE steps, the same bits everywhere.)
    pub fn wait_ns(&self, attempt: u32) -> f64 {
        let cap = self.max_backoff.as_nanos() as f64;
        let mut w = self.ack_timeout.as_nanos() as f64;
        for _ in 1..attempt {
            w *= self.backoff;
            if w >= cap {
                return cap;
            }
        }
        w.min(cap)
    }
}

fn set<T>(field: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *field = v;
    }
}

impl ChannelSpec {
    /// Checks the entry (keys relative to it).
    pub fn validate(&self, v: &mut Validator) {
        let filter = self.topic.replace("{env}", "env0");
        if let Err(m) = topic::check_filter(&filter) {
            v.fail("topic", m);
        }
        if let Some(t) = self.ack_timeout {
            v.at_least_one("ack_timeout", t.as_nanos());
        }
        if let Some(t) = self.ttl {
            v.at_least_one("ttl", t.as_nanos());
        }
        if let Some(b) = self.backoff {
            v.check(b.is_finite() && b >= 1.0, "backoff", || {
                format!("backoff is a factor of at least 1, got {b}")
            });
        }
        if let Some(m) = self.max_backoff {
            v.at_least_one("max_backoff", m.as_nanos());
        }
        if let Some(j) = self.jitter {
            v.check((0.0..1.0).contains(&j), "jitter", || {
                format!("jitter is a fraction in [0, 1), got {j}")
            });
        }
        if let Some(r) = self.max_retries {
            v.check(r <= MAX_RETRIES, "max_retries", || {
                format!("max_retries must be at most {MAX_RETRIES}, got {r}")
            });
        }
        if let Some(p) = self.priority {
            v.check(p <= MAX_PRIORITY, "priority", || {
                format!("priority must be from 0 to {MAX_PRIORITY}, got {p}")
            });
        }
    }
}

/// The highest channel `priority` (ten levels, 0 to 9).
pub const MAX_PRIORITY: u8 = 9;

/// The largest `max_retries` accepted.
pub const MAX_RETRIES: u32 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(topic: &str) -> ChannelSpec {
        ChannelSpec {
            topic: topic.into(),
            ..ChannelSpec::default()
        }
    }

    #[test]
    fn entries_apply_in_order_field_by_field() {
        let specs = vec![
            ChannelSpec {
                qos: Some(Qos::AtLeastOnce),
                ttl: Some(SimDuration::from_secs(2)),
                ..spec("#")
            },
            ChannelSpec {
                qos: Some(Qos::ExactlyOnce),
                ..spec("{env}/agent/+/device_actions")
            },
        ];
        let p = ChannelPolicy::resolve(&specs, "env3", "env3/agent/mg0/device_actions");
        assert_eq!(p.qos, Qos::ExactlyOnce);
        assert_eq!(p.publish_qos, Qos::ExactlyOnce);
        assert_eq!(p.ttl, Some(SimDuration::from_secs(2)));
        let q = ChannelPolicy::resolve(&specs, "env3", "env3/actions");
        assert_eq!(q.qos, Qos::AtLeastOnce);
        assert!(!q.is_plain());
        let r = ChannelPolicy::resolve(&specs[1..], "env3", "env3/actions");
        assert!(r.is_plain());
        assert_eq!(r, ChannelPolicy::default());
    }

    #[test]
    fn publish_qos_defaults_to_the_last_qos() {
        let specs = vec![
            ChannelSpec {
                publish_qos: Some(Qos::AtMostOnce),
                ..spec("#")
            },
            ChannelSpec {
                qos: Some(Qos::AtLeastOnce),
                ..spec("a")
            },
        ];
        let p = ChannelPolicy::resolve(&specs, "env0", "a");
        assert_eq!((p.qos, p.publish_qos), (Qos::AtLeastOnce, Qos::AtMostOnce));
        let p = ChannelPolicy::resolve(&specs[1..], "env0", "a");
        assert_eq!(p.publish_qos, Qos::AtLeastOnce);
    }

    #[test]
    fn waits_grow_geometrically_up_to_the_cap() {
        let p = ChannelPolicy {
            ack_timeout: SimDuration::from_millis(100),
            backoff: 2.0,
            max_backoff: SimDuration::from_millis(700),
            ..ChannelPolicy::default()
        };
        let w: Vec<f64> = (1..=5).map(|a| p.wait_ns(a) / 1e6).collect();
        assert_eq!(w, vec![100.0, 200.0, 400.0, 700.0, 700.0]);
    }

    #[test]
    fn bad_entries_name_the_key() {
        let bad = ChannelSpec {
            backoff: Some(0.5),
            jitter: Some(1.0),
            ack_timeout: Some(SimDuration::ZERO),
            max_retries: Some(MAX_RETRIES + 1),
            priority: Some(MAX_PRIORITY + 1),
            ..spec("a/#/b")
        };
        let mut v = Validator::new();
        bad.validate(&mut v);
        let err = v.finish().unwrap_err();
        for key in [
            "topic",
            "backoff",
            "jitter",
            "ack_timeout",
            "max_retries",
            "priority",
        ] {
            assert!(err.has(key), "{key}: {err}");
        }
    }
}
