//! Payload frames (tag 4, since format version 6): the payloads a run
//! kept in its trace, each cut to the header's `payload_limit` bytes.
//! Described byte by byte in the module docs of [`crate::trace`].
//!
//! A payload frame precedes the records batch whose `publish` records it
//! belongs to, and holds exactly one entry per publish of that batch, in
//! message id order; a batch without publishes has none. The encoding is
//! canonical like the records': minimal varints, strictly increasing ids,
//! and exactly as much of each payload as the limit allows.

use std::sync::Arc;

use super::CHUNK;
use super::batch::{DecodeError, Input, put_varint};
use crate::message::Payload;

/// The largest `payload_limit` a trace accepts, in bytes per payload.
pub const MAX_PAYLOAD_LIMIT: u32 = 1 << 16;

/// Payload variant codes in a payload frame.
const EMPTY: u8 = 0;
const FLOATS: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;

/// The smallest entry: an id and an empty payload's code.
const MIN_ENTRY_BYTES: usize = 2;

/// A published payload as a trace keeps it: the whole payload or, if it is
/// larger than the trace's `payload_limit`, its start.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptPayload {
    /// The message it was published with.
    pub msg: u64,
    /// What was kept: at most `payload_limit` bytes of the payload, cut at
    /// a whole float (8 bytes) or a whole UTF-8 character, in the same
    /// variant (values kept as [`Payload::values`] builds them).
    pub payload: Payload,
    /// The size of the whole payload on the wire, bytes
    /// ([`Payload::wire_bytes`]); more than the kept payload's when it was
    /// cut.
    pub wire_bytes: u64,
}

impl KeptPayload {
    /// What a trace with `limit` bytes per payload keeps of `payload`
    /// (shares the payload, without copying, when it fits).
    pub fn keep(msg: u64, payload: &Payload, limit: u32) -> KeptPayload {
        let wire_bytes = payload.wire_bytes();
        let limit = limit as usize;
        let kept = match payload {
            _ if wire_bytes <= limit as u64 => payload.clone(),
            Payload::Empty => Payload::Empty,
            Payload::Inline { .. } | Payload::Floats(_) => {
                Payload::values(&payload.as_f64s()[..limit / 8])
            }
            Payload::Bytes(b) => Payload::Bytes(Arc::from(&b[..limit])),
            Payload::Text(t) => Payload::Text(Arc::from(&t[..floor_char_boundary(t, limit)])),
        };
        KeptPayload {
            msg,
            payload: kept,
            wire_bytes,
        }
    }

    /// Whether the payload was cut to fit the limit.
    pub fn truncated(&self) -> bool {
        self.payload.wire_bytes() < self.wire_bytes
    }
}

