//! The bounds of a run ([`Limits`]) and the errors that stop one
//! ([`SimError`]).

use serde::{Deserialize, Serialize};

use crate::queue::{MAX_PENDING, MAX_PUSHES};
use crate::time::{SimDuration, SimTime};
use crate::trace::TraceError;
use crate::validate::Validator;

/// Bounds on a run (the `[limits]` table). Exceeding one stops the run with
/// [`SimError::LimitExceeded`], which names the limit and the seed.
///
/// The defaults are chosen so that a mistaken scenario (a duration in
/// hours instead of seconds, a publisher a thousand times too fast) stops
/// within seconds of wall time with a message that names the limit to
/// raise, while every shipped scenario runs well inside them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Most events the loop may process. Default 20 million (a few seconds
    /// of wall time).
    #[serde(default = "Limits::default_max_events")]
    pub max_events: u64,
    /// Latest virtual time an event may be processed at; a scenario whose
    /// `duration` is longer is refused before it runs. Default 7 days.
    #[serde(default = "Limits::default_max_sim_time")]
    pub max_sim_time: SimDuration,
    /// Most message copies on the network at once. Default 1 million.
    #[serde(default = "Limits::default_max_in_flight")]
    pub max_in_flight: u64,
    /// Most payload bytes held by messages on the network at once (a
    /// message holds its payload until its last copy arrives; inline
    /// values count 0). Default 256 MiB.
    #[serde(default = "Limits::default_max_in_flight_bytes")]
    pub max_in_flight_bytes: u64,
    /// Most events pending in the queue at once (copies in flight, timers,
    /// starts). Default 4 million; at most 16 777 216.
    #[serde(default = "Limits::default_max_pending_events")]
    pub max_pending_events: u64,
    /// Most copies waiting in all pull buffers of the run together.
    /// Default 1 million.
    #[serde(default = "Limits::default_max_buffered")]
    pub max_buffered: u64,
    /// Most trace records. Default 30 million (about 200 MB of trace file).
    #[serde(default = "Limits::default_max_trace_records")]
    pub max_trace_records: u64,
    /// Most agents in one simulation, checked before any is created (a
    /// scenario's `count` expansion included). Default 100 000.
    #[serde(default = "Limits::default_max_agents")]
    pub max_agents: u64,
}

impl Limits {
    fn default_max_events() -> u64 {
        20_000_000
    }
    fn default_max_sim_time() -> SimDuration {
        SimDuration::from_secs(7 * 24 * 3600)
    }
    fn default_max_in_flight() -> u64 {
        1_000_000
    }
    fn default_max_in_flight_bytes() -> u64 {
        256 << 20
    }
    fn default_max_pending_events() -> u64 {
        4_000_000
    }
    fn default_max_buffered() -> u64 {
        1_000_000
    }
    fn default_max_trace_records() -> u64 {
        30_000_000
    }
    fn default_max_agents() -> u64 {
        100_000
    }

    /// Checks the bounds (keys relative to the `[limits]` table): each must
    /// be at least 1, and `max_pending_events` at most what the event queue
    /// can hold.
    pub fn validate(&self, v: &mut Validator) {
        if v.at_least_one("max_events", self.max_events) {
            v.check(self.max_events <= MAX_EVENTS, "max_events", || {
                format!("max_events must be at most {MAX_EVENTS}")
            });
        }
        v.at_least_one("max_sim_time", self.max_sim_time.as_nanos());
        v.at_least_one("max_in_flight", self.max_in_flight);
        v.at_least_one("max_in_flight_bytes", self.max_in_flight_bytes);
        v.at_least_one("max_pending_events", self.max_pending_events);
        v.check(
            self.max_pending_events <= MAX_PENDING as u64,
            "max_pending_events",
            || format!("max_pending_events must be at most {MAX_PENDING}"),
        );
        v.at_least_one("max_buffered", self.max_buffered);
        v.at_least_one("max_trace_records", self.max_trace_records);
        v.at_least_one("max_agents", self.max_agents);
        v.check(self.max_agents <= MAX_AGENTS, "max_agents", || {
            format!("max_agents must be at most {MAX_AGENTS}")
        });
    }
}

/// The largest `max_events` accepted: every event pushed into the queue
/// over a run (at most the events processed plus those pending) must stay
/// within the queue's lifetime count.
pub const MAX_EVENTS: u64 = MAX_PUSHES - MAX_PENDING as u64;

/// The most agents any simulation can have (agent ids are 32-bit, and the
/// trace reserves two node codes).
pub const MAX_AGENTS: u64 = (u32::MAX - 2) as u64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events: Self::default_max_events(),
            max_sim_time: Self::default_max_sim_time(),
            max_in_flight: Self::default_max_in_flight(),
            max_in_flight_bytes: Self::default_max_in_flight_bytes(),
            max_pending_events: Self::default_max_pending_events(),
            max_buffered: Self::default_max_buffered(),
            max_trace_records: Self::default_max_trace_records(),
            max_agents: Self::default_max_agents(),
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
