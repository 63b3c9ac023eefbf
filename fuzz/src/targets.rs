//! The fuzz targets: what one input does, which invariants are checked
//! beyond "no panic", and where each target's seed corpus comes from.

use std::io::{Cursor, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use busbar::message::Payload;
use busbar::replay::{Comparison, diff, replay};
use busbar::trace::export::{Format, export};
use busbar::trace::{KeptPayload, TraceError, TraceReader, TraceWriter};
use busbar::{Limits, Scenario, SimDuration, SimError};

use crate::rng::{Rng, fnv};
use crate::tracefile::MutatorLog;

/// Bounds every scenario run of the `scenario` target, whatever the file's
/// own `[limits]` say (they are kept when tighter): most inputs run at most
/// `RUN_MAX_EVENTS` events (~10 ms), one in 16 (chosen by the input's hash,
/// so a finding reproduces) up to `RUN_MAX_EVENTS_LONG`.
pub const RUN_MAX_EVENTS: u64 = 5_000;
pub const RUN_MAX_EVENTS_LONG: u64 = 100_000;
pub const RUN_MAX_IN_FLIGHT: u64 = 100_000;
pub const RUN_MAX_RECORDS: u64 = 300_000;
/// The `trace` target replays only traces whose embedded scenario allows at
/// most this many events: `replay` re-runs with the scenario's own limits.
pub const REPLAY_MAX_EVENTS: u64 = 200_000;

/// What an input did, when it did not panic.
pub enum Outcome {
    /// Nothing wrong.
    Pass(Pass),
    /// A broken invariant: what went wrong.
    Invariant(String),
}

/// What an input that broke nothing did.
#[derive(Clone, Debug)]
pub struct Pass {
    /// Sums up what happened: feedback for the corpus (an input with a new
    /// signature is kept).
    pub sig: u64,
    /// How far it got, for the statistics: `rejected`, `loaded and ran`...
    pub class: &'static str,
    /// It got past the loader or reader (mutants of deep inputs are tried
    /// more often).
    pub deep: bool,
    /// What happened, in words (for `--input`).
    pub note: String,
}

fn pass(sig: u64, class: &'static str, deep: bool, note: String) -> Outcome {
    Outcome::Pass(Pass {
        sig,
        class,
        deep,
        note,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Scenario,
    Trace,
    Set,
}

pub struct Target {
    pub kind: Kind,
    /// Where relative paths in scenarios (CSV profiles) resolve.
    pub base_dir: PathBuf,
    /// Scenarios that would make more agents than this are not loaded
    /// (0: no bound). Loading costs ~20 µs and ~3 KiB an agent, and
    /// nothing in the library bounds the count: without this bound the
    /// fuzzer keeps finding `count = 1000000` (see README, Fuzzing).
    pub max_agents: u64,
}

/// How many agents a scenario text would make: from a plain TOML parse,
/// each microgrid's `count` times its devices plus its grid agent, the
/// environment, the general agents. If the text is not TOML to the `toml`
/// crate's `Table` (an integer past `i64` is, to busbar's parser, a fine
/// float), a bound: the largest `count` anywhere times every microgrid and
/// device table.
pub fn agent_estimate(text: &str) -> u64 {
    let Ok(t) = ::toml::from_str::<::toml::Table>(text) else {
        let count = crate::toml::values_of(text, "count")
            .iter()
            .map(|v| lenient_u64(v))
            .max()
            .unwrap_or(1)
            .max(1);
        let tables = text.matches("microgrid").count() as u64 + 1;
        return count.saturating_mul(tables);
    };
    let len = |v: Option<&::toml::Value>| v.and_then(|v| v.as_array()).map_or(0, Vec::len) as u64;
    let mut n = len(t.get("agent"));
    if let Some(mgs) = t.get("microgrid").and_then(|v| v.as_array()) {
        n = n.saturating_add(1);
        for mg in mgs {
            let count = mg
                .get("count")
                .and_then(|c| c.as_integer())
                .unwrap_or(1)
                .max(1) as u64;
            n = n.saturating_add(count.saturating_mul(1 + len(mg.get("device"))));
        }
    }
    n
}

/// A TOML number as a `u64`, leniently (0 when it is not one).
pub fn lenient_u64(v: &str) -> u64 {
    let v = v.replace('_', "");
    let v = v.trim_start_matches('+');
    let radix = |p: &str, r: u32| {
        v.strip_prefix(p)
            .and_then(|d| u64::from_str_radix(d, r).ok())
    };
    v.parse::<u64>()
        .ok()
        .or_else(|| radix("0x", 16))
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
        .or_else(|| v.parse::<f64>().ok().map(|f| f as u64))
        .unwrap_or(0)
}

/// The fuzz crate's directory.
pub fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's root.
pub fn repo_dir() -> PathBuf {
    fuzz_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

impl Target {
    pub fn new(kind: Kind, max_agents: u64) -> Target {
        Target {
            kind,
            base_dir: fuzz_dir().join("corpus").join("files"),
            max_agents,
        }
    }

    /// Whether a scenario text is over the agent bound.
    fn too_many_agents(&self, text: &str) -> Option<u64> {
        if self.max_agents == 0 {
            return None;
        }
        Some(agent_estimate(text)).filter(|&n| n > self.max_agents)
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Scenario => "scenario",
            Kind::Trace => "trace",
            Kind::Set => "set",
        }
    }

    /// Inputs are cut to this length.
    pub fn max_len(&self) -> usize {
        match self.kind {
            Kind::Scenario => 64 << 10,
            Kind::Trace => 512 << 10,
            Kind::Set => 4 << 10,
        }
    }

    pub fn exec(&self, input: &[u8]) -> Outcome {
        match self.kind {
            Kind::Scenario => self.scenario(input),
            Kind::Trace => self.trace(input),
            Kind::Set => self.set(input),
        }
    }

    pub fn mutate(&self, data: &mut Vec<u8>, rng: &mut Rng, other: &[u8], log: &mut MutatorLog) {
        match self.kind {
            Kind::Scenario => crate::toml::mutate(data, rng, other, 6, self.max_len()),
            Kind::Set => {
                if rng.chance(1, 3) {
                    crate::bytes::mutate(data, rng, other, 3, self.max_len())
                } else {
                    mutate_sets(data, rng)
                }
            }
            Kind::Trace => {
                if rng.chance(1, 6) {
                    crate::bytes::mutate(data, rng, other, 4, self.max_len())
                } else {
                    crate::tracefile::mutate(data, rng, other, 3, self.max_len(), log)
                }
            }
        }
    }

    /// The seed corpus, named, and problems found while making it.
    pub fn seeds(&self) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
        let scenarios = scenario_seeds();
        match self.kind {
            Kind::Scenario => (scenarios, Vec::new()),
            Kind::Set => (set_seeds(), Vec::new()),
            Kind::Trace => trace_seeds(&scenarios, &self.base_dir),
        }
    }
}

/// Files in `dir`, sorted by name, with `ext` if given.
pub fn files_in(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The shipped scenarios, the fuzz corpus's scenarios, and the README's
/// TOML snippets joined into one scenario.
fn scenario_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let dirs = [
        repo_dir().join("scenarios"),
        fuzz_dir().join("corpus").join("scenario"),
    ];
    for dir in dirs {
        for p in files_in(&dir, Some("toml")) {
            if let Ok(b) = std::fs::read(&p) {
                out.push((p.display().to_string(), b));
            }
        }
    }
    if let Ok(readme) = std::fs::read_to_string(repo_dir().join("README.md")) {
        let mut text = String::new();
        let mut inside = false;
        for line in readme.lines() {
            let l = line.trim_start();
            if !inside && l.starts_with("```toml") {
                inside = true;
            } else if inside && l.starts_with("```") {
                inside = false;
            } else if inside {
                text.push_str(line);
                text.push('\n');
            }
        }
        if !text.is_empty() {
            out.push(("README.md (its TOML blocks)".into(), text.into_bytes()));
        }
    }
    out
}

/// A `Write` whose bytes can be taken back after the simulation's trace
/// thread is done with it.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A run of `s` (seed, env) writing a trace file into memory: its bytes, the
/// summary's digest, and why it stopped early, if it did.
fn run_traced(
    s: &Scenario,
    seed: u64,
    env: u32,
    limits: Option<Limits>,
) -> Result<(Vec<u8>, busbar::Summary, Option<SimError>), String> {
    let buf = SharedBuf::default();
    let mut b = s
        .builder(seed, env)
        .trace_to(Box::new(buf.clone()), s.header(seed, env));
    if let Some(l) = limits {
        b = b.limits(l);
    }
    let mut sim = b
        .build()
        .map_err(|e| format!("a loaded scenario does not build: {e}"))?;
    let stop = s.run_to_end(&mut sim, |_| ControlFlow::Continue(())).err();
    let summary = sim
        .finish()
        .map_err(|e| format!("finishing the run failed: {e}"))?;
    drop(sim);
    Ok((buf.take(), summary, stop))
}

/// The traces the `trace` target starts from: each seed scenario cut short
/// (so a replay takes a millisecond or so), plus a run stopped by a limit
/// and one in environment 1.
fn trace_seeds(
    scenarios: &[(String, Vec<u8>)],
    base: &Path,
) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, (name, text)) in scenarios.iter().enumerate() {
        let Ok(s) = Scenario::parse(&String::from_utf8_lossy(text), name, base) else {
            continue;
        };
        let stem = Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("s{i}"));
        let variants: &[(&str, u64, u64, u32)] = if stem == "two_agents" || stem == "seed_example" {
            &[
                ("", 20_000, 0, 0),
                ("stopped", 50, 1, 0),
                ("env1", 20_000, 2, 1),
                ("payloads", 20_000, 3, 0),
            ]
        } else {
            &[("", 20_000, 0, 0)]
        };
        for &(tag, max_events, dseed, env) in variants {
            let mut spec = s.spec().clone();
            spec.simulation.duration = spec.simulation.duration.min(SimDuration::from_secs(3));
            spec.limits.max_events = max_events;
            if tag == "payloads" {
                // Kept and cut: network_state payloads are longer than 20 bytes.
                spec.simulation.trace_payloads = Some(20);
            }
            let Ok(cut) = Scenario::from_spec(&spec, &format!("{stem}.toml"), base) else {
                problems.push(format!("{name}: the shortened spec does not load"));
                continue;
            };
            let seed = cut.seed().wrapping_add(dseed);
            match run_traced(&cut, seed, env, None) {
                Ok((bytes, _, _)) => {
                    // A seed must replay identically: determinism.
                    match TraceReader::new(Cursor::new(&bytes[..]))
                        .map_err(|e| e.to_string())
                        .and_then(|mut r| replay(&mut r).map_err(|e| e.to_string()))
                    {
                        Ok(Comparison::Identical(_)) => {}
                        other => problems.push(format!(
                            "the trace of {stem} {tag} does not replay identically: {other:?}"
                        )),
                    }
                    out.push((format!("generated: {stem} {tag}").trim().to_string(), bytes));
                }
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
    }
    (out, problems)
}

/// Digits to `#`, quoted text to `"…"`, cut to `max` characters: an error
/// message as a signature, so that every name or number in an input does
/// not make it new.
pub fn normalize(msg: &str, max: usize) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in msg.chars() {
        if c == '"' || c == '`' {
            quoted = !quoted;
            if !quoted {
                out.push('…');
            }
            out.push(c);
        } else if !quoted {
            if c.is_ascii_digit() {
                if !out.ends_with('#') {
                    out.push('#');
                }
            } else {
                out.push(c);
            }
        }
        if out.len() >= max {
            break;
        }
    }
    out
}

