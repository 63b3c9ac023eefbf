//! `busbar export --format perfetto|mermaid`: the trace-event JSON is valid
//! for Perfetto and chrome://tracing (required fields, matched flows,
//! ordered slices per track, named tracks), windows and filters select what
//! they say, and the Mermaid diagram is well formed and within Mermaid's
//! limits.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

fn busbar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run busbar")
}

fn ok(args: &[&str]) -> Output {
    let out = busbar(args);
    assert!(
        out.status.success(),
        "busbar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn failing(args: &[&str]) -> String {
    let out = busbar(args);
    assert_eq!(out.status.code(), Some(2), "busbar {args:?} should fail");
    assert!(out.stdout.is_empty(), "nothing on standard output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A trace of a shipped scenario.
fn trace(dir: &TempDir, scenario: &str) -> PathBuf {
    let t = dir.path().join(format!("{scenario}.bin"));
    ok(&[
        "run",
        &format!("scenarios/{scenario}.toml"),
        "--trace",
        t.to_str().unwrap(),
    ]);
    t
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The CSV export's rows as (time_ns, event, sender, recipient, channel).
fn rows(t: &Path) -> Vec<(u64, String, String, String, String)> {
    let out = ok(&["export", s(t)]);
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[1].parse().unwrap(),
                f[2].to_string(),
                f[6].to_string(),
                f[7].to_string(),
                f[5].to_string(),
            )
        })
        .collect()
}

fn perfetto(t: &Path, extra: &[&str]) -> (Vec<u8>, Value) {
    let mut args = vec!["export", s(t), "--format", "perfetto"];
    args.extend_from_slice(extra);
    let out = ok(&args);
    let v: Value = serde_json::from_slice(&out.stdout).expect("the export is JSON");
    (out.stdout, v)
}

/// Nanoseconds from a `ts` in microseconds with three decimals.
fn ns(ts: &Value) -> u64 {
    let us = ts.as_f64().expect("ts is a number");
    (us * 1000.0).round() as u64
}

/// Checks a trace-event JSON object against the format and returns its
/// events other than metadata and flows.
fn validate(v: &Value) -> Vec<Value> {
    assert_eq!(v["displayTimeUnit"], "ns");
    let events = v["traceEvents"].as_array().expect("traceEvents");
    let mut named_threads = BTreeSet::new();
    let mut named_processes = BTreeSet::new();
    let mut sorted_threads = BTreeSet::new();
    let mut used = BTreeSet::new();
    let mut flows: BTreeMap<u64, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
    // Per track: the (start, end) of each group of slices starting at one
    // instant, in file order.
    let mut slices: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    let mut shown = Vec::new();
    for e in events {
        for field in ["name", "ph"] {
            assert!(e[field].is_string(), "{field} in {e}");
        }
        for field in ["ts", "pid", "tid"] {
            assert!(e[field].is_number(), "{field} in {e}");
        }
        let track = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        let ts = ns(&e["ts"]);
        match e["ph"].as_str().unwrap() {
            "M" => match e["name"].as_str().unwrap() {
                "process_name" => {
                    assert!(e["args"]["name"].is_string());
                    named_processes.insert(track.0);
                }
                "thread_name" => {
                    assert!(e["args"]["name"].is_string());
                    named_threads.insert(track);
                }
                "thread_sort_index" => {
                    assert!(e["args"]["sort_index"].is_u64());
                    sorted_threads.insert(track);
                }
                other => panic!("unexpected metadata {other}"),
            },
            "X" => {
                let dur = ns(&e["dur"]);
                assert!(dur > 0, "a slice is visible: {e}");
                let list = slices.entry(track).or_default();
                match list.last_mut() {
                    Some((start, end)) if *start == ts => {
                        assert!(ts + dur <= *end, "slices at one instant nest: {e}")
                    }
                    Some((start, end)) => {
                        assert!(ts > *start, "slices in time order on a track: {e}");
                        assert!(ts >= *end, "a slice starts after the last one ends: {e}");
                        list.push((ts, ts + dur));
                    }
                    None => list.push((ts, ts + dur)),
                }
                used.insert(track);
                shown.push(e.clone());
            }
            "i" => {
                assert_eq!(e["s"], "t", "instant events are on their thread");
                used.insert(track);
                shown.push(e.clone());
            }
            ph @ ("s" | "f") => {
                let id = e["id"].as_u64().expect("flow id");
                let entry = flows.entry(id).or_default();
                if ph == "s" {
                    entry.0.push(ts);
                } else {
                    assert_eq!(e["bp"], "e", "a finish binds to its enclosing slice");
                    entry.1.push(ts);
                }
                used.insert(track);
            }
            other => panic!("unexpected ph {other}: {e}"),
        }
        if e["ph"] != "M" {
            assert!(e["args"].is_object() || e["cat"] == "flow", "args: {e}");
        }
    }
    for (id, (starts, finishes)) in &flows {
        assert_eq!(starts.len(), 1, "flow {id}: one start");
        assert_eq!(finishes.len(), 1, "flow {id}: one finish");
        assert!(starts[0] <= finishes[0], "flow {id} goes forward in time");
    }
    for t in &used {
        assert!(named_threads.contains(t), "track {t:?} is named");
        assert!(sorted_threads.contains(t), "track {t:?} has a sort index");
        assert!(named_processes.contains(&t.0), "process {} is named", t.0);
    }
    shown
}

fn flow_count(v: &Value) -> usize {
    v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "s")
        .count()
}

