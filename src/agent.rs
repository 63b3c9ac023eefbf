//! Agents: the [`Agent`] trait and the [`Context`] through which agents act
//! (both defined by the simulation, which implements the context, and
//! re-exported here), and the general-purpose agents a scenario file can
//! instantiate without Rust code ([`builtin`]).

pub mod builtin;

pub use crate::sim::{Agent, Context, TimerId};
