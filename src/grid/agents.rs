//! The agents of the built-in grid scenario: [`Environment`], [`GridAgent`]
//! and [`DeviceAgent`]. See the [`crate::grid`] docs for the step protocol
//! and [`protocol`] for the kinds, channels and payloads.
//!
//! A grid agent runs in one of two modes. By default it computes every
//! setpoint with its policy. In **external control**
//! ([`GridAgent::set_external_control`], used by the vector environment of
//! `rollout::vecenv`) it sends, for step `k`, the setpoints supplied with
//! [`GridAgent::set_setpoints`] for `k` instead (a NaN entry, or a step
//! with nothing supplied, falls back to the policy), and it also subscribes
//! to `{env}/state_updates` to keep the newest report of each of its own
//! devices ([`GridAgent::received`]). The messages it sends are the same
//! in both modes; only external control adds the state-update copies to
//! the grid agents.

use crate::broker::Delivery;
use crate::grid::device::{ControlInput, DeviceModel, DeviceOutput, DeviceSpec, Setpoint};
use crate::grid::feeder::{Feeder, Line};
use crate::grid::policy::PolicyParams;
use crate::grid::powerflow::{
    AcSweep, FlowResult, LinDistFlow, PowerFlow, PowerFlowError, PowerFlowFactory, finite_fold,
};
use crate::grid::prices::price_at;
use crate::grid::protocol::{self, NETWORK_STATE_STRIDE, device_agent_name};
use crate::grid::{GridSpec, MicrogridSpec, PowerFlowKind};
use crate::message::{AgentId, ChannelId, Message, Payload, Recipient};
use crate::metrics::Outcomes;
use crate::sim::{Agent, Context};
use crate::time::{SimDuration, SimTime};

const TAG_STEP: u64 = 0;
const TAG_DEADLINE: u64 = 1;

fn tag(kind: u64, k: u64) -> u64 {
    (k << 1) | kind
}

/// What the environment counts and measures (see `docs/grid.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EnvStats {
    /// Steps started.
    pub steps: u64,
    /// Deadlines processed (power flows run).
    pub deadlines: u64,
    /// (device, step) pairs with no state update at the step's deadline.
    pub deadline_misses: u64,
    /// Deadlines at which at least one device had missed.
    pub steps_with_misses: u64,
    /// The most devices that missed one deadline.
    pub max_misses_per_step: u64,
    /// State updates that arrived after their step's deadline.
    pub late_updates: u64,
    /// Microgrid power flows that did not converge.
    pub non_converged: u64,
    /// (microgrid, deadline) pairs whose power flow converged with a bus
    /// voltage outside the policy's `[v_min_pu, v_max_pu]`.
    pub voltage_violations: u64,
    /// Energy imported at the points of common coupling, MWh: each
    /// deadline's positive slack power held for one step.
    pub energy_imported_mwh: f64,
    /// Energy exported there, MWh (the negative slack power, as a positive
    /// number).
    pub energy_exported_mwh: f64,
    /// Lowest state of charge of a storage device used at a deadline, or
    /// NaN if none was.
    pub soc_min: f64,
    /// Highest such state of charge, or NaN.
    pub soc_max: f64,
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

/// A microgrid's power-flow model: a built-in one (cloned with its state,
/// so a clone continues exactly), or one from a user's factory (a clone
/// gets a fresh solver from the factory).
enum Solver {
    Ac(AcSweep),
    LinDistFlow(LinDistFlow),
    Custom {
        solver: Box<dyn PowerFlow>,
        factory: PowerFlowFactory,
        feeder: Feeder,
    },
}

impl Solver {
    fn get(&mut self) -> &mut dyn PowerFlow {
        match self {
            Solver::Ac(s) => s,
            Solver::LinDistFlow(s) => s,
            Solver::Custom { solver, .. } => solver.as_mut(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Solver::Ac(s) => s.name(),
            Solver::LinDistFlow(s) => s.name(),
            Solver::Custom { solver, .. } => solver.name(),
        }
    }
}

impl Clone for Solver {
    fn clone(&self) -> Solver {
        match self {
            Solver::Ac(s) => Solver::Ac(s.clone()),
            Solver::LinDistFlow(s) => Solver::LinDistFlow(s.clone()),
            Solver::Custom {
                factory, feeder, ..
            } => Solver::Custom {
                solver: factory(feeder),
                factory: factory.clone(),
                feeder: feeder.clone(),
            },
        }
    }
}

impl std::fmt::Debug for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Solver({})", self.name())
    }
}