fn sig(parts: &[&str]) -> u64 {
    fnv(parts.join("\x1f").as_bytes())
}

fn bucket(n: u64) -> String {
    (64 - n.leading_zeros()).to_string()
}

fn tighten(l: &Limits, input: &[u8]) -> Limits {
    let max = if fnv(input).is_multiple_of(16) {
        RUN_MAX_EVENTS_LONG
    } else {
        RUN_MAX_EVENTS
    };
    Limits {
        max_events: l.max_events.min(max),
        max_sim_time: l.max_sim_time,
        max_in_flight: l.max_in_flight.min(RUN_MAX_IN_FLIGHT),
        max_trace_records: l.max_trace_records.min(RUN_MAX_RECORDS),
        ..l.clone()
    }
}

/// `--set` values worth starting from: one `key=value` per line, applied to
/// `scenarios/seed_example.toml`.
const SET_LINES: &[&str] = &[
    "network.default.loss=0.05",
    "network.default.latency={ dist = \"uniform\", min = \"1ms\", max = \"5ms\" }",
    "network.default.latency.mean=\"3ms\"",
    "simulation.duration=30s",
    "simulation.seed=7",
    "microgrid[0].count=3",
    "microgrid[1].device[0].capacity_mwh=2.5",
    "grid.deadline=500ms",
    "grid.step=2s",
    "grid.policy.v_min_pu=0.9",
    "broker.buffer_capacity=5",
    "broker.processing=1ms",
    "limits.max_events=1000",
    "network.link[0].loss=0.5",
    "agent[0].name=x",
];

