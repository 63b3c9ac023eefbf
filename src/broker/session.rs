//! Settings of network sessions (`[broker.sessions]`,
//! docs/broker_sessions.md): connect, subscribe and unsubscribe travel the
//! agent's uplink as control packets, the broker keeps a registry of
//! online agents (keepalive), and a persistent session keeps the QoS ≥ 1
//! copies for an agent that is offline.

use serde::{Deserialize, Serialize};

use crate::time::SimDuration;
use crate::validate::Validator;

use super::MAX_BUFFER_CAPACITY;

/// `[broker.sessions]`. Without the table, subscriptions take effect the
/// instant an agent makes them and every agent is always online.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Payload bytes of a CONNECT packet (a link with a rate adds its
    /// `header_bytes`). Default 16.
    #[serde(default = "default_connect_bytes")]
    pub connect_bytes: u64,
    /// Payload bytes of a SUBSCRIBE or UNSUBSCRIBE packet (of one channel
    /// or filter). Default 32.
    #[serde(default = "default_subscribe_bytes")]
    pub subscribe_bytes: u64,
    /// Payload bytes of a PINGREQ. Default 2.
    #[serde(default = "default_ping_bytes")]
    pub ping_bytes: u64,
    /// The keepalive interval: each agent sends a PINGREQ (or resends its
    /// unacknowledged control packets) every `keepalive`, and the broker
    /// declares an agent offline after 1.5 × `keepalive` without a packet
    /// from it. `"0s"` turns keepalive off: no pings, no resends, and the
    /// broker never learns that an agent went away. Default 10 s.
    #[serde(default = "default_keepalive")]
    pub keepalive: SimDuration,
    /// Persistent sessions (MQTT `clean_session = false`): copies on a
    /// QoS ≥ 1 channel for an offline agent are kept (up to
    /// `session_queue`) and sent when it reconnects. `false`: clean
    /// sessions, every copy for an offline agent is dropped (`offline`).
    /// Default true.
    #[serde(default = "default_persistent")]
    pub persistent: bool,
    /// How long a persistent session outlives its agent's going offline;
    /// when it expires, the copies it kept are dropped (`offline`), and
    /// later ones too until the agent reconnects. Default: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expiry: Option<SimDuration>,
    /// Copies one agent's session keeps while it is offline; a copy beyond
    /// is dropped with reason `overflow`. Default 1 000, at most
    /// [`MAX_BUFFER_CAPACITY`].
    #[serde(default = "default_session_queue")]
    pub session_queue: usize,
}

fn default_connect_bytes() -> u64 {
    16
}
fn default_subscribe_bytes() -> u64 {
    32
}
fn default_ping_bytes() -> u64 {
    2
}
fn default_keepalive() -> SimDuration {
    SimDuration::from_secs(10)
}
fn default_persistent() -> bool {
    true
}
fn default_session_queue() -> usize {
    1000
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            connect_bytes: default_connect_bytes(),
            subscribe_bytes: default_subscribe_bytes(),
            ping_bytes: default_ping_bytes(),
            keepalive: default_keepalive(),
            persistent: default_persistent(),
            session_expiry: None,
            session_queue: default_session_queue(),
        }
    }
}

/// The largest packet size accepted (1 MiB): a control packet is small.
pub const MAX_CONTROL_BYTES: u64 = 1 << 20;

impl SessionConfig {
    /// The time after the last packet heard from an agent at which the
    /// broker declares it offline: 1.5 × keepalive (as MQTT).
    pub fn timeout(&self) -> SimDuration {
        SimDuration::from_nanos(self.keepalive.as_nanos().saturating_mul(3) / 2)
    }

    /// Checks the settings (keys relative to `[broker.sessions]`).
    pub fn validate(&self, v: &mut Validator) {
        for (key, bytes) in [
            ("connect_bytes", self.connect_bytes),
            ("subscribe_bytes", self.subscribe_bytes),
            ("ping_bytes", self.ping_bytes),
        ] {
            v.check(bytes <= MAX_CONTROL_BYTES, key, || {
                format!("{key} must be at most {MAX_CONTROL_BYTES}")
            });
        }
        let k = self.keepalive.as_nanos();
        v.check(k == 0 || k >= 1_000_000, "keepalive", || {
            "keepalive must be 0s (off) or at least 1ms".to_string()
        });
        v.check(k <= 1_000_000_000 * 86_400 * 365, "keepalive", || {
            "keepalive must be at most 365 days".to_string()
        });
        if let Some(e) = self.session_expiry {
            v.check(e.as_nanos() > 0, "session_expiry", || {
                "session_expiry must be positive (leave it out for never)".to_string()
            });
            v.check(self.persistent, "session_expiry", || {
                "session_expiry needs persistent = true (a clean session keeps nothing)".to_string()
            });
        }
        if v.at_least_one("session_queue", self.session_queue as u64) {
            v.check(
                self.session_queue <= MAX_BUFFER_CAPACITY,
                "session_queue",
                || format!("session_queue must be at most {MAX_BUFFER_CAPACITY}"),
            );
        }
    }
}
