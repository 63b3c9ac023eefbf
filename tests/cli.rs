//! The command-line contract (README: exit codes, CSV columns), tested against the real binary:
//! exit codes (0 success, 1 a check failed, 2 bad input or usage), the
//! `digest:` line, the `--json` summary, the trace CSV columns, located
//! scenario errors, and graceful failure on corrupt traces.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// What one invocation of the binary did.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Panics with the full output unless the exit code is `code`.
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// A failed invocation must explain itself and must not have panicked.
    fn expect_error(&self) -> &Self {
        self.expect_code(2);
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked:\n{}",
            self.stderr
        );
        assert!(
            self.stderr.contains("error"),
            "no error message on stderr:\n{}",
            self.stderr
        );
        self
    }
}

fn busbar<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .output()
        .expect("the busbar binary runs");
    Out {
        // A signal (no exit code) is never an acceptable outcome.
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// Every `scenarios/*.toml`, sorted.
fn shipped() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"))
        .expect("scenarios/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension() == Some(OsStr::new("toml")))
        .collect();
    v.sort();
    assert!(
        v.len() >= 4,
        "expected the four shipped scenarios, got {v:?}"
    );
    v
}

/// The hex of the single `digest: <32 hex>` line of a text summary.
fn digest_line(stdout: &str) -> String {
    let lines: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("digest: "))
        .collect();
    assert_eq!(lines.len(), 1, "want one digest line in:\n{stdout}");
    let d = lines[0].trim();
    assert_eq!(d.len(), 32, "digest {d:?} is not 32 hex digits");
    assert!(
        d.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "digest {d:?} is not lowercase hex"
    );
    d.to_string()
}

fn run_json(args: &[&OsStr]) -> serde_json::Value {
    let mut all: Vec<&OsStr> = vec![OsStr::new("run")];
    all.extend_from_slice(args);
    all.push(OsStr::new("--json"));
    let out = busbar(&all);
    out.expect_code(0);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{}", out.stdout))
}

// ---------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------

#[test]
fn run_prints_a_stable_digest_for_every_shipped_scenario() {
    for path in shipped() {
        let first = busbar([OsStr::new("run"), path.as_os_str()]);
        first.expect_code(0);
        let d1 = digest_line(&first.stdout);
        // The 100x5 scenario takes about a second in a debug build: its
        // second run is the --json one below.
        if !path.ends_with("large_100x5.toml") {
            let second = busbar([OsStr::new("run"), path.as_os_str()]);
            second.expect_code(0);
            assert_eq!(d1, digest_line(&second.stdout), "{}", path.display());
        }
        let json = run_json(&[path.as_os_str()]);
        assert_eq!(json["digest"], d1, "{}: --json digest", path.display());
    }
}

#[test]
fn seed_flag_changes_the_digest() {
    for name in ["two_agents.toml", "seed_example.toml"] {
        let path = scenario(name);
        let default = busbar([OsStr::new("run"), path.as_os_str()]);
        let other = busbar([
            OsStr::new("run"),
            path.as_os_str(),
            OsStr::new("--seed"),
            OsStr::new("12345"),
        ]);
        default.expect_code(0);
        other.expect_code(0);
        assert_ne!(
            digest_line(&default.stdout),
            digest_line(&other.stdout),
            "{name}: --seed 12345 gave the default seed's digest"
        );
        assert!(other.stdout.contains("seed 12345"), "{}", other.stdout);
    }
}

#[test]
fn json_summary_has_the_documented_keys() {
    let path = scenario("two_agents.toml");
    let v = run_json(&[path.as_os_str()]);
    for key in [
        "published",
        "delivered",
        "late",
        "events_per_s",
        "trace_records",
    ] {
        assert!(v[key].is_number(), "{key} missing or not a number in {v}");
    }
    assert!(v["dropped_by_reason"].is_object(), "{v}");
    for key in ["p50_ns", "p95_ns", "p99_ns"] {
        assert!(v["latency"][key].is_u64(), "latency.{key} in {v}");
    }
    let l = &v["latency"];
    let (p50, p95, p99) = (
        l["p50_ns"].as_u64().unwrap(),
        l["p95_ns"].as_u64().unwrap(),
        l["p99_ns"].as_u64().unwrap(),
    );
    assert!(p50 > 0 && p50 <= p95 && p95 <= p99, "{l}");
    let digest = v["digest"].as_str().expect("digest is a string");
    assert_eq!(digest.len(), 32);
    // The tour scenario has a lossy uplink: its drops are itemised.
    let published = v["published"].as_u64().unwrap();
    assert!(published > 0);
    let by_reason: u64 = v["dropped_by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_reason, v["dropped"].as_u64().unwrap(), "{v}");
    // Same seed, same run: the text digest is the JSON digest.
    let text = busbar([OsStr::new("run"), path.as_os_str()]);
    assert_eq!(digest_line(&text.stdout), digest);
}

#[test]
fn readme_tour_output_matches_a_real_run() {
    // The README shows the tour's output; every line that does not depend
    // on the wall clock must be what the binary prints today.
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md exists");
    let shown: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("scenario: two-agents"))
        .take_while(|l| !l.starts_with("```"))
        .collect();
    assert!(
        shown.iter().any(|l| l.starts_with("digest: ")),
        "README tour output not found: {shown:?}"
    );
    let dir = TempDir::new().unwrap();
    let t = dir.path().join("tour.bin");
    let out = busbar([
        OsStr::new("run"),
        scenario("two_agents.toml").as_os_str(),
        OsStr::new("--trace"),
        t.as_os_str(),
    ]);
    out.expect_code(0);
    let printed: Vec<&str> = out.stdout.lines().collect();
    for line in shown {
        // Wall time, events/s and the trace path vary between machines.
        if line.starts_with("simulated:") || line.starts_with("trace:") {
            let head = line.split(" -> ").next().unwrap();
            let head = head.split(" in ").next().unwrap();
            assert!(
                printed.iter().any(|p| p.starts_with(head)),
                "README line {line:?} has no counterpart in:\n{}",
                out.stdout
            );
            continue;
        }
        assert!(
            printed.contains(&line),
            "README line {line:?} is not what the tour prints:\n{}",
            out.stdout
        );
    }
}

