//! Power flow on a radial distribution feeder: the linearised DistFlow model.
//!
//! At every step deadline the environment turns the latest `P_MW, Q_MVAr`
//! it holds for each device into a net injection per bus and asks a
//! [`PowerFlow`] model for the bus voltages and line loadings it then
//! publishes on `{env}/network_state`. The model is a trait so that a study
//! can bring its own; the built-in one is [`LinDistFlow`].
//!
//! # The feeder
//!
//! A [`Feeder`] is a radial network: a tree of `n_buses` buses rooted at
//! bus 0, the *slack* bus (the substation, or the point of common coupling
//! with the upstream grid), whose voltage is held at `v_slack_pu`. Every
//! other bus has exactly one *parent line*: the [`Line`] whose `to` is that
//! bus and whose `from` is the bus one step closer to the slack. Line
//! impedances `r_pu`, `x_pu` are in per unit on the feeder base `base_mva`
//! (and the nominal voltage, which the model never needs explicitly);
//! `rating_mva` is the line's thermal rating. [`Feeder::check`] checks all
//! of this and says what is wrong.
//!
//! # The model: linearised DistFlow (Baran & Wu, 1989)
//!
//! The DistFlow equations describe a radial feeder exactly. Dropping the
//! loss terms (which are second order: `r (P² + Q²) / V²`) leaves a linear
//! model that needs no iteration:
//!
//! - **Flows.** The active power `P_ij` on the line from bus `i` to its child
//!   `j` is the sum of the net load of every bus downstream of `j`
//!   (including `j`); likewise `Q_ij`. Net load is minus net injection.
//! - **Voltages.** With `v = V²` the squared voltage magnitude,
//!   `v_j = v_i - 2 (r_ij P_ij + x_ij Q_ij)`, with `P`, `Q` in per unit
//!   (MW / `base_mva`). Then `V_j = sqrt(v_j)`.
//! - **Slack.** The power imported from the upstream grid at bus 0 is the
//!   net load of the whole feeder, bus 0 included.
//!
//! Assumptions, and what they cost:
//! - losses are ignored in the flows and voltages, so line flows are
//!   slightly low and voltage drops slightly small on heavily loaded
//!   feeders. [`FlowResult::losses_mw_est`] gives a first-order estimate of
//!   the losses, for information only; it is not fed back;
//! - the network is balanced (single-phase equivalent) and radial;
//! - shunt elements (line charging, capacitor banks) are not modelled;
//!   model a capacitor bank as a device injecting `Q`.
//!
//! For feeders operated near 1 pu the voltages are typically within a
//! fraction of a percent of an exact AC power flow; the error grows with
//! loading and with the r/x ratio. That is ample for studying how
//! communication delays affect control, not for planning studies.
//!
//! # Units and signs
//!
//! - injections: `injections[bus] = (P_MW, Q_MVAr)`, the *net* injection at
//!   that bus: generation positive, load negative;
//! - line flows [`FlowResult::p_line_mw`], [`FlowResult::q_line_mvar`]:
//!   positive in the direction `from → to` (away from the slack);
//! - slack power [`FlowResult::p_slack_mw`], [`FlowResult::q_slack_mvar`]:
//!   positive when the feeder imports from the upstream grid;
//! - voltages [`FlowResult::v_pu`] in per unit; loading
//!   [`FlowResult::loading`] as the fraction `|S| / rating_mva` (1.0 = at the
//!   rating, above 1.0 = overloaded).
//!
//! # What "converged" means
//!
//! The linear model has no iteration, so it cannot fail to converge in the
//! usual sense. [`FlowResult::converged`] is `false` when the result is not
//! physically meaningful: some squared voltage came out `<= 0` or not finite
//! (the feeder is loaded far beyond what it can carry, or an injection was
//! not a number), or the injections did not match the feeder. The
//! environment publishes the flag as the power flow's convergence.
//!
//! # Determinism
//!
//! [`LinDistFlow::solve`] uses only `+ - * /` and `sqrt`, which IEEE 754
//! defines exactly, and visits buses in an order fixed when the solver is
//! built; the result is the same bits on every platform. It allocates
//! nothing once the solver and the [`FlowResult`] are sized for the feeder.

use serde::{Deserialize, Serialize};

use crate::validate::{KeyPath, Validator};

/// The feeder base power when none is given, in MVA.
pub const DEFAULT_BASE_MVA: f64 = 1.0;

/// The slack voltage when none is given, in per unit.
pub const DEFAULT_V_SLACK_PU: f64 = 1.0;

/// Marks "no parent line" for the slack bus in the solver's tables.
const NO_LINE: usize = usize::MAX;

