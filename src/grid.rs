//! The built-in grid environment: an environment agent, one grid agent per
//! microgrid and one agent per device, running the step protocol over the
//! simulated bus. `docs/grid.md` documents the protocol, its message counts
//! and the models for users; this is the code's view.
//!
//! Each step `k` (period `[grid] step`):
//! 1. at `k·step` the environment broadcasts `[k, price]` on `{env}/actions`;
//! 2. each grid agent computes a setpoint for each of its devices (the
//!    device kind's rule, from the [`policy`]) and sends it on
//!    `{env}/agent/{id}/device_actions`;
//! 3. a device applies its setpoint for one step, evolves (SOC, PV output,
//!    load) and publishes `[k, P_MW, Q_MVAr, SOC]` on `{env}/state_updates`
//!    (injections: generation positive, load negative);
//! 4. at `k·step + deadline` the environment solves the power flow of every
//!    microgrid ([`powerflow`]) on the latest values it holds and broadcasts
//!    the results on `{env}/network_state`.
//!
//! A state update for step `k` arriving after step `k`'s deadline is late:
//! it is counted (`late` metric, `late` trace event) and used at the next
//! deadline. A device with no update for step `k` at its deadline is a
//! deadline miss; the environment then uses its older value, and the age of
//! every value it uses is recorded as age of information.
//!
//! Agent names: `env`, the microgrid ids, and `{microgrid}.{device}` for
//! devices. A microgrid with `count = N` stands for `N` microgrids
//! `{id}1 … {id}N` with the same devices.
//!
//! Under external control (the vector environment of `rollout::vecenv`), a
//! grid agent sends the setpoints it is given for step `k` instead of its
//! policy's, over the same protocol, and also subscribes to the state
//! updates to keep its own devices' newest reports.
//!
//! Files: `protocol` (kinds, channels, payloads), `agents` (the three
//! agents), `device` (the kind registry; one file per kind under
//! `device/`), `profile` (PV and load shapes, CSV), `feeder`, `matpower` (feeders
//! from MATPOWER case files), `powerflow` (with `powerflow/ac`, the default AC
//! model), `policy`,
//! `prices`.

pub mod agents;
pub mod device;
pub mod feeder;
pub mod matpower;
pub mod policy;
pub mod powerflow;
pub mod prices;
pub mod profile;
pub mod protocol;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use agents::{DeviceAgent, EXTERNAL_STEPS_KEPT, Environment, GridAgent, Received, Stamp};
pub use device::{
    ControlInput, DeviceKind, DeviceModel, DeviceOutput, DeviceSpec, Load, LoadSpec, Pv, PvSpec,
    Setpoint, Storage, StorageSpec, inverter_q_mvar,
};
pub use feeder::{Feeder, FeederError, Line};
pub use matpower::{CaseError, FeederCase, load_case, parse_case};
pub use policy::{PolicyParams, pv_curtailment, storage_setpoint, volt_var_q};
pub use powerflow::{
    AcSweep, FlowResult, LinDistFlow, PowerFlow, PowerFlowError, PowerFlowFactory,
};
pub use prices::price_at;
pub use profile::{CsvProfile, Profile, ProfileError, load_csv_profile, parse_csv_profile};
pub use protocol::{ENV_AGENT, device_agent_name};

use crate::sim::SimBuilder;
use crate::time::SimDuration;
use crate::validate::{KeyPath, Validator, check_id};

/// Which power-flow model the environment runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PowerFlowKind {
    /// The exact AC power flow by backward/forward sweep ([`AcSweep`]),
    /// `"ac"`: the default.
    #[default]
    Ac,
    /// Linearised, lossless DistFlow ([`LinDistFlow`]), `"lindistflow"`.
    Lindistflow,
}

