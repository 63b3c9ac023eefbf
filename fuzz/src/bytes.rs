//! Structure-blind mutations of a byte string: bit flips, byte set, insert
//! and delete, chunk duplication, interesting integers (fixed width and
//! LEB128), ASCII numbers, truncation, and splicing with another input.

use crate::rng::Rng;

/// Integers at the edges of the widths and bounds the code under test uses.
pub const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    7,
    8,
    15,
    16,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x3fff,
    0x4000,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    4095,
    4096,
    4097,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x1_0000_0000,
    64 << 20,
    (64 << 20) + 1,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

const INTERESTING_BYTES: &[u8] = &[
    0, 1, 2, 3, 9, 11, 15, 0x10, 0x20, 0x7f, 0x80, 0xfe, 0xff, b'0', b'9', b'\n', b'"', b'\'',
    b'[', b']', b'{', b'}', b'=', b',', b'.', b'#', b'\\', b'-', b'e',
];

/// Decimal texts of interesting numbers, for ASCII digit runs.
const ASCII_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "255",
    "256",
    "65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "1e309",
    "-0",
    "0.0000001",
    "99999999999999999999999999999",
];

/// The LEB128 (postcard varint) encoding of `v`.
pub fn leb128(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn pos(rng: &mut Rng, len: usize) -> usize {
    rng.below(len + 1)
}

/// A random range `start..end` inside `0..len`, short more often than long.
fn span(rng: &mut Rng, len: usize) -> (usize, usize) {
    let n = rng.small(len.max(1)).min(len);
    let start = rng.below(len - n + 1);
    (start, start + n)
}

/// One random mutation of `data`; `other` is another corpus entry to splice
/// from. Returns false if nothing applied (e.g. an empty input).
pub fn mutate_once(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8]) -> bool {
    let len = data.len();
    match rng.below(14) {
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = rng.next_u64() as u8;
        }
        2 if len > 0 => {
            let i = rng.below(len);
            data[i] = *rng.pick(INTERESTING_BYTES);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            data[i] = if rng.chance(1, 2) {
                data[i].wrapping_add(1)
            } else {
                data[i].wrapping_sub(1)
            };
        }
        4 => {
            let at = pos(rng, len);
            let n = rng.small(16);
            let bytes: Vec<u8> = if rng.chance(1, 2) {
                vec![*rng.pick(INTERESTING_BYTES); n]
            } else {
                (0..n).map(|_| rng.next_u64() as u8).collect()
            };
            data.splice(at..at, bytes);
        }
        5 if len > 0 => {
            let (a, b) = span(rng, len);
            data.drain(a..b);
        }
        6 if len > 0 => {
            let (a, b) = span(rng, len);
            let chunk = data[a..b].to_vec();
            let at = pos(rng, len);
            data.splice(at..at, chunk);
        }
        7 if len > 1 => {
            let (a, b) = span(rng, len);
            let chunk = data[a..b].to_vec();
            let at = rng.below(len - chunk.len() + 1);
            data[at..at + chunk.len()].copy_from_slice(&chunk);
        }
        8 if len > 0 => {
            let v = *rng.pick(INTERESTING);
            let width = *rng.pick(&[1usize, 2, 4, 8]);
            let v = if rng.chance(1, 4) {
                v.wrapping_neg()
            } else {
                v
            };
            let bytes = if rng.chance(1, 2) {
                v.to_le_bytes()
            } else {
                (v << (64 - 8 * width as u32).min(63)).to_be_bytes()
            };
            let bytes = &bytes[..width];
            let at = rng.below(len.saturating_sub(width) + 1);
            let end = (at + width).min(len);
            data[at..end].copy_from_slice(&bytes[..end - at]);
        }
        9 => {
            let enc = leb128(*rng.pick(INTERESTING));
            let at = pos(rng, len);
            if rng.chance(1, 2) || at + enc.len() > len {
                data.splice(at..at, enc);
            } else {
                data[at..at + enc.len()].copy_from_slice(&enc);
            }
        }
        10 if !other.is_empty() => {
            let (a, b) = span(rng, other.len());
            let at = pos(rng, len);
            if rng.chance(1, 2) {
                data.splice(at..at, other[a..b].iter().copied());
            } else {
                // Crossover: our prefix, their suffix.
                data.truncate(at);
                data.extend_from_slice(&other[a..]);
            }
        }
        11 if len > 0 => {
            data.truncate(rng.below(len));
        }
        12 if len > 0 => {
            // Replace a run of ASCII digits with an interesting number.
            let start = rng.below(len);
            let Some(i) = (start..len).find(|&i| data[i].is_ascii_digit()) else {
                return false;
            };
            let j = (i..len).find(|&j| !data[j].is_ascii_digit()).unwrap_or(len);
            let num = rng.pick(ASCII_NUMBERS).as_bytes().to_vec();
            data.splice(i..j, num);
        }
        13 if len > 1 => {
            // Swap two chunks' worth of bytes.
            let (a, b) = span(rng, len / 2);
            let c = rng.below(len - (b - a) + 1);
            for k in 0..(b - a) {
                if c + k < len {
                    data.swap(a + k, c + k);
                }
            }
        }
        _ => return false,
    }
    true
}

/// `1..=max` stacked mutations.
pub fn mutate(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8], max: usize, max_len: usize) {
    let n = rng.small(max);
    let mut done = 0;
    for _ in 0..n * 4 {
        if done == n {
            break;
        }
        if mutate_once(data, rng, other) {
            done += 1;
        }
    }
    data.truncate(max_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_matches_postcard() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(leb128(v), postcard::to_stdvec(&v).unwrap());
        }
    }

    #[test]
    fn mutation_is_deterministic_and_bounded() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut d = b"[simulation]\nname = \"x\"\nduration = \"1s\"\n".to_vec();
            for _ in 0..1000 {
                mutate(&mut d, &mut rng, b"other input 123", 8, 4096);
                assert!(d.len() <= 4096);
            }
            d
        };
        assert_eq!(run(3), run(3));
    }
}