fn set_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = SET_LINES
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("set-{i}"), format!("{l}\n").into_bytes()))
        .collect();
    out.push(("set-all".into(), SET_LINES.join("\n").into_bytes()));
    out
}

/// Edits one line: another key, another value, or a line added or dropped.
fn mutate_sets(data: &mut Vec<u8>, rng: &mut Rng) {
    let text = String::from_utf8_lossy(data).into_owned();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let pick = |rng: &mut Rng| SET_LINES[rng.below(SET_LINES.len())].to_string();
    const VALUES: &[&str] = &[
        "0",
        "-1",
        "1e308",
        "nan",
        "inf",
        "18446744073709551615",
        "\"\"",
        "[]",
        "{}",
        "\"-5ms\"",
        "\"18446744073709551615ns\"",
        "true",
        "[1, 2]",
        "\"0s\"",
        "4294967295",
    ];
    match rng.below(4) {
        0 => lines.push(pick(rng)),
        1 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            lines.remove(i);
        }
        2 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let key = lines[i].split_once('=').map_or("", |(k, _)| k).to_string();
            let v = VALUES[rng.below(VALUES.len())];
            lines[i] = format!("{key}={v}");
        }
        _ if !lines.is_empty() => {
            let i = rng.below(lines.len());
            let value = lines[i].split_once('=').map_or("0", |(_, v)| v).to_string();
            let key = pick(rng);
            let key = key.split_once('=').map_or("", |(k, _)| k);
            lines[i] = format!("{key}={value}");
        }
        _ => lines.push(pick(rng)),
    }
    *data = lines.join("\n").into_bytes();
}

