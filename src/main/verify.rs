//! `busbar verify TRACE --property NAME...`: ordering properties checked
//! over a recorded trace (`busbar::check`).

use std::path::Path;

use busbar::check::{Report, check_trace, parse_property};
use busbar::time::SimDuration;
use busbar::trace::export::Names;

use super::output::Stdout;
use super::{Failure, bad_input, open_trace};

/// Events shown per violation, and violations shown per property.
const SHOWN: usize = 5;

/// Exit 0 if every property holds, 1 if one is violated, 2 on bad input
/// (an unreadable trace or an unknown property).
pub fn verify_cmd(path: &Path, properties: &[String], json: bool) -> Result<u8, Failure> {
    let mut r = open_trace(path)?;
    let (header, footer) = (r.header().clone(), r.footer().clone());
    let checkers = properties
        .iter()
        .map(|p| parse_property(p, &header, &footer))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let reports =
        check_trace(&mut r, checkers).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let names = Names {
        agents: &footer.agents,
        channels: &footer.channels,
        kinds: &footer.kinds,
        routers: &footer.routers,
        env: header.env,
    };
    let mut out = Stdout::new();
    if json {
        let v: Vec<serde_json::Value> = reports.iter().map(|rep| to_json(rep, &names)).collect();
        let text = serde_json::to_string_pretty(&v).map_err(bad_input)?;
        writeln!(out, "{text}").map_err(bad_input)?;
    } else {
        for rep in &reports {
            text(&mut out, rep, &names).map_err(bad_input)?;
        }
    }
    out.finish().map_err(bad_input)?;
    Ok(if reports.iter().all(Report::holds) {
        0
    } else {
        1
    })
}

fn event_line(names: &Names<'_>, e: &busbar::check::Event) -> String {
    let row = names.row(e.seq, &e.record);
    format!(
        "seq {} at {}: {} msg {} {} -> {} on {} (sent at {})",
        e.seq,
        SimDuration(e.record.time_ns).decimal(),
        row.event,
        row.msg_id.map_or("-".to_string(), |m| m.to_string()),
        row.sender,
        row.recipient,
        row.channel,
        SimDuration(e.record.sent_ns).decimal(),
    )
}

fn text(out: &mut Stdout, rep: &Report, names: &Names<'_>) -> Result<(), String> {
    writeln!(out, "{rep}")?;
    for v in rep.violations.iter().take(SHOWN) {
        writeln!(out, "  {}", v.what)?;
        for e in v.events.iter().take(SHOWN) {
            writeln!(out, "    {}", event_line(names, e))?;
        }
    }
    if rep.total > SHOWN as u64 {
        writeln!(out, "  ... {} more violations", rep.total - SHOWN as u64)?;
    }
    Ok(())
}

fn to_json(rep: &Report, names: &Names<'_>) -> serde_json::Value {
    let violations: Vec<serde_json::Value> = rep
        .violations
        .iter()
        .map(|v| {
            let events: Vec<serde_json::Value> = v
                .events
                .iter()
                .map(|e| serde_json::to_value(names.row(e.seq, &e.record)).unwrap_or_default())
                .collect();
            serde_json::json!({ "what": v.what, "events": events })
        })
        .collect();
    serde_json::json!({
        "property": rep.property,
        "holds": rep.holds(),
        "checked": rep.checked,
        "total": rep.total,
        "violations": violations,
    })
}