/// One power flow: a radial network, its solver, its latest result, and
/// the injections it is solved for.
#[derive(Clone, Debug)]
struct Net {
    feeder: Feeder,
    solver: Solver,
    result: FlowResult,
    injections: Vec<(f64, f64)>,
    /// Injections that do not come from devices (a shared feeder's own
    /// loads, negative), added at every deadline.
    fixed: Vec<(f64, f64)>,
    /// Where its buses and lines start in the network state's lists.
    bus_offset: usize,
    line_offset: usize,
}

/// A microgrid's place in a power flow.
#[derive(Clone, Debug)]
struct Microgrid {
    /// Index into `Environment::nets`.
    net: usize,
    /// The network bus of each of its buses (0: its point of common
    /// coupling).
    buses: Vec<usize>,
    /// The network lines inside it.
    lines: Vec<usize>,
    /// Those of its lines that leave the point of common coupling.
    root_lines: Vec<usize>,
    /// Indices into `Environment::slots`.
    first_device: usize,
    n_devices: usize,
}

#[derive(Clone, Debug)]
struct DeviceSlot {
    name: String,
    /// Its microgrid (index into `Environment::mgs`).
    mg: usize,
    /// Its bus in its microgrid's network.
    bus: usize,
    /// A balancing device (storage): left out of the net load.
    balancing: bool,
}

/// The environment: starts each step, collects state updates, runs the power
/// flow at each deadline and publishes the network state.
#[derive(Clone, Debug)]
pub struct Environment {
    step: SimDuration,
    deadline: SimDuration,
    start_s: f64,
    nets: Vec<Net>,
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
    /// The policy's voltage band, pu.
    v_band: (f64, f64),
    /// Age of each value used at a deadline, ns.
    ages: hdrhistogram::Histogram<u64>,
    out: Vec<f64>,
}

