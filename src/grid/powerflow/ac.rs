//! The exact AC power flow of a radial feeder by backward/forward sweep
//! ([`AcSweep`]); the equations, what "converged" means and the accuracy
//! against pandapower are in the parent module's docs and `docs/grid.md`.

use crate::grid::feeder::{Feeder, FeederError, NO_LINE, Topology};
use crate::grid::powerflow::{FlowResult, PowerFlow};

/// The default convergence tolerance of [`AcSweep`]: the largest change of
/// any complex bus voltage between two sweeps, in per unit.
pub const DEFAULT_TOLERANCE_PU: f64 = 1e-10;

/// The default iteration limit of [`AcSweep`]. The sweep converges
/// linearly, at a rate that approaches 1 at the nose of the PV curve: a
/// feeder loaded to 99 % of its maximum loadability needs one to a few
/// hundred sweeps, an ordinary one about 10 from a flat start (4 to 7
/// warm-started in the shipped scenarios).
pub const DEFAULT_MAX_ITER: u32 = 1000;

/// The sweep gives up when the largest voltage change has not improved
/// on its best for this many sweeps in a row: beyond the maximum
/// loadability the iteration wanders or cycles instead of converging.
pub const STALL_SWEEPS: u32 = 50;

/// A voltage magnitude below this, in per unit, during the iteration means
/// the sweep is collapsing: no meaningful operating point is reached.
pub const V_FLOOR_PU: f64 = 0.05;

/// Why a power-flow model cannot be built: a bad setting of [`AcSweep`],
/// or a feeder that is not a valid radial feeder.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PowerFlowError {
    /// The tolerance is not a positive finite number.
    #[error("the tolerance must be a positive finite number of per unit, got {0}")]
    Tolerance(f64),
    /// The iteration limit is 0.
    #[error("the iteration limit must be at least 1")]
    MaxIter,
    /// The feeder is not a valid radial feeder.
    #[error(transparent)]
    Feeder(#[from] FeederError),
    /// The grid's settings do not describe a network (e.g. a microgrid
    /// without its point of common coupling on the shared feeder).
    #[error("{0}")]
    Setting(String),
}

/// The exact AC power flow of a radial feeder with constant-power
/// injections, solved by backward/forward sweep (Shirmohammadi et al.,
/// 1988; see the module docs).
///
/// Each sweep computes the current every bus draws, `I_b = -conj(S_b /
/// V_b)` with `S_b` its net injection in per unit, sums the currents from
/// the leaves to the slack (the current of each line is the sum over the
/// subtree it feeds), then updates the voltages from the slack down:
/// `V_to = V_from - Z·I_line`. It stops when no complex voltage moved by
/// more than the tolerance.
///
/// A solve starts from the previous solution when that converged on a
/// feeder of the same shape (a warm start: 4 to 7 sweeps on average in the
/// shipped scenarios, 1 when nothing changed), otherwise from a flat
/// start (every bus at the slack voltage, angle 0). Built for one feeder
/// with [`AcSweep::new`]; like [`LinDistFlow`](crate::grid::LinDistFlow) it
/// reads impedances, ratings, base and slack voltage on every call and
/// rebuilds its order (allocating once) if the feeder changed shape.
#[derive(Clone, Debug)]
pub struct AcSweep {
    topology: Topology,
    tolerance_pu: f64,
    max_iter: u32,
    /// Whether `v_re`, `v_im` hold a converged solution of a feeder of this
    /// shape (start from it).
    warm: bool,
    /// Complex bus voltages, pu.
    v_re: Vec<f64>,
    v_im: Vec<f64>,
    /// The current drawn by each bus's subtree through its parent line, pu
    /// (for the slack: the current imported from the upstream grid).
    i_re: Vec<f64>,
    i_im: Vec<f64>,
    /// Net injections in pu, converted once per solve.
    s_re: Vec<f64>,
    s_im: Vec<f64>,
}

