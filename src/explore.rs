//! Exploration: search runs of a scenario for one that breaks an ordering
//! property ([`crate::check`]), shrink it to a small scenario that still
//! breaks it, and count what the runs exercised (`busbar explore`).
//!
//! **The search.** Run `i` (from 0) of an [`Explorer`] uses seed
//! `base + i`, exploration mode `modes[i % modes.len()]` and model
//! parameters `variants[(i / modes.len()) % variants.len()]` (overrides of
//! the scenario's values, e.g. `network.default.loss=0.05`; by default the
//! scenario as it is). A [`Mode`] is
//! a tie-break order ([`TieBreak`]: equal-time events in scheduling order,
//! or in a seeded permutation) and a way of drawing link delays
//! ([`Delays`]: from the models, or adversarially at the ends of each
//! model's range). The mode is written into the scenario
//! (`[simulation] tie_break`, `delays`), so a run's trace header records
//! it and `busbar replay` reproduces the run. Every run is checked against
//! every property, streaming its records (memory does not grow with the
//! run's length). Runs go in parallel on a rayon pool, in chunks of
//! [`CHUNK`] runs; the result — which runs broke what, the first one, the
//! coverage — is the same for any number of threads.
//!
//! **Shrinking.** The first run that breaks a property (the lowest index)
//! is shrunk for the first property it breaks: greedily, a candidate
//! scenario is kept when the same seed and mode still break that property,
//! until no candidate does or the budget of candidate runs is spent. Each
//! round tries every candidate with the current seed, then every change of
//! structure (1, 3, 4 below) with the next seed, and so on, up to
//! [`DEFAULT_SHRINK_SEEDS`] seeds in all ([`Explorer::shrink_seeds`]):
//! removing an agent changes the draws of the links it shared, so the same
//! disorder may need another seed, and a shorter run another seed whose
//! disorder comes earlier. The candidates, in the order tried, each make
//! the scenario smaller:
//! 1. remove one element of an array of tables (a `[[microgrid]]`, a
//!    `[[microgrid.device]]`, an `[[agent]]`, a `[[fault]]`, a `[[clock]]`,
//!    a `[[network.link]]`, ...), shallowest arrays first: fewer agents,
//!    fewer faults;
//! 2. end the run right after the violation (the `simulation.duration` cut
//!    to the time of its last event, rounded up to a millisecond);
//! 3. halve `simulation.duration`, or cut it by a quarter: fewer
//!    messages;
//! 4. halve, or decrease by one, each `count`: fewer agents or messages;
//! 5. in `[network]`: set each probability (`loss`, `duplicate`,
//!    `reorder`, `corrupt`, ...: a number in (0, 1]) to 0, and halve each
//!    duration of at least 2 µs (latency parameters): fewer faults,
//!    smaller delays.
//!
//! A candidate that does not validate is skipped. Each kept candidate
//! removes something or makes a number smaller, so shrinking ends. The
//! candidates of a round are run in parallel and the first in this order
//! that still breaks the property is kept, so the result does not depend on
//! the number of threads either.
//!
//! **Coverage** ([`Coverage`]): per channel, what the runs actually saw —
//! publishes, deliveries, reorderings, repeated deliveries, drops,
//! retransmissions, copies cut by partitions or links down — so that "no
//! violation" can be judged: a FIFO property that held over runs that
//! never reordered anything has not been tested.

mod coverage;
mod shrink;

pub use coverage::{ChannelCoverage, Coverage};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use rayon::prelude::*;

use crate::check::{Checking, Report, property};
use crate::network::Delays;
use crate::scenario::{Override, Scenario, ScenarioError};
use crate::sim::TieBreak;

use coverage::Counter;
use shrink::{absolute_paths, candidates};

/// Runs per chunk: the runs of a chunk go in parallel, and results are
/// folded chunk by chunk in run order.
pub const CHUNK: u64 = 64;

/// Candidate runs a shrink may use, unless told otherwise.
pub const DEFAULT_SHRINK_BUDGET: u32 = 1000;

/// Seeds a shrink candidate is tried with, unless told otherwise.
pub const DEFAULT_SHRINK_SEEDS: u32 = 8;

/// How a run explores: the order of equal-time events and how link delays
/// are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// The order of events scheduled for the same instant.
    pub tie_break: TieBreak,
    /// How link delays are drawn.
    pub delays: Delays,
}

