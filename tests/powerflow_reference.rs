//! The AC power flow against pandapower's Newton–Raphson.
//!
//! `tests/data/powerflow/cases.json` holds the cases: every feeder of the
//! shipped grid scenarios at operating points from real runs of them (each
//! run with a recording power flow, thinned to the extremes and an even
//! sample), and synthetic stress cases (loading up to and beyond collapse,
//! reverse flow, high r/x, the branched 33-bus feeder of Baran & Wu).
//! `reference.json` beside it is what `scripts/pf_reference.py` computed
//! for them with pandapower; `scripts/check_pf_reference.sh` recomputes it.
//!
//! - `ac_matches_pandapower` solves every case and compares;
//! - `cases_match_the_shipped_scenarios` regenerates the cases and checks
//!   the committed file is still what the current scenarios produce, so the
//!   reference cannot go stale silently. After a change that alters the
//!   scenarios' operating points, regenerate with
//!
//! ```text
//! BUSBAR_WRITE_PF_CASES=1 cargo test --test powerflow_reference
//! bash scripts/check_pf_reference.sh --write
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use busbar::Scenario;
use busbar::grid::{AcSweep, Feeder, FlowResult, PowerFlow, PowerFlowFactory};
use serde::{Deserialize, Serialize};

/// One power flow to compare: a feeder and its net injections (MW, MVAr).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Case {
    name: String,
    feeder: Feeder,
    injections: Vec<(f64, f64)>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Cases {
    about: String,
    cases: Vec<Case>,
}

/// pandapower's answer for one case.
#[derive(Debug, Deserialize)]
struct Reference {
    name: String,
    converged: bool,
    vm_pu: Option<Vec<f64>>,
    va_degree: Option<Vec<f64>>,
    loading: Option<Vec<f64>>,
    p_slack_mw: Option<f64>,
    q_slack_mvar: Option<f64>,
    losses_mw: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct References {
    pandapower_version: String,
    results: Vec<Reference>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/powerflow")
}

/// The grid scenarios whose operating points are sampled.
const SCENARIOS: &[&str] = &[
    "feeder_lte_plc.toml",
    "ieee33_microgrids.toml",
    "large_100x5.toml",
    "lossy_jitter.toml",
    "seed_example.toml",
];

/// How many evenly spaced operating points are kept per scenario, besides
/// the extremes.
const SAMPLE_PER_SCENARIO: usize = 40;

/// Every solve asked of a power flow: the feeder, the injections, and the
/// AC answer (for picking the extremes).
type Log = Arc<Mutex<Vec<(Feeder, Vec<(f64, f64)>, FlowResult)>>>;

/// Records each call, solving it with the AC model.
struct Recorder {
    inner: AcSweep,
    log: Log,
}

impl PowerFlow for Recorder {
    fn name(&self) -> &'static str {
        "ac"
    }
    fn solve(&mut self, feeder: &Feeder, injections: &[(f64, f64)], out: &mut FlowResult) {
        self.inner.solve(feeder, injections, out);
        self.log
            .lock()
            .unwrap()
            .push((feeder.clone(), injections.to_vec(), out.clone()));
    }
}