#[test]
fn exceeding_a_limit_exits_2_naming_the_limit_and_seed() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("limited.toml");
    fs::write(
        &path,
        r#"
[simulation]
name = "limited"
duration = "10s"

[limits]
max_events = 100

[[agent]]
type = "periodic"
name = "p"
channel = "{env}/x"
period = "10ms"

[[agent]]
type = "sink"
name = "s"
channels = ["{env}/x"]
"#,
    )
    .unwrap();
    let out = busbar([OsStr::new("run"), path.as_os_str()]);
    out.expect_error();
    assert!(out.stderr.contains("max_events"), "{}", out.stderr);
    assert!(out.stderr.contains("seed 0"), "{}", out.stderr);
    let out = busbar([
        OsStr::new("run"),
        path.as_os_str(),
        OsStr::new("--seed"),
        OsStr::new("4242"),
    ]);
    out.expect_error();
    assert!(
        out.stderr.contains("max_events") && out.stderr.contains("seed 4242"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// traces: replay, export, diff
// ---------------------------------------------------------------------------

/// Runs `scenario` with `seed` into `dir/name`; returns the trace path and
/// the --json summary.
fn record(dir: &Path, scenario_name: &str, seed: u64, name: &str) -> (PathBuf, serde_json::Value) {
    let t = dir.join(name);
    let path = scenario(scenario_name);
    let seed = seed.to_string();
    let v = run_json(&[
        path.as_os_str(),
        OsStr::new("--seed"),
        OsStr::new(&seed),
        OsStr::new("--trace"),
        t.as_os_str(),
    ]);
    assert!(t.exists(), "--trace wrote nothing");
    (t, v)
}

#[test]
fn replay_of_a_fresh_trace_is_identical() {
    let dir = TempDir::new().unwrap();
    let (t, v) = record(dir.path(), "two_agents.toml", 7, "t.bin");
    let out = busbar([OsStr::new("replay"), t.as_os_str()]);
    out.expect_code(0);
    assert!(out.stdout.contains("identical"), "{}", out.stdout);
    let n = v["trace_records"].as_u64().unwrap();
    assert!(
        out.stdout.contains(&format!("({n} records)")),
        "replay should count {n} records:\n{}",
        out.stdout
    );
}

const EVENTS: [&str; 6] = ["publish", "route", "deliver", "drop", "timer", "late"];

const CSV_HEADER: &str =
    "seq,time_ns,event,msg_id,env,channel,sender,recipient,kind,sent_ns,detail";

/// The data rows of an exported CSV, after checking its header row.
fn csv_rows(csv_text: &str) -> Vec<csv::StringRecord> {
    assert_eq!(csv_text.lines().next(), Some(CSV_HEADER));
    csv::Reader::from_reader(csv_text.as_bytes())
        .records()
        .map(|r| r.expect("well-formed CSV row"))
        .collect()
}

/// Checks an exported CSV against the contract and the run's summary.
fn check_csv(csv_text: &str, summary: &serde_json::Value) {
    let mut n = 0u64;
    let mut last_time = 0u64;
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    for (i, row) in csv_rows(csv_text).into_iter().enumerate() {
        assert_eq!(row.len(), 11, "row {i}: {row:?}");
        let seq: u64 = row[0].parse().expect("seq is an integer");
        assert_eq!(seq, i as u64, "seq must count from 0 without gaps");
        let t: u64 = row[1].parse().expect("time_ns is an integer");
        assert!(t >= last_time, "row {i}: time went back {last_time} -> {t}");
        last_time = t;
        let event = &row[2];
        assert!(EVENTS.contains(&event), "row {i}: unknown event {event:?}");
        if event == "timer" {
            // A timer has no message: its tag is in `detail`.
            assert_eq!(&row[3], "", "row {i}: a timer row with a msg_id");
            let tag = row[10]
                .strip_prefix("tag=")
                .expect("a timer's detail is tag=N");
            tag.parse::<u64>().expect("a timer's tag is an integer");
        } else {
            row[3].parse::<u64>().expect("msg_id is an integer");
        }
        assert_eq!(&row[4], summary["env"].to_string().as_str(), "env column");
        row[9].parse::<u64>().expect("sent_ns is an integer");
        if event == "drop" {
            assert!(!row[10].is_empty(), "row {i}: drop without a reason");
        }
        *counts.entry(event.to_string()).or_default() += 1;
        n += 1;
    }
    assert_eq!(n, summary["trace_records"].as_u64().unwrap(), "row count");
    let count = |e: &str| counts.get(e).copied().unwrap_or(0);
    assert_eq!(count("publish"), summary["published"].as_u64().unwrap());
    assert_eq!(count("deliver"), summary["delivered"].as_u64().unwrap());
    assert_eq!(count("drop"), summary["dropped"].as_u64().unwrap());
    assert_eq!(count("late"), summary["late"].as_u64().unwrap());
}

#[test]
fn export_csv_follows_the_column_contract() {
    let dir = TempDir::new().unwrap();
    for (scen, seed) in [("two_agents.toml", 7), ("lossy_jitter.toml", 99)] {
        let (t, v) = record(dir.path(), scen, seed, &format!("{scen}.bin"));
        let out = busbar([
            OsStr::new("export"),
            t.as_os_str(),
            OsStr::new("--format"),
            OsStr::new("csv"),
        ]);
        out.expect_code(0);
        check_csv(&out.stdout, &v);
        // These scenarios are lossy, so the drop rows were exercised.
        assert!(v["dropped"].as_u64().unwrap() > 0, "{scen}: no drops");
    }
}

#[test]
fn export_csv_writes_the_header_exactly_once() {
    // Once written twice: by hand and again by csv's automatic header.
    let dir = TempDir::new().unwrap();
    let (t, v) = record(dir.path(), "two_agents.toml", 7, "t.bin");
    let out = busbar([OsStr::new("export"), t.as_os_str()]);
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert!(lines[1].starts_with("0,"), "second line: {:?}", lines[1]);
    let n = v["trace_records"].as_u64().unwrap() as usize;
    assert_eq!(lines.len(), n + 1, "a header and one line per record");
}

#[test]
fn export_jsonl_has_one_object_per_record() {
    let dir = TempDir::new().unwrap();
    let (t, v) = record(dir.path(), "two_agents.toml", 3, "t.bin");
    let out = busbar([
        OsStr::new("export"),
        t.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("jsonl"),
    ]);
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len() as u64, v["trace_records"].as_u64().unwrap());
    for (i, l) in lines.iter().enumerate() {
        let row: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
        assert_eq!(row["seq"].as_u64(), Some(i as u64));
        assert!(EVENTS.contains(&row["event"].as_str().unwrap()), "{row}");
        if row["event"] == "timer" {
            assert!(row["msg_id"].is_null(), "{row}");
            assert!(row["detail"].as_str().unwrap().starts_with("tag="), "{row}");
        } else {
            assert!(row["msg_id"].is_u64(), "{row}");
        }
    }
}

#[test]
fn export_output_flag_writes_the_file() {
    let dir = TempDir::new().unwrap();
    let (t, v) = record(dir.path(), "two_agents.toml", 7, "t.bin");
    let o = dir.path().join("out.csv");
    let out = busbar([
        OsStr::new("export"),
        t.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("csv"),
        OsStr::new("-o"),
        o.as_os_str(),
    ]);
    out.expect_code(0);
    assert!(out.stdout.is_empty(), "-o should leave stdout empty");
    let written = fs::read_to_string(&o).expect("-o wrote the file");
    check_csv(&written, &v);
    let to_stdout = busbar([OsStr::new("export"), t.as_os_str()]);
    to_stdout.expect_code(0);
    assert_eq!(written, to_stdout.stdout, "csv is the default format");
}

#[test]
fn diff_same_seed_is_identical_other_seed_diverges() {
    let dir = TempDir::new().unwrap();
    let (a, _) = record(dir.path(), "two_agents.toml", 7, "a.bin");
    let (b, _) = record(dir.path(), "two_agents.toml", 7, "b.bin");
    let (c, _) = record(dir.path(), "two_agents.toml", 8, "c.bin");
    let same = busbar([OsStr::new("diff"), a.as_os_str(), b.as_os_str()]);
    same.expect_code(0);
    assert!(same.stdout.contains("identical"), "{}", same.stdout);
    let other = busbar([OsStr::new("diff"), a.as_os_str(), c.as_os_str()]);
    other.expect_code(1);
    assert!(
        other.stdout.contains("diverged at record"),
        "{}",
        other.stdout
    );
}

// ---------------------------------------------------------------------------
// check: located scenario errors
// ---------------------------------------------------------------------------

/// A valid scenario with a grid part and general agents; the bad cases
/// below are small edits of it. Line numbers are looked up, not hard-coded
/// in two places: `line_of` finds a marker.
const BASE: &str = r#"[simulation]
name = "t"
duration = "1s"

[grid]
step = "100ms"

[network.default]
latency = { dist = "uniform", min = "1ms", max = "3ms" }

[[microgrid]]
id = "mg"
[[microgrid.device]]
type = "storage"
id = "bat"
capacity_mwh = 1.0
p_max_mw = 0.5

[[agent]]
type = "periodic"
name = "p"
channel = "{env}/x"
period = "100ms"

[[agent]]
type = "sink"
name = "s"
channels = ["{env}/x"]
"#;

/// 1-based number of the first line containing `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker:?} not in scenario text"))
        + 1
}