impl Mode {
    /// The mode as the scenario keys say it: `tie_break = "seeded", delays
    /// = "adversarial"`.
    pub fn describe(&self) -> String {
        format!(
            "tie_break = \"{}\", delays = \"{}\"",
            tie_name(self.tie_break),
            delays_name(self.delays)
        )
    }

    /// Writes the mode into a scenario document's `[simulation]` table.
    fn apply(&self, doc: &mut toml::Table) {
        let sim = doc
            .entry("simulation")
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = sim {
            t.insert(
                "tie_break".into(),
                toml::Value::String(tie_name(self.tie_break).into()),
            );
            t.insert(
                "delays".into(),
                toml::Value::String(delays_name(self.delays).into()),
            );
        }
    }
}

fn tie_name(t: TieBreak) -> &'static str {
    match t {
        TieBreak::Fifo => "fifo",
        TieBreak::Seeded => "seeded",
    }
}

fn delays_name(d: Delays) -> &'static str {
    match d {
        Delays::Sampled => "sampled",
        Delays::Adversarial => "adversarial",
    }
}

/// One run checked: its reports (one per property, in the order given)
/// and its coverage.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The seed.
    pub seed: u64,
    /// One report per property.
    pub reports: Vec<Report>,
    /// What the run exercised.
    pub coverage: Coverage,
    /// When the run ended (ns of virtual time).
    pub end_ns: u64,
}

impl Checked {
    /// The first property broken (its index in the order given).
    pub fn first_broken(&self) -> Option<usize> {
        self.reports.iter().position(|r| !r.holds())
    }
}

/// Runs `scenario` with `seed` (environment 0), checking `properties`
/// (names as [`crate::check::property`] reads them) over its records as
/// they come. An error names the seed: a property that does not apply, or
/// a limit that stopped the run.
pub fn check_run(scenario: &Scenario, seed: u64, properties: &[String]) -> Result<Checked, String> {
    let mut sim = scenario
        .builder(seed, 0)
        .trace_in_memory()
        .build()
        .map_err(|e| format!("seed {seed}: cannot build the simulation: {e}"))?;
    let header = scenario.header(seed, 0);
    let agents = sim.agent_names();
    let checkers = properties
        .iter()
        .map(|p| property(p, &header, &agents))
        .collect::<Result<Vec<_>, String>>()?;
    let mut checking = Checking::new(checkers);
    let mut counter = Counter::default();
    let ran = scenario.run_to_end(&mut sim, |sim| {
        let recs = sim.take_records();
        checking.observe(&recs);
        counter.observe(&recs);
        std::ops::ControlFlow::Continue(())
    });
    let finished = sim.finish();
    ran.map_err(|e| format!("seed {seed}: {e}"))?;
    finished.map_err(|e| format!("seed {seed}: {e}"))?;
    let recs = sim.take_records();
    checking.observe(&recs);
    counter.observe(&recs);
    Ok(Checked {
        seed,
        reports: checking.finish(),
        coverage: counter.finish(sim.channel_names()),
        end_ns: sim.now().as_nanos(),
    })
}

/// Why an exploration could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExploreError {
    /// The scenario with an exploration mode written in did not load.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// A run failed: a property that does not apply to the scenario, or a
    /// limit (the message names the seed).
    #[error("run {index}: {message}")]
    Run {
        /// The run's index.
        index: u64,
        /// What went wrong.
        message: String,
    },
    /// Nothing to do, or a thread pool that could not start.
    #[error("{0}")]
    Setup(String),
    /// Stopped by the stop flag (Ctrl-C).
    #[error("stopped after {0} runs")]
    Stopped(u64),
}

/// A search for runs that break ordering properties (see the module docs).
pub struct Explorer {
    scenario: Scenario,
    properties: Vec<String>,
    runs: u64,
    seed: u64,
    modes: Vec<Mode>,
    variants: Vec<Vec<Override>>,
    threads: usize,
    shrink_budget: u32,
    shrink_seeds: u32,
    stop: Option<std::sync::Arc<AtomicBool>>,
}

/// What run `i` of an [`Explorer`] is: its seed, its mode and its variant
/// (an index into [`Explorer::variants`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// The mode.
    pub mode: Mode,
    /// The variant's index.
    pub variant: usize,
}

