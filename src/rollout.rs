//! Many runs at once: batches of seeded environments over sweeps of
//! scenario values, and step-driven vector environments for reinforcement
//! learning, run in parallel with results identical for any number of
//! threads.

pub mod batch;
pub mod table;