impl Environment {
    /// An environment for the expanded microgrids `mgs` (name, spec index),
    /// with the step, deadline, start hour, feeders and power-flow model of
    /// `grid`; fails if `grid` describes an invalid feeder or power-flow
    /// setting.
    pub fn new(
        grid: &GridSpec,
        mgs: &[(String, usize)],
        specs: &[MicrogridSpec],
    ) -> Result<Environment, PowerFlowError> {
        let (step, deadline, start_hour) = (grid.step, grid.deadline(), grid.start_hour);
        let mut slots = Vec::new();
        let mut micro = Vec::with_capacity(mgs.len());
        let mut nets: Vec<Net> = Vec::new();
        let solver = |feeder: &Feeder| -> Result<Solver, PowerFlowError> {
            Ok(match grid.power_flow {
                PowerFlowKind::Ac => Solver::Ac(AcSweep::with_settings(
                    feeder,
                    grid.pf_tolerance_pu,
                    grid.pf_max_iter,
                )?),
                PowerFlowKind::Lindistflow => Solver::LinDistFlow(LinDistFlow::new(feeder)?),
            })
        };
        // With a shared feeder: one network, the case's buses first, each
        // microgrid's own chain appended at its point of common coupling.
        let mut shared = grid.feeder_case().map(|case| {
            let fixed: Vec<(f64, f64)> = case.loads.iter().map(|&(p, q)| (-p, -q)).collect();
            (case.feeder.clone(), fixed)
        });
        // The microgrids' line impedances are on `base_mva`; a shared
        // feeder's own base may differ.
        let z_scale = shared
            .as_ref()
            .map_or(1.0, |(f, _)| f.base_mva / grid.base_mva);
        let mut copy_of: Vec<usize> = vec![0; specs.len()];
        for (name, i) in mgs {
            let spec = &specs[*i];
            let copy = copy_of[*i];
            copy_of[*i] += 1;
            let n_dev = spec.devices.len();
            let mg = match (&mut shared, grid.feeder_case()) {
                (Some((feeder, fixed)), Some(case)) => {
                    let pcc_number = spec.pcc_bus.as_ref().and_then(|p| p.of(copy));
                    let pcc = pcc_number.and_then(|b| case.bus_index(b)).ok_or_else(|| {
                        PowerFlowError::Setting(format!(
                            "microgrid {name} has no pcc_bus on the feeder case"
                        ))
                    })?;
                    let mut buses = vec![pcc];
                    let mut lines = Vec::with_capacity(n_dev);
                    for j in 1..=n_dev {
                        let bus = feeder.n_buses;
                        feeder.n_buses += 1;
                        fixed.push((0.0, 0.0));
                        lines.push(feeder.lines.len());
                        feeder.lines.push(Line {
                            from: buses[j - 1],
                            to: bus,
                            r_pu: grid.line_r_pu * z_scale,
                            x_pu: grid.line_x_pu * z_scale,
                            rating_mva: grid.line_rating_mva,
                        });
                        buses.push(bus);
                    }
                    Microgrid {
                        net: 0,
                        root_lines: lines.first().copied().into_iter().collect(),
                        buses,
                        lines,
                        first_device: slots.len(),
                        n_devices: n_dev,
                    }
                }
                _ => {
                    let feeder = grid.feeder(n_dev);
                    let n = feeder.n_buses;
                    nets.push(Net {
                        solver: solver(&feeder)?,
                        result: FlowResult::new(&feeder),
                        injections: vec![(0.0, 0.0); n],
                        fixed: vec![(0.0, 0.0); n],
                        bus_offset: 0,
                        line_offset: 0,
                        feeder,
                    });
                    Microgrid {
                        net: nets.len() - 1,
                        buses: (0..n).collect(),
                        lines: (0..n - 1).collect(),
                        root_lines: if n > 1 { vec![0] } else { vec![] },
                        first_device: slots.len(),
                        n_devices: n_dev,
                    }
                }
            };
            for (j, d) in spec.devices.iter().enumerate() {
                slots.push(DeviceSlot {
                    name: device_agent_name(name, d.id()),
                    mg: micro.len(),
                    bus: mg.buses[d.bus().unwrap_or(j + 1)],
                    balancing: d.kind().balancing(),
                });
            }
            micro.push(mg);
        }
        if let Some((feeder, fixed)) = shared {
            let n = feeder.n_buses;
            nets.push(Net {
                solver: solver(&feeder)?,
                result: FlowResult::new(&feeder),
                injections: vec![(0.0, 0.0); n],
                fixed,
                bus_offset: 0,
                line_offset: 0,
                feeder,
            });
        }
        let (mut buses, mut lines) = (0, 0);
        for net in &mut nets {
            net.bus_offset = buses;
            net.line_offset = lines;
            buses += net.feeder.n_buses;
            lines += net.feeder.lines.len();
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
            out: Vec::with_capacity(
                protocol::NETWORK_STATE_HEAD + buses + lines + NETWORK_STATE_STRIDE * micro.len(),
            ),
            nets,
            mgs: micro,
            slots,
            latest,
            by_agent: Vec::new(),
            done: None,
            ch_actions: ChannelId(0),
            ch_network: ChannelId(0),
            stats: EnvStats {
                soc_min: f64::NAN,
                soc_max: f64::NAN,
                ..EnvStats::default()
            },
            v_band: (grid.policy.v_min_pu, grid.policy.v_max_pu),
            ages: crate::metrics::histogram(),
        })
    }

    /// The environment's counters.
    pub fn stats(&self) -> EnvStats {
        self.stats
    }

    /// The age of every value used at a deadline (deadline time minus the
    /// time the value was sent), ns.
    pub fn ages(&self) -> &hdrhistogram::Histogram<u64> {
        &self.ages
    }

    /// The value held for device agent `name`: `(step, P_MW, Q_MVAr, SOC)`,
    /// or `None` before its first update.
    pub fn held(&self, name: &str) -> Option<(u64, f64, f64, f64)> {
        let i = self.slots.iter().position(|s| s.name == name)?;
        self.held_at(i)
    }

    /// The value held for the `i`-th device of the scenario (devices
    /// numbered across microgrids in order, each microgrid's in file order):
    /// `(step, P_MW, Q_MVAr, SOC)`, or `None` before its first update (or
    /// for an index out of range).
    pub fn held_at(&self, i: usize) -> Option<(u64, f64, f64, f64)> {
        let v = self.latest.get(i)?;
        v.step.map(|k| (k, v.p_mw, v.q_mvar, v.soc))
    }

    /// The same environment with every microgrid's power flow built by
    /// `factory` instead of the `[grid] power_flow` model (see
    /// [`PowerFlowFactory`]).
    pub fn with_power_flow(mut self, factory: PowerFlowFactory) -> Environment {
        for net in &mut self.nets {
            net.solver = Solver::Custom {
                solver: factory(&net.feeder),
                factory: factory.clone(),
                feeder: net.feeder.clone(),
            };
            net.result = FlowResult::new(&net.feeder);
        }
        self
    }

    /// The name of the power-flow model of microgrid `i` (`"ac"`,
    /// `"lindistflow"`, or a plugged model's name).
    pub fn power_flow_name(&self, i: usize) -> Option<&'static str> {
        self.mgs.get(i).map(|m| self.nets[m.net].solver.name())
    }

    /// The latest result of the power flow microgrid `i` is part of: its
    /// own feeder's, or with a shared `[grid] feeder` the whole network's
    /// (see [`Environment::network`] for its layout).
    pub fn flow(&self, i: usize) -> Option<&FlowResult> {
        self.mgs.get(i).map(|m| &self.nets[m.net].result)
    }

    /// The network microgrid `i` is solved in (its own feeder, or the
    /// shared feeder with every microgrid appended: the case's buses first,
    /// then each microgrid's buses in order) and the network buses of its
    /// own buses (index 0: its point of common coupling).
    pub fn network(&self, i: usize) -> Option<(&Feeder, &[usize])> {
        self.mgs
            .get(i)
            .map(|m| (&self.nets[m.net].feeder, m.buses.as_slice()))
    }

    /// The position in the network state's bus list
    /// ([`protocol::NETWORK_STATE_HEAD`] onwards) of the bus of each device
    /// of microgrid `i`, in the order of its devices.
    pub fn device_buses(&self, i: usize) -> Vec<usize> {
        let Some(m) = self.mgs.get(i) else {
            return Vec::new();
        };
        let offset = self.nets[m.net].bus_offset;
        self.slots[m.first_device..m.first_device + m.n_devices]
            .iter()
            .map(|s| offset + s.bus)
            .collect()
    }

    fn start_step(&mut self, ctx: &mut Context<'_>, k: u64) {
        self.stats.steps += 1;
        let t_s = self.start_s + ctx.now().as_nanos() as f64 / 1e9;
        ctx.publish(
            self.ch_actions,
            Recipient::Broadcast,
            protocol::ACTION,
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
        let step_h = self.step.as_nanos() as f64 / 3.6e12;
        let misses_before = self.stats.deadline_misses;
        for net in &mut self.nets {
            net.injections.copy_from_slice(&net.fixed);
        }
        // Each device's latest value goes to its bus.
        for d in 0..self.slots.len() {
            let v = self.latest[d];
            let slot = &self.slots[d];
            let Some(s) = v.step else {
                self.stats.deadline_misses += 1;
                continue;
            };
            if s < k {
                self.stats.deadline_misses += 1;
            }
            let age = now.saturating_since(v.sent);
            ctx.record_age(age);
            self.ages.saturating_record(age.as_nanos());
            if slot.balancing {
                // f64::min/max skip a NaN (the initial value).
                self.stats.soc_min = self.stats.soc_min.min(v.soc);
                self.stats.soc_max = self.stats.soc_max.max(v.soc);
            }
            let net = self.mgs[slot.mg].net;
            let inj = &mut self.nets[net].injections[slot.bus];
            inj.0 += v.p_mw;
            inj.1 += v.q_mvar;
        }
        // Solve every network; the header sums them.
        let (mut converged, mut losses, mut p_slack, mut q_slack) = (true, 0.0, 0.0, 0.0);
        let (mut n_buses, mut n_lines) = (0, 0);
        for net in &mut self.nets {
            net.solver
                .get()
                .solve(&net.feeder, &net.injections, &mut net.result);
            let r = &net.result;
            converged &= r.converged;
            losses += r.losses_mw;
            p_slack += r.p_slack_mw;
            q_slack += r.q_slack_mvar;
            n_buses += r.v_pu.len();
            n_lines += r.loading.len();
            if r.converged && r.p_slack_mw.is_finite() {
                let e = r.p_slack_mw * step_h;
                if e > 0.0 {
                    self.stats.energy_imported_mwh += e;
                } else {
                    self.stats.energy_exported_mwh -= e;
                }
            }
        }
        self.out.clear();
        self.out.extend_from_slice(&[
            k as f64,
            if converged { 1.0 } else { 0.0 },
            losses,
            p_slack,
            q_slack,
            n_buses as f64,
            n_lines as f64,
        ]);
        for net in &self.nets {
            self.out.extend_from_slice(&net.result.v_pu);
        }
        for net in &self.nets {
            self.out.extend_from_slice(&net.result.loading);
        }
        // Then each microgrid's summary.
        for mg in &self.mgs {
            let r = &self.nets[mg.net].result;
            let mut net_ex_storage = 0.0;
            for d in mg.first_device..mg.first_device + mg.n_devices {
                if self.latest[d].step.is_some() && !self.slots[d].balancing {
                    net_ex_storage -= self.latest[d].p_mw;
                }
            }
            let v_min = finite_fold(mg.buses.iter().map(|&b| r.v_pu[b]), f64::min);
            let v_max = finite_fold(mg.buses.iter().map(|&b| r.v_pu[b]), f64::max);
            let loading = finite_fold(mg.lines.iter().map(|&l| r.loading[l]), f64::max);
            let p_import: f64 = mg.root_lines.iter().map(|&l| r.p_line_mw[l]).sum();
            if !r.converged {
                self.stats.non_converged += 1;
            } else {
                let (lo, hi) = self.v_band;
                let below = v_min.is_some_and(|v| v < lo);
                let above = v_max.is_some_and(|v| v > hi);
                self.stats.voltage_violations += u64::from(below || above);
            }
            self.out.extend_from_slice(&[
                if r.converged { 1.0 } else { 0.0 },
                v_min.unwrap_or(f64::NAN),
                v_max.unwrap_or(f64::NAN),
                loading.unwrap_or(f64::NAN),
                if r.converged { p_import } else { f64::NAN },
                net_ex_storage,
            ]);
        }
        let missed = self.stats.deadline_misses - misses_before;
        self.stats.steps_with_misses += u64::from(missed > 0);
        self.stats.max_misses_per_step = self.stats.max_misses_per_step.max(missed);
        ctx.publish(
            self.ch_network,
            Recipient::Broadcast,
            protocol::NETWORK_STATE,
            Payload::values(&self.out),
        );
    }
}

