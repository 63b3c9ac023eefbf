//! Trace export: CSV (the documented column contract) and JSON Lines.
//!
//! CSV columns, in this order:
//! `seq,time_ns,event,msg_id,env,channel,sender,recipient,kind,sent_ns,detail`.
//! `recipient` is an agent name, `broker`, or `*` for a broadcast; `detail`
//! is the drop reason for `drop` events and empty otherwise. `kind` is the
//! name the trace's footer gives the record's kind code; a code it does not
//! name prints as `custom:{code - 64}` from code 64 on, else `kind:{code}`.
//! On a `late` row that names its deadline, `detail` reads
//! `deadline NAME LIMIT, late by X` (durations exact: LIMIT as
//! [`SimDuration`](crate::time::SimDuration) prints it, X as its
//! [`decimal`](crate::time::SimDuration::decimal) form), where X is
//! time − (sent + limit) ([`life::Lateness`](crate::trace::life::Lateness)).
//! JSON Lines rows have the same fields, plus `payload` on `publish` rows of
//! a trace that keeps payloads ([`payload_json`]), `step` (the grid step of the
//! record's message, [`life::grid_step`](crate::trace::life::grid_step);
//! `null` without a grid, and on rows that are not about a message:
//! [`life::is_message_record`](crate::trace::life::is_message_record)) and, on a named `late` row, `deadline`,
//! `limit_ns`, `period_ns` and `late_by_ns`.
//! For `timer` events `msg_id` is empty (JSON: `null`; a timer has no
//! message), `detail` holds the timer's tag as `tag=N`, `sender`/`recipient`
//! the agent, and `kind` is empty; `kind` is empty too for `session` events
//! and for the drops, duplicates and forwards of session control packets
//! and their acks (docs/broker_sessions.md).

use std::borrow::Cow;
use std::io::{Read, Seek, Write};

use serde::Serialize;

use crate::message::{MessageKind, Payload};

use crate::trace::{
    DETAIL_ACK, DETAIL_CONTROL, DETAIL_CONTROL_ACK, DETAIL_PUBACK, DETAIL_REDELIVER, DETAIL_REPLY,
    DeadCause, EXPIRED_ON_ARRIVAL, EXPIRED_REQUEST, EXPIRED_UNACKED, EventKind, FaultKind,
    KeptPayload, NODE_BROADCAST, NODE_BROKER, NODE_ROUTER_BASE, NONE, Reason, Record, SessionOp,
    SessionPhase, TraceError, TraceReader,
};

/// The CSV header, exactly as the contract gives it.
pub const CSV_COLUMNS: [&str; 11] = [
    "seq",
    "time_ns",
    "event",
    "msg_id",
    "env",
    "channel",
    "sender",
    "recipient",
    "kind",
    "sent_ns",
    "detail",
];

/// Turns ids in records into names.
#[derive(Clone, Debug)]
pub struct Names<'a> {
    /// Agent names by id.
    pub agents: &'a [String],
    /// Channel names by id.
    pub channels: &'a [String],
    /// Message kind names by code, as (code, name) pairs.
    pub kinds: &'a [(u8, String)],
    /// Router names by router index.
    pub routers: &'a [String],
    /// Environment index.
    pub env: u32,
}

/// One record with names resolved: a CSV row or a JSON object.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row<'a> {
    /// Position in the trace, from 0.
    pub seq: u64,
    /// Virtual time, ns.
    pub time_ns: u64,
    /// Event name.
    pub event: &'static str,
    /// Message id; `None` for timers (their tag is in `detail`).
    pub msg_id: Option<u64>,
    /// Environment index.
    pub env: u32,
    /// Channel name (empty for timers).
    pub channel: &'a str,
    /// Sender name.
    pub sender: &'a str,
    /// Recipient: agent name, `broker` or `*`.
    pub recipient: &'a str,
    /// Message kind (empty for timers).
    pub kind: Cow<'a, str>,
    /// Send time, ns.
    pub sent_ns: u64,
    /// Event-specific text: a drop's reason (`loss`; `loss (ack)` for a
    /// lost ack), a fault's kind and `start`/`end`, `ack`/`puback` for acks
    /// (and their duplicates and forwards), `attempt N` for a
    /// retransmission, a dead letter's cause, an expiry's `on_arrival` or
    /// `unacked`, a timer's `tag=N`; else empty.
    pub detail: Cow<'static, str>,
}