impl AcSweep {
    /// A solver for `feeder` with the default tolerance and iteration limit,
    /// or why the feeder is not a valid radial feeder.
    pub fn new(feeder: &Feeder) -> Result<AcSweep, FeederError> {
        let topology = feeder.topology()?;
        let n = feeder.n_buses;
        Ok(AcSweep {
            topology,
            tolerance_pu: DEFAULT_TOLERANCE_PU,
            max_iter: DEFAULT_MAX_ITER,
            warm: false,
            v_re: vec![0.0; n],
            v_im: vec![0.0; n],
            i_re: vec![0.0; n],
            i_im: vec![0.0; n],
            s_re: vec![0.0; n],
            s_im: vec![0.0; n],
        })
    }

    /// A solver for `feeder` with tolerance `tolerance_pu` (largest change
    /// of a complex bus voltage between sweeps, pu) and at most `max_iter`
    /// sweeps per solve.
    pub fn with_settings(
        feeder: &Feeder,
        tolerance_pu: f64,
        max_iter: u32,
    ) -> Result<AcSweep, PowerFlowError> {
        if !(tolerance_pu.is_finite() && tolerance_pu > 0.0) {
            return Err(PowerFlowError::Tolerance(tolerance_pu));
        }
        if max_iter == 0 {
            return Err(PowerFlowError::MaxIter);
        }
        let mut s = AcSweep::new(feeder)?;
        s.tolerance_pu = tolerance_pu;
        s.max_iter = max_iter;
        Ok(s)
    }

    /// The convergence tolerance, pu.
    pub fn tolerance_pu(&self) -> f64 {
        self.tolerance_pu
    }

    /// The iteration limit.
    pub fn max_iter(&self) -> u32 {
        self.max_iter
    }

    /// Forgets the previous solution: the next solve starts flat.
    pub fn reset(&mut self) {
        self.warm = false;
    }

    /// The backward pass: the current each bus draws at its present
    /// voltage, summed from the leaves up into each parent line's current.
    fn backward(&mut self, feeder: &Feeder) {
        for b in 0..self.v_re.len() {
            let (vr, vi) = (self.v_re[b], self.v_im[b]);
            let (p, q) = (self.s_re[b], self.s_im[b]);
            let m2 = vr * vr + vi * vi;
            // conj(S / V) = (P vr + Q vi - j (Q vr - P vi)) / |V|²; the
            // current drawn is its negative.
            self.i_re[b] = -(p * vr + q * vi) / m2;
            self.i_im[b] = (q * vr - p * vi) / m2;
        }
        for &b in self.topology.order.iter().rev() {
            let l = self.topology.parent_line[b];
            if l == NO_LINE {
                continue;
            }
            let parent = feeder.lines[l].from;
            self.i_re[parent] += self.i_re[b];
            self.i_im[parent] += self.i_im[b];
        }
    }

    /// The forward pass: voltages from the slack down. Returns the largest
    /// change of a complex voltage, and whether every voltage is finite and
    /// above [`V_FLOOR_PU`].
    fn forward(&mut self, feeder: &Feeder) -> (f64, bool) {
        let mut d_max: f64 = 0.0;
        let mut sane = true;
        let floor2 = V_FLOOR_PU * V_FLOOR_PU;
        for &b in &self.topology.order {
            let l = self.topology.parent_line[b];
            if l == NO_LINE {
                continue;
            }
            let line = &feeder.lines[l];
            let (ir, ii) = (self.i_re[b], self.i_im[b]);
            let nr = self.v_re[line.from] - (line.r_pu * ir - line.x_pu * ii);
            let ni = self.v_im[line.from] - (line.r_pu * ii + line.x_pu * ir);
            let (dr, di) = (nr - self.v_re[b], ni - self.v_im[b]);
            let d = (dr * dr + di * di).sqrt();
            // `max` would skip a NaN; keep it visible.
            if d > d_max || d.is_nan() {
                d_max = d;
            }
            let m2 = nr * nr + ni * ni;
            if !(m2.is_finite() && m2 >= floor2) {
                sane = false;
            }
            self.v_re[b] = nr;
            self.v_im[b] = ni;
        }
        (d_max, sane)
    }