/// A line (or cable, or transformer branch) of a radial feeder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// The upstream bus (closer to the slack bus 0).
    pub from: usize,
    /// The downstream bus; this line is its parent line.
    pub to: usize,
    /// Series resistance, per unit on the feeder base.
    pub r_pu: f64,
    /// Series reactance, per unit on the feeder base.
    pub x_pu: f64,
    /// Thermal rating, in MVA; loading is reported relative to it.
    pub rating_mva: f64,
}

/// A radial distribution feeder rooted at the slack bus 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feeder {
    /// Base power of the per-unit system, in MVA.
    #[serde(default = "default_base_mva")]
    pub base_mva: f64,
    /// Voltage magnitude held at the slack bus 0, in per unit.
    #[serde(default = "default_v_slack_pu")]
    pub v_slack_pu: f64,
    /// Number of buses, the slack included; buses are `0..n_buses`.
    pub n_buses: usize,
    /// The lines: exactly one parent line per bus `1..n_buses`.
    pub lines: Vec<Line>,
}

fn default_base_mva() -> f64 {
    DEFAULT_BASE_MVA
}

fn default_v_slack_pu() -> f64 {
    DEFAULT_V_SLACK_PU
}

/// Why a [`Feeder`] cannot be solved.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FeederError {
    /// The base power is not a positive finite number. Set `base_mva` to the
    /// base the line impedances are expressed on (e.g. 1 or 10 MVA).
    #[error("base_mva must be a positive finite number, got {value}")]
    BaseMva {
        /// The value found.
        value: f64,
    },
    /// The slack voltage is not a positive finite number. Set `v_slack_pu`
    /// to the substation voltage in per unit, typically 1.0.
    #[error("v_slack_pu must be a positive finite number, got {value}")]
    SlackVoltage {
        /// The value found.
        value: f64,
    },
    /// The feeder has no bus at all. A feeder needs at least the slack bus 0.
    #[error("the feeder has no buses; it needs at least the slack bus 0")]
    NoBuses,
    /// A line names a bus that does not exist. Buses are numbered
    /// `0..n_buses`; fix the line or raise `n_buses`.
    #[error(
        "line {line} refers to bus {bus}, but the feeder has only {n_buses} buses (0..{n_buses})"
    )]
    BusOutOfRange {
        /// Index of the line in `lines`.
        line: usize,
        /// The bus it names.
        bus: usize,
        /// The feeder's bus count.
        n_buses: usize,
    },
    /// A line starts and ends at the same bus. Remove it.
    #[error("line {line} connects bus {bus} to itself")]
    SelfLoop {
        /// Index of the line in `lines`.
        line: usize,
        /// The bus.
        bus: usize,
    },
    /// A line ends at the slack bus 0, which has no parent. Lines point away
    /// from the slack: swap `from` and `to`.
    #[error(
        "line {line} ends at the slack bus 0; lines must point away from the slack (swap from and to)"
    )]
    IntoSlack {
        /// Index of the line in `lines`.
        line: usize,
    },
    /// Two lines end at the same bus, which makes a loop or a parallel
    /// path: the feeder must be radial. Remove one of them, or if the line
    /// is drawn backwards, swap its `from` and `to`.
    #[error(
        "bus {bus} has two parent lines ({first_line} and {second_line}); the feeder must be radial"
    )]
    MultipleParents {
        /// The bus.
        bus: usize,
        /// The first line ending at it.
        first_line: usize,
        /// The second line ending at it.
        second_line: usize,
    },
    /// A bus other than the slack has no parent line, so it is not
    /// connected. Add a line ending at it, or lower `n_buses`.
    #[error(
        "bus {bus} has no parent line (no line has to = {bus}); every bus but the slack needs one"
    )]
    NoParent {
        /// The bus.
        bus: usize,
    },
    /// A bus cannot be reached from the slack: the parent lines of some
    /// buses form a loop detached from bus 0. Reconnect them to the tree.
    #[error("bus {bus} is not connected to the slack bus 0 (its parent lines form a loop)")]
    Unreachable {
        /// The first such bus.
        bus: usize,
    },
    /// A line has a negative or non-finite resistance or reactance. Use
    /// non-negative per-unit values on the feeder base.
    #[error("line {line} has r_pu = {r_pu}, x_pu = {x_pu}; both must be finite and >= 0")]
    Impedance {
        /// Index of the line in `lines`.
        line: usize,
        /// The resistance found.
        r_pu: f64,
        /// The reactance found.
        x_pu: f64,
    },
    /// A line's rating is not a positive finite number. Set `rating_mva` to
    /// the line's thermal rating.
    #[error("line {line} has rating_mva = {rating_mva}; it must be a positive finite number")]
    Rating {
        /// Index of the line in `lines`.
        line: usize,
        /// The rating found.
        rating_mva: f64,
    },
}

