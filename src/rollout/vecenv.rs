//! A step-driven vector environment for reinforcement learning: `num_envs`
//! simulations of one grid scenario, advanced one control step at a time,
//! in parallel, with the grid agents' setpoints supplied from outside.
//!
//! Each grid agent (microgrid) is an RL agent. Every [`VecEnv::step`] gives
//! each of them the observation it *actually has* at the control point,
//! through the simulated network: the newest network state it received
//! and how old it is, and its devices' newest reports and how old they are.
//! Its actions still travel as `device_action` messages over the simulated
//! network, so delays and losses apply to them as to the built-in
//! controller's (see [`GridAgent`] for external control).
//!
//! Everything is flat `f64` (or `bool`) arrays in a fixed order, so that a
//! Python binding can wrap it as a Gymnasium vector environment or a
//! PettingZoo `ParallelEnv` without copying structure:
//!
//! - **agents**: the grid agents in scenario order ([`VecEnv::agents`]),
//!   after `count` expansion; the same for every environment;
//! - **actions**: `num_envs × n_agents × act_dim` values, env-major
//!   (`actions[(e·n_agents + a)·act_dim + j]`);
//! - **observations**: `num_envs × n_agents × obs_dim`, env-major likewise;
//! - **rewards**: `num_envs × n_agents`; **terminated**, **truncated**,
//!   **infos**: one per environment (every agent of an environment ends
//!   together).
//!
//! # Actions
//!
//! `act_dim` is the largest device count of any microgrid. Value `j` of an
//! agent's action is the setpoint of its `j`-th device (file order), as the
//! device kind reads it:
//!
//! | device | value | bounds in [`VecEnv::action_space`] |
//! |---|---|---|
//! | storage | MW, positive = discharge (delivered to the grid) | `±p_max_mw` |
//! | PV | curtailment fraction | `[0, 1]` |
//! | load | ignored (loads are not controlled) | `[-1, 1]` |
//! | padding (`j` ≥ the agent's device count) | ignored | `[-1, 1]` |
//!
//! Values are not clipped here: the devices clamp them as they clamp the
//! built-in policy's (storage to `±p_max_mw` and then to what its SOC
//! allows over the step, PV to `[0, 1]`). Ignored slots have the finite,
//! non-empty bounds `[-1, 1]` so that libraries that rescale actions work.
//! **A NaN value means "the built-in policy decides"** for that device,
//! from what its grid agent has received: all-NaN actions give the
//! built-in controller's setpoints (on deterministic links exactly the
//! plain run; see *Costs*), and partial control is a mix.
//!
//! # Observations
//!
//! `obs_dim = OBS_HEADER + OBS_PER_DEVICE · act_dim` = `11 + 5·act_dim`
//! values per agent. **NaN means "not received yet"** (and marks padded
//! device slots); every other value lies within
//! [`VecEnv::observation_space`].
//!
//! | index | name | meaning |
//! |---|---|---|
//! | 0 | `hour` | hour of day at the control point (`start_hour` + time, mod 24) |
//! | 1 | `price` | price of the newest action received, $/MWh |
//! | 2 | `price_step` | the step `k` of that action |
//! | 3 | `converged` | newest network state received: 1 if this microgrid's power flow converged, else 0 |
//! | 4 | `v_min_pu` | its lowest bus voltage, pu |
//! | 5 | `v_max_pu` | its highest bus voltage, pu |
//! | 6 | `loading_max` | its highest line loading, fraction of the rating |
//! | 7 | `p_import_mw` | power imported at its point of common coupling, MW |
//! | 8 | `net_load_mw` | its net load without storage, MW |
//! | 9 | `state_step` | the step `k` of that network state |
//! | 10 | `state_age_s` | its age: control-point time − the time the environment sent it, s |
//! | 11 + 5j | `{dev}.p_mw` | newest report of device `j`: P, MW (injection) |
//! | 12 + 5j | `{dev}.q_mvar` | Q, MVAr |
//! | 13 + 5j | `{dev}.soc` | SOC (0 for devices without storage) |
//! | 14 + 5j | `{dev}.step` | the step `k` of that report |
//! | 15 + 5j | `{dev}.age_s` | its age: control-point time − the time the device sent it, s |
//!
//! Values 4–8 are NaN when the power flow could not give them (as on the
//! wire). "Newest" is by step: a copy about an older step than the one held
//! (after reordering) is ignored. [`VecEnv::observation_labels`] gives the
//! names. The current step's price is not in the observation: the action
//! carrying it is sent at the control point and has not arrived; the
//! tariff is a function of `hour` ([`price_at`]).
//!
//! # Timing
//!
//! Let `step` and `deadline` be the scenario's `[grid]` settings.
//!
//! - **Control point `k`** is time `k·step`, when the environment starts
//!   step `k`. The observation of control point `k` holds exactly the
//!   messages that arrived **strictly before** `k·step`. The actions given
//!   with that observation become step `k`'s setpoints: the grid agent
//!   sends them when step `k`'s action message reaches it (if it is lost,
//!   the microgrid sends no setpoints that step, as with the built-in
//!   controller). Ages are measured from `k·step`.
//! - [`VecEnv::reset`] builds the simulations and returns the observation
//!   of control point 0 (nothing has arrived: all NaN but `hour`).
//! - [`VecEnv::step`] with step `k`'s actions runs each simulation through
//!   step `k`'s deadline and up to control point `k + 1`, and returns that
//!   observation and step `k`'s reward.
//! - **Reward** of step `k`, per agent, from what the environment measured
//!   at step `k`'s deadline (`k·step + deadline`, always ≤ `(k+1)·step`),
//!   with [`RewardParams`] `p`:
//!
//!   ```text
//!   r = − price_k · E⁺ + p.export_credit · price_k · E⁻
//!       − p.voltage_violation · [converged and a bus voltage outside [v_min_pu, v_max_pu]]
//!       − p.non_converged · [not converged]
//!       − p.deadline_miss · (its devices with no state update for step k at the deadline)
//!   ```
//!
//!   where `price_k` is step `k`'s tariff ($/MWh), `E⁺` / `E⁻` the energy
//!   imported / exported at its point of common coupling over the step
//!   (MWh: the slack power at the deadline held for one step; 0 if the
//!   power flow did not converge) and the band is the scenario's
//!   `[grid.policy]`. The environment's own counters (`grid.*` outcomes)
//!   use the same definitions.
//! - **Episodes** last `episode_steps = ⌊duration / step⌋` steps: the last
//!   [`VecEnv::step`] of an episode returns control point
//!   `episode_steps`, at most the scenario's duration, with `truncated`.
//!   `terminated` is always false (the grid has no terminal state). A
//!   simulation stopped by a `[limits]` limit ends its episode early:
//!   `truncated`, the error text in [`EnvInfo::error`], the observation as
//!   it was when it stopped, and NaN rewards if the step's deadline was not
//!   reached.
//!
//! # Seeds and autoreset
//!
//! `reset(seed)` gives environment `i` the seed `seed + i` and the
//! environment index `i` (channel prefix `env{i}`; both key its random
//! streams). When an episode of environment `i` ends, the same `step` call
//! resets it: episode `e` (counted from 0 since `reset`) runs with seed
//! `seed + i + num_envs·e` (wrapping), still environment index `i`, so no
//! two episodes of one vector environment share a seed. [`StepResult::obs`]
//! then holds the final observation of the finished episode and
//! [`StepResult::next_obs`] the first observation of the new one; for an
//! environment that goes on, `next_obs` equals `obs`. Act on `next_obs`;
//! bootstrap the final value from `obs`.
//!
//! # Determinism
//!
//! Each environment is one [`Simulation`], which shares nothing, run on a
//! private rayon pool; results are written to fixed positions. The same
//! scenario, seed and actions give the same observations, rewards and
//! flags, bit for bit, for any number of threads.
//!
//! # Costs
//!
//! Under external control every grid agent also subscribes to its
//! environment's state updates, so each device report is delivered to
//! every grid agent as well as to the environment: `N·D` more copies per
//! step with `N` microgrids and `D` devices. These copies draw from the
//! grid agents' downlink random streams, so on links with random latency
//! or loss a run under external control (even with all-NaN actions) is not
//! the plain run of the same seed; on deterministic links it is.

