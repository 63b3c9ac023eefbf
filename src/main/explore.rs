//! `busbar explore SCENARIO --property NAME... --runs N`: search seeds and
//! exploration modes for a run that breaks an ordering property, shrink
//! it, write a reproducer (`busbar::explore`).

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use busbar::Scenario;
use busbar::explore::{Coverage, Exploration, Explorer, Mode, Shrunk, reproducer_paths};

use super::output::Stdout;
use super::{Failure, bad_input, stop_on_ctrl_c, verify};

/// What `explore` was asked.
pub struct Args {
    pub properties: Vec<String>,
    pub runs: u64,
    pub seed: Option<u64>,
    pub modes: Vec<Mode>,
    pub threads: usize,
    pub out: PathBuf,
    pub shrink_budget: u32,
    pub shrink_seeds: u32,
    pub variants: Vec<Vec<busbar::scenario::Override>>,
    pub json: bool,
}

/// Prints a line of the text report (nothing with `--json`).
struct Say {
    json: bool,
}

impl Say {
    fn line(&self, s: impl std::fmt::Display) -> Result<(), Failure> {
        if self.json {
            return Ok(());
        }
        let mut out = Stdout::new();
        writeln!(out, "{s}").map_err(bad_input)?;
        out.finish().map_err(bad_input)
    }
}

