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

/// A trace checked: its reports, and the names its ids have.
pub struct Verified {
    pub reports: Vec<Report>,
    header: busbar::trace::Header,
    footer: busbar::trace::Footer,
}

impl Verified {
    fn names(&self) -> Names<'_> {
        Names {
            agents: &self.footer.agents,
            channels: &self.footer.channels,
            kinds: &self.footer.kinds,
            routers: &self.footer.routers,
            env: self.header.env,
        }
    }

    /// Every report as JSON (what `verify --json` prints).
    pub fn json(&self) -> serde_json::Value {
        let names = self.names();
        serde_json::Value::Array(self.reports.iter().map(|r| to_json(r, &names)).collect())
    }

    /// Every report as text (what `verify` prints).
    pub fn print(&self) -> Result<(), Failure> {
        let names = self.names();
        let mut out = Stdout::new();
        for rep in &self.reports {
            text(&mut out, rep, &names).map_err(bad_input)?;
        }
        out.finish().map_err(bad_input)
    }

    /// Whether every property holds.
    pub fn holds(&self) -> bool {
        self.reports.iter().all(Report::holds)
    }
}

/// Checks `properties` over the trace at `path` (streaming it once).
pub fn verify_file(path: &Path, properties: &[String]) -> Result<Verified, Failure> {
    let mut r = open_trace(path)?;
    let (header, footer) = (r.header().clone(), r.footer().clone());
    let checkers = properties
        .iter()
        .map(|p| parse_property(p, &header, &footer))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    let reports =
        check_trace(&mut r, checkers).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    Ok(Verified {
        reports,
        header,
        footer,
    })
}

/// Exit 0 if every property holds, 1 if one is violated, 2 on bad input
/// (an unreadable trace or an unknown property).
pub fn verify_cmd(path: &Path, properties: &[String], json: bool) -> Result<u8, Failure> {
    let v = verify_file(path, properties)?;
    if json {
        let mut out = Stdout::new();
        let text = serde_json::to_string_pretty(&v.json()).map_err(bad_input)?;
        writeln!(out, "{text}").map_err(bad_input)?;
        out.finish().map_err(bad_input)?;
    } else {
        v.print()?;
    }
    Ok(if v.holds() { 0 } else { 1 })
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
