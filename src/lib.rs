//! busbar: a deterministic discrete-event simulator of the message bus of
//! distributed power-grid control.
//!
//! Agents (an environment, grid agents, devices, or your own) exchange
//! messages through a simulated broker over a simulated network with
//! configurable latency, loss and ordering. Time is virtual and every run is
//! a pure function of (scenario, seed): it records a trace whose digest pins
//! the run bit for bit, and which can be replayed and exported.
//!
//! Start with [`SimBuilder`] and the [`Agent`] trait, or load a TOML scenario
//! with [`Scenario`]. `ARCHITECTURE.md` in the repository is the map of the
//! code; modules are listed here from the bottom layer up (each uses only
//! those above it in this list).
#![warn(missing_docs)]

pub mod time;
pub mod files;
pub mod rng;
pub mod validate;
mod tagged;
pub mod message;
pub(crate) mod queue;
pub mod trace;
pub mod metrics;
pub mod network;
pub mod broker;
pub mod sim;
pub mod agent;
pub mod grid;
pub mod scenario;
pub mod replay;
pub mod check;
pub mod explore;
#[cfg(feature = "testing")]
pub mod testing;
pub mod rollout;
pub mod report;

pub use broker::{
    BrokerConfig, ChannelSpec, DeadLetter, Delivery, GroupError, GroupSpec, Qos, SessionConfig,
    Strategy,
};
pub use message::{AgentId, ChannelId, KindNames, Message, MessageKind, MsgId, Payload, Recipient};
pub use metrics::{
    Metrics, Outcomes, QosMetrics, QosSummary, SessionMetrics, SessionSummary, Summary,
};
pub use network::{
    FaultSpec, Latency, LinkModel, LinkPatch, LinkSpec, Loss, NetworkSpec, Ordering,
};
pub use rng::RngStream;
pub use scenario::{Scenario, ScenarioError};
pub use sim::{Agent, Context, Limits, SimBuilder, SimError, Simulation, TimerId};
pub use time::{SimDuration, SimTime};
pub use trace::{Digest, EventKind, Reason, Record};
pub use validate::{Invalid, Issue, KeyPath};

/// The README's Rust examples, compiled and run by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
