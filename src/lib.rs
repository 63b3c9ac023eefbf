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
//! with [`scenario::Scenario`]. See `ARCHITECTURE.md` for the map.

pub mod agent;
pub mod broker;
pub mod grid;
pub mod message;
pub mod metrics;
pub mod network;
pub mod queue;
pub mod rng;
pub mod scenario;
pub mod sim;
mod tagged;
pub mod time;
pub mod trace;

pub use agent::{Agent, Context, TimerId};
pub use broker::{BrokerConfig, Delivery};
pub use message::{AgentId, ChannelId, Message, MessageKind, MsgId, Payload, Recipient};
pub use metrics::{Metrics, Summary};
pub use network::{Latency, LinkModel, LinkOverride, Ordering};
pub use rng::RngStream;
pub use scenario::{Scenario, ScenarioError};
pub use sim::{BuildError, Limits, SimBuilder, SimError, Simulation};
pub use time::{SimDuration, SimTime};
pub use trace::{Digest, EventKind, Reason, Record};

/// The README's Rust examples, compiled and run by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
