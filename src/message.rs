//! Messages, their ids, recipients, kinds and payloads, and the standard
//! channel names.
//!
//! A [`Message`] is plain data. Its [`Payload`] clones in O(1): small numeric
//! payloads (up to [`INLINE_VALUES`] floats, which covers state updates and
//! setpoints) are stored inline, larger ones behind an `Arc`, so fanning a
//! message out to many subscribers never deep-copies its payload.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::SimTime;

/// Index of an agent in its simulation (dense, from 0, in the order agents
/// were added).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AgentId(pub u32);

/// Index of an interned channel name in its simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChannelId(pub u32);

/// A message id, unique within one run, assigned in publish order from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MsgId(pub u64);

impl AgentId {
    /// The index as `usize`, for indexing per-agent tables.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl ChannelId {
    /// The index as `usize`, for indexing per-channel tables.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Who a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipient {
    /// Every subscriber of the channel (including the sender, if it subscribes).
    Broadcast,
    /// Only this agent, and only if it subscribes to the channel; otherwise the
    /// broker drops the message with reason `no_subscriber`.
    Agent(AgentId),
}

/// What a message means, as in the grid environment's message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// Environment → grid agents: the actions (price signal) of a step.
    Action,
    /// Grid agent → its devices: setpoints.
    DeviceAction,
    /// Device → environment: `P_MW, Q_MVAr, SOC` after applying a setpoint.
    StateUpdate,
    /// Environment → grid agents: voltages, line loading, convergence.
    NetworkState,
    /// Grid agent ↔ grid agent: peer-to-peer energy trades.
    P2pTrade,
    /// Anything informational.
    Info,
    /// A user-defined kind, 0..=191.
    Custom(u8),
}

/// Number of built-in kinds; custom kinds are coded after a gap so new
/// built-ins can be added without changing custom codes.
const CUSTOM_BASE: u8 = 64;

impl MessageKind {
    /// The stable one-byte code used in traces.
    pub fn code(self) -> u8 {
        match self {
            MessageKind::Action => 0,
            MessageKind::DeviceAction => 1,
            MessageKind::StateUpdate => 2,
            MessageKind::NetworkState => 3,
            MessageKind::P2pTrade => 4,
            MessageKind::Info => 5,
            MessageKind::Custom(n) => CUSTOM_BASE.saturating_add(n),
        }
    }

    /// The kind for a trace code, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => MessageKind::Action,
            1 => MessageKind::DeviceAction,
            2 => MessageKind::StateUpdate,
            3 => MessageKind::NetworkState,
            4 => MessageKind::P2pTrade,
            5 => MessageKind::Info,
            c if c >= CUSTOM_BASE => MessageKind::Custom(c - CUSTOM_BASE),
            _ => return None,
        })
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageKind::Action => f.write_str("action"),
            MessageKind::DeviceAction => f.write_str("device_action"),
            MessageKind::StateUpdate => f.write_str("state_update"),
            MessageKind::NetworkState => f.write_str("network_state"),
            MessageKind::P2pTrade => f.write_str("p2p_trade"),
            MessageKind::Info => f.write_str("info"),
            MessageKind::Custom(n) => write!(f, "custom:{n}"),
        }
    }
}

impl FromStr for MessageKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "action" => MessageKind::Action,
            "device_action" => MessageKind::DeviceAction,
            "state_update" => MessageKind::StateUpdate,
            "network_state" => MessageKind::NetworkState,
            "p2p_trade" => MessageKind::P2pTrade,
            "info" => MessageKind::Info,
            other => match other.strip_prefix("custom:").map(str::parse::<u8>) {
                Some(Ok(n)) if n < 192 => MessageKind::Custom(n),
                _ => {
                    return Err(format!(
                        "unknown message kind {other:?}; expected action, device_action, \
                         state_update, network_state, p2p_trade, info or custom:N (N < 192)"
                    ));
                }
            },
        })
    }
}

impl Serialize for MessageKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How many floats a payload holds inline, without a heap allocation.
pub const INLINE_VALUES: usize = 4;

/// The body of a message. Cloning is O(1) in every variant.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Payload {
    /// No body.
    #[default]
    Empty,
    /// Up to [`INLINE_VALUES`] floats stored inline (no allocation).
    Inline {
        /// How many of `values` are used.
        len: u8,
        /// The values; entries at `len..` are zero.
        values: [f64; INLINE_VALUES],
    },
    /// Any number of floats, shared by reference count.
    Floats(Arc<[f64]>),
    /// Opaque bytes, shared by reference count.
    Bytes(Arc<[u8]>),
    /// Text, shared by reference count.
    Text(Arc<str>),
}