impl FeederError {
    /// The key of the feeder table at fault.
    pub fn key(&self) -> KeyPath {
        let line = |k: usize| KeyPath::root().key("lines").index(k);
        match *self {
            FeederError::BaseMva { .. } => KeyPath::root().key("base_mva"),
            FeederError::SlackVoltage { .. } => KeyPath::root().key("v_slack_pu"),
            FeederError::NoBuses
            | FeederError::NoParent { .. }
            | FeederError::Unreachable { .. } => KeyPath::root().key("n_buses"),
            FeederError::BusOutOfRange { line: k, .. }
            | FeederError::SelfLoop { line: k, .. }
            | FeederError::IntoSlack { line: k } => line(k).key("to"),
            FeederError::MultipleParents { second_line, .. } => line(second_line).key("to"),
            FeederError::Impedance { line: k, r_pu, .. } => {
                line(k).key(if r_pu.is_finite() && r_pu >= 0.0 {
                    "x_pu"
                } else {
                    "r_pu"
                })
            }
            FeederError::Rating { line: k, .. } => line(k).key("rating_mva"),
        }
    }
}

/// The solver's view of a validated feeder: a visiting order and the parent
/// line of each bus.
#[derive(Clone, Debug)]
struct Topology {
    /// Buses in breadth-first order from the slack: every bus comes after its
    /// parent, so a forward pass goes downstream and a reverse pass upstream.
    order: Vec<usize>,
    /// The parent line of each bus, [`NO_LINE`] for the slack.
    parent_line: Vec<usize>,
    /// `(from, to)` of each line when the topology was built, to notice a
    /// feeder that changed shape since.
    ends: Vec<(usize, usize)>,
}

impl Feeder {
    /// A chain `0 - 1 - 2 - ... - (n_buses - 1)` of identical lines, on the
    /// default base ([`DEFAULT_BASE_MVA`]) with the slack at
    /// [`DEFAULT_V_SLACK_PU`]. Line `k` runs from bus `k` to bus `k + 1`.
    pub fn chain(n_buses: usize, r_pu: f64, x_pu: f64, rating_mva: f64) -> Feeder {
        let lines = (1..n_buses)
            .map(|to| Line {
                from: to - 1,
                to,
                r_pu,
                x_pu,
                rating_mva,
            })
            .collect();
        Feeder {
            base_mva: DEFAULT_BASE_MVA,
            v_slack_pu: DEFAULT_V_SLACK_PU,
            n_buses,
            lines,
        }
    }

    /// The same feeder on another base power, in MVA.
    pub fn with_base_mva(mut self, base_mva: f64) -> Feeder {
        self.base_mva = base_mva;
        self
    }

    /// The same feeder with another slack voltage, in per unit.
    pub fn with_v_slack_pu(mut self, v_slack_pu: f64) -> Feeder {
        self.v_slack_pu = v_slack_pu;
        self
    }

    /// Checks that the feeder is a radial tree rooted at bus 0 with sane
    /// parameters; the error says which line or bus is wrong.
    pub fn check(&self) -> Result<(), FeederError> {
        self.topology().map(|_| ())
    }

    /// [`Feeder::check`] through the validation layer: the problem is
    /// reported at its key (`base_mva`, `lines[3].r_pu`, ...) relative to
    /// the feeder's table.
    pub fn validate(&self, v: &mut Validator) {
        if let Err(e) = self.check() {
            v.fail_at(v.path().join(&e.key()), e.to_string());
        }
    }