/// Exit 1 if a property was broken (a reproducer is written), 0 if none
/// was, 2 on bad input or a limit, 130 if interrupted.
pub fn explore_cmd(path: &Path, scenario: Scenario, args: Args) -> Result<u8, Failure> {
    let mut ex = Explorer::new(scenario, &args.properties, args.runs)
        .modes(args.modes.clone())
        .threads(args.threads)
        .shrink_budget(args.shrink_budget)
        .shrink_seeds(args.shrink_seeds)
        .variants(args.variants.clone())
        .stop_flag(stop_on_ctrl_c());
    if let Some(s) = args.seed {
        ex = ex.seed(s);
    }
    let say = Say { json: args.json };
    let first_seed = ex.run_of(0).seed;
    let last_seed = first_seed.wrapping_add(args.runs.saturating_sub(1));
    let modes: Vec<String> = args.modes.iter().map(Mode::describe).collect();
    let variants: Vec<String> = (0..args.variants.len())
        .map(|v| ex.describe_variant(v))
        .collect();
    say.line(format!(
        "explore {}: {} runs, seeds {first_seed}..={last_seed}, modes [{}], properties {}",
        path.display(),
        args.runs,
        modes.join("; "),
        args.properties.join(", ")
    ))?;
    if variants.len() > 1 {
        say.line(format!("variants [{}]", variants.join("; ")))?;
    }
    let bar = progress_bar(args.runs, "{bar:40} {pos}/{len} runs, {per_sec}, ETA {eta}");
    let started = std::time::Instant::now();
    let found = ex.explore(|done| bar.set_position(done));
    bar.finish_and_clear();
    let found = found.map_err(|e| match e {
        // As for `batch`: an interrupted search exits 130.
        busbar::explore::ExploreError::Stopped(_) => Failure {
            code: 130,
            message: e.to_string(),
        },
        e => bad_input(e),
    })?;
    let secs = started.elapsed().as_secs_f64();
    for (p, n) in &found.broken {
        say.line(if *n == 0 {
            format!("{p}: held in all {} runs", found.runs)
        } else {
            format!("{p}: broken in {n} of {} runs", found.runs)
        })?;
    }
    say.line(format!(
        "{} runs in {:.2} s ({:.1} runs/s)",
        found.runs,
        secs,
        found.runs as f64 / secs.max(1e-9)
    ))?;
    if !args.json {
        coverage(&found.coverage)?;
    }
    let mut report = serde_json::json!({
        "scenario": path.display().to_string(),
        "runs": found.runs,
        "seeds": [first_seed, last_seed],
        "modes": modes,
        "variants": variants,
        "properties": found.broken.iter().map(|(p, n)| serde_json::json!({
            "property": p,
            "broken_runs": n,
        })).collect::<Vec<_>>(),
        "wall_s": secs,
        "coverage": coverage_json(&found.coverage),
        "counterexample": null,
    });
    let Some(cx) = found.first.clone() else {
        print_json(&say, &report)?;
        return Ok(0);
    };
    let variant = ex.describe_variant(cx.variant);
    say.line(format!(
        "\nfirst counterexample: run {} (seed {}, {}{}) breaks {}; shrinking it",
        cx.index,
        cx.seed,
        cx.mode.describe(),
        if variant.is_empty() {
            String::new()
        } else {
            format!(", {variant}")
        },
        cx.property
    ))?;
    let bar = progress_bar(
        u64::from(args.shrink_budget),
        "{bar:40} {pos}/{len} candidate runs",
    );
    let shrunk = ex.shrink(&cx, |n| bar.set_position(u64::from(n)));
    bar.finish_and_clear();
    let shrunk = shrunk.map_err(bad_input)?;
    let (toml_path, trace_path) = write_reproducer(&args.out, &cx.property, &shrunk, &found)?;
    let small = Scenario::from_file(&toml_path).map_err(bad_input)?;
    let agents = |s: &Scenario| s.agent_names().len();
    let (big, before, after) = (ex.scenario(), &cx.checked, &shrunk.checked);
    say.line(format!(
        "shrunk in {} steps ({} candidate runs): {} agents -> {}, {} -> {}, {} messages published -> {}, {} faults -> {}",
        shrunk.steps,
        shrunk.tried,
        agents(big),
        agents(&small),
        big.duration(),
        small.duration(),
        before.coverage.total().published,
        after.coverage.total().published,
        big.spec().faults.len(),
        small.spec().faults.len(),
    ))?;
    say.line("\nthe shrunk scenario:")?;
    for line in shrunk.text().lines() {
        say.line(if line.is_empty() {
            String::new()
        } else {
            format!("  {line}")
        })?;
    }
    say.line("")?;
    // The violation, as `verify` reports it from the reproducer's trace:
    // this also checks that the written trace breaks the property.
    let verified = verify::verify_file(&trace_path, std::slice::from_ref(&cx.property))?;
    if verified.holds() {
        return Err(bad_input(format!(
            "{}: the reproducer's trace does not break {} (this is a bug in busbar explore)",
            trace_path.display(),
            cx.property
        )));
    }
    if !args.json {
        verified.print()?;
    }
    let replay = format!("busbar replay {}", trace_path.display());
    let check = format!(
        "busbar verify {} --property {}",
        trace_path.display(),
        cx.property
    );
    let run = format!(
        "busbar run {} --seed {} --trace again.bbt",
        toml_path.display(),
        shrunk.seed
    );
    say.line(format!(
        "\nreproducer:\n  scenario {}\n  trace    {}",
        toml_path.display(),
        trace_path.display()
    ))?;
    say.line(format!("replay it: {replay}"))?;
    say.line(format!("check it:  {check}"))?;
    say.line(format!("run it:    {run}"))?;
    report["counterexample"] = serde_json::json!({
        "run": cx.index,
        "seed": cx.seed,
        "mode": cx.mode.describe(),
        "variant": variant,
        "property": cx.property,
        "shrunk": {
            "steps": shrunk.steps,
            "candidate_runs": shrunk.tried,
            "seed": shrunk.seed,
            "agents": [agents(big), agents(&small)],
            "duration": [big.duration().to_string(), small.duration().to_string()],
            "published": [before.coverage.total().published, after.coverage.total().published],
            "faults": [big.spec().faults.len(), small.spec().faults.len()],
            "text": shrunk.text(),
        },
        "scenario": toml_path.display().to_string(),
        "trace": trace_path.display().to_string(),
        "violation": verified.json(),
        "commands": { "replay": replay, "verify": check, "run": run },
    });
    print_json(&say, &report)?;
    Ok(1)
}

