//! Batch throughput: the same batch on 1 and 2 threads (rows are
//! identical; only the wall time may differ). Run with
//! `cargo bench --bench batch`; the ratio of the two times is the speed-up.
//!
//! - `seed_example`: 32 environments of the 3 x 3 grid scenario.
//! - `large_100x5`: 4 environments of the 100 x 5 grid scenario.

use std::hint::black_box;
use std::path::Path;

use busbar::rollout::batch::Batch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn run(batch: &Batch) -> u64 {
    let prepared = batch.prepare().expect("valid batch");
    let mut events = 0;
    prepared
        .run(
            |row| {
                events += row.outcome.summary().map_or(0, |s| s.events);
                Ok(())
            },
            |_| {},
        )
        .expect("batch ran");
    events
}

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    for (name, envs) in [("seed_example", 32), ("large_100x5", 4)] {
        let mut g = c.benchmark_group(format!("batch_{name}"));
        g.sample_size(10);
        g.throughput(Throughput::Elements(u64::from(envs)));
        for threads in [1, 2] {
            let batch = Batch::new(vec![dir.join(format!("{name}.toml"))])
                .envs(envs)
                .threads(threads);
            g.bench_function(format!("threads_{threads}"), |b| {
                b.iter(|| black_box(run(&batch)))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
