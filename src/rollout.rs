//! Many runs at once: batches of seeded environments over sweeps of
//! scenario values, and step-driven vector environments for reinforcement
//! learning, run in parallel with results identical for any number of
//! threads.
//!
//! - [`vecenv`]: [`VecEnv`](vecenv::VecEnv), a vector of grid simulations
//!   stepped one control step at a time with external actions for the grid
//!   agents; flat observation, action and reward arrays in a fixed agent
//!   order, explicit spaces, autoreset. Shaped for a Gymnasium vector
//!   environment or a PettingZoo `ParallelEnv` binding.

pub mod vecenv;