/// The `[grid]` table: the step protocol's timing, the feeder parameters
/// shared by every microgrid, and the grid agents' policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    /// Step period. Default 1 s.
    #[serde(default = "default_step")]
    pub step: SimDuration,
    /// Offset within each step at which the environment runs the power flow
    /// on the values it holds; state updates arriving later are late.
    /// Default: the end of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<SimDuration>,
    /// Hour of day at time 0, for PV and load profiles and prices, in
    /// `[0, 24)`. Default 0.
    #[serde(default)]
    pub start_hour: f64,
    /// Power-flow model. Default `ac`.
    #[serde(default)]
    pub power_flow: PowerFlowKind,
    /// Convergence tolerance of the `ac` power flow: the largest change of
    /// a complex bus voltage between two sweeps, pu. Default 1e-10.
    #[serde(default = "default_pf_tolerance")]
    pub pf_tolerance_pu: f64,
    /// Iteration limit of the `ac` power flow, per solve. Default 1000.
    #[serde(default = "default_pf_max_iter")]
    pub pf_max_iter: u32,
    /// Base power for per-unit values, MVA. Default 1.
    #[serde(default = "one")]
    pub base_mva: f64,
    /// Voltage at each microgrid's point of common coupling, pu. Default 1.
    #[serde(default = "one")]
    pub v_slack_pu: f64,
    /// Resistance of each feeder section, pu. Default 0.01.
    #[serde(default = "default_r")]
    pub line_r_pu: f64,
    /// Reactance of each feeder section, pu. Default 0.02.
    #[serde(default = "default_x")]
    pub line_x_pu: f64,
    /// Thermal rating of each feeder section, MVA. Default 5.
    #[serde(default = "default_rating")]
    pub line_rating_mva: f64,
    /// The grid agents' controller policy.
    #[serde(default)]
    pub policy: PolicyParams,
    /// A shared distribution feeder: a MATPOWER case file (path relative
    /// to the scenario file; [`matpower`]). Every microgrid then hangs off
    /// the feeder bus its `pcc_bus` names, and one power flow solves the
    /// feeder and all microgrids together. Absent: each microgrid is its own
    /// feeder, with the upstream grid at its point of common coupling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feeder: Option<std::path::PathBuf>,
    /// The case `feeder` names, loaded by [`GridSpec::load_feeder`]
    /// ([`GridSpec::feeder_case`]); not part of the spec's text or equality.
    #[serde(skip)]
    pub feeder_case: Loaded<FeederCase>,
}

/// Data loaded from a file that a spec names by path: carried along, but
/// neither serialised nor compared (two specs naming the same file are
/// equal whether or not it was loaded yet).
#[derive(Clone, Debug)]
pub struct Loaded<T>(pub Option<std::sync::Arc<T>>);

impl<T> Default for Loaded<T> {
    fn default() -> Self {
        Loaded(None)
    }
}

impl<T> PartialEq for Loaded<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn default_step() -> SimDuration {
    // Defined with the trace, which reads it from scenario text.
    crate::trace::life::DEFAULT_GRID_STEP
}
fn one() -> f64 {
    1.0
}
fn default_r() -> f64 {
    0.01
}
fn default_x() -> f64 {
    0.02
}
fn default_rating() -> f64 {
    5.0
}
fn default_pf_tolerance() -> f64 {
    powerflow::DEFAULT_TOLERANCE_PU
}
fn default_pf_max_iter() -> u32 {
    powerflow::DEFAULT_MAX_ITER
}

/// The largest `pf_tolerance_pu` accepted: coarser is no power flow.
pub const MAX_PF_TOLERANCE_PU: f64 = 1e-3;

/// The largest `pf_max_iter` accepted (a bound on the work per solve).
pub const MAX_PF_MAX_ITER: u32 = 100_000;

impl Default for GridSpec {
    fn default() -> Self {
        GridSpec {
            step: default_step(),
            deadline: None,
            start_hour: 0.0,
            power_flow: PowerFlowKind::default(),
            pf_tolerance_pu: default_pf_tolerance(),
            pf_max_iter: default_pf_max_iter(),
            base_mva: 1.0,
            v_slack_pu: 1.0,
            line_r_pu: default_r(),
            line_x_pu: default_x(),
            line_rating_mva: default_rating(),
            policy: PolicyParams::default(),
            feeder: None,
            feeder_case: Loaded::default(),
        }
    }
}

