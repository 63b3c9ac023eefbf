//! Trace export as a Mermaid `sequenceDiagram` of a window of the run.
//!
//! Participants: the agents that publish in the window (in id order), the
//! `Broker`, the routers the window mentions, then the other agents; each
//! is declared with an alias (`participant A3 as mg1.bat`), and its label
//! escaped, so any agent name is valid Mermaid.
//!
//! Statements, in trace order:
//!
//! - `publish`: `Sender->>Broker: t=1.204ms msg 12 channel (kind)`;
//! - `deliver`: `Broker->>Recipient: t=... msg 12 channel +latency`
//!   (`#` would start a Mermaid comment, so it is always escaped);
//! - `drop`: a crossed arrow with the reason, `Broker-xRecipient` for a
//!   copy lost on its way to an agent or router, `Sender-xBroker` for one
//!   lost at the broker (`drop: loss`, `drop: no_subscriber`);
//! - `retransmit`: a dotted arrow (`-->>`) towards its destination;
//! - `late`, `expire`, `dead_letter` and `fault`: `Note over` the node
//!   (the broker for a fault without one).
//!
//! Other events (route, forward, ack, timers, sessions, ...) are left out:
//! `busbar export --format perfetto` shows everything.
//!
//! Mermaid refuses diagrams past its default limits (`maxEdges` 500,
//! `maxTextSize` 50 000 characters). A window that would pass either is an
//! error ([`VizError::TooLarge`], giving the counts), or, with
//! [`MermaidOptions::truncate`], is cut before the limit and ends with a
//! note that says so.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{Read, Seek, Write};

use crate::trace::export::Names;
use crate::trace::window::{Matcher, Selection, VizError, footer_names, stream};
use crate::trace::{EventKind, NODE_BROADCAST, NODE_BROKER, NODE_ROUTER_BASE, Record, TraceReader};

/// Mermaid's default `maxEdges`.
pub const MAX_EDGES: u64 = 500;
/// Mermaid's default `maxTextSize`, characters.
pub const MAX_CHARS: u64 = 50_000;
/// Room kept for the closing note of a truncated diagram.
const NOTE_ROOM: u64 = 300;

/// How to draw the diagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MermaidOptions {
    /// Cut the diagram at the limits instead of refusing it.
    pub truncate: bool,
    /// Arrows and notes at most.
    pub max_edges: u64,
    /// Characters at most.
    pub max_chars: u64,
}

impl Default for MermaidOptions {
    fn default() -> Self {
        MermaidOptions {
            truncate: false,
            max_edges: MAX_EDGES,
            max_chars: MAX_CHARS,
        }
    }
}

/// What a Mermaid export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MermaidStats {
    /// Arrows and notes written (the closing note of a cut diagram
    /// included).
    pub edges: u64,
    /// Arrows and notes the whole window has.
    pub window_edges: u64,
    /// Whether the diagram was cut.
    pub truncated: bool,
}

/// A participant, in declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Broker,
    Router(u32),
    Agent(u32),
}

impl Part {
    fn id(self) -> String {
        match self {
            Part::Agent(a) => format!("A{a}"),
            Part::Broker => "Broker".to_string(),
            Part::Router(r) => format!("R{r}"),
        }
    }
}

/// One statement, before participants are known.
struct Line {
    parts: [Option<Part>; 2],
    text: String,
}

/// Escapes text for a Mermaid label or message: anything outside a plain
/// set becomes an entity code (`#35;`), which Mermaid decodes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || " _.-/+()=*@,[]".contains(c) {
            out.push(c);
        } else {
            let _ = write!(out, "#{};", c as u32);
        }
    }
    out
}

/// `t=17.515289ms`: virtual time in milliseconds, exact, without trailing
/// zeros.
fn ms(ns: u64) -> String {
    let frac = format!("{:06}", ns % 1_000_000);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{}.{frac}ms", ns / 1_000_000)
    }
}