/// The detail text of a record (see [`Row::detail`]).
pub fn detail(r: &Record) -> Cow<'static, str> {
    let ack = |d: u16| match d & 0xff00 {
        DETAIL_ACK => Some("ack"),
        DETAIL_PUBACK => Some("puback"),
        DETAIL_CONTROL => Some("control"),
        DETAIL_CONTROL_ACK => Some("control_ack"),
        _ => None,
    };
    match r.event {
        EventKind::Drop => {
            let reason = Reason::from_code(r.detail & 0xff).map_or("?", Reason::name);
            match ack(r.detail) {
                Some(a) => Cow::Owned(format!("{reason} ({a})")),
                None if r.detail > 0xff => Cow::Borrowed("?"),
                None => Cow::Borrowed(reason),
            }
        }
        EventKind::Fault => {
            Cow::Borrowed(FaultKind::from_detail(r.detail).map_or("?", |(k, start)| k.label(start)))
        }
        EventKind::Duplicate | EventKind::Forward | EventKind::Ack => {
            Cow::Borrowed(ack(r.detail).unwrap_or(""))
        }
        EventKind::Session => {
            let op = SessionOp::from_code((r.detail & 0xff) as u8);
            let phase = SessionPhase::from_code((r.detail >> 8) as u8);
            match (op, phase) {
                (Some(op), Some(SessionPhase::Effect)) => Cow::Borrowed(op.name()),
                (Some(op), Some(p)) => Cow::Owned(format!("{}{}", op.name(), p.suffix())),
                _ => Cow::Borrowed("?"),
            }
        }
        EventKind::Retransmit if r.detail & DETAIL_REDELIVER != 0 => Cow::Owned(format!(
            "attempt {} (redeliver)",
            r.detail & !DETAIL_REDELIVER
        )),
        EventKind::Retransmit => Cow::Owned(format!("attempt {}", r.detail)),
        EventKind::DeadLetter => {
            Cow::Borrowed(DeadCause::from_code(r.detail).map_or("?", DeadCause::name))
        }
        EventKind::Publish if r.detail == DETAIL_REPLY => Cow::Borrowed("reply"),
        EventKind::Timer => Cow::Owned(format!("tag={}", r.msg)),
        EventKind::Expire => Cow::Borrowed(match r.detail {
            EXPIRED_ON_ARRIVAL => "on_arrival",
            EXPIRED_UNACKED => "unacked",
            EXPIRED_REQUEST => "request_timeout",
            _ => "?",
        }),
        _ => Cow::Borrowed(""),
    }
}

/// Whether a record is about a session (a `session` event, or a control
/// packet or its ack on the network), which has no message kind.
fn is_session(r: &Record) -> bool {
    match r.event {
        EventKind::Session => true,
        EventKind::Drop | EventKind::Duplicate | EventKind::Forward => {
            matches!(r.detail & 0xff00, DETAIL_CONTROL | DETAIL_CONTROL_ACK)
        }
        _ => false,
    }
}

fn name(table: &[String], id: u32) -> &str {
    table.get(id as usize).map_or("?", String::as_str)
}

impl Names<'_> {
    /// The name the footer gives a kind code, if it names it.
    pub fn kind_name(&self, code: u8) -> Option<&str> {
        self.kinds
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, n)| n.as_str())
    }

    /// A kind code's name, or a stand-in for a code the footer does not
    /// name: `custom:{code - 64}` from 64 on, else `kind:{code}`.
    pub fn kind(&self, code: u8) -> Cow<'_, str> {
        match self.kind_name(code) {
            Some(n) => Cow::Borrowed(n),
            None => Cow::Owned(MessageKind::fallback_name(code)),
        }
    }

    /// Resolves one record.
    pub fn row(&self, seq: u64, r: &Record) -> Row<'_> {
        let recipient = match r.node {
            NONE if r.event == EventKind::Fault => "",
            NODE_BROKER => "broker",
            NODE_BROADCAST => "*",
            id if id >= NODE_ROUTER_BASE => name(self.routers, id - NODE_ROUTER_BASE),
            id => name(self.agents, id),
        };
        let timer = r.event == EventKind::Timer;
        Row {
            seq,
            time_ns: r.time_ns,
            event: r.event.name(),
            msg_id: (!timer).then_some(r.msg),
            env: self.env,
            channel: if r.channel == NONE {
                ""
            } else {
                name(self.channels, r.channel)
            },
            sender: if r.sender == NONE {
                ""
            } else {
                name(self.agents, r.sender)
            },
            recipient,
            kind: if timer || is_session(r) {
                Cow::Borrowed("")
            } else {
                self.kind(r.kind)
            },
            sent_ns: r.sent_ns,
            detail: detail(r),
        }
    }
}

/// Output formats of `busbar export`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Comma-separated values with the contract's header.
    Csv,
    /// One JSON object per line, same fields as the CSV.
    Jsonl,
}

