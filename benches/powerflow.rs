//! Time per solve of the power-flow models. Run with
//! `cargo bench --bench powerflow`.
//!
//! Two feeders: a 6-bus chain (the shipped scenarios' microgrids: five
//! devices, `line_r_pu = 0.01`, `line_x_pu = 0.02`, a few hundred kW per
//! bus) and the branched 33-bus feeder of Baran & Wu at its nominal load
//! (`tests/data/powerflow/case33bw.json`). For each: `lindistflow`;
//! `ac_flat`, the AC sweep from a flat start every time (reset before each
//! solve); `ac_warm`, the AC sweep warm-started from the previous solution
//! while the injections alternate between two operating points 2 % apart
//! (what a simulation's consecutive deadlines look like). The mean number
//! of sweeps per solve of each is printed first.
//!
//! Then, per grid step of two shipped scenarios (`large_100x5`: 100
//! microgrid feeders of 6 buses; `ieee33_microgrids`: one 41-bus network,
//! the IEEE 33-bus feeder with three microgrids), the wall time the AC
//! power flow takes against the rest of the step (the message traffic:
//! the simulation loop, network, broker and agents), from whole runs
//! with the power flow timed around each solve; best of five runs. Printed
//! as `per step: ...` lines (a measurement, not a criterion benchmark).

use std::hint::black_box;
use std::path::Path;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use busbar::Scenario;
use busbar::grid::{AcSweep, Feeder, FlowResult, LinDistFlow, PowerFlow, PowerFlowFactory};
use criterion::{Criterion, criterion_group, criterion_main};

fn chain6() -> (Feeder, Vec<(f64, f64)>) {
    let feeder = Feeder::chain(6, 0.01, 0.02, 5.0);
    let inj = vec![
        (0.0, 0.0),
        (0.25, 0.0),
        (-0.4, -0.13),
        (0.3, 0.0),
        (-0.6, -0.2),
        (-0.35, -0.11),
    ];
    (feeder, inj)
}

fn case33bw() -> (Feeder, Vec<(f64, f64)>) {
    #[derive(serde::Deserialize)]
    struct File {
        feeder: Feeder,
        injections: Vec<(f64, f64)>,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/powerflow/case33bw.json");
    let f: File = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    (f.feeder, f.injections)
}

fn scaled(inj: &[(f64, f64)], k: f64) -> Vec<(f64, f64)> {
    inj.iter().map(|&(p, q)| (p * k, q * k)).collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("powerflow");
    g.sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    for (name, (feeder, inj)) in [("chain6", chain6()), ("case33bw", case33bw())] {
        let points = [scaled(&inj, 0.99), scaled(&inj, 1.01)];
        let mut out = FlowResult::new(&feeder);

        // Mean sweeps per solve, flat and warm.
        let mut ac = AcSweep::new(&feeder).unwrap();
        let (mut flat_it, mut warm_it) = (0u64, 0u64);
        for i in 0..100 {
            ac.reset();
            ac.solve(&feeder, &points[i % 2], &mut out);
            assert!(out.converged);
            flat_it += u64::from(out.iterations);
        }
        for i in 0..100 {
            ac.solve(&feeder, &points[i % 2], &mut out);
            warm_it += u64::from(out.iterations);
        }
        println!(
            "{name}: mean sweeps per solve: flat {:.2}, warm {:.2}",
            flat_it as f64 / 100.0,
            warm_it as f64 / 100.0
        );

        let mut lin = LinDistFlow::new(&feeder).unwrap();
        let mut i = 0usize;
        g.bench_function(format!("{name}/lindistflow"), |b| {
            b.iter(|| {
                i += 1;
                lin.solve(&feeder, black_box(&points[i % 2]), &mut out);
            })
        });
        g.bench_function(format!("{name}/ac_flat"), |b| {
            b.iter(|| {
                i += 1;
                ac.reset();
                ac.solve(&feeder, black_box(&points[i % 2]), &mut out);
            })
        });
        g.bench_function(format!("{name}/ac_warm"), |b| {
            b.iter(|| {
                i += 1;
                ac.solve(&feeder, black_box(&points[i % 2]), &mut out);
            })
        });
    }
    g.finish();
}

/// The AC sweep, timing each solve (wall clock: a benchmark, not the
/// library).
struct Timed {
    inner: AcSweep,
    total_ns: Arc<AtomicU64>,
    sweeps: Arc<AtomicU64>,
}

impl PowerFlow for Timed {
    fn name(&self) -> &'static str {
        "ac (timed)"
    }
    fn solve(&mut self, feeder: &Feeder, injections: &[(f64, f64)], out: &mut FlowResult) {
        let t = Instant::now();
        self.inner.solve(feeder, injections, out);
        let ns = t.elapsed().as_nanos() as u64;
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
        self.sweeps
            .fetch_add(u64::from(out.iterations), Ordering::Relaxed);
    }
}

fn per_step(_: &mut Criterion) {
    for name in ["large_100x5.toml", "ieee33_microgrids.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name);
        let (mut best_pf, mut best_rest, mut steps, mut sweeps) = (f64::MAX, f64::MAX, 0.0, 0.0);
        let mut solves = 0;
        for _ in 0..5 {
            let total_ns = Arc::new(AtomicU64::new(0));
            let sweep_count = Arc::new(AtomicU64::new(0));
            let (t, s) = (total_ns.clone(), sweep_count.clone());
            let factory: PowerFlowFactory = Arc::new(move |f: &Feeder| -> Box<dyn PowerFlow> {
                Box::new(Timed {
                    inner: AcSweep::new(f).unwrap(),
                    total_ns: t.clone(),
                    sweeps: s.clone(),
                })
            });
            let sc = Scenario::from_file(&path).unwrap().with_power_flow(factory);
            let mut sim = sc.builder(sc.seed(), 0).build().unwrap();
            let start = Instant::now();
            let summary = sc.run_sim(&mut sim).unwrap();
            let wall = start.elapsed().as_nanos() as f64;
            steps = summary.outcomes.get("grid.steps").unwrap_or(1.0);
            let pf = total_ns.load(Ordering::Relaxed) as f64;
            best_pf = best_pf.min(pf / steps);
            best_rest = best_rest.min((wall - pf) / steps);
            solves = sc.grid().len();
            sweeps = sweep_count.load(Ordering::Relaxed) as f64;
        }
        println!(
            "per step: {name}: power flow {:.1} us, message traffic {:.1} us \
             (power flow / traffic = {:.2}); {steps} steps, {:.1} sweeps per solve",
            best_pf / 1e3,
            best_rest / 1e3,
            best_pf / best_rest,
            sweeps
                / (steps
                    * if name.starts_with("large") {
                        solves as f64
                    } else {
                        1.0
                    }),
        );
    }
}

criterion_group!(benches, bench, per_step);
criterion_main!(benches);
