//! Power flow on a radial distribution feeder: the exact AC model
//! ([`AcSweep`], the default) and the linearised DistFlow model
//! ([`LinDistFlow`]).
//!
//! At every step deadline the environment turns the latest `P_MW, Q_MVAr`
//! it holds for each device into a net injection per bus and asks a
//! [`PowerFlow`] model for the bus voltages and line loadings it then
//! publishes on `{env}/network_state`. The model is a trait so that a study
//! can bring its own ([`PowerFlowFactory`]). The feeder it solves
//! ([`Feeder`]: buses, lines, checks) is in `grid::feeder`; `docs/grid.md`
//! has the same material for users.
//!
//! # Assumptions (both models)
//!
//! - a balanced network, solved as its single-phase equivalent;
//! - radial: a tree rooted at the slack bus 0, whose voltage is held at
//!   `v_slack_pu` with angle 0;
//! - lines are series impedances `z = r + jx` (per unit on `base_mva`):
//!   no shunt elements (line charging, capacitor banks; model a capacitor
//!   bank as a device injecting `Q`);
//! - constant-power injections: a device's `P`, `Q` do not depend on its
//!   voltage.
//!
//! # The exact model: backward/forward sweep ([`AcSweep`])
//!
//! With complex bus voltages `V` and net injections `S = (P + jQ) /
//! base_mva` per unit, each sweep (Shirmohammadi et al., 1988)
//!
//! 1. **backward**: every bus draws `I_b = -conj(S_b / V_b)`; from the
//!    leaves to the slack, each line carries the sum of what its subtree
//!    draws, `I_line(j) = I_j + Σ_{children k} I_line(k)`;
//! 2. **forward**: from the slack down, `V_j = V_i - z_ij · I_line(j)`.
//!
//! It repeats until no voltage moved by more than the tolerance (`max |ΔV|
//! < tol`, default [`DEFAULT_TOLERANCE_PU`] = 1e-10 pu), then computes the
//! outputs from the converged voltages (with the currents recomputed at
//! them): the flow at the sending end `S_ij = V_i · conj(I_ij)` (so
//! [`FlowResult::p_line_mw`] includes the line's own and every downstream
//! loss), the loss `r |I|²`, the slack import `V_0 · conj(I_0)` (loads plus
//! losses), `|V|` and the angle.
//!
//! **Warm start.** A solve starts from the previous solution when that
//! converged on a feeder of the same shape, otherwise flat (every bus at
//! the slack voltage, angle 0). The sweep converges linearly: in the
//! shipped grid scenarios a warm-started solve takes 4.4 to 6.7 sweeps on
//! average (at most 12), a flat start about 10, an unchanged state 1.
//!
//! **Converged** means `max |ΔV| < tol` was reached. The solve fails
//! (`converged = false`, every value `NaN`, never a made-up voltage) when
//! a voltage falls below [`V_FLOOR_PU`] (0.05 pu) or is not finite, when
//! [`STALL_SWEEPS`] (50) sweeps in a row bring no new smallest `|ΔV|` (the
//! iteration wanders or cycles), when the iteration limit
//! ([`DEFAULT_MAX_ITER`] = 1000) is reached, or when an input is bad (a
//! non-finite injection, the wrong number of injections, an invalid
//! feeder). Beyond the maximum loadability (the nose of the PV curve) there
//! is no solution and the sweep fails. Close to the nose it converges
//! slowly: on the reference cases, loads at 99.5 % of the maximum of a
//! 2-bus feeder and just below collapse on a 12-bus chain and on the
//! 33-bus feeder of Baran & Wu converge in 140 to 320 sweeps, and every
//! case that pandapower's Newton–Raphson solves, the sweep solves too. A
//! case closer still to the nose may need more than the limit (raise
//! `pf_max_iter`); the sweep then reports no solution where one exists,
//! with voltages that would be below about 0.45 pu.
//!
//! **Accuracy.** Against pandapower's Newton–Raphson (Thurner et al.,
//! 2018) on the 210 cases of `tests/data/powerflow/` (every shipped grid
//! scenario's feeders at operating points from real runs, and stress
//! cases): largest `|ΔV|` 1.8e-9 pu, loading 1.1e-8, the same converged
//! flag in every case (`cargo test --test powerflow_reference --
//! --nocapture`; `scripts/check_pf_reference.sh` recomputes the reference).
//!
//! # The linearised model: LinDistFlow ([`LinDistFlow`])
//!
//! The DistFlow equations (Baran & Wu, 1989) describe a radial feeder
//! exactly. Dropping the loss terms (second order: `r (P² + Q²) / V²`)
//! leaves a linear model that needs no iteration:
//!
//! - **Flows.** The active power `P_ij` on the line from bus `i` to its
//!   child `j` is the sum of the net load of every bus downstream of `j`
//!   (including `j`); likewise `Q_ij`. Net load is minus net injection.
//! - **Voltages.** With `v = V²`, `v_j = v_i - 2 (r_ij P_ij + x_ij Q_ij)`,
//!   `P`, `Q` in per unit. Then `V_j = sqrt(v_j)`.
//! - **Slack.** The import at bus 0 is the net load of the whole feeder.
//! - **Losses and loading.** The lossless flow of a line is the power at
//!   its `to` end, so the current is `|I| = sqrt(P² + Q²) / V_to` whichever
//!   way the power flows; the loss estimate `r |I|²` is for information and
//!   is not fed back.
//!
//! It has no angles ([`FlowResult::va_deg`] is `NaN`) and no iterations
//! ([`FlowResult::iterations`] is 0). "Converged" is `false` when some
//! squared voltage came out `<= 0` or not finite, or an input was bad.
//! Voltages are within a fraction of a percent of the AC model on lightly
//! loaded feeders; the error grows with loading and r/x.
//!
//! # Units and signs
//!
//! - injections: `injections[bus] = (P_MW, Q_MVAr)`, the *net* injection
//!   at that bus: generation positive, load negative;
//! - line flows [`FlowResult::p_line_mw`], [`FlowResult::q_line_mvar`]: at
//!   the line's `from` end, positive in the direction `from → to` (away
//!   from the slack);
//! - slack power [`FlowResult::p_slack_mw`], [`FlowResult::q_slack_mvar`]:
//!   positive when the feeder imports from the upstream grid;
//! - voltages [`FlowResult::v_pu`] in per unit, angles
//!   [`FlowResult::va_deg`] in degrees; loading [`FlowResult::loading`] is
//!   current based, `|I| / (rating_mva / base_mva)` with `|I|` in per unit
//!   (the rating is the thermal rating at nominal voltage; pandapower's
//!   `loading_percent / 100`); 1.0 = at the rating.
//!
//! # Determinism
//!
//! Both models use only `+ - * /` and `sqrt`, which IEEE 754 defines
//! exactly (and `libm::atan2` for the angles), and visit buses in an order
//! fixed when the solver is built; the result is the same bits on every
//! platform. Neither allocates once the solver and the [`FlowResult`] are
//! sized for the feeder.
//!
//! # References
//!
//! - M. E. Baran and F. F. Wu, "Network reconfiguration in distribution
//!   systems for loss reduction and load balancing", *IEEE Transactions on
//!   Power Delivery* 4(2), pp. 1401–1407, 1989, doi:10.1109/61.25627.
//! - D. Shirmohammadi, H. W. Hong, A. Semlyen and G. X. Luo, "A
//!   compensation-based power flow method for weakly meshed distribution
//!   and transmission networks", *IEEE Transactions on Power Systems* 3(2),
//!   pp. 753–762, 1988, doi:10.1109/59.192932.
//! - L. Thurner, A. Scheidler, F. Schäfer, J.-H. Menke, J. Dollichon,
//!   F. Meier, S. Meinecke and M. Braun, "pandapower — An Open-Source
//!   Python Tool for Convenient Modeling, Analysis, and Optimization of
//!   Electric Power Systems", *IEEE Transactions on Power Systems* 33(6),
//!   pp. 6510–6521, 2018, doi:10.1109/TPWRS.2018.2829021.

