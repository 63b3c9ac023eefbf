//! The bounds of a run ([`Limits`]) and the errors that stop one
//! ([`SimError`]).

use serde::{Deserialize, Serialize};

use crate::time::{SimDuration, SimTime};
use crate::trace::TraceError;
use crate::validate::Validator;

/// Bounds on a run (the `[limits]` table). Exceeding one stops the run with
/// [`SimError::LimitExceeded`], which names the limit and the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most events the loop may process. Default 100 million.
    #[serde(default = "Limits::default_max_events")]
    pub max_events: u64,
    /// Latest virtual time an event may be processed at. Default 30 days.
    #[serde(default = "Limits::default_max_sim_time")]
    pub max_sim_time: SimDuration,
    /// Most message copies on the network at once. Default 1 million.
    #[serde(default = "Limits::default_max_in_flight")]
    pub max_in_flight: u64,
    /// Most trace records. Default 200 million.
    #[serde(default = "Limits::default_max_trace_records")]
    pub max_trace_records: u64,
}

impl Limits {
    fn default_max_events() -> u64 {
        100_000_000
    }
    fn default_max_sim_time() -> SimDuration {
        SimDuration::from_secs(30 * 24 * 3600)
    }
    fn default_max_in_flight() -> u64 {
        1_000_000
    }
    fn default_max_trace_records() -> u64 {
        200_000_000
    }

    /// Checks the bounds (keys relative to the `[limits]` table): each must
    /// be at least 1.
    pub fn validate(&self, v: &mut Validator) {
        v.at_least_one("max_events", self.max_events);
        v.at_least_one("max_sim_time", self.max_sim_time.as_nanos());
        v.at_least_one("max_in_flight", self.max_in_flight);
        v.at_least_one("max_trace_records", self.max_trace_records);
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: Self::default_max_events(),
            max_sim_time: Self::default_max_sim_time(),
            max_in_flight: Self::default_max_in_flight(),
            max_trace_records: Self::default_max_trace_records(),
        }
    }
}

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A bound in [`Limits`] was exceeded. Raise it (scenario `[limits]`) if
    /// the run is meant to be that large, or look for a runaway agent.
    #[error(
        "limit {limit} = {max} exceeded at {time} (seed {seed}, env {env}); \
         raise [limits] {limit} if the run is meant to be this large"
    )]
    LimitExceeded {
        /// The limit's name, as in the scenario's `[limits]` table.
        limit: &'static str,
        /// Its value.
        max: u64,
        /// The run's seed.
        seed: u64,
        /// The environment index.
        env: u32,
        /// Virtual time when it was exceeded.
        time: SimTime,
    },
    /// Writing the trace failed.
    #[error("trace: {0}")]
    Trace(#[from] TraceError),
    /// The run was already finished.
    #[error("the simulation has already finished")]
    Finished,
    /// An earlier error stopped the run; it cannot go on.
    #[error("the run already stopped: {0}")]
    Stopped(String),
}