#[test]
fn perfetto_export_is_valid_and_shows_every_record() {
    let dir = TempDir::new().unwrap();
    // Routers, faults, losses and duplicates.
    let t = trace(&dir, "feeder_lte_plc");
    let (bytes, v) = perfetto(&t, &[]);
    let shown = validate(&v);
    let rows = rows(&t);
    assert_eq!(shown.len(), rows.len(), "one slice or instant per record");
    let mut by_event: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *by_event.entry(r.1.as_str()).or_default() += 1;
    }
    let cat = |c: &str| shown.iter().filter(|e| e["cat"] == c).count();
    for (event, n) in &by_event {
        assert_eq!(cat(event), *n, "{event}");
    }
    // Exact times: the multiset of times is the trace's.
    let mut got: Vec<u64> = shown.iter().map(|e| ns(&e["ts"])).collect();
    let mut want: Vec<u64> = rows.iter().map(|r| r.0).collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    // Every delivery and every message drop has its arrow from the publish.
    let drops = shown
        .iter()
        .filter(|e| e["cat"] == "drop" && !e["args"]["detail"].as_str().unwrap().contains('('))
        .count();
    assert!(drops > 0 && by_event["deliver"] > 0);
    assert_eq!(flow_count(&v), by_event["deliver"] + drops);
    // Routers and faults have their tracks.
    let names: Vec<&str> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "broker");
    assert!(names.iter().any(|n| n.starts_with("router ")), "{names:?}");
    assert!(shown.iter().any(|e| e["cat"] == "fault"));
    assert!(
        shown
            .iter()
            .any(|e| e["cat"] == "forward" && e["ph"] == "i")
    );
    // Deterministic.
    assert_eq!(perfetto(&t, &[]).0, bytes, "same trace, same bytes");
    // To a file, the same bytes.
    let out = dir.path().join("t.json");
    ok(&["export", s(&t), "--format", "perfetto", "-o", s(&out)]);
    assert_eq!(fs::read(&out).unwrap(), bytes);
}

