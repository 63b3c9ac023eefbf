//! The `busbar` command line: argument parsing and output only.
//!
//! Exit codes: 0 success; 1 a check failed (replay diverged, traces differ);
//! 2 bad input or usage (unreadable or invalid scenario or trace, a run that
//! exceeds its limits, an output that cannot be written).
//!
//! Output (module `output`): standard output is written through a lock and
//! never panics; a closed pipe ends the output quietly and the exit code is
//! the command's own. Output files are written to a temporary file beside
//! them and renamed into place only on success; an output that is one of
//! the inputs is refused.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use std::ops::ControlFlow;

use busbar::SimError;
use busbar::metrics::EntityMetrics;
use busbar::metrics::Summary;
use busbar::replay::{Comparison, Differs, diff, replay};
use busbar::rollout::batch::{Batch, BatchError, Shard, Sweep};
use busbar::rollout::table;
use busbar::scenario::{Override, Scenario};
use busbar::time::SimDuration;
use busbar::trace::export::{Format, Names, export};
use busbar::trace::window::VizError;
use busbar::trace::{MAGIC, TraceError, TraceReader};
use clap::{Parser, Subcommand, ValueEnum};

#[path = "main/output.rs"]
mod output;
#[path = "main/show.rs"]
mod show;
#[path = "main/verify.rs"]
mod verify;
#[path = "main/explore.rs"]
mod explore;
#[path = "main/viz.rs"]
mod viz;