fn scenario_cases(file: &str) -> Vec<Case> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file);
    let log: Log = Arc::default();
    let l = log.clone();
    let factory: PowerFlowFactory = Arc::new(move |f: &Feeder| {
        Box::new(Recorder {
            inner: AcSweep::new(f).expect("valid feeder"),
            log: l.clone(),
        }) as Box<dyn PowerFlow>
    });
    let s = Scenario::from_file(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_power_flow(factory);
    s.run(s.seed(), 0).unwrap_or_else(|e| panic!("{file}: {e}"));
    let log = std::mem::take(&mut *log.lock().unwrap());
    assert!(!log.is_empty(), "{file} solved no power flow");
    let sweeps: Vec<u32> = log.iter().map(|(_, _, out)| out.iterations).collect();
    println!(
        "{file}: {} solves (warm-started as in a run), mean {:.2} sweeps, max {}",
        sweeps.len(),
        sweeps.iter().map(|&s| f64::from(s)).sum::<f64>() / sweeps.len() as f64,
        sweeps.iter().max().unwrap()
    );

    // Distinct operating points, in the order they were met.
    let mut seen = BTreeSet::new();
    let mut points = Vec::new();
    for (i, (feeder, inj, out)) in log.into_iter().enumerate() {
        let key: Vec<u64> = inj
            .iter()
            .flat_map(|&(p, q)| [p.to_bits(), q.to_bits()])
            .chain([feeder.n_buses as u64])
            .collect();
        if seen.insert(key) {
            points.push((i, feeder, inj, out));
        }
    }
    let net_load = |inj: &[(f64, f64)]| -inj.iter().map(|x| x.0).sum::<f64>();
    let or_nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let pick = |score: &dyn Fn(usize) -> f64| {
        (0..points.len())
            .filter(|&k| score(k).is_finite())
            .max_by(|&a, &b| score(a).total_cmp(&score(b)).then(b.cmp(&a)))
    };
    let mut keep = BTreeSet::new();
    let extremes = [
        pick(&|k| net_load(&points[k].2)),          // highest load
        pick(&|k| -net_load(&points[k].2)),         // highest export
        pick(&|k| -or_nan(points[k].3.v_min_pu())), // lowest voltage
        pick(&|k| or_nan(points[k].3.v_max_pu())),  // highest voltage
        pick(&|k| or_nan(points[k].3.loading_max())),
    ];
    keep.extend(extremes.into_iter().flatten());
    let n = points.len();
    let m = SAMPLE_PER_SCENARIO.min(n);
    keep.extend((0..m).map(|j| j * (n - 1) / (m - 1).max(1)));
    let stem = file.trim_end_matches(".toml");
    keep.into_iter()
        .map(|k| {
            let (i, feeder, inj, _) = &points[k];
            Case {
                name: format!("{stem}/solve{i}"),
                feeder: feeder.clone(),
                injections: inj.clone(),
            }
        })
        .collect()
}

fn case33bw() -> (Feeder, Vec<(f64, f64)>) {
    #[derive(Deserialize)]
    struct File {
        feeder: Feeder,
        injections: Vec<(f64, f64)>,
    }
    let text = std::fs::read_to_string(data_dir().join("case33bw.json")).unwrap();
    let f: File = serde_json::from_str(&text).unwrap();
    (f.feeder, f.injections)
}

fn case(name: String, feeder: &Feeder, injections: Vec<(f64, f64)>) -> Case {
    Case {
        name,
        feeder: feeder.clone(),
        injections,
    }
}

fn scaled(inj: &[(f64, f64)], k: f64) -> Vec<(f64, f64)> {
    inj.iter().map(|&(p, q)| (p * k, q * k)).collect()
}

