//! MQTT topic filters: `/`-separated levels, `+` matches exactly one level,
//! `#` (only as the last level) matches that level's parent and every level
//! below it. Channel names are topics.
//!
//! The rules are MQTT 3.1.1's (section 4.7): a wildcard fills a whole level
//! (`a/+/c`, never `a/b+`); `#` alone matches everything; `a/#` matches
//! `a`, `a/b` and `a/b/c`; a topic whose first level starts with `$` is not
//! matched by a filter that starts with a wildcard. Empty levels are levels
//! (`a//b` has three).

/// Whether `filter` holds a wildcard (`+` or `#`).
pub fn is_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Checks a topic filter: not empty, wildcards only as whole levels, `#`
/// only last. Returns what is wrong.
pub fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter must not be empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "{filter:?}: `#` must be a whole level and the last one (as in `a/#`)"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "{filter:?}: `+` must be a whole level (as in `a/+/c`)"
            ));
        }
    }
    Ok(())
}

/// Whether the topic (a channel name) matches the filter. The filter is
/// assumed valid ([`check_filter`]); a filter without wildcards matches only
/// the identical topic.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mqtt_examples() {
        // MQTT 3.1.1, 4.7.1.2 and 4.7.1.3.
        for t in [
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
        ] {
            assert!(matches("sport/tennis/player1/#", t), "{t}");
        }
        assert!(matches("sport/#", "sport"));
        assert!(matches("#", "a/b/c"));
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
        // `$` topics are not matched by leading wildcards.
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
    }

    #[test]
    fn plain_filters_match_only_themselves() {
        assert!(matches("env0/actions", "env0/actions"));
        assert!(!matches("env0/actions", "env0/actions/x"));
        assert!(!matches("env0/actions/x", "env0/actions"));
        assert!(!matches("env0/a", "env0/b"));
        assert!(!is_wildcard("env0/a"));
        assert!(is_wildcard("env0/+"));
    }

    #[test]
    fn filters_are_checked() {
        for ok in ["#", "+", "a/+/c", "a/#", "+/+/#", "a//b"] {
            assert_eq!(check_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a/#/c", "a#", "a/b+", "+a", "#/a"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }
}
