//! Scenario errors, and the one place where a key path becomes a file, line
//! and column.
//!
//! Syntax and type errors come from the TOML parser (through
//! `serde_path_to_error`, which keeps the key path); semantic problems come
//! from the validation layer ([`crate::validate`]) as key paths. Both are
//! located here by looking the path up in a spanned parse of the same text.

use std::fmt;

use super::overrides::Override;
use crate::validate::{Invalid, KeyPath, Seg};

/// A problem located in a scenario file, or in a `--set` override of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// 1-based line (0 when the problem is in an override).
    pub line: usize,
    /// 1-based column (characters; 0 when the problem is in an override).
    pub column: usize,
    /// The override (`key=value`, as written) whose value has the problem,
    /// if the value came from one rather than from the file.
    pub set: Option<String>,
    /// The key path, e.g. `network.link[0].loss`; for a syntax error, the
    /// key or table written where parsing stopped (`(top level)` outside
    /// any table); `.` for the document as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A scenario that could not be loaded. Displays one problem per line as
/// `file:line:column: key: message`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read scenario: {message}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        message: String,
    },
    /// The file is not valid TOML, has an unknown key or a value of the
    /// wrong type (parsing stops at the first such error), or has values
    /// that are out of range or refer to something that does not exist
    /// (every one of those is listed).
    #[error("{}", render(file, problems))]
    Invalid {
        /// The file.
        file: String,
        /// Every problem found, in the order of the file (line, column).
        problems: Vec<Located>,
    },
}

fn render(file: &str, problems: &[Located]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("{file}:{p}")).collect();
    lines.join("\n")
}

impl ScenarioError {
    /// The problems, if the file was read.
    pub fn problems(&self) -> &[Located] {
        match self {
            ScenarioError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }

    /// Every issue of a validation, located in `text`.
    pub(super) fn from_invalid(
        file: &str,
        text: &str,
        overrides: &[Override],
        invalid: Invalid,
    ) -> ScenarioError {
        let mut problems: Vec<Located> = invalid
            .issues
            .into_iter()
            .map(|i| locate(text, overrides, &i.path, None, i.message))
            .collect();
        // In the order a reader meets them in the file, overrides first.
        problems.sort_by_key(|p| (p.set.is_none(), p.line, p.column));
        ScenarioError::Invalid {
            file: file.to_string(),
            problems,
        }
    }

    /// A TOML syntax or type error, with the key path serde reached.
    pub(super) fn from_toml(
        file: &str,
        text: &str,
        overrides: &[Override],
        e: &toml::de::Error,
        path: Option<&serde_path_to_error::Path>,
    ) -> ScenarioError {
        let mut key = path.map(convert_path).unwrap_or_default();
        let mut message = e.message().trim().to_string();
        let mut keyed = false;
        if let Some((inner, msg)) = message
            .strip_prefix(crate::tagged::KEY_PREFIX)
            .and_then(|rest| rest.split_once("`: "))
        {
            // An error from inside a tagged table names its key (see `tagged`).
            key = key.join(&KeyPath::parse(inner));
            message = msg.to_string();
            keyed = true;
        } else if let Some((field, _)) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
        {
            // Point at the unknown key itself, not at its table.
            let field = field.to_string();
            if key.last_key() != Some(field.as_str()) {
                key = key.key(&field);
            }
            if let Some(hint) = moved(&key) {
                message = hint;
            }
            keyed = true;
        }
        // A key we know is located by its own span; otherwise trust the parser.
        let span = if keyed {
            span_of(text, &key).or_else(|| e.span())
        } else {
            e.span().or_else(|| span_of(text, &key))
        };
        let mut problem = locate(text, overrides, &key, span.clone(), message);
        if key.segments().is_empty()
            && let Some(span) = span
        {
            // A syntax error: serde reached no key, so name the one written
            // where the parser stopped (and, for a duplicate, where it was
            // first set).
            let (name, first) = key_at(text, span.start);
            problem.key = name;
            if problem.message == "duplicate key"
                && let Some(line) = first
            {
                problem.message = format!("duplicate key (first set on line {line})");
            }
        }
        ScenarioError::Invalid {
            file: file.to_string(),
            problems: vec![problem],
        }
    }
}

/// The dotted key written on the line of byte `at` (its table header's
/// path, then the key before `=`), and for a key, the line where the same
/// key was first set in the same table. A line that is a table header
/// names that table. `(top level)` when nothing is named.
fn key_at(text: &str, at: usize) -> (String, Option<usize>) {
    let at = text.floor_char_boundary(at.min(text.len()));
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..line_start].matches('\n').count() + 1;
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| -> Option<String> {
        let t = l.trim();
        let inner = t.strip_prefix('[')?;
        let inner = inner.strip_prefix('[').unwrap_or(inner);
        let end = inner.find(']').unwrap_or(inner.len());
        Some(inner[..end].trim().to_string())
    };
    let key_of = |l: &str| -> Option<String> {
        let (k, _) = l.split_once('=')?;
        let k = k.trim();
        (!k.is_empty() && !k.starts_with('[') && !k.starts_with('#'))
            .then(|| k.trim_matches(|c| c == '"' || c == '\'').to_string())
    };
    let this = lines.get(line_no - 1).copied().unwrap_or("");
    if let Some(h) = header(this) {
        return (
            if h.is_empty() {
                "(top level)".into()
            } else {
                h
            },
            None,
        );
    }
    // The table this line belongs to, and where its header is.
    let (table, table_line) = lines[..line_no - 1]
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, l)| header(l).map(|h| (h, i + 1)))
        .unwrap_or_default();
    let Some(key) = key_of(this) else {
        return (
            if table.is_empty() {
                "(top level)".into()
            } else {
                table
            },
            None,
        );
    };
    let first = lines[table_line..line_no - 1]
        .iter()
        .position(|l| key_of(l).as_deref() == Some(key.as_str()))
        .map(|i| table_line + i + 1);
    let name = if table.is_empty() {
        key
    } else {
        format!("{table}.{key}")
    };
    (name, first)
}

