//! Many runs at once: batches of seeded environments over sweeps of
//! scenario values, and step-driven vector environments for reinforcement
//! learning, run in parallel with results identical for any number of
//! threads.
//!
//! - [`batch`]: [`Batch`](batch::Batch), every (scenario, variant,
//!   environment) of a study as one job on a thread pool, rows back in job
//!   order; sweeps and shards.
//! - [`table`]: the results CSV, its per-variant statistics, and the merge
//!   of shard CSVs.
//! - [`vecenv`]: [`VecEnv`](vecenv::VecEnv), a vector of grid simulations
//!   stepped one control step at a time with external actions for the grid
//!   agents; flat observation, action and reward arrays in a fixed agent
//!   order, explicit spaces, autoreset. Shaped for a Gymnasium vector
//!   environment or a PettingZoo `ParallelEnv` binding.

pub mod batch;
pub mod table;
pub mod vecenv;
