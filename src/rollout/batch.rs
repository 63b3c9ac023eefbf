//! [`Batch`]: every (scenario, variant, environment) of a study as one job,
//! run on a thread pool, handed back in job order.

use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::metrics::Summary;
use crate::scenario::{Override, OverrideError, Scenario, ScenarioError};
use crate::sim::{SimBuilder, SimError};

/// One `--sweep key=v1,v2,...`: a key and the values it takes, one
/// variant each.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    key: String,
    values: Vec<(String, Override)>,
}

impl Sweep {
    /// The key path swept (the CSV column's name).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The values as written, in order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(v, _)| v.as_str())
    }

    /// Each value as the override that sets it, in order.
    pub fn overrides(&self) -> impl Iterator<Item = &Override> {
        self.values.iter().map(|(_, o)| o)
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether it has no value (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Splits at the commas that are not inside quotes, brackets or braces, so
/// a value may be an array or an inline table.
fn split_values(s: &str) -> Vec<&str> {
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl FromStr for Sweep {
    type Err = OverrideError;

    /// Reads `key.path=v1,v2,...` (each value as for `--set`; commas inside
    /// quotes, arrays or inline tables do not split).
    fn from_str(s: &str) -> Result<Sweep, OverrideError> {
        let err = |message: &str| OverrideError {
            text: s.to_string(),
            message: message.to_string(),
        };
        let Some((key, list)) = s.split_once('=') else {
            return Err(err("write key.path=value1,value2,..."));
        };
        let mut values = Vec::new();
        for v in split_values(list) {
            let v = v.trim();
            if v.is_empty() {
                return Err(err("a value between commas is empty"));
            }
            let o: Override = format!("{}={v}", key.trim()).parse()?;
            values.push((v.to_string(), o));
        }
        Ok(Sweep {
            key: key.trim().to_string(),
            values,
        })
    }
}

/// `--shard I/N`: the jobs whose index is `I` modulo `N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u64,
    /// How many shards.
    pub count: u64,
}

impl FromStr for Shard {
    type Err = String;

    /// Reads `I/N` with `0 <= I < N`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("shard {s:?}: write I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// One run of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Its index in the whole (unsharded) batch: scenario-major, then
    /// variant, then environment.
    pub index: u64,
    /// Index of its scenario among the batch's scenarios.
    pub scenario: usize,
    /// Index of its variant (one per combination of sweep values, in
    /// order, the first sweep varying slowest).
    pub variant: usize,
    /// Environment index.
    pub env: u32,
    /// Its seed: the base seed plus `env`.
    pub seed: u64,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It ran to its end.
    Done(Box<Summary>),
    /// A limit stopped it; the summary covers the run up to there and
    /// `stopped` says why.
    Stopped(Box<Summary>),
    /// It could not be built or run (the message says why).
    Failed(String),
    /// It panicked (a bug: the message is the panic's).
    Panicked(String),
}

impl Outcome {
    /// `ok`, `stopped`, `error` or `panic`: the CSV's `status` column.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Done(_) => "ok",
            Outcome::Stopped(_) => "stopped",
            Outcome::Failed(_) => "error",
            Outcome::Panicked(_) => "panic",
        }
    }

    /// The summary, if the run got far enough to have one.
    pub fn summary(&self) -> Option<&Summary> {
        match self {
            Outcome::Done(s) | Outcome::Stopped(s) => Some(s),
            _ => None,
        }
    }

    /// What went wrong, if anything.
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Stopped(s) => s.stopped.as_deref(),
            Outcome::Failed(m) | Outcome::Panicked(m) => Some(m),
        }
    }
}

/// The result of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The job.
    pub job: Job,
    /// How it ended.
    pub outcome: Outcome,
}

/// Why a batch could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// A scenario, with the batch's `--set` and one variant's sweep values,
    /// is invalid.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// The batch has nothing to run or an impossible setting.
    #[error("{0}")]
    Usage(String),
    /// The thread pool could not be started.
    #[error("cannot start {threads} threads: {message}")]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// The error.
        message: String,
    },
    /// The row callback failed (e.g. writing the CSV); the batch stopped.
    #[error("{0}")]
    Output(String),
}

/// Adds agents of your own, or changes the builder, for each job.
pub type Customize = dyn Fn(SimBuilder, &Job) -> SimBuilder + Send + Sync;