impl Agent for Environment {
    /// The grid outcomes, named `grid.*` (documented in `docs/summary.md`).
    fn outcomes(&self, out: &mut Outcomes) {
        let s = &self.stats;
        let n = |v: u64| v as f64;
        out.add("grid.steps", n(s.deadlines));
        out.add("grid.deadline_misses", n(s.deadline_misses));
        out.add(
            "grid.deadline_misses_per_step",
            if s.deadlines == 0 {
                f64::NAN
            } else {
                n(s.deadline_misses) / n(s.deadlines)
            },
        );
        out.add("grid.steps_with_misses", n(s.steps_with_misses));
        out.max("grid.max_misses_per_step", n(s.max_misses_per_step));
        out.add("grid.late_updates", n(s.late_updates));
        out.add("grid.non_converged", n(s.non_converged));
        out.add("grid.voltage_violations", n(s.voltage_violations));
        out.add("grid.energy_imported_mwh", s.energy_imported_mwh);
        out.add("grid.energy_exported_mwh", s.energy_exported_mwh);
        out.min("grid.soc_min", s.soc_min);
        out.max("grid.soc_max", s.soc_max);
        let p = crate::metrics::Percentiles::of(&self.ages);
        let (p50, p95, max) = if p.count == 0 {
            (f64::NAN, f64::NAN, f64::NAN)
        } else {
            (n(p.p50_ns), n(p.p95_ns), n(p.max_ns))
        };
        out.add("grid.state_age_p50_ns", p50);
        out.add("grid.state_age_p95_ns", p95);
        out.max("grid.state_age_max_ns", max);
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let env = ctx.env_prefix().to_string();
        self.ch_actions = ctx.channel(&protocol::actions(&env));
        self.ch_network = ctx.channel(&protocol::network_state(&env));
        let ch_state = ctx.channel(&protocol::state_updates(&env));
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
        if msg.kind != protocol::STATE_UPDATE {
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
            ctx.mark_late_for_step(msg, "grid.step_deadline", k, self.step, self.deadline);
        }
        // The sender's stamp, as this agent's clock compares it.
        let sent = ctx.stamp(msg);
        let held = &mut self.latest[*d as usize];
        if held.step.is_none_or(|s| k >= s) {
            *held = Latest {
                step: Some(k),
                p_mw: p,
                q_mvar: q,
                soc,
                sent,
            };
        }
    }
}