#[test]
fn perfetto_window_and_filters_select_what_they_say() {
    let dir = TempDir::new().unwrap();
    let t = trace(&dir, "feeder_lte_plc");
    let rows = rows(&t);
    let (_, v) = perfetto(&t, &["--from", "1s", "--to", "1500ms"]);
    let shown = validate(&v);
    let want = rows
        .iter()
        .filter(|r| (1_000_000_000..1_500_000_000).contains(&r.0))
        .count();
    assert!(want > 0);
    assert_eq!(shown.len(), want);
    for e in &shown {
        assert!(
            (1_000_000_000..1_500_000_000).contains(&ns(&e["ts"])),
            "{e}"
        );
    }

    let agent = rows.iter().find(|r| r.1 == "deliver").unwrap().3.clone();
    let (_, v) = perfetto(&t, &["--filter", &format!("agent={agent}")]);
    let shown = validate(&v);
    let want = rows.iter().filter(|r| r.2 == agent || r.3 == agent).count();
    assert!(want > 0 && want < rows.len());
    assert_eq!(shown.len(), want);
    for e in &shown {
        let a = &e["args"];
        assert!(
            a["sender"] == agent.as_str() || a["node"] == agent.as_str(),
            "{e}"
        );
    }

    let (_, v) = perfetto(&t, &["--filter", "kind=drop,kind=fault"]);
    let shown = validate(&v);
    let want = rows
        .iter()
        .filter(|r| r.1 == "drop" || r.1 == "fault")
        .count();
    assert_eq!(shown.len(), want);
    assert_eq!(flow_count(&v), 0, "no publish selected, no arrows");

    // An MQTT filter over channel names; different sorts must all hold.
    let channel = rows.iter().find(|r| r.1 == "publish").unwrap().4.clone();
    let top = channel.split('/').next().unwrap();
    let (_, v) = perfetto(
        &t,
        &[
            "--filter",
            &format!("channel={top}/#"),
            "--filter",
            "kind=publish",
        ],
    );
    let shown = validate(&v);
    let want = rows
        .iter()
        .filter(|r| r.1 == "publish" && r.4.starts_with(&format!("{top}/")))
        .count();
    assert!(want > 0);
    assert_eq!(shown.len(), want);
}

#[test]
fn bad_windows_and_filters_are_refused() {
    let dir = TempDir::new().unwrap();
    let t = trace(&dir, "two_agents");
    let t = s(&t);
    let e = failing(&[
        "export",
        t,
        "--format",
        "perfetto",
        "--filter",
        "agent=nobody",
    ]);
    assert!(e.contains("no agent named \"nobody\""), "{e}");
    let e = failing(&["export", t, "--format", "mermaid", "--filter", "colour=red"]);
    assert!(e.contains("unknown selector"), "{e}");
    let e = failing(&[
        "export", t, "--format", "perfetto", "--from", "2s", "--to", "1s",
    ]);
    assert!(e.contains("window is empty"), "{e}");
    let e = failing(&[
        "export", t, "--format", "mermaid", "--from", "1s", "--to", "1000ms",
    ]);
    assert!(e.contains("window is empty"), "{e}");
    let e = failing(&["export", t, "--format", "perfetto", "--from", "2 parsecs"]);
    assert!(e.contains("parsecs"), "{e}");
    let e = failing(&["export", t, "--format", "csv", "--from", "1s"]);
    assert!(e.contains("perfetto and mermaid"), "{e}");
    // A damaged trace is an error, not a panic.
    let bytes = fs::read(t).unwrap();
    let cut = dir.path().join("cut.bin");
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for f in ["perfetto", "mermaid"] {
        let e = failing(&["export", s(&cut), "--format", f]);
        assert!(e.contains("cut.bin"), "{e}");
    }
}

/// A diagram statement: from (or the note's participant), to (none for a
/// note), and the arrow and text.
type Statement = (String, Option<String>, String);