/// A study: scenarios × variants (the cartesian product of the sweeps)
/// × environments, each environment `i` seeded `base + i`.
///
/// Rows come back in job order, whatever the number of threads, and each
/// is a pure function of its job: a batch gives the same rows on 1 thread
/// or 64. Jobs run in chunks of a few per thread, so memory does not grow
/// with the number of jobs.
///
/// ```
/// use std::path::Path;
/// use busbar::rollout::batch::Batch;
///
/// let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/two_agents.toml");
/// let batch = Batch::new(vec![path])
///     .envs(4)
///     .sweep("network.default.loss=0,0.2".parse().unwrap())
///     .threads(2);
/// let prepared = batch.prepare().unwrap();
/// let mut rows = Vec::new();
/// prepared.run(|row| { rows.push(row); Ok(()) }, |_| {}).unwrap();
/// assert_eq!(rows.len(), 8);
/// assert!(rows.iter().all(|r| r.outcome.status() == "ok"));
/// ```
#[derive(Clone)]
pub struct Batch {
    scenarios: Vec<PathBuf>,
    sets: Vec<Override>,
    sweeps: Vec<Sweep>,
    envs: u32,
    seed: Option<u64>,
    threads: usize,
    shard: Option<Shard>,
    traces: Option<PathBuf>,
    stop: Option<Arc<AtomicBool>>,
    customize: Option<Arc<Customize>>,
}

impl Batch {
    /// A batch of these scenario files: one environment each, seeds from
    /// each scenario, rayon's default number of threads.
    pub fn new(scenarios: Vec<PathBuf>) -> Batch {
        Batch {
            scenarios,
            sets: Vec::new(),
            sweeps: Vec::new(),
            envs: 1,
            seed: None,
            threads: 0,
            shard: None,
            traces: None,
            stop: None,
            customize: None,
        }
    }

    /// Environments per (scenario, variant).
    pub fn envs(mut self, n: u32) -> Batch {
        self.envs = n;
        self
    }

    /// Base seed: environment `i` gets `base + i` (default: each
    /// scenario's `simulation.seed`).
    pub fn seed(mut self, base: u64) -> Batch {
        self.seed = Some(base);
        self
    }

    /// An override applied to every job.
    pub fn set(mut self, o: Override) -> Batch {
        self.sets.push(o);
        self
    }

    /// A swept key; several sweeps run their cartesian product.
    pub fn sweep(mut self, s: Sweep) -> Batch {
        self.sweeps.push(s);
        self
    }

    /// Worker threads (0: rayon's default, one per core).
    pub fn threads(mut self, n: usize) -> Batch {
        self.threads = n;
        self
    }

    /// Runs only one shard of the jobs.
    pub fn shard(mut self, s: Shard) -> Batch {
        self.shard = Some(s);
        self
    }

    /// Writes each job's trace into `dir` as
    /// `{scenario}-v{variant}-e{env}.bbt`.
    pub fn traces(mut self, dir: PathBuf) -> Batch {
        self.traces = Some(dir);
        self
    }

    /// A flag that, once set, stops the batch: running jobs stop at their
    /// next check and no new job starts.
    pub fn stop_flag(mut self, stop: Arc<AtomicBool>) -> Batch {
        self.stop = Some(stop);
        self
    }

    /// Changes each job's builder (e.g. adds your own agents) before it is
    /// built.
    pub fn customize(mut self, f: Arc<Customize>) -> Batch {
        self.customize = Some(f);
        self
    }

    /// Reads and checks every (scenario, variant) before anything runs:
    /// a sweep value that does not validate is reported here, at its
    /// override.
    pub fn prepare(&self) -> Result<Prepared, BatchError> {
        if self.scenarios.is_empty() {
            return Err(BatchError::Usage("no scenario to run".into()));
        }
        if self.envs == 0 {
            return Err(BatchError::Usage("--envs must be at least 1".into()));
        }
        let combos = variants(&self.sweeps);
        let mut scenarios = Vec::new();
        let mut outcome_names = std::collections::BTreeSet::new();
        for path in &self.scenarios {
            let mut per_variant = Vec::new();
            for combo in &combos {
                let mut o = self.sets.clone();
                o.extend(
                    combo
                        .iter()
                        .map(|&(s, v)| self.sweeps[s].values[v].1.clone()),
                );
                let sc = Scenario::from_file_with(path, &o)?;
                // The figures a run reports, known before it runs.
                let sim = sc.build(sc.seed(), 0).map_err(|e| {
                    BatchError::Usage(format!("{}: cannot build: {e}", sc.source()))
                })?;
                outcome_names.extend(sim.outcomes().iter().map(|(n, _)| n.to_string()));
                per_variant.push(sc);
            }
            scenarios.push(per_variant);
        }
        let variants = combos.len() as u64;
        let jobs = self.scenarios.len() as u64 * variants * u64::from(self.envs);
        Ok(Prepared {
            batch: self.clone(),
            scenarios,
            combos,
            outcome_names: outcome_names.into_iter().collect(),
            jobs,
        })
    }
}

