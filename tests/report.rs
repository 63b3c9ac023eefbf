//! `busbar report` (README, "Look at a run: busbar report"): one HTML file
//! with one inline SVG per plot and no external reference, from a trace and
//! from a batch's results CSV; its figures agree with the trace; bad input
//! is an error (exit 2), never a panic.

use std::fs;
use std::io::BufReader;
use std::path::Path;
use std::process::Command;

use busbar::report::{Report, from_batch_csv, from_trace};
use busbar::trace::{EventKind, TraceReader};
use tempfile::TempDir;

fn busbar(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(dir: &TempDir, name: &str) -> String {
    dir.path().join(name).to_string_lossy().into_owned()
}

/// Self-contained: every `http` is the SVG namespace; no script, style
/// sheet, image or font is fetched.
fn assert_self_contained(html: &str) {
    let refs = html.matches("http").count();
    let ns = html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count();
    assert_eq!(refs, ns, "only the SVG namespace may name a URL");
    for bad in [
        "<script", "<link", "<img", "src=", "url(", "@import", "<iframe",
    ] {
        assert!(!html.contains(bad), "{bad} in the report");
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
}

/// Runs `scenario` with a trace; the report, the trace path and what
/// `busbar run` printed.
fn trace_report(scenario: &str, dir: &TempDir) -> (Report, String, String) {
    let t = path(dir, "t.bin");
    let (code, out, err) = busbar(&["run", scenario, "--trace", &t]);
    assert_eq!(code, 0, "{err}");
    let mut r = TraceReader::new(BufReader::new(fs::File::open(&t).unwrap())).unwrap();
    (from_trace(&mut r).expect("a report"), t, out)
}

#[test]
fn a_trace_report_has_its_four_plots_inline_and_agrees_with_the_trace() {
    let dir = TempDir::new().unwrap();
    let (report, t, out) = trace_report("scenarios/seed_example.toml", &dir);
    let html = report.to_html();
    assert_self_contained(&html);
    assert_eq!(report.plots.len(), 4);
    assert_eq!(html.matches("<svg").count(), 4, "one SVG per plot");
    let titles: Vec<&str> = report.plots.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Latency distribution per channel",
            "Age of information over time",
            "Deadline misses per step",
            "Drops by reason over time",
        ]
    );
    // The deadline plot rebuilds the environment's deadline misses from
    // the trace alone: its total is the run's grid.deadline_misses.
    let misses: u64 = out
        .split("deadline_misses ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("busbar run prints grid.deadline_misses");
    assert!(misses > 0, "seed_example misses deadlines");
    let caption = &report.plots[2].caption;
    assert!(caption.contains("Per grid step k"), "{caption}");
    assert!(
        caption.contains(&format!(", {misses} in all.")),
        "{caption}"
    );
    let mut r = TraceReader::new(BufReader::new(fs::File::open(&t).unwrap())).unwrap();
    let records = r.read_all().unwrap();
    // The latency legend counts every delivery.
    let delivered = records
        .iter()
        .filter(|x| x.event == EventKind::Deliver)
        .count();
    let svg = &report.plots[0].svg;
    let legend_total: usize = svg
        .split(" deliveries)")
        .filter_map(|s| s.rsplit('(').next()?.trim().parse::<usize>().ok())
        .sum();
    assert_eq!(legend_total, delivered, "legend counts");
}

#[test]
fn the_report_of_a_trace_is_a_function_of_the_trace() {
    let dir = TempDir::new().unwrap();
    let (_, t, _) = trace_report("scenarios/lossy_jitter.toml", &dir);
    let (a, b) = (path(&dir, "a.html"), path(&dir, "b.html"));
    assert_eq!(busbar(&["report", &t, "-o", &a]).0, 0);
    assert_eq!(busbar(&["report", &t, "-o", &b]).0, 0);
    let (a, b) = (
        fs::read_to_string(a).unwrap(),
        fs::read_to_string(b).unwrap(),
    );
    assert!(a == b, "two reports of one trace differ");
    let html = a;
    assert_self_contained(&html);
    // lossy_jitter loses messages: the drops plot has a line per reason.
    assert!(html.contains("loss ("), "the drops legend names `loss`");
}

#[test]
fn a_batch_report_plots_each_outcome_against_the_swept_value() {
    let dir = TempDir::new().unwrap();
    let csv = path(&dir, "r.csv");
    let (code, _, err) = busbar(&[
        "batch",
        "scenarios/lossy_jitter.toml",
        "--envs",
        "3",
        "--sweep",
        "network.default.loss=0.0,0.1,0.3",
        "--out",
        &csv,
    ]);
    assert_eq!(code, 0, "{err}");
    let report = from_batch_csv(fs::File::open(&csv).unwrap()).unwrap();
    let html = report.to_html();
    assert_self_contained(&html);
    assert!(!report.plots.is_empty());
    assert_eq!(html.matches("<svg").count(), report.plots.len());
    let delivered = report
        .plots
        .iter()
        .find(|p| p.title == "delivered by variant")
        .expect("a plot of delivered");
    // A numeric sweep is the x axis, named by its key.
    assert!(delivered.svg.contains("network.default.loss"));
    assert!(
        report
            .facts
            .iter()
            .any(|(k, v)| k == "variants" && v == "3")
    );
    // The CLI writes the same page.
    let out = path(&dir, "r.html");
    assert_eq!(busbar(&["report", &csv, "-o", &out]).0, 0);
    assert_eq!(fs::read_to_string(out).unwrap(), html);
}

#[test]
fn bad_inputs_are_errors_that_name_the_file() {
    let dir = TempDir::new().unwrap();
    let out = path(&dir, "o.html");
    // Not a busbar CSV.
    let csv = path(&dir, "x.csv");
    fs::write(&csv, "a,b\n1,2\n").unwrap();
    let (code, _, err) = busbar(&["report", &csv, "-o", &out]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("x.csv") && err.contains("`scenario`"), "{err}");
    assert!(!Path::new(&out).exists(), "nothing written on failure");
    // A truncated trace.
    let (_, t, _) = trace_report("scenarios/two_agents.toml", &dir);
    let bytes = fs::read(&t).unwrap();
    let cut = path(&dir, "cut.bin");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (code, _, err) = busbar(&["report", &cut, "-o", &out]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cut.bin") && !err.contains("panicked"),
        "{err}"
    );
    // The output may not be the input.
    let (code, _, err) = busbar(&["report", &t, "-o", &t]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(fs::read(&t).unwrap(), bytes, "the input is untouched");
}
