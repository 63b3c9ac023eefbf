//! What runs around each input: a global allocator that counts the live
//! heap and holds a thread that would take it past a cap, a panic hook that
//! keeps the panic's message and location (and a backtrace on request), a
//! watchdog thread that saves the input at hand when it hangs or runs out
//! of memory (neither can be caught in-process), and the findings
//! directory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::rng::fnv;
use crate::targets::{Outcome, Target};

// ---------------------------------------------------------------------------
// The allocator
// ---------------------------------------------------------------------------

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Live-heap cap in bytes; 0 = none.
static CAP: AtomicUsize = AtomicUsize::new(0);
/// The size of an allocation held at the cap (0 = none).
static OOM_REQUEST: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The watchdog's own allocations are never held.
    static EXEMPT: Cell<bool> = const { Cell::new(false) };
}

/// `System`, counting live bytes. An allocation that would take the live
/// heap past the cap does not fail (that would abort the process without
/// a word): its thread sleeps, and the watchdog saves the input and exits.
pub struct CappedAlloc;

fn admit(size: usize) {
    let cap = CAP.load(Relaxed);
    if cap != 0
        && LIVE.load(Relaxed).saturating_add(size) > cap
        && !EXEMPT.try_with(Cell::get).unwrap_or(true)
    {
        OOM_REQUEST.store(size.max(1), Relaxed);
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn grew(size: usize) {
    let now = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every method forwards to `System` with the same arguments; the
// bookkeeping around it only touches atomics and a const thread-local.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        admit(layout.size());
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        admit(layout.size());
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            admit(new_size - layout.size());
        }
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        p
    }
}

pub fn set_cap(bytes: usize) {
    CAP.store(bytes, Relaxed);
}

pub fn live_bytes() -> usize {
    LIVE.load(Relaxed)
}

/// Resident set size from /proc/self/statm (0 where there is none).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

// ---------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------

/// A caught panic.
#[derive(Clone, Debug)]
pub struct Panic {
    /// `file:line:col`.
    pub location: String,
    pub message: String,
    pub thread: String,
    pub backtrace: Option<String>,
}

impl Panic {
    pub fn line(&self) -> String {
        let thread = if self.thread == "main" {
            String::new()
        } else {
            format!(" (thread {})", self.thread)
        };
        format!(
            "panicked at {}: {}{thread}",
            self.location,
            self.message.lines().next().unwrap_or("")
        )
    }
}

static PANIC: Mutex<Option<Panic>> = Mutex::new(None);
static WANT_BACKTRACE: AtomicBool = AtomicBool::new(false);

/// Panics are kept (the first since the last `take_panic`), not printed.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let p = info.payload();
        let message = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(a non-string payload)".into());
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let backtrace = WANT_BACKTRACE
            .load(Relaxed)
            .then(|| trim_backtrace(&Backtrace::force_capture().to_string()));
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let mut g = PANIC.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(Panic {
                location,
                message,
                thread,
                backtrace,
            });
        }
    }));
}