/// The first run that broke a property.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// The run's index.
    pub index: u64,
    /// Its seed.
    pub seed: u64,
    /// Its mode.
    pub mode: Mode,
    /// Its variant's index ([`Explorer::variants`]).
    pub variant: usize,
    /// The property shrunk for (the first one the run broke).
    pub property: String,
    /// The run's check.
    pub checked: Checked,
}

/// What an exploration found.
#[derive(Clone, Debug)]
pub struct Exploration {
    /// Runs made.
    pub runs: u64,
    /// Per property (in the order given): (name, runs that broke it).
    pub broken: Vec<(String, u64)>,
    /// The lowest-index run that broke a property.
    pub first: Option<Counterexample>,
    /// What the runs exercised.
    pub coverage: Coverage,
}

impl Explorer {
    /// `runs` runs of `scenario` checking `properties`, from the scenario's
    /// seed, in two modes (seeded tie-break with sampled delays, then with
    /// adversarial delays), on one thread per core.
    pub fn new(scenario: Scenario, properties: &[String], runs: u64) -> Explorer {
        let seed = scenario.seed();
        Explorer {
            scenario,
            properties: properties.to_vec(),
            runs,
            seed,
            modes: vec![
                Mode {
                    tie_break: TieBreak::Seeded,
                    delays: Delays::Sampled,
                },
                Mode {
                    tie_break: TieBreak::Seeded,
                    delays: Delays::Adversarial,
                },
            ],
            variants: vec![Vec::new()],
            threads: 0,
            shrink_budget: DEFAULT_SHRINK_BUDGET,
            shrink_seeds: DEFAULT_SHRINK_SEEDS,
            stop: None,
        }
    }

    /// Run `i` gets seed `base + i` (wrapping).
    pub fn seed(mut self, base: u64) -> Explorer {
        self.seed = base;
        self
    }

    /// The modes run `i` cycles through (`modes[i % len]`).
    pub fn modes(mut self, modes: Vec<Mode>) -> Explorer {
        self.modes = modes;
        self
    }

    /// Worker threads (0: one per core). Results do not depend on it.
    pub fn threads(mut self, n: usize) -> Explorer {
        self.threads = n;
        self
    }

    /// Candidate runs a shrink may use.
    pub fn shrink_budget(mut self, n: u32) -> Explorer {
        self.shrink_budget = n;
        self
    }

    /// How many seeds a shrink candidate is tried with (the current one,
    /// then the next ones) before it is given up.
    pub fn shrink_seeds(mut self, n: u32) -> Explorer {
        self.shrink_seeds = n;
        self
    }

    /// A flag that stops the search between chunks when set.
    pub fn stop_flag(mut self, stop: std::sync::Arc<AtomicBool>) -> Explorer {
        self.stop = Some(stop);
        self
    }

    /// The scenario explored.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Model parameters to search too: each variant is a list of
    /// overrides (`--set`-style) applied to the scenario; run `i` uses mode
    /// `i % modes` and variant `(i / modes) % variants`. Default: one
    /// variant, the scenario as it is.
    pub fn variants(mut self, variants: Vec<Vec<Override>>) -> Explorer {
        self.variants = if variants.is_empty() {
            vec![Vec::new()]
        } else {
            variants
        };
        self
    }