/// Writes every record of a trace in `format`; returns the row count. The
/// records are checked against the footer's digest as they stream; a
/// mismatch is an error after the rows written so far.
pub fn export<R: Read + Seek, W: Write>(
    reader: &mut TraceReader<R>,
    format: Format,
    out: W,
) -> Result<u64, TraceError> {
    let footer = reader.footer().clone();
    let names = crate::trace::window::footer_names(&footer, reader.header().env);
    let deadlines = &footer.deadlines;
    let step = crate::trace::life::grid_step(reader.header());
    let row = |seq: u64, r: &Record| {
        let mut row = names.row(seq, r);
        if r.event == EventKind::Late {
            row.detail = crate::trace::life::detail_text(r, deadlines);
        }
        row
    };
    let mut seq = 0u64;
    match format {
        Format::Csv => {
            // The header is written by hand so its order is the contract's,
            // whatever serde would derive.
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(out);
            w.write_record(CSV_COLUMNS).map_err(csv_err)?;
            reader.for_each_batch(|batch| {
                for r in batch {
                    w.serialize(row(seq, r)).map_err(csv_err)?;
                    seq += 1;
                }
                Ok(())
            })?;
            w.flush()?;
        }
        Format::Jsonl => {
            let mut w = std::io::BufWriter::new(out);
            let mut cursor = reader.cursor();
            while let Some((batch, kept)) = cursor.next_batch_with_payloads()? {
                for r in batch {
                    let line = JsonRow {
                        row: row(seq, r),
                        step: crate::trace::life::record_step(r, step),
                        late: crate::trace::life::Lateness::of(r, deadlines),
                        payload: published_payload(r, kept).map(payload_json),
                    };
                    serde_json::to_writer(&mut w, &line).map_err(|e| TraceError::Io(e.into()))?;
                    w.write_all(b"\n")?;
                    seq += 1;
                }
            }
            w.flush()?;
        }
    }
    Ok(seq)
}

/// A JSON Lines row: the CSV's fields, then `step` (the message's grid
/// step, `null` without a grid or a message), on a `late` row that names
/// its deadline, `deadline`, `limit_ns`, `period_ns`, `late_by_ns`, and on
/// a `publish` row of a trace that keeps payloads, `payload`
/// ([`payload_json`]).
#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(flatten)]
    row: Row<'a>,
    step: Option<u64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    late: Option<crate::trace::life::Lateness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<PayloadJson>,
}

/// The payload kept for a `publish` record, found in the payloads kept for
/// its batch (sorted by message id); `None` for other records or when the
/// trace keeps no payloads.
pub fn published_payload<'k>(r: &Record, kept: &'k [KeptPayload]) -> Option<&'k KeptPayload> {
    if r.event != EventKind::Publish {
        return None;
    }
    let i = kept.binary_search_by_key(&r.msg, |k| k.msg).ok()?;
    Some(&kept[i])
}

/// A kept payload as one line of text: `[1, 0.5, NaN]` for floats, the
/// text quoted, `0x00ff...` for bytes, `(empty)`; then its size, and what
/// was kept if it was cut.
pub fn payload_text(k: &KeptPayload) -> String {
    let body = match &k.payload {
        Payload::Empty => "(empty)".to_string(),
        Payload::Inline { .. } | Payload::Floats(_) => {
            let vs: Vec<String> = k
                .payload
                .as_f64s()
                .iter()
                .map(|v| format!("{v:?}"))
                .collect();
            format!("[{}]", vs.join(", "))
        }
        Payload::Bytes(b) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!("0x{hex}")
        }
        Payload::Text(t) => format!("{:?}", &**t),
    };
    let kept = k.payload.wire_bytes();
    if k.truncated() {
        format!("{body} ({} bytes, the first {kept} kept)", k.wire_bytes)
    } else {
        format!("{body} ({} bytes)", k.wire_bytes)
    }
}

/// A kept payload as JSON ([`payload_json`]): `type` (`empty`, `floats`,
/// `bytes`, `text`), the content (`values`: numbers, with `"NaN"`,
/// `"inf"`, `"-inf"` as strings; `hex`: the bytes as lowercase hex;
/// `text`), `bytes` (the whole payload's size on the wire) and `truncated`
/// (whether only the first `payload_limit` bytes were kept).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PayloadJson {
    /// `empty`, `floats`, `bytes` or `text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The floats kept (non-finite ones as strings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<serde_json::Value>>,
    /// The bytes kept, as lowercase hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// The text kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The whole payload's size on the wire, bytes.
    pub bytes: u64,
    /// Whether only the first `payload_limit` bytes were kept.
    pub truncated: bool,
}