mod space;

use rayon::prelude::*;

pub use space::*;
use space::{DEVICE_LABELS, HEADER_LABELS, act_space, obs_space};

use crate::grid::device::DeviceSpec;
use crate::grid::prices::price_at;
use crate::grid::protocol::NETWORK_STATE_STRIDE;
use crate::grid::{Environment, GridAgent, Stamp};
use crate::message::AgentId;
use crate::scenario::Scenario;
use crate::sim::Simulation;
use crate::time::{SimDuration, SimTime};
use crate::validate::Invalid;

/// The reward's penalties, in $ (the unit of the energy cost). See the
/// module docs for the formula.
#[derive(Clone, Debug, PartialEq)]
pub struct RewardParams {
    /// Per step whose power flow converged with a bus voltage outside the
    /// policy's band. Default 1.
    pub voltage_violation: f64,
    /// Per step whose power flow did not converge. Default 10.
    pub non_converged: f64,
    /// Per device with no state update for the step at its deadline.
    /// Default 0.1.
    pub deadline_miss: f64,
    /// Fraction of the price paid for exported energy. Default 0.
    pub export_credit: f64,
}

impl Default for RewardParams {
    fn default() -> Self {
        RewardParams {
            voltage_violation: 1.0,
            non_converged: 10.0,
            deadline_miss: 0.1,
            export_credit: 0.0,
        }
    }
}

