//! busbar-fuzz: a coverage-free, seeded, structure-aware fuzzer for busbar
//! that runs on stable Rust with no system dependencies.
//!
//! ```text
//! cargo run --release --manifest-path fuzz/Cargo.toml -- <target> [options]
//! ```
//!
//! Targets: `scenario` (the scenario loader, then a run with tight limits,
//! its trace read back and exported), `trace` (the trace reader, export,
//! diff and replay), `set` (`--set` lines on the seed example). Run
//! `busbar-fuzz help` for the options. README.md ("Fuzzing") has more.

mod bytes;
mod driver;
mod minimize;
mod rng;
mod supervisor;
mod targets;
mod toml;
mod tracefile;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use driver::{CappedAlloc, Verdict, run_one, save_finding};
use rng::{Rng, fnv};
use targets::{Kind, Target};
use tracefile::MutatorLog;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

const USAGE: &str = "\
usage: busbar-fuzz <scenario|trace|set> [options]

  --seconds N      fuzz for N seconds of wall time (default 60)
  --runs N         stop after N inputs (with --seed, a run is reproducible)
  --seed S         seed of the mutation engine (default 1)
  --corpus DIR     also start from the files in DIR, and save there every
                   input that showed a new outcome (resume a long run)
  --input FILE     run one input (reproduce a finding), with a backtrace
  --minimize FILE  shrink a finding's input; writes FILE.min
  --budget-ms N    an input taking longer is a `slow` finding (default 2000)
  --hang-s N       an input running longer stops the run as a `hang` (default 20)
  --mem-mb N       an input using more heap is a `mem` finding (default 512)
  --cap-mb N       live-heap cap; reaching it stops the run as `oom` (default 4096)
  --findings DIR   where findings go (default fuzz/findings/<target>)
  --max-agents N   do not load scenarios of more agents (default 20000; 0: no
                   bound): loading is linear in agents and unbounded
  --progress-s N   seconds between progress lines (default 5)

Exit status: 0 no finding, 1 findings, 2 bad usage.";

struct Opts {
    target: Kind,
    seconds: u64,
    runs: Option<u64>,
    seed: u64,
    corpus: Option<PathBuf>,
    input: Option<PathBuf>,
    minimize: Option<PathBuf>,
    budget: Duration,
    hang: Duration,
    mem_mb: usize,
    cap_mb: usize,
    findings: Option<PathBuf>,
    progress: Duration,
    max_agents: u64,
    /// Set in a worker: the file each input is mirrored to.
    worker: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Opts>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(first) = args.first() else {
        return Err("no target given".into());
    };
    let target = match first.as_str() {
        "scenario" => Kind::Scenario,
        "trace" => Kind::Trace,
        "set" => Kind::Set,
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            return Ok(None);
        }
        other => return Err(format!("unknown target {other:?}")),
    };
    let mut o = Opts {
        target,
        seconds: 60,
        runs: None,
        seed: 1,
        corpus: None,
        input: None,
        minimize: None,
        budget: Duration::from_millis(2000),
        hang: Duration::from_secs(20),
        mem_mb: 512,
        cap_mb: 4096,
        findings: None,
        progress: Duration::from_secs(5),
        max_agents: 20_000,
        worker: std::env::var_os(supervisor::WORKER_ENV).map(PathBuf::from),
    };
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        let num = |v: String| {
            v.replace('_', "")
                .parse::<u64>()
                .map_err(|e| format!("{a} {v}: {e}"))
        };
        match a.as_str() {
            "--seconds" => o.seconds = num(val()?)?,
            "--runs" => o.runs = Some(num(val()?)?),
            "--seed" => o.seed = num(val()?)?,
            "--corpus" => o.corpus = Some(PathBuf::from(val()?)),
            "--input" => o.input = Some(PathBuf::from(val()?)),
            "--minimize" => o.minimize = Some(PathBuf::from(val()?)),
            "--budget-ms" => o.budget = Duration::from_millis(num(val()?)?),
            "--hang-s" => o.hang = Duration::from_secs(num(val()?)?),
            "--mem-mb" => o.mem_mb = num(val()?)? as usize,
            "--cap-mb" => o.cap_mb = num(val()?)? as usize,
            "--findings" => o.findings = Some(PathBuf::from(val()?)),
            "--progress-s" => o.progress = Duration::from_secs(num(val()?)?.max(1)),
            "--max-agents" => o.max_agents = num(val()?)?,
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if o.worker.is_some() {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(s) = env(supervisor::SECONDS_ENV) {
            o.seconds = s;
        }
        if let Some(s) = env(supervisor::SEED_ENV) {
            o.seed = s;
        }
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let target = Target::new(opts.target, opts.max_agents);
    let findings = opts
        .findings
        .clone()
        .unwrap_or_else(|| targets::fuzz_dir().join("findings").join(target.name()));
    let fuzzing = opts.input.is_none() && opts.minimize.is_none();
    if fuzzing && opts.worker.is_none() {
        return ExitCode::from(supervisor::supervise(opts.seconds, opts.seed, &findings));
    }
    driver::install_panic_hook();
    driver::set_cap(opts.cap_mb << 20);
    driver::spawn_watchdog(findings.clone(), opts.hang, opts.cap_mb);
    if let Some(path) = &opts.worker {
        driver::mirror_inputs_to(path);
    }
    let code = if let Some(path) = &opts.input {
        reproduce(&target, &opts, path)
    } else if let Some(path) = &opts.minimize {
        shrink(&target, &opts, path)
    } else {
        fuzz(&target, &opts, &findings)
    };
    ExitCode::from(code)
}

fn describe(e: &driver::Exec) -> String {
    match &e.verdict {
        Verdict::Pass(p) => format!("no finding: {}", p.note),
        Verdict::Finding { kind, reason, .. } => format!("{kind}: {reason}"),
    }
}

/// `--input FILE`: one input, with a backtrace on a panic.
fn reproduce(target: &Target, opts: &Opts, path: &PathBuf) -> u8 {
    let input = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return 2;
        }
    };
    let e = run_one(target, &input, true);
    println!(
        "{}: {} ({} bytes, {:.3} ms, {} KiB heap)",
        path.display(),
        describe(&e),
        input.len(),
        e.time.as_secs_f64() * 1e3,
        e.mem >> 10
    );
    let mut found = matches!(e.verdict, Verdict::Finding { .. });
    if let Verdict::Finding { detail, .. } = &e.verdict
        && !detail.is_empty()
    {
        println!("{detail}");
    }
    if e.time > opts.budget {
        println!("slow: over the {:?} budget", opts.budget);
        found = true;
    }
    if e.mem > opts.mem_mb << 20 {
        println!("mem: over the {} MiB budget", opts.mem_mb);
        found = true;
    }
    u8::from(found)
}

