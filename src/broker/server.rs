//! The broker as a server of finite capacity (opt-in): the settings of its
//! service-time model, its workers and the bounded queue in front of them,
//! and the overflow policy of the pull buffers. The engine's side is
//! `sim/core/server.rs`; the user's reference is `docs/broker_server.md`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::network::Latency;
use crate::time::SimDuration;
use crate::validate::Validator;

use super::BrokerConfig;

/// What the broker does with a message that arrives when every worker is
/// busy and its queue (`queue_capacity` waiting messages) is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOverflow {
    /// Drop the arriving message (reason `overflow`, at the broker).
    #[default]
    RejectNew,
    /// Drop the message that has waited longest (reason `overflow`, its own
    /// id) and queue the arriving one.
    DropOldest,
    /// Backpressure: the broker takes no more; the message waits outside
    /// the queue, in an unbounded FIFO holding line (the publisher's TCP
    /// window is full), and enters the queue when a place frees.
    Block,
}

impl QueueOverflow {
    /// The scenario-file name.
    pub fn name(self) -> &'static str {
        match self {
            QueueOverflow::RejectNew => "reject_new",
            QueueOverflow::DropOldest => "drop_oldest",
            QueueOverflow::Block => "block",
        }
    }
}

/// What a full pull buffer does with an arriving copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferOverflow {
    /// Drop the arriving copy (reason `overflow`). The default.
    #[default]
    RejectNew,
    /// Evict the oldest buffered copy (reason `overflow`, its own id;
    /// counted in `evicted`) and buffer the arriving one.
    DropOldest,
}

impl BufferOverflow {
    /// The scenario-file name.
    pub fn name(self) -> &'static str {
        match self {
            BufferOverflow::RejectNew => "reject_new",
            BufferOverflow::DropOldest => "drop_oldest",
        }
    }
}

/// The default `queue_capacity` of a server model (10 000 waiting messages).
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// The largest `queue_capacity` accepted (16 777 216).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 24;
/// The largest number of `workers` accepted (65 536).
pub const MAX_WORKERS: u32 = 1 << 16;
/// The largest `rate` accepted, messages per second (a service time of
/// 1 ns).
pub const MAX_RATE: f64 = 1e9;

/// A resolved server model: what the engine runs (defaults applied).
#[derive(Clone, Debug, PartialEq)]
pub struct ServerModel {
    /// The service time of one message by one worker.
    pub service: Latency,
    /// Parallel workers (≥ 1).
    pub workers: u32,
    /// Messages that may wait (not in service, not blocked).
    pub queue_capacity: usize,
    /// What happens to an arrival at a full queue.
    pub overflow: QueueOverflow,
}

impl BrokerConfig {
    /// The server model these settings ask for: `None` without `service`
    /// or `rate` (the broker routes each message the instant it arrives).
    /// `rate = N` is a constant service time of `1/N` s, rounded to whole
    /// nanoseconds. Meaningful on validated settings only.
    pub fn server_model(&self) -> Option<ServerModel> {
        let service = match (&self.service, self.rate) {
            (Some(s), _) => s.clone(),
            (None, Some(rate)) => Latency::Constant {
                value: SimDuration::from_nanos_f64(1e9 / rate),
            },
            (None, None) => return None,
        };
        Some(ServerModel {
            service,
            workers: self.workers.unwrap_or(1),
            queue_capacity: self.queue_capacity.unwrap_or(DEFAULT_QUEUE_CAPACITY),
            overflow: self.queue_overflow.unwrap_or_default(),
        })
    }

    /// Reads the samples of an `empirical` service time (relative to
    /// `base_dir`), reporting a problem at `service.path`.
    pub fn load(&mut self, base_dir: &Path, v: &mut Validator) {
        if let Some(s) = &mut self.service {
            v.at("service", |v| s.load(base_dir, v));
        }
    }

    /// The file an `empirical` service time reads, as written.
    pub fn files(&self) -> Vec<&Path> {
        self.service.iter().filter_map(Latency::file).collect()
    }

    /// Checks the server settings (keys relative to `[broker]`).
    pub(super) fn validate_server(&self, v: &mut Validator) {
        if let Some(s) = &self.service {
            v.at("service", |v| s.validate(v));
        }
        if let Some(rate) = self.rate {
            if self.service.is_some() {
                v.fail(
                    "rate",
                    "give either `service` (a service-time distribution) or `rate` \
                     (a constant service time of 1/rate), not both",
                );
            } else {
                v.check(
                    rate.is_finite() && rate > 0.0 && rate <= MAX_RATE,
                    "rate",
                    || {
                        format!(
                            "rate must be a number of messages per second > 0 and at most \
                             {MAX_RATE:e} (a service time of 1 ns), got {rate}"
                        )
                    },
                );
            }
        }
        let model = self.service.is_some() || self.rate.is_some();
        let need = |v: &mut Validator, key: &str, set: bool| {
            if set && !model {
                v.fail(
                    key,
                    format!(
                        "{key} applies to the broker's server model only: give `service` \
                         (e.g. {{ dist = \"exponential\", mean = \"40us\" }}) or `rate` too"
                    ),
                );
            }
        };
        need(v, "workers", self.workers.is_some());
        need(v, "queue_capacity", self.queue_capacity.is_some());
        need(v, "queue_overflow", self.queue_overflow.is_some());
        if let Some(w) = self.workers {
            v.check((1..=MAX_WORKERS).contains(&w), "workers", || {
                format!("workers must be from 1 to {MAX_WORKERS}, got {w}")
            });
        }
        if let Some(c) = self.queue_capacity {
            v.check(c <= MAX_QUEUE_CAPACITY, "queue_capacity", || {
                format!("queue_capacity must be at most {MAX_QUEUE_CAPACITY}, got {c}")
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(c: &BrokerConfig) -> Vec<String> {
        let mut v = Validator::new();
        c.validate(&mut v);
        v.issues()
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect()
    }

    #[test]
    fn no_model_by_default_and_defaults_with_one() {
        assert_eq!(BrokerConfig::default().server_model(), None);
        let c = BrokerConfig {
            rate: Some(25_000.0),
            ..BrokerConfig::default()
        };
        assert!(issues(&c).is_empty());
        let m = c.server_model().unwrap();
        assert_eq!(
            m.service,
            Latency::Constant {
                value: SimDuration::from_micros(40)
            }
        );
        assert_eq!(
            (m.workers, m.queue_capacity, m.overflow),
            (1, DEFAULT_QUEUE_CAPACITY, QueueOverflow::RejectNew)
        );
    }

    #[test]
    fn bad_settings_are_reported_at_their_keys() {
        let c = BrokerConfig {
            service: Some(Latency::Lognormal {
                median: SimDuration::ZERO,
                sigma: -1.0,
            }),
            rate: Some(5.0),
            workers: Some(0),
            queue_capacity: Some(MAX_QUEUE_CAPACITY + 1),
            ..BrokerConfig::default()
        };
        let got = issues(&c);
        for key in [
            "service.median",
            "service.sigma",
            "rate",
            "workers",
            "queue_capacity",
        ] {
            assert!(
                got.iter().any(|i| i.starts_with(&format!("{key}:"))),
                "{key}: {got:?}"
            );
        }
        let orphan = BrokerConfig {
            workers: Some(2),
            queue_overflow: Some(QueueOverflow::Block),
            ..BrokerConfig::default()
        };
        let got = issues(&orphan);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("workers:") && got[0].contains("server model"));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
            let c = BrokerConfig {
                rate: Some(bad),
                ..BrokerConfig::default()
            };
            assert_eq!(issues(&c).len(), 1, "{bad}");
        }
    }
}
