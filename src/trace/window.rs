//! Which records a visual export shows: a window of virtual time
//! (`--from`/`--to`) and selectors (`--filter`), shared by the Perfetto and
//! Mermaid exports, and the error type of both.
//!
//! A record is selected when its time is in `[from, to)` and it passes the
//! selectors. Selectors of one sort are alternatives, selectors of
//! different sorts must all hold: `agent=a,agent=b,kind=drop` selects the
//! drops that concern `a` or `b`.
//!
//! - `agent=NAME`: the agent sent the message or is the record's node (the
//!   recipient of a delivery, the agent of a timer).
//! - `channel=FILTER`: the record's channel matches the MQTT topic filter
//!   (`+` one level, `#` the rest; a plain name matches itself). Records
//!   without a channel (timers, faults) do not match.
//! - `kind=EVENT`: the event's name (`publish`, `deliver`, `drop`, ...,
//!   as in the CSV `event` column).
//!
//! A selector that matches nothing in the trace (an unknown agent, a filter
//! that matches no channel, an unknown event) is an error, so a typo does
//! not silently give an empty export.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::time::SimDuration;
use std::io::{Read, Seek};

use crate::trace::export::Names;
use crate::trace::{EventKind, Footer, NODE_ROUTER_BASE, NONE, Record, TraceError, TraceReader};

/// One `--filter` selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `agent=NAME`.
    Agent(String),
    /// `channel=FILTER` (an MQTT topic filter).
    Channel(String),
    /// `kind=EVENT`.
    Event(EventKind),
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(s: &str) -> Result<Selector, String> {
        let (key, value) = s.split_once('=').ok_or_else(|| {
            format!("{s:?}: a selector is agent=NAME, channel=NAME or kind=EVENT")
        })?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{s:?}: the value is empty"));
        }
        match key.trim() {
            "agent" => Ok(Selector::Agent(value.to_string())),
            "channel" => {
                check_filter(value).map_err(|e| format!("{s:?}: {e}"))?;
                Ok(Selector::Channel(value.to_string()))
            }
            "kind" | "event" => EventKind::ALL
                .into_iter()
                .find(|e| e.name() == value)
                .map(Selector::Event)
                .ok_or_else(|| {
                    let names: Vec<&str> = EventKind::ALL.iter().map(|e| e.name()).collect();
                    format!("{s:?}: unknown event; one of {}", names.join(", "))
                }),
            other => Err(format!(
                "{s:?}: unknown selector {other:?}; use agent=NAME, channel=NAME or kind=EVENT"
            )),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Agent(a) => write!(f, "agent={a}"),
            Selector::Channel(c) => write!(f, "channel={c}"),
            Selector::Event(e) => write!(f, "kind={}", e.name()),
        }
    }
}

/// MQTT topic filter rules (as `crate::broker::topic`, which sits above
/// `trace`): `+` is one whole level, `#` the whole rest and last.
fn check_filter(filter: &str) -> Result<(), &'static str> {
    let n = filter.split('/').count();
    for (i, level) in filter.split('/').enumerate() {
        let wild = level.contains(['+', '#']);
        if wild && !(level == "+" || (level == "#" && i + 1 == n)) {
            return Err("`+` and `#` must be whole levels, `#` the last one");
        }
    }
    Ok(())
}

/// Whether a channel name matches an MQTT topic filter (a `$` topic is not
/// matched by a leading wildcard).
fn filter_matches(filter: &str, channel: &str) -> bool {
    if channel.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let (mut f, mut t) = (filter.split('/'), channel.split('/'));
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) | (None, None) => return true,
            (Some(a), Some(b)) if a == "+" || a == b => {}
            _ => return false,
        }
    }
}

/// Parses a comma-separated `--filter` value (`agent=a,kind=drop`).
pub fn parse_filter(s: &str) -> Result<Vec<Selector>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// What to show: a window of virtual time and selectors.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Start of the window (inclusive).
    pub from: SimDuration,
    /// End of the window (exclusive); `None`: the end of the trace.
    pub to: Option<SimDuration>,
    /// Selectors (empty: every record).
    pub selectors: Vec<Selector>,
}