impl GridSpec {
    /// The deadline offset within a step.
    pub fn deadline(&self) -> SimDuration {
        self.deadline.unwrap_or(self.step)
    }

    /// The radial feeder of a microgrid with `n_devices` devices: a chain of
    /// `n_devices` sections from the point of common coupling (bus 0).
    pub fn feeder(&self, n_devices: usize) -> Feeder {
        Feeder::chain(
            n_devices + 1,
            self.line_r_pu,
            self.line_x_pu,
            self.line_rating_mva,
        )
        .with_base_mva(self.base_mva)
        .with_v_slack_pu(self.v_slack_pu)
    }

    /// Loads the `feeder` case (a relative path from `base_dir`), if the
    /// table names one; a problem is reported at `feeder` with the file,
    /// line and column. Lines without a rating in the case get
    /// `line_rating_mva`.
    pub fn load_feeder(&mut self, base_dir: &Path, v: &mut Validator) {
        let Some(path) = &self.feeder else {
            return;
        };
        match load_case(&base_dir.join(path), self.line_rating_mva) {
            Ok(case) => self.feeder_case = Loaded(Some(std::sync::Arc::new(case))),
            Err(e) => v.fail("feeder", e.to_string()),
        }
    }

    /// The shared feeder's case, once loaded ([`GridSpec::load_feeder`]).
    pub fn feeder_case(&self) -> Option<&FeederCase> {
        self.feeder_case.0.as_deref()
    }

    /// Checks the table (keys relative to `[grid]`).
    pub fn validate(&self, v: &mut Validator) {
        v.at_least_one("step", self.step.as_nanos());
        if let Some(d) = self.deadline {
            v.check(d.0 > 0 && d <= self.step, "deadline", || {
                format!("deadline must be > 0 and at most the step ({})", self.step)
            });
        }
        v.check((0.0..24.0).contains(&self.start_hour), "start_hour", || {
            format!("start_hour must be in [0, 24), got {}", self.start_hour)
        });
        let tol = self.pf_tolerance_pu;
        v.check(
            tol.is_finite() && tol > 0.0 && tol <= MAX_PF_TOLERANCE_PU,
            "pf_tolerance_pu",
            || format!("pf_tolerance_pu must be in (0, {MAX_PF_TOLERANCE_PU:e}] pu, got {tol}"),
        );
        v.check(
            (1..=MAX_PF_MAX_ITER).contains(&self.pf_max_iter),
            "pf_max_iter",
            || {
                format!(
                    "pf_max_iter must be in 1..={MAX_PF_MAX_ITER}, got {}",
                    self.pf_max_iter
                )
            },
        );
        v.positive("base_mva", self.base_mva);
        v.positive("v_slack_pu", self.v_slack_pu);
        v.positive("line_rating_mva", self.line_rating_mva);
        v.non_negative("line_r_pu", self.line_r_pu);
        v.non_negative("line_x_pu", self.line_x_pu);
        v.at("policy", |v| self.policy.validate(v));
    }
}

/// One `[[microgrid]]`: a grid agent and its devices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicrogridSpec {
    /// The grid agent's name (with `count`, the prefix of the names).
    pub id: String,
    /// Replicate this microgrid `count` times as `{id}1 … {id}{count}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Its devices (`[[microgrid.device]]`). Device `j` sits on feeder bus
    /// `j + 1` unless it says `bus`.
    #[serde(rename = "device")]
    pub devices: Vec<DeviceSpec>,
    /// With a shared `[grid] feeder`: the case bus number (`bus_i`) of its
    /// point of common coupling, or with `count`, one per copy
    /// (`pcc_bus = [18, 22, 33]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pcc_bus: Option<PccBus>,
}

/// Where a microgrid meets the shared feeder: one case bus number, or one
/// per copy of a microgrid with `count`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PccBus {
    /// One bus.
    One(u64),
    /// One bus per copy, in order.
    Each(Vec<u64>),
}

