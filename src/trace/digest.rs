//! Digests: [`Digest`], the streaming [`Digester`] over the records'
//! canonical layout, the [`PayloadDigester`] over the payloads agents
//! published, and [`Digest::of_run`], which combines the two into the digest
//! a run prints. Each is defined in the module docs of [`crate::trace`].

use std::fmt;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{Xxh3Default, xxh3_128};

use super::Record;
use crate::message::Payload;

/// A 128-bit digest, printed as 32 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 16]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Digest {
    /// The digest of a run: XXH3-128 over the records digest (16 bytes)
    /// followed by the payload digest (16 bytes). Equal run digests mean
    /// equal event streams *and* equal payloads, message by message.
    pub fn of_run(records: Digest, payloads: Digest) -> Digest {
        let mut both = [0u8; 32];
        both[..16].copy_from_slice(&records.0);
        both[16..].copy_from_slice(&payloads.0);
        Digest(xxh3_128(&both).to_le_bytes())
    }
}

/// Streaming digest over records: XXH3-128 of their canonical layouts
/// ([`Record::to_bytes`]), concatenated in order.
#[derive(Clone)]
pub struct Digester {
    hasher: Xxh3Default,
    scratch: Vec<u8>,
}

impl Default for Digester {
    fn default() -> Self {
        Digester {
            hasher: Xxh3Default::new(),
            scratch: Vec::new(),
        }
    }
}

impl Digester {
    /// Feeds records, in order.
    pub fn update(&mut self, records: &[Record]) {
        if cfg!(target_endian = "little") {
            // The in-memory layout is the canonical one (see `Record`).
            self.hasher.update(bytemuck::cast_slice(records));
        } else {
            self.scratch.clear();
            for r in records {
                self.scratch.extend_from_slice(&r.to_bytes());
            }
            self.hasher.update(&self.scratch);
        }
    }

    /// Feeds records already in their canonical layout
    /// ([`Record::to_bytes`], concatenated).
    pub fn update_bytes(&mut self, canonical: &[u8]) {
        self.hasher.update(canonical);
    }

    /// The digest of everything fed so far.
    pub fn digest(&self) -> Digest {
        Digest(self.hasher.digest128().to_le_bytes())
    }
}

/// Payload codes of the canonical payload encoding (never change).
const EMPTY: u8 = 0;
const INLINE: u8 = 1;
const FLOATS: u8 = 2;
const BYTES: u8 = 3;
const TEXT: u8 = 4;
const CORRELATION: u8 = 5;

/// Streaming digest over published payloads, in publish order: XXH3-128 of
/// their canonical encodings, concatenated. A payload's encoding is a code
/// byte and its content, with a length wherever the content's size varies,
/// so the concatenation is unambiguous:
///
/// ```text
/// Empty    0x00
/// Inline   0x01 | len u8 | the 4 inline values, f64 LE each (32 bytes)
/// Floats   0x02 | n u64 LE | n values, f64 LE each
/// Bytes    0x03 | n u64 LE | n bytes
/// Text     0x04 | n u64 LE | n bytes of UTF-8
/// ```
///
/// A reply's correlation (the request it answers) is fed before its
/// payload as `0x05 | request id u64 LE`; a message that answers nothing
/// adds nothing.
///
/// Floats are hashed by their bits (`-0.0` differs from `0.0`), and the
/// variants are told apart as `Payload`'s `==` tells them apart. Feeding a
/// payload allocates nothing.
#[derive(Clone)]
pub struct PayloadDigester {
    hasher: Xxh3Default,
}

impl Default for PayloadDigester {
    fn default() -> Self {
        PayloadDigester {
            hasher: Xxh3Default::new(),
        }
    }
}