/// A microgrid controller: turns the environment's actions and the latest
/// network state into device setpoints with its [`PolicyParams`], or, under
/// external control, sends the setpoints it is given (see the module docs).
pub struct GridAgent {
    index: usize,
    device_names: Vec<String>,
    /// Each device this agent controls: its agent id (resolved at start)
    /// and its spec, whose kind computes the setpoint.
    devices: Vec<(AgentId, DeviceSpec)>,
    policy: PolicyParams,
    v_min_pu: Option<f64>,
    v_max_pu: Option<f64>,
    /// The voltage of each device's bus in the latest network state, in the
    /// order of `devices`.
    v_bus: Vec<Option<f64>>,
    /// Where each device's bus is in the network state's bus list
    /// ([`GridAgent::set_device_buses`]), in the order of the microgrid's
    /// devices.
    device_buses: Vec<usize>,
    net_load_mw: f64,
    n_balancing: usize,
    ch_devices: ChannelId,
    setpoints_sent: u64,
    /// External control: `None` in the default (policy) mode.
    external: Option<Box<External>>,
}

/// How many steps of externally supplied setpoints a grid agent keeps: an
/// action message more than this many steps late finds its setpoints
/// overwritten and falls back to the policy.
pub const EXTERNAL_STEPS_KEPT: usize = 64;