/// With `--json`, prints the report (one JSON object).
fn print_json(say: &Say, report: &serde_json::Value) -> Result<(), Failure> {
    if !say.json {
        return Ok(());
    }
    let mut out = Stdout::new();
    let text = serde_json::to_string_pretty(report).map_err(bad_input)?;
    writeln!(out, "{text}").map_err(bad_input)?;
    out.finish().map_err(bad_input)
}

fn coverage_json(c: &Coverage) -> serde_json::Value {
    let counts = |cc: &busbar::explore::ChannelCoverage| {
        serde_json::Value::Object(
            cc.fields()
                .iter()
                .map(|(n, v)| (n.to_string(), serde_json::json!(v)))
                .collect(),
        )
    };
    let [r, d, dr, rt, p] = c.runs_with;
    serde_json::json!({
        "runs": c.runs,
        "runs_with": {
            "reordered": r, "duplicated": d, "dropped": dr, "retransmitted": rt, "partitioned": p,
        },
        "channels": c.channels.iter().map(|(n, cc)| (n.clone(), counts(cc))).collect::<serde_json::Map<_, _>>(),
        "total": counts(&c.total()),
    })
}

fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    // indicatif draws only on a terminal.
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// The per-channel table of what the runs exercised.
fn coverage(c: &Coverage) -> Result<(), Failure> {
    let mut stdout = Stdout::new();
    let out = &mut stdout;
    let w = |out: &mut Stdout, s: String| writeln!(out, "{s}").map_err(bad_input);
    let [r, d, dr, rt, p] = c.runs_with;
    w(
        out,
        format!(
            "coverage over {} runs: runs that saw a reordering {r}, a repeated delivery {d}, a drop {dr}, a retransmission {rt}, a partition drop {p}",
            c.runs
        ),
    )?;
    let width = c
        .channels
        .keys()
        .map(String::len)
        .chain(["channel".len(), "total".len()])
        .max()
        .unwrap_or(7);
    let names = busbar::explore::ChannelCoverage::default().fields();
    let mut head = format!("  {:<width$}", "channel");
    for (n, _) in names {
        head.push_str(&format!(" {n:>13}"));
    }
    w(out, head)?;
    let total = c.total();
    for (name, cc) in c.channels.iter().chain([(&"total".to_string(), &total)]) {
        let mut line = format!("  {name:<width$}");
        for (_, v) in cc.fields() {
            line.push_str(&format!(" {v:>13}"));
        }
        w(out, line)?;
    }
    stdout.finish().map_err(bad_input)
}

/// Writes the shrunk scenario and its trace; returns their paths.
fn write_reproducer(
    dir: &Path,
    property: &str,
    shrunk: &Shrunk,
    found: &Exploration,
) -> Result<(PathBuf, PathBuf), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| bad_input(format!("{}: {e}", dir.display())))?;
    let (toml_path, trace_path) = reproducer_paths(dir, property, shrunk.seed);
    let first = found.first.as_ref().map_or(0, |c| c.index);
    let text = format!(
        "# Shrunk by `busbar explore` from run {first} of {}: it breaks `{property}` with seed {} \
         (the scenario's seed below).\n# Replay its trace: busbar replay {}\n\n{}",
        found.runs,
        shrunk.seed,
        trace_path.display(),
        shrunk.text()
    );
    std::fs::write(&toml_path, &text)
        .map_err(|e| bad_input(format!("{}: {e}", toml_path.display())))?;
    let scenario = Scenario::from_file(&toml_path).map_err(bad_input)?;
    let file = std::fs::File::create(&trace_path)
        .map_err(|e| bad_input(format!("{}: {e}", trace_path.display())))?;
    let mut sim = scenario
        .builder(shrunk.seed, 0)
        .trace_to(
            Box::new(BufWriter::new(file)),
            scenario.header(shrunk.seed, 0),
        )
        .build()
        .map_err(bad_input)?;
    scenario
        .run_sim(&mut sim)
        .map_err(|e| bad_input(format!("{}: {e}", trace_path.display())))?;
    Ok((toml_path, trace_path))
}