/// `text` with the first `from` replaced by `to` (which must occur).
fn edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} not in BASE");
    BASE.replacen(from, to, 1)
}

/// Where a `check` error points: (line, column, key, message).
struct Located {
    line: usize,
    column: usize,
    key: String,
    message: String,
}

/// Runs `check` on `text`, expects exit 2 and a `file:line:col: key: msg`
/// message.
fn check_fails(text: &str) -> Located {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("bad.toml");
    fs::write(&path, text).unwrap();
    let out = busbar([OsStr::new("check"), path.as_os_str()]);
    out.expect_error();
    let prefix = format!("error: {}:", path.display());
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("error does not start with {prefix:?}:\n{}", out.stderr));
    let mut parts = line.splitn(3, ':');
    let l = parts.next().unwrap().parse().expect("a line number");
    let c = parts.next().unwrap().parse().expect("a column number");
    let rest = parts.next().unwrap().trim_start();
    let (key, message) = rest.split_once(": ").expect("key: message");
    assert!(l >= 1 && c >= 1, "positions are 1-based: {line}");
    Located {
        line: l,
        column: c,
        key: key.to_string(),
        message: message.to_string(),
    }
}

#[test]
fn check_reports_every_semantic_error_one_per_line() {
    let text = edit("period = \"100ms\"\n", "period = \"0s\"\n")
        .replacen("capacity_mwh = 1.0", "capacity_mwh = -1.0", 1)
        .replacen("name = \"s\"", "name = \"p\"", 1);
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("bad.toml");
    fs::write(&path, &text).unwrap();
    let out = busbar([OsStr::new("check"), path.as_os_str()]);
    out.expect_error();
    let prefix = format!("error: {}:", path.display());
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stderr);
    assert!(
        lines.iter().all(|l| l.starts_with(&prefix)),
        "{}",
        out.stderr
    );
    for (line, key) in [
        (lines[0], "microgrid[0].device[0].capacity_mwh"),
        (lines[1], "agent[0].period"),
        (lines[2], "agent[1].name"),
    ] {
        assert!(line.contains(&format!(": {key}: ")), "{line}");
    }
}

