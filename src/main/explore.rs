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
}

/// Exit 1 if a property was broken (a reproducer is written), 0 if none
/// was, 2 on bad input.
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
    let base = ex.run_of(0).seed;
    let modes: Vec<String> = args.modes.iter().map(Mode::describe).collect();
    let mut out = Stdout::new();
    let w = |out: &mut Stdout, s: String| writeln!(out, "{s}").map_err(bad_input);
    w(
        &mut out,
        format!(
            "explore {}: {} runs, seeds {}..={}, modes [{}], properties {}",
            path.display(),
            args.runs,
            base,
            base.wrapping_add(args.runs.saturating_sub(1)),
            modes.join("; "),
            args.properties.join(", ")
        ),
    )?;
    if args.variants.len() > 1 {
        let list: Vec<String> = (0..args.variants.len())
            .map(|v| ex.describe_variant(v))
            .collect();
        w(&mut out, format!("variants [{}]", list.join("; ")))?;
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
        w(
            &mut out,
            if *n == 0 {
                format!("{p}: held in all {} runs", found.runs)
            } else {
                format!("{p}: broken in {n} of {} runs", found.runs)
            },
        )?;
    }
    w(
        &mut out,
        format!(
            "{} runs in {:.2} s ({:.1} runs/s)",
            found.runs,
            secs,
            found.runs as f64 / secs.max(1e-9)
        ),
    )?;
    coverage(&mut out, &found.coverage)?;
    let Some(cx) = found.first.clone() else {
        out.finish().map_err(bad_input)?;
        return Ok(0);
    };
    w(
        &mut out,
        format!(
            "\nfirst counterexample: run {} (seed {}, {}{}) breaks {}; shrinking it",
            cx.index,
            cx.seed,
            cx.mode.describe(),
            match ex.describe_variant(cx.variant) {
                v if v.is_empty() => String::new(),
                v => format!(", {v}"),
            },
            cx.property
        ),
    )?;
    out.finish().map_err(bad_input)?;
    let bar = progress_bar(
        u64::from(args.shrink_budget),
        "{bar:40} {pos}/{len} candidate runs",
    );
    let shrunk = ex.shrink(&cx, |n| bar.set_position(u64::from(n)));
    bar.finish_and_clear();
    let shrunk = shrunk.map_err(bad_input)?;
    let (toml_path, trace_path) = write_reproducer(&args.out, &cx.property, &shrunk, &found)?;
    let mut out = Stdout::new();
    let w = |out: &mut Stdout, s: String| writeln!(out, "{s}").map_err(bad_input);
    let before = &cx.checked;
    let after = &shrunk.checked;
    let agents = |s: &Scenario| s.agent_names().len();
    let small = Scenario::parse(
        &shrunk.text(),
        &toml_path.display().to_string(),
        Path::new("."),
    )
    .map_err(bad_input)?;
    w(
        &mut out,
        format!(
            "shrunk in {} steps ({} candidate runs): {} agents -> {}, {} -> {}, {} messages published -> {}, {} faults -> {}",
            shrunk.steps,
            shrunk.tried,
            agents(ex.scenario()),
            agents(&small),
            ex.scenario().duration(),
            small.duration(),
            before.coverage.total().published,
            after.coverage.total().published,
            ex.scenario().spec().faults.len(),
            small.spec().faults.len(),
        ),
    )?;
    w(&mut out, "\nthe shrunk scenario:".into())?;
    for line in shrunk.text().lines() {
        w(
            &mut out,
            if line.is_empty() {
                String::new()
            } else {
                format!("  {line}")
            },
        )?;
    }
    w(&mut out, String::new())?;
    out.finish().map_err(bad_input)?;
    // The violation, as `verify` prints it from the reproducer's trace:
    // this also checks that the written trace breaks the property.
    let code = verify::verify_cmd(&trace_path, std::slice::from_ref(&cx.property), false)?;
    if code != 1 {
        return Err(bad_input(format!(
            "{}: the reproducer's trace does not break {} (this is a bug in busbar explore)",
            trace_path.display(),
            cx.property
        )));
    }
    let mut out = Stdout::new();
    let w = |out: &mut Stdout, s: String| writeln!(out, "{s}").map_err(bad_input);
    w(
        &mut out,
        format!(
            "\nreproducer:\n  scenario {}\n  trace    {}",
            toml_path.display(),
            trace_path.display()
        ),
    )?;
    w(
        &mut out,
        format!("replay it: busbar replay {}", trace_path.display()),
    )?;
    w(
        &mut out,
        format!(
            "check it:  busbar verify {} --property {}",
            trace_path.display(),
            cx.property
        ),
    )?;
    w(
        &mut out,
        format!(
            "run it:    busbar run {} --seed {} --trace again.bbt",
            toml_path.display(),
            shrunk.seed
        ),
    )?;
    out.finish().map_err(bad_input)?;
    Ok(1)
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
fn coverage(out: &mut Stdout, c: &Coverage) -> Result<(), Failure> {
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
    Ok(())
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
