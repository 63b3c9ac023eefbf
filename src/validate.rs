//! The one validation layer: every check of a scenario file or of a
//! [`SimBuilder`](crate::SimBuilder) reports through a [`Validator`], and
//! every failure is an [`Issue`] that carries the key path of the value at
//! fault (`network.link[0].loss`). A check never stops at the first problem:
//! the validator collects them all, and [`Invalid`] lists every one.
//!
//! Paths are in the vocabulary of the scenario format, so the scenario
//! loader can turn each into a file, line and column (in one place:
//! `scenario::error`), and a library user reads the same names in the
//! builder's errors.
//!
//! The naming rules of agents and ids are stated here, once
//! ([`check_agent_name`], [`check_id`]).

use std::fmt;

/// One segment of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An index into an array (of tables).
    Index(usize),
}

/// Where a value sits in a scenario: `microgrid[2].device[0].profile.sunset_h`.
/// Displays as that text; the empty path displays as `.` (the whole file).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(Vec<Seg>);

impl KeyPath {
    /// The empty path: the whole document.
    pub fn root() -> KeyPath {
        KeyPath::default()
    }

    /// This path extended by `key`; a dotted key (`latency.max`) adds one
    /// segment per part.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut p = self.clone();
        p.push_key(key);
        p
    }

    /// This path extended by an array index.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    fn push_key(&mut self, key: &str) {
        for part in key.split('.').filter(|p| !p.is_empty()) {
            self.0.push(Seg::Key(part.to_string()));
        }
    }

    /// Parses the display form back (`a.b[2].c`); the inverse of `Display`
    /// for every path whose keys contain no `.`, `[` or `]`.
    pub fn parse(s: &str) -> KeyPath {
        let mut p = KeyPath::default();
        for part in s.split('.') {
            let (name, rest) = part.split_once('[').unwrap_or((part, ""));
            if !name.is_empty() {
                p.0.push(Seg::Key(name.to_string()));
            }
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    p.0.push(Seg::Index(i));
                }
            }
        }
        p
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[Seg] {
        &self.0
    }

    /// Appends every segment of `tail`.
    pub fn join(&self, tail: &KeyPath) -> KeyPath {
        let mut p = self.clone();
        p.0.extend(tail.0.iter().cloned());
        p
    }

    /// The last segment, if it is a key.
    pub fn last_key(&self) -> Option<&str> {
        match self.0.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    /// Builds a path from segments.
    pub fn from_segments(segs: Vec<Seg>) -> KeyPath {
        KeyPath(segs)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str(".");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One problem: the value at `path` is wrong because of `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// The key at fault.
    pub path: KeyPath,
    /// What is wrong and, where it helps, what to write instead.
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The error of every validation in busbar: at least one [`Issue`], in the
/// order they were found. Displays one issue per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// Every problem found.
    pub issues: Vec<Issue>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl Invalid {
    /// An error of one issue.
    pub fn one(path: KeyPath, message: impl Into<String>) -> Invalid {
        Invalid {
            issues: vec![Issue {
                path,
                message: message.into(),
            }],
        }
    }

    /// Whether some issue sits at `path` (tests and tools).
    pub fn has(&self, path: &str) -> bool {
        self.issues.iter().any(|i| i.path.to_string() == path)
    }
}

/// Collects issues while walking a configuration. Checks are written
/// against the current path ([`Validator::at`], [`Validator::index`] descend
/// into a table or an array) and never stop at the first failure.
#[derive(Debug, Default)]
pub struct Validator {
    path: KeyPath,
    issues: Vec<Issue>,
}

impl Validator {
    /// A validator at the root of the document.
    pub fn new() -> Validator {
        Validator::default()
    }

    /// A validator whose paths start at `path`.
    pub fn at_path(path: KeyPath) -> Validator {
        Validator {
            path,
            issues: Vec::new(),
        }
    }

    /// The current path.
    pub fn path(&self) -> &KeyPath {
        &self.path
    }

    /// Runs `f` with the path extended by `key` (dotted keys allowed).
    pub fn at<R>(&mut self, key: &str, f: impl FnOnce(&mut Validator) -> R) -> R {
        let depth = self.path.0.len();
        self.path.push_key(key);
        let r = f(self);
        self.path.0.truncate(depth);
        r
    }

    /// Runs `f` with the path extended by index `i`.
    pub fn index<R>(&mut self, i: usize, f: impl FnOnce(&mut Validator) -> R) -> R {
        self.path.0.push(Seg::Index(i));
        let r = f(self);
        self.path.0.pop();
        r
    }

    /// Reports a problem with the value at `key` under the current path
    /// (`""`: the current table itself).
    pub fn fail(&mut self, key: &str, message: impl Into<String>) {
        let path = self.path.key(key);
        self.issues.push(Issue {
            path,
            message: message.into(),
        });
    }

    /// Reports a problem at an absolute path.
    pub fn fail_at(&mut self, path: KeyPath, message: impl Into<String>) {
        self.issues.push(Issue {
            path,
            message: message.into(),
        });
    }

    /// Reports `message()` at `key` unless `ok`.
    pub fn check(&mut self, ok: bool, key: &str, message: impl FnOnce() -> String) -> bool {
        if !ok {
            self.fail(key, message());
        }
        ok
    }

    /// `value` must be a finite number `> 0`.
    pub fn positive(&mut self, key: &str, value: f64) -> bool {
        self.check(value.is_finite() && value > 0.0, key, || {
            format!("{key} must be a positive number, got {value}")
        })
    }

    /// `value` must be a finite number `>= 0`.
    pub fn non_negative(&mut self, key: &str, value: f64) -> bool {
        self.check(value.is_finite() && value >= 0.0, key, || {
            format!("{key} must be a finite number >= 0, got {value}")
        })
    }

    /// `value` must be in `[0, 1]`.
    pub fn fraction(&mut self, key: &str, value: f64) -> bool {
        self.check((0.0..=1.0).contains(&value), key, || {
            format!("{key} must be between 0 and 1, got {value}")
        })
    }

    /// An integer bound that must be at least 1.
    pub fn at_least_one(&mut self, key: &str, value: u64) -> bool {
        self.check(value > 0, key, || format!("{key} must be at least 1"))
    }

    /// Issues found so far.
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// Whether nothing was reported.
    pub fn is_ok(&self) -> bool {
        self.issues.is_empty()
    }

    /// Adds every issue of `other` (already absolute).
    pub fn extend(&mut self, other: Invalid) {
        self.issues.extend(other.issues);
    }

    /// `Ok` when nothing was reported, otherwise every issue.
    pub fn finish(self) -> Result<(), Invalid> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(Invalid {
                issues: self.issues,
            })
        }
    }
}

/// The name reserved for the broker node.
pub const BROKER: &str = "broker";

/// The rule every agent name follows, stated once: not empty, not the
/// reserved `broker`, and none of `/ + #`, whitespace or control characters
/// (agent names appear inside channel names, whose levels `/` separates and
/// whose wildcards are `+` and `#`).
pub fn check_agent_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name must not be empty".into());
    }
    if name == BROKER {
        return Err(format!("{BROKER:?} is reserved for the broker"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, '/' | '+' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "name {name:?} contains {c:?}; names may not contain '/', '+', '#', whitespace or control characters"
        ));
    }
    Ok(())
}