#[test]
fn a_scenario_in_the_old_shape_is_told_where_grid_keys_moved() {
    let text = BASE.replacen("\n[grid]\n", "", 1);
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "step"), "simulation.step");
    assert!(e.message.contains("[grid]"), "{}", e.message);
}

/// Asserts an error is at `line` and names `key` exactly.
fn assert_at(e: &Located, line: usize, key: &str) {
    assert_eq!(
        (e.line, e.key.as_str()),
        (line, key),
        "message: {}",
        e.message
    );
}

#[test]
fn check_accepts_good_scenarios() {
    for path in shipped() {
        let out = busbar([OsStr::new("check"), path.as_os_str()]);
        out.expect_code(0);
        assert!(out.stdout.starts_with("ok: "), "{}", out.stdout);
    }
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("base.toml");
    fs::write(&path, BASE).unwrap();
    busbar([OsStr::new("check"), path.as_os_str()]).expect_code(0);
}

#[test]
fn check_locates_unknown_keys() {
    // Nested in an internally tagged table ([[microgrid.device]]).
    let text = edit("p_max_mw = 0.5\n", "p_max_mw = 0.5\nwatts = 3\n");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "watts"), "microgrid[0].device[0].watts");
    assert!(e.message.contains("watts"), "{}", e.message);

    // Nested in an inline latency table.
    let text = edit(r#"max = "3ms" }"#, r#"max = "3ms", jitter = 2 }"#);
    let e = check_fails(&text);
    assert_at(
        &e,
        line_of(&text, "jitter"),
        "network.default.latency.jitter",
    );
    assert!(e.column > 1, "column should point into the inline table");

    // In a [[agent]] table.
    let text = edit("period = \"100ms\"\n", "period = \"100ms\"\nperiodd = 1\n");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "periodd"), "agent[0].periodd");

    // At the top level and in plain tables (exact keys: see
    // `check_names_unknown_keys_in_plain_tables_exactly`).
    for (text, marker) in [
        (format!("bogus = 1\n{BASE}"), "bogus"),
        (
            edit("duration = \"1s\"\n", "duration = \"1s\"\ndurationn = 1\n"),
            "durationn",
        ),
        (
            edit("step = \"100ms\"\n", "step = \"100ms\"\nstepp = 1\n"),
            "stepp",
        ),
        (edit("id = \"mg\"\n", "id = \"mg\"\nsize = 1\n"), "size"),
    ] {
        let e = check_fails(&text);
        assert_eq!(e.line, line_of(&text, marker), "{marker}: {}", e.message);
        assert!(e.key.contains(marker), "{marker}: key {:?}", e.key);
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }
}

#[test]
fn check_names_unknown_keys_in_plain_tables_exactly() {
    // Once reported with the key doubled (`simulation.stepp.stepp`).
    let text = format!("bogus = 1\n{BASE}");
    assert_at(&check_fails(&text), 1, "bogus");
    let text = edit("duration = \"1s\"\n", "duration = \"1s\"\ndurationn = 1\n");
    assert_at(
        &check_fails(&text),
        line_of(&text, "durationn"),
        "simulation.durationn",
    );
    let text = edit("step = \"100ms\"\n", "step = \"100ms\"\nstepp = 1\n");
    assert_at(&check_fails(&text), line_of(&text, "stepp"), "grid.stepp");
    let text = edit("id = \"mg\"\n", "id = \"mg\"\nsize = 1\n");
    assert_at(
        &check_fails(&text),
        line_of(&text, "size"),
        "microgrid[0].size",
    );
}

#[test]
fn check_locates_wrong_types() {
    let text = edit("name = \"t\"\n", "name = \"t\"\nseed = \"lots\"\n");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "lots"), "simulation.seed");
    assert_eq!(e.column, 8, "column of the value");
    assert!(e.message.contains("invalid type"), "{}", e.message);

    let text = edit(r#"max = "3ms" }"#, "max = \"3ms\" }\nloss = \"high\"");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "high"), "network.default.loss");

    // A missing required key is located at its table and named.
    let text = edit("capacity_mwh = 1.0\n", "");
    let e = check_fails(&text);
    assert_at(
        &e,
        line_of(&text, "[[microgrid.device]]"),
        "microgrid[0].device[0]",
    );
    assert!(e.message.contains("capacity_mwh"), "{}", e.message);
}

#[test]
fn check_locates_wrong_types_inside_tagged_tables() {
    let text = edit("capacity_mwh = 1.0", "capacity_mwh = \"big\"");
    let e = check_fails(&text);
    assert_at(
        &e,
        line_of(&text, "capacity_mwh"),
        "microgrid[0].device[0].capacity_mwh",
    );
    let text = edit("period = \"100ms\"", "period = \"5 parsecs\"");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "parsecs"), "agent[0].period");
    // Latency tables are tagged by `dist`: same problem.
    let text = edit(r#"min = "1ms""#, "min = 5");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "min = 5"), "network.default.latency.min");
}