mod ac;

pub use ac::{
    AcSweep, DEFAULT_MAX_ITER, DEFAULT_TOLERANCE_PU, PowerFlowError, STALL_SWEEPS, V_FLOOR_PU,
};

use crate::grid::feeder::{Feeder, FeederError, NO_LINE, Topology};

/// The result of a power flow, sized for one feeder and reused between
/// calls so that solving allocates nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowResult {
    /// Voltage magnitude at each bus, in per unit; `NaN` where the model
    /// gave no meaningful value.
    pub v_pu: Vec<f64>,
    /// Voltage angle at each bus, in degrees, relative to the slack bus (0);
    /// `NaN` where the model gives none ([`LinDistFlow`] gives none at all).
    pub va_deg: Vec<f64>,
    /// Loading of each line (same index as [`Feeder::lines`]), current
    /// based: `|I| / I_rated` with `I_rated = rating_mva / base_mva` per unit,
    /// i.e. the rating is the thermal rating at nominal voltage (pandapower's
    /// `loading_percent / 100`). 1.0 = at the rating.
    pub loading: Vec<f64>,
    /// Active power on each line at its `from` end, MW, positive from
    /// `from` to `to`.
    pub p_line_mw: Vec<f64>,
    /// Reactive power on each line at its `from` end, MVAr, positive from
    /// `from` to `to`.
    pub q_line_mvar: Vec<f64>,
    /// Active power lost in each line, MW (`r |I|²`): exact for [`AcSweep`],
    /// a first-order estimate for [`LinDistFlow`].
    pub loss_line_mw: Vec<f64>,
    /// Active power imported from the upstream grid at the slack bus, MW
    /// (losses included for [`AcSweep`]).
    pub p_slack_mw: f64,
    /// Reactive power imported from the upstream grid at the slack bus, MVAr.
    pub q_slack_mvar: f64,
    /// Total line losses, MW: the sum of [`FlowResult::loss_line_mw`]. Exact
    /// for [`AcSweep`]; for [`LinDistFlow`] a first-order estimate that the
    /// flows and voltages do not include.
    pub losses_mw: f64,
    /// Iterations of the last solve (forward/backward sweeps for
    /// [`AcSweep`]; 0 for the non-iterative [`LinDistFlow`]).
    pub iterations: u32,
    /// Whether the result is a solution (see the module docs); when
    /// `false` every value above is `NaN`.
    pub converged: bool,
}