/// A kept payload as JSON (see [`PayloadJson`]).
pub fn payload_json(k: &KeptPayload) -> PayloadJson {
    use serde_json::Value;
    let number = |v: &f64| match serde_json::Number::from_f64(*v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::from("NaN"),
        None if *v > 0.0 => Value::from("inf"),
        None => Value::from("-inf"),
    };
    let mut j = PayloadJson {
        kind: "empty",
        values: None,
        hex: None,
        text: None,
        bytes: k.wire_bytes,
        truncated: k.truncated(),
    };
    match &k.payload {
        Payload::Empty => {}
        Payload::Inline { .. } | Payload::Floats(_) => {
            j.kind = "floats";
            j.values = Some(k.payload.as_f64s().iter().map(number).collect());
        }
        Payload::Bytes(b) => {
            j.kind = "bytes";
            j.hex = Some(b.iter().map(|x| format!("{x:02x}")).collect());
        }
        Payload::Text(t) => {
            j.kind = "text";
            j.text = Some(t.to_string());
        }
    }
    j
}

fn csv_err(e: csv::Error) -> TraceError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => TraceError::Io(io),
        other => TraceError::Io(std::io::Error::other(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event: EventKind, kind: u8) -> Record {
        Record {
            time_ns: 5,
            event,
            msg: 1,
            channel: 0,
            sender: 0,
            node: NODE_BROKER,
            kind,
            detail: 0,
            sent_ns: 2,
        }
    }

    #[test]
    fn the_kind_column_comes_from_the_footer_table() {
        let agents = ["a".to_string()];
        let channels = ["c".to_string()];
        let kinds = [(0u8, "action".to_string()), (70, "renamed".to_string())];
        let names = Names {
            agents: &agents,
            channels: &channels,
            kinds: &kinds,
            routers: &[],
            env: 0,
        };
        let kind = |event, code| names.row(0, &record(event, code)).kind.into_owned();
        assert_eq!(kind(EventKind::Publish, 0), "action");
        assert_eq!(kind(EventKind::Deliver, 70), "renamed");
        assert_eq!(kind(EventKind::Route, 64), "custom:0");
        assert_eq!(kind(EventKind::Drop, 255), "custom:191");
        assert_eq!(kind(EventKind::Late, 1), "kind:1");
        assert_eq!(kind(EventKind::Publish, 63), "kind:63");
        assert_eq!(kind(EventKind::Timer, 0), "", "timers have no kind");
    }

    #[test]
    fn session_records_have_no_kind_and_name_their_op() {
        let kinds = [(0u8, "action".to_string()), (2, "state".to_string())];
        let names = Names {
            agents: &[],
            channels: &[],
            kinds: &kinds,
            routers: &[],
            env: 0,
        };
        let row = |event, detail| {
            let r = Record {
                detail,
                ..record(event, 2)
            };
            let row = names.row(0, &r);
            (row.kind.into_owned(), row.detail.into_owned())
        };
        let d = crate::trace::session_detail;
        let session = EventKind::Session;
        let cases = [
            (
                session,
                d(SessionOp::Subscribe, SessionPhase::Effect),
                "",
                "subscribe",
            ),
            (
                session,
                d(SessionOp::Connect, SessionPhase::Sent),
                "",
                "connect sent",
            ),
            (
                session,
                d(SessionOp::Ping, SessionPhase::Resent),
                "",
                "ping resent",
            ),
            (
                session,
                d(SessionOp::UnsubscribeFilter, SessionPhase::Acked),
                "",
                "unsubscribe_filter acked",
            ),
            (
                session,
                d(SessionOp::KeepaliveTimeout, SessionPhase::Effect),
                "",
                "keepalive_timeout",
            ),
            (session, 0x0900, "", "?"),
            (session, 0x00ff, "", "?"),
            (
                EventKind::Drop,
                Reason::Loss as u16 | DETAIL_CONTROL,
                "",
                "loss (control)",
            ),
            (
                EventKind::Drop,
                Reason::LinkDown as u16 | DETAIL_CONTROL_ACK,
                "",
                "link_down (control_ack)",
            ),
            (EventKind::Forward, DETAIL_CONTROL, "", "control"),
            (EventKind::Drop, Reason::Offline as u16, "state", "offline"),
            (EventKind::Forward, 0, "state", ""),
        ];
        for (event, detail, kind, text) in cases {
            assert_eq!(
                row(event, detail),
                (kind.to_string(), text.to_string()),
                "{event} {detail:#x}"
            );
        }
    }
}