#[test]
fn check_locates_bad_durations() {
    let text = edit("duration = \"1s\"", "duration = \"5 parsecs\"");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "parsecs"), "simulation.duration");
    assert_eq!(e.column, 12, "column of the value");
    assert!(e.message.contains("5 parsecs"), "{}", e.message);

    let text = edit("duration = \"1s\"", "duration = 5");
    assert_at(
        &check_fails(&text),
        line_of(&text, "duration"),
        "simulation.duration",
    );
}

#[test]
fn check_locates_out_of_range_values() {
    // Loss probability outside [0, 1], default model and per-link override.
    let text = edit(r#"max = "3ms" }"#, "max = \"3ms\" }\nloss = 1.5");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "1.5"), "network.default.loss");
    assert!(e.message.contains("[0, 1]"), "{}", e.message);
    let text = format!("{BASE}\n[[network.link]]\nfrom = \"p\"\nto = \"broker\"\nloss = -0.1\n");
    assert_at(
        &check_fails(&text),
        line_of(&text, "-0.1"),
        "network.link[0].loss",
    );

    // Uniform latency with min > max.
    let text = edit(r#"min = "1ms", max = "3ms""#, r#"min = "5ms", max = "3ms""#);
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "5ms"), "network.default.latency.max");
    assert!(e.message.contains("min"), "{}", e.message);

    // Deadline longer than the step.
    let text = edit(
        "step = \"100ms\"\n",
        "step = \"100ms\"\ndeadline = \"200ms\"\n",
    );
    assert_at(
        &check_fails(&text),
        line_of(&text, "deadline"),
        "grid.deadline",
    );

    // soc_init outside [soc_min, soc_max].
    let text = edit(
        "p_max_mw = 0.5\n",
        "p_max_mw = 0.5\nsoc_min = 0.2\nsoc_max = 0.8\nsoc_init = 0.9\n",
    );
    let e = check_fails(&text);
    assert_at(
        &e,
        line_of(&text, "soc_init"),
        "microgrid[0].device[0].soc_init",
    );
    assert!(e.message.contains("0.9"), "{}", e.message);
}

#[test]
fn check_locates_bad_references_and_names() {
    // A link naming an agent that does not exist.
    let text = format!("{BASE}\n[[network.link]]\nfrom = \"ghost\"\nto = \"broker\"\n");
    let e = check_fails(&text);
    assert_at(&e, line_of(&text, "ghost"), "network.link[0].from");
    assert!(e.message.contains("ghost"), "{}", e.message);

    // Duplicate agent names.
    let text = edit("name = \"s\"", "name = \"p\"");
    let e = check_fails(&text);
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "name = \"p\"")
        .nth(1)
        .expect("two agents called p")
        .0
        + 1;
    assert_at(&e, second, "agent[1].name");

    // A general agent called like a grid agent.
    let text = edit("name = \"s\"", "name = \"mg\"");
    assert_at(
        &check_fails(&text),
        line_of(&text, "name = \"mg\""),
        "agent[1].name",
    );
}

