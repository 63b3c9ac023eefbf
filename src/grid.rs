//! The built-in grid environment: an environment agent, one grid agent per
//! microgrid and one agent per device, running the step protocol of
//! DESIGN.md over the simulated bus.
//!
//! Each step `k` (period `simulation.step`):
//! 1. at `k·step` the environment broadcasts `[k, price]` on `{env}/actions`;
//! 2. each grid agent computes setpoints with its policy ([`policy`]) and
//!    sends each device `[k, setpoint]` on `{env}/agent/{id}/device_actions`;
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

pub mod agents;
pub mod device;
pub mod policy;
pub mod powerflow;
pub mod prices;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use agents::{DeviceAgent, Environment, GridAgent};
pub use device::{
    CsvProfile, DeviceSpec, Load, LoadSpec, Profile, ProfileError, Pv, PvSpec, Storage,
    StorageSpec, load_csv_profile, parse_csv_profile,
};
pub use policy::{PolicyParams, pv_curtailment, storage_setpoint};
pub use powerflow::{Feeder, FeederError, FlowResult, LinDistFlow, Line, PowerFlow};
pub use prices::price_at;

use crate::scenario::ScenarioSpec;
use crate::sim::SimBuilder;

/// The name of the environment agent.
pub const ENV_AGENT: &str = "env";

/// Which power-flow model the environment runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PowerFlowKind {
    /// Linearised DistFlow on a radial feeder ([`LinDistFlow`]).
    #[default]
    Lindistflow,
}

/// The `[grid]` table: feeder parameters shared by every microgrid and the
/// grid agents' policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    /// Power-flow model. Default `lindistflow`.
    #[serde(default)]
    pub power_flow: PowerFlowKind,
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

impl Default for GridSpec {
    fn default() -> Self {
        GridSpec {
            power_flow: PowerFlowKind::default(),
            base_mva: 1.0,
            v_slack_pu: 1.0,
            line_r_pu: default_r(),
            line_x_pu: default_x(),
            line_rating_mva: default_rating(),
            policy: PolicyParams::default(),
        }
    }
}

impl GridSpec {
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
}

/// One `[[microgrid]]`: a grid agent and its devices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicrogridSpec {
    /// The grid agent's name (with `count`, the prefix of the names).
    pub id: String,
    /// Replicate this microgrid `count` times as `{id}1 … {id}{count}`.
    #[serde(default)]
    pub count: Option<u32>,
    /// Its devices (`[[microgrid.device]]`). Device `j` sits on feeder bus
    /// `j + 1` unless it says `bus`.
    #[serde(rename = "device")]
    pub devices: Vec<DeviceSpec>,
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

/// The name of device `dev` of microgrid `mg`.
pub fn device_agent_name(mg: &str, dev: &str) -> String {
    format!("{mg}.{dev}")
}

/// The names of every grid-scenario agent, in the order they are added.
pub fn agent_names(mgs: &[MicrogridSpec]) -> Vec<String> {
    let mut names = Vec::new();
    if mgs.is_empty() {
        return names;
    }
    names.push(ENV_AGENT.to_string());
    for (name, i) in expand(mgs) {
        names.push(name.clone());
        names.extend(
            mgs[i]
                .devices
                .iter()
                .map(|d| device_agent_name(&name, d.id())),
        );
    }
    names
}

fn bad_name(s: &str) -> bool {
    s.is_empty() || s.contains(['/', '.', ' ']) || s == ENV_AGENT || s == "broker"
}