struct Builder<'n> {
    names: &'n Names<'n>,
    matcher: Matcher,
    options: MermaidOptions,
    /// Statements kept.
    kept: Vec<Line>,
    kept_parts: BTreeSet<Part>,
    kept_chars: u64,
    /// Agents that publish in the kept statements (declared first).
    publishers: BTreeSet<Part>,
    all_parts: BTreeSet<Part>,
    total_edges: u64,
    total_chars: u64,
    cut: bool,
}

const HEADER: &str = "sequenceDiagram\n";

impl<'n> Builder<'n> {
    fn new(names: &'n Names<'n>, matcher: Matcher, options: MermaidOptions) -> Self {
        let decl = Builder::declaration(names, Part::Broker).len() as u64;
        Builder {
            names,
            matcher,
            options,
            kept: Vec::new(),
            kept_parts: BTreeSet::from([Part::Broker]),
            kept_chars: HEADER.len() as u64 + decl,
            publishers: BTreeSet::new(),
            all_parts: BTreeSet::from([Part::Broker]),
            total_edges: 0,
            total_chars: HEADER.len() as u64 + decl,
            cut: false,
        }
    }

    fn declaration(names: &Names<'_>, p: Part) -> String {
        let label = match p {
            Part::Agent(a) => names.agents.get(a as usize).map_or("?", String::as_str),
            Part::Broker => "Broker",
            Part::Router(r) => names.routers.get(r as usize).map_or("?", String::as_str),
        };
        if p == Part::Broker {
            "participant Broker\n".to_string()
        } else {
            format!("participant {} as {}\n", p.id(), escape(label))
        }
    }

    /// The participant of a node id; `None` for none.
    fn part(&self, node: u32) -> Option<Part> {
        match node {
            NODE_BROKER | NODE_BROADCAST => Some(Part::Broker),
            r if r >= NODE_ROUTER_BASE => {
                let r = r - NODE_ROUTER_BASE;
                ((r as usize) < self.names.routers.len()).then_some(Part::Router(r))
            }
            a if (a as usize) < self.names.agents.len() => Some(Part::Agent(a)),
            _ => None,
        }
    }

    /// The statement for a record, if it has one.
    fn line(&mut self, r: &Record) -> Option<Line> {
        let row = self.names.row(0, r);
        let t = ms(r.time_ns);
        let id = r.msg;
        let channel = escape(row.channel);
        let detail = escape(&row.detail);
        let broker = Some(Part::Broker);
        let (a, arrow, b, text) = match r.event {
            EventKind::Publish => {
                let from = self.part(r.sender)?;
                let kind = escape(&row.kind);
                let reply = if detail.is_empty() {
                    String::new()
                } else {
                    format!(" {detail}")
                };
                (
                    Some(from),
                    "->>",
                    broker,
                    format!("t={t} msg {id} {channel} ({kind}){reply}"),
                )
            }
            EventKind::Deliver => {
                let to = self.part(r.node)?;
                let age = ms(r.time_ns.saturating_sub(r.sent_ns));
                (
                    broker,
                    "->>",
                    Some(to),
                    format!("t={t} msg {id} {channel} +{age}"),
                )
            }
            EventKind::Drop | EventKind::Retransmit => {
                let at = self.part(r.node)?;
                let (from, to) = if at == Part::Broker {
                    (self.part(r.sender).unwrap_or(Part::Broker), at)
                } else {
                    (Part::Broker, at)
                };
                let (arrow, what) = if r.event == EventKind::Drop {
                    ("-x", "drop: ")
                } else {
                    ("-->>", "retransmit ")
                };
                (
                    Some(from),
                    arrow,
                    Some(to),
                    format!("t={t} msg {id} {what}{detail}"),
                )
            }
            EventKind::Late | EventKind::Expire | EventKind::DeadLetter => {
                let at = self.part(r.node)?;
                let sep = if detail.is_empty() { "" } else { ": " };
                (
                    Some(at),
                    "",
                    None,
                    format!("{} msg {id} t={t}{sep}{detail}", r.event.name()),
                )
            }
            EventKind::Fault => {
                let at = self.part(r.node).unwrap_or(Part::Broker);
                (Some(at), "", None, format!("fault {detail} t={t}"))
            }
            _ => return None,
        };
        let a = a?;
        let text = if let Some(b) = b {
            format!("{}{arrow}{}: {text}\n", a.id(), b.id())
        } else {
            format!("Note over {}: {text}\n", a.id())
        };
        Some(Line {
            parts: [Some(a), b],
            text,
        })
    }