impl Target {
    /// `--set` lines applied to the seed example: each line is read as an
    /// override (an unreadable one is skipped, as the CLI would refuse it);
    /// a scenario that loads must load again from its effective text (what
    /// a trace embeds) to the same spec, and run with tight limits.
    fn set(&self, input: &[u8]) -> Outcome {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/seed_example.toml");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Outcome::Invariant("scenarios/seed_example.toml is missing".into());
        };
        let overrides: Vec<busbar::scenario::Override> = String::from_utf8_lossy(input)
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        let s = match Scenario::parse_with(&text, "seed_example.toml", &self.base_dir, &overrides) {
            Ok(s) => s,
            Err(e) => {
                let first = e.to_string().lines().next().unwrap_or("").to_string();
                let key = e
                    .problems()
                    .first()
                    .map_or(String::new(), |p| normalize(&p.key, 40));
                return pass(
                    sig(&["err", &key]),
                    "rejected",
                    false,
                    format!("rejected: {first}"),
                );
            }
        };
        if let Some(n) = self.too_many_agents(s.text()) {
            return pass(
                sig(&["too many agents"]),
                "skipped (too many agents)",
                false,
                format!("skipped: {n} agents"),
            );
        }
        match Scenario::parse(s.text(), "effective.toml", &self.base_dir) {
            Ok(again) if again.spec() == s.spec() => {}
            Ok(_) => {
                return Outcome::Invariant(
                    "the effective text of an overridden scenario loads to another spec".into(),
                );
            }
            Err(e) => {
                return Outcome::Invariant(format!(
                    "the effective text of an overridden scenario does not load: {e}"
                ));
            }
        }
        match run_traced(&s, s.seed(), 0, Some(tighten(&s.spec().limits, input))) {
            Ok((_, summary, stop)) => pass(
                sig(&[
                    "ran",
                    &bucket(summary.events),
                    if stop.is_some() { "stopped" } else { "done" },
                ]),
                "ran",
                true,
                format!("ran: {} events", summary.events),
            ),
            Err(e) => Outcome::Invariant(e),
        }
    }

    /// Parse (and format the error: locating it is code too); for a
    /// scenario that loads: its spec must render as TOML that loads to the
    /// same spec, and a run with tight limits must write a trace that reads
    /// back with the run's digest and record count and exports.
    fn scenario(&self, input: &[u8]) -> Outcome {
        let base = &self.base_dir;
        let text = String::from_utf8_lossy(input);
        if let Some(n) = self.too_many_agents(&text) {
            return pass(
                sig(&["too many agents"]),
                "skipped (too many agents)",
                false,
                format!("skipped: {n} agents, over --max-agents {}", self.max_agents),
            );
        }
        let s = match Scenario::parse(&text, "fuzz.toml", base) {
            Ok(s) => s,
            Err(e) => {
                let _ = e.to_string();
                let parts: Vec<String> = e
                    .problems()
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}",
                            normalize(&p.key, 40),
                            normalize(p.message.lines().last().unwrap_or(""), 60)
                        )
                    })
                    .collect();
                let parts: Vec<&str> = std::iter::once("err")
                    .chain(parts.iter().map(String::as_str).take(4))
                    .collect();
                let first = e.to_string().lines().next().unwrap_or("").to_string();
                return pass(sig(&parts), "rejected", false, format!("rejected: {first}"));
            }
        };
        match Scenario::from_spec(s.spec(), "fuzz-rendered.toml", base) {
            Err(e) => {
                return Outcome::Invariant(format!(
                    "a loaded scenario, rendered as TOML, does not load again: {e}"
                ));
            }
            Ok(again) => {
                let (a, b) = (format!("{:?}", s.spec()), format!("{:?}", again.spec()));
                if a != b {
                    return Outcome::Invariant(format!(
                        "a loaded scenario changes through a TOML round trip:\n{a}\n{b}"
                    ));
                }
            }
        }
        let seed = s.seed();
        let (bytes, summary, stop) =
            match run_traced(&s, seed, 0, Some(tighten(&s.spec().limits, input))) {
                Ok(x) => x,
                Err(e) => return Outcome::Invariant(e),
            };
        let mut r = match TraceReader::new(Cursor::new(&bytes[..])) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Invariant(format!("the trace just written does not open: {e}"));
            }
        };
        let footer = r.footer().clone();
        if footer.run_digest().to_string() != summary.digest {
            return Outcome::Invariant(format!(
                "the trace's footer digest {} is not the run's {}",
                footer.run_digest(),
                summary.digest
            ));
        }
        if footer.stopped.is_some() != stop.is_some() {
            return Outcome::Invariant(format!(
                "the footer says stopped = {:?}, the run returned {stop:?}",
                footer.stopped
            ));
        }
        match export(&mut r, Format::Csv, std::io::sink()) {
            Ok(n) if n == footer.records => {}
            Ok(n) => {
                return Outcome::Invariant(format!(
                    "the trace just written exports {n} rows, its footer says {}",
                    footer.records
                ));
            }
            Err(e) => {
                return Outcome::Invariant(format!("the trace just written does not export: {e}"));
            }
        }
        // Every ordering checker streams any run's trace without a panic,
        // and agrees with itself: a property's count of violations is at
        // least the number it kept, and it checked no more deliveries than
        // the trace has records.
        let mut props = vec!["fifo", "no_stale", "exactly_once", "max_age=10ms"];
        if footer.agents.len() <= busbar::check::MAX_CAUSAL_AGENTS {
            props.push("causal");
        }
        if !s.spec().microgrids.is_empty() {
            props.push("deadline");
        }
        let header = r.header().clone();
        let checkers = match props
            .iter()
            .map(|p| busbar::check::parse_property(p, &header, &footer))
            .collect::<Result<Vec<_>, String>>()
        {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Invariant(format!("a built-in property refused the run: {e}"));
            }
        };
        let mut again = match TraceReader::new(Cursor::new(&bytes[..])) {
            Ok(r) => r,
            Err(e) => return Outcome::Invariant(format!("the trace does not open twice: {e}")),
        };
        match busbar::check::check_trace(&mut again, checkers) {
            Err(e) => {
                return Outcome::Invariant(format!("the checkers cannot read the trace: {e}"));
            }
            Ok(reports) => {
                for rep in &reports {
                    if rep.total < rep.violations.len() as u64
                        || (rep.checked > footer.records && rep.property != "deadline")
                    {
                        return Outcome::Invariant(format!("an inconsistent report: {rep:?}"));
                    }
                }
            }
        }
        let stop = match &stop {
            None => "end".to_string(),
            Some(SimError::LimitExceeded { limit, .. }) => limit.to_string(),
            Some(e) => normalize(&e.to_string(), 40),
        };
        let dropped: Vec<&str> = summary
            .dropped_by_reason
            .keys()
            .map(String::as_str)
            .collect();
        let note = format!(
            "loaded and ran: {} agents, {} events, {} published, {} delivered, stopped by: {stop}",
            s.agent_names().len(),
            summary.events,
            summary.published,
            summary.delivered
        );
        pass(
            sig(&[
                "ok",
                &stop,
                &bucket(summary.events),
                &bucket(summary.published),
                &bucket(summary.delivered),
                &dropped.join(","),
                &bucket(summary.late),
                &bucket(summary.in_flight),
                &bucket(summary.timers),
                &bucket(s.agent_names().len() as u64),
            ]),
            "loaded and ran",
            true,
            note,
        )
    }
}