/// Synthetic stress cases; each name says what it is.
fn synthetic_cases() -> Vec<Case> {
    let mut out = Vec::new();
    // Two buses, r = x = 0.1 pu: at unity power factor the most the line
    // can deliver is (sqrt(2) - 1) / 0.2 ≈ 2.071 pu.
    let two = Feeder::chain(2, 0.1, 0.1, 1.0);
    let p_max = (2f64.sqrt() - 1.0) / 0.2;
    for f in [0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 1.01, 1.1, 2.0] {
        let name = format!("stress/2bus_load_{f}_of_max");
        out.push(case(name, &two, vec![(0.0, 0.0), (-f * p_max, 0.0)]));
    }
    // A 12-bus chain, uniform load at 0.9 power factor, scaled up to and
    // beyond collapse.
    let chain = Feeder::chain(12, 0.02, 0.03, 2.0);
    let base: Vec<(f64, f64)> = (0..12)
        .map(|b| if b == 0 { (0.0, 0.0) } else { (-0.1, -0.0484) })
        .collect();
    for k in [0.5, 1.0, 1.1, 1.15, 1.18, 1.19, 1.195, 1.2, 1.3, 2.0] {
        let name = format!("stress/12bus_uniform_load_x{k}");
        out.push(case(name, &chain, scaled(&base, k)));
    }
    // Reverse flow: generation at the far end, with and without local load,
    // and a feeder that exports at one end while it imports at the other.
    let pv = Feeder::chain(6, 0.03, 0.02, 1.0).with_v_slack_pu(1.02);
    for g in [0.5, 1.0, 2.0, 3.0] {
        let mut inj = vec![(0.0, 0.0); 6];
        inj[5] = (g, 0.0);
        inj[2] = (-0.2, -0.1);
        out.push(case(format!("stress/reverse_pv_{g}mw"), &pv, inj));
    }
    let mut inj = vec![(-0.4, -0.2); 6];
    inj[0] = (0.0, 0.0);
    inj[5] = (2.5, -0.3);
    out.push(case("stress/reverse_mixed".into(), &pv, inj));
    // High r/x (cable-like) and pure resistance, on a 10 MVA base.
    for (r, x) in [(0.05, 0.01), (0.08, 0.008), (0.05, 0.0)] {
        let cable = Feeder::chain(8, r, x, 0.8).with_base_mva(10.0);
        let inj: Vec<(f64, f64)> = (0..8)
            .map(|b| if b == 0 { (0.0, 0.0) } else { (-0.9, -0.3) })
            .collect();
        out.push(case(format!("stress/high_r_over_x_{r}_{x}"), &cable, inj));
    }
    // The branched 33-bus feeder of Baran & Wu: its own loads scaled up
    // towards collapse, and with PV at the ends of the laterals exporting.
    let (bw, bw_inj) = case33bw();
    for k in [0.5, 1.0, 2.0, 3.0, 3.5, 3.6, 3.62, 3.63, 3.65, 4.0, 5.0] {
        let name = format!("branched/case33bw_load_x{k}");
        out.push(case(name, &bw, scaled(&bw_inj, k)));
    }
    let mut export = bw_inj.clone();
    for (bus, mw) in [(17, 1.5), (21, 1.0), (24, 1.5), (32, 2.0)] {
        export[bus].0 += mw;
    }
    out.push(case("branched/case33bw_pv_export".into(), &bw, export));
    let mut slack = bw.clone().with_v_slack_pu(1.05);
    slack.lines[0].rating_mva = 3.0;
    out.push(case("branched/case33bw_vslack_1.05".into(), &slack, bw_inj));
    out
}

fn generate() -> Cases {
    let mut cases = Vec::new();
    for file in SCENARIOS {
        cases.extend(scenario_cases(file));
    }
    cases.extend(synthetic_cases());
    Cases {
        about: "Power-flow cases for tests/powerflow_reference.rs and scripts/pf_reference.py: \
                feeders (impedances in pu on base_mva, lines from -> to away from the slack \
                bus 0) and net injections per bus [P_MW, Q_MVAr], generation positive. \
                Generated by BUSBAR_WRITE_PF_CASES=1 cargo test --test powerflow_reference."
            .into(),
        cases,
    }
}

fn committed_cases() -> Cases {
    let text = std::fs::read_to_string(data_dir().join("cases.json"))
        .expect("tests/data/powerflow/cases.json exists");
    serde_json::from_str(&text).expect("cases.json parses")
}

#[test]
fn every_shipped_grid_scenario_is_sampled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut grid = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        if !Scenario::from_file(&path).unwrap().grid().is_empty() {
            grid.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    grid.sort();
    assert_eq!(grid, SCENARIOS, "add the new grid scenario to SCENARIOS");
}