/// A [`Selection`] resolved against a trace's names: which agents and
/// channels pass, by id.
#[derive(Clone, Debug)]
pub struct Matcher {
    from_ns: u64,
    /// `None`: to the end.
    to_ns: Option<u64>,
    /// `None`: no agent selector.
    agents: Option<Vec<bool>>,
    /// `None`: no channel selector.
    channels: Option<Vec<bool>>,
    /// `None`: no event selector.
    events: Option<[bool; 16]>,
}

/// What can go wrong in a visual export.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VizError {
    /// Reading the trace or writing the output failed.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The selection does not fit the trace (an unknown agent, an empty
    /// window).
    #[error("{0}")]
    Selection(String),
    /// The Mermaid diagram would be too large to render.
    #[error(
        "the diagram would have {edges} arrows and notes and {chars} characters; Mermaid renders at most {max_edges} and {max_chars} by default; choose a smaller window with --from/--to or --filter, or cut it with --truncate"
    )]
    TooLarge {
        /// Arrows and notes the window would have.
        edges: u64,
        /// Characters the diagram would have.
        chars: u64,
        /// The edge limit.
        max_edges: u64,
        /// The character limit.
        max_chars: u64,
    },
}

impl From<std::io::Error> for VizError {
    fn from(e: std::io::Error) -> VizError {
        VizError::Trace(TraceError::Io(e))
    }
}

impl Selection {
    /// Resolves the selection against a trace's names.
    pub fn matcher(&self, names: &Names<'_>) -> Result<Matcher, VizError> {
        let to_ns = self.to.map(|t| t.0);
        if let Some(to) = self.to
            && to <= self.from
        {
            return Err(VizError::Selection(format!(
                "the window is empty: --to {to} is not after --from {}",
                self.from
            )));
        }
        let mut agents: Option<Vec<bool>> = None;
        let mut channels: Option<Vec<bool>> = None;
        let mut events: Option<[bool; 16]> = None;
        for s in &self.selectors {
            match s {
                Selector::Agent(a) => {
                    let set = agents.get_or_insert_with(|| vec![false; names.agents.len()]);
                    let mut found = false;
                    for (i, n) in names.agents.iter().enumerate() {
                        if n == a {
                            set[i] = true;
                            found = true;
                        }
                    }
                    if !found {
                        return Err(VizError::Selection(format!(
                            "--filter {s}: the trace has no agent named {a:?}"
                        )));
                    }
                }
                Selector::Channel(c) => {
                    let set = channels.get_or_insert_with(|| vec![false; names.channels.len()]);
                    let mut found = false;
                    for (i, n) in names.channels.iter().enumerate() {
                        if filter_matches(c, n) {
                            set[i] = true;
                            found = true;
                        }
                    }
                    if !found {
                        return Err(VizError::Selection(format!(
                            "--filter {s}: no channel of the trace matches {c:?}"
                        )));
                    }
                }
                Selector::Event(e) => {
                    events.get_or_insert([false; 16])[*e as usize] = true;
                }
            }
        }
        Ok(Matcher {
            from_ns: self.from.0,
            to_ns,
            agents,
            channels,
            events,
        })
    }
}

impl Matcher {
    /// Whether the record is in the window and passes the selectors.
    pub fn selects(&self, r: &Record) -> bool {
        if r.time_ns < self.from_ns || self.past(r.time_ns) {
            return false;
        }
        if let Some(ev) = &self.events
            && !ev[r.event as usize]
        {
            return false;
        }
        if let Some(ch) = &self.channels
            && (r.channel == NONE || !ch.get(r.channel as usize).copied().unwrap_or(false))
        {
            return false;
        }
        if let Some(ag) = &self.agents {
            let is =
                |id: u32| id < NODE_ROUTER_BASE && ag.get(id as usize).copied().unwrap_or(false);
            if !(is(r.sender) || is(r.node)) {
                return false;
            }
        }
        true
    }

    /// Whether the time is past the window (nothing later is selected).
    pub fn past(&self, time_ns: u64) -> bool {
        self.to_ns.is_some_and(|to| time_ns >= to)
    }
}