fn trace_err(e: &TraceError) -> String {
    let dbg = format!("{e:?}");
    let variant = dbg.split([' ', '(', '{']).next().unwrap_or("").to_string();
    format!("{variant} {}", normalize(&e.to_string(), 60))
}

/// Every record and kept payload of a trace.
fn read_kept<R: std::io::Read + std::io::Seek>(
    r: &mut TraceReader<R>,
) -> Result<(Vec<busbar::Record>, Vec<KeptPayload>), TraceError> {
    let (mut recs, mut kept) = (Vec::new(), Vec::new());
    let mut c = r.cursor();
    while let Some((b, k)) = c.next_batch_with_payloads()? {
        recs.extend_from_slice(b);
        kept.extend_from_slice(k);
    }
    Ok((recs, kept))
}

/// Whether `back` is `orig` written again and read back: the same
/// message and content (floats compared by their bits), and the same whole
/// size if `orig` was kept whole (a cut payload is written again as what
/// was kept).
fn same_kept(orig: &KeptPayload, back: &KeptPayload) -> bool {
    let bits =
        |k: &KeptPayload| -> Vec<u64> { k.payload.as_f64s().iter().map(|v| v.to_bits()).collect() };
    orig.msg == back.msg
        && bits(orig) == bits(back)
        && orig.payload.as_bytes() == back.payload.as_bytes()
        && orig.payload.as_text() == back.payload.as_text()
        && (orig.truncated() || orig.wire_bytes == back.wire_bytes)
}