impl PccBus {
    /// The bus of copy `copy` (0 for a microgrid without `count`).
    pub fn of(&self, copy: usize) -> Option<u64> {
        match self {
            PccBus::One(b) => (copy == 0).then_some(*b),
            PccBus::Each(v) => v.get(copy).copied(),
        }
    }
}

/// Every microgrid after `count` expansion: (name, index of its spec).
pub fn expand(mgs: &[MicrogridSpec]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, mg) in mgs.iter().enumerate() {
        match mg.count {
            None => out.push((mg.id.clone(), i)),
            Some(n) => out.extend((1..=n).map(|k| (format!("{}{k}", mg.id), i))),
        }
    }
    out
}

/// How many agents `mgs` expand to (the environment, then a grid agent and
/// its devices per microgrid), computed without expanding (saturating).
pub fn agent_count(mgs: &[MicrogridSpec]) -> u64 {
    if mgs.is_empty() {
        return 0;
    }
    mgs.iter().fold(1u64, |n, mg| {
        let each = 1 + mg.devices.len() as u64;
        n.saturating_add(u64::from(mg.count.unwrap_or(1)).saturating_mul(each))
    })
}

/// The names of every grid agent, in the order they are added, each with
/// the key that defines it (for uniqueness errors).
pub fn agent_names(mgs: &[MicrogridSpec]) -> Vec<(String, KeyPath)> {
    let mut names = Vec::new();
    if mgs.is_empty() {
        return names;
    }
    names.push((ENV_AGENT.to_string(), KeyPath::root().key("microgrid")));
    let at = |i: usize| KeyPath::root().key("microgrid").index(i);
    for (name, i) in expand(mgs) {
        names.push((name.clone(), at(i).key("id")));
        for (j, d) in mgs[i].devices.iter().enumerate() {
            let path = at(i).key("device").index(j).key("id");
            names.push((device_agent_name(&name, d.id()), path));
        }
    }
    names
}

/// Checks `[[microgrid]]` (keys from the document root) and loads CSV
/// profiles (relative paths from `base_dir`). Names are checked for their
/// rule here and for uniqueness by the caller, with every other agent.
pub fn validate_microgrids(
    mgs: &mut [MicrogridSpec],
    base_dir: &Path,
    feeder: Option<&FeederCase>,
    v: &mut Validator,
) {
    v.at("microgrid", |v| {
        for (i, mg) in mgs.iter_mut().enumerate() {
            v.index(i, |v| {
                validate_microgrid(mg, base_dir, v);
                validate_pcc(mg, feeder, v);
            });
        }
    });
}

/// `pcc_bus` is required with a shared feeder, refused without one, and
/// must name the case's buses (one per copy with `count`).
fn validate_pcc(mg: &MicrogridSpec, feeder: Option<&FeederCase>, v: &mut Validator) {
    let copies = mg.count.unwrap_or(1) as usize;
    match (&mg.pcc_bus, feeder) {
        (None, None) => {}
        (Some(_), None) => v.fail(
            "pcc_bus",
            "pcc_bus needs a shared feeder: set [grid] feeder = \"<case>.m\"",
        ),
        (None, Some(_)) => v.fail(
            "pcc_bus",
            "with a shared [grid] feeder every microgrid needs pcc_bus (the case bus number \
             of its point of common coupling)",
        ),
        (Some(pcc), Some(case)) => {
            let buses: Vec<u64> = match pcc {
                PccBus::One(b) if mg.count.is_none() => vec![*b],
                PccBus::One(_) => {
                    v.fail(
                        "pcc_bus",
                        format!(
                            "with count = {copies}, pcc_bus lists one bus per copy: [b1, b2, ...]"
                        ),
                    );
                    return;
                }
                PccBus::Each(list) => {
                    if list.len() != copies {
                        v.fail(
                            "pcc_bus",
                            format!("pcc_bus lists {} buses for {copies} copies", list.len()),
                        );
                        return;
                    }
                    list.clone()
                }
            };
            for b in buses {
                if case.bus_index(b).is_none() {
                    v.fail(
                        "pcc_bus",
                        format!("bus {b} is not a bus of the feeder case ({case})"),
                    );
                }
            }
        }
    }
}