    /// Writes the results from the converged voltages, with the currents
    /// recomputed at those voltages.
    fn write(&mut self, feeder: &Feeder, out: &mut FlowResult) {
        self.backward(feeder);
        let base = feeder.base_mva;
        let mut losses_mw = 0.0;
        for (l, line) in feeder.lines.iter().enumerate() {
            let b = line.to;
            let (ir, ii) = (self.i_re[b], self.i_im[b]);
            let (vr, vi) = (self.v_re[line.from], self.v_im[line.from]);
            // S = V conj(I) at the sending (`from`) end.
            out.p_line_mw[l] = (vr * ir + vi * ii) * base;
            out.q_line_mvar[l] = (vi * ir - vr * ii) * base;
            let i2 = ir * ir + ii * ii;
            out.loading[l] = i2.sqrt() * base / line.rating_mva;
            out.loss_line_mw[l] = line.r_pu * i2 * base;
            losses_mw += out.loss_line_mw[l];
        }
        out.losses_mw = losses_mw;
        let (vr, vi) = (self.v_re[0], self.v_im[0]);
        let (ir, ii) = (self.i_re[0], self.i_im[0]);
        out.p_slack_mw = (vr * ir + vi * ii) * base;
        out.q_slack_mvar = (vi * ir - vr * ii) * base;
        for b in 0..self.v_re.len() {
            let (vr, vi) = (self.v_re[b], self.v_im[b]);
            out.v_pu[b] = (vr * vr + vi * vi).sqrt();
            out.va_deg[b] = libm::atan2(vi, vr).to_degrees();
        }
        out.converged = true;
    }
}

