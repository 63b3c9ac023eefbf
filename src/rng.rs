//! The only source of randomness in busbar.
//!
//! Every independent random process (one link's latency, one link's loss, one
//! agent's own draws, ...) owns an [`RngStream`]: a ChaCha8 generator whose key
//! is derived from the run's seed and environment index and whose 64-bit
//! ChaCha stream number is a stable hash of the process's name, e.g.
//! `"link/mg1->broker/latency"`. Changing one link's parameters (and so how
//! many numbers it draws) cannot shift the draws of any other process: common
//! random numbers across a parameter sweep.
//!
//! The samplers here are written on `libm`, not the platform math library, so a
//! draw gives the same bits on every machine.
//!
//! **Invariant:** nothing in the library draws randomness except through an
//! `RngStream` made by [`RngStream::new`].

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// Version of the stream-derivation scheme. Part of every key, so that a future
/// change of scheme cannot silently reuse old streams.
const DERIVATION_VERSION: u64 = 1;

/// A named, seeded random stream. Cheap to draw from; created once at setup.
#[derive(Clone, Debug)]
pub struct RngStream {
    rng: ChaCha8Rng,
}

/// FNV-1a over the bytes, then the SplitMix64 finaliser to spread the bits.
/// Stable forever: trace digests depend on it.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(h)
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl RngStream {
    /// The stream named `name` of environment `env` in a run seeded with `seed`.
    pub fn new(seed: u64, env: u64, name: &str) -> Self {
        let mut key = [0u8; 32];
        key[0..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&env.to_le_bytes());
        key[16..24].copy_from_slice(b"busbar\0\0");
        key[24..32].copy_from_slice(&DERIVATION_VERSION.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(stable_hash(name.as_bytes()));
        RngStream { rng }
    }

    /// 64 uniformly random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// 32 uniformly random bits.
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    /// Uniform in `[0, 1)`, 53 bits of precision.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        // Through i64: the same value (it is below 2^53), converted by one
        // instruction where u64 -> f64 takes a branchy sequence on x86-64.
        ((self.next_u64() >> 11) as i64) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1]`: safe to take the logarithm of.
    #[inline]
    pub fn uniform_open0(&mut self) -> f64 {
        1.0 - self.uniform()
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Uniform integer in `[0, n)`, without modulo bias (Lemire's method).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "below(0) has no value to return");
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// True with probability `p` (clamped to `[0, 1]`). Draws exactly one
    /// number whatever `p` is, so the stream's position does not depend on `p`.
    #[inline]
    pub fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal by the Box–Muller transform on `libm`. Draws exactly two
    /// numbers.
    pub fn standard_normal(&mut self) -> f64 {
        let u1 = self.uniform_open0();
        let u2 = self.uniform();
        libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * std::f64::consts::PI * u2)
    }

    /// Normal with the given mean and standard deviation.
    pub fn normal(&mut self, mean: f64, std_dev: f64) -> f64 {
        mean + std_dev * self.standard_normal()
    }

    /// Log-normal: `exp(mu + sigma * Z)`.
    pub fn lognormal(&mut self, mu: f64, sigma: f64) -> f64 {
        libm::exp(mu + sigma * self.standard_normal())
    }

    /// Exponential with the given mean (inverse transform; one draw).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * libm::log(self.uniform_open0())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_stream() {
        let mut a = RngStream::new(7, 0, "link/a->broker/latency");
        let mut b = RngStream::new(7, 0, "link/a->broker/latency");
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn seed_env_and_name_each_change_the_stream() {
        let first = |seed, env, name: &str| RngStream::new(seed, env, name).next_u64();
        let base = first(7, 0, "x");
        assert_ne!(base, first(8, 0, "x"));
        assert_ne!(base, first(7, 1, "x"));
        assert_ne!(base, first(7, 0, "y"));
    }

    #[test]
    fn stable_hash_is_pinned() {
        // Trace digests depend on these values: changing the hash is a format break.
        assert_eq!(stable_hash(b""), splitmix64(0xcbf2_9ce4_8422_2325));
        assert_eq!(stable_hash(b"a"), splitmix64(0xaf63_dc4c_8601_ec8c));
    }

    #[test]
    fn first_draw_is_pinned() {
        // Pins ChaCha8 + key derivation: if a dependency upgrade changes the
        // stream, every golden digest would change; this test says why.
        let mut r = RngStream::new(42, 0, "pin");
        let v = r.next_u64();
        let mut again = RngStream::new(42, 0, "pin");
        assert_eq!(v, again.next_u64());
        assert_eq!(v, PINNED_FIRST_DRAW, "ChaCha8 stream derivation changed");
    }
    const PINNED_FIRST_DRAW: u64 = 16_687_822_325_867_631_151;

    #[test]
    fn uniform_in_range_and_below_is_unbiased_enough() {
        let mut r = RngStream::new(1, 0, "u");
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            counts[r.below(7) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, v)
    }

    #[test]
    fn samplers_match_their_moments_and_rand_distr() {
        use rand_distr::Distribution;
        let n = 200_000;
        let mut r = RngStream::new(3, 0, "moments");
        let normal: Vec<f64> = (0..n).map(|_| r.normal(5.0, 2.0)).collect();
        let (m, v) = mean_var(&normal);
        assert!((m - 5.0).abs() < 0.03 && (v - 4.0).abs() < 0.08, "{m} {v}");
        let expo: Vec<f64> = (0..n).map(|_| r.exponential(3.0)).collect();
        let (m, v) = mean_var(&expo);
        assert!((m - 3.0).abs() < 0.05 && (v - 9.0).abs() < 0.4, "{m} {v}");
        let logn: Vec<f64> = (0..n).map(|_| r.lognormal(0.0, 0.5)).collect();
        let (m, _) = mean_var(&logn);
        let mut reference = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let ref_logn = rand_distr::LogNormal::new(0.0, 0.5).unwrap();
        let refs: Vec<f64> = (0..n).map(|_| ref_logn.sample(&mut reference)).collect();
        let (rm, _) = mean_var(&refs);
        assert!((m - rm).abs() < 0.01, "ours {m} vs rand_distr {rm}");
        let exact = libm::exp(0.125);
        assert!((m - exact).abs() < 0.01, "{m} vs {exact}");
    }
}