    /// The characters a statement adds, with the declarations of the
    /// participants it introduces into `set`.
    fn cost(&self, line: &Line, set: &BTreeSet<Part>) -> u64 {
        let mut c = line.text.len() as u64;
        for p in line.parts.iter().flatten() {
            if !set.contains(p) {
                c += Builder::declaration(self.names, *p).len() as u64;
            }
        }
        c
    }

    fn record(&mut self, r: &Record) -> bool {
        if self.matcher.past(r.time_ns) {
            return false;
        }
        if !self.matcher.selects(r) {
            return true;
        }
        let Some(line) = self.line(r) else {
            return true;
        };
        self.total_chars += self.cost(&line, &self.all_parts);
        self.total_edges += 1;
        self.all_parts.extend(line.parts.iter().flatten());
        if self.cut {
            return true;
        }
        let cost = self.cost(&line, &self.kept_parts);
        let (room_edges, room_chars) = if self.options.truncate {
            (
                self.options.max_edges.saturating_sub(1),
                self.options.max_chars.saturating_sub(NOTE_ROOM),
            )
        } else {
            (self.options.max_edges, self.options.max_chars)
        };
        if self.kept.len() as u64 + 1 > room_edges || self.kept_chars + cost > room_chars {
            self.cut = true;
            return true;
        }
        self.kept_chars += cost;
        self.kept_parts.extend(line.parts.iter().flatten());
        if r.event == EventKind::Publish
            && let Some(p) = line.parts[0]
        {
            self.publishers.insert(p);
        }
        self.kept.push(line);
        true
    }

    fn finish<W: Write>(self, mut out: W) -> Result<MermaidStats, VizError> {
        if self.cut && !self.options.truncate {
            return Err(VizError::TooLarge {
                edges: self.total_edges,
                chars: self.total_chars,
                max_edges: self.options.max_edges,
                max_chars: self.options.max_chars,
            });
        }
        let mut s = String::from(HEADER);
        // Publishers, the broker, routers, then the other agents.
        let order = self.publishers.iter().chain(
            self.kept_parts
                .iter()
                .filter(|p| !self.publishers.contains(p)),
        );
        for p in order {
            s.push_str(&Builder::declaration(self.names, *p));
        }
        for l in &self.kept {
            s.push_str(&l.text);
        }
        let mut edges = self.kept.len() as u64;
        if self.cut {
            let _ = writeln!(
                s,
                "Note over Broker: truncated: {} of {} arrows and notes in the window shown (Mermaid limits: {} edges, {} characters), narrow it with --from, --to or --filter",
                self.kept.len(),
                self.total_edges,
                self.options.max_edges,
                self.options.max_chars
            );
            edges += 1;
        }
        out.write_all(s.as_bytes())?;
        out.flush()?;
        Ok(MermaidStats {
            edges,
            window_edges: self.total_edges,
            truncated: self.cut,
        })
    }
}

/// Writes the selected records of a trace as a Mermaid sequence diagram.
/// Nothing is written if the diagram is refused as too large.
pub fn mermaid<R: Read + Seek, W: Write>(
    reader: &mut TraceReader<R>,
    selection: &Selection,
    options: MermaidOptions,
    out: W,
) -> Result<MermaidStats, VizError> {
    let footer = reader.footer().clone();
    let names = footer_names(&footer, reader.header().env);
    let mut b = Builder::new(&names, selection.matcher(&names)?, options);
    stream(reader, |r| Ok(b.record(r)))?;
    b.finish(out)
}

