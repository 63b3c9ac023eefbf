//! `busbar show TRACE --msg ID`: one message's life, as a table or JSON.

use std::path::Path;

use busbar::time::SimDuration;
use busbar::trace::life::{MessageLife, message_lives};

use super::output::Stdout;
use super::{Failure, bad_input, open_trace};

/// Exit 0 if every id was found, 1 if one was not, 2 on bad input.
pub fn show_cmd(path: &Path, ids: &[u64], json: bool) -> Result<u8, Failure> {
    let mut r = open_trace(path)?;
    let lives =
        message_lives(&mut r, ids).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let mut out = Stdout::new();
    if json {
        let text = serde_json::to_string_pretty(&lives).map_err(bad_input)?;
        writeln!(out, "{text}").map_err(bad_input)?;
    } else {
        for (i, life) in lives.iter().enumerate() {
            if i > 0 {
                writeln!(out).map_err(bad_input)?;
            }
            table(&mut out, life).map_err(bad_input)?;
        }
    }
    out.finish().map_err(bad_input)?;
    let missing: Vec<String> = lives
        .iter()
        .filter(|l| !l.found)
        .map(|l| l.msg.to_string())
        .collect();
    if !missing.is_empty() {
        super::output::to_stderr(format_args!(
            "{}: no message {} in the trace\n",
            path.display(),
            missing.join(", ")
        ));
        return Ok(1);
    }
    Ok(0)
}

fn table(out: &mut Stdout, life: &MessageLife) -> Result<(), String> {
    if !life.found {
        return writeln!(out, "message {}: not in the trace", life.msg);
    }
    let step = life
        .step
        .map_or(String::new(), |k| format!(", grid step {k}"));
    writeln!(
        out,
        "message {}: {} from {} on {} to {}, sent at {}{step}",
        life.msg,
        if life.kind.is_empty() {
            "?"
        } else {
            &life.kind
        },
        life.sender,
        life.channel,
        life.recipient,
        SimDuration(life.sent_ns).decimal(),
    )?;
    if let Some(p) = &life.payload {
        writeln!(out, "payload: {}", busbar::trace::export::payload_text(p))?;
    }
    writeln!(
        out,
        "{:>8}  {:>14}  {:>12}  {:<11}  {:<16}  detail",
        "seq", "time", "age", "event", "at"
    )?;
    for e in &life.events {
        let line = format!(
            "{:>8}  {:>14}  {:>12}  {:<11}  {:<16}  {}",
            e.seq,
            SimDuration(e.time_ns).decimal().to_string(),
            SimDuration(e.age_ns).decimal().to_string(),
            e.event,
            e.node,
            e.detail
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    if life.events_omitted > 0 {
        writeln!(out, "... {} more records not shown", life.events_omitted)?;
    }
    let s = &life.summary;
    let mut line = format!(
        "summary: delivered {}, dropped {}, in flight {}",
        s.delivered, s.dropped, s.in_flight
    );
    for (n, what) in [
        (s.duplicated, "duplicated"),
        (s.retransmitted, "retransmitted"),
        (s.expired, "expired"),
        (s.dead_lettered, "dead-lettered"),
        (s.acks_dropped, "acks dropped"),
        (s.late, "late"),
    ] {
        if n > 0 {
            line.push_str(&format!(", {what} {n}"));
        }
    }
    writeln!(out, "{line}")
}
