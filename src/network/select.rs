//! Node selectors: which nodes (agents, routers, `broker`) a
//! `[[network.edge]]` or a `[[network.link]]` end names. A selector is a
//! node name, or a pattern where `*` matches any run of characters
//! (`"mg3.*"`, `"*"`, `"mg*.pv"`); every other character stands for itself.
//!
//! Resolving a selector gives the matched nodes' indices in node order, or,
//! when it matches nothing, an error that lists the valid names (all of them
//! when there are few, otherwise the closest few and the count).

use std::collections::BTreeMap;

/// Lists every node name in a "matches no node" error up to this many nodes;
/// above it, the closest [`CLOSEST`] and the count.
const LIST_ALL: usize = 20;
/// How many close names a "matches no node" error shows in a large network.
const CLOSEST: usize = 5;

/// A node name or a `*` pattern (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    text: String,
}

impl Selector {
    /// Reads a selector; the empty string is an error.
    pub fn parse(text: &str) -> Result<Selector, String> {
        if text.is_empty() {
            return Err(
                "an empty selector names no node; write a node name or a pattern such as \"mg3.*\""
                    .into(),
            );
        }
        Ok(Selector {
            text: text.to_string(),
        })
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether it is a pattern (contains `*`) rather than one name.
    pub fn is_pattern(&self) -> bool {
        self.text.contains('*')
    }

    /// Whether it selects the node `name`.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(&self.text, name)
    }

    /// The indices of the names in `nodes` it selects, in order; an error
    /// listing valid names if there are none.
    pub fn resolve<S: AsRef<str>>(&self, nodes: &[S]) -> Result<Vec<usize>, String> {
        let hits: Vec<usize> = (0..nodes.len())
            .filter(|&i| self.matches(nodes[i].as_ref()))
            .collect();
        if hits.is_empty() {
            let names: Vec<&str> = nodes.iter().map(AsRef::as_ref).collect();
            return Err(no_match(&self.text, &names));
        }
        Ok(hits)
    }
}