/// What one environment reports with each observation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EnvInfo {
    /// The seed of the episode the observation in [`StepResult::obs`]
    /// belongs to.
    pub seed: u64,
    /// That episode's number, from 0 since [`VecEnv::reset`].
    pub episode: u64,
    /// The control point `k` of the observation.
    pub step: u64,
    /// Its time, `k·step`, in seconds.
    pub time_s: f64,
    /// Why the simulation stopped, if a limit stopped it.
    pub error: Option<String>,
}

/// The result of [`VecEnv::reset`] or [`VecEnv::step`], as flat arrays
/// (layouts in the module docs).
#[derive(Clone, Debug, Default)]
pub struct StepResult {
    /// Observations, `num_envs × n_agents × obs_dim`: for an environment
    /// whose episode ended, its final observation.
    pub obs: Vec<f64>,
    /// The observations the next actions respond to: `obs`, except for an
    /// environment reset in this call, whose new episode's first
    /// observation is here.
    pub next_obs: Vec<f64>,
    /// Rewards of the step, `num_envs × n_agents` (0 after `reset`).
    pub rewards: Vec<f64>,
    /// Always false: the grid has no terminal state.
    pub terminated: Vec<bool>,
    /// The episode ended (its duration reached, or a limit stopped it).
    pub truncated: Vec<bool>,
    /// One per environment.
    pub infos: Vec<EnvInfo>,
    n_agents: usize,
    obs_dim: usize,
}

impl StepResult {
    fn new(num_envs: usize, n_agents: usize, obs_dim: usize) -> StepResult {
        StepResult {
            obs: vec![f64::NAN; num_envs * n_agents * obs_dim],
            next_obs: vec![f64::NAN; num_envs * n_agents * obs_dim],
            rewards: vec![0.0; num_envs * n_agents],
            terminated: vec![false; num_envs],
            truncated: vec![false; num_envs],
            infos: vec![EnvInfo::default(); num_envs],
            n_agents,
            obs_dim,
        }
    }

    /// How many environments.
    pub fn num_envs(&self) -> usize {
        self.truncated.len()
    }

    /// How many agents per environment.
    pub fn num_agents(&self) -> usize {
        self.n_agents
    }

    /// Values per agent observation.
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Agent `agent`'s observation in environment `env` (from `obs`).
    pub fn agent_obs(&self, env: usize, agent: usize) -> &[f64] {
        let at = (env * self.n_agents + agent) * self.obs_dim;
        &self.obs[at..at + self.obs_dim]
    }

    /// Agent `agent`'s next observation in environment `env`.
    pub fn agent_next_obs(&self, env: usize, agent: usize) -> &[f64] {
        let at = (env * self.n_agents + agent) * self.obs_dim;
        &self.next_obs[at..at + self.obs_dim]
    }

    /// Agent `agent`'s reward in environment `env`.
    pub fn agent_reward(&self, env: usize, agent: usize) -> f64 {
        self.rewards[env * self.n_agents + agent]
    }
}

