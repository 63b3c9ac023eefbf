//! Shrinks a finding's input while it still shows the same finding (same
//! kind and panic location or invariant), by delta debugging over lines of
//! text, then frames and records of a trace and the lines of its embedded
//! scenario, then bytes.

use std::time::{Duration, Instant};

use crate::driver::{Verdict, run_one};
use crate::targets::{Kind, Target};
use crate::tracefile;

/// What must still happen.
pub struct Want {
    pub kind: String,
    pub key: String,
    /// For `slow`: the time an input must still take.
    pub budget: Duration,
}

struct Shrinker<'a> {
    target: &'a Target,
    want: &'a Want,
    execs: u64,
    deadline: Instant,
}

impl Shrinker<'_> {
    fn still(&mut self, input: &[u8]) -> bool {
        if Instant::now() > self.deadline {
            return false;
        }
        self.execs += 1;
        let e = run_one(self.target, input, false);
        if self.want.kind == "slow" {
            return e.time > self.want.budget;
        }
        matches!(e.verdict, Verdict::Finding { kind, key, .. } if kind == self.want.kind && key == self.want.key)
    }

    /// Removes chunks of `units` (halving the chunk size) while `build` of
    /// what is left still shows the finding.
    fn ddmin<T: Clone>(
        &mut self,
        mut units: Vec<T>,
        min_chunk: usize,
        build: &dyn Fn(&[T]) -> Option<Vec<u8>>,
    ) -> Vec<T> {
        let mut chunk = units.len().div_ceil(2).max(1);
        loop {
            let mut i = 0;
            while i < units.len() {
                let end = (i + chunk).min(units.len());
                let mut trial = units.clone();
                trial.drain(i..end);
                match build(&trial) {
                    Some(bytes) if self.still(&bytes) => units = trial,
                    _ => i += chunk,
                }
            }
            if chunk <= min_chunk {
                return units;
            }
            chunk = chunk.div_ceil(2);
        }
    }
}

fn split_lines(s: &str) -> Vec<String> {
    s.split_inclusive('\n').map(str::to_string).collect()
}

/// The smallest input found within `time`, and how many runs it took.
pub fn minimize(target: &Target, input: &[u8], want: &Want, time: Duration) -> (Vec<u8>, u64) {
    let mut s = Shrinker {
        target,
        want,
        execs: 0,
        deadline: Instant::now() + time,
    };
    let mut cur = input.to_vec();
    for _round in 0..4 {
        let before = cur.len();
        match target.kind {
            Kind::Scenario | Kind::Set => {
                let text = String::from_utf8_lossy(&cur).into_owned();
                let lines = s.ddmin(split_lines(&text), 1, &|ls| Some(ls.concat().into_bytes()));
                cur = lines.concat().into_bytes();
                let chars: Vec<char> = String::from_utf8_lossy(&cur).chars().collect();
                let chars = s.ddmin(chars, 1, &|cs| {
                    Some(cs.iter().collect::<String>().into_bytes())
                });
                cur = chars.iter().collect::<String>().into_bytes();
            }
            Kind::Trace => {
                let frames: Vec<usize> = (0..tracefile::frame_count(&cur)).collect();
                // Frames: try dropping each, last first.
                for i in frames.into_iter().rev() {
                    if let Some(b) = tracefile::without_frame(&cur, i)
                        && s.still(&b)
                    {
                        cur = b;
                    }
                }
                // Records, in chunks.
                let mut chunk = tracefile::record_count(&cur).div_ceil(2).max(1);
                while tracefile::record_count(&cur) > 0 {
                    let mut i = 0;
                    while i < tracefile::record_count(&cur) {
                        let end = (i + chunk).min(tracefile::record_count(&cur));
                        match tracefile::without_records(&cur, i, end) {
                            Some(b) if s.still(&b) => cur = b,
                            _ => i += chunk,
                        }
                    }
                    if chunk == 1 {
                        break;
                    }
                    chunk = chunk.div_ceil(2);
                }
                // The embedded scenario, by lines.
                if let Some(text) = tracefile::embedded_scenario(&cur) {
                    let base = cur.clone();
                    let lines = s.ddmin(split_lines(&text), 1, &|ls| {
                        tracefile::with_scenario(&base, &ls.concat())
                    });
                    if let Some(b) = tracefile::with_scenario(&base, &lines.concat())
                        && s.still(&b)
                    {
                        cur = b;
                    }
                }
                // Bytes, in chunks of at least 4.
                let bytes = s.ddmin(cur.clone(), 4, &|b| Some(b.to_vec()));
                cur = bytes;
            }
        }
        if cur.len() == before {
            break;
        }
    }
    (cur, s.execs)
}
