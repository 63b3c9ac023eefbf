//! The agents of the built-in grid scenario: [`Environment`], [`GridAgent`]
//! and [`DeviceAgent`]. See the [`crate::grid`] docs for the step protocol.
//!
//! Payloads are numeric ([`Payload::values`]): actions `[k, price]`, device
//! actions `[k, setpoint]`, state updates `[k, P_MW, Q_MVAr, SOC]`, network
//! state `[k, then per microgrid: converged, v_min_pu, v_max_pu,
//! loading_max, p_import_mw, net_load_ex_storage_mw]`.

use crate::agent::{Agent, Context};
use crate::broker::Delivery;
use crate::grid::device::{DeviceSpec, Load, Profile, Pv, Storage};
use crate::grid::policy::{PolicyParams, pv_curtailment, storage_setpoint};
use crate::grid::powerflow::{Feeder, FeederError, FlowResult, LinDistFlow, PowerFlow};
use crate::grid::prices::price_at;
use crate::grid::{GridSpec, MicrogridSpec, device_agent_name};
use crate::message::{AgentId, ChannelId, Message, MessageKind, Payload, Recipient, channels};
use crate::time::{SimDuration, SimTime};

/// Values per microgrid in a network-state message.
pub const NETWORK_STATE_STRIDE: usize = 6;

const TAG_STEP: u64 = 0;
const TAG_DEADLINE: u64 = 1;

fn tag(kind: u64, k: u64) -> u64 {
    (k << 1) | kind
}

/// Counters kept by the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnvStats {
    /// Steps started.
    pub steps: u64,
    /// Deadlines processed (power flows run).
    pub deadlines: u64,
    /// (device, step) pairs with no state update at the step's deadline.
    pub deadline_misses: u64,
    /// State updates that arrived after their step's deadline.
    pub late_updates: u64,
    /// Microgrid power flows that did not converge.
    pub non_converged: u64,
}

#[derive(Clone, Copy, Debug)]
struct Latest {
    /// Step of the value held; `None` before the first update.
    step: Option<u64>,
    p_mw: f64,
    q_mvar: f64,
    soc: f64,
    sent: SimTime,
}

struct Microgrid {
    feeder: Feeder,
    solver: LinDistFlow,
    result: FlowResult,
    injections: Vec<(f64, f64)>,
    /// Indices into `Environment::devices`.
    first_device: usize,
    n_devices: usize,
}

#[derive(Clone, Debug)]
struct DeviceSlot {
    name: String,
    bus: usize,
    storage: bool,
}

/// The environment: starts each step, collects state updates, runs the power
/// flow at each deadline and publishes the network state.
pub struct Environment {
    step: SimDuration,
    deadline: SimDuration,
    start_s: f64,
    mgs: Vec<Microgrid>,
    slots: Vec<DeviceSlot>,
    latest: Vec<Latest>,
    /// Device index by agent id (resolved at start).
    by_agent: Vec<Option<u32>>,
    /// Last step whose deadline has been processed.
    done: Option<u64>,
    ch_actions: ChannelId,
    ch_network: ChannelId,
    stats: EnvStats,
    out: Vec<f64>,
}

impl Environment {
    /// An environment for the expanded microgrids `mgs` (name, spec index);
    /// fails if `grid` describes an invalid feeder.
    pub fn new(
        step: SimDuration,
        deadline: SimDuration,
        start_hour: f64,
        grid: &GridSpec,
        mgs: &[(String, usize)],
        specs: &[MicrogridSpec],
    ) -> Result<Environment, FeederError> {
        let mut slots = Vec::new();
        let mut micro = Vec::with_capacity(mgs.len());
        for (name, i) in mgs {
            let spec = &specs[*i];
            let feeder = grid.feeder(spec.devices.len());
            // The scenario loader validated the feeder parameters.
            let solver = LinDistFlow::new(&feeder)?;
            let first_device = slots.len();
            for (j, d) in spec.devices.iter().enumerate() {
                slots.push(DeviceSlot {
                    name: device_agent_name(name, d.id()),
                    bus: d.bus().unwrap_or(j + 1),
                    storage: matches!(d, DeviceSpec::Storage(_)),
                });
            }
            micro.push(Microgrid {
                result: FlowResult::new(&feeder),
                injections: vec![(0.0, 0.0); feeder.n_buses],
                feeder,
                solver,
                first_device,
                n_devices: spec.devices.len(),
            });
        }
        let latest = vec![
            Latest {
                step: None,
                p_mw: 0.0,
                q_mvar: 0.0,
                soc: 0.0,
                sent: SimTime::ZERO,
            };
            slots.len()
        ];
        Ok(Environment {
            step,
            deadline,
            start_s: start_hour * 3600.0,
            out: Vec::with_capacity(1 + NETWORK_STATE_STRIDE * micro.len()),
            mgs: micro,
            slots,
            latest,
            by_agent: Vec::new(),
            done: None,
            ch_actions: ChannelId(0),
            ch_network: ChannelId(0),
            stats: EnvStats::default(),
        })
    }