impl Target {
    /// Open; export as CSV and JSON Lines; read every record. If they read, the
    /// records written again must read back the same, and a diff of the file
    /// with itself must find them identical. Replay when the embedded scenario
    /// is small; a replay may only call a trace identical if it reads.
    fn trace(&self, input: &[u8]) -> Outcome {
        let mut r = match TraceReader::new(Cursor::new(input)) {
            Ok(r) => r,
            Err(e) => {
                return pass(
                    sig(&["open", &trace_err(&e)]),
                    "does not open",
                    false,
                    format!("does not open: {e}"),
                );
            }
        };
        let header = r.header().clone();
        let footer = r.footer().clone();
        let csv = export(&mut r, Format::Csv, std::io::sink());
        let jsonl = export(&mut r, Format::Jsonl, std::io::sink());
        let (all, kept) = match read_kept(&mut r) {
            Ok((recs, kept)) => (Ok(recs), kept),
            Err(e) => (Err(e), Vec::new()),
        };
        if csv.is_ok() != all.is_ok() || jsonl.is_ok() != all.is_ok() {
            return Outcome::Invariant(format!(
                "export and read_all disagree: csv {:?}, jsonl {:?}, read_all {:?}",
                csv.as_ref().map_err(ToString::to_string),
                jsonl.as_ref().map_err(ToString::to_string),
                all.as_ref().map(Vec::len).map_err(ToString::to_string)
            ));
        }
        if let Ok(recs) = &all {
            if recs.len() as u64 != footer.records {
                return Outcome::Invariant(format!(
                    "{} records read, the footer says {}",
                    recs.len(),
                    footer.records
                ));
            }
            // Written again (with the payloads kept), read back the same.
            let payloads: Vec<(u64, Payload)> =
                kept.iter().map(|k| (k.msg, k.payload.clone())).collect();
            let again = TraceWriter::new(Vec::new(), &header).and_then(|mut w| {
                w.records_with_payloads(recs, &payloads)?;
                w.finish(&footer)
            });
            let again = match again {
                Ok(b) => b,
                Err(e) => {
                    return Outcome::Invariant(format!("records that read do not write: {e}"));
                }
            };
            match TraceReader::new(Cursor::new(&again[..])).and_then(|mut r2| {
                let ok = r2.header() == &header && r2.footer() == &footer;
                let (back, back_kept) = read_kept(&mut r2)?;
                let same_kept = back_kept.len() == kept.len()
                    && back_kept.iter().zip(&kept).all(|(b, a)| same_kept(a, b));
                Ok((ok && same_kept, back))
            }) {
                Ok((true, back)) if &back == recs => {}
                Ok((false, _)) => {
                    return Outcome::Invariant(
                        "header, footer or kept payloads changed when written again".into(),
                    );
                }
                Ok((true, back)) => {
                    let i = back
                        .iter()
                        .zip(recs)
                        .position(|(a, b)| a != b)
                        .unwrap_or(back.len().min(recs.len()));
                    return Outcome::Invariant(format!(
                        "records written again read back differently at {i}: {:?} vs {:?}",
                        recs.get(i),
                        back.get(i)
                    ));
                }
                Err(e) => {
                    return Outcome::Invariant(format!(
                        "records that read, written again, do not read back: {e}"
                    ));
                }
            }
            let same = TraceReader::new(Cursor::new(input))
                .and_then(|a| Ok((a, TraceReader::new(Cursor::new(input))?)))
                .map_err(|e| e.to_string())
                .and_then(|(mut a, mut b)| diff(&mut a, &mut b).map_err(|e| e.to_string()));
            match same {
                Ok(Comparison::Identical(n)) if n == recs.len() as u64 => {}
                other => {
                    return Outcome::Invariant(format!(
                        "a trace that reads is not identical to itself: {other:?}"
                    ));
                }
            }
        }
        let mut class = if all.is_ok() {
            "reads, not replayed"
        } else {
            "opens, records do not read"
        };
        let replayed = if let Some(n) = self.too_many_agents(&header.scenario) {
            format!("too big ({n} agents)")
        } else {
            match Scenario::parse(
                &header.scenario,
                &header.scenario_path,
                Path::new(&header.base_dir),
            ) {
                Err(_) => "no scenario".to_string(),
                Ok(s) if s.spec().limits.max_events > REPLAY_MAX_EVENTS => "too big".to_string(),
                Ok(_) => match replay(&mut r) {
                    Ok(Comparison::Identical(n)) => {
                        if all.as_ref().map(|v| v.len() as u64).ok() != Some(n) {
                            return Outcome::Invariant(format!(
                                "replay calls identical ({n} records) a trace that does not read: {:?}",
                                all.as_ref().map(Vec::len).map_err(ToString::to_string)
                            ));
                        }
                        class = "reads, replays identical";
                        "identical".to_string()
                    }
                    Ok(Comparison::Diverged(d)) => {
                        class = "opens, replay diverges";
                        format!(
                            "diverged {}",
                            d.left.is_some() as u8 + 2 * d.right.is_some() as u8
                        )
                    }
                    Err(e) => {
                        class = "opens, replay fails";
                        format!("error {}", normalize(&e.to_string(), 50))
                    }
                },
            }
        };
        let read = match &all {
            Ok(v) => format!("read {}", bucket(v.len() as u64)),
            Err(e) => trace_err(e),
        };
        let note = format!(
            "opened; {}; replay: {replayed}",
            match &all {
                Ok(v) => format!("{} records read", v.len()),
                Err(e) => format!("records do not read: {e}"),
            }
        );
        pass(
            sig(&[
                "opened",
                &read,
                &replayed,
                &footer.stopped.is_some().to_string(),
                &bucket(footer.kinds.len() as u64),
            ]),
            class,
            all.is_ok(),
            note,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_estimated_before_loading() {
        let mg = "[[microgrid]]\nid = \"m\"\ncount = 1000000\n[[microgrid.device]]\ntype = \"load\"\nid = \"l\"\n";
        assert_eq!(agent_estimate(mg), 2_000_001);
        assert_eq!(agent_estimate("[[agent]]\n[[agent]]\n"), 2);
        // Not a `toml::Table` (past i64): bounded from the text.
        let big = format!("{mg}x = 9507081930039413678\n");
        assert!(agent_estimate(&big) >= 2_000_001);
        assert_eq!(agent_estimate("x = "), 1);
        assert_eq!(lenient_u64("0x10"), 16);
        assert_eq!(lenient_u64("1_000"), 1000);
    }

    #[test]
    fn normalize_strips_numbers_and_names() {
        assert_eq!(
            normalize("x.toml:3:14: no agent is called \"ghost\" (12 ms)", 100),
            "x.toml:#:#: no agent is called \"…\" (# ms)"
        );
        assert_eq!(normalize("abcdef", 3), "abc");
    }

    #[test]
    fn every_seed_passes() {
        for kind in [Kind::Scenario, Kind::Trace] {
            let t = Target::new(kind, 20_000);
            let (seeds, problems) = t.seeds();
            assert!(problems.is_empty(), "{problems:?}");
            assert!(seeds.len() >= 4, "{} seeds", seeds.len());
            for (name, s) in &seeds {
                match t.exec(s) {
                    Outcome::Pass(..) => {}
                    Outcome::Invariant(m) => panic!("{name}: {m}"),
                }
            }
        }
    }
}
