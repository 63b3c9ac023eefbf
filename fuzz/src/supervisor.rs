//! A fuzzing run is a supervisor process that runs the fuzzer in a worker
//! process (itself, with `BUSBAR_FUZZ_WORKER` set) and starts a new worker
//! (with another seed, for the time left) when one stops on something that
//! cannot be caught in-process: a hang or the memory cap (the worker's
//! watchdog saves the input and exits with status 3), or a crash such as a
//! stack overflow or an abort (the worker mirrors each input to a file
//! before running it, which the supervisor saves as a `crash` finding). So
//! a run of hours survives its findings.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::driver::save_finding;

/// Set in a worker's environment: the file it mirrors each input to.
pub const WORKER_ENV: &str = "BUSBAR_FUZZ_WORKER";
/// The seconds a worker has (overrides `--seconds`).
pub const SECONDS_ENV: &str = "BUSBAR_FUZZ_SECONDS";
/// A worker's seed (overrides `--seed`).
pub const SEED_ENV: &str = "BUSBAR_FUZZ_SEED";
/// A worker's exit status after its watchdog saved a hang or an `oom`.
pub const EXIT_RESTART: i32 = 3;

/// The last execution count a worker printed (progress or summary line).
fn execs_in(line: &str) -> Option<u64> {
    let rest = match line.strip_prefix("done: ") {
        Some(rest) => rest,
        None => &line[line.find("execs ")? + 6..],
    };
    rest.split_whitespace().next()?.parse().ok()
}

/// Forwards a worker's output line by line, keeping the last lines and the
/// last execution count.
fn forward(
    r: impl std::io::Read + Send + 'static,
    to_stderr: bool,
    tail: Arc<Mutex<Vec<String>>>,
    execs: Arc<Mutex<u64>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if to_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            if let Some(n) = execs_in(&line) {
                *execs.lock().unwrap_or_else(|e| e.into_inner()) = n;
            }
            let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
            t.push(line);
            if t.len() > 20 {
                t.remove(0);
            }
        }
    })
}

/// Runs workers until `seconds` are up; returns the exit status (1 if
/// anything was found).
pub fn supervise(seconds: u64, seed: u64, findings: &Path) -> u8 {
    let start = Instant::now();
    let started_at = SystemTime::now();
    let deadline = start + Duration::from_secs(seconds);
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find this program to start a worker: {e}");
            return 2;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _ = std::fs::create_dir_all(findings);
    let mut found = false;
    let mut total_execs = 0u64;
    let mut restarts: Vec<String> = Vec::new();
    // Workers that stopped within seconds of starting, in a row: a seed
    // that crashes stops the run rather than restarting it in a loop.
    let mut quick = 0;
    for worker in 0u64.. {
        let began = Instant::now();
        let left = deadline.saturating_duration_since(Instant::now());
        if worker > 0 && left < Duration::from_secs(1) {
            break;
        }
        let wseed = seed.wrapping_add(worker.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let current: PathBuf = findings.join(format!(".current-{}-{worker}", std::process::id()));
        let child = Command::new(&exe)
            .args(&args)
            .env(WORKER_ENV, &current)
            .env(SECONDS_ENV, left.as_secs().max(1).to_string())
            .env(SEED_ENV, wseed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: cannot start a worker: {e}");
                return 2;
            }
        };
        if worker > 0 {
            println!(
                "supervisor: worker {worker} (seed {wseed}), {} s left",
                left.as_secs()
            );
        }
        let tail = Arc::new(Mutex::new(Vec::new()));
        let execs = Arc::new(Mutex::new(0u64));
        let out = child
            .stdout
            .take()
            .map(|o| forward(o, false, Arc::new(Mutex::new(Vec::new())), execs.clone()));
        let err = child
            .stderr
            .take()
            .map(|e| forward(e, true, tail.clone(), Arc::new(Mutex::new(0))));
        let status = child.wait();
        for h in [out, err].into_iter().flatten() {
            let _ = h.join();
        }
        total_execs += *execs.lock().unwrap_or_else(|e| e.into_inner());
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: waiting for a worker: {e}");
                return 2;
            }
        };
        match status.code() {
            Some(0) => {
                let _ = std::fs::remove_file(&current);
                break;
            }
            Some(1) => {
                let _ = std::fs::remove_file(&current);
                found = true;
                break;
            }
            Some(2) => {
                let _ = std::fs::remove_file(&current);
                return 2;
            }
            Some(EXIT_RESTART) => {
                found = true;
                restarts.push("a hang or the memory cap (saved by the worker)".into());
            }
            _ => {
                found = true;
                let tail = tail.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let last = tail
                    .iter()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .cloned()
                    .unwrap_or_default();
                let reason = format!("the worker died ({status}): {last}");
                match std::fs::read(&current) {
                    Ok(input) => {
                        let p = save_finding(findings, "crash", &input, &reason, &tail.join("\n"));
                        println!("FINDING crash: {reason}\n  input: {}", p.display());
                    }
                    Err(_) => println!("FINDING crash: {reason} (no input was saved)"),
                }
                restarts.push(reason);
            }
        }
        let _ = std::fs::remove_file(&current);
        quick = if began.elapsed() < Duration::from_secs(5) {
            quick + 1
        } else {
            0
        };
        if quick == 3 {
            println!("supervisor: three workers in a row stopped within seconds; giving up");
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "supervisor: {} s, {} execs in all ({:.0}/s), {} restart(s)",
        elapsed.round(),
        total_execs,
        total_execs as f64 / elapsed.max(1e-9),
        restarts.len()
    );
    for r in &restarts {
        println!("  restarted after: {r}");
    }
    let mut new: Vec<PathBuf> = std::fs::read_dir(findings)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    e.metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t >= started_at)
                })
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "bin"))
                .collect()
        })
        .unwrap_or_default();
    new.sort();
    if !new.is_empty() {
        println!("supervisor: findings saved by this run:");
        for p in &new {
            let reason = std::fs::read_to_string(p.with_extension("txt"))
                .ok()
                .and_then(|t| t.lines().next().map(str::to_string))
                .unwrap_or_default();
            println!("  {}: {reason}", p.display());
        }
    }
    let _ = std::io::stdout().flush();
    u8::from(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_counts_are_read_from_progress_and_summary_lines() {
        assert_eq!(
            execs_in("[     5s] execs 1234 (246/s) corpus 3"),
            Some(1234)
        );
        assert_eq!(execs_in("done: 99 execs in 3.0 s"), Some(99));
        assert_eq!(execs_in("FINDING panic"), None);
    }
}