/// The state of external control.
struct External {
    /// Setpoints by step, in a ring indexed by `k % EXTERNAL_STEPS_KEPT`:
    /// `(k, one setpoint per device)`.
    supplied: Vec<Option<(u64, Vec<f64>)>>,
    received: Received,
}

/// When and for which step a value a grid agent holds was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The step `k` the message carrying the value was about.
    pub step: u64,
    /// When its sender published it.
    pub sent: SimTime,
}

/// What a grid agent under external control has received, each the newest
/// by step (a copy for an older step than the one held, e.g. after
/// reordering, is ignored; the same step replaces it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Received {
    /// The latest action: its stamp and price, $/MWh.
    pub price: Option<(Stamp, f64)>,
    /// The latest network state: its stamp and this microgrid's
    /// [`NETWORK_STATE_STRIDE`] values (converged, v_min, v_max,
    /// loading_max, p_import, net_load; see [`protocol`]).
    pub network: Option<(Stamp, [f64; NETWORK_STATE_STRIDE])>,
    /// The latest state update of each of its devices, in the order of its
    /// devices (those in the simulation).
    pub devices: Vec<Option<(Stamp, DeviceOutput)>>,
}

/// Replaces `held` by `(stamp, value)` unless `held` is for a later step.
fn keep_newest<T>(held: &mut Option<(Stamp, T)>, stamp: Stamp, value: T) {
    if held.as_ref().is_none_or(|(s, _)| stamp.step >= s.step) {
        *held = Some((stamp, value));
    }
}

impl GridAgent {
    /// The controller of microgrid `name`, the `index`-th microgrid.
    pub fn new(name: &str, index: usize, spec: &MicrogridSpec, policy: PolicyParams) -> GridAgent {
        let names = spec
            .devices
            .iter()
            .map(|d| device_agent_name(name, d.id()))
            .collect();
        let devices: Vec<(AgentId, DeviceSpec)> = spec
            .devices
            .iter()
            .map(|d| (AgentId(u32::MAX), d.clone()))
            .collect();
        let n_balancing = devices.iter().filter(|d| d.1.kind().balancing()).count();
        GridAgent {
            index,
            device_names: names,
            devices,
            policy,
            v_min_pu: None,
            v_max_pu: None,
            v_bus: Vec::new(),
            device_buses: Vec::new(),
            net_load_mw: 0.0,
            n_balancing,
            ch_devices: ChannelId(0),
            setpoints_sent: 0,
            external: None,
        }
    }

    /// Tells the agent where its devices' buses are in the network state
    /// (one position per device of the microgrid, in order:
    /// [`Environment::device_buses`]), so that volt-VAr reads each
    /// device's own bus voltage. Without it, volt-VAr sees no voltage.
    pub fn set_device_buses(&mut self, buses: Vec<usize>) {
        self.device_buses = buses;
    }

    /// Setpoints sent so far.
    pub fn setpoints_sent(&self) -> u64 {
        self.setpoints_sent
    }

    /// The lowest and highest voltage of the latest network state received.
    pub fn voltages(&self) -> (Option<f64>, Option<f64>) {
        (self.v_min_pu, self.v_max_pu)
    }