    /// Validates and computes the visiting order. Children are visited in
    /// line order, so the order depends only on the feeder.
    fn topology(&self) -> Result<Topology, FeederError> {
        if !(self.base_mva.is_finite() && self.base_mva > 0.0) {
            return Err(FeederError::BaseMva {
                value: self.base_mva,
            });
        }
        if !(self.v_slack_pu.is_finite() && self.v_slack_pu > 0.0) {
            return Err(FeederError::SlackVoltage {
                value: self.v_slack_pu,
            });
        }
        let n = self.n_buses;
        if n == 0 {
            return Err(FeederError::NoBuses);
        }
        let mut parent_line = vec![NO_LINE; n];
        for (k, line) in self.lines.iter().enumerate() {
            for bus in [line.from, line.to] {
                if bus >= n {
                    return Err(FeederError::BusOutOfRange {
                        line: k,
                        bus,
                        n_buses: n,
                    });
                }
            }
            if line.from == line.to {
                return Err(FeederError::SelfLoop {
                    line: k,
                    bus: line.from,
                });
            }
            if line.to == 0 {
                return Err(FeederError::IntoSlack { line: k });
            }
            let impedance_ok = line.r_pu.is_finite()
                && line.r_pu >= 0.0
                && line.x_pu.is_finite()
                && line.x_pu >= 0.0;
            if !impedance_ok {
                return Err(FeederError::Impedance {
                    line: k,
                    r_pu: line.r_pu,
                    x_pu: line.x_pu,
                });
            }
            if !(line.rating_mva.is_finite() && line.rating_mva > 0.0) {
                return Err(FeederError::Rating {
                    line: k,
                    rating_mva: line.rating_mva,
                });
            }
            let slot = &mut parent_line[line.to];
            if *slot != NO_LINE {
                return Err(FeederError::MultipleParents {
                    bus: line.to,
                    first_line: *slot,
                    second_line: k,
                });
            }
            *slot = k;
        }
        if let Some(bus) = (1..n).find(|&b| parent_line[b] == NO_LINE) {
            return Err(FeederError::NoParent { bus });
        }

        // Children in compressed form (offsets into one array), filled in
        // line order so the breadth-first order is a function of the feeder.
        let mut child_start = vec![0usize; n + 1];
        for line in &self.lines {
            child_start[line.from + 1] += 1;
        }
        for b in 0..n {
            child_start[b + 1] += child_start[b];
        }
        let mut fill = child_start.clone();
        let mut children = vec![0usize; self.lines.len()];
        for line in &self.lines {
            children[fill[line.from]] = line.to;
            fill[line.from] += 1;
        }
        let mut order = Vec::with_capacity(n);
        let mut reached = vec![false; n];
        order.push(0);
        reached[0] = true;
        let mut head = 0;
        while head < order.len() {
            let b = order[head];
            head += 1;
            for &c in &children[child_start[b]..child_start[b + 1]] {
                // Each bus has one parent, so a bus is met at most once;
                // the flag only guards the loop detection below.
                if !reached[c] {
                    reached[c] = true;
                    order.push(c);
                }
            }
        }
        if let Some(bus) = reached.iter().position(|&r| !r) {
            return Err(FeederError::Unreachable { bus });
        }
        let ends = self.lines.iter().map(|l| (l.from, l.to)).collect();
        Ok(Topology {
            order,
            parent_line,
            ends,
        })
    }
}

/// The result of a power flow, sized for one feeder and reused between
/// calls so that solving allocates nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowResult {
    /// Voltage magnitude at each bus, in per unit; `NaN` where the model
    /// gave no meaningful value.
    pub v_pu: Vec<f64>,
    /// Loading of each line (same index as [`Feeder::lines`]) as the
    /// fraction `|S| / rating_mva`.
    pub loading: Vec<f64>,
    /// Active power on each line, MW, positive from `from` to `to`.
    pub p_line_mw: Vec<f64>,
    /// Reactive power on each line, MVAr, positive from `from` to `to`.
    pub q_line_mvar: Vec<f64>,
    /// Active power imported from the upstream grid at the slack bus, MW.
    pub p_slack_mw: f64,
    /// Reactive power imported from the upstream grid at the slack bus, MVAr.
    pub q_slack_mvar: f64,
    /// First-order estimate of the line losses, MW: `Σ r (P² + Q²) / V²` with
    /// the lossless flows and the sending-end voltage. Informational only;
    /// the flows and voltages above do not include losses.
    pub losses_mw_est: f64,
    /// Whether the result is physically meaningful: every squared voltage
    /// is positive and finite (see the module docs).
    pub converged: bool,
}

impl FlowResult {
    /// An empty result sized for `feeder`: all values `NaN`, not converged.
    pub fn new(feeder: &Feeder) -> FlowResult {
        let mut out = FlowResult {
            v_pu: Vec::new(),
            loading: Vec::new(),
            p_line_mw: Vec::new(),
            q_line_mvar: Vec::new(),
            p_slack_mw: f64::NAN,
            q_slack_mvar: f64::NAN,
            losses_mw_est: f64::NAN,
            converged: false,
        };
        out.resize_for(feeder);
        out
    }

    /// Makes the vectors fit `feeder`. Allocates only if the sizes differ.
    fn resize_for(&mut self, feeder: &Feeder) {
        let n = feeder.n_buses;
        let m = feeder.lines.len();
        self.v_pu.resize(n, f64::NAN);
        self.loading.resize(m, f64::NAN);
        self.p_line_mw.resize(m, f64::NAN);
        self.q_line_mvar.resize(m, f64::NAN);
    }

    /// Marks the whole result as meaningless.
    fn fail(&mut self) {
        self.v_pu.fill(f64::NAN);
        self.loading.fill(f64::NAN);
        self.p_line_mw.fill(f64::NAN);
        self.q_line_mvar.fill(f64::NAN);
        self.p_slack_mw = f64::NAN;
        self.q_slack_mvar = f64::NAN;
        self.losses_mw_est = f64::NAN;
        self.converged = false;
    }

    /// The lowest bus voltage, per unit, ignoring `NaN`s; `None` if there is
    /// no finite voltage.
    pub fn v_min_pu(&self) -> Option<f64> {
        finite_fold(&self.v_pu, f64::min)
    }