impl PayloadDigester {
    /// Feeds one published payload.
    #[inline]
    pub fn update(&mut self, p: &Payload) {
        match p {
            Payload::Empty => self.hasher.update(&[EMPTY]),
            Payload::Inline { len, values } => {
                let mut b = [0u8; 2 + 8 * 4];
                b[0] = INLINE;
                b[1] = *len;
                for (i, v) in values.iter().enumerate() {
                    b[2 + 8 * i..10 + 8 * i].copy_from_slice(&v.to_le_bytes());
                }
                self.hasher.update(&b);
            }
            Payload::Floats(vs) => {
                self.head(FLOATS, vs.len());
                if cfg!(target_endian = "little") {
                    self.hasher.update(bytemuck::cast_slice(vs));
                } else {
                    for v in vs.iter() {
                        self.hasher.update(&v.to_le_bytes());
                    }
                }
            }
            Payload::Bytes(b) => {
                self.head(BYTES, b.len());
                self.hasher.update(b);
            }
            Payload::Text(t) => {
                self.head(TEXT, t.len());
                self.hasher.update(t.as_bytes());
            }
        }
    }

    /// Feeds a reply's correlation: the id of the request it answers.
    #[inline]
    pub fn correlation(&mut self, request: u64) {
        let mut b = [0u8; 9];
        b[0] = CORRELATION;
        b[1..].copy_from_slice(&request.to_le_bytes());
        self.hasher.update(&b);
    }

    fn head(&mut self, code: u8, len: usize) {
        let mut b = [0u8; 9];
        b[0] = code;
        b[1..].copy_from_slice(&(len as u64).to_le_bytes());
        self.hasher.update(&b);
    }

    /// The digest of every payload fed so far.
    pub fn digest(&self) -> Digest {
        Digest(self.hasher.digest128().to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn digest_of(ps: &[Payload]) -> Digest {
        let mut d = PayloadDigester::default();
        for p in ps {
            d.update(p);
        }
        d.digest()
    }

    #[test]
    fn the_payload_encoding_is_pinned() {
        // The payload digest hashes exactly these bytes (see the type's
        // docs): they must never change.
        let ps = [
            Payload::Empty,
            Payload::values(&[1.5, -0.0]),
            Payload::values(&[0.25; 5]),
            Payload::Bytes(Arc::from(&[7u8, 8][..])),
            Payload::from("hé"),
        ];
        let mut want = vec![0u8];
        want.extend_from_slice(&[1, 2]);
        for v in [1.5f64, -0.0, 0.0, 0.0] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.push(2);
        want.extend_from_slice(&5u64.to_le_bytes());
        for _ in 0..5 {
            want.extend_from_slice(&0.25f64.to_le_bytes());
        }
        want.push(3);
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(&[7, 8]);
        want.push(4);
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice("hé".as_bytes());
        assert_eq!(digest_of(&ps), Digest(xxh3_128(&want).to_le_bytes()));
    }

    #[test]
    fn payloads_that_differ_in_anything_digest_differently() {
        let cases: Vec<Vec<Payload>> = vec![
            vec![],
            vec![Payload::Empty],
            vec![Payload::Empty, Payload::Empty],
            vec![Payload::values(&[])],
            vec![Payload::values(&[0.5])],
            vec![Payload::values(&[0.25])],
            vec![Payload::values(&[0.0])],
            vec![Payload::values(&[-0.0])],
            vec![Payload::values(&[0.5, 0.0])],
            vec![Payload::Floats(Arc::from(&[0.5][..]))],
            vec![Payload::values(&[1.0; 5])],
            vec![Payload::values(&[1.0; 6])],
            vec![Payload::from("ab")],
            vec![Payload::from("a"), Payload::from("b")],
            vec![Payload::Bytes(Arc::from(&b"ab"[..]))],
        ];
        let digests: Vec<Digest> = cases.iter().map(|c| digest_of(c)).collect();
        for i in 0..digests.len() {
            for j in 0..i {
                assert_ne!(digests[i], digests[j], "{:?} vs {:?}", cases[i], cases[j]);
            }
        }
        // Only the content counts: a clone, or the same values built
        // anew, digest the same.
        let p = Payload::values(&[3.0; 9]);
        assert_eq!(
            digest_of(std::slice::from_ref(&p)),
            digest_of(&[Payload::values(&[3.0; 9])])
        );
    }

    #[test]
    fn the_run_digest_is_both_digests_hashed_together() {
        let (r, p) = (Digest([1; 16]), Digest([2; 16]));
        let mut both = [1u8; 32];
        both[16..].fill(2);
        assert_eq!(Digest::of_run(r, p), Digest(xxh3_128(&both).to_le_bytes()));
        assert_ne!(Digest::of_run(r, p), Digest::of_run(p, r));
    }
}