    /// Puts the agent under external control (see the module docs). Call
    /// it before the simulation processes its first event: the agent
    /// subscribes to the state updates when it starts.
    pub fn set_external_control(&mut self) {
        if self.external.is_none() {
            self.external = Some(Box::new(External {
                supplied: vec![None; EXTERNAL_STEPS_KEPT],
                received: Received {
                    devices: vec![None; self.devices.len()],
                    ..Received::default()
                },
            }));
        }
    }

    /// Whether the agent is under external control.
    pub fn is_externally_controlled(&self) -> bool {
        self.external.is_some()
    }

    /// Supplies the setpoints of step `k`, one per device in the order of
    /// the microgrid's devices (storage: MW, positive = discharge; PV: the
    /// curtailment fraction; load: ignored): they are sent when the action
    /// of step `k` arrives. A NaN, or a device past the end of
    /// `setpoints`, gets the policy's setpoint; extra values are ignored.
    /// Supplying step `k` again replaces its setpoints. Does nothing unless
    /// the agent is under external control.
    pub fn set_setpoints(&mut self, k: u64, setpoints: &[f64]) {
        let n = self.devices.len();
        let Some(ext) = self.external.as_mut() else {
            return;
        };
        let slot = &mut ext.supplied[(k % EXTERNAL_STEPS_KEPT as u64) as usize];
        let mut values = match slot.take() {
            Some((_, v)) => v,
            None => Vec::with_capacity(n),
        };
        values.clear();
        values.extend((0..n).map(|j| setpoints.get(j).copied().unwrap_or(f64::NAN)));
        *slot = Some((k, values));
    }

    /// What the agent has received, under external control (`None`
    /// otherwise).
    pub fn received(&self) -> Option<&Received> {
        self.external.as_deref().map(|e| &e.received)
    }
}