    /// The highest bus voltage, per unit, ignoring `NaN`s; `None` if there is
    /// no finite voltage.
    pub fn v_max_pu(&self) -> Option<f64> {
        finite_fold(&self.v_pu, f64::max)
    }

    /// The highest line loading, ignoring `NaN`s; `None` if there is none.
    pub fn loading_max(&self) -> Option<f64> {
        finite_fold(&self.loading, f64::max)
    }
}

/// Folds the finite values of `xs` with `f`; `None` if there are none.
fn finite_fold(xs: &[f64], f: fn(f64, f64) -> f64) -> Option<f64> {
    xs.iter().copied().filter(|v| v.is_finite()).reduce(f)
}

/// A power-flow model: turns net injections into voltages and loadings.
///
/// Implementations must be deterministic (same bits on every platform for
/// the same inputs) and should not allocate in [`PowerFlow::solve`] once
/// `out` is sized for the feeder.
pub trait PowerFlow: Send {
    /// A short stable name for traces and reports, e.g. `"lindistflow"`.
    fn name(&self) -> &'static str;

    /// Solves `feeder` for `injections[bus] = (P_MW, Q_MVAr)` (generation
    /// positive, load negative) and writes every field of `out`. Bad input
    /// never panics: it yields `out.converged == false`.
    fn solve(&mut self, feeder: &Feeder, injections: &[(f64, f64)], out: &mut FlowResult);
}

/// The linearised, lossless DistFlow model on a radial feeder (see the
/// module docs).
///
/// Built for one feeder with [`LinDistFlow::new`], which validates it and
/// fixes the visiting order once. Impedances, ratings, base and slack
/// voltage are read from the feeder on every call, so they may change
/// between calls; if the feeder's *shape* changes (buses or line ends), the
/// solver rebuilds its order on the next call (allocating once), and if the
/// new shape is invalid it reports `converged == false`.
#[derive(Clone, Debug)]
pub struct LinDistFlow {
    topology: Topology,
    /// Net load of each bus's subtree, MW; scratch space reused per call.
    subtree_p_mw: Vec<f64>,
    /// Net reactive load of each bus's subtree, MVAr; scratch space.
    subtree_q_mvar: Vec<f64>,
}

impl LinDistFlow {
    /// A solver for `feeder`, or why the feeder is not a valid radial feeder.
    pub fn new(feeder: &Feeder) -> Result<LinDistFlow, FeederError> {
        let topology = feeder.topology()?;
        let n = feeder.n_buses;
        Ok(LinDistFlow {
            topology,
            subtree_p_mw: vec![0.0; n],
            subtree_q_mvar: vec![0.0; n],
        })
    }

    /// Whether the prepared order still describes `feeder`.
    fn fits(&self, feeder: &Feeder) -> bool {
        feeder.n_buses == self.topology.parent_line.len()
            && feeder.lines.len() == self.topology.ends.len()
            && feeder
                .lines
                .iter()
                .zip(&self.topology.ends)
                .all(|(l, &(from, to))| l.from == from && l.to == to)
    }
}