fn validate_microgrid(mg: &mut MicrogridSpec, base_dir: &Path, v: &mut Validator) {
    if let Err(m) = check_id(&mg.id) {
        v.fail("id", m);
    }
    if mg.count == Some(0) {
        v.fail("count", "count must be at least 1");
    }
    if mg.devices.is_empty() {
        v.fail("id", "a microgrid needs at least one [[microgrid.device]]");
    }
    let n = mg.devices.len();
    let mut ids = std::collections::BTreeMap::new();
    v.at("device", |v| {
        for (j, d) in mg.devices.iter_mut().enumerate() {
            v.index(j, |v| {
                if let Err(m) = check_id(d.id()) {
                    v.fail("id", m);
                }
                if let Some(first) = ids.insert(d.id().to_string(), j) {
                    v.fail(
                        "id",
                        format!(
                            "device id {:?} is used twice in this microgrid (first by device[{first}])",
                            d.id()
                        ),
                    );
                }
                if let Some(b) = d.bus()
                    && !(1..=n).contains(&b)
                {
                    v.fail(
                        "bus",
                        format!(
                            "bus must be in 1..={n} (the feeder has one bus per device), got {b}"
                        ),
                    );
                }
                d.kind().validate(v);
                if let Some(profile) = d.kind_mut().profile_mut()
                    && let Err(e) = profile.load(base_dir)
                {
                    v.fail("profile", e.to_string());
                }
            });
        }
    });
}

/// The grid part of a validated scenario, ready to add to any number of
/// simulations: the settings, the microgrids, and the environment built
/// once (its feeders checked).
#[derive(Clone, Debug)]
pub struct GridPlan {
    spec: GridSpec,
    microgrids: Vec<MicrogridSpec>,
    expanded: Vec<(String, usize)>,
    env: Environment,
}

impl GridPlan {
    /// A plan for validated settings and microgrids; the error names a
    /// feeder the power flow cannot solve, or a bad power-flow setting.
    pub fn new(spec: GridSpec, microgrids: Vec<MicrogridSpec>) -> Result<GridPlan, PowerFlowError> {
        let expanded = expand(&microgrids);
        let env = Environment::new(&spec, &expanded, &microgrids)?;
        Ok(GridPlan {
            spec,
            microgrids,
            expanded,
            env,
        })
    }

    /// The same plan with every microgrid's power flow built by `factory`
    /// instead of the `[grid] power_flow` model: how a library user plugs
    /// their own [`PowerFlow`] (see [`PowerFlowFactory`]).
    pub fn with_power_flow(mut self, factory: PowerFlowFactory) -> GridPlan {
        self.env = self.env.with_power_flow(factory);
        self
    }

    /// The `[grid]` settings.
    pub fn spec(&self) -> &GridSpec {
        &self.spec
    }

    /// The `[[microgrid]]` tables as written (before `count` expansion).
    pub fn microgrids(&self) -> &[MicrogridSpec] {
        &self.microgrids
    }

    /// How many microgrids, after expansion.
    pub fn len(&self) -> usize {
        self.expanded.len()
    }

    /// True when the scenario has no microgrid (no grid agents at all).
    pub fn is_empty(&self) -> bool {
        self.expanded.is_empty()
    }

    /// Adds the environment, grid and device agents to a builder, and the
    /// grid's kind names.
    pub fn add_agents(&self, mut b: SimBuilder) -> SimBuilder {
        if self.expanded.is_empty() {
            return b;
        }
        let g = &self.spec;
        b = b.agent(ENV_AGENT, self.env.clone());
        for (index, (name, i)) in self.expanded.iter().enumerate() {
            let mg = &self.microgrids[*i];
            let mut agent = GridAgent::new(name, index, mg, g.policy.clone());
            agent.set_device_buses(self.env.device_buses(index));
            b = b.agent(name, agent);
            for d in &mg.devices {
                let dev = DeviceAgent::new(name, d, g.step, g.start_hour);
                b = b.agent(&device_agent_name(name, d.id()), dev);
            }
        }
        b
    }
}