/// Why a vector environment cannot be made or stepped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VecEnvError {
    /// The scenario has no grid agents to control.
    #[error(
        "the scenario has no [[microgrid]]: a vector environment controls the grid agents of microgrids"
    )]
    NoMicrogrids,
    /// `num_envs` is 0 or does not fit the environment index (`u32`).
    #[error("num_envs must be in 1..=4294967296, got {0}")]
    NumEnvs(usize),
    /// `threads` is `Some(0)`.
    #[error("threads must be at least 1 (or None for one per core)")]
    NoThreads,
    /// The scenario's duration is shorter than one step.
    #[error(
        "the scenario lasts {duration}, less than one grid step ({step}): an episode needs at least one step"
    )]
    TooShort {
        /// `[simulation] duration`.
        duration: SimDuration,
        /// `[grid] step`.
        step: SimDuration,
    },
    /// The thread pool could not be started.
    #[error("cannot start the thread pool: {0}")]
    ThreadPool(String),
    /// `step` got the wrong number of action values.
    #[error("expected {expected} action values (num_envs × agents × act_dim), got {got}")]
    ActionLength {
        /// `num_envs × n_agents × act_dim`.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// `step` was called before `reset`.
    #[error("step before reset: call reset(seed) first")]
    NotReset,
    /// A simulation could not be built (should not happen for a validated
    /// scenario).
    #[error("cannot build environment {env} with seed {seed}: {source}")]
    Build {
        /// The environment index.
        env: usize,
        /// The seed.
        seed: u64,
        /// Every problem.
        source: Invalid,
    },
}

/// What every environment shares: the layout and the grid's timing.
struct Layout {
    agents: Vec<String>,
    /// Devices of each agent.
    n_devices: Vec<usize>,
    /// Index of each agent's first device among all devices (for
    /// [`Environment::held_at`]).
    first_device: Vec<usize>,
    act_dim: usize,
    obs_dim: usize,
    env_id: AgentId,
    grid_ids: Vec<AgentId>,
    step: SimDuration,
    deadline: SimDuration,
    start_hour: f64,
    v_band: (f64, f64),
    episode_steps: u64,
    reward: RewardParams,
}

impl Layout {
    fn time_of(&self, k: u64) -> SimTime {
        SimTime(self.step.as_nanos().saturating_mul(k))
    }

    /// The observation of control point `k` of every agent, into `out`
    /// (`n_agents × obs_dim`).
    fn observe(&self, sim: &Simulation, k: u64, out: &mut [f64]) {
        let t = self.time_of(k);
        let t_s = t.as_nanos() as f64 / 1e9;
        let hour = libm::fmod(self.start_hour + t_s / 3600.0, 24.0);
        let age = |s: &Stamp| t.saturating_since(s.sent).as_secs_f64();
        for (row, &id) in out.chunks_exact_mut(self.obs_dim).zip(&self.grid_ids) {
            row.fill(f64::NAN);
            row[OBS_HOUR] = hour;
            let Some(r) = sim.agent::<GridAgent>(id).and_then(GridAgent::received) else {
                continue;
            };
            if let Some((s, price)) = &r.price {
                row[OBS_PRICE] = *price;
                row[OBS_PRICE_STEP] = s.step as f64;
            }
            if let Some((s, values)) = &r.network {
                row[OBS_CONVERGED..OBS_CONVERGED + NETWORK_STATE_STRIDE].copy_from_slice(values);
                row[OBS_STATE_STEP] = s.step as f64;
                row[OBS_STATE_AGE] = age(s);
            }
            for (j, held) in r.devices.iter().enumerate().take(self.act_dim) {
                if let Some((s, o)) = held {
                    let at = device_obs_index(j, 0);
                    let slot = &mut row[at..at + OBS_PER_DEVICE];
                    slot[DEV_P] = o.p_mw;
                    slot[DEV_Q] = o.q_mvar;
                    slot[DEV_SOC] = o.soc;
                    slot[DEV_STEP] = s.step as f64;
                    slot[DEV_AGE] = age(s);
                }
            }
        }
    }

    /// The rewards of step `k` of every agent, into `out`, read from the
    /// environment right after its deadline of step `k`.
    fn measure(&self, sim: &Simulation, k: u64, out: &mut [f64]) {
        let Some(env) = sim.agent::<Environment>(self.env_id) else {
            return;
        };
        let p = &self.reward;
        // The environment's price formula for step k (its `start_step`).
        let t_s = self.start_hour * 3600.0 + self.time_of(k).as_nanos() as f64 / 1e9;
        let price = price_at(t_s);
        let step_h = self.step.as_nanos() as f64 / 3.6e12;
        for (a, r) in out.iter_mut().enumerate() {
            let Some(flow) = env.flow(a) else {
                continue;
            };
            let mut reward = 0.0;
            if flow.converged {
                if flow.p_slack_mw.is_finite() {
                    let e = flow.p_slack_mw * step_h;
                    reward -= if e > 0.0 {
                        price * e
                    } else {
                        p.export_credit * price * e
                    };
                }
                let (lo, hi) = self.v_band;
                let below = flow.v_min_pu().is_some_and(|v| v < lo);
                let above = flow.v_max_pu().is_some_and(|v| v > hi);
                if below || above {
                    reward -= p.voltage_violation;
                }
            } else {
                reward -= p.non_converged;
            }
            let first = self.first_device[a];
            let misses = (first..first + self.n_devices[a])
                .filter(|&d| env.held_at(d).is_none_or(|h| h.0 < k))
                .count();
            reward -= p.deadline_miss * misses as f64;
            *r = reward;
        }
    }