/// The largest index `<= at` (and `<= t.len()`) on a character boundary.
fn floor_char_boundary(t: &str, at: usize) -> usize {
    let mut i = at.min(t.len());
    while !t.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// How many units (floats or bytes) of a payload of `full` units fit in
/// `limit` bytes.
fn fits(code: u8, full: u64, limit: u32) -> u64 {
    match code {
        FLOATS => full.min(u64::from(limit) / 8),
        _ => full.min(u64::from(limit)),
    }
}

/// Appends the body of a payload frame for `entries` (1..=CHUNK of them,
/// ids strictly increasing), each kept to `limit` bytes, to `out`.
pub(crate) fn encode(entries: &[(u64, Payload)], limit: u32, out: &mut Vec<u8>) {
    debug_assert!(!entries.is_empty() && entries.len() <= CHUNK);
    put_varint(out, entries.len() as u64);
    let mut prev: Option<u64> = None;
    for (msg, payload) in entries {
        put_varint(
            out,
            prev.map_or(*msg, |p| msg.wrapping_sub(p).wrapping_sub(1)),
        );
        prev = Some(*msg);
        let kept = KeptPayload::keep(*msg, payload, limit).payload;
        let (code, full) = match payload {
            Payload::Empty => (EMPTY, 0),
            Payload::Inline { .. } | Payload::Floats(_) => (FLOATS, payload.as_f64s().len() as u64),
            Payload::Bytes(b) => (BYTES, b.len() as u64),
            Payload::Text(t) => (TEXT, t.len() as u64),
        };
        out.push(code);
        if code == EMPTY {
            continue;
        }
        put_varint(out, full);
        match &kept {
            Payload::Inline { .. } | Payload::Floats(_) => {
                let vs = kept.as_f64s();
                put_varint(out, vs.len() as u64);
                for v in vs {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Payload::Bytes(b) => {
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Payload::Text(t) => {
                put_varint(out, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Payload::Empty => put_varint(out, 0),
        }
    }
}

/// Replaces the contents of `out` with the entries of one payload frame
/// body, kept to `limit` bytes each. Never panics; reserves room only
/// after checking the count against the body's length, and each payload's
/// size against the bytes left.
pub(crate) fn decode(
    body: &[u8],
    limit: u32,
    out: &mut Vec<KeptPayload>,
) -> Result<(), DecodeError> {
    out.clear();
    let mut inp = Input::new(body, "a payload entry");
    let count = inp.varint("payload count")?;
    let left = body.len() - inp.pos;
    if count == 0 || count > CHUNK as u64 {
        return Err((
            0,
            format!("payload frame claims {count} entries (1..={CHUNK})"),
        ));
    }
    if count > (left / MIN_ENTRY_BYTES) as u64 {
        return Err((
            0,
            format!("payload frame claims {count} entries but holds only {left} bytes"),
        ));
    }
    out.reserve(count as usize);
    let mut prev: Option<u64> = None;
    for _ in 0..count {
        let at = inp.pos;
        let v = inp.varint("message id")?;
        let msg = match prev {
            None => v,
            Some(p) => p
                .checked_add(v)
                .and_then(|m| m.checked_add(1))
                .ok_or_else(|| (at, "message id overflows 64 bits".to_string()))?,
        };
        prev = Some(msg);
        let code_at = inp.pos;
        let code = inp.byte("payload type")?;
        if code == EMPTY {
            out.push(KeptPayload {
                msg,
                payload: Payload::Empty,
                wire_bytes: 0,
            });
            continue;
        }
        if code > TEXT {
            return Err((code_at, format!("unknown payload type {code}")));
        }
        let full = inp.varint("payload length")?;
        let kept_at = inp.pos;
        let kept = inp.varint("kept length")?;
        let want = fits(code, full, limit);
        // Text is cut at a character boundary: up to 3 bytes short.
        let ok = match code {
            TEXT => kept <= want && kept + 3 >= want,
            _ => kept == want,
        };
        if !ok {
            return Err((
                kept_at,
                format!(
                    "payload of message {msg} keeps {kept} of {full} units, \
                     but the limit of {limit} bytes keeps {want}"
                ),
            ));
        }
        let unit = if code == FLOATS { 8 } else { 1 };
        let data = inp.take(kept.saturating_mul(unit), "payload data")?;
        let payload = match code {
            FLOATS => {
                let vs: Vec<f64> = data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect();
                Payload::values(&vs)
            }
            BYTES => Payload::Bytes(Arc::from(data)),
            _ => {
                let t = std::str::from_utf8(data)
                    .map_err(|_| (kept_at, format!("text of message {msg} is not UTF-8")))?;
                if kept < want && kept < full && t.len() + 4 <= want as usize {
                    return Err((kept_at, format!("text of message {msg} is cut short")));
                }
                Payload::Text(Arc::from(t))
            }
        };
        let wire_bytes = full.saturating_mul(unit);
        out.push(KeptPayload {
            msg,
            payload,
            wire_bytes,
        });
    }
    if inp.pos != body.len() {
        return Err((
            inp.pos,
            format!(
                "{} stray bytes after the last payload",
                body.len() - inp.pos
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(entries: &[(u64, Payload)], limit: u32) -> Vec<KeptPayload> {
        let mut body = Vec::new();
        encode(entries, limit, &mut body);
        let mut out = Vec::new();
        decode(&body, limit, &mut out).expect("decodes");
        out
    }

    #[test]
    fn every_variant_round_trips_whole_under_the_limit() {
        let entries = vec![
            (3, Payload::Empty),
            (4, Payload::values(&[1.5, -2.0])),
            (9, Payload::values(&[1.0, 2.0, 3.0, 4.0, 5.0, f64::NAN])),
            (10, Payload::Bytes(Arc::from(&b"\x00\xffab"[..]))),
            (1 << 40, Payload::Text(Arc::from("état"))),
        ];
        let out = round_trip(&entries, 1024);
        assert_eq!(out.len(), entries.len());
        for (k, (msg, p)) in out.iter().zip(&entries) {
            assert_eq!(k.msg, *msg);
            assert!(!k.truncated());
            assert_eq!(k.wire_bytes, p.wire_bytes());
            // NaN != NaN: compare the bits.
            let bits = |p: &Payload| p.as_f64s().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&k.payload), bits(p));
            assert_eq!(k.payload.as_text(), p.as_text());
            assert_eq!(k.payload.as_bytes(), p.as_bytes());
        }
    }

    #[test]
    fn payloads_over_the_limit_are_cut_whole_floats_and_characters() {
        let entries = vec![
            (0, Payload::values(&[1.0, 2.0, 3.0, 4.0, 5.0])),
            (1, Payload::Bytes(Arc::from(&b"abcdefghij"[..]))),
            // "é" is 2 bytes: a cut at 8 bytes would split the last one.
            (2, Payload::Text(Arc::from("aéééé"))),
        ];
        let out = round_trip(&entries, 20);
        assert_eq!(out[0].payload.as_f64s(), &[1.0, 2.0]);
        assert_eq!(out[0].wire_bytes, 40);
        assert!(out[0].truncated());
        assert!(!out[1].truncated(), "10 bytes fit in 20");
        let out = round_trip(&entries, 8);
        assert_eq!(out[1].payload.as_bytes(), Some(&b"abcdefgh"[..]));
        assert_eq!(out[2].payload.as_text(), Some("aééé"));
        assert_eq!(out[2].wire_bytes, 9);
        assert!(out[2].truncated());
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        let entries = vec![
            (7, Payload::values(&[1.0, 2.0, 3.0, 4.0, 5.0])),
            (8, Payload::Text(Arc::from("hello"))),
        ];
        let mut body = Vec::new();
        encode(&entries, 16, &mut body);
        let mut out = Vec::new();
        for cut in 0..body.len() {
            assert!(decode(&body[..cut], 16, &mut out).is_err(), "cut at {cut}");
        }
        // Read with another limit, the kept lengths are not canonical.
        assert!(decode(&body, 24, &mut out).is_err());
        for i in 0..body.len() {
            for bit in 0..8 {
                let mut b = body.clone();
                b[i] ^= 1 << bit;
                let _ = decode(&b, 16, &mut out);
            }
        }
        // A huge count is refused before reserving.
        let mut b = Vec::new();
        put_varint(&mut b, u64::MAX);
        assert!(decode(&b, 16, &mut out).is_err());
    }
}
