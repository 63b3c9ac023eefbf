//! The `busbar` command line: argument parsing and output only.
//!
//! Exit codes: 0 success; 1 a check failed (replay diverged, traces differ);
//! 2 bad input or usage (unreadable or invalid scenario or trace, a run that
//! exceeds its limits).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use std::ops::ControlFlow;

use busbar::metrics::Summary;
use busbar::replay::{Comparison, diff, replay};
use busbar::scenario::Scenario;
use busbar::time::SimDuration;
use busbar::trace::TraceReader;
use busbar::trace::export::{Format, export};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "busbar",
    version,
    about = "Deterministic simulation of the message bus of distributed power-grid control"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one environment of a scenario and print a summary.
    Run {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Seed (default: the scenario's `simulation.seed`).
        #[arg(long)]
        seed: Option<u64>,
        /// Environment index.
        #[arg(long, default_value_t = 0)]
        env: u32,
        /// Write the binary trace here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a scenario without running it.
    Check {
        /// The scenario file (TOML).
        scenario: PathBuf,
    },
    /// Re-run the scenario and seed embedded in a trace and compare event by event.
    Replay {
        /// A trace written by `busbar run --trace`.
        trace: PathBuf,
    },
    /// Print the first divergence between two traces.
    Diff {
        /// First trace.
        a: PathBuf,
        /// Second trace.
        b: PathBuf,
    },
    /// Export a trace as CSV or JSON Lines.
    Export {
        /// The trace file.
        trace: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Jsonl,
}

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

fn bad_input(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 2,
        message: message.to_string(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            scenario,
            seed,
            env,
            trace,
            json,
        } => run(&scenario, seed, env, trace.as_deref(), json),
        Command::Check { scenario } => check(&scenario),
        Command::Replay { trace } => replay_cmd(&trace),
        Command::Diff { a, b } => diff_cmd(&a, &b),
        Command::Export {
            trace,
            format,
            output,
        } => export_cmd(&trace, format, output.as_deref()),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            // One problem per line; indented lines continue the one above.
            for line in f.message.lines() {
                if line.starts_with(' ') {
                    eprintln!("{line}");
                } else {
                    eprintln!("error: {line}");
                }
            }
            ExitCode::from(f.code)
        }
    }
}

fn load(path: &Path) -> Result<Scenario, Failure> {
    Scenario::from_file(path).map_err(bad_input)
}

fn open_trace(path: &Path) -> Result<TraceReader<BufReader<File>>, Failure> {
    let f = busbar::files::open_regular(path, "trace", busbar::files::MAX_TRACE_BYTES)
        .map_err(bad_input)?;
    TraceReader::new(BufReader::new(f)).map_err(|e| bad_input(format!("{}: {e}", path.display())))
}

fn ms(ns: u64) -> String {
    format!("{:.3}ms", ns as f64 / 1e6)
}

fn run(
    path: &Path,
    seed: Option<u64>,
    env: u32,
    trace: Option<&Path>,
    json: bool,
) -> Result<u8, Failure> {
    let scenario = load(path)?;
    let seed = seed.unwrap_or(scenario.seed());
    let mut builder = scenario.builder(seed, env);
    if let Some(t) = trace {
        let f = File::create(t).map_err(|e| bad_input(format!("{}: {e}", t.display())))?;
        builder = builder.trace_to(Box::new(BufWriter::new(f)), scenario.header(seed, env));
    }
    let mut sim = builder.build().map_err(bad_input)?;
    let duration_ns = scenario.duration().as_nanos().max(1);
    let bar = indicatif::ProgressBar::new(100);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent}% simulated {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let progress = |sim: &mut busbar::Simulation| {
        let done = u128::from(sim.now().as_nanos()) * 100 / u128::from(duration_ns);
        bar.set_position(done.min(100) as u64);
        ControlFlow::Continue(())
    };
    if let Err(e) = scenario.run_to_end(&mut sim, progress) {
        bar.finish_and_clear();
        let mut message = format!("{}: {e}", path.display());
        if let Some(t) = trace {
            // Keep what happened up to the stop: a valid, replayable trace.
            match sim.finish() {
                Ok(s) => message.push_str(&format!(
                    "\n  partial trace: {} records -> {} (replay reproduces the stop)",
                    s.trace_records,
                    t.display()
                )),
                Err(te) => message.push_str(&format!("\n  trace not written: {te}")),
            }
        }
        return Err(bad_input(message));
    }
    bar.finish_and_clear();
    let summary = sim.finish().map_err(bad_input)?;
    let wall_s = started.elapsed().as_secs_f64();
    print_summary(&summary, wall_s, trace, json);
    Ok(0)
}