#[test]
fn cases_match_the_shipped_scenarios() {
    let fresh = generate();
    if std::env::var_os("BUSBAR_WRITE_PF_CASES").is_some() {
        let text = serde_json::to_string_pretty(&fresh).unwrap() + "\n";
        std::fs::write(data_dir().join("cases.json"), text).unwrap();
        eprintln!("wrote {} cases", fresh.cases.len());
        return;
    }
    // The text, not the parsed values: serde_json's default float parser
    // may be one ulp off, its printer is exact.
    let text = std::fs::read_to_string(data_dir().join("cases.json")).unwrap();
    if text == serde_json::to_string_pretty(&fresh).unwrap() + "\n" {
        return;
    }
    let committed = committed_cases();
    let names = |c: &Cases| c.cases.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&fresh),
        "the shipped scenarios now produce other operating points: regenerate the cases and \
         the reference (see this file's docs)"
    );
    for (a, b) in committed.cases.iter().zip(&fresh.cases) {
        let (ta, tb) = (
            serde_json::to_string(a).unwrap(),
            serde_json::to_string(b).unwrap(),
        );
        let (a_again, b_again): (Case, Case) = (
            serde_json::from_str(&ta).unwrap(),
            serde_json::from_str(&tb).unwrap(),
        );
        assert_eq!(
            a_again, b_again,
            "case {} changed: regenerate (see this file's docs)",
            a.name
        );
    }
    panic!("cases.json is not as generated (formatting?): regenerate (see this file's docs)");
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn ac_matches_pandapower() {
    let cases = committed_cases().cases;
    let text = std::fs::read_to_string(data_dir().join("reference.json"))
        .expect("tests/data/powerflow/reference.json exists");
    let refs: References = serde_json::from_str(&text).expect("reference.json parses");
    assert_eq!(cases.len(), refs.results.len(), "one reference per case");
    let (mut dv, mut da, mut dl, mut dp, mut worst) = (0f64, 0f64, 0f64, 0f64, String::new());
    let (mut solved, mut failed, mut iterations, mut most) = (0u32, 0u32, 0u64, 0u32);
    for (c, r) in cases.iter().zip(&refs.results) {
        assert_eq!(c.name, r.name);
        let mut pf = AcSweep::new(&c.feeder).unwrap();
        let mut out = FlowResult::new(&c.feeder);
        pf.solve(&c.feeder, &c.injections, &mut out);
        assert_eq!(
            out.converged, r.converged,
            "{}: converged {} but pandapower says {} ({} iterations)",
            c.name, out.converged, r.converged, out.iterations
        );
        if !r.converged {
            failed += 1;
            assert!(out.v_pu.iter().all(|v| v.is_nan()), "{}", c.name);
            continue;
        }
        solved += 1;
        iterations += u64::from(out.iterations);
        most = most.max(out.iterations);
        let v = max_abs_diff(&out.v_pu, r.vm_pu.as_ref().unwrap());
        if v > dv {
            dv = v;
            worst = c.name.clone();
        }
        da = da.max(max_abs_diff(&out.va_deg, r.va_degree.as_ref().unwrap()));
        dl = dl.max(max_abs_diff(&out.loading, r.loading.as_ref().unwrap()));
        let p_err = (out.p_slack_mw - r.p_slack_mw.unwrap())
            .abs()
            .max((out.q_slack_mvar - r.q_slack_mvar.unwrap()).abs())
            .max((out.losses_mw - r.losses_mw.unwrap()).abs());
        dp = dp.max(p_err);
    }
    println!(
        "AC sweep vs pandapower {} NR: {} cases ({solved} solved, {failed} with no solution in both)",
        refs.pandapower_version,
        cases.len()
    );
    println!("  max |dV| = {dv:.3e} pu (worst: {worst}), max |d angle| = {da:.3e} deg");
    println!("  max |d loading| = {dl:.3e}, max |d slack P, Q, losses| = {dp:.3e} MW/MVAr");
    println!(
        "  sweeps per solve (flat start): mean {:.1}, max {most}",
        iterations as f64 / f64::from(solved.max(1))
    );
    assert!(dv < 1e-4, "max |dV| = {dv} at {worst}");
    assert!(dl < 1e-4, "max |d loading| = {dl}");
    assert!(da < 1e-2, "max |d angle| = {da}");
    assert!(dp < 1e-4, "max |d power| = {dp}");
    assert!(failed >= 1, "the cases include some with no solution");
}

/// Warm-started solves (one solver per feeder shape, cases in file order)
/// land on the same answer as flat starts.
#[test]
fn warm_starts_agree_with_flat_starts() {
    let cases = committed_cases().cases;
    let mut by_shape: Vec<(Feeder, AcSweep)> = Vec::new();
    for c in &cases {
        let k = match by_shape.iter().position(|(f, _)| f == &c.feeder) {
            Some(k) => k,
            None => {
                by_shape.push((c.feeder.clone(), AcSweep::new(&c.feeder).unwrap()));
                by_shape.len() - 1
            }
        };
        let mut warm = FlowResult::new(&c.feeder);
        by_shape[k].1.solve(&c.feeder, &c.injections, &mut warm);
        let mut flat = FlowResult::new(&c.feeder);
        AcSweep::new(&c.feeder)
            .unwrap()
            .solve(&c.feeder, &c.injections, &mut flat);
        assert_eq!(warm.converged, flat.converged, "{}", c.name);
        if flat.converged {
            assert!(max_abs_diff(&warm.v_pu, &flat.v_pu) < 1e-8, "{}", c.name);
        }
    }
}