    /// Runs `sim` through the environment's deadline of step `k` (and every
    /// event ordered before it), and no further.
    fn through_deadline(&self, sim: &mut Simulation, k: u64) -> Result<(), String> {
        let t = self.time_of(k) + self.deadline;
        sim.run_until(SimTime(t.as_nanos() - 1))
            .map_err(|e| e.to_string())?;
        loop {
            let done = sim
                .agent::<Environment>(self.env_id)
                .is_some_and(|env| env.stats().deadlines > k);
            if done {
                return Ok(());
            }
            match sim.next_event_time() {
                Some(next) if next <= t => {
                    sim.step().map_err(|e| e.to_string())?;
                }
                _ => {
                    return Err(format!(
                        "the environment ran no deadline for step {k} at {t}"
                    ));
                }
            }
        }
    }

    /// Runs `sim` through every event strictly before control point `k`.
    fn before(&self, sim: &mut Simulation, k: u64) -> Result<(), String> {
        let t = self.time_of(k);
        sim.run_until(SimTime(t.as_nanos() - 1))
            .map_err(|e| e.to_string())
    }

    /// Step `k` of one simulation: its deadline (reward) and control point
    /// `k + 1` (observation), in time order. Returns whether the
    /// observation was written, and the error that stopped the run.
    fn advance(
        &self,
        sim: &mut Simulation,
        k: u64,
        obs: &mut [f64],
        rewards: &mut [f64],
    ) -> (bool, Option<String>) {
        let deadline_first = self.time_of(k) + self.deadline < self.time_of(k + 1);
        if deadline_first {
            if let Err(e) = self.through_deadline(sim, k) {
                return (false, Some(e));
            }
            self.measure(sim, k, rewards);
            let r = self.before(sim, k + 1);
            self.observe(sim, k + 1, obs);
            (true, r.err())
        } else {
            let r = self.before(sim, k + 1);
            self.observe(sim, k + 1, obs);
            if let Err(e) = r {
                return (true, Some(e));
            }
            if let Err(e) = self.through_deadline(sim, k) {
                return (true, Some(e));
            }
            self.measure(sim, k, rewards);
            (true, None)
        }
    }
}

/// One environment: its simulation and where it is.
struct Slot {
    sim: Simulation,
    seed: u64,
    episode: u64,
    /// The next step to act on (the control point of the last observation).
    k: u64,
}

/// A vector of grid simulations stepped together (see the module docs).
pub struct VecEnv {
    scenario: Scenario,
    layout: Layout,
    num_envs: usize,
    threads: usize,
    pool: rayon::ThreadPool,
    obs_spaces: Vec<BoxSpace>,
    act_spaces: Vec<BoxSpace>,
    seed: u64,
    envs: Vec<Slot>,
    out: StepResult,
}

impl std::fmt::Debug for VecEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VecEnv")
            .field("scenario", &self.scenario.name())
            .field("num_envs", &self.num_envs)
            .field("threads", &self.threads)
            .field("agents", &self.layout.agents)
            .field("act_dim", &self.layout.act_dim)
            .field("obs_dim", &self.layout.obs_dim)
            .finish_non_exhaustive()
    }
}