    /// The environment's counters.
    pub fn stats(&self) -> EnvStats {
        self.stats
    }

    /// The value held for device agent `name`: `(step, P_MW, Q_MVAr, SOC)`,
    /// or `None` before its first update.
    pub fn held(&self, name: &str) -> Option<(u64, f64, f64, f64)> {
        let i = self.slots.iter().position(|s| s.name == name)?;
        let v = self.latest[i];
        v.step.map(|k| (k, v.p_mw, v.q_mvar, v.soc))
    }

    /// The latest power-flow result of microgrid `i`.
    pub fn flow(&self, i: usize) -> Option<&FlowResult> {
        self.mgs.get(i).map(|m| &m.result)
    }

    fn start_step(&mut self, ctx: &mut Context<'_>, k: u64) {
        self.stats.steps += 1;
        let t_s = self.start_s + ctx.now().as_nanos() as f64 / 1e9;
        ctx.publish(
            self.ch_actions,
            Recipient::Broadcast,
            MessageKind::Action,
            Payload::values(&[k as f64, price_at(t_s)]),
        );
        let step_start = SimTime(self.step.as_nanos().saturating_mul(k));
        // The deadline timer is set before the next step's, so when the
        // deadline is the end of the step it fires first.
        ctx.set_timer_at(step_start + self.deadline, tag(TAG_DEADLINE, k));
        ctx.set_timer_at(step_start + self.step, tag(TAG_STEP, k + 1));
    }

    fn run_deadline(&mut self, ctx: &mut Context<'_>, k: u64) {
        self.stats.deadlines += 1;
        self.done = Some(k);
        let now = ctx.now();
        self.out.clear();
        self.out.push(k as f64);
        for mg in &mut self.mgs {
            mg.injections.fill((0.0, 0.0));
            let mut net_ex_storage = 0.0;
            for d in mg.first_device..mg.first_device + mg.n_devices {
                let v = self.latest[d];
                let slot = &self.slots[d];
                match v.step {
                    Some(s) => {
                        if s < k {
                            self.stats.deadline_misses += 1;
                        }
                        ctx.record_age(now.saturating_since(v.sent));
                        let inj = &mut mg.injections[slot.bus];
                        inj.0 += v.p_mw;
                        inj.1 += v.q_mvar;
                        if !slot.storage {
                            net_ex_storage -= v.p_mw;
                        }
                    }
                    None => self.stats.deadline_misses += 1,
                }
            }
            mg.solver.solve(&mg.feeder, &mg.injections, &mut mg.result);
            let r = &mg.result;
            if !r.converged {
                self.stats.non_converged += 1;
            }
            self.out.extend_from_slice(&[
                if r.converged { 1.0 } else { 0.0 },
                r.v_min_pu().unwrap_or(f64::NAN),
                r.v_max_pu().unwrap_or(f64::NAN),
                r.loading_max().unwrap_or(f64::NAN),
                r.p_slack_mw,
                net_ex_storage,
            ]);
        }
        ctx.publish(
            self.ch_network,
            Recipient::Broadcast,
            MessageKind::NetworkState,
            Payload::values(&self.out),
        );
    }
}

