//! The shrinker's candidates: smaller versions of a scenario's TOML
//! document (see the `explore` module docs for the order), and the edits
//! they are made of.

use std::path::Path;

use crate::time::SimDuration;

/// One step of a path into a TOML document.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize),
}

fn at_mut<'a>(v: &'a mut toml::Value, path: &[Seg]) -> Option<&'a mut toml::Value> {
    let mut v = v;
    for s in path {
        v = match s {
            Seg::Key(k) => v.as_table_mut()?.get_mut(k)?,
            Seg::Index(i) => v.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(v)
}

/// `doc` with the value at `path` changed by `f` (`None` if `f` declines).
fn edited(
    doc: &toml::Table,
    path: &[Seg],
    f: impl FnOnce(&mut toml::Value) -> bool,
) -> Option<toml::Table> {
    let mut root = toml::Value::Table(doc.clone());
    let v = at_mut(&mut root, path)?;
    if !f(v) {
        return None;
    }
    match root {
        toml::Value::Table(t) => Some(t),
        _ => None,
    }
}

/// `doc` without element `i` of the array at `path` (and without the
/// array once it is empty).
fn removed(doc: &toml::Table, path: &[Seg], i: usize) -> Option<toml::Table> {
    let take = |a: &mut Vec<toml::Value>| {
        let ok = i < a.len();
        if ok {
            a.remove(i);
        }
        ok
    };
    match path.split_last() {
        // Edited from the table that holds it, which drops it once empty.
        Some((Seg::Key(k), parent)) => edited(doc, parent, |p| {
            let Some(t) = p.as_table_mut() else {
                return false;
            };
            let Some(a) = t.get_mut(k).and_then(toml::Value::as_array_mut) else {
                return false;
            };
            let ok = take(a);
            if ok && a.is_empty() {
                t.remove(k);
            }
            ok
        }),
        _ => edited(doc, path, |v| v.as_array_mut().is_some_and(take)),
    }
}

/// Every value of the document with its path, depth first in key order.
fn walk(v: &toml::Value, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, toml::Value)>) {
    out.push((path.clone(), v.clone()));
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                path.push(Seg::Key(k.clone()));
                walk(x, path, out);
                path.pop();
            }
        }
        toml::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                walk(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn key_of(path: &[Seg]) -> Option<&str> {
    match path.last() {
        Some(Seg::Key(k)) => Some(k),
        _ => None,
    }
}

fn under(path: &[Seg], top: &str) -> bool {
    matches!(path.first(), Some(Seg::Key(k)) if k == top)
}

fn duration_of(v: &toml::Value) -> Option<SimDuration> {
    v.as_str()?.parse().ok()
}

/// The candidates of one shrink round, in the order they are tried (see
/// the module docs).
pub(super) fn candidates(doc: &toml::Table, cut_ns: Option<u64>) -> Vec<Candidate> {
    let mut out = Vec::new();
    // Changes of structure are worth other seeds; the others not.
    let mut keep = |t: Option<toml::Table>, reseed: bool| {
        out.extend(t.map(|doc| Candidate { doc, reseed }));
    };
    let sim_duration = [Seg::Key("simulation".into()), Seg::Key("duration".into())];
    let duration = doc
        .get("simulation")
        .and_then(|s| s.get("duration"))
        .and_then(duration_of);
    let mut all = Vec::new();
    walk(&toml::Value::Table(doc.clone()), &mut Vec::new(), &mut all);
    // 1. Remove an element of an array of tables, shallow arrays first.
    let mut arrays: Vec<(&Vec<Seg>, usize)> = all
        .iter()
        .filter_map(|(p, v)| match v {
            toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table) => {
                Some((p, a.len()))
            }
            _ => None,
        })
        .collect();
    arrays.sort_by_key(|(p, _)| p.len());
    for (p, n) in arrays {
        for i in 0..n {
            keep(removed(doc, p, i), true);
        }
    }
    // 2. End right after the violation.
    if let (Some(d), Some(cut)) = (duration, cut_ns) {
        let ms = 1_000_000u64;
        let end = cut.div_ceil(ms).max(1) * ms;
        if end < d.as_nanos() {
            let t = edited(doc, &sim_duration, |v| {
                *v = toml::Value::String(SimDuration(end).to_string());
                true
            });
            keep(t, false);
        }
    }
    // 3. Halve the duration.
    if let Some(d) = duration
        && d.as_nanos() >= 2
    {
        for shorter in [tidy(d.as_nanos() / 2), tidy(d.as_nanos() / 4 * 3)] {
            let t = edited(doc, &sim_duration, |v| {
                *v = toml::Value::String(SimDuration(shorter).to_string());
                true
            });
            keep(t, true);
        }
    }
    // 4. Fewer of each `count`.
    for (p, v) in &all {
        if key_of(p) == Some("count")
            && let Some(n) = v.as_integer()
        {
            for smaller in [n / 2, n.saturating_sub(1)] {
                if smaller >= 1 && smaller < n {
                    let t = edited(doc, p, |v| {
                        *v = toml::Value::Integer(smaller);
                        true
                    });
                    keep(t, true);
                }
            }
        }
    }
    // 5. A simpler network: probabilities to 0, durations halved.
    for (p, v) in &all {
        if !under(p, "network") {
            continue;
        }
        match v {
            toml::Value::Float(x) if *x > 0.0 && *x <= 1.0 => {
                let t = edited(doc, p, |v| {
                    *v = toml::Value::Float(0.0);
                    true
                });
                keep(t, false);
            }
            toml::Value::String(_) => {
                // Not below a microsecond: halving further rarely matters
                // and costs a round each time.
                if let Some(d) = duration_of(v)
                    && d.as_nanos() >= 2_000
                {
                    let t = edited(doc, p, |v| {
                        *v = toml::Value::String(SimDuration(d.as_nanos() / 2).to_string());
                        true
                    });
                    keep(t, false);
                }
            }
            _ => {}
        }
    }
    out.dedup();
    out.retain(|c| c.doc != *doc);
    out
}