impl PowerFlow for AcSweep {
    fn name(&self) -> &'static str {
        "ac"
    }

    fn solve(&mut self, feeder: &Feeder, injections: &[(f64, f64)], out: &mut FlowResult) {
        out.resize_for(feeder);
        out.iterations = 0;
        if !self.topology.fits(feeder) {
            match AcSweep::with_settings(feeder, self.tolerance_pu, self.max_iter) {
                Ok(fresh) => *self = fresh,
                Err(_) => {
                    out.fail();
                    return;
                }
            }
        }
        let base_ok = feeder.base_mva.is_finite() && feeder.base_mva > 0.0;
        let slack_ok = feeder.v_slack_pu.is_finite() && feeder.v_slack_pu > 0.0;
        let inputs_ok = injections.len() == feeder.n_buses
            && injections
                .iter()
                .all(|(p, q)| p.is_finite() && q.is_finite());
        if !(base_ok && slack_ok && inputs_ok) {
            self.warm = false;
            out.fail();
            return;
        }
        for (b, &(p, q)) in injections.iter().enumerate() {
            self.s_re[b] = p / feeder.base_mva;
            self.s_im[b] = q / feeder.base_mva;
        }
        if !self.warm {
            self.v_re.fill(feeder.v_slack_pu);
            self.v_im.fill(0.0);
        }
        self.v_re[0] = feeder.v_slack_pu;
        self.v_im[0] = 0.0;
        self.warm = false;
        let (mut best, mut stalled) = (f64::INFINITY, 0);
        for it in 1..=self.max_iter {
            out.iterations = it;
            self.backward(feeder);
            let (d_max, sane) = self.forward(feeder);
            if !sane {
                break;
            }
            if d_max < self.tolerance_pu {
                self.warm = true;
                self.write(feeder, out);
                return;
            }
            if d_max < best {
                (best, stalled) = (d_max, 0);
            } else {
                stalled += 1;
                if stalled >= STALL_SWEEPS {
                    break;
                }
            }
        }
        out.fail();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::feeder::Line;

    fn solve(pf: &mut AcSweep, feeder: &Feeder, inj: &[(f64, f64)]) -> FlowResult {
        let mut out = FlowResult::new(feeder);
        pf.solve(feeder, inj, &mut out);
        out
    }

    /// `|V2|` of a two-bus feeder from the closed form: with `a = |V2|²`,
    /// `a² + (2 (r P + x Q) - |V1|²) a + (r² + x²)(P² + Q²) = 0`, the
    /// high-voltage root. `P`, `Q`: the load at bus 2, pu.
    fn two_bus_exact(v1: f64, r: f64, x: f64, p: f64, q: f64) -> f64 {
        let b = 2.0 * (r * p + x * q) - v1 * v1;
        let c = (r * r + x * x) * (p * p + q * q);
        ((-b + (b * b - 4.0 * c).sqrt()) / 2.0).sqrt()
    }

    #[test]
    fn two_buses_match_the_closed_form() {
        for &(r, x, p, q, v1) in &[
            (0.01, 0.02, 0.5, 0.2, 1.0),
            (0.05, 0.01, 2.0, 0.5, 1.03),
            (0.02, 0.06, 3.0, 1.5, 0.98),
            (0.1, 0.1, -1.0, 0.3, 1.0), // export of P, import of Q
        ] {
            let feeder = Feeder::chain(2, r, x, 1.0).with_v_slack_pu(v1);
            let mut pf = AcSweep::new(&feeder).unwrap();
            let out = solve(&mut pf, &feeder, &[(0.0, 0.0), (-p, -q)]);
            assert!(out.converged, "{r} {x} {p} {q}");
            let exact = two_bus_exact(v1, r, x, p, q);
            assert!(
                (out.v_pu[1] - exact).abs() < 1e-9,
                "{} vs {exact}",
                out.v_pu[1]
            );
            assert_eq!(out.v_pu[0], v1);
            assert_eq!(out.va_deg[0], 0.0);
            // Receiving-end power is the load; the rest is the line's loss.
            let i2 = out.loading[0] * out.loading[0];
            assert!((out.loss_line_mw[0] - r * i2).abs() < 1e-12);
            assert!((out.p_line_mw[0] - p - out.loss_line_mw[0]).abs() < 1e-9);
            assert!((out.q_line_mvar[0] - q - x * i2).abs() < 1e-9);
        }
    }

    fn branched() -> Feeder {
        let line = |from, to, r_pu, x_pu| Line {
            from,
            to,
            r_pu,
            x_pu,
            rating_mva: 2.0,
        };
        Feeder {
            base_mva: 10.0,
            v_slack_pu: 1.02,
            n_buses: 6,
            lines: vec![
                line(0, 1, 0.01, 0.02),
                line(1, 2, 0.02, 0.01),
                line(1, 3, 0.015, 0.03),
                line(3, 4, 0.03, 0.02),
                line(3, 5, 0.01, 0.01),
            ],
        }
    }

    #[test]
    fn slack_import_is_load_plus_losses() {
        let feeder = branched();
        let inj = [
            (-0.3, -0.1),
            (-1.0, -0.4),
            (0.8, 0.0),
            (-1.5, -0.6),
            (-0.7, -0.3),
            (0.4, -0.2),
        ];
        let mut pf = AcSweep::new(&feeder).unwrap();
        let out = solve(&mut pf, &feeder, &inj);
        assert!(out.converged);
        let load_p: f64 = inj.iter().map(|i| -i.0).sum();
        assert!(out.losses_mw > 0.0);
        assert!(
            (out.p_slack_mw - load_p - out.losses_mw).abs() < 1e-9,
            "{} vs {} + {}",
            out.p_slack_mw,
            load_p,
            out.losses_mw
        );
        let sum: f64 = out.loss_line_mw.iter().sum();
        assert_eq!(sum, out.losses_mw);
        // Reactive balance: Σ x |I|² is absorbed in the lines.
        let load_q: f64 = inj.iter().map(|i| -i.1).sum();
        let q_loss: f64 = feeder
            .lines
            .iter()
            .zip(&out.loading)
            .map(|(l, &ld)| {
                let i = ld * l.rating_mva / feeder.base_mva;
                l.x_pu * i * i * feeder.base_mva
            })
            .sum();
        assert!((out.q_slack_mvar - load_q - q_loss).abs() < 1e-9);
        // Each line's sending-end flow is what its subtree draws plus the
        // losses in it.
        assert!((out.p_line_mw[0] - (load_p - 0.3) - out.losses_mw).abs() < 1e-9);
    }

    #[test]
    fn reverse_flow_losses_are_positive_and_voltage_rises() {
        let feeder = Feeder::chain(3, 0.03, 0.01, 1.0);
        let mut pf = AcSweep::new(&feeder).unwrap();
        let out = solve(&mut pf, &feeder, &[(0.0, 0.0), (0.0, 0.0), (0.8, 0.0)]);
        assert!(out.converged);
        assert!(out.v_pu[2] > out.v_pu[1] && out.v_pu[1] > 1.0);
        assert!(
            out.p_line_mw.iter().all(|&p| p < 0.0),
            "{:?}",
            out.p_line_mw
        );
        assert!(out.loss_line_mw.iter().all(|&l| l > 0.0));
        // The export reaching the slack is the generation less the losses.
        assert!((-out.p_slack_mw - (0.8 - out.losses_mw)).abs() < 1e-9);
        // At the `from` end of the last line arrives the generation less
        // that line's loss.
        assert!((-out.p_line_mw[1] - (0.8 - out.loss_line_mw[1])).abs() < 1e-9);
        assert!(out.va_deg[2] > out.va_deg[1] && out.va_deg[1] > 0.0);
    }

    #[test]
    fn warm_start_converges_in_few_sweeps() {
        let feeder = Feeder::chain(6, 0.01, 0.02, 5.0);
        let mut pf = AcSweep::new(&feeder).unwrap();
        let inj: Vec<(f64, f64)> = (0..6).map(|b| (-0.1 * b as f64, -0.03)).collect();
        let flat = solve(&mut pf, &feeder, &inj);
        assert!(flat.converged);
        assert!(flat.iterations <= 12, "{}", flat.iterations);
        let again = solve(&mut pf, &feeder, &inj);
        assert_eq!(again.iterations, 1);
        let nudged: Vec<(f64, f64)> = inj.iter().map(|&(p, q)| (p * 1.01, q)).collect();
        let warm = solve(&mut pf, &feeder, &nudged);
        assert!(warm.converged);
        assert!(warm.iterations < flat.iterations, "{}", warm.iterations);
        pf.reset();
        let cold = solve(&mut pf, &feeder, &nudged);
        assert!(cold.iterations > warm.iterations);
        for (a, b) in warm.v_pu.iter().zip(&cold.v_pu) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn heavy_load_with_a_solution_converges() {
        // Two buses, r = x = 0.1: the maximum load at unity power factor is
        // P = (sqrt(2) - 1) / (2 · 0.1) ≈ 2.071 pu. 98 % of it converges.
        let feeder = Feeder::chain(2, 0.1, 0.1, 1.0);
        let p_max = (2f64.sqrt() - 1.0) / 0.2;
        let mut pf = AcSweep::new(&feeder).unwrap();
        let out = solve(&mut pf, &feeder, &[(0.0, 0.0), (-0.98 * p_max, 0.0)]);
        assert!(out.converged, "{}", out.iterations);
        let exact = two_bus_exact(1.0, 0.1, 0.1, 0.98 * p_max, 0.0);
        assert!(
            (out.v_pu[1] - exact).abs() < 1e-6,
            "{} {exact}",
            out.v_pu[1]
        );
    }

    #[test]
    fn beyond_collapse_is_not_converged_and_nan() {
        let feeder = Feeder::chain(2, 0.1, 0.1, 1.0);
        let p_max = (2f64.sqrt() - 1.0) / 0.2;
        let mut pf = AcSweep::new(&feeder).unwrap();
        for factor in [1.02, 1.5, 10.0] {
            let out = solve(&mut pf, &feeder, &[(0.0, 0.0), (-factor * p_max, 0.0)]);
            assert!(!out.converged, "{factor}");
            assert!(out.v_pu.iter().all(|v| v.is_nan()));
            assert!(out.p_slack_mw.is_nan() && out.losses_mw.is_nan());
            assert!(out.iterations >= 1);
        }
        // And it recovers from a flat start.
        let out = solve(&mut pf, &feeder, &[(0.0, 0.0), (-0.5, 0.0)]);
        assert!(out.converged);
    }

    #[test]
    fn bad_input_is_not_converged_without_panic() {
        let feeder = Feeder::chain(3, 0.01, 0.01, 1.0);
        let mut pf = AcSweep::new(&feeder).unwrap();
        let out = solve(&mut pf, &feeder, &[(0.0, 0.0), (f64::NAN, 0.0), (0.0, 0.0)]);
        assert!(!out.converged && out.v_pu[1].is_nan());
        let out = solve(
            &mut pf,
            &feeder,
            &[(0.0, 0.0), (0.0, f64::INFINITY), (0.0, 0.0)],
        );
        assert!(!out.converged);
        let out = solve(&mut pf, &feeder, &[(0.0, 0.0)]);
        assert!(!out.converged);
        let mut broken = feeder.clone();
        broken.lines[1].to = 1;
        let out = solve(&mut pf, &broken, &[(0.0, 0.0); 3]);
        assert!(!out.converged);
        let out = solve(
            &mut pf,
            &feeder.clone().with_base_mva(0.0),
            &[(0.0, 0.0); 3],
        );
        assert!(!out.converged);
        let out = solve(&mut pf, &feeder, &[(-0.1, 0.0); 3]);
        assert!(out.converged);
    }

    #[test]
    fn settings_are_checked() {
        let feeder = Feeder::chain(2, 0.01, 0.01, 1.0);
        assert_eq!(
            AcSweep::with_settings(&feeder, 0.0, 10).unwrap_err(),
            PowerFlowError::Tolerance(0.0)
        );
        assert_eq!(
            AcSweep::with_settings(&feeder, 1e-8, 0).unwrap_err(),
            PowerFlowError::MaxIter
        );
        let pf = AcSweep::with_settings(&feeder, 1e-8, 7).unwrap();
        assert_eq!((pf.tolerance_pu(), pf.max_iter()), (1e-8, 7));
        assert_eq!(pf.name(), "ac");
    }

    #[test]
    fn iteration_limit_reached_is_not_converged() {
        let feeder = Feeder::chain(4, 0.05, 0.05, 1.0);
        let mut pf = AcSweep::with_settings(&feeder, 1e-14, 2).unwrap();
        let out = solve(&mut pf, &feeder, &[(-0.5, 0.0); 4]);
        assert!(!out.converged);
        assert_eq!(out.iterations, 2);
    }

    #[test]
    fn zero_injection_is_flat_in_one_sweep() {
        let feeder = branched();
        let mut pf = AcSweep::new(&feeder).unwrap();
        let out = solve(&mut pf, &feeder, &[(0.0, 0.0); 6]);
        assert!(out.converged);
        assert_eq!(out.iterations, 1);
        assert!(out.v_pu.iter().all(|&v| v == 1.02));
        assert!(out.loading.iter().all(|&l| l == 0.0));
    }

    #[test]
    fn agrees_with_lindistflow_on_a_light_feeder() {
        use crate::grid::powerflow::LinDistFlow;
        let feeder = Feeder::chain(5, 0.01, 0.02, 5.0);
        let inj = [
            (0.0, 0.0),
            (-0.2, -0.05),
            (0.1, 0.0),
            (-0.3, -0.1),
            (-0.1, 0.0),
        ];
        let mut ac = AcSweep::new(&feeder).unwrap();
        let mut lin = LinDistFlow::new(&feeder).unwrap();
        let a = solve(&mut ac, &feeder, &inj);
        let mut l = FlowResult::new(&feeder);
        lin.solve(&feeder, &inj, &mut l);
        for (x, y) in a.v_pu.iter().zip(&l.v_pu) {
            assert!((x - y).abs() < 1e-3, "{x} {y}");
        }
        assert!((a.losses_mw - l.losses_mw).abs() < 0.05 * a.losses_mw);
    }

    #[test]
    fn repeated_flat_solves_are_bit_identical() {
        let feeder = branched();
        let inj = [
            (0.0, 0.0),
            (-1.0, -0.3),
            (0.5, 0.1),
            (-2.0, -0.5),
            (-0.3, 0.0),
            (0.2, 0.0),
        ];
        let bits = |r: &FlowResult| {
            r.v_pu
                .iter()
                .chain(&r.va_deg)
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        let mut a = AcSweep::new(&feeder).unwrap();
        let mut b = AcSweep::new(&feeder).unwrap();
        assert_eq!(
            bits(&solve(&mut a, &feeder, &inj)),
            bits(&solve(&mut b, &feeder, &inj))
        );
    }
}