/// Keys that moved in an earlier version of the format, and where to.
const MOVED: &[(&str, &str)] = &[
    ("simulation.step", "grid.step"),
    ("simulation.deadline", "grid.deadline"),
    ("simulation.start_hour", "grid.start_hour"),
];

fn moved(key: &KeyPath) -> Option<String> {
    let k = key.to_string();
    MOVED.iter().find(|(old, _)| *old == k).map(|(old, new)| {
        let (table, field) = new.split_once('.').expect("table.key");
        format!(
            "`{old}` has moved to the [{table}] table: write `{field} = ...` under [{table}] \
             (grid settings live with the grid)"
        )
    })
}

/// Locates `path` (or a parser span) in `text`.
fn locate(
    text: &str,
    overrides: &[Override],
    path: &KeyPath,
    span: Option<std::ops::Range<usize>>,
    message: String,
) -> Located {
    // The last override at or above the path set the value that is wrong.
    if let Some(o) = overrides
        .iter()
        .rev()
        .find(|o| path.segments().starts_with(o.key().segments()))
    {
        return Located {
            line: 0,
            column: 0,
            set: Some(o.text().to_string()),
            key: path.to_string(),
            message,
        };
    }
    let span = span.or_else(|| span_of(text, path));
    let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
    Located {
        line,
        column,
        set: None,
        key: path.to_string(),
        message,
    }
}

fn convert_path(p: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    KeyPath::from_segments(
        p.iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect(),
    )
}

/// 1-based line and column of byte offset `at`.
pub(super) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..text.floor_char_boundary(at)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The byte span of `path` in the document: the key of the last table
/// entry found (or the array element), as deep as the path resolves.
fn span_of(text: &str, path: &KeyPath) -> Option<std::ops::Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = doc.get_ref();
    let mut span = None;
    let mut value: Option<&DeValue<'_>> = None;
    for seg in path.segments() {
        match seg {
            Seg::Key(k) => {
                let t = match value {
                    None => table,
                    Some(DeValue::Table(t)) => t,
                    Some(_) => break,
                };
                let Some((key, v)) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k) else {
                    break;
                };
                span = Some(key.span());
                value = Some(v.get_ref());
                table = t;
            }
            Seg::Index(i) => {
                let Some(DeValue::Array(a)) = value else {
                    break;
                };
                let Some(item) = a.get(*i) else {
                    break;
                };
                span = Some(item.span());
                value = Some(item.get_ref());
            }
        }
    }
    span
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(set) = &self.set {
            return write!(f, " --set {set}: {}: {}", self.key, self.message);
        }
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.key, self.message
        )
    }
}
