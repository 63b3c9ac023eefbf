//! Messages, their ids, recipients, kinds and payloads.
//!
//! A [`Message`] is plain data. Its [`Payload`] clones in O(1): small numeric
//! payloads (up to [`INLINE_VALUES`] floats, which covers state updates and
//! setpoints) are stored inline, larger ones behind an `Arc`, so fanning a
//! message out to many subscribers never deep-copies its payload.

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

/// What a message means: a one-byte code that every trace record carries.
///
/// The engine gives meaning to no kind. It names two families of its own,
/// [`MessageKind::INFO`] and the user kinds [`MessageKind::custom`]; a
/// protocol on top defines its own codes as constants (the grid's are in
/// `grid::protocol`) and names them in a [`KindNames`] table, which the
/// simulation writes into the trace footer so that exports print names
/// without knowing the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageKind(u8);

/// First code of the user kinds: `custom(n)` is `CUSTOM_BASE + n`. Codes
/// below it are for protocols (the grid uses 0 to 3) and the engine (`INFO`
/// is 5).
pub const CUSTOM_BASE: u8 = 64;

impl MessageKind {
    /// Anything informational (code 5).
    pub const INFO: MessageKind = MessageKind(5);

    /// The kind with this code.
    pub const fn from_code(code: u8) -> MessageKind {
        MessageKind(code)
    }

    /// User kind `n`, for `n < 192` (code `64 + n`); `None` above.
    pub const fn custom(n: u8) -> Option<MessageKind> {
        if n < 192 {
            Some(MessageKind(CUSTOM_BASE + n))
        } else {
            None
        }
    }

    /// The one-byte code written in traces.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// The name of a code that no table names: `custom:N` for user kinds,
    /// `kind:N` otherwise.
    pub fn fallback_name(code: u8) -> String {
        if code >= CUSTOM_BASE {
            format!("custom:{}", code - CUSTOM_BASE)
        } else {
            format!("kind:{code}")
        }
    }
}

/// Names of message kinds: `info` and `custom:N` always, plus the names a
/// protocol registers ([`KindNames::with`]). Parsing and printing go through
/// the table, so a name round-trips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindNames {
    names: Vec<(u8, String)>,
}

impl Default for KindNames {
    fn default() -> Self {
        KindNames {
            names: vec![(MessageKind::INFO.0, "info".into())],
        }
    }
}

impl KindNames {
    /// The engine's own names: `info` (and `custom:N`, which need no entry).
    pub fn new() -> KindNames {
        KindNames::default()
    }

    /// Adds (or renames) a kind.
    pub fn with(mut self, kind: MessageKind, name: &str) -> KindNames {
        match self.names.iter_mut().find(|(c, _)| *c == kind.0) {
            Some(entry) => entry.1 = name.to_string(),
            None => self.names.push((kind.0, name.to_string())),
        }
        self
    }

    /// The name of `kind`.
    pub fn name(&self, kind: MessageKind) -> String {
        self.names
            .iter()
            .find(|(c, _)| *c == kind.0)
            .map_or_else(|| MessageKind::fallback_name(kind.0), |(_, n)| n.clone())
    }

    /// The kind called `name`: a registered name or `custom:N` (N < 192).
    pub fn parse(&self, name: &str) -> Result<MessageKind, String> {
        if let Some((c, _)) = self.names.iter().find(|(_, n)| n == name) {
            return Ok(MessageKind(*c));
        }
        if let Some(Ok(n)) = name.strip_prefix("custom:").map(str::parse::<u8>)
            && let Some(k) = MessageKind::custom(n)
        {
            return Ok(k);
        }
        let known: Vec<&str> = self.names.iter().map(|(_, n)| n.as_str()).collect();
        Err(format!(
            "unknown message kind {name:?}; expected {} or custom:N (N < 192)",
            known.join(", ")
        ))
    }

    /// The table as (code, name) pairs, in registration order (the trace
    /// footer's form).
    pub fn table(&self) -> &[(u8, String)] {
        &self.names
    }
}

/// The name prefix of environment `env`: `env0`, `env1`, ... Channel names
/// start with it (`{env}/...`) so that environments never share a channel.
pub fn env_prefix(env: u32) -> String {
    format!("env{env}")
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
    /// The payload's size on the wire in bytes: 8 per float, the bytes or
    /// the UTF-8 text as they are, 0 for no body. A link with a rate adds
    /// its `header_bytes` to this.
    #[inline]
    pub fn wire_bytes(&self) -> u64 {
        match self {
            Payload::Empty => 0,
            Payload::Inline { len, .. } => 8 * u64::from(*len),
            Payload::Floats(v) => 8 * v.len() as u64,
            Payload::Bytes(b) => b.len() as u64,
            Payload::Text(t) => t.len() as u64,
        }
    }

    /// Bytes the payload holds outside the message (0 for inline values):
    /// what a message in flight keeps alive.
    pub fn heap_bytes(&self) -> u64 {
        match self {
            Payload::Empty | Payload::Inline { .. } => 0,
            Payload::Floats(v) => 8 * v.len() as u64,
            Payload::Bytes(b) => b.len() as u64,
            Payload::Text(t) => t.len() as u64,
        }
    }

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
    /// The request this message answers, if it is a reply
    /// ([`Context::reply`](crate::Context::reply)).
    pub correlation: Option<MsgId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_through_the_table() {
        let names = KindNames::new().with(MessageKind::from_code(2), "state_update");
        for k in [
            MessageKind::INFO,
            MessageKind::from_code(2),
            MessageKind::custom(0).unwrap(),
            MessageKind::custom(191).unwrap(),
        ] {
            assert_eq!(names.parse(&names.name(k)), Ok(k));
        }
        assert_eq!(MessageKind::custom(192), None);
        assert!(names.parse("custom:192").is_err());
        let err = names.parse("bogus").unwrap_err();
        assert!(err.contains("info, state_update"), "{err}");
        assert_eq!(names.name(MessageKind::from_code(17)), "kind:17");
        assert_eq!(names.table().len(), 2);
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
}
