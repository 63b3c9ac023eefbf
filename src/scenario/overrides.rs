//! `--set key.path=value`: one value of a scenario replaced before it is
//! validated, with the same checks and errors as the file itself.

use std::fmt;
use std::str::FromStr;

use crate::validate::{KeyPath, Seg};

/// One override: a key path into the scenario (`network.default.loss`,
/// `microgrid[0].count`) and the TOML value to put there.
///
/// The value is read as a TOML value (`0.05`, `true`, `"5ms"`, `[1, 2]`,
/// `{ dist = "constant", value = "5ms" }`); anything that is not one is
/// taken as a string, so `simulation.duration=5m` needs no quotes. Tables
/// on the way that do not exist yet are created; an index must name an
/// existing entry of an array.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    key: KeyPath,
    value: toml::Value,
    text: String,
}

/// Why a `--set` argument could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--set {text}: {message}")]
pub struct OverrideError {
    /// The argument as written.
    pub text: String,
    /// What is wrong with it.
    pub message: String,
}

impl Override {
    /// An override of `key` with `value`, written as `key=value`.
    pub fn new(key: KeyPath, value: toml::Value) -> Override {
        let text = format!("{key}={value}");
        Override { key, value, text }
    }

    /// The key path it replaces.
    pub fn key(&self) -> &KeyPath {
        &self.key
    }

    /// The value it puts there.
    pub fn value(&self) -> &toml::Value {
        &self.value
    }

    /// As written (`key=value`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Puts the value into `doc`, creating missing tables on the way.
    pub(crate) fn apply(&self, doc: &mut toml::Table) -> Result<(), String> {
        let segs = self.key.segments();
        let mut here = Slot::Table(doc);
        for (i, seg) in segs.iter().enumerate() {
            let last = i + 1 == segs.len();
            let at = KeyPath::from_segments(segs[..i].to_vec());
            here = match (here, seg) {
                (Slot::Table(t), Seg::Key(k)) => {
                    if last {
                        t.insert(k.clone(), self.value.clone());
                        return Ok(());
                    }
                    let next = t.entry(k.clone()).or_insert_with(|| match segs[i + 1] {
                        Seg::Key(_) => toml::Value::Table(toml::Table::new()),
                        Seg::Index(_) => toml::Value::Array(Vec::new()),
                    });
                    Slot::of(next)
                }
                (Slot::Array(a), Seg::Index(n)) => {
                    let len = a.len();
                    let Some(v) = a.get_mut(*n) else {
                        return Err(format!(
                            "{} has {len} entr{}, so there is no [{n}]",
                            KeyPath::from_segments(segs[..i].to_vec()),
                            if len == 1 { "y" } else { "ies" }
                        ));
                    };
                    if last {
                        *v = self.value.clone();
                        return Ok(());
                    }
                    Slot::of(v)
                }
                (Slot::Table(_), Seg::Index(n)) => {
                    return Err(format!(
                        "{at} is a table, not an array: [{n}] cannot index it"
                    ));
                }
                (Slot::Array(_), Seg::Key(k)) => {
                    return Err(format!(
                        "{at} is an array: write {at}[N].{k} to pick an entry"
                    ));
                }
                (Slot::Value(v), _) => {
                    return Err(format!(
                        "{at} is a {}, not a table: nothing is inside it",
                        v.type_str()
                    ));
                }
            };
        }
        Err("the key is empty".into())
    }
}