/// The names of a trace's footer (the reader's footer is cloned first, as
/// reading records borrows the reader).
pub(crate) fn footer_names(footer: &Footer, env: u32) -> Names<'_> {
    Names {
        agents: &footer.agents,
        channels: &footer.channels,
        kinds: &footer.kinds,
        routers: &footer.routers,
        env,
    }
}

/// Feeds a trace's records in order to `f` until it returns `false` (past
/// the window) or the records end.
pub(crate) fn stream<R: Read + Seek>(
    reader: &mut TraceReader<R>,
    mut f: impl FnMut(&Record) -> Result<bool, VizError>,
) -> Result<(), VizError> {
    let mut cursor = reader.cursor();
    while let Some(batch) = cursor.next_batch()? {
        for r in batch {
            if !f(r)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A record for the visual exports' tests: a drop is a loss, the message
/// was sent when the record happened, channel 0, kind 0.
#[cfg(test)]
pub(crate) fn test_record(t: u64, event: EventKind, msg: u64, sender: u32, node: u32) -> Record {
    Record {
        time_ns: t,
        event,
        kind: 0,
        detail: if event == EventKind::Drop {
            crate::trace::Reason::Loss as u16
        } else {
            0
        },
        channel: 0,
        msg,
        sender,
        node,
        sent_ns: t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::NODE_BROKER;
    use crate::trace::record::sample_record;

    fn names<'a>(agents: &'a [String], channels: &'a [String]) -> Names<'a> {
        Names {
            agents,
            channels,
            kinds: &[],
            routers: &[],
            env: 0,
        }
    }

    #[test]
    fn selectors_parse_and_refuse_nonsense() {
        assert_eq!(
            parse_filter("agent=a, channel=x/+,kind=drop").unwrap(),
            vec![
                Selector::Agent("a".into()),
                Selector::Channel("x/+".into()),
                Selector::Event(EventKind::Drop)
            ]
        );
        for bad in [
            "agent",
            "agent=",
            "colour=red",
            "kind=dropped",
            "channel=a/b#",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn window_and_selectors_select_what_they_say() {
        let agents = ["a".to_string(), "b".to_string(), "c".to_string()];
        let channels = ["env0/x/1".to_string(), "env0/y".to_string()];
        let n = names(&agents, &channels);
        let r = |t: u64, event, channel, sender, node| Record {
            time_ns: t,
            event,
            channel,
            sender,
            node,
            ..sample_record(1)
        };
        let sel = Selection {
            from: SimDuration(10),
            to: Some(SimDuration(20)),
            selectors: parse_filter("agent=b,channel=env0/x/#,kind=deliver,kind=drop").unwrap(),
        };
        let m = sel.matcher(&n).unwrap();
        let d = EventKind::Deliver;
        assert!(m.selects(&r(10, d, 0, 0, 1)));
        assert!(m.selects(&r(19, EventKind::Drop, 0, 1, NODE_BROKER)));
        assert!(!m.selects(&r(9, d, 0, 0, 1)), "before the window");
        assert!(!m.selects(&r(20, d, 0, 0, 1)), "the end is exclusive");
        assert!(!m.selects(&r(15, EventKind::Publish, 0, 1, 1)), "event");
        assert!(!m.selects(&r(15, d, 1, 0, 1)), "channel");
        assert!(!m.selects(&r(15, d, NONE, 0, 1)), "no channel");
        assert!(!m.selects(&r(15, d, 0, 0, 2)), "agent");
        assert!(m.past(20) && !m.past(19));
        let all = Selection::default().matcher(&n).unwrap();
        assert!(all.selects(&r(u64::MAX, EventKind::Timer, NONE, NONE, NONE)));
    }

    #[test]
    fn a_selector_that_matches_nothing_is_an_error() {
        let agents = ["a".to_string()];
        let channels = ["c".to_string()];
        let n = names(&agents, &channels);
        for f in ["agent=zz", "channel=d", "channel=x/#"] {
            let sel = Selection {
                selectors: parse_filter(f).unwrap(),
                ..Selection::default()
            };
            assert!(
                matches!(sel.matcher(&n), Err(VizError::Selection(_))),
                "{f}"
            );
        }
        let empty = Selection {
            from: SimDuration(5),
            to: Some(SimDuration(5)),
            selectors: vec![],
        };
        assert!(empty.matcher(&n).is_err());
    }
}