/// `--minimize FILE`.
fn shrink(target: &Target, opts: &Opts, path: &PathBuf) -> u8 {
    let input = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return 2;
        }
    };
    let e = run_one(target, &input, false);
    let want = match &e.verdict {
        Verdict::Finding { kind, key, .. } => minimize::Want {
            kind: kind.to_string(),
            key: key.clone(),
            budget: opts.budget,
        },
        Verdict::Pass(_) if e.time > opts.budget => minimize::Want {
            kind: "slow".into(),
            key: String::new(),
            budget: opts.budget,
        },
        Verdict::Pass(_) => {
            println!(
                "{}: no finding to keep; nothing to minimize",
                path.display()
            );
            return 0;
        }
    };
    println!(
        "minimizing {} ({} bytes): {}",
        path.display(),
        input.len(),
        describe(&e)
    );
    let (min, execs) = minimize::minimize(target, &input, &want, Duration::from_secs(opts.seconds));
    let out = PathBuf::from(format!("{}.min", path.display()));
    if let Err(e) = std::fs::write(&out, &min) {
        eprintln!("error: {}: {e}", out.display());
        return 2;
    }
    println!(
        "{} bytes after {execs} runs -> {}",
        min.len(),
        out.display()
    );
    if target.kind == Kind::Scenario
        && let Ok(text) = std::str::from_utf8(&min)
    {
        let nl = if text.ends_with('\n') { "" } else { "\n" };
        println!("---\n{text}{nl}---");
    }
    1
}

/// Inputs kept for a new outcome, bounded in count and bytes (a full pool
/// replaces a random entry).
#[derive(Default)]
struct Pool {
    items: Vec<Vec<u8>>,
    bytes: usize,
}

impl Pool {
    const MAX_ITEMS: usize = 2048;
    const MAX_BYTES: usize = 128 << 20;

    fn add(&mut self, input: Vec<u8>, rng: &mut Rng) {
        if self.items.len() < Self::MAX_ITEMS && self.bytes + input.len() <= Self::MAX_BYTES {
            self.bytes += input.len();
            self.items.push(input);
        } else if !self.items.is_empty() {
            let at = rng.below(self.items.len());
            self.bytes = self.bytes - self.items[at].len() + input.len();
            self.items[at] = input;
        }
    }
}