/// The participants declared and the statements of a diagram; panics on
/// a line that is neither.
fn mermaid_lines(text: &str) -> (BTreeSet<String>, Vec<Statement>) {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("sequenceDiagram"));
    let mut declared = BTreeSet::new();
    let mut statements = Vec::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("participant ") {
            let id = rest.split(" as ").next().unwrap();
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{l}");
            assert!(declared.insert(id.to_string()), "declared once: {l}");
            assert!(statements.is_empty(), "declared before use: {l}");
        } else if let Some(rest) = l.strip_prefix("Note over ") {
            let (who, text) = rest.split_once(": ").expect("a note has text");
            statements.push((who.to_string(), None, text.to_string()));
        } else {
            let (arrow, text) = l.split_once(": ").expect("an arrow has text");
            let (from, op, to) = ["-->>", "->>", "-x"]
                .iter()
                .find_map(|op| arrow.split_once(op).map(|(a, b)| (a, *op, b)))
                .unwrap_or_else(|| panic!("not an arrow: {l}"));
            statements.push((
                from.to_string(),
                Some(to.to_string()),
                format!("{op} {text}"),
            ));
        }
        for bad in [';', '"', '%'] {
            assert!(!l.contains(bad), "{bad} in {l}");
        }
        // `#` starts a comment except in an entity code (`#59;`).
        for (i, _) in l.match_indices('#') {
            let code = l[i + 1..].split(';').next().unwrap();
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_digit()),
                "{l}"
            );
        }
    }
    (declared, statements)
}

#[test]
fn mermaid_diagram_is_well_formed() {
    let dir = TempDir::new().unwrap();
    let t = trace(&dir, "two_agents");
    let out = ok(&["export", s(&t), "--format", "mermaid"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let (declared, statements) = mermaid_lines(&text);
    assert!(declared.contains("Broker"));
    for (from, to, _) in &statements {
        assert!(declared.contains(from), "{from} declared");
        if let Some(to) = to {
            assert!(declared.contains(to), "{to} declared");
        }
    }
    let rows = rows(&t);
    let count = |e: &str| rows.iter().filter(|r| r.1 == e).count();
    let arrows = |p: &str| statements.iter().filter(|s| s.2.starts_with(p)).count();
    assert_eq!(arrows("->> "), count("publish") + count("deliver"));
    let lost = statements
        .iter()
        .filter(|s| s.2.starts_with("-x ") && s.2.contains(" drop: loss"))
        .count();
    assert_eq!(lost, count("drop"));
    let notes = statements
        .iter()
        .filter(|s| s.1.is_none() && s.2.starts_with("late msg "))
        .count();
    assert_eq!(notes, count("late"));
    assert!(count("drop") > 0 && count("late") > 0);
    assert!(text.contains("t=17.515289ms"), "exact times");
    // A window.
    let out = ok(&["export", s(&t), "--format", "mermaid", "--to", "150ms"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let (_, statements) = mermaid_lines(&text);
    let want = rows
        .iter()
        .filter(|r| {
            r.0 < 150_000_000 && ["publish", "deliver", "drop", "late"].contains(&r.1.as_str())
        })
        .count();
    assert_eq!(statements.len(), want);
}

#[test]
fn mermaid_refuses_or_cuts_a_diagram_past_the_limits() {
    let dir = TempDir::new().unwrap();
    let t = trace(&dir, "feeder_lte_plc");
    let e = failing(&["export", s(&t), "--format", "mermaid"]);
    assert!(e.contains("arrows and notes"), "{e}");
    assert!(e.contains("--from/--to"), "{e}");
    let n: u64 = e
        .split("would have ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {e}"));
    assert!(n > 500, "{e}");
    let out_file = dir.path().join("d.mmd");
    // Refused: nothing is written.
    failing(&["export", s(&t), "--format", "mermaid", "-o", s(&out_file)]);
    assert!(!out_file.exists());

    let out = ok(&["export", s(&t), "--format", "mermaid", "--truncate"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let (declared, statements) = mermaid_lines(&text);
    assert_eq!(statements.len(), 500, "cut at the edge limit");
    assert!(text.len() <= 50_000);
    let last = statements.last().unwrap();
    assert!(last.2.starts_with("truncated: 499 of "), "{last:?}");
    for (from, to, _) in &statements {
        assert!(declared.contains(from));
        assert!(to.as_ref().is_none_or(|t| declared.contains(t)));
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("was cut"));
    // A small enough window is not cut.
    let out = ok(&[
        "export",
        s(&t),
        "--format",
        "mermaid",
        "--to",
        "100ms",
        "--truncate",
    ]);
    assert!(!String::from_utf8(out.stdout).unwrap().contains("truncated"));
}