use output::{OutputFile, Stdout, Watch, WriteFailure};

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
        /// Seed, an unsigned 64-bit integer (default: the scenario's
        /// `simulation.seed`).
        #[arg(long, allow_negative_numbers = true, value_parser = parse_seed)]
        seed: Option<u64>,
        /// Environment index, an unsigned 32-bit integer.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = parse_env)]
        env: u32,
        /// Write the binary trace here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Keep the payloads published in the trace, at most BYTES of each
        /// (1..=65536): the same as `--set simulation.trace_payloads=BYTES`.
        #[arg(long, value_name = "BYTES", requires = "trace")]
        trace_payloads: Option<u32>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Also write metrics per channel and per agent here, as tidy CSV
        /// (`entity_type,entity,metric,value,unit`; docs/metrics.md).
        #[arg(long, value_name = "PATH")]
        metrics: Option<PathBuf>,
        /// Override a scenario value: `--set network.default.loss=0.05`
        /// (repeatable; checked like the file, errors name the override).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
        sets: Vec<Override>,
    },
    /// Validate a scenario without running it.
    Check {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Override a scenario value (repeatable), as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
        sets: Vec<Override>,
        /// Also print the resolved network: every link with its model, and
        /// the routes of more than one hop.
        #[arg(long)]
        explain: bool,
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
    /// Run many environments of one or more scenarios, over sweeps of
    /// values, in parallel; one CSV row per run.
    Batch {
        /// The scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Environments per scenario and variant; environment i gets seed
        /// BASE+i.
        #[arg(long, default_value_t = 1, value_parser = parse_env)]
        envs: u32,
        /// Base seed (default: each scenario's `simulation.seed`).
        #[arg(long, allow_negative_numbers = true, value_parser = parse_seed)]
        seed: Option<u64>,
        /// Worker threads (default: one per core). Results do not depend on it.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Override a scenario value in every run (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
        sets: Vec<Override>,
        /// Run every value of a key (repeatable: the cartesian product).
        #[arg(long = "sweep", value_name = "KEY=V1,V2,...", value_parser = parse_sweep)]
        sweeps: Vec<Sweep>,
        /// Write the CSV here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write each run's trace into this directory.
        #[arg(long)]
        traces: Option<PathBuf>,
        /// Run only shard I of N (jobs whose index is I modulo N).
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<Shard>,
    },
    /// Join the CSVs of a sharded batch into the CSV of the whole batch.
    Merge {
        /// The shards' CSV files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Write the merged CSV here (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Compute the metrics per channel and per agent of a recorded trace,
    /// as tidy CSV (the table of `run --metrics`, without consumer lag,
    /// which only a live run knows).
    Metrics {
        /// The trace file.
        trace: PathBuf,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Export a trace as CSV or JSON Lines, or to look at: Chrome
    /// trace-event JSON for ui.perfetto.dev, or a Mermaid sequence diagram.
    Export {
        /// The trace file.
        trace: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        window: viz::WindowArgs,
    },
    /// One self-contained HTML file of plots (inline SVG, no network
    /// access needed) from a trace (latency per channel, age of
    /// information, deadline misses per step, drops by reason) or from a
    /// batch's results CSV (each headline outcome against the swept
    /// parameter, with 95 % intervals).
    Report {
        /// A trace file (`run --trace`) or a results CSV (`batch --out`).
        input: PathBuf,
        /// The HTML file to write.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Show one message's whole life in a trace: its publish, every hop,
    /// each copy's fate, lateness and grid step, and a summary. Exit 1 if
    /// an id is not in the trace.
    Show {
        /// The trace file.
        trace: PathBuf,
        /// The message id (repeatable: `--msg 12 --msg 40`).
        #[arg(long = "msg", value_name = "ID", required = true)]
        msgs: Vec<u64>,
        /// Print JSON (one array of lives) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check ordering properties over a recorded trace: fifo, causal,
    /// no_stale, exactly_once, max_age=DURATION, deadline. Prints each
    /// property's verdict and the events of its first violations. Exit 1 if
    /// one is violated.
    Verify {
        /// The trace file.
        trace: PathBuf,
        /// A property (repeatable: `--property fifo --property causal`).
        #[arg(long = "property", value_name = "NAME", required = true)]
        properties: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Search seeds and exploration modes (seeded order of simultaneous
    /// events, adversarial delays) for a run that breaks an ordering
    /// property; shrink the first one found to a small scenario, write it
    /// with its trace, and print the command that replays it. Prints what
    /// the runs exercised per channel (reorderings, repeated deliveries,
    /// drops, retransmissions, partition drops). Exit 1 if a property was
    /// broken, 0 if none was.
    Explore {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// A property, as `busbar verify` names them (repeatable).
        #[arg(long = "property", value_name = "NAME", required = true)]
        properties: Vec<String>,
        /// How many runs; run i gets seed BASE+i.
        #[arg(long, default_value_t = 100)]
        runs: u64,
        /// Base seed (default: the scenario's `simulation.seed`).
        #[arg(long, allow_negative_numbers = true, value_parser = parse_seed)]
        seed: Option<u64>,
        /// Order of simultaneous events: `seeded` (a permutation per seed)
        /// or `fifo` (scheduling order).
        #[arg(long, value_enum, default_value_t = TiesArg::Seeded)]
        ties: TiesArg,
        /// Link delays: `sampled` from the models, `adversarial` (each at
        /// an end of its model's range), or `both` (runs alternate).
        #[arg(long, value_enum, default_value_t = DelaysArg::Both)]
        delays: DelaysArg,
        /// Worker threads (default: one per core). Results do not depend on it.
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Directory for the reproducer (scenario and trace).
        #[arg(long, default_value = "explore-out")]
        out: PathBuf,
        /// Most candidate runs the shrink may use.
        #[arg(long, default_value_t = busbar::explore::DEFAULT_SHRINK_BUDGET)]
        shrink_budget: u32,
        /// Seeds a shrink candidate is tried with before it is given up.
        #[arg(long, default_value_t = busbar::explore::DEFAULT_SHRINK_SEEDS)]
        shrink_seeds: u32,
        /// Override a scenario value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
        sets: Vec<Override>,
        /// Search these values of a key too (repeatable: the cartesian
        /// product); run i uses variant (i / modes) modulo their number.
        #[arg(long = "sweep", value_name = "KEY=V1,V2,...", value_parser = parse_sweep)]
        sweeps: Vec<Sweep>,
        /// Print one JSON object instead of text (the reproducer is
        /// written all the same).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum TiesArg {
    Fifo,
    Seeded,
}

#[derive(Clone, Copy, ValueEnum)]
enum DelaysArg {
    Sampled,
    Adversarial,
    Both,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Csv,
    Jsonl,
    /// Chrome trace-event JSON (ui.perfetto.dev, chrome://tracing).
    Perfetto,
    /// A Mermaid sequence diagram of a window of the run.
    Mermaid,
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

/// `--seed`: clap's own message for `-1` is "unexpected argument".
fn parse_seed(s: &str) -> Result<u64, String> {
    s.parse()
        .map_err(|_| format!("a seed is an unsigned integer, 0..={}", u64::MAX))
}

/// `--set key.path=value`.
fn parse_set(s: &str) -> Result<Override, String> {
    s.parse::<Override>().map_err(|e| e.message)
}

/// `--sweep key.path=v1,v2,...`.
fn parse_sweep(s: &str) -> Result<Sweep, String> {
    s.parse::<Sweep>().map_err(|e| e.message)
}

/// `--shard I/N`.
fn parse_shard(s: &str) -> Result<Shard, String> {
    s.parse()
}

/// `--env`: an environment index.
fn parse_env(s: &str) -> Result<u32, String> {
    s.parse().map_err(|_| {
        format!(
            "an environment index is an unsigned integer, 0..={}",
            u32::MAX
        )
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors go to standard error (exit 2), `--help` and
            // `--version` to standard output (exit 0), which may fail too.
            let printed = e.print();
            if !e.use_stderr()
                && let Err(err) = printed
                && let WriteFailure::Error(message) = output::stdout_failure(err)
            {
                return report(&bad_input(message));
            }
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::Run {
            scenario,
            seed,
            env,
            trace,
            trace_payloads,
            json,
            metrics,
            mut sets,
        } => run(
            &scenario,
            {
                if let Some(b) = trace_payloads {
                    sets.push(Override::new(
                        busbar::validate::KeyPath::root()
                            .key("simulation")
                            .key("trace_payloads"),
                        toml::Value::Integer(i64::from(b)),
                    ));
                }
                &sets
            },
            seed,
            env,
            Outputs {
                trace: trace.as_deref(),
                metrics: metrics.as_deref(),
            },
            json,
        ),
        Command::Check {
            scenario,
            sets,
            explain,
        } => check(&scenario, &sets, explain),
        Command::Replay { trace } => replay_cmd(&trace),
        Command::Diff { a, b } => diff_cmd(&a, &b),
        Command::Export {
            trace,
            format,
            output,
            window,
        } => export_cmd(&trace, format, output.as_deref(), &window),
        Command::Metrics { trace, output } => metrics_cmd(&trace, output.as_deref()),
        Command::Report { input, output } => report_cmd(&input, &output),
        Command::Show { trace, msgs, json } => show::show_cmd(&trace, &msgs, json),
        Command::Verify {
            trace,
            properties,
            json,
        } => verify::verify_cmd(&trace, &properties, json),
        Command::Batch {
            scenarios,
            envs,
            seed,
            threads,
            sets,
            sweeps,
            out,
            traces,
            shard,
        } => {
            let mut b = Batch::new(scenarios).envs(envs).threads(threads);
            if let Some(seed) = seed {
                b = b.seed(seed);
            }
            for o in sets {
                b = b.set(o);
            }
            for sw in sweeps {
                b = b.sweep(sw);
            }
            if let Some(sh) = shard {
                b = b.shard(sh);
            }
            batch_cmd(b, out.as_deref(), traces)
        }
        Command::Merge { inputs, output } => merge_cmd(&inputs, output.as_deref()),
        Command::Explore {
            scenario,
            properties,
            runs,
            seed,
            ties,
            delays,
            threads,
            out,
            shrink_budget,
            shrink_seeds,
            sets,
            sweeps,
            json,
        } => {
            let tie_break = match ties {
                TiesArg::Fifo => busbar::sim::TieBreak::Fifo,
                TiesArg::Seeded => busbar::sim::TieBreak::Seeded,
            };
            use busbar::network::Delays;
            let delays = match delays {
                DelaysArg::Sampled => vec![Delays::Sampled],
                DelaysArg::Adversarial => vec![Delays::Adversarial],
                DelaysArg::Both => vec![Delays::Sampled, Delays::Adversarial],
            };
            let modes = delays
                .into_iter()
                .map(|delays| busbar::explore::Mode { tie_break, delays })
                .collect();
            load(&scenario, &sets).and_then(|s| {
                explore::explore_cmd(
                    &scenario,
                    s,
                    explore::Args {
                        properties,
                        runs,
                        seed,
                        modes,
                        threads,
                        out,
                        shrink_budget,
                        shrink_seeds,
                        variants: variants(&sweeps),
                        json,
                    },
                )
            })
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => report(&f),
    }
}

/// Prints a failure on standard error (one problem per line; indented
/// lines continue the one above) and returns its exit code.
fn report(f: &Failure) -> ExitCode {
    for line in f.message.lines() {
        if line.starts_with(' ') {
            output::to_stderr(format_args!("{line}\n"));
        } else {
            output::to_stderr(format_args!("error: {line}\n"));
        }
    }
    ExitCode::from(f.code)
}

fn load(path: &Path, sets: &[Override]) -> Result<Scenario, Failure> {
    Scenario::from_file_with(path, sets).map_err(|e| {
        if is_trace(path) {
            bad_input(format!(
                "{0} is a busbar trace, not a scenario; to re-run it use `busbar replay {0}`",
                path.display()
            ))
        } else {
            bad_input(e)
        }
    })
}

/// Whether `path` starts with the trace magic bytes (only asked once it
/// failed to load as a scenario).
fn is_trace(path: &Path) -> bool {
    let Ok(f) = busbar::files::open_regular(path, "trace", busbar::files::MAX_TRACE_BYTES) else {
        return false;
    };
    let mut magic = [0u8; 8];
    f.take(8).read_exact(&mut magic).is_ok() && &magic == MAGIC
}

fn open_trace(path: &Path) -> Result<TraceReader<BufReader<File>>, Failure> {
    let f = busbar::files::open_regular(path, "trace", busbar::files::MAX_TRACE_BYTES)
        .map_err(bad_input)?;
    TraceReader::new(BufReader::new(f)).map_err(|e| bad_input(format!("{}: {e}", path.display())))
}

/// A trace write error, naming the trace file.
fn trace_write_error(trace: &Path, e: &TraceError) -> String {
    match e {
        TraceError::Io(io) => format!("{}: cannot write the trace: {io}", trace.display()),
        other => format!("{}: cannot write the trace: {other}", trace.display()),
    }
}

fn ms(ns: u64) -> String {
    format!("{:.3}ms", ns as f64 / 1e6)
}

/// The files `busbar run` writes besides standard output.
struct Outputs<'a> {
    trace: Option<&'a Path>,
    metrics: Option<&'a Path>,
}

fn run(
    path: &Path,
    sets: &[Override],
    seed: Option<u64>,
    env: u32,
    outputs: Outputs<'_>,
    json: bool,
) -> Result<u8, Failure> {
    let trace = outputs.trace;
    let scenario = load(path, sets)?;
    let seed = seed.unwrap_or(scenario.seed());
    let mut builder = scenario.builder(seed, env);
    let profiles = scenario.input_files();
    let mut inputs: Vec<&Path> = vec![path];
    inputs.extend(profiles.iter().map(PathBuf::as_path));
    let mut trace_out = None;
    if let Some(t) = trace {
        let (guard, file) = OutputFile::create(t, &inputs).map_err(bad_input)?;
        builder = builder.trace_to(Box::new(BufWriter::new(file)), scenario.header(seed, env));
        trace_out = Some(guard);
    }
    // Created before the run, so a bad path fails before any work.
    let mut metrics_out = None;
    if let Some(m) = outputs.metrics {
        if trace.is_some_and(|t| t == m) {
            return Err(bad_input(format!(
                "{}: the metrics and the trace cannot be the same file",
                m.display()
            )));
        }
        metrics_out = Some(OutputFile::create(m, &inputs).map_err(bad_input)?);
        builder = builder.entity_metrics(true);
    }
    let mut sim = builder.build().map_err(bad_input)?;
    let duration_ns = scenario.duration().as_nanos().max(1);
    // indicatif draws only on a terminal and ignores its write errors.
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
    let ran = scenario.run_to_end(&mut sim, progress);
    bar.finish_and_clear();
    // Also after a stop: a trace of what happened up to there.
    let finished = sim.finish();
    let wall_s = started.elapsed().as_secs_f64();
    let summary = match (ran, finished) {
        (Ok(()), Ok(summary)) => {
            if let Some(out) = trace_out {
                out.commit().map_err(bad_input)?;
            }
            if let Some((guard, file)) = metrics_out {
                write_entity_metrics(&sim, guard, file)?;
            }
            summary
        }
        // Writing the trace failed: the run stopped there, or the trace's
        // end could not be written. No trace is put in place.
        (Err(SimError::Trace(e)), _) | (Ok(()), Err(SimError::Trace(e))) => {
            let t = trace.unwrap_or(path);
            return Err(bad_input(trace_write_error(t, &e)));
        }
        (Ok(()), Err(e)) => return Err(bad_input(format!("{}: {e}", path.display()))),
        (Err(e), finished) => {
            let mut message = format!("{}: {e}", path.display());
            if json && let Ok(s) = &finished {
                // Valid JSON on standard output also for a stopped run
                // (`stopped` says why); the exit code is still 2.
                let mut out = Stdout::new();
                print_summary(&mut out, s, wall_s, trace, true)
                    .and_then(|()| out.finish())
                    .map_err(bad_input)?;
            }
            if let (Some(out), Some(t)) = (trace_out, trace) {
                // Keep what happened up to the stop: a valid, replayable trace.
                match finished {
                    Ok(s) => match out.commit() {
                        Ok(()) => message.push_str(&format!(
                            "\n  partial trace: {} records -> {} (replay reproduces the stop)",
                            s.trace_records,
                            t.display()
                        )),
                        Err(m) => message.push_str(&format!("\n  trace not written: {m}")),
                    },
                    Err(SimError::Trace(te)) => message.push_str(&format!(
                        "\n  trace not written: {}",
                        trace_write_error(t, &te)
                    )),
                    Err(other) => {
                        message.push_str(&format!("\n  trace not written: {other}"));
                    }
                }
            }
            return Err(bad_input(message));
        }
    };
    let mut out = Stdout::new();
    print_summary(&mut out, &summary, wall_s, trace, json).map_err(bad_input)?;
    out.finish().map_err(bad_input)?;
    Ok(0)
}

fn print_summary(
    out: &mut Stdout,
    s: &Summary,
    wall_s: f64,
    trace: Option<&Path>,
    json: bool,
) -> Result<(), String> {
    let events_per_s = if wall_s > 0.0 {
        s.events as f64 / wall_s
    } else {
        0.0
    };
    if json {
        let mut v = serde_json::to_value(s).map_err(|e| format!("summary as JSON: {e}"))?;
        v["wall_s"] = serde_json::json!(wall_s);
        v["events_per_s"] = serde_json::json!(events_per_s);
        v["trace"] = serde_json::json!(trace.map(|p| p.display().to_string()));
        let text = serde_json::to_string_pretty(&v).map_err(|e| format!("summary as JSON: {e}"))?;
        return writeln!(out, "{text}");
    }
    let reasons: Vec<String> = s
        .dropped_by_reason
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    writeln!(out, "scenario: {} (seed {}, env {})", s.name, s.seed, s.env)?;
    writeln!(
        out,
        "simulated: {} in {:.3}s wall, {} events, {:.0} events/s",
        SimDuration(s.sim_time_ns),
        wall_s,
        s.events,
        events_per_s
    )?;
    writeln!(
        out,
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
    )?;
    writeln!(
        out,
        "copies: broker made {}{}{}; dropped before the broker {}, after it {}; \
         in flight on uplinks {}, on downlinks {}",
        s.copies,
        if s.retained_copies > 0 {
            format!(" and {} retained", s.retained_copies)
        } else {
            String::new()
        },
        if s.duplicated_uplink + s.duplicated_downlink > 0 {
            format!(
                ", links duplicated {} before it and {} after",
                s.duplicated_uplink, s.duplicated_downlink
            )
        } else {
            String::new()
        },
        s.dropped_uplink,
        s.dropped_downlink,
        s.in_flight_uplink,
        s.in_flight_downlink
    )?;
    let q = &s.qos.counts;
    if *q != busbar::QosMetrics::default() {
        writeln!(
            out,
            "guarantees: retransmitted {} up, {} down; acks sent {}, lost {}; \
             deliveries tracked {} (acked {}, expired {}, dead-lettered {}, open {}); \
             publishes tracked {} (acked {}, expired {}, dead-lettered {}, open {})",
            q.retransmitted_uplink,
            q.retransmitted_downlink,
            q.acks_sent,
            q.acks_dropped,
            q.tracked_deliveries,
            q.acked_deliveries,
            q.expired_deliveries,
            q.dead_lettered_deliveries,
            s.qos.unacked_deliveries,
            q.tracked_publishes,
            q.acked_publishes,
            q.expired_publishes,
            q.dead_lettered_publishes,
            s.qos.unacked_publishes
        )?;
        writeln!(
            out,
            "duplicates: seen by handlers {}, suppressed {}; expired at the broker {}; \
             dead letters {}",
            q.duplicates_seen, q.duplicates_suppressed, q.expired_uplink, q.dead_lettered
        )?;
    }
    let g = &s.groups;
    if g.groups > 0 {
        writeln!(
            out,
            "groups: {} routed {}, redelivered {}, acked {}; lag at the end {}, max {}",
            g.groups, g.routed, g.redelivered, g.acked, g.lag, g.lag_max
        )?;
    }
    if let Some(b) = &s.broker_server {
        writeln!(
            out,
            "broker: {} workers, served {}, utilisation {:.3}, queue mean {:.3} max {}, \
             wait p50 {} p99 {} max {}, overflow drops {}, outage drops {}, \
             blocked {} for {}, at the broker at the end {}",
            b.workers,
            b.served,
            b.utilisation,
            b.queue_length_mean,
            b.queue_length_max,
            ms(b.wait.p50_ns),
            ms(b.wait.p99_ns),
            ms(b.wait.max_ns),
            b.overflow_drops,
            b.outage_drops,
            b.blocked,
            ms(b.blocked_ns),
            s.at_broker
        )?;
    }
    if let Some(ss) = &s.sessions {
        let c = &ss.counts;
        writeln!(
            out,
            "sessions: online {}, connects {}, keepalive timeouts {}, expired {}; \
             control packets sent {} (resent {}), lost {}, acks lost {}; \
             kept {} (resumed {}, dropped on expiry {}, held at the end {}), \
             overflow drops {}",
            c.online,
            c.connects,
            c.keepalive_timeouts,
            c.sessions_expired,
            c.control_sent,
            c.control_resent,
            c.control_lost,
            c.acks_lost,
            c.queued,
            c.resumed,
            c.expired_drops,
            ss.held,
            c.overflow_drops
        )?;
    }
    let l = &s.latency;
    writeln!(
        out,
        "latency: p50 {} p95 {} p99 {} max {} ({} samples)",
        ms(l.p50_ns),
        ms(l.p95_ns),
        ms(l.p99_ns),
        ms(l.max_ns),
        l.count
    )?;
    let a = &s.age_of_information;
    if a.count > 0 {
        writeln!(
            out,
            "age of information: p50 {} p95 {} p99 {} max {}",
            ms(a.p50_ns),
            ms(a.p95_ns),
            ms(a.p99_ns),
            ms(a.max_ns)
        )?;
    }
    // Outcomes, one line per group (`grid.*`, `sink.*`).
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for (name, v) in s.outcomes.iter() {
        let (group, figure) = name.split_once('.').unwrap_or(("outcomes", name));
        let text = outcome_text(figure, v);
        match groups.last_mut() {
            Some((g, items)) if *g == group => items.push(text),
            _ => groups.push((group, vec![text])),
        }
    }
    for (group, items) in groups {
        writeln!(out, "{group}: {}", items.join(", "))?;
    }
    if let Some(t) = trace {
        writeln!(out, "trace: {} records -> {}", s.trace_records, t.display())?;
    }
    writeln!(out, "digest: {}", s.digest)
}

/// One outcome as `name value`: `*_ns` in milliseconds, whole numbers
/// without decimals, others with 4 significant digits; NaN as `-`.
fn outcome_text(name: &str, v: f64) -> String {
    if v.is_nan() {
        return format!("{} -", name.trim_end_matches("_ns"));
    }
    if let Some(base) = name.strip_suffix("_ns") {
        return format!("{base} {}", ms(v as u64));
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{name} {}", v as i64);
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 9) as usize;
    format!("{name} {v:.digits$}")
}

fn check(path: &Path, sets: &[Override], explain: bool) -> Result<u8, Failure> {
    let s = load(path, sets)?;
    let names = s.agent_names();
    let mut out = Stdout::new();
    writeln!(
        out,
        "ok: {} ({} agents, {} microgrids, duration {}, seed {})",
        s.name(),
        names.len(),
        s.grid().len(),
        s.duration(),
        s.seed()
    )
    .map_err(bad_input)?;
    if explain {
        write!(out, "{}", s.explain_network()).map_err(bad_input)?;
    }
    out.finish().map_err(bad_input)?;
    Ok(0)
}

/// Prints a comparison; the exit code is 0 identical, 1 diverged (also when
/// standard output was closed early).
fn print_comparison(c: &Comparison, what: &str) -> Result<u8, Failure> {
    let mut out = Stdout::new();
    let code = match c {
        Comparison::Identical(n) => {
            writeln!(out, "{what}: identical ({n} records)").map_err(bad_input)?;
            0
        }
        Comparison::Diverged(d) => {
            let left = d.left.as_deref().unwrap_or("(end of trace)");
            let right = d.right.as_deref().unwrap_or("(end of trace)");
            let at = match d.what {
                Differs::Record => format!("at record {}", d.seq),
                Differs::Stop => format!(
                    "after all {} records match: the runs stopped differently",
                    d.seq
                ),
                Differs::Payloads => format!(
                    "after all {} records match: a published payload differs",
                    d.seq
                ),
                Differs::Deadlines => format!(
                    "after all {} records and payloads match: the deadline tables differ",
                    d.seq
                ),
                _ => format!("at record {}", d.seq),
            };
            writeln!(
                out,
                "{what}: diverged {at}\n  left:  {left}\n  right: {right}"
            )
            .map_err(bad_input)?;
            1
        }
    };
    out.finish().map_err(bad_input)?;
    Ok(code)
}

fn replay_cmd(path: &Path) -> Result<u8, Failure> {
    let mut r = open_trace(path)?;
    let c = replay(&mut r).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    print_comparison(&c, "replay (left: trace, right: re-run)")
}

fn diff_cmd(a: &Path, b: &Path) -> Result<u8, Failure> {
    let mut ra = open_trace(a)?;
    let mut rb = open_trace(b)?;
    let c = diff(&mut ra, &mut rb).map_err(|e| {
        let path = if e.second { b } else { a };
        bad_input(format!("{}: {}", path.display(), e.error))
    })?;
    print_comparison(&c, "diff")
}

fn export_cmd(
    path: &Path,
    format: ExportFormat,
    output: Option<&Path>,
    window: &viz::WindowArgs,
) -> Result<u8, Failure> {
    let format = match format {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Jsonl => Format::Jsonl,
        ExportFormat::Perfetto => {
            return viz::export_cmd(path, viz::Visual::Perfetto, output, window);
        }
        ExportFormat::Mermaid => {
            return viz::export_cmd(path, viz::Visual::Mermaid, output, window);
        }
    };
    window.only_visual(if format == Format::Csv {
        "csv"
    } else {
        "jsonl"
    })?;
    let mut r = open_trace(path)?;
    viz::write_to(path, output, |w| {
        export(&mut r, format, w)
            .map(|_| ())
            .map_err(VizError::from)
    })
}

fn report_cmd(input: &Path, output: &Path) -> Result<u8, Failure> {
    use std::io::Read;
    let mut f = busbar::files::open_regular(input, "input", busbar::files::MAX_TRACE_BYTES)
        .map_err(bad_input)?;
    let mut magic = [0u8; 8];
    let n = f
        .read(&mut magic)
        .map_err(|e| bad_input(format!("{}: {e}", input.display())))?;
    drop(f);
    let report = if busbar::report::is_trace(&magic[..n]) {
        let mut r = open_trace(input)?;
        busbar::report::from_trace(&mut r)
    } else {
        let f = busbar::files::open_regular(input, "results CSV", busbar::files::MAX_RESULTS_BYTES)
            .map_err(bad_input)?;
        busbar::report::from_batch_csv(BufReader::new(f))
    }
    .map_err(|e| bad_input(format!("{}: {e}", input.display())))?;
    let (guard, file) = OutputFile::create(output, &[input]).map_err(bad_input)?;
    let mut w = BufWriter::new(file);
    std::io::Write::write_all(&mut w, report.to_html().as_bytes())
        .and_then(|_| std::io::Write::flush(&mut w))
        .map_err(|e| bad_input(format!("{}: {e}", guard.path().display())))?;
    drop(w);
    guard.commit().map_err(bad_input)?;
    eprintln!(
        "report: {} plots -> {}",
        report.plots.len(),
        output.display()
    );
    Ok(0)
}

/// Writes the live run's metrics per entity and puts the file in place.
fn write_entity_metrics(
    sim: &busbar::Simulation,
    guard: OutputFile,
    file: File,
) -> Result<(), Failure> {
    let m = sim
        .entity_metrics()
        .ok_or_else(|| bad_input("entity metrics were not enabled"))?;
    let agents = sim.agent_names();
    let names = Names {
        agents: &agents,
        channels: sim.channel_names(),
        kinds: sim.kind_names().table(),
        routers: sim.router_names(),
        env: sim.env(),
    };
    let mut w = BufWriter::new(file);
    m.write_csv(&names, &mut w)
        .and_then(|_| std::io::Write::flush(&mut w))
        .map_err(|e| bad_input(format!("{}: {e}", guard.path().display())))?;
    drop(w);
    guard.commit().map_err(bad_input)
}

fn metrics_cmd(path: &Path, output: Option<&Path>) -> Result<u8, Failure> {
    let mut r = open_trace(path)?;
    let m = EntityMetrics::from_trace(&mut r)
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let footer = r.footer();
    let names = Names {
        agents: &footer.agents,
        channels: &footer.channels,
        kinds: &footer.kinds,
        routers: &footer.routers,
        env: r.header().env,
    };
    match output {
        Some(o) => {
            let (guard, file) = OutputFile::create(o, &[path]).map_err(bad_input)?;
            let mut w = BufWriter::new(file);
            m.write_csv(&names, &mut w)
                .and_then(|_| std::io::Write::flush(&mut w))
                .map_err(|e| bad_input(format!("{}: {e}", guard.path().display())))?;
            drop(w);
            guard.commit().map_err(bad_input)?;
        }
        None => {
            let mut w = Watch::new(std::io::stdout().lock());
            let res = m
                .write_csv(&names, &mut w)
                .and_then(|_| std::io::Write::flush(&mut w));
            if let Err(e) = res {
                return match output::stdout_failure(w.take_error().unwrap_or(e)) {
                    WriteFailure::ClosedPipe => Ok(0),
                    WriteFailure::Error(m) => Err(bad_input(m)),
                };
            }
        }
    }
    Ok(0)
}

/// Where a batch's or a merge's CSV goes.
enum CsvOut {
    File(OutputFile, Watch<BufWriter<File>>),
    Stdout(Watch<std::io::StdoutLock<'static>>),
}

impl CsvOut {
    fn open(path: Option<&Path>, inputs: &[&Path]) -> Result<CsvOut, Failure> {
        Ok(match path {
            Some(p) => {
                let (guard, file) = OutputFile::create(p, inputs).map_err(bad_input)?;
                CsvOut::File(guard, Watch::new(BufWriter::new(file)))
            }
            None => CsvOut::Stdout(Watch::new(std::io::stdout().lock())),
        })
    }

    fn writer(&mut self) -> &mut dyn std::io::Write {
        match self {
            CsvOut::File(_, w) => w,
            CsvOut::Stdout(w) => w,
        }
    }

    /// The failure of a write: named after the file, or standard output's
    /// (`None` for a closed pipe, which ends the output quietly).
    fn failure(&mut self, fallback: String) -> Option<Failure> {
        match self {
            CsvOut::File(g, w) => Some(bad_input(match w.take_error() {
                Some(e) => format!("{}: {e}", g.path().display()),
                None => fallback,
            })),
            CsvOut::Stdout(w) => match w.take_error().map(output::stdout_failure) {
                Some(WriteFailure::ClosedPipe) => None,
                Some(WriteFailure::Error(m)) => Some(bad_input(m)),
                None => Some(bad_input(fallback)),
            },
        }
    }

    /// Flushes and puts a file in place.
    fn commit(self) -> Result<(), Failure> {
        match self {
            CsvOut::File(g, mut w) => {
                use std::io::Write;
                w.flush()
                    .map_err(|e| bad_input(format!("{}: {e}", g.path().display())))?;
                drop(w);
                g.commit().map_err(bad_input)
            }
            CsvOut::Stdout(mut w) => {
                use std::io::Write;
                match w.flush().map_err(output::stdout_failure) {
                    Ok(()) | Err(WriteFailure::ClosedPipe) => Ok(()),
                    Err(WriteFailure::Error(m)) => Err(bad_input(m)),
                }
            }
        }
    }
}

/// The cartesian product of sweeps' values, the last sweep varying
/// fastest: each variant a list of overrides.
fn variants(sweeps: &[Sweep]) -> Vec<Vec<Override>> {
    let mut out: Vec<Vec<Override>> = vec![Vec::new()];
    for sw in sweeps {
        out = out
            .into_iter()
            .flat_map(|v| {
                sw.overrides().map(move |o| {
                    let mut v = v.clone();
                    v.push(o.clone());
                    v
                })
            })
            .collect();
    }
    out
}

/// A flag Ctrl-C sets (to stop long work between pieces); a second Ctrl-C
/// while stopping kills the process as usual.
fn stop_on_ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    stop
}

fn batch_cmd(batch: Batch, out: Option<&Path>, traces: Option<PathBuf>) -> Result<u8, Failure> {
    let stop = stop_on_ctrl_c();
    let mut batch = batch.stop_flag(stop.clone());
    if let Some(dir) = traces {
        std::fs::create_dir_all(&dir).map_err(|e| bad_input(format!("{}: {e}", dir.display())))?;
        batch = batch.traces(dir);
    }
    let prepared = batch.prepare().map_err(bad_input)?;
    let inputs: Vec<PathBuf> = batch_inputs(&prepared);
    let input_refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut csv_out = CsvOut::open(out, &input_refs)?;
    let header = table::header(&prepared);
    let mut stats = table::Stats::new(&header);
    let here = prepared.jobs_here();
    let bar = indicatif::ProgressBar::new(here);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} runs, {per_sec}, ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut not_ok = 0u64;
    let mut written = 0u64;
    let (ran, flushed) = {
        let mut w = csv::Writer::from_writer(csv_out.writer());
        let ran = match w.write_record(&header) {
            Err(e) => Err(BatchError::Output(e.to_string())),
            Ok(()) => prepared.run(
                |row| {
                    let record = table::record(&prepared, &row);
                    stats.push(&prepared, &row, &record);
                    if row.outcome.status() != "ok" {
                        not_ok += 1;
                        bar.println(format!(
                            "run {} (env {}, seed {}): {}: {}",
                            row.job.index,
                            row.job.env,
                            row.job.seed,
                            row.outcome.status(),
                            row.outcome.error().unwrap_or("")
                        ));
                    }
                    w.write_record(&record).map_err(|e| e.to_string())?;
                    written += 1;
                    Ok(())
                },
                |done| bar.set_position(done),
            ),
        };
        (ran, w.flush())
    };
    bar.finish_and_clear();
    let code = u8::from(not_ok > 0);
    let write_failed = |csv_out: &mut CsvOut, m: String| match csv_out.failure(m) {
        // Standard output closed by its reader: stop quietly.
        None => Ok(code),
        Some(f) => Err(f),
    };
    let complete = match (ran, flushed) {
        (Ok(complete), Ok(())) => complete,
        (Err(BatchError::Output(m)), _) => {
            return write_failed(&mut csv_out, format!("writing the CSV: {m}"));
        }
        (Ok(_), Err(e)) => return write_failed(&mut csv_out, format!("writing the CSV: {e}")),
        (Err(e), _) => return Err(bad_input(e)),
    };
    csv_out.commit()?;
    let mut table_text = Vec::new();
    let _ = stats.write(&mut table_text);
    let table_text = String::from_utf8_lossy(&table_text);
    if out.is_some() {
        let mut so = Stdout::new();
        write!(so, "{table_text}")
            .and_then(|()| so.finish())
            .map_err(bad_input)?;
    } else {
        output::to_stderr(format_args!("{table_text}"));
    }
    if !complete {
        output::to_stderr(format_args!(
            "interrupted: {written} of {here} runs written{}\n",
            out.map(|p| format!(" to {}", p.display()))
                .unwrap_or_default()
        ));
        return Ok(130);
    }
    Ok(code)
}

/// The files a batch reads: its scenarios and their CSV profiles.
fn batch_inputs(p: &busbar::rollout::batch::Prepared) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sc in p.scenarios() {
        files.push(PathBuf::from(sc.source()));
        files.extend(sc.input_files());
    }
    files.sort();
    files.dedup();
    files
}

fn merge_cmd(inputs: &[PathBuf], output: Option<&Path>) -> Result<u8, Failure> {
    let mut readers = Vec::new();
    for p in inputs {
        let f = busbar::files::open_reader(p, "results CSV", busbar::files::MAX_RESULTS_BYTES)
            .map_err(bad_input)?;
        readers.push((p.display().to_string(), BufReader::new(f)));
    }
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut out = CsvOut::open(output, &refs)?;
    match table::merge(readers, out.writer()) {
        Ok(_) => {
            out.commit()?;
            Ok(0)
        }
        Err(table::MergeError::Write(m)) => match out.failure(m) {
            None => Ok(0),
            Some(f) => Err(f),
        },
        Err(e) => Err(bad_input(e)),
    }
}
