//! The batch results table: its CSV columns, the merge of shards, and the
//! per-variant statistics printed at the end of a batch.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::batch::{Prepared, Row};
use crate::metrics::{Percentiles, Summary};
use crate::trace::Reason;

/// The columns before the sweep values.
const LEAD: [&str; 4] = ["job", "jobs", "scenario", "variant"];

/// The summary's columns, after `env`, `seed`, `status` and `error`.
const SUMMARY: &[&str] = &[
    "sim_time_ns",
    "events",
    "published",
    "routed",
    "copies",
    "delivered",
    "duplicated_uplink",
    "duplicated_downlink",
    "dropped",
    "dropped_uplink",
    "dropped_downlink",
    "dropped_loss",
    "dropped_partition",
    "dropped_overflow",
    "dropped_offline",
    "dropped_no_subscriber",
    "dropped_corrupt",
    "dropped_link_down",
    "dropped_crashed",
    "dropped_broker_down",
    "dropped_duplicate",
    "in_flight",
    "in_flight_uplink",
    "in_flight_downlink",
    "late",
    "timers",
    "retransmitted_uplink",
    "retransmitted_downlink",
    "expired_uplink",
    "acks_sent",
    "acks_dropped",
    "dead_lettered",
    "duplicates_seen",
    "duplicates_suppressed",
    "retained_copies",
    "evicted",
    "at_broker",
    "group_routed",
    "group_redelivered",
    "group_lag_max",
    "broker_utilisation",
    "broker_queue_mean",
    "broker_queue_max",
    "broker_wait_p99_ns",
    "latency_count",
    "latency_p50_ns",
    "latency_p95_ns",
    "latency_p99_ns",
    "latency_max_ns",
    "latency_mean_ns",
    "age_count",
    "age_p50_ns",
    "age_p95_ns",
    "age_p99_ns",
    "age_max_ns",
    "age_mean_ns",
    "trace_records",
    "digest",
];

#[test]
fn one_drop_column_per_reason_in_code_order() {
    let cols: Vec<String> = SUMMARY
        .iter()
        .filter_map(|c| c.strip_prefix("dropped_"))
        .filter(|c| !matches!(*c, "uplink" | "downlink"))
        .map(str::to_string)
        .collect();
    let names: Vec<String> = Reason::ALL.iter().map(|r| r.name().to_string()).collect();
    assert_eq!(cols, names);
}

fn summary_values(s: &Summary) -> Vec<String> {
    let reason = |r: Reason| {
        s.dropped_by_reason
            .get(r.name())
            .copied()
            .unwrap_or(0)
            .to_string()
    };
    let pct = |p: &Percentiles| {
        [p.count, p.p50_ns, p.p95_ns, p.p99_ns, p.max_ns, p.mean_ns].map(|v| v.to_string())
    };
    let mut v: Vec<String> = [
        s.sim_time_ns,
        s.events,
        s.published,
        s.routed,
        s.copies,
        s.delivered,
        s.duplicated_uplink,
        s.duplicated_downlink,
        s.dropped,
        s.dropped_uplink,
        s.dropped_downlink,
    ]
    .iter()
    .map(u64::to_string)
    .collect();
    // One column per reason, in code order (`dropped_{name}`).
    v.extend(Reason::ALL.map(reason));
    v.extend(
        [
            s.in_flight,
            s.in_flight_uplink,
            s.in_flight_downlink,
            s.late,
            s.timers,
            s.qos.counts.retransmitted_uplink,
            s.qos.counts.retransmitted_downlink,
            s.qos.counts.expired_uplink,
            s.qos.counts.acks_sent,
            s.qos.counts.acks_dropped,
            s.qos.counts.dead_lettered,
            s.qos.counts.duplicates_seen,
            s.qos.counts.duplicates_suppressed,
            s.retained_copies,
            s.evicted,
            s.at_broker,
            s.groups.routed,
            s.groups.redelivered,
            s.groups.lag_max,
        ]
        .iter()
        .map(u64::to_string),
    );
    // The server model's figures; empty without one.
    match &s.broker_server {
        Some(b) => v.extend([
            float(b.utilisation),
            float(b.queue_length_mean),
            b.queue_length_max.to_string(),
            b.wait.p99_ns.to_string(),
        ]),
        None => v.extend(std::iter::repeat_n(String::new(), 4)),
    }
    v.extend(pct(&s.latency));
    v.extend(pct(&s.age_of_information));
    v.push(s.trace_records.to_string());
    v.push(s.digest.clone());
    v
}