enum Slot<'a> {
    Table(&'a mut toml::Table),
    Array(&'a mut Vec<toml::Value>),
    Value(&'a toml::Value),
}

impl<'a> Slot<'a> {
    fn of(v: &'a mut toml::Value) -> Slot<'a> {
        match v {
            toml::Value::Table(t) => Slot::Table(t),
            toml::Value::Array(a) => Slot::Array(a),
            other => Slot::Value(other),
        }
    }
}

impl fmt::Display for Override {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A key path written strictly: `name(.name | [index])*`, names of
/// letters, digits, `_` and `-`.
fn parse_key(s: &str) -> Result<KeyPath, String> {
    let mut segs = Vec::new();
    let bad = |why: &str| Err(format!("bad key {s:?}: {why}"));
    if s.is_empty() {
        return bad("it is empty");
    }
    for part in s.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if name.is_empty() {
            return bad("a part between dots is empty");
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return bad("a name may hold letters, digits, `_` and `-`");
        }
        segs.push(Seg::Key(name.to_string()));
        while !rest.is_empty() {
            let Some((idx, after)) = rest.split_once(']') else {
                return bad("an index is not closed with `]`");
            };
            let Ok(i) = idx.parse::<usize>() else {
                return bad("an index must be a non-negative integer");
            };
            segs.push(Seg::Index(i));
            rest = match after.strip_prefix('[') {
                Some(r) => r,
                None if after.is_empty() => "",
                None => return bad("after `]` comes `.` or `[`"),
            };
        }
    }
    Ok(KeyPath::from_segments(segs))
}

/// A value as TOML if it reads as one, else as a string.
fn parse_value(s: &str) -> toml::Value {
    let s = s.trim();
    match format!("v = {s}").parse::<toml::Table>() {
        Ok(mut t) if t.len() == 1 => t.remove("v").unwrap_or_else(|| s.into()),
        _ => toml::Value::String(s.to_string()),
    }
}

impl FromStr for Override {
    type Err = OverrideError;

    /// Reads `key.path=value`.
    fn from_str(s: &str) -> Result<Override, OverrideError> {
        let err = |message: String| OverrideError {
            text: s.to_string(),
            message,
        };
        let Some((key, value)) = s.split_once('=') else {
            return Err(err("write key.path=value".into()));
        };
        let key = parse_key(key.trim()).map_err(err)?;
        Ok(Override {
            key,
            value: parse_value(value),
            text: s.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> Override {
        s.parse().unwrap()
    }

    #[test]
    fn values_read_as_toml_or_as_strings() {
        assert_eq!(set("a.b=0.05").value, toml::Value::Float(0.05));
        assert_eq!(set("a=3").value, toml::Value::Integer(3));
        assert_eq!(set("a=true").value, toml::Value::Boolean(true));
        assert_eq!(set("a=5ms").value, toml::Value::String("5ms".into()));
        assert_eq!(set("a=\"5ms\"").value, toml::Value::String("5ms".into()));
        assert!(
            set("a={ dist = \"constant\", value = \"1ms\" }")
                .value
                .is_table()
        );
    }

    #[test]
    fn keys_are_strict() {
        assert_eq!(
            set("microgrid[0].count=3").key.to_string(),
            "microgrid[0].count"
        );
        for bad in [
            "=1", "a..b=1", "a[x]=1", "a[0=1", "a b=1", "a[0]b=1", "novalue",
        ] {
            assert!(bad.parse::<Override>().is_err(), "{bad}");
        }
    }

    #[test]
    fn apply_creates_tables_and_checks_indices() {
        let mut doc: toml::Table = "[[microgrid]]\nid = \"mg\"\n".parse().unwrap();
        set("network.default.loss=0.1").apply(&mut doc).unwrap();
        assert_eq!(doc["network"]["default"]["loss"].as_float(), Some(0.1));
        set("microgrid[0].count=4").apply(&mut doc).unwrap();
        assert_eq!(doc["microgrid"][0]["count"].as_integer(), Some(4));
        let e = set("microgrid[1].count=4").apply(&mut doc).unwrap_err();
        assert!(e.contains("has 1 entry"), "{e}");
        let e = set("microgrid.count=4").apply(&mut doc).unwrap_err();
        assert!(e.contains("microgrid[N].count"), "{e}");
        let e = set("network.default.loss.x=4").apply(&mut doc).unwrap_err();
        assert!(e.contains("is a float"), "{e}");
    }
}
