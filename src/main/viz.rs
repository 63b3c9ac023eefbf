//! `busbar export --format perfetto|mermaid`: the visual exports and their
//! window and filter flags; and where every `export` writes (`write_to`).

use std::io::Write;
use std::path::Path;

use busbar::time::SimDuration;
use busbar::trace::mermaid::{MermaidOptions, mermaid};
use busbar::trace::perfetto::{WARN_EVENTS, perfetto};
use busbar::trace::window::{Selection, Selector, VizError, parse_filter};
use clap::Args;

use super::output::{self, OutputFile, Watch, WriteFailure};
use super::{Failure, bad_input, open_trace};

/// The flags of the visual exports.
#[derive(Args, Clone, Debug, Default)]
pub struct WindowArgs {
    /// Perfetto, Mermaid: start of the window of virtual time (`2s`,
    /// `150ms`; inclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    from: Option<SimDuration>,
    /// Perfetto, Mermaid: end of the window (exclusive).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to: Option<SimDuration>,
    /// Perfetto, Mermaid: only these records, comma-separated
    /// `agent=NAME`, `channel=FILTER` (MQTT wildcards) or `kind=EVENT`
    /// (repeatable; same sort: any, different sorts: all).
    #[arg(long, value_name = "SELECTORS", value_parser = parse_selectors)]
    filter: Vec<Selectors>,
    /// Mermaid: cut a diagram past Mermaid's limits (500 edges, 50 000
    /// characters) instead of refusing it.
    #[arg(long)]
    truncate: bool,
}

/// One `--filter` value.
#[derive(Clone, Debug)]
pub struct Selectors(Vec<Selector>);

fn parse_time(s: &str) -> Result<SimDuration, String> {
    s.parse::<SimDuration>().map_err(|e| e.to_string())
}

fn parse_selectors(s: &str) -> Result<Selectors, String> {
    parse_filter(s).map(Selectors)
}

/// The visual formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visual {
    Perfetto,
    Mermaid,
}

impl WindowArgs {
    /// Refuses the flags with a format that has no use for them.
    pub fn only_visual(&self, format: &str) -> Result<(), Failure> {
        if self.from.is_some() || self.to.is_some() || !self.filter.is_empty() || self.truncate {
            return Err(bad_input(format!(
                "--from, --to, --filter and --truncate are for --format perfetto and mermaid, not {format}"
            )));
        }
        Ok(())
    }

    fn selection(&self) -> Selection {
        Selection {
            from: self.from.unwrap_or_default(),
            to: self.to,
            selectors: self.filter.iter().flat_map(|s| s.0.clone()).collect(),
        }
    }
}

/// `busbar export TRACE --format perfetto|mermaid`.
pub fn export_cmd(
    path: &Path,
    format: Visual,
    output: Option<&Path>,
    args: &WindowArgs,
) -> Result<u8, Failure> {
    if format == Visual::Perfetto && args.truncate {
        return Err(bad_input("--truncate is for --format mermaid"));
    }
    let mut r = open_trace(path)?;
    let selection = args.selection();
    let run = |w: &mut dyn Write| -> Result<(), VizError> {
        match format {
            Visual::Perfetto => {
                let stats = perfetto(&mut r, &selection, w)?;
                if stats.events > WARN_EVENTS {
                    output::to_stderr(format_args!(
                        "warning: {} trace events; the Perfetto UI may load this slowly or not at all (a guideline: a few million events, a few hundred MB); narrow it with --from/--to or --filter\n",
                        stats.events
                    ));
                }
            }
            Visual::Mermaid => {
                let options = MermaidOptions {
                    truncate: args.truncate,
                    ..MermaidOptions::default()
                };
                let stats = mermaid(&mut r, &selection, options, w)?;
                if stats.truncated {
                    output::to_stderr(format_args!(
                        "warning: the diagram was cut: {} of the window's {} arrows and notes\n",
                        stats.edges - 1,
                        stats.window_edges
                    ));
                }
            }
        }
        Ok(())
    };
    write_to(path, output, run)
}

/// Runs `f` on the output (a file put in place on success, or standard
/// output); an error is the output's if the writer saw one, else the
/// trace's.
pub fn write_to(
    path: &Path,
    output: Option<&Path>,
    f: impl FnOnce(&mut dyn Write) -> Result<(), VizError>,
) -> Result<u8, Failure> {
    let input_error = |e: VizError| match e {
        VizError::Trace(t) => bad_input(format!("{}: {t}", path.display())),
        other => bad_input(other),
    };
    match output {
        Some(o) => {
            let (guard, file) = OutputFile::create(o, &[path]).map_err(bad_input)?;
            let mut w = Watch::new(file);
            if let Err(e) = f(&mut w) {
                return Err(match w.take_error() {
                    Some(we) => bad_input(format!("{}: {we}", guard.path().display())),
                    None => input_error(e),
                });
            }
            guard.commit().map_err(bad_input)?;
        }
        None => {
            let mut w = Watch::new(std::io::stdout().lock());
            let res = f(&mut w).and_then(|()| w.flush().map_err(VizError::from));
            if let Err(e) = res {
                return match w.take_error().map(output::stdout_failure) {
                    // A closed pipe (`busbar export t.bin | head`) is the
                    // reader's choice.
                    Some(WriteFailure::ClosedPipe) => Ok(0),
                    Some(WriteFailure::Error(m)) => Err(bad_input(m)),
                    None => Err(input_error(e)),
                };
            }
        }
    }
    Ok(0)
}