#[test]
fn check_locates_syntax_errors_and_names_missing_files() {
    let text = edit("duration = \"1s\"", "duration = ");
    let e = check_fails(&text);
    assert_eq!(e.line, line_of(&text, "duration"), "{}", e.message);

    let text = edit("[[agent]]", "[[agent]");
    let e = check_fails(&text);
    assert_eq!(e.line, line_of(&text, "[[agent]"), "{}", e.message);

    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("nope.toml");
    for cmd in ["check", "run"] {
        let out = busbar([OsStr::new(cmd), missing.as_os_str()]);
        out.expect_error();
        assert!(
            out.stderr.contains(&missing.display().to_string()),
            "{cmd}: {}",
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------
// corrupt traces
// ---------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (64-bit LCG, high bytes).
fn noise(n: usize, mut state: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// `replay`, `export` and `diff` (either side) of `bad` exit 2 without a
/// panic, and the message names the file.
fn assert_rejected(bad: &Path, good: &Path, what: &str) {
    for args in [
        vec![OsStr::new("replay"), bad.as_os_str()],
        vec![OsStr::new("export"), bad.as_os_str()],
        vec![
            OsStr::new("export"),
            bad.as_os_str(),
            OsStr::new("--format"),
            OsStr::new("jsonl"),
        ],
        vec![OsStr::new("diff"), bad.as_os_str(), good.as_os_str()],
        vec![OsStr::new("diff"), good.as_os_str(), bad.as_os_str()],
    ] {
        let out = busbar(&args);
        assert_eq!(
            out.code, 2,
            "{what}: {args:?} exited {}\nstdout:\n{}\nstderr:\n{}",
            out.code, out.stdout, out.stderr
        );
        assert!(
            !out.stderr.contains("panicked"),
            "{what}: {args:?} panicked:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.starts_with("error: "),
            "{what}: {args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn corrupt_traces_are_errors_not_panics() {
    let dir = TempDir::new().unwrap();
    let (good, _) = record(dir.path(), "two_agents.toml", 7, "good.bin");
    let bytes = fs::read(&good).unwrap();
    let n = bytes.len();
    assert!(n > 1000, "trace unexpectedly small: {n} bytes");
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [0, 4, 9, 10, 13, 15, n / 3, n / 2, n - 20, n - 1] {
        cases.push((format!("truncated at {cut}"), bytes[..cut].to_vec()));
    }
    let mut flipped = bytes.clone();
    flipped[n / 2] ^= 0x40;
    cases.push(("flipped middle byte".into(), flipped));
    cases.push(("random bytes".into(), noise(n, 7)));
    cases.push(("empty file".into(), Vec::new()));
    let mut huge = bytes.clone();
    huge[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(("length prefix 0xFFFFFFFF".into(), huge));
    let mut magic_ok_rest_random = bytes[..10].to_vec();
    magic_ok_rest_random.extend(noise(4000, 99));
    cases.push(("valid magic then noise".into(), magic_ok_rest_random));
    for (i, (what, data)) in cases.iter().enumerate() {
        let bad = dir.path().join(format!("bad{i}.bin"));
        fs::write(&bad, data).unwrap();
        assert_rejected(&bad, &good, what);
    }
}

#[test]
fn trace_errors_name_the_file() {
    let dir = TempDir::new().unwrap();
    let (good, _) = record(dir.path(), "two_agents.toml", 7, "good.bin");
    let bad = dir.path().join("cut.bin");
    let bytes = fs::read(&good).unwrap();
    fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let name = bad.display().to_string();
    for args in [
        vec![OsStr::new("replay"), bad.as_os_str()],
        vec![OsStr::new("export"), bad.as_os_str()],
        vec![OsStr::new("diff"), good.as_os_str(), bad.as_os_str()],
    ] {
        let out = busbar(&args);
        out.expect_error();
        assert!(out.stderr.contains(&name), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("truncated"), "{args:?}: {}", out.stderr);
    }
    let missing = dir.path().join("missing.bin");
    let out = busbar([OsStr::new("replay"), missing.as_os_str()]);
    out.expect_error();
    assert!(
        out.stderr.contains(&missing.display().to_string()),
        "{}",
        out.stderr
    );
}

/// A trace of `two_agents` (`good.bin`) and a copy with a byte flipped in
/// the middle of its records, named `name`.
fn good_and_flipped(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (good, _) = record(dir, "two_agents.toml", 7, "good.bin");
    let mut bytes = fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = dir.join(name);
    fs::write(&bad, &bytes).unwrap();
    (good, bad)
}

#[test]
fn diff_names_the_file_whose_records_are_corrupt() {
    let dir = TempDir::new().unwrap();
    let (good, bad) = good_and_flipped(dir.path(), "flipped.bin");
    let out = busbar([OsStr::new("diff"), good.as_os_str(), bad.as_os_str()]);
    out.expect_error();
    assert!(
        out.stderr.contains(&bad.display().to_string()),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// usage
// ---------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    let two = scenario("two_agents.toml");
    for args in [
        vec![],
        vec![OsStr::new("frobnicate")],
        vec![OsStr::new("run")],
        vec![OsStr::new("run"), two.as_os_str(), OsStr::new("--bogus")],
        vec![
            OsStr::new("run"),
            two.as_os_str(),
            OsStr::new("--seed"),
            OsStr::new("minus-one"),
        ],
        vec![
            OsStr::new("export"),
            two.as_os_str(),
            OsStr::new("--format"),
            OsStr::new("xml"),
        ],
        vec![OsStr::new("diff"), two.as_os_str()],
    ] {
        let out = busbar(&args);
        assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(!out.stderr.is_empty(), "{args:?}: usage error says nothing");
        assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn a_scenario_is_not_a_trace() {
    // Passing the TOML file where a trace is expected is bad input (2).
    let two = scenario("two_agents.toml");
    let out = busbar([OsStr::new("replay"), two.as_os_str()]);
    out.expect_error();
    assert!(out.stderr.contains("not a busbar trace"), "{}", out.stderr);
}

/// A scenario with a CSV profile, recorded with a relative path from its own
/// directory, replays from any other working directory: the trace header
/// carries the absolute directory its relative paths were resolved from.
#[test]
fn replay_finds_csv_profiles_from_any_working_directory() {
    let dir = TempDir::new().unwrap();
    fs::write(
        dir.path().join("pv.csv"),
        "time_s,p\n0,0\n21600,0\n43200,1\n64800,0\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("csv.toml"),
        "[simulation]\nname = \"csv\"\nduration = \"20s\"\n[grid]\nstart_hour = 11.0\n\
         [[microgrid]]\nid = \"mg\"\n[[microgrid.device]]\ntype = \"pv\"\nid = \"pv\"\n\
         peak_mw = 1.0\nprofile = { kind = \"csv\", path = \"pv.csv\", column = \"p\" }\n",
    )
    .unwrap();
    let run = |cwd: &Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(dir.path(), &["run", "csv.toml", "--trace", "t.bin"]);
    assert_eq!(code, Some(0), "{err}");
    let elsewhere = TempDir::new().unwrap();
    let trace = dir.path().join("t.bin");
    let (code, out, err) = run(elsewhere.path(), &["replay", trace.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("identical"), "{out}");
    // And the profile matters: without it the replay cannot load.
    fs::remove_file(dir.path().join("pv.csv")).unwrap();
    let (code, _, err) = run(elsewhere.path(), &["replay", trace.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("pv.csv"), "{err}");
}

// ---------------------------------------------------------------------------
// output: closed pipes, full devices, output files that are inputs
// ---------------------------------------------------------------------------

/// Runs the binary with standard output and standard error given.
fn busbar_with<I, S>(args: I, stdout: Stdio, stderr: Stdio) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .output()
        .expect("the busbar binary runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary with standard output a pipe whose reader is gone
/// before the binary starts, so its first write fails with a broken pipe.
fn busbar_into_closed_pipe<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    busbar_with(args, Stdio::from(writer), Stdio::piped())
}

/// Runs the binary with standard output on `/dev/full` (every write fails
/// with "no space left on device").
#[cfg(target_os = "linux")]
fn busbar_into_dev_full<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    busbar_with(args, Stdio::from(full), Stdio::piped())
}

/// A closed pipe is the reader's choice: quiet, and the command's own exit
/// code.
fn expect_quiet(out: &Out, code: i32, what: &str) {
    assert_eq!(out.code, code, "{what}: exit {}\n{}", out.code, out.stderr);
    assert!(
        out.stderr.is_empty(),
        "{what}: a closed pipe is not an error:\n{}",
        out.stderr
    );
}

/// Names of the temporary files left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

#[test]
fn run_into_a_closed_pipe_does_not_panic() {
    let two = scenario("two_agents.toml");
    let out = busbar_into_closed_pipe([OsStr::new("run"), two.as_os_str()]);
    expect_quiet(&out, 0, "run");
    let out = busbar_into_closed_pipe([OsStr::new("run"), two.as_os_str(), OsStr::new("--json")]);
    expect_quiet(&out, 0, "run --json");
}

#[test]
fn check_replay_and_diff_into_a_closed_pipe_do_not_panic() {
    let dir = TempDir::new().unwrap();
    let (a, _) = record(dir.path(), "two_agents.toml", 7, "a.bin");
    let (b, _) = record(dir.path(), "two_agents.toml", 8, "b.bin");
    let two = scenario("two_agents.toml");
    for (args, code) in [
        (vec![OsStr::new("check"), two.as_os_str()], 0),
        (vec![OsStr::new("replay"), a.as_os_str()], 0),
        (vec![OsStr::new("diff"), a.as_os_str(), a.as_os_str()], 0),
        // Diverged stays diverged, read or not.
        (vec![OsStr::new("diff"), a.as_os_str(), b.as_os_str()], 1),
        (vec![OsStr::new("export"), a.as_os_str()], 0),
        (vec![OsStr::new("--help")], 0),
    ] {
        let out = busbar_into_closed_pipe(&args);
        expect_quiet(&out, code, &format!("{args:?}"));
    }
}

#[cfg(target_os = "linux")]
#[test]
fn run_to_dev_full_is_exit_2_naming_stdout() {
    let dir = TempDir::new().unwrap();
    let (t, _) = record(dir.path(), "two_agents.toml", 7, "t.bin");
    let two = scenario("two_agents.toml");
    for args in [
        vec![OsStr::new("run"), two.as_os_str()],
        vec![OsStr::new("run"), two.as_os_str(), OsStr::new("--json")],
        vec![OsStr::new("check"), two.as_os_str()],
        vec![OsStr::new("replay"), t.as_os_str()],
        vec![OsStr::new("diff"), t.as_os_str(), t.as_os_str()],
    ] {
        let out = busbar_into_dev_full(&args);
        out.expect_error();
        assert!(
            out.stderr
                .contains("error: writing to standard output: No space left on device"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn export_to_a_full_stdout_names_standard_output() {
    let dir = TempDir::new().unwrap();
    let (t, _) = record(dir.path(), "two_agents.toml", 7, "t.bin");
    let out = busbar_into_dev_full([OsStr::new("export"), t.as_os_str()]);
    out.expect_error();
    assert!(
        out.stderr.contains("writing to standard output"),
        "{}",
        out.stderr
    );
    // The trace is fine: it is not the file to blame.
    assert!(!out.stderr.contains("t.bin"), "{}", out.stderr);
}

#[cfg(target_os = "linux")]
#[test]
fn help_to_a_full_stdout_is_exit_2() {
    let out = busbar_into_dev_full(["--help"]);
    out.expect_error();
    assert!(
        out.stderr.contains("writing to standard output"),
        "{}",
        out.stderr
    );
}

#[cfg(target_os = "linux")]
#[test]
fn stderr_to_dev_full_does_not_panic() {
    let full = || {
        Stdio::from(
            fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full"),
        )
    };
    let missing = Path::new("/no/such/scenario.toml");
    let out = busbar_with(
        [OsStr::new("run"), missing.as_os_str()],
        Stdio::piped(),
        full(),
    );
    assert_eq!(
        out.code, 2,
        "an error is still exit 2 when it cannot be told"
    );
    let out = busbar_with(["run", "--bogus"], Stdio::piped(), full());
    assert_eq!(out.code, 2, "usage error");
}

#[cfg(target_os = "linux")]
#[test]
fn run_trace_to_dev_full_names_the_trace_file() {
    // Small: the trace fails when its end is written; large: while the
    // run goes on (on the writer thread), which stops the run.
    for name in ["two_agents.toml", "seed_example.toml"] {
        let path = scenario(name);
        let out = busbar([
            OsStr::new("run"),
            path.as_os_str(),
            OsStr::new("--trace"),
            OsStr::new("/dev/full"),
        ]);
        out.expect_error();
        assert!(
            out.stderr
                .contains("error: /dev/full: cannot write the trace: No space left on device"),
            "{name}: {}",
            out.stderr
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn export_to_dev_full_names_the_output_file() {
    let dir = TempDir::new().unwrap();
    let (t, _) = record(dir.path(), "two_agents.toml", 7, "t.bin");
    for format in ["csv", "jsonl"] {
        let out = busbar([
            OsStr::new("export"),
            t.as_os_str(),
            OsStr::new("--format"),
            OsStr::new(format),
            OsStr::new("-o"),
            OsStr::new("/dev/full"),
        ]);
        out.expect_error();
        assert!(
            out.stderr
                .starts_with("error: /dev/full: No space left on device"),
            "{format}: {}",
            out.stderr
        );
    }
}

#[test]
fn trace_over_the_scenario_is_refused() {
    let dir = TempDir::new().unwrap();
    let s = dir.path().join("s.toml");
    let text = fs::read_to_string(scenario("two_agents.toml")).unwrap();
    fs::write(&s, &text).unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let mut same = vec![s.clone(), dir.path().join("sub").join("..").join("s.toml")];
    #[cfg(unix)]
    {
        let hard = dir.path().join("hard.toml");
        fs::hard_link(&s, &hard).unwrap();
        let soft = dir.path().join("soft.toml");
        std::os::unix::fs::symlink(&s, &soft).unwrap();
        same.extend([hard, soft]);
    }
    for out_path in &same {
        let out = busbar([
            OsStr::new("run"),
            s.as_os_str(),
            OsStr::new("--trace"),
            out_path.as_os_str(),
        ]);
        out.expect_error();
        assert!(
            out.stderr.contains(&format!(
                "error: {}: is also an input ({}); choose another output path",
                out_path.display(),
                s.display()
            )),
            "{}",
            out.stderr
        );
        assert_eq!(
            fs::read_to_string(&s).unwrap(),
            text,
            "the scenario is intact"
        );
    }
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn trace_over_a_csv_profile_is_refused() {
    let dir = TempDir::new().unwrap();
    let csv_text = "time_s,p\n0,0\n43200,1\n";
    let profile = dir.path().join("pv.csv");
    fs::write(&profile, csv_text).unwrap();
    let s = dir.path().join("csv.toml");
    fs::write(
        &s,
        "[simulation]\nname = \"csv\"\nduration = \"20s\"\n\
         [[microgrid]]\nid = \"mg\"\n[[microgrid.device]]\ntype = \"pv\"\nid = \"pv\"\n\
         peak_mw = 1.0\nprofile = { kind = \"csv\", path = \"pv.csv\", column = \"p\" }\n",
    )
    .unwrap();
    let out = busbar([
        OsStr::new("run"),
        s.as_os_str(),
        OsStr::new("--trace"),
        profile.as_os_str(),
    ]);
    out.expect_error();
    assert!(out.stderr.contains("is also an input"), "{}", out.stderr);
    assert_eq!(fs::read_to_string(&profile).unwrap(), csv_text);
}

#[test]
fn export_over_its_input_is_refused() {
    let dir = TempDir::new().unwrap();
    let (t, _) = record(dir.path(), "two_agents.toml", 7, "t.bin");
    let before = fs::read(&t).unwrap();
    let out = busbar([
        OsStr::new("export"),
        t.as_os_str(),
        OsStr::new("-o"),
        t.as_os_str(),
    ]);
    out.expect_error();
    assert!(out.stderr.contains("is also an input"), "{}", out.stderr);
    assert_eq!(fs::read(&t).unwrap(), before, "the trace is intact");
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_failed_export_leaves_the_old_output() {
    let dir = TempDir::new().unwrap();
    // A flipped byte in the records: the export fails part way (a record
    // that does not decode, or the digest at the end).
    let (good, bad) = good_and_flipped(dir.path(), "bad.bin");
    let o = dir.path().join("out.csv");
    fs::write(&o, "the previous export\n").unwrap();
    let out = busbar([
        OsStr::new("export"),
        bad.as_os_str(),
        OsStr::new("-o"),
        o.as_os_str(),
    ]);
    out.expect_error();
    assert!(
        out.stderr.contains(&bad.display().to_string()),
        "{}",
        out.stderr
    );
    assert_eq!(fs::read_to_string(&o).unwrap(), "the previous export\n");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    // A successful export replaces it.
    let out = busbar([
        OsStr::new("export"),
        good.as_os_str(),
        OsStr::new("-o"),
        o.as_os_str(),
    ]);
    out.expect_code(0);
    assert!(fs::read_to_string(&o).unwrap().starts_with(CSV_HEADER));
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_run_stopped_by_a_limit_puts_its_partial_trace_in_place() {
    let dir = TempDir::new().unwrap();
    let s = dir.path().join("limited.toml");
    fs::write(
        &s,
        "[simulation]\nname = \"limited\"\nduration = \"10s\"\n[limits]\nmax_events = 100\n\
         [[agent]]\ntype = \"periodic\"\nname = \"p\"\nchannel = \"{env}/x\"\nperiod = \"10ms\"\n\
         [[agent]]\ntype = \"sink\"\nname = \"s\"\nchannels = [\"{env}/x\"]\n",
    )
    .unwrap();
    let t = dir.path().join("t.bin");
    fs::write(&t, "an older trace").unwrap();
    let out = busbar([
        OsStr::new("run"),
        s.as_os_str(),
        OsStr::new("--trace"),
        t.as_os_str(),
    ]);
    out.expect_error();
    assert!(out.stderr.contains("partial trace"), "{}", out.stderr);
    assert!(leftovers(dir.path()).is_empty());
    let replayed = busbar([OsStr::new("replay"), t.as_os_str()]);
    replayed.expect_code(0);
    assert!(replayed.stdout.contains("identical"), "{}", replayed.stdout);
}

#[test]
fn negative_seed_says_seed_is_unsigned() {
    let two = scenario("two_agents.toml");
    for seed in [
        vec![OsStr::new("--seed"), OsStr::new("-1")],
        vec![OsStr::new("--seed=-1")],
        vec![OsStr::new("--seed"), OsStr::new("18446744073709551616")],
    ] {
        let mut args = vec![OsStr::new("run"), two.as_os_str()];
        args.extend(seed);
        let out = busbar(&args);
        out.expect_error();
        assert!(
            out.stderr
                .contains("a seed is an unsigned integer, 0..=18446744073709551615"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = busbar([
        OsStr::new("run"),
        two.as_os_str(),
        OsStr::new("--env"),
        OsStr::new("-1"),
    ]);
    out.expect_error();
    assert!(out.stderr.contains("unsigned integer"), "{}", out.stderr);
}

#[test]
fn run_on_a_trace_suggests_replay() {
    let dir = TempDir::new().unwrap();
    let (t, _) = record(dir.path(), "two_agents.toml", 7, "t.bin");
    for cmd in ["run", "check"] {
        let out = busbar([OsStr::new(cmd), t.as_os_str()]);
        out.expect_error();
        let name = t.display();
        assert!(
            out.stderr.contains(&format!(
                "{name} is a busbar trace, not a scenario; to re-run it use `busbar replay {name}`"
            )),
            "{cmd}: {}",
            out.stderr
        );
    }
}