/// Validates `[grid]` and `[[microgrid]]` and loads CSV profiles (relative
/// to `base_dir`). On error returns the dotted key path and the problem.
pub fn validate(spec: &mut ScenarioSpec, base_dir: &Path) -> Result<(), (String, String)> {
    let g = &spec.grid;
    for (key, v) in [
        ("base_mva", g.base_mva),
        ("v_slack_pu", g.v_slack_pu),
        ("line_rating_mva", g.line_rating_mva),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err((format!("grid.{key}"), format!("{key} must be > 0, got {v}")));
        }
    }
    for (key, v) in [("line_r_pu", g.line_r_pu), ("line_x_pu", g.line_x_pu)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err((
                format!("grid.{key}"),
                format!("{key} must be >= 0, got {v}"),
            ));
        }
    }
    g.policy
        .validate()
        .map_err(|(k, m)| (format!("grid.policy.{k}"), m))?;
    let mut seen: Vec<String> = Vec::new();
    for (i, mg) in spec.microgrids.iter_mut().enumerate() {
        let p = format!("microgrid[{i}]");
        if bad_name(&mg.id) {
            return Err((
                format!("{p}.id"),
                format!(
                    "microgrid id {:?} is not allowed (empty, containing '/', '.' or ' ', \
                     or the reserved \"env\"/\"broker\")",
                    mg.id
                ),
            ));
        }
        if mg.count == Some(0) {
            return Err((format!("{p}.count"), "count must be at least 1".into()));
        }
        if mg.devices.is_empty() {
            return Err((
                format!("{p}.id"),
                "a microgrid needs at least one [[microgrid.device]]".into(),
            ));
        }
        let n = mg.devices.len();
        for (j, d) in mg.devices.iter_mut().enumerate() {
            let dp = format!("{p}.device[{j}]");
            d.validate().map_err(|(k, m)| (format!("{dp}.{k}"), m))?;
            if bad_name(d.id()) {
                return Err((
                    format!("{dp}.id"),
                    format!("device id {:?} is not allowed", d.id()),
                ));
            }
            if let Some(b) = d.bus()
                && !(1..=n).contains(&b)
            {
                return Err((
                    format!("{dp}.bus"),
                    format!("bus must be in 1..={n} (the feeder has one bus per device), got {b}"),
                ));
            }
            if let Some(profile) = d.profile_mut() {
                profile
                    .load(base_dir)
                    .map_err(|e| (format!("{dp}.profile"), e.to_string()))?;
            }
        }
        for j in 1..n {
            if mg.devices[..j].iter().any(|d| d.id() == mg.devices[j].id()) {
                return Err((
                    format!("{p}.device[{j}].id"),
                    format!(
                        "device id {:?} is used twice in this microgrid",
                        mg.devices[j].id()
                    ),
                ));
            }
        }
        let names: Vec<String> = match mg.count {
            None => vec![mg.id.clone()],
            Some(c) => (1..=c).map(|k| format!("{}{k}", mg.id)).collect(),
        };
        for name in names {
            if seen.contains(&name) {
                return Err((
                    format!("{p}.id"),
                    format!("microgrid {name:?} is defined twice"),
                ));
            }
            seen.push(name);
        }
    }
    Ok(())
}

/// Adds the environment, grid and device agents of `spec` (validated by
/// [`validate`]) to a builder.
pub(crate) fn add_agents(mut b: SimBuilder, spec: &ScenarioSpec) -> SimBuilder {
    if spec.microgrids.is_empty() {
        return b;
    }
    let sim = &spec.simulation;
    let mgs = expand(&spec.microgrids);
    // `validate` checked the feeder parameters of a scenario's spec.
    let env = Environment::new(
        sim.step,
        sim.deadline(),
        sim.start_hour,
        &spec.grid,
        &mgs,
        &spec.microgrids,
    )
    .expect("feeder parameters are validated with the scenario");
    b = b.agent(ENV_AGENT, env);
    for (index, (name, i)) in mgs.iter().enumerate() {
        let mg = &spec.microgrids[*i];
        b = b.agent(
            name,
            GridAgent::new(name, index, mg, spec.grid.policy.clone()),
        );
        for d in &mg.devices {
            let dev = DeviceAgent::new(name, d.clone(), sim.step, sim.start_hour);
            b = b.agent(&device_agent_name(name, d.id()), dev);
        }
    }
    b
}