/// Every combination of sweep values, as (sweep, value) indices, the first
/// sweep varying slowest; one empty combination without sweeps.
fn variants(sweeps: &[Sweep]) -> Vec<Vec<(usize, usize)>> {
    let mut out: Vec<Vec<(usize, usize)>> = vec![Vec::new()];
    for (s, sweep) in sweeps.iter().enumerate() {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..sweep.len()).map(move |v| {
                    let mut c = prefix.clone();
                    c.push((s, v));
                    c
                })
            })
            .collect();
    }
    out
}

/// A checked batch, ready to run.
pub struct Prepared {
    batch: Batch,
    /// By scenario, then variant.
    scenarios: Vec<Vec<Scenario>>,
    combos: Vec<Vec<(usize, usize)>>,
    outcome_names: Vec<String>,
    jobs: u64,
}

impl Prepared {
    /// Jobs in the whole batch (all shards).
    pub fn jobs(&self) -> u64 {
        self.jobs
    }

    /// Jobs this shard runs.
    pub fn jobs_here(&self) -> u64 {
        match self.batch.shard {
            None => self.jobs,
            Some(s) => self.jobs / s.count + u64::from(self.jobs % s.count > s.index),
        }
    }

    /// The sweeps, in order.
    pub fn sweeps(&self) -> &[Sweep] {
        &self.batch.sweeps
    }

    /// The value of each sweep in `variant`, as written.
    pub fn sweep_values(&self, variant: usize) -> Vec<&str> {
        self.combos[variant]
            .iter()
            .map(|&(s, v)| self.batch.sweeps[s].values[v].0.as_str())
            .collect()
    }

    /// The scenario of a job (its file with the batch's overrides and its
    /// variant's values).
    pub fn scenario(&self, job: &Job) -> &Scenario {
        &self.scenarios[job.scenario][job.variant]
    }

    /// Every (scenario, variant) of the batch, checked and ready.
    pub fn scenarios(&self) -> impl Iterator<Item = &Scenario> {
        self.scenarios.iter().flatten()
    }

    /// Every outcome figure any job reports (sorted): the CSV's last
    /// columns.
    pub fn outcome_names(&self) -> &[String] {
        &self.outcome_names
    }

    /// The job with index `index`.
    pub fn job(&self, index: u64) -> Job {
        let envs = u64::from(self.batch.envs);
        let variants = self.combos.len() as u64;
        let env = (index % envs) as u32;
        let variant = ((index / envs) % variants) as usize;
        let scenario = (index / envs / variants) as usize;
        let base = self
            .batch
            .seed
            .unwrap_or_else(|| self.scenarios[scenario][variant].seed());
        Job {
            index,
            scenario,
            variant,
            env,
            seed: base.wrapping_add(u64::from(env)),
        }
    }