impl PowerFlow for LinDistFlow {
    fn name(&self) -> &'static str {
        "lindistflow"
    }

    fn solve(&mut self, feeder: &Feeder, injections: &[(f64, f64)], out: &mut FlowResult) {
        out.resize_for(feeder);
        if !self.fits(feeder) {
            match LinDistFlow::new(feeder) {
                Ok(fresh) => *self = fresh,
                Err(_) => {
                    out.fail();
                    return;
                }
            }
        }
        // Parameters may have changed since the order was built; a bad
        // base would silently scale everything, so refuse it here too.
        let base_ok = feeder.base_mva.is_finite() && feeder.base_mva > 0.0;
        if !base_ok || injections.len() != feeder.n_buses {
            out.fail();
            return;
        }
        let base_mva = feeder.base_mva;
        let order = &self.topology.order;
        let parent_line = &self.topology.parent_line;
        let sub_p = &mut self.subtree_p_mw;
        let sub_q = &mut self.subtree_q_mvar;

        // Upstream pass: each line carries the net load of its subtree.
        for (b, &(p_mw, q_mvar)) in injections.iter().enumerate() {
            sub_p[b] = -p_mw;
            sub_q[b] = -q_mvar;
        }
        for &b in order.iter().rev() {
            let l = parent_line[b];
            if l == NO_LINE {
                continue;
            }
            out.p_line_mw[l] = sub_p[b];
            out.q_line_mvar[l] = sub_q[b];
            let parent = feeder.lines[l].from;
            sub_p[parent] += sub_p[b];
            sub_q[parent] += sub_q[b];
        }
        out.p_slack_mw = sub_p[0];
        out.q_slack_mvar = sub_q[0];

        // Downstream pass on squared voltages, held in `v_pu` until the
        // square roots at the end.
        out.v_pu[0] = feeder.v_slack_pu * feeder.v_slack_pu;
        let mut losses_pu = 0.0;
        for &b in order.iter() {
            let l = parent_line[b];
            if l == NO_LINE {
                continue;
            }
            let line = &feeder.lines[l];
            let p_pu = out.p_line_mw[l] / base_mva;
            let q_pu = out.q_line_mvar[l] / base_mva;
            let v_from_sq = out.v_pu[line.from];
            out.v_pu[b] = v_from_sq - 2.0 * (line.r_pu * p_pu + line.x_pu * q_pu);
            let s_sq_pu = p_pu * p_pu + q_pu * q_pu;
            out.loading[l] = (s_sq_pu.sqrt() * base_mva) / line.rating_mva;
            losses_pu += line.r_pu * s_sq_pu / v_from_sq;
        }
        out.losses_mw_est = losses_pu * base_mva;

        let mut meaningful = true;
        for v in out.v_pu.iter_mut() {
            if !(v.is_finite() && *v > 0.0) {
                meaningful = false;
                *v = f64::NAN;
            } else {
                *v = v.sqrt();
            }
        }
        out.converged = meaningful;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    fn solve(feeder: &Feeder, inj: &[(f64, f64)]) -> FlowResult {
        let mut pf = LinDistFlow::new(feeder).expect("valid feeder");
        let mut out = FlowResult::new(feeder);
        pf.solve(feeder, inj, &mut out);
        out
    }

    #[test]
    fn one_line_matches_hand_calculation() {
        // 0.5 MW + 0.2 MVAr load at bus 1 on a 1 MVA base:
        // v1 = 1 - 2 (0.01 * 0.5 + 0.02 * 0.2) = 0.982.
        let feeder = Feeder::chain(2, 0.01, 0.02, 2.0);
        let out = solve(&feeder, &[(0.0, 0.0), (-0.5, -0.2)]);
        assert!(out.converged);
        assert_eq!(out.v_pu[0], 1.0);
        assert!(close(out.v_pu[1], 0.982f64.sqrt()), "{}", out.v_pu[1]);
        assert!(close(out.p_line_mw[0], 0.5));
        assert!(close(out.q_line_mvar[0], 0.2));
        assert!(close(out.p_slack_mw, 0.5));
        assert!(close(out.q_slack_mvar, 0.2));
        assert!(close(out.loading[0], 0.29f64.sqrt() / 2.0));
        assert!(close(out.losses_mw_est, 0.01 * 0.29));
    }

    #[test]
    fn base_mva_scales_the_drop() {
        // The same MW on a 10 MVA base is a tenth of the per-unit flow.
        let feeder = Feeder::chain(2, 0.01, 0.02, 2.0).with_base_mva(10.0);
        let out = solve(&feeder, &[(0.0, 0.0), (-5.0, -2.0)]);
        assert!(close(out.v_pu[1], 0.982f64.sqrt()));
        assert!(close(out.loading[0], 29f64.sqrt() / 2.0));
    }

    #[test]
    fn downstream_flows_add_up() {
        let feeder = Feeder::chain(4, 0.01, 0.01, 1.0);
        let inj = [(0.0, 0.0), (-0.1, -0.01), (-0.2, -0.02), (-0.3, -0.03)];
        let out = solve(&feeder, &inj);
        assert!(out.converged);
        let p: Vec<f64> = out.p_line_mw.clone();
        assert!(
            close(p[0], 0.6) && close(p[1], 0.5) && close(p[2], 0.3),
            "{p:?}"
        );
        assert!(close(out.q_line_mvar[0], 0.06));
        assert!(close(out.p_slack_mw, 0.6));
        // Each drop uses the flow of its own line.
        for k in 0..3 {
            let v_from_sq = out.v_pu[k] * out.v_pu[k];
            let v_to_sq = out.v_pu[k + 1] * out.v_pu[k + 1];
            let drop = 2.0 * (0.01 * out.p_line_mw[k] + 0.01 * out.q_line_mvar[k]);
            assert!((v_from_sq - v_to_sq - drop).abs() < 1e-12);
        }
    }

    #[test]
    fn branching_feeder_sums_each_subtree() {
        // 0 - 1, with 1 feeding 2 and 3; bus 0 has its own load.
        let line = |from, to| Line {
            from,
            to,
            r_pu: 0.01,
            x_pu: 0.0,
            rating_mva: 1.0,
        };
        let feeder = Feeder {
            base_mva: 1.0,
            v_slack_pu: 1.02,
            n_buses: 4,
            lines: vec![line(1, 3), line(0, 1), line(1, 2)],
        };
        let out = solve(
            &feeder,
            &[(-0.05, 0.0), (-0.1, 0.0), (-0.2, 0.0), (0.4, 0.0)],
        );
        assert!(out.converged);
        assert!(close(out.p_line_mw[0], -0.4)); // bus 3 exports
        assert!(close(out.p_line_mw[2], 0.2));
        assert!(close(out.p_line_mw[1], -0.1));
        assert!(close(out.p_slack_mw, -0.05));
        assert!(out.v_pu[3] > out.v_pu[1] && out.v_pu[2] < out.v_pu[1]);
    }

    #[test]
    fn zero_injection_gives_flat_voltage() {
        let feeder = Feeder::chain(6, 0.02, 0.03, 1.0).with_v_slack_pu(1.03);
        let out = solve(&feeder, &[(0.0, 0.0); 6]);
        assert!(out.converged);
        assert!(out.v_pu.iter().all(|&v| v == 1.03), "{:?}", out.v_pu);
        assert!(out.loading.iter().all(|&l| l == 0.0));
        assert_eq!(out.p_slack_mw, 0.0);
    }

    #[test]
    fn generation_raises_voltage() {
        let feeder = Feeder::chain(3, 0.02, 0.02, 1.0);
        let out = solve(&feeder, &[(0.0, 0.0), (0.0, 0.0), (0.5, 0.0)]);
        assert!(out.converged);
        assert!(out.v_pu[1] > 1.0 && out.v_pu[2] > out.v_pu[1]);
        assert!(out.p_slack_mw < 0.0, "the feeder exports");
        assert_eq!(out.v_max_pu(), Some(out.v_pu[2]));
        assert_eq!(out.v_min_pu(), Some(1.0));
    }

    #[test]
    fn loading_is_apparent_power_over_rating() {
        let feeder = Feeder::chain(2, 0.0, 0.0, 0.5);
        let out = solve(&feeder, &[(0.0, 0.0), (-0.3, -0.4)]);
        assert!(close(out.loading[0], 1.0));
        assert_eq!(out.loading_max(), Some(out.loading[0]));
    }

    #[test]
    fn overload_beyond_collapse_is_not_converged() {
        let feeder = Feeder::chain(2, 0.1, 0.1, 1.0);
        let out = solve(&feeder, &[(0.0, 0.0), (-10.0, -10.0)]);
        assert!(!out.converged);
        assert!(out.v_pu[1].is_nan());
        assert_eq!(out.v_min_pu(), Some(1.0));
    }

    #[test]
    fn nan_injection_or_wrong_length_is_not_converged() {
        let feeder = Feeder::chain(3, 0.01, 0.01, 1.0);
        let mut pf = LinDistFlow::new(&feeder).unwrap();
        let mut out = FlowResult::new(&feeder);
        pf.solve(
            &feeder,
            &[(0.0, 0.0), (f64::NAN, 0.0), (0.0, 0.0)],
            &mut out,
        );
        assert!(!out.converged);
        pf.solve(&feeder, &[(0.0, 0.0)], &mut out);
        assert!(!out.converged);
        assert!(out.p_slack_mw.is_nan());
        // And it recovers on good input.
        pf.solve(&feeder, &[(0.0, 0.0); 3], &mut out);
        assert!(out.converged);
    }

    #[test]
    fn solver_follows_a_changed_feeder() {
        let small = Feeder::chain(2, 0.01, 0.01, 1.0);
        let big = Feeder::chain(5, 0.01, 0.01, 1.0);
        let mut pf = LinDistFlow::new(&small).unwrap();
        let mut out = FlowResult::new(&small);
        pf.solve(&big, &[(-0.1, 0.0); 5], &mut out);
        assert!(out.converged);
        assert_eq!(out.v_pu.len(), 5);
        assert!(close(out.p_slack_mw, 0.5));
        let mut broken = big.clone();
        broken.lines[2].to = 1;
        pf.solve(&broken, &[(0.0, 0.0); 5], &mut out);
        assert!(!out.converged);
    }

    #[test]
    fn repeated_solves_are_bit_identical() {
        let feeder = Feeder::chain(8, 0.013, 0.021, 1.0);
        let inj: Vec<(f64, f64)> = (0..8)
            .map(|b| (-0.01 * b as f64, 0.003 * b as f64))
            .collect();
        let mut pf = LinDistFlow::new(&feeder).unwrap();
        let mut a = FlowResult::new(&feeder);
        pf.solve(&feeder, &inj, &mut a);
        let mut b = FlowResult::new(&feeder);
        pf.solve(&feeder, &inj, &mut b);
        let bits = |r: &FlowResult| r.v_pu.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
        assert_eq!(pf.name(), "lindistflow");
    }

    #[test]
    fn non_radial_feeders_are_rejected() {
        let mut loop_feeder = Feeder::chain(3, 0.01, 0.01, 1.0);
        loop_feeder.lines.push(Line {
            from: 0,
            to: 2,
            r_pu: 0.01,
            x_pu: 0.01,
            rating_mva: 1.0,
        });
        assert_eq!(
            loop_feeder.check(),
            Err(FeederError::MultipleParents {
                bus: 2,
                first_line: 1,
                second_line: 2
            })
        );
        assert!(LinDistFlow::new(&loop_feeder).is_err());

        // 2 -> 1 -> 2 is a loop detached from the slack; bus 3 hangs off it.
        let mut detached = Feeder::chain(4, 0.01, 0.01, 1.0);
        detached.lines[0].from = 2;
        detached.lines[2].from = 0;
        assert_eq!(detached.check(), Err(FeederError::Unreachable { bus: 1 }));

        let mut missing = Feeder::chain(3, 0.01, 0.01, 1.0);
        missing.lines.pop();
        assert_eq!(missing.check(), Err(FeederError::NoParent { bus: 2 }));

        let mut backwards = Feeder::chain(2, 0.01, 0.01, 1.0);
        backwards.lines[0] = Line {
            from: 1,
            to: 0,
            ..backwards.lines[0].clone()
        };
        assert_eq!(backwards.check(), Err(FeederError::IntoSlack { line: 0 }));
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let ok = Feeder::chain(3, 0.01, 0.01, 1.0);
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(Feeder::chain(1, 0.0, 0.0, 1.0).check(), Ok(()));
        assert_eq!(
            Feeder::chain(0, 0.0, 0.0, 1.0).check(),
            Err(FeederError::NoBuses)
        );
        assert!(matches!(
            ok.clone().with_base_mva(0.0).check(),
            Err(FeederError::BaseMva { .. })
        ));
        assert!(matches!(
            ok.clone().with_v_slack_pu(f64::NAN).check(),
            Err(FeederError::SlackVoltage { .. })
        ));
        assert!(matches!(
            Feeder::chain(3, -0.01, 0.01, 1.0).check(),
            Err(FeederError::Impedance { line: 0, .. })
        ));
        assert!(matches!(
            Feeder::chain(3, 0.01, 0.01, 0.0).check(),
            Err(FeederError::Rating { line: 0, .. })
        ));
        let mut out_of_range = ok.clone();
        out_of_range.lines[1].to = 7;
        assert_eq!(
            out_of_range.check(),
            Err(FeederError::BusOutOfRange {
                line: 1,
                bus: 7,
                n_buses: 3
            })
        );
        let mut self_loop = ok;
        self_loop.lines[1].from = 2;
        assert_eq!(
            self_loop.check(),
            Err(FeederError::SelfLoop { line: 1, bus: 2 })
        );
    }

    #[test]
    fn feeder_reads_from_toml() {
        let text =
            "n_buses = 2\n[[lines]]\nfrom = 0\nto = 1\nr_pu = 0.01\nx_pu = 0.02\nrating_mva = 1\n";
        let feeder: Feeder = toml::from_str(text).unwrap();
        assert_eq!(feeder, Feeder::chain(2, 0.01, 0.02, 1.0));
        assert!(toml::from_str::<Feeder>("n_buses = 1\nlines = []\nbogus = 1\n").is_err());
    }

    proptest! {
        #[test]
        fn loads_only_never_raise_voltage_along_a_chain(
            r_pu in 0.0f64..0.01,
            x_pu in 0.0f64..0.01,
            loads in proptest::collection::vec((0.0f64..0.1, 0.0f64..0.1), 1..20),
        ) {
            let n = loads.len() + 1;
            let feeder = Feeder::chain(n, r_pu, x_pu, 1.0);
            let mut inj = vec![(0.0, 0.0)];
            inj.extend(loads.iter().map(|&(p, q)| (-p, -q)));
            let out = solve(&feeder, &inj);
            prop_assert!(out.converged);
            for k in 1..n {
                prop_assert!(out.v_pu[k] <= out.v_pu[k - 1], "{:?}", out.v_pu);
            }
        }
    }

    #[test]
    fn feeder_problems_are_reported_at_their_key() {
        let mut bad = Feeder::chain(3, 0.01, 0.01, 1.0).with_base_mva(0.0);
        bad.lines[1].r_pu = -1.0;
        let mut v = Validator::at_path(KeyPath::root().key("feeder"));
        bad.validate(&mut v);
        let err = v.finish().unwrap_err();
        // The first problem found is the base; the check stops there.
        assert_eq!(err.issues[0].path.to_string(), "feeder.base_mva");
        let bad = Feeder::chain(3, 0.01, 0.01, 1.0);
        let mut with_bad_line = bad.clone();
        with_bad_line.lines[1].x_pu = f64::NAN;
        assert_eq!(
            with_bad_line.check().unwrap_err().key().to_string(),
            "lines[1].x_pu"
        );
        let mut v = Validator::new();
        bad.validate(&mut v);
        assert!(v.is_ok());
    }
}