/// A float as the CSV writes it: the shortest text that reads back to the
/// same bits, empty for NaN.
fn float(v: f64) -> String {
    if v.is_nan() {
        String::new()
    } else {
        v.to_string()
    }
}

/// The header of a batch's CSV: `job,jobs,scenario,variant`, one column
/// per sweep (named by its key), `env,seed,status,error`, the summary's
/// counts and percentiles, `digest`, then every outcome figure.
pub fn header(p: &Prepared) -> Vec<String> {
    let mut h: Vec<String> = LEAD.iter().map(|s| s.to_string()).collect();
    h.extend(p.sweeps().iter().map(|s| s.key().to_string()));
    h.extend(["env", "seed", "status", "error"].map(String::from));
    h.extend(SUMMARY.iter().map(|c| c.to_string()));
    h.extend(p.outcome_names().iter().cloned());
    h
}

/// One row of the CSV.
pub fn record(p: &Prepared, row: &Row) -> Vec<String> {
    let j = &row.job;
    let mut r = vec![
        j.index.to_string(),
        p.jobs().to_string(),
        p.scenario(j).source().to_string(),
        j.variant.to_string(),
    ];
    r.extend(p.sweep_values(j.variant).into_iter().map(String::from));
    r.extend([
        j.env.to_string(),
        j.seed.to_string(),
        row.outcome.status().to_string(),
        row.outcome.error().unwrap_or("").to_string(),
    ]);
    match row.outcome.summary() {
        Some(s) => {
            r.extend(summary_values(s));
            r.extend(
                p.outcome_names()
                    .iter()
                    .map(|n| float(s.outcomes.get(n).unwrap_or(f64::NAN))),
            );
        }
        None => r.extend(std::iter::repeat_n(
            String::new(),
            SUMMARY.len() + p.outcome_names().len(),
        )),
    }
    r
}

/// Mean and spread of one column over the environments of a variant
/// (Welford's running mean and variance: constant memory).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Running {
    pub(crate) n: u64,
    pub(crate) mean: f64,
    m2: f64,
}