impl Agent for GridAgent {
    /// A crash with `state = "lost"`: the controller forgets the network
    /// state it last saw and every externally supplied setpoint and
    /// received value; its configuration (devices, policy) stays.
    fn reset(&mut self) {
        self.v_min_pu = None;
        self.v_max_pu = None;
        self.v_bus.fill(None);
        self.net_load_mw = 0.0;
        if let Some(ext) = self.external.as_deref_mut() {
            ext.supplied.fill(None);
            let devices = ext.received.devices.len();
            ext.received = Received {
                devices: vec![None; devices],
                ..Received::default()
            };
        }
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let env = ctx.env_prefix().to_string();
        let me = ctx.name().to_string();
        for ch in [protocol::actions(&env), protocol::network_state(&env)] {
            let id = ctx.channel(&ch);
            ctx.subscribe(id, Delivery::Push);
        }
        if self.external.is_some() {
            let id = ctx.channel(&protocol::state_updates(&env));
            ctx.subscribe(id, Delivery::Push);
        }
        self.ch_devices = ctx.channel(&protocol::device_actions(&env, &me));
        // Devices not in the simulation (a library user left them out) are
        // not controlled: only devices that exist get setpoints.
        let names = std::mem::take(&mut self.device_names);
        let devices = std::mem::take(&mut self.devices);
        let buses = std::mem::take(&mut self.device_buses);
        for (j, ((_, c), name)) in devices.into_iter().zip(&names).enumerate() {
            if let Some(id) = ctx.agent_id(name) {
                self.devices.push((id, c));
                if let Some(&b) = buses.get(j) {
                    self.device_buses.push(b);
                }
            }
        }
        self.device_names = names;
        if let Some(ext) = self.external.as_mut() {
            ext.received.devices = vec![None; self.devices.len()];
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        match msg.kind {
            protocol::ACTION => {
                let &[k, price] = msg.payload.as_f64s() else {
                    return;
                };
                let mut input = ControlInput {
                    price,
                    net_load_share_mw: self.net_load_mw / self.n_balancing.max(1) as f64,
                    v_min_pu: self.v_min_pu,
                    v_max_pu: self.v_max_pu,
                    v_bus_pu: None,
                };
                let step = k as u64;
                let supplied = match self.external.as_deref_mut() {
                    None => None,
                    Some(ext) => {
                        let stamp = Stamp {
                            step,
                            sent: msg.sent,
                        };
                        keep_newest(&mut ext.received.price, stamp, price);
                        let slot = &ext.supplied[(step % EXTERNAL_STEPS_KEPT as u64) as usize];
                        match slot {
                            Some((s, values)) if *s == step => Some(values.as_slice()),
                            _ => None,
                        }
                    }
                };
                for (j, (id, spec)) in self.devices.iter().enumerate() {
                    input.v_bus_pu = self.v_bus.get(j).copied().flatten();
                    let setpoint = match supplied.and_then(|v| v.get(j)) {
                        Some(&x) if !x.is_nan() => x,
                        _ => spec.kind().setpoint(&self.policy, &input),
                    };
                    // The reactive set point travels only with volt-VAr on.
                    let payload = if self.policy.volt_var {
                        let q_pu = spec.kind().q_setpoint(&self.policy, &input);
                        Payload::values(&[k, setpoint, q_pu])
                    } else {
                        Payload::values(&[k, setpoint])
                    };
                    ctx.publish(
                        self.ch_devices,
                        Recipient::Agent(*id),
                        protocol::DEVICE_ACTION,
                        payload,
                    );
                    self.setpoints_sent += 1;
                }
            }
            protocol::NETWORK_STATE => {
                let v = msg.payload.as_f64s();
                let Some((buses, _, mine)) = protocol::network_state_parts(v, self.index) else {
                    return;
                };
                let finite = |x: f64| x.is_finite().then_some(x);
                self.v_min_pu = finite(mine[1]);
                self.v_max_pu = finite(mine[2]);
                self.v_bus.clear();
                let at = |&b: &usize| buses.get(b).copied().and_then(finite);
                self.v_bus.extend(self.device_buses.iter().map(at));
                self.net_load_mw = if mine[5].is_finite() { mine[5] } else { 0.0 };
                if let Some(ext) = self.external.as_deref_mut() {
                    let mut values = [0.0; NETWORK_STATE_STRIDE];
                    values.copy_from_slice(mine);
                    let stamp = Stamp {
                        step: v[0] as u64,
                        sent: msg.sent,
                    };
                    keep_newest(&mut ext.received.network, stamp, values);
                }
            }
            protocol::STATE_UPDATE => {
                let Some(ext) = self.external.as_deref_mut() else {
                    return;
                };
                let Some(j) = self.devices.iter().position(|(id, _)| *id == msg.sender) else {
                    return;
                };
                let &[k, p_mw, q_mvar, soc] = msg.payload.as_f64s() else {
                    return;
                };
                let stamp = Stamp {
                    step: k as u64,
                    sent: msg.sent,
                };
                let out = DeviceOutput { p_mw, q_mvar, soc };
                keep_newest(&mut ext.received.devices[j], stamp, out);
            }
            _ => {}
        }
    }
}

/// A device: applies each setpoint for one step with its kind's
/// [`DeviceModel`], and reports `[k, P_MW, Q_MVAr, SOC]` (SOC is 0 for
/// devices without one).
pub struct DeviceAgent {
    mg: String,
    model: Box<dyn DeviceModel>,
    step_s: f64,
    start_s: f64,
    ch_state: ChannelId,
    updates: u64,
}

impl DeviceAgent {
    /// Device `spec` of microgrid `mg`, stepping every `step` from
    /// `start_hour` o'clock.
    pub fn new(mg: &str, spec: &DeviceSpec, step: SimDuration, start_hour: f64) -> DeviceAgent {
        DeviceAgent {
            mg: mg.to_string(),
            model: spec.kind().model(),
            step_s: step.as_secs_f64(),
            start_s: start_hour * 3600.0,
            ch_state: ChannelId(0),
            updates: 0,
        }
    }

    /// State of charge, for storage devices.
    pub fn soc(&self) -> Option<f64> {
        self.model.soc()
    }

    /// State updates published so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }
}

impl Agent for DeviceAgent {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let env = ctx.env_prefix().to_string();
        let ch = ctx.channel(&protocol::device_actions(&env, &self.mg));
        ctx.subscribe(ch, Delivery::Push);
        self.ch_state = ctx.channel(&protocol::state_updates(&env));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, msg: &Message) {
        if msg.kind != protocol::DEVICE_ACTION {
            return;
        }
        let (k, setpoint) = match *msg.payload.as_f64s() {
            [k, p, q_pu] => (k, Setpoint { p, q_pu }),
            [k, p] => (k, Setpoint { p, q_pu: 0.0 }),
            _ => return,
        };
        let t_s = self.start_s + ctx.now().as_nanos() as f64 / 1e9;
        let out = self.model.advance(setpoint, t_s, self.step_s, ctx.rng());
        ctx.publish(
            self.ch_state,
            Recipient::Broadcast,
            protocol::STATE_UPDATE,
            Payload::values(&[k, out.p_mw, out.q_mvar, out.soc]),
        );
        self.updates += 1;
    }
}