/// Whether `pattern` (`*` matches any run of characters, possibly empty)
/// matches all of `name`.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        // No `*`: the whole name.
        return rest.is_empty();
    };
    // Literals between stars: the leftmost occurrence of each is as good as
    // any (it leaves the most room for the rest).
    for lit in middle {
        match rest.find(lit) {
            Some(at) => rest = &rest[at + lit.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The nodes of a topology by name, for resolving many selectors: a name
/// is found in logarithmic time, a pattern in one pass over the nodes.
pub(crate) struct Resolver<'a> {
    names: &'a [String],
    index: BTreeMap<&'a str, usize>,
}

impl<'a> Resolver<'a> {
    /// Over `names`, in node order (the first of equal names wins).
    pub(crate) fn new(names: &'a [String]) -> Resolver<'a> {
        let mut index = BTreeMap::new();
        for (i, n) in names.iter().enumerate() {
            index.entry(n.as_str()).or_insert(i);
        }
        Resolver { names, index }
    }

    /// Makes node `i` the one its name finds, even if an earlier node has
    /// the same name.
    pub(crate) fn prefer(&mut self, i: usize) {
        self.index.insert(self.names[i].as_str(), i);
    }

    /// The index of node `name`, if there is one.
    pub(crate) fn get(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Parses and resolves `text`: the selected node indices in node order,
    /// or an error message.
    pub(crate) fn resolve(&self, text: &str) -> Result<Vec<usize>, String> {
        let sel = Selector::parse(text)?;
        if !sel.is_pattern() {
            return match self.get(text) {
                Some(i) => Ok(vec![i]),
                None => Err(no_match(text, &self.name_strs())),
            };
        }
        sel.resolve(self.names)
    }

    fn name_strs(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }
}

/// The error for a selector that matches no node: every name if there are
/// few, otherwise the closest few and the count.
fn no_match(text: &str, names: &[&str]) -> String {
    if names.len() <= LIST_ALL {
        return format!(
            "{text:?} matches no node; the nodes are: {}",
            names.join(", ")
        );
    }
    // Closest first: longest common prefix with the pattern's literal start,
    // then fewest edits, then node order.
    let literal = text.split('*').next().unwrap_or("");
    let plain: String = text.chars().filter(|&c| c != '*').collect();
    let mut ranked: Vec<(std::cmp::Reverse<usize>, usize, usize)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let prefix = literal
                .chars()
                .zip(n.chars())
                .take_while(|(a, b)| a == b)
                .count();
            (std::cmp::Reverse(prefix), edit_distance(&plain, n), i)
        })
        .collect();
    ranked.sort_unstable();
    let close: Vec<&str> = ranked.iter().take(CLOSEST).map(|r| names[r.2]).collect();
    format!(
        "{text:?} matches no node; nodes include {}, … ({} in all)",
        close.join(", "),
        names.len()
    )
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for j in 0..b.len() {
            let next = (diag + usize::from(ca != b[j]))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let yes = [
            ("mg3.*", "mg3.bat"),
            ("mg3.*", "mg3."),
            ("*", "anything"),
            ("*", ""),
            ("mg*.pv", "mg12.pv"),
            ("mg*.pv", "mg.pv"),
            ("*.pv", "mg1.pv"),
            ("mg*", "mg"),
            ("a*b*c", "abc"),
            ("a*b*c", "axxbyybc"),
            ("**", "x"),
            ("env", "env"),
            ("*ab*ab", "abab"),
            ("ü*", "ünïcode"),
        ];
        for (p, n) in yes {
            assert!(glob_match(p, n), "{p:?} should match {n:?}");
        }
        let no = [
            ("mg3.*", "mg3"),
            ("mg3.*", "mg31.bat"),
            ("mg*.pv", "mg1.bat"),
            ("env", "env2"),
            ("env", "en"),
            ("a*b*c", "acb"),
            ("ab*ba", "aba"),
            ("*ab*ab", "aba"),
            ("*.pv", "mg1.pv2"),
        ];
        for (p, n) in no {
            assert!(!glob_match(p, n), "{p:?} should not match {n:?}");
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn resolve_returns_node_order_and_lists_names_when_nothing_matches() {
        let nodes = names(&["env", "mg1", "mg1.bat", "mg1.pv", "broker", "gw1"]);
        let r = Resolver::new(&nodes);
        assert_eq!(r.resolve("mg1*").unwrap(), [1, 2, 3]);
        assert_eq!(r.resolve("gw1").unwrap(), [5]);
        assert_eq!(r.resolve("*").unwrap().len(), 6);
        let e = r.resolve("mg4.*").unwrap_err();
        assert_eq!(
            e,
            "\"mg4.*\" matches no node; the nodes are: env, mg1, mg1.bat, mg1.pv, broker, gw1"
        );
        assert!(r.resolve("").unwrap_err().contains("empty"));
        let sel = Selector::parse("mg1.*").unwrap();
        assert_eq!(sel.resolve(&nodes).unwrap(), [2, 3]);
        assert!(sel.is_pattern() && !Selector::parse("env").unwrap().is_pattern());
    }

    #[test]
    fn a_large_network_lists_the_closest_names_and_the_count() {
        let mut nodes = names(&["env"]);
        for m in 1..=10 {
            nodes.push(format!("mg{m}"));
            nodes.push(format!("mg{m}.bat"));
            nodes.push(format!("mg{m}.pv"));
        }
        nodes.push("broker".into());
        let r = Resolver::new(&nodes);
        let e = r.resolve("mg11.*").unwrap_err();
        assert_eq!(
            e,
            "\"mg11.*\" matches no node; nodes include mg1, mg10, mg1.pv, mg10.pv, mg1.bat, … (32 in all)"
        );
        let e = r.resolve("mg3.battery").unwrap_err();
        assert!(e.contains("nodes include mg3.bat,"), "{e}");
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("mg1", "mg1"), 0);
    }
}