/// The rule of an id that becomes part of a composite agent name (a
/// microgrid id, a device id: device agents are called `{microgrid}.{device}`):
/// the agent-name rule, and no `.` so the composite is unambiguous.
pub fn check_id(id: &str) -> Result<(), String> {
    check_agent_name(id)?;
    if id.contains('.') {
        return Err(format!(
            "id {id:?} contains '.'; ids may not, because device agents are named {{microgrid}}.{{device}}"
        ));
    }
    Ok(())
}

/// Checks that names are unique, in linear-logarithmic time: each name with
/// the path that defined it. A repeat is reported at its own path, naming
/// the first.
pub fn check_unique<'a>(v: &mut Validator, names: impl IntoIterator<Item = (&'a str, KeyPath)>) {
    let mut seen: std::collections::BTreeMap<&'a str, KeyPath> = std::collections::BTreeMap::new();
    for (name, at) in names {
        match seen.get(name) {
            Some(first) => v.fail_at(
                at,
                format!(
                    "agent name {name:?} is used twice (first at {first}); names must be unique"
                ),
            ),
            None => {
                seen.insert(name, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_display_and_parse() {
        let p = KeyPath::root()
            .key("microgrid")
            .index(2)
            .key("device")
            .index(0)
            .key("profile.sunset_h");
        assert_eq!(p.to_string(), "microgrid[2].device[0].profile.sunset_h");
        assert_eq!(KeyPath::parse(&p.to_string()), p);
        assert_eq!(KeyPath::root().to_string(), ".");
    }

    #[test]
    fn validator_collects_every_issue_at_its_path() {
        let mut v = Validator::new();
        v.at("network", |v| {
            v.at("default", |v| v.fraction("loss", 1.5));
            v.at("link", |v| {
                v.index(3, |v| v.positive("rate", -1.0));
            });
        });
        v.at_least_one("limits.max_events", 0);
        let err = v.finish().unwrap_err();
        let paths: Vec<String> = err.issues.iter().map(|i| i.path.to_string()).collect();
        assert_eq!(
            paths,
            [
                "network.default.loss",
                "network.link[3].rate",
                "limits.max_events"
            ]
        );
        assert_eq!(err.to_string().lines().count(), 3);
    }

    #[test]
    fn name_rules() {
        for ok in ["env", "mg1", "mg1.bat", "sensor-2", "ünïcode"] {
            assert_eq!(check_agent_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "broker", "a/b", "a b", "a+", "#", "tab\t"] {
            assert!(check_agent_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_id("mg.1").is_err());
        assert!(check_id("mg1").is_ok());
    }

    #[test]
    fn uniqueness_names_the_first_definition() {
        let mut v = Validator::new();
        let at = |i| KeyPath::root().key("agent").index(i).key("name");
        check_unique(&mut v, [("a", at(0)), ("b", at(1)), ("a", at(2))]);
        let err = v.finish().unwrap_err();
        assert_eq!(err.issues.len(), 1);
        assert_eq!(err.issues[0].path.to_string(), "agent[2].name");
        assert!(err.issues[0].message.contains("agent[0].name"));
    }
}