impl Running {
    pub(crate) fn push(&mut self, x: f64) {
        if x.is_nan() {
            return;
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Half-width of the 95 % confidence interval of the mean (Student's
    /// t), NaN with fewer than two values.
    pub(crate) fn half_width(&self) -> f64 {
        if self.n < 2 {
            return f64::NAN;
        }
        let var = self.m2 / (self.n - 1) as f64;
        t975(self.n - 1) * libm::sqrt(var / self.n as f64)
    }
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom: a
/// table to 30, then the Cornish-Fisher expansion (error below 1e-4).
fn t975(df: u64) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if df == 0 {
        return f64::NAN;
    }
    if df <= 30 {
        return T[df as usize - 1];
    }
    let (z, n) = (1.959_964, df as f64);
    let z3 = z * z * z;
    z + (z3 + z) / (4.0 * n) + (5.0 * z3 * z * z + 16.0 * z3 + 3.0 * z) / (96.0 * n * n)
}

/// The headline columns of the end-of-batch table, when present.
pub(crate) const HEADLINE: [&str; 10] = [
    "delivered",
    "dropped",
    "late",
    "latency_p95_ns",
    "grid.deadline_misses",
    "grid.late_updates",
    "grid.state_age_p95_ns",
    "grid.voltage_violations",
    "grid.energy_imported_mwh",
    "sink.late",
];

/// Per (scenario, variant): how many rows, how many failed, and the
/// running statistics of the headline columns.
#[derive(Default)]
pub struct Stats {
    columns: Vec<(usize, &'static str)>,
    groups: BTreeMap<(usize, usize), (u64, u64, Vec<Running>)>,
    labels: BTreeMap<(usize, usize), String>,
}

impl Stats {
    /// Statistics over the columns of `header` that are headline figures.
    pub fn new(header: &[String]) -> Stats {
        let columns = HEADLINE
            .iter()
            .filter_map(|h| header.iter().position(|c| c == h).map(|i| (i, *h)))
            .collect();
        Stats {
            columns,
            ..Stats::default()
        }
    }

    /// Adds a row (its CSV record).
    pub fn push(&mut self, p: &Prepared, row: &Row, record: &[String]) {
        let key = (row.job.scenario, row.job.variant);
        let width = self.columns.len();
        let g = self
            .groups
            .entry(key)
            .or_insert_with(|| (0, 0, vec![Running::default(); width]));
        g.0 += 1;
        if row.outcome.status() != "ok" {
            g.1 += 1;
        }
        for (k, (col, _)) in self.columns.iter().enumerate() {
            if let Ok(x) = record[*col].parse::<f64>() {
                g.2[k].push(x);
            }
        }
        self.labels.entry(key).or_insert_with(|| {
            let mut label = p.scenario(&row.job).source().to_string();
            for (s, v) in p.sweeps().iter().zip(p.sweep_values(row.job.variant)) {
                label.push_str(&format!(", {}={v}", s.key()));
            }
            label
        });
    }

    /// Writes the table: per variant, each headline figure's mean and the
    /// half-width of its 95 % confidence interval over the environments.
    pub fn write(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for (key, (n, failed, cols)) in &self.groups {
            writeln!(
                out,
                "{} ({n} env{}, {failed} not ok)",
                self.labels[key],
                if *n == 1 { "" } else { "s" }
            )?;
            for ((_, name), r) in self.columns.iter().zip(cols) {
                if r.n == 0 {
                    continue;
                }
                let hw = r.half_width();
                let hw = if hw.is_nan() {
                    String::from("-")
                } else {
                    significant(hw, 2)
                };
                writeln!(out, "  {name:<26} {:>14} ± {hw}", significant(r.mean, 6))?;
            }
        }
        writeln!(
            out,
            "(mean ± half-width of the 95 % confidence interval of the mean over the environments)"
        )
    }
}

/// `v` with `digits` significant digits, without an exponent.
fn significant(v: f64, digits: i32) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = libm::floor(libm::log10(v.abs())) as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Why shard files could not be merged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// A file could not be read as a batch CSV.
    #[error("{file}: {message}")]
    Bad {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The files are not shards of the same batch.
    #[error("{file}: {message}")]
    Mismatch {
        /// The file that does not match the first one.
        file: String,
        /// How.
        message: String,
    },
    /// A job appears twice.
    #[error("job {job} is in {first} and in {second}: the shards overlap")]
    Overlap {
        /// The job.
        job: u64,
        /// One file.
        first: String,
        /// The other.
        second: String,
    },
    /// Jobs are missing (with `jobs` 0: no file has a row at all).
    #[error("incomplete: {missing} of {jobs} jobs are in no file (the first: job {first})")]
    Incomplete {
        /// How many are missing.
        missing: u64,
        /// Jobs in the batch.
        jobs: u64,
        /// The first missing job.
        first: u64,
    },
    /// Writing the merged CSV failed.
    #[error("writing the merged CSV: {0}")]
    Write(String),
}

struct Shard<R: Read> {
    name: String,
    rows: csv::StringRecordsIntoIter<R>,
    /// Its next row and that row's job.
    head: Option<(u64, csv::StringRecord)>,
}

impl<R: Read> Shard<R> {
    fn bad(&self, message: String) -> MergeError {
        MergeError::Bad {
            file: self.name.clone(),
            message,
        }
    }

    /// Reads the next row, raw.
    fn read(&mut self) -> Result<Option<csv::StringRecord>, MergeError> {
        self.rows
            .next()
            .transpose()
            .map_err(|e| self.bad(e.to_string()))
    }

    /// Makes `r` the head, checking it against the batch's size and the
    /// job before it in the same file.
    fn set_head(&mut self, r: Option<csv::StringRecord>, jobs: u64) -> Result<(), MergeError> {
        let Some(r) = r else {
            self.head = None;
            return Ok(());
        };
        let num = |i: usize| r.get(i).and_then(|v| v.parse::<u64>().ok());
        let (Some(job), Some(total)) = (num(0), num(1)) else {
            return Err(self.bad(format!("line {}: no job number", line(&r))));
        };
        if total != jobs {
            return Err(MergeError::Mismatch {
                file: self.name.clone(),
                message: format!("a batch of {total} jobs, not {jobs}"),
            });
        }
        let after = self.head.as_ref().map(|h| h.0);
        if job >= jobs || after.is_some_and(|a| job <= a) {
            return Err(self.bad(format!(
                "line {}: job {job} is out of order or out of range",
                line(&r)
            )));
        }
        self.head = Some((job, r));
        Ok(())
    }
}

fn line(r: &csv::StringRecord) -> u64 {
    r.position().map_or(0, |p| p.line())
}

/// Merges the CSVs of the shards of one batch into the CSV the whole batch
/// writes: the same header, every job exactly once, in job order. Refuses
/// files of different batches, overlapping shards and incomplete sets.
/// Streams: memory holds one row per file.
pub fn merge<R: Read, W: Write>(inputs: Vec<(String, R)>, out: W) -> Result<u64, MergeError> {
    let mut shards = Vec::new();
    let mut firsts = Vec::new();
    let mut header: Option<(String, csv::StringRecord)> = None;
    for (name, r) in inputs {
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(r);
        let h = rdr.headers().map_err(|e| MergeError::Bad {
            file: name.clone(),
            message: e.to_string(),
        })?;
        if h.get(0) != Some("job") || h.get(1) != Some("jobs") {
            return Err(MergeError::Bad {
                file: name,
                message: "not a busbar batch CSV (its first columns are not job,jobs)".into(),
            });
        }
        match &header {
            None => header = Some((name.clone(), h.clone())),
            Some((first, h0)) if h0 != h => {
                return Err(MergeError::Mismatch {
                    file: name,
                    message: format!("its columns differ from those of {first}"),
                });
            }
            Some(_) => {}
        }
        let mut shard = Shard {
            name,
            rows: rdr.into_records(),
            head: None,
        };
        firsts.push(shard.read()?);
        shards.push(shard);
    }
    let Some((_, header)) = header else {
        return Err(MergeError::Bad {
            file: String::new(),
            message: "no file to merge".into(),
        });
    };
    // The batch's size, as the first row of any file states it.
    let Some(jobs) = firsts
        .iter()
        .flatten()
        .find_map(|r| r.get(1).and_then(|v| v.parse::<u64>().ok()))
    else {
        return Err(MergeError::Incomplete {
            missing: 0,
            jobs: 0,
            first: 0,
        });
    };
    for (s, first) in shards.iter_mut().zip(firsts) {
        s.set_head(first, jobs)?;
    }
    let mut w = csv::Writer::from_writer(out);
    let werr = |e: csv::Error| MergeError::Write(e.to_string());
    w.write_record(&header).map_err(werr)?;
    for next in 0..jobs {
        let holders: Vec<usize> = (0..shards.len())
            .filter(|&i| shards[i].head.as_ref().is_some_and(|h| h.0 == next))
            .collect();
        match holders[..] {
            [] => {
                let after = shards
                    .iter()
                    .filter_map(|s| s.head.as_ref().map(|h| h.0))
                    .min()
                    .unwrap_or(jobs);
                return Err(MergeError::Incomplete {
                    missing: after - next,
                    jobs,
                    first: next,
                });
            }
            [i] => {
                if let Some((_, r)) = &shards[i].head {
                    w.write_record(r).map_err(werr)?;
                }
                let r = shards[i].read()?;
                shards[i].set_head(r, jobs)?;
            }
            [i, k, ..] => {
                return Err(MergeError::Overlap {
                    job: next,
                    first: shards[i].name.clone(),
                    second: shards[k].name.clone(),
                });
            }
        }
    }
    if let Some(s) = shards.iter().find(|s| s.head.is_some()) {
        return Err(s.bad("rows after the batch's last job".into()));
    }
    w.flush().map_err(|e| MergeError::Write(e.to_string()))?;
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(significant(7154.0, 6), "7154.00");
        assert_eq!(significant(0.000887, 2), "0.00089");
        assert_eq!(significant(37822463.0, 6), "37822463");
        assert_eq!(significant(0.0, 2), "0");
    }

    #[test]
    fn t_quantiles() {
        assert_eq!(t975(1), 12.706);
        assert_eq!(t975(30), 2.042);
        assert!((t975(60) - 2.0003).abs() < 2e-4, "{}", t975(60));
        assert!((t975(1000) - 1.9623).abs() < 2e-4, "{}", t975(1000));
    }

    #[test]
    fn running_mean_and_interval() {
        let mut r = Running::default();
        for x in [1.0, 2.0, 3.0, 4.0, f64::NAN] {
            r.push(x);
        }
        assert_eq!((r.n, r.mean), (4, 2.5));
        // s = 1.291, t(3) = 3.182: 3.182 * 1.291 / 2 = 2.054
        assert!((r.half_width() - 2.0540).abs() < 1e-3, "{}", r.half_width());
    }
}
