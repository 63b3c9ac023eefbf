//! `busbar show TRACE --msg ID`, timer rows of the export, the grid step of
//! a message and the deadline `late` records name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use busbar::trace::TraceReader;
use busbar::trace::life::message_lives;
use tempfile::TempDir;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn busbar<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_busbar"))
        .args(args)
        .output()
        .expect("busbar runs");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `busbar CMD TARGET FLAG VALUE`, which must succeed; its standard output.
fn ok(cmd: &str, target: &Path, flag: &str, value: &std::ffi::OsStr) -> String {
    let out = busbar(&[cmd.as_ref(), target.as_os_str(), flag.as_ref(), value]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

/// Runs a shipped scenario with `--trace`; returns the trace's path.
fn record(dir: &Path, scenario: &str) -> PathBuf {
    let t = dir.join(format!("{scenario}.bin"));
    let s = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(scenario);
    ok("run", &s, "--trace", t.as_os_str());
    t
}

fn export(t: &Path, format: &str) -> String {
    ok("export", t, "--format", format.as_ref())
}

fn csv_rows(t: &Path) -> Vec<csv::StringRecord> {
    let text = export(t, "csv");
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap())
        .collect()
}

fn jsonl_rows(t: &Path) -> Vec<serde_json::Value> {
    export(t, "jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn show_json(t: &Path, ids: &[u64]) -> (i32, serde_json::Value) {
    let mut args: Vec<std::ffi::OsString> = vec!["show".into(), t.into(), "--json".into()];
    for id in ids {
        args.push("--msg".into());
        args.push(id.to_string().into());
    }
    let out = busbar(&args);
    (out.code, serde_json::from_str(&out.stdout).expect("JSON"))
}

/// `1500ms`, `39770106ns`, ... as ns (busbar's exact duration display).
fn ns(s: &str) -> u64 {
    s.parse::<busbar::time::SimDuration>()
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .as_nanos()
}

#[test]
fn timer_rows_have_no_msg_id_and_carry_their_tag() {
    let dir = TempDir::new().unwrap();
    let t = record(dir.path(), "lossy_jitter.toml");
    let mut timers = 0;
    for row in csv_rows(&t) {
        if &row[2] == "timer" {
            timers += 1;
            assert_eq!(&row[3], "", "{row:?}");
            let tag = row[10].strip_prefix("tag=").expect("tag=N");
            tag.parse::<u64>().unwrap();
        } else {
            row[3].parse::<u64>().expect("a message row has an id");
        }
    }
    assert!(timers > 0);
    for row in jsonl_rows(&t) {
        if row["event"] == "timer" {
            assert!(row["msg_id"].is_null(), "{row}");
            assert!(row["step"].is_null(), "a timer has no message: {row}");
        }
    }
}

#[test]
fn show_lists_every_record_export_lists_for_the_message() {
    let dir = TempDir::new().unwrap();
    for scenario in ["lossy_jitter.toml", "feeder_lte_plc.toml"] {
        let t = record(dir.path(), scenario);
        let rows = csv_rows(&t);
        let mut by_msg: BTreeMap<u64, Vec<&csv::StringRecord>> = BTreeMap::new();
        // A fault row's msg_id is the fault's index, and a session registry
        // row's the agent's: not messages.
        let not_a_message = |r: &csv::StringRecord| {
            &r[2] == "fault"
                || (&r[2] == "session"
                    && ["keepalive_timeout", "session_expired"].contains(&&r[10]))
        };
        for row in rows.iter().filter(|r| !not_a_message(r)) {
            if let Ok(id) = row[3].parse::<u64>() {
                by_msg.entry(id).or_default().push(row);
            }
        }
        // A dropped, a duplicated, a forwarded and a late message, and the
        // first and last ids; each also shares its id with a timer's tag.
        let pick = |event: &str| {
            rows.iter()
                .find(|r| &r[2] == event)
                .map(|r| r[3].parse::<u64>().unwrap())
        };
        let mut ids: Vec<u64> = ["drop", "duplicate", "forward", "late", "retransmit"]
            .iter()
            .filter_map(|e| pick(e))
            .collect();
        ids.push(0);
        ids.push(*by_msg.keys().last().unwrap());
        ids.extend(by_msg.keys().step_by(by_msg.len() / 10 + 1));
        ids.sort();
        ids.dedup();
        assert!(ids.len() >= 10, "{scenario}: {ids:?}");
        if scenario == "feeder_lte_plc.toml" {
            // Fault 0 shares its number with message 0.
            assert!(rows.iter().any(|r| &r[2] == "fault" && &r[3] == "0"));
        }
        let (code, lives) = show_json(&t, &ids);
        assert_eq!(code, 0);
        let lives = lives.as_array().unwrap();
        assert_eq!(lives.len(), ids.len());
        for (id, life) in ids.iter().zip(lives) {
            assert_eq!(life["msg"].as_u64(), Some(*id));
            let want = &by_msg[id];
            let events = life["events"].as_array().unwrap();
            let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
            let want_seqs: Vec<u64> = want.iter().map(|r| r[0].parse().unwrap()).collect();
            assert_eq!(seqs, want_seqs, "{scenario} msg {id}");
            let mut delivered = 0;
            let mut dropped = 0;
            for (e, r) in events.iter().zip(want) {
                let time: u64 = r[1].parse().unwrap();
                let sent: u64 = r[9].parse().unwrap();
                assert_eq!(e["event"], &r[2]);
                assert_eq!(e["time_ns"].as_u64(), Some(time));
                assert_eq!(e["node"], &r[7], "where");
                assert_eq!(e["age_ns"].as_u64(), Some(time - sent), "age");
                assert_eq!(e["detail"], &r[10], "reason / detail");
                delivered += u64::from(&r[2] == "deliver");
                dropped += u64::from(&r[2] == "drop" && !r[10].contains('('));
            }
            let s = &life["summary"];
            assert_eq!(s["delivered"].as_u64(), Some(delivered), "{life}");
            assert_eq!(s["dropped"].as_u64(), Some(dropped), "{life}");
            let publish = want.iter().find(|r| &r[2] == "publish").unwrap();
            assert_eq!(life["channel"], &publish[5]);
            assert_eq!(life["sender"], &publish[6]);
            assert_eq!(life["recipient"], &publish[7]);
            assert_eq!(life["kind"], &publish[8]);
        }
    }
}

#[test]
fn the_table_shows_hops_fates_and_a_summary() {
    let dir = TempDir::new().unwrap();
    let t = record(dir.path(), "lossy_jitter.toml");
    let rows = csv_rows(&t);
    let drop = rows.iter().find(|r| &r[2] == "drop").unwrap();
    let id = &drop[3];
    let out = busbar(&[
        "show".as_ref(),
        t.as_os_str(),
        "--msg".as_ref(),
        id.as_ref(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("message {id}: ")) && lines[0].contains("grid step"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" publish "), "{}", out.stdout);
    assert!(out.stdout.contains(" route "), "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(" {}", &drop[10])),
        "{}",
        out.stdout
    );
    let last = lines.last().unwrap();
    assert!(last.starts_with("summary: delivered "), "{last}");
    assert!(!last.contains("dropped 0"), "{last}");
}

#[test]
fn an_unknown_id_exits_1_and_bad_input_exits_2() {
    let dir = TempDir::new().unwrap();
    let t = record(dir.path(), "two_agents.toml");
    let out = busbar(&[
        "show".as_ref(),
        t.as_os_str(),
        "--msg".as_ref(),
        "3".as_ref(),
        "--msg".as_ref(),
        "999999".as_ref(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("no message 999999"), "{}", out.stderr);
    assert!(out.stdout.contains("message 3: "), "{}", out.stdout);
    // Found ids exit 0.
    let out = busbar(&[
        "show".as_ref(),
        t.as_os_str(),
        "--msg".as_ref(),
        "3".as_ref(),
    ]);
    assert_eq!(out.code, 0);
    // A corrupt trace: a flipped bit in the middle of the records.
    let mut bytes = std::fs::read(&t).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, &bytes).unwrap();
    let out = busbar(&[
        "show".as_ref(),
        bad.as_os_str(),
        "--msg".as_ref(),
        "3".as_ref(),
    ]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
    // Truncated, missing, not an id.
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..mid]).unwrap();
    let none = dir.path().join("none.bin");
    for args in [
        vec![
            "show".as_ref(),
            cut.as_os_str(),
            "--msg".as_ref(),
            "3".as_ref(),
        ],
        vec![
            "show".as_ref(),
            none.as_os_str(),
            "--msg".as_ref(),
            "3".as_ref(),
        ],
        vec![
            "show".as_ref(),
            t.as_os_str(),
            "--msg".as_ref(),
            "x".as_ref(),
        ],
        vec!["show".as_ref(), t.as_os_str()],
    ] {
        assert_eq!(busbar(&args).code, 2, "{args:?}");
    }
}

#[test]
fn an_older_version_trace_is_refused_with_a_clear_error() {
    let dir = TempDir::new().unwrap();
    let t = record(dir.path(), "two_agents.toml");
    let mut bytes = std::fs::read(&t).unwrap();
    // Version 4 had no deadline table in its footer.
    bytes[8..10].copy_from_slice(&4u16.to_le_bytes());
    let old = dir.path().join("v4.bin");
    std::fs::write(&old, &bytes).unwrap();
    for cmd in ["show", "export"] {
        let mut args: Vec<&std::ffi::OsStr> = vec![cmd.as_ref(), old.as_os_str()];
        if cmd == "show" {
            args.extend([std::ffi::OsStr::new("--msg"), std::ffi::OsStr::new("0")]);
        }
        let out = busbar(&args);
        assert_eq!(out.code, 2, "{cmd}");
        let want = format!(
            "version 4 is not supported (this build reads version {})",
            busbar::trace::FORMAT_VERSION
        );
        assert!(out.stderr.contains(&want), "{cmd}: {}", out.stderr);
    }
}

#[test]
fn the_step_is_the_grid_environments_own_numbering() {
    // The environment's step timer for step k carries tag 2k and fires at
    // k·step, when it broadcasts the step's action: that action's step
    // must be k, and every message's step is floor(sent / step).
    let dir = TempDir::new().unwrap();
    let t = record(dir.path(), "lossy_jitter.toml");
    let step_ns = 500_000_000u64; // [grid] step = "500ms"
    let rows = jsonl_rows(&t);
    let mut checked = 0;
    for (i, row) in rows.iter().enumerate() {
        if row["event"] == "timer" && row["recipient"] == "env" {
            let tag: u64 = row["detail"].as_str().unwrap()[4..].parse().unwrap();
            if !tag.is_multiple_of(2) {
                continue;
            }
            let k = tag / 2;
            assert_eq!(row["time_ns"].as_u64(), Some(k * step_ns));
            let action = rows[i..]
                .iter()
                .find(|r| r["event"] == "publish" && r["kind"] == "action")
                .unwrap();
            assert_eq!(action["sent_ns"].as_u64(), Some(k * step_ns));
            assert_eq!(action["step"].as_u64(), Some(k), "{action}");
            let (_, life) = show_json(&t, &[action["msg_id"].as_u64().unwrap()]);
            assert_eq!(life[0]["step"].as_u64(), Some(k));
            checked += 1;
            if checked == 5 {
                break;
            }
        }
    }
    assert_eq!(checked, 5);
    for row in rows.iter().filter(|r| r["msg_id"].is_u64()) {
        let sent = row["sent_ns"].as_u64().unwrap();
        assert_eq!(row["step"].as_u64(), Some(sent / step_ns), "{row}");
    }
    // Without a grid, there is no step.
    let t = record(dir.path(), "two_agents.toml");
    assert!(jsonl_rows(&t).iter().all(|r| r["step"].is_null()));
    let (_, life) = show_json(&t, &[0]);
    assert!(life[0]["step"].is_null());
}

#[test]
fn late_rows_name_the_deadline_and_how_late() {
    let dir = TempDir::new().unwrap();
    // The sink's deadline counts from the send time: lateness = age − limit.
    let t = record(dir.path(), "two_agents.toml");
    let mut late = 0;
    for row in csv_rows(&t).iter().filter(|r| &r[2] == "late") {
        let age = row[1].parse::<u64>().unwrap() - row[9].parse::<u64>().unwrap();
        let rest = row[10]
            .strip_prefix("deadline sink.deadline 20ms, late by ")
            .unwrap_or_else(|| panic!("{row:?}"));
        assert_eq!(ns(rest), age - 20_000_000, "{row:?}");
        late += 1;
    }
    assert!(late > 0);
    for row in jsonl_rows(&t).iter().filter(|r| r["event"] == "late") {
        let age = row["time_ns"].as_u64().unwrap() - row["sent_ns"].as_u64().unwrap();
        assert_eq!(row["deadline"], "sink.deadline");
        assert_eq!(row["limit_ns"].as_u64(), Some(20_000_000));
        assert_eq!(row["late_by_ns"].as_u64(), Some(age - 20_000_000), "{row}");
    }
    // The grid's deadline is `deadline` after the start of the update's
    // step k (the one in its payload, which the footer's table keeps):
    // lateness = time − (k·step + deadline) ≥ 0, and k is at most the step
    // the update was sent in.
    let t = record(dir.path(), "lossy_jitter.toml");
    let (step, deadline) = (500_000_000u64, 150_000_000u64);
    let rows = csv_rows(&t);
    let late: Vec<_> = rows.iter().filter(|r| &r[2] == "late").collect();
    assert!(!late.is_empty());
    for row in &late {
        let (time, sent) = (
            row[1].parse::<u64>().unwrap(),
            row[9].parse::<u64>().unwrap(),
        );
        let rest = row[10]
            .strip_prefix("deadline grid.step_deadline 150ms, late by ")
            .unwrap_or_else(|| panic!("{row:?}"));
        let by = ns(rest);
        let k = (time - by - deadline) / step;
        assert_eq!(k * step + deadline + by, time, "{row:?}");
        assert!(k <= sent / step, "{row:?}");
    }
    let jsonl = jsonl_rows(&t);
    let mut after_their_step = 0;
    for row in jsonl.iter().filter(|r| r["event"] == "late") {
        let k = row["deadline_step"].as_u64().unwrap();
        let time = row["time_ns"].as_u64().unwrap();
        assert_eq!(row["period_ns"].as_u64(), Some(step));
        assert_eq!(
            row["late_by_ns"].as_i64(),
            Some((time - (k * step + deadline)) as i64),
            "{row}"
        );
        after_their_step += u64::from(row["step"].as_u64() != Some(k));
    }
    // Some updates were sent after their step ended (their setpoint came
    // late): the step they were sent in is not the grid's.
    assert!(after_their_step > 0);
    // show gives the same, structured.
    let id: u64 = late[0][3].parse().unwrap();
    let (_, life) = show_json(&t, &[id]);
    let e = life[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "late")
        .unwrap()
        .clone();
    assert_eq!(e["late"]["deadline"], "grid.step_deadline");
    assert_eq!(e["late"]["period_ns"].as_u64(), Some(step));
    assert_eq!(life[0]["summary"]["late"].as_u64(), Some(1));
    // The footer's table: one entry per step with a late update.
    let mut r = TraceReader::new(std::fs::File::open(&t).unwrap()).unwrap();
    let table = &r.footer().deadlines;
    assert!(!table.is_empty());
    for d in table {
        assert_eq!(d.name, "grid.step_deadline");
        assert_eq!((d.limit_ns, d.period_ns), (deadline, step));
    }
    let lives = message_lives(&mut r, &[id, id]).unwrap();
    assert_eq!(lives.len(), 1, "a repeated id is given once");
    assert!(lives[0].events.iter().any(|e| e.late.is_some()));
}

#[test]
fn replay_and_diff_still_work() {
    let dir = TempDir::new().unwrap();
    for scenario in ["two_agents.toml", "lossy_jitter.toml"] {
        let t = record(dir.path(), scenario);
        let out = busbar(&["replay".as_ref(), t.as_os_str()]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("identical"), "{}", out.stdout);
        let out = busbar(&["diff".as_ref(), t.as_os_str(), t.as_os_str()]);
        assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    }
}