/// Writes records (in trace order) as a Mermaid sequence diagram.
pub fn mermaid_records<'r, W: Write>(
    records: impl IntoIterator<Item = &'r Record>,
    names: &Names<'_>,
    selection: &Selection,
    options: MermaidOptions,
    out: W,
) -> Result<MermaidStats, VizError> {
    let names = names.clone();
    let mut b = Builder::new(&names, selection.matcher(&names)?, options);
    for r in records {
        if !b.record(r) {
            break;
        }
    }
    b.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::NONE;

    use crate::trace::window::test_record as rec;

    fn draw(records: &[Record], options: MermaidOptions) -> Result<String, VizError> {
        let agents = ["mg1.bat".to_string(), "a;b\"c#d%e:f→g -->>x".to_string()];
        let channels = ["env0/x".to_string()];
        let kinds = [(0u8, "info".to_string())];
        let names = Names {
            agents: &agents,
            channels: &channels,
            kinds: &kinds,
            routers: &[],
            env: 0,
        };
        let mut out = Vec::new();
        mermaid_records(records, &names, &Selection::default(), options, &mut out)?;
        Ok(String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn names_are_aliased_and_escaped() {
        let text = draw(
            &[
                rec(0, EventKind::Publish, 0, 1, NODE_BROADCAST),
                Record {
                    sent_ns: 0,
                    ..rec(1_204_000, EventKind::Deliver, 0, 1, 0)
                },
                rec(2_000_000, EventKind::Drop, 0, 1, 1),
                rec(3_000_000, EventKind::Late, 0, 1, 0),
                rec(4_000_000, EventKind::Timer, 0, 0, 0),
            ],
            MermaidOptions::default(),
        )
        .unwrap();
        assert_eq!(
            text,
            "sequenceDiagram\n\
             participant A1 as a#59;b#34;c#35;d#37;e#58;f#8594;g --#62;#62;x\n\
             participant Broker\n\
             participant A0 as mg1.bat\n\
             A1->>Broker: t=0ms msg 0 env0/x (info)\n\
             Broker->>A0: t=1.204ms msg 0 env0/x +1.204ms\n\
             Broker-xA1: t=2ms msg 0 drop: loss\n\
             Note over A0: late msg 0 t=3ms\n"
        );
    }

    #[test]
    fn limits_refuse_or_cut() {
        let many: Vec<Record> = (0..10)
            .map(|i| rec(i, EventKind::Publish, i, 0, NODE_BROADCAST))
            .collect();
        let small = MermaidOptions {
            max_edges: 5,
            ..MermaidOptions::default()
        };
        match draw(&many, small) {
            Err(VizError::TooLarge { edges: 10, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(draw(&many[..5], small).is_ok(), "exactly at the limit");
        let cut = draw(
            &many,
            MermaidOptions {
                truncate: true,
                ..small
            },
        )
        .unwrap();
        assert_eq!(cut.lines().filter(|l| l.contains("->>")).count(), 4);
        assert!(cut.ends_with("--filter\n") && cut.contains("truncated: 4 of 10"));
        let chars = MermaidOptions {
            max_chars: 200,
            ..MermaidOptions::default()
        };
        assert!(matches!(draw(&many, chars), Err(VizError::TooLarge { .. })));
        let fault = Record {
            detail: crate::trace::FaultKind::Crash.detail(true),
            ..rec(5, EventKind::Fault, 0, NONE, NONE)
        };
        assert!(
            draw(&[fault], MermaidOptions::default())
                .unwrap()
                .ends_with("Note over Broker: fault crash start t=0.000005ms\n")
        );
    }

    #[test]
    fn times_are_exact_milliseconds() {
        assert_eq!(ms(0), "0ms");
        assert_eq!(ms(1_204_000), "1.204ms");
        assert_eq!(ms(17_515_289), "17.515289ms");
        assert_eq!(ms(2_000_000_001), "2000.000001ms");
    }
}