/// The frames between the panic machinery and the harness: from the first
/// frame after the run of `*panicking*` frames, up to the harness's
/// `run_one`.
fn trim_backtrace(bt: &str) -> String {
    let lines: Vec<&str> = bt.lines().collect();
    let is_frame = |l: &str| {
        l.trim_start()
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let machinery = |l: &str| {
        [
            "panicking",
            "rust_begin_unwind",
            "__rust_end_short_backtrace",
        ]
        .iter()
        .any(|m| l.contains(m))
    };
    let frames: Vec<usize> = (0..lines.len()).filter(|&i| is_frame(lines[i])).collect();
    let Some(first) = frames.iter().position(|&i| machinery(lines[i])) else {
        return bt.to_string();
    };
    let Some(start) = frames[first..].iter().find(|&&i| !machinery(lines[i])) else {
        return bt.to_string();
    };
    // Frames from here to the harness, without those inside the standard
    // library (iterator adapters and the like).
    let mut out = Vec::new();
    let mut i = *start;
    while i < lines.len() && !lines[i].contains("run_one") {
        let next = (i + 1..lines.len())
            .find(|&j| is_frame(lines[j]))
            .unwrap_or(lines.len());
        if !lines[i + 1..next].iter().any(|l| l.contains("/rustc/")) {
            out.extend_from_slice(&lines[i..next]);
        }
        i = next;
    }
    out.join("\n")
}

pub fn take_panic_info() -> Option<Panic> {
    PANIC.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The last panic as one line.
pub fn take_panic() -> Option<String> {
    take_panic_info().map(|p| p.line())
}

// ---------------------------------------------------------------------------
// One input
// ---------------------------------------------------------------------------

/// What one input did.
#[derive(Clone, Debug)]
pub enum Verdict {
    Pass(crate::targets::Pass),
    Finding {
        /// `panic`, `invariant` (the harness's own checks); `slow`, `mem`,
        /// `hang` and `oom` are decided around it.
        kind: &'static str,
        /// Findings with the same kind and key are the same bug.
        key: String,
        /// One line.
        reason: String,
        /// A backtrace or more text.
        detail: String,
    },
}

pub struct Exec {
    pub verdict: Verdict,
    pub time: Duration,
    /// Peak live heap above what was live before it, bytes.
    pub mem: usize,
}

static CURRENT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// In a worker: each input is written here before it runs, so that the
/// supervisor can save it if the process dies.
static MIRROR: Mutex<Option<std::fs::File>> = Mutex::new(None);

pub fn mirror_inputs_to(path: &Path) {
    match std::fs::File::create(path) {
        Ok(f) => *MIRROR.lock().unwrap_or_else(|e| e.into_inner()) = Some(f),
        Err(e) => eprintln!("cannot mirror inputs to {}: {e}", path.display()),
    }
}

fn mirror(input: &[u8]) {
    use std::io::{Seek, Write};
    if let Some(f) = MIRROR.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = f
            .set_len(0)
            .and_then(|_| f.rewind())
            .and_then(|_| f.write_all(input));
    }
}
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// Inputs run so far (for the watchdog's last words).
static EXECS: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

/// Runs one input under `catch_unwind`, watched.
pub fn run_one(target: &Target, input: &[u8], backtrace: bool) -> Exec {
    {
        // Not held: the watchdog must be able to read it while we run.
        EXEMPT.with(|e| e.set(true));
        let mut c = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        c.clear();
        c.extend_from_slice(input);
        drop(c);
        mirror(input);
        EXEMPT.with(|e| e.set(false));
    }
    let _ = take_panic_info();
    WANT_BACKTRACE.store(backtrace, Relaxed);
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    STARTED_MS.store(now_ms(), Relaxed);
    EXECS.fetch_add(1, Relaxed);
    let t0 = Instant::now();
    let r = catch_unwind(AssertUnwindSafe(|| target.exec(input)));
    let time = t0.elapsed();
    STARTED_MS.store(0, Relaxed);
    let mem = PEAK.load(Relaxed).saturating_sub(base);
    WANT_BACKTRACE.store(false, Relaxed);
    let panic = take_panic_info();
    let verdict = match (r, panic) {
        (Err(_), p) | (Ok(_), p @ Some(_)) => {
            let p = p.unwrap_or(Panic {
                location: "?".into(),
                message: "a panic the hook did not see".into(),
                thread: "?".into(),
                backtrace: None,
            });
            Verdict::Finding {
                kind: "panic",
                key: p.location.clone(),
                reason: p.line(),
                detail: p.backtrace.clone().unwrap_or_default(),
            }
        }
        (Ok(Outcome::Invariant(m)), None) => Verdict::Finding {
            kind: "invariant",
            key: crate::targets::normalize(&m, 60),
            reason: m.lines().next().unwrap_or("").to_string(),
            detail: m,
        },
        (Ok(Outcome::Pass(p)), None) => Verdict::Pass(p),
    };
    Exec { verdict, time, mem }
}

// ---------------------------------------------------------------------------
// Findings and the watchdog
// ---------------------------------------------------------------------------

/// Saves `input` as `<dir>/<kind>-<hash>.bin` and the reason (and detail)
/// beside it as `.txt`; returns the input's path.
pub fn save_finding(dir: &Path, kind: &str, input: &[u8], reason: &str, detail: &str) -> PathBuf {
    let _ = std::fs::create_dir_all(dir);
    let stem = format!("{kind}-{:016x}", fnv(input));
    let bin = dir.join(format!("{stem}.bin"));
    if let Err(e) = std::fs::write(&bin, input) {
        eprintln!("cannot save {}: {e}", bin.display());
    }
    let mut txt = format!("{reason}\n");
    if !detail.is_empty() {
        txt.push_str(detail);
        txt.push('\n');
    }
    let _ = std::fs::write(dir.join(format!("{stem}.txt")), txt);
    bin
}

/// Starts the watchdog: an input running longer than `hang` or holding at
/// the memory cap is saved as a `hang` or `oom` finding, and the process
/// exits with status 1 (neither can be interrupted in-process).
pub fn spawn_watchdog(findings: PathBuf, hang: Duration, cap_mb: usize) {
    let _ = EPOCH.get_or_init(Instant::now);
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            EXEMPT.with(|e| e.set(true));
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let oom = OOM_REQUEST.load(Relaxed);
                let started = STARTED_MS.load(Relaxed);
                let (kind, reason) = if oom != 0 {
                    (
                        "oom",
                        format!(
                            "an allocation of {oom} bytes with {} MiB live would pass the {cap_mb} MiB cap",
                            LIVE.load(Relaxed) >> 20
                        ),
                    )
                } else if started != 0 && now_ms().saturating_sub(started) > hang.as_millis() as u64
                {
                    ("hang", format!("still running after {hang:?}"))
                } else {
                    continue;
                };
                let input = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let path = save_finding(&findings, kind, &input, &reason, "");
                println!("FINDING {kind}: {reason}\n  input: {}", path.display());
                println!(
                    "execs {} so far; stopping: a {kind} cannot be interrupted in-process",
                    EXECS.load(Relaxed)
                );
                std::process::exit(crate::supervisor::EXIT_RESTART);
            }
        });
    if let Err(e) = spawned {
        eprintln!("no watchdog ({e}): hangs and memory blow-ups will not be caught");
    }
}