struct Stats {
    execs: u64,
    findings: BTreeMap<(String, String), (u64, PathBuf, String)>,
    slowest: (Duration, Vec<u8>),
    heaviest: (usize, u64),
    exec_time: Duration,
    mutate_time: Duration,
    /// Inputs by what they did (the start of the outcome's note).
    classes: BTreeMap<&'static str, u64>,
}

fn fuzz(target: &Target, opts: &Opts, findings_dir: &PathBuf) -> u8 {
    let start = Instant::now();
    let mut rng = Rng::new(opts.seed);
    let mut log = MutatorLog::default();
    let (seeds, problems) = target.seeds();
    let mut corpus: Vec<Vec<u8>> = seeds.iter().map(|(_, b)| b.clone()).collect();
    if let Some(dir) = &opts.corpus {
        for p in targets::files_in(dir, None) {
            if let Ok(b) = std::fs::read(&p) {
                corpus.push(b);
            }
        }
    }
    let n_seeds = corpus.len();
    // Inputs kept for a new outcome, in two pools: those that got past the
    // loader or reader (deep) and those that did not. A parent is a seed
    // one time in eight, else from the deep pool half the time.
    let mut deep = Pool::default();
    let mut shallow = Pool::default();
    println!(
        "busbar-fuzz {}: {} seed inputs ({}), seed {}, {} s, budget {:?} an input; findings -> {}",
        target.name(),
        corpus.len(),
        seeds
            .iter()
            .map(|(n, _)| n.rsplit('/').next().unwrap_or(n))
            .collect::<Vec<_>>()
            .join(", "),
        opts.seed,
        opts.seconds,
        opts.budget,
        findings_dir.display()
    );
    if corpus.is_empty() {
        eprintln!("error: no seed inputs");
        return 2;
    }
    let mut st = Stats {
        execs: 0,
        findings: BTreeMap::new(),
        slowest: (Duration::ZERO, Vec::new()),
        heaviest: (0, 0),
        exec_time: Duration::ZERO,
        mutate_time: Duration::ZERO,
        classes: BTreeMap::new(),
    };
    for p in &problems {
        let path = save_finding(findings_dir, "seed", p.as_bytes(), p, "");
        println!("FINDING seed: {p}");
        st.findings
            .insert(("seed".into(), p.clone()), (1, path, p.clone()));
    }
    let mut seen: HashSet<u64> = HashSet::new();
    let deadline = start + Duration::from_secs(opts.seconds);
    let mut next_progress = start + opts.progress;
    let mut i = 0usize;
    loop {
        let now = Instant::now();
        if now >= deadline || opts.runs.is_some_and(|r| st.execs >= r) {
            break;
        }
        if now >= next_progress {
            progress(
                &st,
                start,
                n_seeds + deep.items.len() + shallow.items.len(),
                seen.len(),
            );
            next_progress = now + opts.progress;
        }
        // The seeds first, as they are; then mutants.
        let t0 = Instant::now();
        let is_seed = i < n_seeds;
        let input = if is_seed {
            corpus[i].clone()
        } else {
            let choose = |rng: &mut Rng| {
                let pool = match rng.below(16) {
                    0 | 1 => &corpus,
                    2..=9 if !deep.items.is_empty() => &deep.items,
                    _ if !shallow.items.is_empty() => &shallow.items,
                    _ if !deep.items.is_empty() => &deep.items,
                    _ => &corpus,
                };
                pool[rng.below(pool.len())].clone()
            };
            let parent = choose(&mut rng);
            let other = choose(&mut rng);
            let mut m = parent;
            target.mutate(&mut m, &mut rng, &other, &mut log);
            m
        };
        i += 1;
        st.mutate_time += t0.elapsed();
        let e = run_one(target, &input, false);
        st.execs += 1;
        st.exec_time += e.time;
        if e.time > st.slowest.0 {
            st.slowest = (e.time, input.clone());
        }
        if e.mem > st.heaviest.0 {
            st.heaviest = (e.mem, fnv(&input));
        }
        let mut verdicts = vec![e.verdict.clone()];
        if e.time > opts.budget {
            // Measured twice: a busy machine is not a finding.
            let again = run_one(target, &input, false);
            if again.time > opts.budget {
                verdicts.push(Verdict::Finding {
                    kind: "slow",
                    key: String::new(),
                    reason: format!(
                        "took {:.2} s and {:.2} s (budget {:?})",
                        e.time.as_secs_f64(),
                        again.time.as_secs_f64(),
                        opts.budget
                    ),
                    detail: String::new(),
                });
            }
        }
        if e.mem > opts.mem_mb << 20 {
            verdicts.push(Verdict::Finding {
                kind: "mem",
                key: String::new(),
                reason: format!(
                    "peak heap {} MiB for a {}-byte input (budget {} MiB)",
                    e.mem >> 20,
                    input.len(),
                    opts.mem_mb
                ),
                detail: String::new(),
            });
        }
        for v in verdicts {
            match v {
                Verdict::Pass(p) => {
                    *st.classes.entry(p.class).or_default() += 1;
                    if seen.insert(p.sig) && !is_seed {
                        let pool = if p.deep { &mut deep } else { &mut shallow };
                        pool.add(input.clone(), &mut rng);
                        if let Some(dir) = &opts.corpus {
                            let _ = std::fs::create_dir_all(dir);
                            let _ =
                                std::fs::write(dir.join(format!("{:016x}", fnv(&input))), &input);
                        }
                    }
                }
                Verdict::Finding {
                    kind,
                    key,
                    reason,
                    mut detail,
                } => {
                    let k = (kind.to_string(), key);
                    if let Some(f) = st.findings.get_mut(&k) {
                        f.0 += 1;
                        continue;
                    }
                    if kind == "panic" {
                        // Again, with a backtrace.
                        if let Verdict::Finding { detail: d, .. } =
                            run_one(target, &input, true).verdict
                        {
                            detail = d;
                        }
                    }
                    let path = save_finding(findings_dir, kind, &input, &reason, &detail);
                    println!("FINDING {kind}: {reason}\n  input: {}", path.display());
                    st.findings.insert(k, (1, path, reason));
                }
            }
        }
    }
    let elapsed = start.elapsed();
    println!(
        "done: {} execs in {:.1} s ({:.0}/s), corpus {} ({} deep) ({} outcomes seen), peak RSS {} MiB",
        st.execs,
        elapsed.as_secs_f64(),
        st.execs as f64 / elapsed.as_secs_f64(),
        n_seeds + deep.items.len() + shallow.items.len(),
        deep.items.len(),
        seen.len(),
        driver::rss_bytes() >> 20
    );
    println!(
        "cost: mean {:.3} ms an input (+ {:.3} ms mutating); slowest {:.1} ms; most heap {} KiB (input {:016x})",
        st.exec_time.as_secs_f64() * 1e3 / st.execs.max(1) as f64,
        st.mutate_time.as_secs_f64() * 1e3 / st.execs.max(1) as f64,
        st.slowest.0.as_secs_f64() * 1e3,
        st.heaviest.0 >> 10,
        st.heaviest.1
    );
    let classes: Vec<String> = st
        .classes
        .iter()
        .map(|(c, n)| format!("{c} {:.1}%", 100.0 * *n as f64 / st.execs.max(1) as f64))
        .collect();
    println!("inputs: {}", classes.join(", "));
    if !st.slowest.1.is_empty() {
        let _ = std::fs::create_dir_all(findings_dir);
        let p = findings_dir.join("slowest.input");
        if std::fs::write(&p, &st.slowest.1).is_ok() {
            println!("  slowest input (not a finding) -> {}", p.display());
        }
    }
    if log.panics > 0 {
        println!(
            "the mutator's own library calls panicked {} times (first: {})",
            log.panics,
            log.first.as_deref().unwrap_or("?")
        );
    }
    if st.findings.is_empty() {
        println!("findings: none");
        0
    } else {
        println!("findings: {}", st.findings.len());
        for ((kind, _), (n, path, reason)) in &st.findings {
            println!("  {kind} x{n}: {reason}\n    {}", path.display());
        }
        1
    }
}

fn progress(st: &Stats, start: Instant, corpus: usize, seen: usize) {
    let t = start.elapsed().as_secs_f64();
    println!(
        "[{t:6.0}s] execs {} ({:.0}/s) corpus {corpus} outcomes {seen} findings {} heap {} MiB rss {} MiB",
        st.execs,
        st.execs as f64 / t.max(1e-9),
        st.findings.len(),
        driver::live_bytes() >> 20,
        driver::rss_bytes() >> 20
    );
}