    /// Runs a job; `None` if the stop flag cut it short.
    fn run_job(&self, job: &Job) -> Option<Outcome> {
        let stop = self.batch.stop.as_deref();
        let sc = self.scenario(job);
        let mut interrupted = false;
        let run = || -> Result<Summary, Outcome> {
            let mut b = sc.builder(job.seed, job.env);
            if let Some(dir) = &self.batch.traces {
                let path = dir.join(trace_name(sc, job));
                let file = std::fs::File::create(&path)
                    .map_err(|e| Outcome::Failed(format!("{}: {e}", path.display())))?;
                b = b.trace_to(
                    Box::new(std::io::BufWriter::new(file)),
                    sc.header(job.seed, job.env),
                );
            }
            if let Some(f) = &self.batch.customize {
                b = f(b, job);
            }
            let mut sim = b.build().map_err(|e| Outcome::Failed(e.to_string()))?;
            let ran = sc.run_to_end(&mut sim, |_| {
                if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    interrupted = true;
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            let summary = sim.finish();
            match (ran, summary) {
                (Ok(()), Ok(s)) => Ok(s),
                (Err(SimError::LimitExceeded { .. }), Ok(s)) => Err(Outcome::Stopped(Box::new(s))),
                (Err(e), _) | (Ok(()), Err(e)) => Err(Outcome::Failed(e.to_string())),
            }
        };
        let outcome = match catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(s)) => Outcome::Done(Box::new(s)),
            Ok(Err(o)) => o,
            Err(payload) => Outcome::Panicked(panic_message(&*payload)),
        };
        (!interrupted).then_some(outcome)
    }

    /// Runs this shard's jobs, calling `on_row` with each row in job order
    /// and `progress` with the number of jobs done after each chunk. Stops
    /// early if the stop flag is set (the rows handed over are then the
    /// jobs before the first one that did not finish) or if `on_row`
    /// fails. Returns whether every job of the shard ran.
    pub fn run(
        &self,
        mut on_row: impl FnMut(Row) -> Result<(), String>,
        mut progress: impl FnMut(u64),
    ) -> Result<bool, BatchError> {
        let threads = self.batch.threads;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| BatchError::Threads {
                threads,
                message: e.to_string(),
            })?;
        let (start, step) = match self.batch.shard {
            None => (0, 1),
            Some(s) => (s.index, s.count),
        };
        let mut mine = (start..self.jobs).step_by(step as usize);
        // A few jobs per thread per chunk: enough to keep every thread busy,
        // few enough that memory stays flat.
        let chunk = 8 * pool.current_num_threads().max(1);
        let stopped = || {
            self.batch
                .stop
                .as_deref()
                .is_some_and(|s| s.load(Ordering::Relaxed))
        };
        let mut done = 0;
        loop {
            let ids: Vec<u64> = mine.by_ref().take(chunk).collect();
            if ids.is_empty() {
                break;
            }
            let rows: Vec<Option<Row>> = pool.install(|| {
                ids.par_iter()
                    .map(|&i| {
                        if stopped() {
                            return None;
                        }
                        let job = self.job(i);
                        // A job cut short by the stop flag is not a result.
                        let outcome = self.run_job(&job)?;
                        Some(Row { job, outcome })
                    })
                    .collect()
            });
            for row in rows {
                let Some(row) = row else {
                    return Ok(false);
                };
                on_row(row).map_err(BatchError::Output)?;
                done += 1;
            }
            progress(done);
            if stopped() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// The file name of a job's trace.
pub fn trace_name(sc: &Scenario, job: &Job) -> String {
    let stem = Path::new(sc.source())
        .file_stem()
        .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned());
    format!("{stem}-v{}-e{}.bbt", job.variant, job.env)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_values_split_at_top_level_commas() {
        let s: Sweep = "network.default.latency={ dist = \"uniform\", min = \"1ms\", max = \"2ms\" },{ dist = \"constant\", value = \"1ms\" }"
            .parse()
            .unwrap();
        assert_eq!(s.len(), 2);
        let s: Sweep = "a.b=0,0.02, 0.05".parse().unwrap();
        assert_eq!(s.values().collect::<Vec<_>>(), ["0", "0.02", "0.05"]);
        assert!("a.b=1,,2".parse::<Sweep>().is_err());
        assert!("a.b".parse::<Sweep>().is_err());
    }

    #[test]
    fn variants_are_the_cartesian_product_first_sweep_slowest() {
        let a: Sweep = "x=1,2".parse().unwrap();
        let b: Sweep = "y=1,2,3".parse().unwrap();
        let v = variants(&[a, b]);
        assert_eq!(v.len(), 6);
        assert_eq!(v[0], [(0, 0), (1, 0)]);
        assert_eq!(v[1], [(0, 0), (1, 1)]);
        assert_eq!(v[3], [(0, 1), (1, 0)]);
        assert_eq!(variants(&[]), vec![Vec::<(usize, usize)>::new()]);
    }

    #[test]
    fn shards_parse_and_split() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        for bad in ["4/4", "1/0", "x/2", "1"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