impl FlowResult {
    /// An empty result sized for `feeder`: all values `NaN`, not converged.
    pub fn new(feeder: &Feeder) -> FlowResult {
        let mut out = FlowResult {
            v_pu: Vec::new(),
            va_deg: Vec::new(),
            loading: Vec::new(),
            p_line_mw: Vec::new(),
            q_line_mvar: Vec::new(),
            loss_line_mw: Vec::new(),
            p_slack_mw: f64::NAN,
            q_slack_mvar: f64::NAN,
            losses_mw: f64::NAN,
            iterations: 0,
            converged: false,
        };
        out.resize_for(feeder);
        out
    }

    /// Makes the vectors fit `feeder`. Allocates only if the sizes differ.
    pub(crate) fn resize_for(&mut self, feeder: &Feeder) {
        let n = feeder.n_buses;
        let m = feeder.lines.len();
        self.v_pu.resize(n, f64::NAN);
        self.va_deg.resize(n, f64::NAN);
        self.loading.resize(m, f64::NAN);
        self.p_line_mw.resize(m, f64::NAN);
        self.q_line_mvar.resize(m, f64::NAN);
        self.loss_line_mw.resize(m, f64::NAN);
    }

    /// Marks the whole result as meaningless.
    /// Keeps [`FlowResult::iterations`] (how far the solver got).
    pub(crate) fn fail(&mut self) {
        self.v_pu.fill(f64::NAN);
        self.va_deg.fill(f64::NAN);
        self.loading.fill(f64::NAN);
        self.p_line_mw.fill(f64::NAN);
        self.q_line_mvar.fill(f64::NAN);
        self.loss_line_mw.fill(f64::NAN);
        self.p_slack_mw = f64::NAN;
        self.q_slack_mvar = f64::NAN;
        self.losses_mw = f64::NAN;
        self.converged = false;
    }

    /// The lowest bus voltage, per unit, ignoring `NaN`s; `None` if there is
    /// no finite voltage.
    pub fn v_min_pu(&self) -> Option<f64> {
        finite_fold(self.v_pu.iter().copied(), f64::min)
    }

    /// The highest bus voltage, per unit, ignoring `NaN`s; `None` if there is
    /// no finite voltage.
    pub fn v_max_pu(&self) -> Option<f64> {
        finite_fold(self.v_pu.iter().copied(), f64::max)
    }

    /// The highest line loading, ignoring `NaN`s; `None` if there is none.
    pub fn loading_max(&self) -> Option<f64> {
        finite_fold(self.loading.iter().copied(), f64::max)
    }
}

/// Folds the finite values of `xs` with `f`; `None` if there are none.
pub(crate) fn finite_fold(xs: impl Iterator<Item = f64>, f: fn(f64, f64) -> f64) -> Option<f64> {
    xs.filter(|v| v.is_finite()).reduce(f)
}

/// A power-flow model: turns net injections into voltages and loadings.
///
/// Implementations must be deterministic (same bits on every platform for
/// the same inputs) and should not allocate in [`PowerFlow::solve`] once
/// `out` is sized for the feeder. They are `Send + Sync` because a loaded
/// scenario, which holds its environment's solvers, is shared between the
/// threads of a batch run.
pub trait PowerFlow: Send + Sync {
    /// A short stable name for traces and reports, e.g. `"lindistflow"`.
    fn name(&self) -> &'static str;