/// `ns` rounded down to a whole millisecond from 10 ms, to a whole
/// microsecond from 10 µs (so shrunk durations read `1318ms`, not
/// `1318359375ns`).
fn tidy(ns: u64) -> u64 {
    let unit = match ns {
        10_000_000.. => 1_000_000,
        10_000.. => 1_000,
        _ => 1,
    };
    ns / unit * unit
}

/// A smaller scenario to try, and whether to try it with other seeds too
/// (a change of structure: a table removed, a shorter run, a smaller
/// count).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Candidate {
    pub(super) doc: toml::Table,
    pub(super) reseed: bool,
}

/// Relative file paths (`path`, `feeder`) made absolute from `base`, so the
/// reproducer runs from wherever it is written.
pub(super) fn absolute_paths(doc: &mut toml::Table, base: &Path) {
    let mut all = Vec::new();
    walk(&toml::Value::Table(doc.clone()), &mut Vec::new(), &mut all);
    let mut root = toml::Value::Table(std::mem::take(doc));
    for (p, v) in all {
        if !matches!(key_of(&p), Some("path" | "feeder")) {
            continue;
        }
        if let Some(s) = v.as_str()
            && Path::new(s).is_relative()
            && let Some(slot) = at_mut(&mut root, &p)
        {
            *slot = toml::Value::String(base.join(s).display().to_string());
        }
    }
    if let toml::Value::Table(t) = root {
        *doc = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_remove_tables_halve_numbers_and_zero_probabilities() {
        let doc: toml::Table = r#"
[simulation]
name = "x"
duration = "10s"
[network.default]
loss = 0.5
latency = { dist = "constant", value = "4ms" }
[[agent]]
name = "a"
count = 4
[[agent]]
name = "b"
"#
        .parse()
        .unwrap();
        let c: Vec<toml::Table> = candidates(&doc, Some(2_500_000))
            .into_iter()
            .map(|c| c.doc)
            .collect();
        let dur = |t: &toml::Table| t["simulation"]["duration"].as_str().unwrap().to_string();
        assert_eq!(
            c[0]["agent"].as_array().unwrap()[0]["name"].as_str(),
            Some("b")
        );
        assert_eq!(
            c[1]["agent"].as_array().unwrap()[0]["name"].as_str(),
            Some("a")
        );
        assert_eq!(dur(&c[2]), "3ms", "cut to the violation, in whole ms");
        assert_eq!(dur(&c[3]), "5s");
        assert_eq!(dur(&c[4]), "7500ms");
        let counts: Vec<i64> = c[5..7]
            .iter()
            .map(|t| t["agent"][0]["count"].as_integer().unwrap())
            .collect();
        assert_eq!(counts, [2, 3]);
        // Network values in key order: latency before loss.
        let loss = c[8]["network"]["default"]["loss"].as_float();
        assert_eq!(loss, Some(0.0));
        let lat = c[7]["network"]["default"]["latency"]["value"].as_str();
        assert_eq!(lat, Some("2ms"));
        assert_eq!(c.len(), 9);
        assert!(c.iter().all(|x| *x != doc));
        // Structure (removals, shorter runs, counts) is worth other seeds;
        // the cut and the network's numbers are not.
        let reseed: Vec<bool> = candidates(&doc, Some(2_500_000))
            .iter()
            .map(|c| c.reseed)
            .collect();
        assert_eq!(
            reseed,
            [true, true, false, true, true, true, true, false, false]
        );
    }

    #[test]
    fn relative_paths_become_absolute() {
        let mut doc: toml::Table = "[grid]\nfeeder = \"f/ieee33.m\"\n[x]\npath = \"/abs.csv\"\n"
            .parse()
            .unwrap();
        absolute_paths(&mut doc, Path::new("/base"));
        assert_eq!(doc["grid"]["feeder"].as_str(), Some("/base/f/ieee33.m"));
        assert_eq!(doc["x"]["path"].as_str(), Some("/abs.csv"));
    }
}