impl Payload {
    /// A numeric payload: inline when it fits, shared otherwise.
    pub fn values(vs: &[f64]) -> Payload {
        if vs.len() <= INLINE_VALUES {
            let mut values = [0.0; INLINE_VALUES];
            values[..vs.len()].copy_from_slice(vs);
            Payload::Inline {
                len: vs.len() as u8,
                values,
            }
        } else {
            Payload::Floats(vs.into())
        }
    }

    /// The floats of a numeric payload; empty for other payloads.
    pub fn as_f64s(&self) -> &[f64] {
        match self {
            Payload::Inline { len, values } => &values[..usize::from(*len)],
            Payload::Floats(v) => v,
            _ => &[],
        }
    }

    /// The text of a text payload.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Payload::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The bytes of a byte payload.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Payload::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Payload {
        Payload::Text(s.into())
    }
}

/// One message as published by an agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Unique within the run.
    pub id: MsgId,
    /// Index of the environment (simulation) it belongs to.
    pub env: u32,
    /// The channel it was published on.
    pub channel: ChannelId,
    /// The publishing agent.
    pub sender: AgentId,
    /// Who it is for.
    pub recipient: Recipient,
    /// What it means.
    pub kind: MessageKind,
    /// Virtual time at which it was published.
    pub sent: SimTime,
    /// The body; shared, never deep-copied on fan-out.
    pub payload: Payload,
}

/// The standard channel names of a grid environment. One helper builds them
/// all so every agent agrees on the spelling.
pub mod channels {
    /// The name prefix of environment `env`: `env0`, `env1`, ...
    pub fn env_prefix(env: u32) -> String {
        format!("env{env}")
    }
    /// `{env}/actions`: the environment's broadcast actions.
    pub fn actions(env: &str) -> String {
        format!("{env}/actions")
    }
    /// `{env}/state_updates`: device state reports.
    pub fn state_updates(env: &str) -> String {
        format!("{env}/state_updates")
    }
    /// `{env}/network_state`: power-flow results.
    pub fn network_state(env: &str) -> String {
        format!("{env}/network_state")
    }
    /// `{env}/agent/{id}/device_actions`: a grid agent's setpoints for its devices.
    pub fn device_actions(env: &str, agent: &str) -> String {
        format!("{env}/agent/{agent}/device_actions")
    }
    /// `{env}/p2p_trades`: peer-to-peer trades between grid agents.
    pub fn p2p_trades(env: &str) -> String {
        format!("{env}/p2p_trades")
    }
    /// `{env}/pair/{from}/{to}`: a private channel for one directed agent pair.
    pub fn pair(env: &str, from: &str, to: &str) -> String {
        format!("{env}/pair/{from}/{to}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_codes_and_names_round_trip() {
        let kinds = [
            MessageKind::Action,
            MessageKind::DeviceAction,
            MessageKind::StateUpdate,
            MessageKind::NetworkState,
            MessageKind::P2pTrade,
            MessageKind::Info,
            MessageKind::Custom(0),
            MessageKind::Custom(191),
        ];
        for k in kinds {
            assert_eq!(MessageKind::from_code(k.code()), Some(k));
            assert_eq!(k.to_string().parse::<MessageKind>(), Ok(k));
        }
        assert!("custom:192".parse::<MessageKind>().is_err());
        assert!("bogus".parse::<MessageKind>().is_err());
        assert_eq!(MessageKind::from_code(17), None);
    }

    #[test]
    fn payload_inline_and_shared() {
        let small = Payload::values(&[1.0, 2.0, 3.0]);
        assert!(matches!(small, Payload::Inline { len: 3, .. }));
        assert_eq!(small.as_f64s(), &[1.0, 2.0, 3.0]);
        let big = Payload::values(&[0.5; 10]);
        let Payload::Floats(a) = &big else {
            panic!("10 values should be shared")
        };
        let copy = big.clone();
        let Payload::Floats(b) = &copy else {
            unreachable!()
        };
        assert!(Arc::ptr_eq(a, b), "clone must share, not copy");
        assert_eq!(Payload::from("hi").as_text(), Some("hi"));
    }

    #[test]
    fn channel_names_follow_the_convention() {
        let env = channels::env_prefix(3);
        assert_eq!(channels::actions(&env), "env3/actions");
        assert_eq!(channels::state_updates(&env), "env3/state_updates");
        assert_eq!(channels::network_state(&env), "env3/network_state");
        assert_eq!(
            channels::device_actions(&env, "mg1"),
            "env3/agent/mg1/device_actions"
        );
        assert_eq!(channels::p2p_trades(&env), "env3/p2p_trades");
        assert_eq!(channels::pair(&env, "a", "b"), "env3/pair/a/b");
    }
}