    /// Solves `feeder` for `injections[bus] = (P_MW, Q_MVAr)` (generation
    /// positive, load negative) and writes every field of `out`. Bad input
    /// never panics: it yields `out.converged == false`.
    fn solve(&mut self, feeder: &Feeder, injections: &[(f64, f64)], out: &mut FlowResult);
}

/// Builds a [`PowerFlow`] for a feeder: how a library user plugs their own
/// model into the grid environment
/// ([`Environment::with_power_flow`](crate::grid::Environment::with_power_flow),
/// [`Scenario::with_power_flow`](crate::Scenario::with_power_flow)). It is
/// called once per microgrid with that microgrid's (already checked)
/// feeder, and again for each clone of the environment, so every clone
/// starts from a fresh solver.
pub type PowerFlowFactory = std::sync::Arc<dyn Fn(&Feeder) -> Box<dyn PowerFlow> + Send + Sync>;

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
}

impl PowerFlow for LinDistFlow {
    fn name(&self) -> &'static str {
        "lindistflow"
    }

    fn solve(&mut self, feeder: &Feeder, injections: &[(f64, f64)], out: &mut FlowResult) {
        out.resize_for(feeder);
        out.iterations = 0;
        if !self.topology.fits(feeder) {
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
        for &b in order.iter() {
            let l = parent_line[b];
            if l == NO_LINE {
                continue;
            }
            let line = &feeder.lines[l];
            let p_pu = out.p_line_mw[l] / base_mva;
            let q_pu = out.q_line_mvar[l] / base_mva;
            out.v_pu[b] = out.v_pu[line.from] - 2.0 * (line.r_pu * p_pu + line.x_pu * q_pu);
        }

        let mut meaningful = true;
        for v in out.v_pu.iter_mut() {
            if !(v.is_finite() && *v > 0.0) {
                meaningful = false;
                *v = f64::NAN;
            } else {
                *v = v.sqrt();
            }
        }
        if !meaningful {
            out.fail();
            return;
        }

        // The lossless flow of a line is the net load of the subtree it
        // feeds, i.e. the power at its `to` end: the current and the loss
        // estimate use the `to` voltage, whichever way the power flows.
        let mut losses_mw = 0.0;
        for (l, line) in feeder.lines.iter().enumerate() {
            let (p_pu, q_pu) = (out.p_line_mw[l] / base_mva, out.q_line_mvar[l] / base_mva);
            let v_to = out.v_pu[line.to];
            let i_pu = (p_pu * p_pu + q_pu * q_pu).sqrt() / v_to;
            out.loading[l] = i_pu * base_mva / line.rating_mva;
            out.loss_line_mw[l] = line.r_pu * i_pu * i_pu * base_mva;
            losses_mw += out.loss_line_mw[l];
        }
        out.losses_mw = losses_mw;
        out.va_deg.fill(f64::NAN);
        out.converged = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::feeder::Line;
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
        // Current-based loading and losses use the `to` voltage.
        assert!(close(
            out.loading[0],
            0.29f64.sqrt() / 0.982f64.sqrt() / 2.0
        ));
        assert!(close(out.losses_mw, 0.01 * 0.29 / 0.982));
        assert_eq!(out.iterations, 0);
        assert!(out.va_deg.iter().all(|a| a.is_nan()));
    }

    #[test]
    fn base_mva_scales_the_drop() {
        // The same MW on a 10 MVA base is a tenth of the per-unit flow.
        let feeder = Feeder::chain(2, 0.01, 0.02, 2.0).with_base_mva(10.0);
        let out = solve(&feeder, &[(0.0, 0.0), (-5.0, -2.0)]);
        assert!(close(out.v_pu[1], 0.982f64.sqrt()));
        assert!(close(out.loading[0], 29f64.sqrt() / 0.982f64.sqrt() / 2.0));
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
    fn reverse_flow_loss_and_loading_use_the_to_end() {
        // 0.5 MW generated at bus 1: v1² = 1 + 2 · 0.02 · 0.5 = 1.02, and the
        // lossless flow is the power leaving bus 1, at 1.02^½ pu.
        let feeder = Feeder::chain(2, 0.02, 0.0, 1.0);
        let out = solve(&feeder, &[(0.0, 0.0), (0.5, 0.0)]);
        assert!(out.converged);
        assert!(close(out.p_line_mw[0], -0.5));
        assert!(close(out.v_pu[1], 1.02f64.sqrt()));
        assert!(close(out.loss_line_mw[0], 0.02 * 0.25 / 1.02));
        assert!(close(out.loading[0], 0.5 / 1.02f64.sqrt()));
        assert_eq!(out.losses_mw, out.loss_line_mw[0]);
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
        assert!(out.v_pu.iter().all(|v| v.is_nan()));
        assert_eq!(out.v_min_pu(), None);
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
}