    /// Variant `v` in words: its overrides, `key=value, ...` (empty for
    /// the scenario as it is).
    pub fn describe_variant(&self, v: usize) -> String {
        self.variants.get(v).map_or(String::new(), |o| {
            o.iter()
                .map(|o| o.text().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// The scenario with variant `v`'s overrides.
    pub fn variant_scenario(&self, v: usize) -> Result<Scenario, ScenarioError> {
        let s = &self.scenario;
        match self.variants.get(v) {
            Some(o) if !o.is_empty() => Scenario::parse_with(s.text(), s.source(), s.base_dir(), o),
            _ => Ok(s.clone()),
        }
    }

    /// Run `i`'s seed, mode and variant.
    pub fn run_of(&self, i: u64) -> Plan {
        let m = self.modes.len().max(1) as u64;
        let v = self.variants.len().max(1) as u64;
        Plan {
            seed: self.seed.wrapping_add(i),
            mode: self.modes[(i % m) as usize],
            variant: ((i / m) % v) as usize,
        }
    }

    fn pool(&self) -> Result<rayon::ThreadPool, ExploreError> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|e| ExploreError::Setup(format!("cannot start threads: {e}")))
    }

    /// Makes every run; `progress` is called with the number of runs done
    /// so far, after each chunk.
    pub fn explore(&self, progress: impl Fn(u64)) -> Result<Exploration, ExploreError> {
        if self.properties.is_empty() || self.modes.is_empty() || self.runs == 0 {
            return Err(ExploreError::Setup(
                "give at least one property, one mode and one run".into(),
            ));
        }
        // By variant, then mode.
        let mut scenarios = Vec::new();
        for v in 0..self.variants.len() {
            let variant = self.variant_scenario(v)?;
            for m in &self.modes {
                scenarios.push(with_mode(&variant, *m)?);
            }
        }
        let pool = self.pool()?;
        let mut out = Exploration {
            runs: 0,
            broken: self.properties.iter().map(|p| (p.clone(), 0)).collect(),
            first: None,
            coverage: Coverage::default(),
        };
        let mut start = 0;
        while start < self.runs {
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.load(AtomicOrdering::SeqCst))
            {
                return Err(ExploreError::Stopped(start));
            }
            let end = (start + CHUNK).min(self.runs);
            let results: Vec<Result<Checked, String>> = pool.install(|| {
                (start..end)
                    .into_par_iter()
                    .map(|i| {
                        let plan = self.run_of(i);
                        let m = (i % self.modes.len() as u64) as usize;
                        let s = &scenarios[plan.variant * self.modes.len() + m];
                        check_run(s, plan.seed, &self.properties)
                    })
                    .collect()
            });
            for (i, r) in (start..end).zip(results) {
                let checked = r.map_err(|message| ExploreError::Run { index: i, message })?;
                out.coverage.merge(&checked.coverage);
                for (b, rep) in out.broken.iter_mut().zip(&checked.reports) {
                    b.1 += u64::from(!rep.holds());
                }
                if out.first.is_none()
                    && let Some(p) = checked.first_broken()
                {
                    let plan = self.run_of(i);
                    out.first = Some(Counterexample {
                        index: i,
                        seed: plan.seed,
                        mode: plan.mode,
                        variant: plan.variant,
                        property: self.properties[p].clone(),
                        checked: checked.clone(),
                    });
                }
                out.runs += 1;
            }
            progress(end);
            start = end;
        }
        Ok(out)
    }

    /// Shrinks a counterexample (see the module docs); `progress` is called
    /// with the candidate runs used so far after each round.
    pub fn shrink(
        &self,
        cx: &Counterexample,
        progress: impl Fn(u32),
    ) -> Result<Shrunk, ExploreError> {
        let pool = self.pool()?;
        let mut doc = scenario_doc(&self.variant_scenario(cx.variant)?)?;
        cx.mode.apply(&mut doc);
        let base = self.scenario.base_dir().to_path_buf();
        let source = self.scenario.source().to_string();
        let props = [cx.property.clone()];
        let mut best = cx.checked.clone();
        let mut tried = 0u32;
        let mut steps = 0u32;
        let seeds = u64::from(self.shrink_seeds.max(1));
        loop {
            let cut = violation_end(&best.reports[best.first_broken().unwrap_or(0)]);
            // Every candidate with the current seed first, then each change
            // of structure with the next seeds: removing an agent changes
            // the draws of the links it shared, so the same disorder may
            // need another seed.
            let cands = candidates(&doc, cut);
            let pairs: Vec<(toml::Table, u64)> = (0..seeds)
                .flat_map(|k| {
                    cands
                        .iter()
                        .filter(move |c| k == 0 || c.reseed)
                        .map(move |c| (c.doc.clone(), best.seed.wrapping_add(k)))
                })
                .collect();
            if pairs.is_empty() || tried >= self.shrink_budget {
                break;
            }
            let room = (self.shrink_budget - tried) as usize;
            let pairs = &pairs[..pairs.len().min(room)];
            let found = pool.install(|| {
                pairs
                    .par_iter()
                    .enumerate()
                    .find_map_first(|(at, (c, seed))| {
                        let text = toml::to_string(c).ok()?;
                        let s = Scenario::parse(&text, &source, &base).ok()?;
                        let checked = check_run(&s, *seed, &props).ok()?;
                        (!checked.reports[0].holds()).then_some((at, checked))
                    })
            });
            // How many ran depends on the threads; the budget counts the
            // candidates up to the one kept (or all of them), which does
            // not.
            match found {
                Some((at, checked)) => {
                    tried += at as u32 + 1;
                    doc = pairs[at].0.clone();
                    best = checked;
                    steps += 1;
                }
                None => {
                    tried += pairs.len() as u32;
                    break;
                }
            }
            progress(tried);
        }
        let seed = best.seed;
        // TOML integers are signed: a larger seed lives in the trace only.
        if let (Ok(s), Some(t)) = (
            i64::try_from(seed),
            doc.get_mut("simulation")
                .and_then(toml::Value::as_table_mut),
        ) {
            t.insert("seed".into(), toml::Value::Integer(s));
        }
        absolute_paths(&mut doc, &base);
        Ok(Shrunk {
            doc,
            seed,
            steps,
            tried,
            checked: best,
        })
    }
}

/// A shrunk counterexample.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The scenario, as a TOML document: the mode and the seed written in
    /// (`[simulation] tie_break`, `delays`, `seed`), relative file paths
    /// made absolute.
    pub doc: toml::Table,
    /// The seed that breaks the property.
    pub seed: u64,
    /// Candidates kept.
    pub steps: u32,
    /// Candidate runs counted against the budget.
    pub tried: u32,
    /// The shrunk run's check (one report: the property shrunk for).
    pub checked: Checked,
}