impl VecEnv {
    /// A vector of `num_envs` environments of `scenario`, stepped on a
    /// private pool of `threads` threads (`None`: one per core). Call
    /// [`VecEnv::reset`] before the first [`VecEnv::step`].
    pub fn new(
        scenario: &Scenario,
        num_envs: usize,
        threads: Option<usize>,
    ) -> Result<VecEnv, VecEnvError> {
        let plan = scenario.grid();
        if plan.is_empty() {
            return Err(VecEnvError::NoMicrogrids);
        }
        if num_envs == 0 || u32::try_from(num_envs - 1).is_err() {
            return Err(VecEnvError::NumEnvs(num_envs));
        }
        let threads = match threads {
            Some(0) => return Err(VecEnvError::NoThreads),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let grid = plan.spec();
        let episode_steps = scenario.duration().as_nanos() / grid.step.as_nanos();
        if episode_steps == 0 {
            return Err(VecEnvError::TooShort {
                duration: scenario.duration(),
                step: grid.step,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| VecEnvError::ThreadPool(e.to_string()))?;

        // Agent ids are positions in the scenario's agent order.
        let names = scenario.agent_names();
        let id_of = |name: &str| {
            let i = names.iter().position(|n| n == name).unwrap_or(usize::MAX);
            AgentId(u32::try_from(i).unwrap_or(u32::MAX))
        };
        let expanded = crate::grid::expand(plan.microgrids());
        let mut agents = Vec::with_capacity(expanded.len());
        let mut specs: Vec<&[DeviceSpec]> = Vec::with_capacity(expanded.len());
        let mut n_devices = Vec::with_capacity(expanded.len());
        let mut first_device = Vec::with_capacity(expanded.len());
        let mut grid_ids = Vec::with_capacity(expanded.len());
        let mut devices = 0;
        for (name, i) in &expanded {
            let d = &plan.microgrids()[*i].devices;
            agents.push(name.clone());
            grid_ids.push(id_of(name));
            specs.push(d);
            n_devices.push(d.len());
            first_device.push(devices);
            devices += d.len();
        }
        let act_dim = n_devices.iter().copied().max().unwrap_or(0);
        let obs_dim = OBS_HEADER + OBS_PER_DEVICE * act_dim;
        let layout = Layout {
            agents,
            n_devices,
            first_device,
            act_dim,
            obs_dim,
            env_id: id_of(crate::grid::ENV_AGENT),
            grid_ids,
            step: grid.step,
            deadline: grid.deadline(),
            start_hour: grid.start_hour,
            v_band: (grid.policy.v_min_pu, grid.policy.v_max_pu),
            episode_steps,
            reward: RewardParams::default(),
        };
        let obs_spaces = specs.iter().map(|d| obs_space(d, act_dim)).collect();
        let act_spaces = specs.iter().map(|d| act_space(d, act_dim)).collect();
        let out = StepResult::new(num_envs, layout.agents.len(), obs_dim);
        Ok(VecEnv {
            scenario: scenario.clone(),
            layout,
            num_envs,
            threads,
            pool,
            obs_spaces,
            act_spaces,
            seed: 0,
            envs: Vec::new(),
            out,
        })
    }

    /// How many environments.
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// The threads of the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The agents (grid agents, by name), in the order of every array.
    pub fn agents(&self) -> &[String] {
        &self.layout.agents
    }

    /// How many agents per environment.
    pub fn num_agents(&self) -> usize {
        self.layout.agents.len()
    }

    /// Values per agent action: the largest device count of a microgrid.
    pub fn act_dim(&self) -> usize {
        self.layout.act_dim
    }

    /// Values per agent observation: `11 + 5·act_dim`.
    pub fn obs_dim(&self) -> usize {
        self.layout.obs_dim
    }

    /// Steps per episode: `⌊duration / step⌋`.
    pub fn episode_steps(&self) -> u64 {
        self.layout.episode_steps
    }

    /// The bounds of agent `agent`'s observation (NaN, "not received",
    /// lies outside every box).
    pub fn observation_space(&self, agent: usize) -> &BoxSpace {
        &self.obs_spaces[agent]
    }

    /// The bounds of agent `agent`'s action (ignored slots: `[-1, 1]`).
    pub fn action_space(&self, agent: usize) -> &BoxSpace {
        &self.act_spaces[agent]
    }

    /// The name of each value of agent `agent`'s observation: `hour`, …,
    /// then `{device}.p_mw`, …; padded slots are `pad{j}.…`.
    pub fn observation_labels(&self, agent: usize) -> Vec<String> {
        let mut labels: Vec<String> = HEADER_LABELS.iter().map(|s| s.to_string()).collect();
        for dev in self.action_labels(agent) {
            labels.extend(DEVICE_LABELS.iter().map(|f| format!("{dev}.{f}")));
        }
        labels
    }

    /// The device of each value of agent `agent`'s action (its id in the
    /// microgrid; padded slots are `pad{j}`).
    pub fn action_labels(&self, agent: usize) -> Vec<String> {
        let plan = self.scenario.grid();
        let expanded = crate::grid::expand(plan.microgrids());
        let devices = &plan.microgrids()[expanded[agent].1].devices;
        (0..self.layout.act_dim)
            .map(|j| match devices.get(j) {
                Some(d) => d.id().to_string(),
                None => format!("pad{j}"),
            })
            .collect()
    }

    /// The reward's penalties.
    pub fn reward_params(&self) -> &RewardParams {
        &self.layout.reward
    }

    /// Sets the reward's penalties (from the next step on).
    pub fn set_reward_params(&mut self, params: RewardParams) {
        self.layout.reward = params;
    }

    /// The simulation of environment `env` (after [`VecEnv::reset`]), to
    /// inspect its agents or metrics.
    pub fn simulation(&self, env: usize) -> Option<&Simulation> {
        self.envs.get(env).map(|s| &s.sim)
    }

    /// The result of the last [`VecEnv::reset`] or [`VecEnv::step`].
    pub fn last(&self) -> &StepResult {
        &self.out
    }

    /// Starts episode 0 of every environment (environment `i`: seed
    /// `seed + i`, index `i`) and returns the observations of control point
    /// 0, with zero rewards and no flags set.
    pub fn reset(&mut self, seed: u64) -> Result<&StepResult, VecEnvError> {
        self.seed = seed;
        let layout = &self.layout;
        let shared = Shared {
            scenario: &self.scenario,
            layout,
            base: seed,
            n: self.num_envs,
        };
        let built: Vec<Result<Slot, VecEnvError>> = self.pool.install(|| {
            (0..shared.n)
                .into_par_iter()
                .map(|i| shared.start(i, 0))
                .collect()
        });
        self.envs = built.into_iter().collect::<Result<_, _>>()?;
        let out = &mut self.out;
        let row = layout.agents.len() * layout.obs_dim;
        self.pool.install(|| {
            (
                self.envs.par_iter_mut(),
                out.obs.par_chunks_mut(row),
                out.next_obs.par_chunks_mut(row),
                out.infos.par_iter_mut(),
            )
                .into_par_iter()
                .for_each(|(slot, obs, next, info)| {
                    layout.observe(&slot.sim, 0, obs);
                    next.copy_from_slice(obs);
                    *info = EnvInfo {
                        seed: slot.seed,
                        episode: 0,
                        step: 0,
                        time_s: 0.0,
                        error: None,
                    };
                });
        });
        out.rewards.fill(0.0);
        out.terminated.fill(false);
        out.truncated.fill(false);
        Ok(&self.out)
    }

    /// Steps every environment by one control step with `actions`
    /// (`num_envs × n_agents × act_dim`, env-major; NaN: the built-in
    /// policy), in parallel, resetting those whose episode ends. See the
    /// module docs for what the result holds.
    pub fn step(&mut self, actions: &[f64]) -> Result<&StepResult, VecEnvError> {
        if self.envs.is_empty() {
            return Err(VecEnvError::NotReset);
        }
        let layout = &self.layout;
        let per_env = layout.agents.len() * layout.act_dim;
        let expected = self.num_envs * per_env;
        if actions.len() != expected {
            return Err(VecEnvError::ActionLength {
                expected,
                got: actions.len(),
            });
        }
        let shared = Shared {
            scenario: &self.scenario,
            layout,
            base: self.seed,
            n: self.num_envs,
        };
        let row = layout.agents.len() * layout.obs_dim;
        let n_agents = layout.agents.len();
        let out = &mut self.out;
        let failed: Vec<Option<VecEnvError>> = self.pool.install(|| {
            (
                self.envs.par_iter_mut(),
                actions.par_chunks(per_env.max(1)),
                out.obs.par_chunks_mut(row),
                out.next_obs.par_chunks_mut(row),
                out.rewards.par_chunks_mut(n_agents),
                out.truncated.par_iter_mut(),
                out.infos.par_iter_mut(),
            )
                .into_par_iter()
                .enumerate()
                .map(|(i, (slot, act, obs, next, rewards, truncated, info))| {
                    shared
                        .step(i, slot, act, obs, rewards, info)
                        .map(|done| {
                            *truncated = done;
                            if done {
                                layout.observe(&slot.sim, 0, next);
                            } else {
                                next.copy_from_slice(obs);
                            }
                        })
                        .err()
                })
                .collect()
        });
        if let Some(e) = failed.into_iter().flatten().next() {
            return Err(e);
        }
        Ok(&self.out)
    }
}

/// What every environment's step reads: the scenario, the layout, the base
/// seed of the last reset and the number of environments.
#[derive(Clone, Copy)]
struct Shared<'a> {
    scenario: &'a Scenario,
    layout: &'a Layout,
    base: u64,
    n: usize,
}

impl Shared<'_> {
    /// Builds episode `episode` of environment `i` at control point 0.
    fn start(&self, i: usize, episode: u64) -> Result<Slot, VecEnvError> {
        let seed = self
            .base
            .wrapping_add(i as u64)
            .wrapping_add((self.n as u64).wrapping_mul(episode));
        let mut sim = self
            .scenario
            .build(seed, i as u32)
            .map_err(|source| VecEnvError::Build {
                env: i,
                seed,
                source,
            })?;
        for &id in &self.layout.grid_ids {
            if let Some(g) = sim.agent_mut::<GridAgent>(id) {
                g.set_external_control();
            }
        }
        Ok(Slot {
            sim,
            seed,
            episode,
            k: 0,
        })
    }

    /// Steps environment `i` with its `actions`, writing its observation,
    /// rewards and info; returns whether its episode ended (it is then
    /// reset, at control point 0).
    fn step(
        &self,
        i: usize,
        slot: &mut Slot,
        actions: &[f64],
        obs: &mut [f64],
        rewards: &mut [f64],
        info: &mut EnvInfo,
    ) -> Result<bool, VecEnvError> {
        let layout = self.layout;
        let k = slot.k;
        for (a, &id) in layout.grid_ids.iter().enumerate() {
            if let Some(g) = slot.sim.agent_mut::<GridAgent>(id) {
                let at = a * layout.act_dim;
                g.set_setpoints(k, &actions[at..at + layout.n_devices[a]]);
            }
        }
        rewards.fill(f64::NAN);
        let (observed, error) = layout.advance(&mut slot.sim, k, obs, rewards);
        if !observed {
            layout.observe(&slot.sim, k + 1, obs);
        }
        slot.k = k + 1;
        *info = EnvInfo {
            seed: slot.seed,
            episode: slot.episode,
            step: k + 1,
            time_s: layout.time_of(k + 1).as_nanos() as f64 / 1e9,
            error,
        };
        let done = info.error.is_some() || slot.k >= layout.episode_steps;
        if done {
            *slot = self.start(i, slot.episode + 1)?;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_the_index_constants() {
        assert_eq!(HEADER_LABELS[OBS_HOUR], "hour");
        assert_eq!(HEADER_LABELS[OBS_PRICE_STEP], "price_step");
        assert_eq!(HEADER_LABELS[OBS_CONVERGED], "converged");
        assert_eq!(HEADER_LABELS[OBS_V_MIN], "v_min_pu");
        assert_eq!(HEADER_LABELS[OBS_V_MAX], "v_max_pu");
        assert_eq!(HEADER_LABELS[OBS_LOADING_MAX], "loading_max");
        assert_eq!(HEADER_LABELS[OBS_P_IMPORT], "p_import_mw");
        assert_eq!(HEADER_LABELS[OBS_NET_LOAD], "net_load_mw");
        assert_eq!(HEADER_LABELS[OBS_STATE_STEP], "state_step");
        assert_eq!(HEADER_LABELS[OBS_STATE_AGE], "state_age_s");
        assert_eq!(OBS_NET_LOAD + 1 - OBS_CONVERGED, NETWORK_STATE_STRIDE);
        assert_eq!(DEVICE_LABELS[DEV_P], "p_mw");
        assert_eq!(DEVICE_LABELS[DEV_AGE], "age_s");
        assert_eq!(device_obs_index(2, DEV_SOC), 11 + 10 + 2);
    }

    #[test]
    fn a_box_holds_its_bounds_and_no_nan() {
        let b = BoxSpace::new(vec![(0.0, 1.0), (f64::NEG_INFINITY, f64::INFINITY)]);
        assert_eq!(b.shape, [2]);
        assert!(b.contains(&[0.5, -1e300]));
        assert!(!b.contains(&[1.5, 0.0]));
        assert!(!b.contains(&[0.5, f64::NAN]));
        assert!(!b.contains(&[0.5]));
    }
}