impl Agent for Environment {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let env = ctx.env_prefix().to_string();
        self.ch_actions = ctx.channel(&channels::actions(&env));
        self.ch_network = ctx.channel(&channels::network_state(&env));
        let ch_state = ctx.channel(&channels::state_updates(&env));
        ctx.subscribe(ch_state, Delivery::Push);
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(id) = ctx.agent_id(&slot.name) {
                if self.by_agent.len() <= id.index() {
                    self.by_agent.resize(id.index() + 1, None);
                }
                self.by_agent[id.index()] = Some(i as u32);
            }
        }
        ctx.set_timer_at(SimTime::ZERO, tag(TAG_STEP, 0));
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, t: u64) {
        let k = t >> 1;
        match t & 1 {
            TAG_STEP => self.start_step(ctx, k),
            _ => self.run_deadline(ctx, k),
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        if msg.kind != MessageKind::StateUpdate {
            return;
        }
        let Some(Some(d)) = self.by_agent.get(msg.sender.index()) else {
            return;
        };
        let &[k, p, q, soc] = msg.payload.as_f64s() else {
            return;
        };
        let k = k as u64;
        if self.done.is_some_and(|done| k <= done) {
            self.stats.late_updates += 1;
            ctx.mark_late(msg);
        }
        let held = &mut self.latest[*d as usize];
        if held.step.is_none_or(|s| k >= s) {
            *held = Latest {
                step: Some(k),
                p_mw: p,
                q_mvar: q,
                soc,
                sent: msg.sent,
            };
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Controlled {
    Storage { p_max_mw: f64 },
    Pv,
    Load,
}

/// A microgrid controller: turns the environment's actions and the latest
/// network state into device setpoints with its [`PolicyParams`].
pub struct GridAgent {
    index: usize,
    device_names: Vec<String>,
    devices: Vec<(AgentId, Controlled)>,
    policy: PolicyParams,
    v_min_pu: Option<f64>,
    v_max_pu: Option<f64>,
    net_load_mw: f64,
    n_storage: usize,
    ch_devices: ChannelId,
    setpoints_sent: u64,
}

impl GridAgent {
    /// The controller of microgrid `name`, the `index`-th microgrid.
    pub fn new(name: &str, index: usize, spec: &MicrogridSpec, policy: PolicyParams) -> GridAgent {
        let mut devices = Vec::new();
        let mut names = Vec::new();
        for d in &spec.devices {
            names.push(device_agent_name(name, d.id()));
            devices.push((
                AgentId(u32::MAX),
                match d {
                    DeviceSpec::Storage(s) => Controlled::Storage {
                        p_max_mw: s.p_max_mw,
                    },
                    DeviceSpec::Pv(_) => Controlled::Pv,
                    DeviceSpec::Load(_) => Controlled::Load,
                },
            ));
        }
        let n_storage = devices
            .iter()
            .filter(|d| matches!(d.1, Controlled::Storage { .. }))
            .count();
        GridAgent {
            index,
            device_names: names,
            devices,
            policy,
            v_min_pu: None,
            v_max_pu: None,
            net_load_mw: 0.0,
            n_storage,
            ch_devices: ChannelId(0),
            setpoints_sent: 0,
        }
    }

    /// Setpoints sent so far.
    pub fn setpoints_sent(&self) -> u64 {
        self.setpoints_sent
    }

    /// The lowest and highest voltage of the latest network state received.
    pub fn voltages(&self) -> (Option<f64>, Option<f64>) {
        (self.v_min_pu, self.v_max_pu)
    }
}

impl Agent for GridAgent {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let env = ctx.env_prefix().to_string();
        let me = ctx.name().to_string();
        for ch in [channels::actions(&env), channels::network_state(&env)] {
            let id = ctx.channel(&ch);
            ctx.subscribe(id, Delivery::Push);
        }
        self.ch_devices = ctx.channel(&channels::device_actions(&env, &me));
        // Devices not in the simulation (a library user left them out) are
        // not controlled: only devices that exist get setpoints.
        let names = std::mem::take(&mut self.device_names);
        let devices = std::mem::take(&mut self.devices);
        for ((_, c), name) in devices.into_iter().zip(&names) {
            if let Some(id) = ctx.agent_id(name) {
                self.devices.push((id, c));
            }
        }
        self.device_names = names;
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        match msg.kind {
            MessageKind::Action => {
                let &[k, price] = msg.payload.as_f64s() else {
                    return;
                };
                let share = self.net_load_mw / self.n_storage.max(1) as f64;
                for &(id, c) in &self.devices {
                    let setpoint = match c {
                        Controlled::Storage { p_max_mw } => {
                            storage_setpoint(&self.policy, price, share, p_max_mw, self.v_min_pu)
                        }
                        Controlled::Pv => pv_curtailment(&self.policy, self.v_max_pu),
                        Controlled::Load => 0.0,
                    };
                    ctx.publish(
                        self.ch_devices,
                        Recipient::Agent(id),
                        MessageKind::DeviceAction,
                        Payload::values(&[k, setpoint]),
                    );
                    self.setpoints_sent += 1;
                }
            }
            MessageKind::NetworkState => {
                let v = msg.payload.as_f64s();
                let at = 1 + self.index * NETWORK_STATE_STRIDE;
                let Some(mine) = v.get(at..at + NETWORK_STATE_STRIDE) else {
                    return;
                };
                let finite = |x: f64| x.is_finite().then_some(x);
                self.v_min_pu = finite(mine[1]);
                self.v_max_pu = finite(mine[2]);
                self.net_load_mw = if mine[5].is_finite() { mine[5] } else { 0.0 };
            }
            _ => {}
        }
    }
}

enum Model {
    Storage(Storage),
    Pv {
        pv: Pv,
        profile: Profile,
        noise: f64,
    },
    Load {
        load: Load,
        profile: Profile,
        noise: f64,
    },
}

/// A device: applies each setpoint for one step, evolves, and reports
/// `[k, P_MW, Q_MVAr, SOC]` (SOC is 0 for non-storage devices).
pub struct DeviceAgent {
    mg: String,
    model: Model,
    step_s: f64,
    start_s: f64,
    ch_state: ChannelId,
    updates: u64,
}

impl DeviceAgent {
    /// Device `spec` of microgrid `mg`.
    pub fn new(mg: &str, spec: DeviceSpec, step: SimDuration, start_hour: f64) -> DeviceAgent {
        let model = match spec {
            DeviceSpec::Storage(s) => Model::Storage(Storage::new(s)),
            DeviceSpec::Pv(s) => Model::Pv {
                profile: s.profile.clone(),
                noise: s.noise,
                pv: Pv::new(s),
            },
            DeviceSpec::Load(s) => Model::Load {
                profile: s.profile.clone(),
                noise: s.noise,
                load: Load::new(s),
            },
        };
        DeviceAgent {
            mg: mg.to_string(),
            model,
            step_s: step.as_secs_f64(),
            start_s: start_hour * 3600.0,
            ch_state: ChannelId(0),
            updates: 0,
        }
    }

    /// State of charge, for storage devices.
    pub fn soc(&self) -> Option<f64> {
        match &self.model {
            Model::Storage(s) => Some(s.soc()),
            _ => None,
        }
    }

    /// State updates published so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }
}

/// A profile value with multiplicative noise `1 + noise·N(0,1)`, never
/// negative. Draws from the device's own stream only when `noise > 0`.
fn noisy(ctx: &mut Context<'_>, profile: &Profile, t_s: f64, noise: f64) -> f64 {
    let v = profile.value_at(t_s);
    if noise > 0.0 {
        (v * (1.0 + noise * ctx.rng().standard_normal())).max(0.0)
    } else {
        v
    }
}

impl Agent for DeviceAgent {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let env = ctx.env_prefix().to_string();
        let ch = ctx.channel(&channels::device_actions(&env, &self.mg));
        ctx.subscribe(ch, Delivery::Push);
        self.ch_state = ctx.channel(&channels::state_updates(&env));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        if msg.kind != MessageKind::DeviceAction {
            return;
        }
        let &[k, setpoint] = msg.payload.as_f64s() else {
            return;
        };
        let t_s = self.start_s + ctx.now().as_nanos() as f64 / 1e9;
        let (p, q, soc) = match &mut self.model {
            Model::Storage(s) => {
                let p = s.step(setpoint, self.step_s);
                (p, 0.0, s.soc())
            }
            Model::Pv { pv, profile, noise } => {
                let v = noisy(ctx, profile, t_s, *noise);
                (pv.output_mw(v, setpoint), 0.0, 0.0)
            }
            Model::Load {
                load,
                profile,
                noise,
            } => {
                let v = noisy(ctx, profile, t_s, *noise);
                let (p, q) = load.demand(v);
                (-p, -q, 0.0)
            }
        };
        ctx.publish(
            self.ch_state,
            Recipient::Broadcast,
            MessageKind::StateUpdate,
            Payload::values(&[k, p, q, soc]),
        );
        self.updates += 1;
    }
}