impl Shrunk {
    /// The scenario as TOML text, `[simulation]` first.
    pub fn text(&self) -> String {
        render(&self.doc)
    }
}

/// `scenario` with `mode` written into it.
pub fn with_mode(scenario: &Scenario, mode: Mode) -> Result<Scenario, ScenarioError> {
    let mut doc = scenario_doc(scenario)?;
    mode.apply(&mut doc);
    let text = toml::to_string(&doc).map_err(|e| ScenarioError::Io {
        file: scenario.source().to_string(),
        message: format!("cannot render the scenario as TOML: {e}"),
    })?;
    Scenario::parse(&text, scenario.source(), scenario.base_dir())
}

/// A scenario document as TOML, `[simulation]` first (the rest in key
/// order).
pub fn render(doc: &toml::Table) -> String {
    let mut rest = doc.clone();
    let mut first = toml::Table::new();
    if let Some(sim) = rest.remove("simulation") {
        first.insert("simulation".into(), sim);
    }
    let a = toml::to_string(&first).unwrap_or_default();
    let b = toml::to_string(&rest).unwrap_or_default();
    if a.is_empty() || b.is_empty() {
        format!("{a}{b}")
    } else {
        format!("{a}\n{b}")
    }
}

fn scenario_doc(scenario: &Scenario) -> Result<toml::Table, ScenarioError> {
    let cannot = |e: String| ScenarioError::Io {
        file: scenario.source().to_string(),
        message: format!("cannot read the scenario as TOML: {e}"),
    };
    if let Ok(t) = scenario.text().parse::<toml::Table>() {
        return Ok(t);
    }
    // The text holds an integer above i64::MAX, which a `toml::Table`
    // cannot: take the validated spec instead, with such integers lowered
    // to i64::MAX (a limit that large is no limit, and a run's seed is
    // explore's own, written into the reproducer separately).
    let mut v = serde_json::to_value(scenario.spec()).map_err(|e| cannot(e.to_string()))?;
    fn fit(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.as_u64().is_some_and(|u| u > i64::MAX as u64) => {
                *v = serde_json::Value::from(i64::MAX);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(fit),
            serde_json::Value::Object(o) => {
                o.retain(|_, x| !x.is_null());
                o.values_mut().for_each(fit);
            }
            _ => {}
        }
    }
    fit(&mut v);
    match toml::Value::try_from(v).map_err(|e| cannot(e.to_string()))? {
        toml::Value::Table(t) => Ok(t),
        _ => Err(cannot("not a table".into())),
    }
}

/// The time of the last event of the first violation kept.
fn violation_end(r: &Report) -> Option<u64> {
    r.violations
        .first()
        .and_then(|v| v.events.iter().map(|e| e.record.time_ns).max())
}

/// Where a reproducer goes: `dir/<property>-seed<seed>.toml` and `.bbt`
/// (the property's name with anything but letters, digits and `_`
/// replaced by `_`).
pub fn reproducer_paths(dir: &Path, property: &str, seed: u64) -> (PathBuf, PathBuf) {
    let name: String = property
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = format!("{name}-seed{seed}");
    (
        dir.join(format!("{stem}.toml")),
        dir.join(format!("{stem}.bbt")),
    )
}
