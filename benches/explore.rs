//! `busbar explore` throughput: runs per second on `seed_example` (the
//! 3 x 3 grid scenario, 5 minutes of virtual time per run), every run
//! checked for `fifo`, `no_stale` and `deadline`, alternating sampled and
//! adversarial delays, on 1 and 2 threads (the result is the same; only
//! the wall time differs). Run with `cargo bench --bench explore`;
//! criterion's throughput is in runs (elements) per second.

use std::hint::black_box;
use std::path::Path;

use busbar::Scenario;
use busbar::explore::Explorer;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Runs per measured iteration.
const RUNS: u64 = 64;

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/seed_example.toml");
    let scenario = Scenario::from_file(&path).expect("shipped scenario");
    let props: Vec<String> = ["fifo", "no_stale", "deadline"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut g = c.benchmark_group("explore_seed_example");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RUNS));
    for threads in [1, 2] {
        let ex = Explorer::new(scenario.clone(), &props, RUNS).threads(threads);
        g.bench_function(format!("threads_{threads}"), |b| {
            b.iter(|| black_box(ex.explore(|_| {}).expect("explored").runs))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