fn print_summary(s: &Summary, wall_s: f64, trace: Option<&Path>, json: bool) {
    let events_per_s = if wall_s > 0.0 {
        s.events as f64 / wall_s
    } else {
        0.0
    };
    if json {
        let mut v = serde_json::to_value(s).expect("summary serialises");
        v["wall_s"] = serde_json::json!(wall_s);
        v["events_per_s"] = serde_json::json!(events_per_s);
        v["trace"] = serde_json::json!(trace.map(|p| p.display().to_string()));
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        return;
    }
    let reasons: Vec<String> = s
        .dropped_by_reason
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("scenario: {} (seed {}, env {})", s.name, s.seed, s.env);
    println!(
        "simulated: {} in {:.3}s wall, {} events, {:.0} events/s",
        SimDuration(s.sim_time_ns),
        wall_s,
        s.events,
        events_per_s
    );
    println!(
        "messages: published {}, routed {}, delivered {}, dropped {}{}, in flight {}, late {}",
        s.published,
        s.routed,
        s.delivered,
        s.dropped,
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        },
        s.in_flight,
        s.late
    );
    let l = &s.latency;
    println!(
        "latency: p50 {} p95 {} p99 {} max {} ({} samples)",
        ms(l.p50_ns),
        ms(l.p95_ns),
        ms(l.p99_ns),
        ms(l.max_ns),
        l.count
    );
    let a = &s.age_of_information;
    if a.count > 0 {
        println!(
            "age of information: p50 {} p95 {} p99 {} max {}",
            ms(a.p50_ns),
            ms(a.p95_ns),
            ms(a.p99_ns),
            ms(a.max_ns)
        );
    }
    if let Some(t) = trace {
        println!("trace: {} records -> {}", s.trace_records, t.display());
    }
    println!("digest: {}", s.digest);
}

fn check(path: &Path) -> Result<u8, Failure> {
    let s = load(path)?;
    let names = s.agent_names();
    println!(
        "ok: {} ({} agents, {} microgrids, duration {}, seed {})",
        s.name(),
        names.len(),
        s.grid().len(),
        s.duration(),
        s.seed()
    );
    Ok(0)
}

fn print_comparison(c: &Comparison, what: &str) -> u8 {
    match c {
        Comparison::Identical(n) => {
            println!("{what}: identical ({n} records)");
            0
        }
        Comparison::Diverged(d) => {
            println!("{what}: diverged at record {}", d.seq);
            println!("  left:  {}", d.left.as_deref().unwrap_or("(end of trace)"));
            println!(
                "  right: {}",
                d.right.as_deref().unwrap_or("(end of trace)")
            );
            1
        }
    }
}

fn replay_cmd(path: &Path) -> Result<u8, Failure> {
    let mut r = open_trace(path)?;
    let c = replay(&mut r).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    Ok(print_comparison(&c, "replay (left: trace, right: re-run)"))
}

fn diff_cmd(a: &Path, b: &Path) -> Result<u8, Failure> {
    let mut ra = open_trace(a)?;
    let mut rb = open_trace(b)?;
    let c = diff(&mut ra, &mut rb).map_err(|e| {
        let path = if e.second { b } else { a };
        bad_input(format!("{}: {}", path.display(), e.error))
    })?;
    Ok(print_comparison(&c, "diff"))
}

fn export_cmd(path: &Path, format: ExportFormat, output: Option<&Path>) -> Result<u8, Failure> {
    let mut r = open_trace(path)?;
    let format = match format {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Jsonl => Format::Jsonl,
    };
    let res = match output {
        Some(o) => {
            let f = File::create(o).map_err(|e| bad_input(format!("{}: {e}", o.display())))?;
            export(&mut r, format, BufWriter::new(f))
        }
        None => {
            let stdout = std::io::stdout();
            let lock = stdout.lock();
            let res = export(&mut r, format, lock);
            let _ = std::io::stdout().flush();
            res
        }
    };
    match res {
        // A closed pipe (`busbar export t.bin | head`) is the reader's choice.
        Err(busbar::trace::TraceError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(0)
        }
        Err(e) => Err(bad_input(format!("{}: {e}", path.display()))),
        Ok(_) => Ok(0),
    }
}
