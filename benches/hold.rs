//! Event-queue benchmark: the classic "hold model". Run with
//! `cargo bench --bench hold`.
//!
//! The queue is filled with N events at random times; then each step pops
//! the earliest event and pushes one at `popped time + delay`, so the
//! number pending stays at N. The delay is exponential with a mean of one
//! simulated second (10⁹ ns), drawn from a seeded ChaCha8 stream (ziggurat
//! sampler), so that even a million pending events are spread out (about
//! 1 µs apart) rather than piled onto a few instants. Throughput is one
//! element per step (one pop + one push); `draw_only` is the cost of
//! drawing the delay alone, which the others include.
//!
//! The queue stays in one state from warm-up through the samples, so they
//! measure the steady state, where every bucket and chunk already exists.
//!
//! The queue is crate-internal, so its source is included directly (with
//! `time.rs`, which it names as `crate::time`). A bench build compiles the
//! file's `#[cfg(test)]` module too, which is why those tests use nothing
//! else from the crate.

#[allow(dead_code)]
#[path = "../src/time.rs"]
mod time;

#[allow(dead_code)]
#[path = "../src/queue.rs"]
mod queue;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use rand_distr::{Distribution, Exp};

use queue::EventQueue;
use time::SimTime;

/// Mean delay, in ns.
const MEAN: f64 = 1e9;

/// A 16-byte payload, the size of the simulator's own events.
type Payload = [u32; 4];

/// An exponential delay with mean [`MEAN`], in whole ns.
#[inline]
fn delay(rng: &mut ChaCha8Rng) -> u64 {
    let exp = Exp::new(1.0 / MEAN).expect("positive rate");
    exp.sample(rng) as u64
}

/// A queue holding `n` events, and the stream that drew them.
fn filled(n: usize) -> (EventQueue<Payload>, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
    let mut q = EventQueue::with_capacity(n);
    for i in 0..n {
        let t = delay(&mut rng);
        q.push(SimTime(t), [i as u32; 4]).expect("room");
    }
    (q, rng)
}

/// One step of the hold model.
#[inline]
fn hold(q: &mut EventQueue<Payload>, rng: &mut ChaCha8Rng) {
    let (t, mut e) = q.pop().expect("never empty");
    e[1] = e[1].wrapping_add(1);
    let d = delay(rng);
    q.push(SimTime(t.0 + d), black_box(e)).expect("room");
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("hold");
    g.throughput(Throughput::Elements(1));
    g.bench_function("draw_only", |b| {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        b.iter(|| black_box(delay(&mut rng)))
    });
    for n in [20usize, 1_000, 100_000, 1_000_000] {
        let (mut q, mut rng) = filled(n);
        g.bench_function(format!("{n}"), |b| b.iter(|| hold(&mut q, &mut rng)));
        assert_eq!(q.len(), n);
    }
    g.finish();
}

criterion_group!(hold_model, benches);
criterion_main!(hold_model);
