//! Mutations that know the scenario format: they find `key = value` pairs
//! (at the start of a line or inside an inline table), numbers, durations,
//! strings and tables in the text, and replace, drop, duplicate or insert
//! them with values at the edges of what the loader accepts. The text need
//! not be valid TOML; scanning is forgiving and only splits at ASCII bytes,
//! so every edit keeps the string valid UTF-8.

use crate::rng::Rng;

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "100",
    "255",
    "256",
    "1024",
    "4096",
    "4097",
    "65536",
    "1_000_000",
    "16777216",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775808",
    "0.0",
    "-0.0",
    "0.5",
    "1.0",
    "1.5",
    "0.999999999",
    "1.000000001",
    "24.0",
    "23.999999",
    "-24.0",
    "86400.0",
    "1e-300",
    "5e-324",
    "1e300",
    "1.7976931348623157e308",
    "-1e308",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "+inf",
    "0x10",
    "0o17",
    "0b101",
    "1e",
    "1__0",
];

/// Durations at the edges of the parser and of `u64` nanoseconds
/// (584 years is `5124095h`).
const DURATIONS: &[&str] = &[
    "0s",
    "0ns",
    "1ns",
    "2ns",
    "1us",
    "1ms",
    "10ms",
    "1s",
    "1m",
    "1h",
    "720h",
    "1.5ns",
    "0.5ns",
    "0.4ns",
    "0.0000000001s",
    "1.000000000000000000001s",
    "18446744073709551615ns",
    "18446744073709551616ns",
    "18446744073709551ms",
    "18446744073709552ms",
    "18446744073s",
    "18446744074s",
    "307445734m",
    "5124095h",
    "5124096h",
    "99999999999999999999999999h",
    "-1s",
    "+1s",
    " 1s",
    "1 s",
    "1",
    "s",
    "",
    "1e3s",
    "1_000ms",
    "1.s",
    ".5s",
    "1..5s",
    "1ms1s",
    "1d",
    "1S",
    "nans",
    "infs",
    "１s",
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "x",
    "broker",
    "env0",
    "{env}",
    "{env}/x",
    "{env}/telemetry",
    "env0/telemetry",
    "a/b",
    "a b",
    "a+",
    "#",
    "a.b",
    "mg1",
    "mg1.bat",
    "mg",
    "sensor",
    "collector",
    "\\u0000",
    "\\n",
    "é",
    "日本",
    "{env}{env}{env}{env}{env}{env}{env}{env}",
];

/// Values for keys whose type or vocabulary is known.
fn values_for(key: &str) -> &'static [&'static str] {
    match key {
        "dist" => &[
            "\"constant\"",
            "\"uniform\"",
            "\"normal\"",
            "\"lognormal\"",
            "\"exponential\"",
            "\"pareto\"",
            "\"\"",
        ],
        "type" => &[
            "\"storage\"",
            "\"pv\"",
            "\"load\"",
            "\"periodic\"",
            "\"sink\"",
            "\"ev\"",
            "1",
        ],
        "kind" => &[
            "\"solar\"",
            "\"constant\"",
            "\"daily\"",
            "\"csv\"",
            "\"info\"",
            "\"action\"",
            "\"device_action\"",
            "\"state_update\"",
            "\"network_state\"",
            "\"custom:0\"",
            "\"custom:191\"",
            "\"custom:192\"",
            "\"custom:255\"",
            "\"custom:-1\"",
            "\"custom:\"",
            "\"custom:99999999999999999999\"",
            "\"kind:3\"",
            "\"INFO\"",
        ],
        "delivery" => &["\"push\"", "\"pull\"", "\"poll\""],
        "strategy" => &["\"round_robin\"", "\"least_loaded\"", "\"random\""],
        "group" => &["\"workers\"", "\"\"", "\"w\\u0001\""],
        "qos" | "publish_qos" => &[
            "\"at_most_once\"",
            "\"at_least_once\"",
            "\"exactly_once\"",
            "\"qos1\"",
            "1",
        ],
        "queue_overflow" | "buffer_overflow" => &[
            "\"reject_new\"",
            "\"drop_oldest\"",
            "\"block\"",
            "\"drop_newest\"",
        ],
        "retain" | "dead_letter_expired" | "persistent" => &["true", "false", "0"],
        "topic" => &[
            "\"#\"",
            "\"+\"",
            "\"{env}/#\"",
            "\"{env}/+/x\"",
            "\"a/#/b\"",
            "\"a#\"",
            "\"a/+b\"",
            "\"\"",
            "\"{env}/telemetry\"",
        ],
        "backoff" | "jitter" | "rate" => &[
            "0.0", "0.5", "0.999999", "1.0", "2.0", "1e9", "1e10", "-1.0", "nan", "inf",
        ],
        "max_retries" | "priority" | "workers" | "queue_capacity" | "dead_letter_capacity" => &[
            "0",
            "1",
            "9",
            "10",
            "255",
            "256",
            "1000",
            "1001",
            "65536",
            "65537",
            "16777216",
            "16777217",
            "4294967296",
            "-1",
        ],
        "service" => &[
            "{ dist = \"constant\", value = \"0s\" }",
            "{ dist = \"exponential\", mean = \"40us\" }",
            "{ dist = \"exponential\", mean = \"1ns\" }",
            "{ dist = \"lognormal\", median = \"1ms\", sigma = 3.0 }",
            "{ dist = \"pareto\", scale = \"1us\", shape = 1.0 }",
        ],
        "ordering" => &["\"fifo\"", "\"unordered\"", "\"lifo\""],
        "power_flow" => &["\"ac\"", "\"lindistflow\"", "\"dc\"", "\"\""],
        "both" | "curtailable" => &["true", "false", "1"],
        "path" => &[
            "\"profile.csv\"",
            "\"profile_edge.csv\"",
            "\"profile_bad.csv\"",
            "\"missing.csv\"",
            "\"\"",
            "\".\"",
            "\"..\"",
            "\"/dev/zero\"",
            "\"profile.csv/\"",
        ],
        "column" => &["\"pv\"", "\"load\"", "\"time_s\"", "\"\"", "\"nope\""],
        "channels" => &[
            "[\"{env}/x\"]",
            "[]",
            "[\"\"]",
            "[\"{env}/x\", \"{env}/x\"]",
            "[\"{env}/telemetry\", \"env0/state_updates\", \"env0/actions\"]",
            "[\"#\", \"+\"]",
            "\"{env}/x\"",
        ],
        "profile" => &[
            "{ kind = \"solar\" }",
            "{ kind = \"solar\", sunrise_h = 18.0, sunset_h = 6.0 }",
            "{ kind = \"solar\", sunrise_h = 0.0, sunset_h = 24.0 }",
            "{ kind = \"solar\", sunrise_h = 12.0, sunset_h = 12.0 }",
            "{ kind = \"constant\", value = 1.5 }",
            "{ kind = \"constant\", value = 0.0 }",
            "{ kind = \"constant\", value = nan }",
            "{ kind = \"daily\" }",
            "{ kind = \"csv\", path = \"profile.csv\", column = \"pv\" }",
            "{ kind = \"csv\", path = \"profile_edge.csv\", column = \"load\" }",
            "{ kind = \"csv\", path = \"profile_bad.csv\", column = \"pv\" }",
            "{}",
        ],
        "latency" => &[
            "{ dist = \"constant\", value = \"0s\" }",
            "{ dist = \"constant\", value = \"1ns\" }",
            "{ dist = \"uniform\", min = \"0s\", max = \"18446744073709551615ns\" }",
            "{ dist = \"uniform\", min = \"5ms\", max = \"1ms\" }",
            "{ dist = \"normal\", mean = \"0s\", std = \"1h\" }",
            "{ dist = \"normal\", mean = \"1ms\", std = \"0s\" }",
            "{ dist = \"lognormal\", median = \"1ns\", sigma = 40.0 }",
            "{ dist = \"lognormal\", median = \"5124095h\", sigma = 3.0 }",
            "{ dist = \"exponential\", mean = \"1h\", min = \"5124095h\" }",
            "{ dist = \"exponential\", mean = \"0s\" }",
        ],
        "policy" => &[
            "{ charge_below = 60.0, discharge_above = 30.0 }",
            "{ charge_below = nan, discharge_above = nan, v_max_pu = nan, curtail_band_pu = nan, v_min_pu = nan }",
            "{ v_max_pu = 0.5, v_min_pu = 2.0 }",
            "{ curtail_band_pu = 0.0 }",
            "{ curtail_band_pu = -1.0 }",
            "{}",
        ],
        "count" => &[
            "0",
            "1",
            "2",
            "100",
            "1000",
            "20000",
            "65536",
            "4294967295",
            "4294967296",
            "-1",
            "18446744073709551615",
        ],
        "bus" => &["0", "1", "2", "3", "5", "100", "4294967296", "-1"],
        "seed" => &["0", "18446744073709551615", "-1", "18446744073709551616"],
        "env" => &["0", "1", "4294967295"],
        "loss" => &[
            "0.0",
            "1.0",
            "0.5",
            "1.0000001",
            "-0.0",
            "nan",
            "inf",
            "1e-300",
            "0.999999",
        ],
        "buffer_capacity" | "max_events" | "max_in_flight" | "max_trace_records"
        | "session_queue" | "connect_bytes" | "subscribe_bytes" | "ping_bytes" => {
            &["0", "1", "2", "100", "4096", "18446744073709551615", "-1"]
        }
        "start_hour" | "sunrise_h" | "sunset_h" => &[
            "0.0",
            "6.0",
            "23.999999",
            "24.0",
            "-1.0",
            "1e300",
            "nan",
            "-0.0",
        ],
        "soc_init" | "soc_min" | "soc_max" | "efficiency" | "power_factor" | "noise" | "value" => {
            &[
                "0.0",
                "1.0",
                "0.5",
                "1.5",
                "-0.5",
                "1e-300",
                "nan",
                "inf",
                "0.0000001",
                "10.0",
            ]
        }
        "name" | "id" | "from" | "to" | "channel" => &[],
        _ => &[],
    }
}

/// Keys whose values are durations.
fn is_duration_key(key: &str) -> bool {
    matches!(
        key,
        "duration"
            | "period"
            | "start"
            | "deadline"
            | "step"
            | "processing"
            | "max_sim_time"
            | "mean"
            | "std"
            | "median"
            | "min"
            | "max"
            | "ttl"
            | "ack_timeout"
            | "max_backoff"
            | "keepalive"
            | "session_expiry"
    )
}

/// Keys to insert, with where they belong (for the record; the fuzzer puts
/// them anywhere).
const KEYS: &[&str] = &[
    "name",
    "seed",
    "duration",
    "max_events",
    "max_sim_time",
    "max_in_flight",
    "max_trace_records",
    "processing",
    "buffer_capacity",
    "latency",
    "loss",
    "ordering",
    "from",
    "to",
    "both",
    "step",
    "deadline",
    "start_hour",
    "power_flow",
    "pf_tolerance_pu",
    "pf_max_iter",
    "base_mva",
    "v_slack_pu",
    "line_r_pu",
    "line_x_pu",
    "line_rating_mva",
    "feeder",
    "pcc_bus",
    "policy",
    "volt_var",
    "vv_v1",
    "vv_v4",
    "vv_q_max",
    "s_rated_mva",
    "trace_payloads",
    "tie_break",
    "id",
    "count",
    "type",
    "bus",
    "capacity_mwh",
    "p_max_mw",
    "soc_init",
    "soc_min",
    "soc_max",
    "efficiency",
    "peak_mw",
    "curtailable",
    "profile",
    "noise",
    "base_mw",
    "power_factor",
    "channel",
    "period",
    "start",
    "kind",
    "channels",
    "delivery",
    "group",
    "strategy",
    "step",
    "topic",
    "qos",
    "publish_qos",
    "ttl",
    "dead_letter_expired",
    "retain",
    "ack_timeout",
    "backoff",
    "max_backoff",
    "jitter",
    "max_retries",
    "priority",
    "dead_letter_capacity",
    "service",
    "rate",
    "workers",
    "queue_capacity",
    "queue_overflow",
    "buffer_overflow",
    "keepalive",
    "persistent",
    "session_expiry",
    "session_queue",
    "connect_bytes",
    "subscribe_bytes",
    "ping_bytes",
];

/// Whole tables; `{name}` is an agent name found in the text, `{new}` a
/// fresh one.
const SNIPPETS: &[&str] = &[
    "[limits]\nmax_events = 1\n",
    "[limits]\nmax_in_flight = 1\n",
    "[limits]\nmax_trace_records = 1\n",
    "[limits]\nmax_sim_time = \"1ns\"\n",
    "[broker]\nprocessing = \"1ms\"\nbuffer_capacity = 1\n",
    "[network.default]\nlatency = { dist = \"uniform\", min = \"0s\", max = \"0s\" }\nloss = 1.0\nordering = \"unordered\"\n",
    "[network.default]\nlatency = { dist = \"lognormal\", median = \"1ms\", sigma = 5.0 }\nordering = \"fifo\"\n",
    "[[network.link]]\nfrom = \"broker\"\nto = \"broker\"\n",
    "[[network.link]]\nfrom = \"{name}\"\nto = \"broker\"\nboth = true\nlatency = { dist = \"exponential\", mean = \"1ms\", min = \"1ms\" }\nloss = 0.5\n",
    "[[network.link]]\nfrom = \"broker\"\nto = \"{name}\"\nordering = \"unordered\"\nlatency = { dist = \"normal\", mean = \"1ms\", std = \"10ms\" }\n",
    "[[agent]]\ntype = \"periodic\"\nname = \"{new}\"\nchannel = \"{env}/x\"\nperiod = \"1ns\"\n",
    "[[agent]]\ntype = \"periodic\"\nname = \"{new}\"\nchannel = \"{env}/state_updates\"\nperiod = \"1ms\"\nkind = \"state_update\"\n",
    "[[agent]]\ntype = \"periodic\"\nname = \"{new}\"\nchannel = \"{env}/x\"\nperiod = \"1ms\"\nstart = \"5124095h\"\nto = \"{name}\"\nkind = \"custom:7\"\ncount = 3\n",
    "[[agent]]\ntype = \"sink\"\nname = \"{new}\"\nchannels = [\"{env}/x\"]\ndelivery = \"pull\"\ndeadline = \"0s\"\n",
    "[[agent]]\ntype = \"sink\"\nname = \"{new}\"\nchannels = [\"{env}/actions\", \"{env}/network_state\", \"{env}/state_updates\"]\n",
    "[[agent]]\ntype = \"sink\"\nname = \"{new}\"\nchannels = [\"{env}/x\"]\ngroup = \"workers\"\ndelivery = \"pull\"\n",
    "[[broker.group]]\nname = \"workers\"\nstrategy = \"least_loaded\"\n",
    "[[microgrid]]\nid = \"{new}\"\ncount = 2\n[[microgrid.device]]\ntype = \"storage\"\nid = \"b\"\ncapacity_mwh = 1.0\np_max_mw = 0.5\nsoc_init = 1.0\n[[microgrid.device]]\ntype = \"pv\"\nid = \"p\"\npeak_mw = 1.0\ncurtailable = true\nprofile = { kind = \"csv\", path = \"profile.csv\", column = \"pv\" }\n[[microgrid.device]]\ntype = \"load\"\nid = \"l\"\nbase_mw = 1.0\nbus = 3\nprofile = { kind = \"constant\", value = 1.0 }\n",
    "[[microgrid]]\nid = \"{new}\"\n",
    "[[microgrid.device]]\ntype = \"load\"\nid = \"{new}\"\nbase_mw = 2.0\npower_factor = 0.1\n",
    "[[microgrid.device]]\ntype = \"storage\"\nid = \"{new}\"\ncapacity_mwh = 0.0\np_max_mw = 1e300\nsoc_min = 1.0\nsoc_max = 0.0\nefficiency = 0.0\n",
    "[[microgrid.device]]\ntype = \"pv\"\nid = \"{new}\"\npeak_mw = 1e308\nnoise = 1e308\nbus = 0\n",
    "[grid]\nstep = \"1ms\"\ndeadline = \"0s\"\n",
    "[grid]\nfeeder = \"feeders/ieee33.m\"\nbase_mva = 10.0\n[grid.policy]\nvolt_var = true\nvv_v1 = 0.5\nvv_v2 = 0.5\nvv_v3 = 2.0\nvv_v4 = 2.0\n",
    "[[microgrid]]\nid = \"{new}\"\ncount = 2\npcc_bus = [18, 33]\n[[microgrid.device]]\ntype = \"pv\"\nid = \"p\"\npeak_mw = 50.0\ns_rated_mva = 1e9\n",
    "[simulation]\nname = \"p\"\nduration = \"1s\"\ntrace_payloads = 65536\ntie_break = \"seeded\"\n",
    "[grid]\nstep = \"1ns\"\ndeadline = \"1ns\"\nstart_hour = 23.999999\nline_r_pu = 0.0\nline_x_pu = 0.0\nline_rating_mva = 0.0\nbase_mva = 1e-300\nv_slack_pu = 0.0\n",
    "[simulation]\nname = \"again\"\nduration = \"1s\"\n",
    "[[broker.channel]]\ntopic = \"#\"\nqos = \"at_least_once\"\nttl = \"1ms\"\nack_timeout = \"1ns\"\nmax_retries = 1000\nbackoff = 1.0\njitter = 0.0\n",
    "[[broker.channel]]\ntopic = \"{env}/+\"\nqos = \"exactly_once\"\npublish_qos = \"at_least_once\"\nretain = true\ndead_letter_expired = true\npriority = 9\n",
    "[[broker.channel]]\ntopic = \"{env}/x\"\nqos = \"at_most_once\"\npublish_qos = \"exactly_once\"\nmax_backoff = \"1ns\"\n",
    "[broker]\nrate = 1e9\nworkers = 65536\nqueue_capacity = 0\nqueue_overflow = \"block\"\nbuffer_overflow = \"drop_oldest\"\ndead_letter_capacity = 0\n",
    "[broker]\nservice = { dist = \"exponential\", mean = \"1h\" }\nqueue_capacity = 1\nqueue_overflow = \"drop_oldest\"\n",
    "[broker.sessions]\nkeepalive = \"1ms\"\nsession_queue = 1\nsession_expiry = \"1ns\"\nping_bytes = 1048576\n",
    "[broker.sessions]\nkeepalive = \"0s\"\npersistent = false\n",
];

/// A `key = value` pair found in the text: byte ranges of the key and the
/// value (the value may be a whole inline table or array).
#[derive(Clone, Copy, Debug)]
struct Pair {
    key: (usize, usize),
    value: (usize, usize),
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The end of a value starting at `i`: the first `,` `}` `]` or newline
/// outside strings and brackets (inline tables and arrays nest), looking
/// at most `MAX_VALUE` bytes ahead (deeply nested values would make the
/// scan quadratic).
fn value_end(t: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    let stop = t.len().min(i + MAX_VALUE);
    while i < stop {
        match t[i] {
            b'"' | b'\'' => {
                let q = t[i];
                i += 1;
                while i < t.len() && t[i] != q && t[i] != b'\n' {
                    if t[i] == b'\\' && q == b'"' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return i,
            b'}' | b']' => depth -= 1,
            b',' | b'\n' | b'#' if depth == 0 => return i,
            _ => {}
        }
        i += 1;
    }
    // On a character boundary (the scan stops only at ASCII otherwise).
    let mut i = t.len().min(i);
    while i < t.len() && (t[i] & 0xc0) == 0x80 {
        i += 1;
    }
    i
}

const MAX_VALUE: usize = 4096;
/// Pairs past this many are not looked for.
const MAX_PAIRS: usize = 2000;

/// Every `key = value`, at a line start or after `{` / `,`.
fn pairs(text: &str) -> Vec<Pair> {
    let t = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut at_start = true;
    while i < t.len() && out.len() < MAX_PAIRS {
        let b = t[i];
        if b == b' ' || b == b'\t' {
            i += 1;
            continue;
        }
        if at_start && is_ident(b) {
            let k0 = i;
            while i < t.len() && (is_ident(t[i]) || t[i] == b'.') {
                i += 1;
            }
            let k1 = i;
            while i < t.len() && (t[i] == b' ' || t[i] == b'\t') {
                i += 1;
            }
            if i < t.len() && t[i] == b'=' {
                i += 1;
                while i < t.len() && (t[i] == b' ' || t[i] == b'\t') {
                    i += 1;
                }
                let v0 = i;
                let v1 = value_end(t, i);
                let mut v1t = v1;
                while v1t > v0 && t[v1t - 1].is_ascii_whitespace() {
                    v1t -= 1;
                }
                out.push(Pair {
                    key: (k0, k1),
                    value: (v0, v1t),
                });
                // Look inside inline tables for more pairs.
                i = v0;
                at_start = false;
                continue;
            }
            at_start = false;
            continue;
        }
        at_start = matches!(b, b'\n' | b'{' | b',');
        if b == b'"' {
            // Skip strings so `a = "x, y = z"` does not yield `y`.
            i += 1;
            while i < t.len() && t[i] != b'"' && t[i] != b'\n' {
                if t[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
        }
        i += 1;
    }
    out.retain(|p| p.value.0 <= p.value.1 && p.value.1 <= t.len());
    out
}

/// The text with the value of every `key = value` pair whose value `over`
/// accepts replaced by `new`.
pub fn replace_values(text: &str, key: &str, over: impl Fn(&str) -> bool, new: &str) -> String {
    let mut out = text.to_string();
    for p in pairs(text).into_iter().rev() {
        if &text[p.key.0..p.key.1] == key && over(&text[p.value.0..p.value.1]) {
            out.replace_range(p.value.0..p.value.1, new);
        }
    }
    out
}

/// The first token of the value of every `key =` in the text, wherever it
/// is (a table, an inline table, a comment): one linear scan.
pub fn values_of(text: &str, key: &str) -> Vec<String> {
    let t = text.as_bytes();
    let mut out = Vec::new();
    for (at, _) in text.match_indices(key) {
        if at > 0 && is_ident(t[at - 1]) {
            continue;
        }
        let rest = text[at + key.len()..].trim_start_matches([' ', '\t']);
        let Some(v) = rest.strip_prefix('=') else {
            continue;
        };
        let v = v.trim_start_matches([' ', '\t']);
        let end = v
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
            .unwrap_or(v.len());
        out.push(v[..end].to_string());
    }
    out
}

/// Quoted strings: ranges of their contents (without quotes).
fn strings(text: &str) -> Vec<(usize, usize)> {
    let t = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'#' {
            while i < t.len() && t[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if t[i] == b'"' {
            let s = i + 1;
            i += 1;
            while i < t.len() && t[i] != b'"' && t[i] != b'\n' {
                if t[i] == b'\\' && i + 1 < t.len() && t[i + 1] != b'\n' {
                    i += 1;
                }
                i += 1;
            }
            if i < t.len() && t[i] == b'"' {
                out.push((s, i));
            }
        }
        i += 1;
    }
    out
}

/// Unquoted number-like tokens (not inside strings or comments).
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let t = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < t.len() {
        match t[i] {
            b'#' => {
                while i < t.len() && t[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < t.len() && t[i] != b'"' && t[i] != b'\n' {
                    if t[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'0'..=b'9' | b'-' | b'+' if i == 0 || !is_ident(t[i - 1]) => {
                let s = i;
                i += 1;
                while i < t.len()
                    && (t[i].is_ascii_alphanumeric() || matches!(t[i], b'.' | b'_' | b'+' | b'-'))
                {
                    i += 1;
                }
                if t[s..i].iter().any(u8::is_ascii_digit) {
                    out.push((s, i));
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Byte ranges of lines (without the newline).
fn lines(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            out.push((s, i));
            s = i + 1;
        }
    }
    if s < text.len() {
        out.push((s, text.len()));
    }
    out
}

/// Tables: (start of the header line, end of the block), blocks running to
/// the next header.
fn tables(text: &str) -> Vec<(usize, usize)> {
    let ls = lines(text);
    let heads: Vec<usize> = ls
        .iter()
        .filter(|(a, b)| text[*a..*b].trim_start().starts_with('['))
        .map(|(a, _)| *a)
        .collect();
    let mut out = Vec::new();
    for (i, &h) in heads.iter().enumerate() {
        let end = heads.get(i + 1).copied().unwrap_or(text.len());
        out.push((h, end));
    }
    out
}

/// Agent, microgrid and device names in the text.
fn names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = pairs(text)
        .into_iter()
        .filter(|p| matches!(&text[p.key.0..p.key.1], "name" | "id"))
        .map(|p| text[p.value.0..p.value.1].trim_matches('"').to_string())
        .filter(|n| !n.is_empty() && n.len() < 64)
        .collect();
    out.push("broker".into());
    out
}

fn fill(snippet: &str, text: &str, rng: &mut Rng) -> String {
    let ns = names(text);
    let mut s = snippet.to_string();
    while let Some(i) = s.find("{name}") {
        let n = rng.pick(&ns).clone();
        s.replace_range(i..i + 6, &n);
    }
    while let Some(i) = s.find("{new}") {
        s.replace_range(i..i + 5, &format!("f{}", rng.below(100)));
    }
    s
}

fn random_number(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => rng.next_u64().to_string(),
        1 => (rng.below(2000) as i64 - 1000).to_string(),
        2 => format!("{:e}", f64::from_bits(rng.next_u64())),
        _ => format!("{}.{}", rng.below(100), rng.below(1000)),
    }
}

fn random_duration(rng: &mut Rng) -> String {
    let unit = *rng.pick(&["ns", "us", "ms", "s", "m", "h", "", "d", "µs"]);
    match rng.below(3) {
        0 => format!("{}{unit}", rng.next_u64() >> rng.below(64)),
        1 => format!(
            "{}.{}{unit}",
            rng.below(1000),
            rng.next_u64() >> rng.below(64)
        ),
        _ => format!("{}{unit}", rng.below(1000)),
    }
}

/// A new value for `key` whose current value is `old`.
fn value_for(key: &str, old: &str, text: &str, rng: &mut Rng) -> String {
    let known = values_for(key);
    if !known.is_empty() && rng.chance(3, 4) {
        return rng.pick(known).to_string();
    }
    if is_duration_key(key) || looks_like_duration(old.trim_matches('"')) {
        return if rng.chance(3, 4) {
            format!("\"{}\"", rng.pick(DURATIONS))
        } else {
            format!("\"{}\"", random_duration(rng))
        };
    }
    if matches!(key, "name" | "id" | "from" | "to") {
        let ns = names(text);
        if rng.chance(1, 2) {
            return format!("\"{}\"", rng.pick(&ns));
        }
        return format!("\"{}\"", rng.pick(STRINGS));
    }
    if old.starts_with('"') || key == "channel" {
        return format!("\"{}\"", rng.pick(STRINGS));
    }
    match rng.below(5) {
        0 => random_number(rng),
        1 => "\"x\"".into(),
        2 => "[]".into(),
        _ => rng.pick(NUMBERS).to_string(),
    }
}

/// A number near `old` (scaled or stepped), in the same notation.
fn nearby(old: &str, rng: &mut Rng) -> String {
    let clean = old.replace('_', "");
    if let Ok(n) = clean.parse::<i64>() {
        let step = *rng.pick(&[-2i64, -1, 1, 2, 10]);
        return match rng.below(3) {
            0 => n.saturating_mul(2),
            1 => n / 2,
            _ => n.saturating_add(step),
        }
        .to_string();
    }
    if let Ok(f) = clean.parse::<f64>() {
        let k = *rng.pick(&[0.0, 0.5, 0.9, 0.99, 1.01, 1.1, 2.0, 10.0]);
        return format!("{:?}", f * k);
    }
    old.to_string()
}

fn looks_like_duration(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_digit()
        && s.as_bytes()[s.len() - 1].is_ascii_alphabetic()
}

/// One mutation; false if it found nothing to change.
pub fn mutate_once(text: &mut String, rng: &mut Rng, other: &str) -> bool {
    match rng.below(21) {
        // Deep nesting (stack depth of the parser and the locator).
        20 => {
            let n = *rng.pick(&[64usize, 500, 5000]);
            let (open, close, key) = match rng.below(3) {
                0 => ("[", "]", "channels"),
                1 => ("{ a = ", " }", "profile"),
                _ => ("[{ a = ", " }]", "latency"),
            };
            let nest = format!("{key} = {}1{}\n", open.repeat(n), close.repeat(n));
            let ls = lines(text);
            let at = if ls.is_empty() {
                0
            } else {
                (rng.pick(&ls).1 + 1).min(text.len())
            };
            if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            let at = at.min(text.len());
            text.insert_str(at, &nest);
        }
        // A value chosen for its key.
        0..=4 => {
            let ps = pairs(text);
            if ps.is_empty() {
                return false;
            }
            let p = *rng.pick(&ps);
            let key = text[p.key.0..p.key.1].to_string();
            let old = text[p.value.0..p.value.1].to_string();
            let new = value_for(&key, &old, text, rng);
            text.replace_range(p.value.0..p.value.1, &new);
        }
        // A number anywhere.
        5 | 6 => {
            let ns = numbers(text);
            if ns.is_empty() {
                return false;
            }
            let (a, b) = *rng.pick(&ns);
            let new = match rng.below(6) {
                0 => random_number(rng),
                // Nearby: often still valid, so the run goes deeper.
                4 | 5 => nearby(&text[a..b], rng),
                1 => {
                    let old = &text[a..b];
                    match rng.below(3) {
                        0 => format!("-{old}"),
                        1 => format!("{old}0000000000"),
                        _ => format!("{old}.5"),
                    }
                }
                _ => rng.pick(NUMBERS).to_string(),
            };
            text.replace_range(a..b, &new);
        }
        // A duration (or any string that looks like one).
        7 | 8 => {
            let ds: Vec<(usize, usize)> = strings(text)
                .into_iter()
                .filter(|&(a, b)| looks_like_duration(&text[a..b]))
                .collect();
            if ds.is_empty() {
                return false;
            }
            let (a, b) = *rng.pick(&ds);
            let new = match rng.below(4) {
                0 => random_duration(rng),
                3 => {
                    // Keep the unit, change the number a little.
                    let old = &text[a..b];
                    let unit = old.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
                    let n = &old[..old.len() - unit.len()];
                    format!("{}{unit}", nearby(n, rng))
                }
                1 => {
                    // Keep the number, change the unit.
                    let old = &text[a..b];
                    let n = old.trim_end_matches(|c: char| c.is_ascii_alphabetic());
                    format!("{n}{}", rng.pick(&["ns", "us", "ms", "s", "m", "h", "x"]))
                }
                _ => rng.pick(DURATIONS).to_string(),
            };
            text.replace_range(a..b, &new);
        }
        // Any string.
        9 => {
            let ss = strings(text);
            if ss.is_empty() {
                return false;
            }
            let (a, b) = *rng.pick(&ss);
            let new = if rng.chance(1, 3) {
                let old = text[a..b].to_string();
                format!("{old}{old}")
            } else {
                rng.pick(STRINGS).to_string()
            };
            text.replace_range(a..b, &new);
        }
        // Drop, duplicate or swap lines.
        10 => {
            let ls = lines(text);
            if ls.is_empty() {
                return false;
            }
            let (a, b) = *rng.pick(&ls);
            text.replace_range(a..(b + 1).min(text.len()), "");
        }
        11 => {
            let ls = lines(text);
            if ls.is_empty() {
                return false;
            }
            let (a, b) = *rng.pick(&ls);
            let line = format!("{}\n", &text[a..b]);
            let (c, _) = *rng.pick(&ls);
            text.insert_str(c, &line);
        }
        12 => {
            let ls = lines(text);
            if ls.len() < 2 {
                return false;
            }
            let i = rng.below(ls.len() - 1);
            let j = rng.range(i + 1, ls.len() - 1);
            let (x, y) = (
                text[ls[i].0..ls[i].1].to_string(),
                text[ls[j].0..ls[j].1].to_string(),
            );
            text.replace_range(ls[j].0..ls[j].1, &x);
            text.replace_range(ls[i].0..ls[i].1, &y);
        }
        // Duplicate a table (renaming its name or id half the time), or drop one.
        13 | 14 => {
            let ts = tables(text);
            if ts.is_empty() {
                return false;
            }
            let (a, b) = *rng.pick(&ts);
            let mut block = text[a..b].to_string();
            if !block.ends_with('\n') {
                block.push('\n');
            }
            if rng.chance(1, 2) {
                let suffix = rng.below(10).to_string();
                for p in pairs(&block).into_iter().rev() {
                    if matches!(&block[p.key.0..p.key.1], "name" | "id")
                        && p.value.1 > p.value.0
                        && block.as_bytes()[p.value.1 - 1] == b'"'
                    {
                        block.insert_str(p.value.1 - 1, &suffix);
                    }
                }
            }
            let at = if rng.chance(1, 2) { b } else { text.len() };
            if at == text.len() && !text.ends_with('\n') {
                text.push('\n');
            }
            let at = at.min(text.len());
            text.insert_str(at, &block);
        }
        15 => {
            let ts = tables(text);
            if ts.is_empty() {
                return false;
            }
            let (a, b) = *rng.pick(&ts);
            text.replace_range(a..b, "");
        }
        // Insert a key with a fitting value after a table header or a line.
        16 => {
            let key = *rng.pick(KEYS);
            let value = value_for(key, "", text, rng);
            let ls = lines(text);
            let at = if ls.is_empty() {
                0
            } else {
                let (_, b) = *rng.pick(&ls);
                (b + 1).min(text.len())
            };
            if at == text.len() && !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            let at = at.min(text.len());
            text.insert_str(at, &format!("{key} = {value}\n"));
        }
        // Insert a whole table.
        17 => {
            let snippet = *rng.pick(SNIPPETS);
            let s = fill(snippet, text, rng);
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            if rng.chance(1, 3) {
                let ts = tables(text);
                if let Some(&(a, _)) = ts.get(rng.below(ts.len().max(1))) {
                    text.insert_str(a, &s);
                    return true;
                }
            }
            text.push_str(&s);
        }
        // A microgrid's `count` (or a periodic agent's) made large.
        18 => {
            let big = *rng.pick(&[
                "2",
                "3",
                "5",
                "20",
                "100",
                "1000",
                "10000",
                "1000000",
                "4294967295",
            ]);
            let ps: Vec<Pair> = pairs(text)
                .into_iter()
                .filter(|p| &text[p.key.0..p.key.1] == "count")
                .collect();
            if let Some(p) = ps.get(rng.below(ps.len().max(1))) {
                text.replace_range(p.value.0..p.value.1, big);
            } else if let Some(i) = text.find("[[microgrid]]\n") {
                text.insert_str(i + 14, &format!("count = {big}\n"));
            } else {
                return false;
            }
        }
        // Lines spliced in from another input.
        _ => {
            let ol = lines(other);
            if ol.is_empty() {
                return false;
            }
            let i = rng.below(ol.len());
            let n = rng.small(ol.len() - i);
            let chunk = format!("{}\n", &other[ol[i].0..ol[i + n - 1].1]);
            let ls = lines(text);
            let at = if ls.is_empty() { 0 } else { rng.pick(&ls).0 };
            text.insert_str(at, &chunk);
        }
    }
    true
}

/// `1..=max` stacked mutations of scenario text; now and then a byte-level
/// one as well (the TOML parser and error locator see broken text too).
pub fn mutate(data: &mut Vec<u8>, rng: &mut Rng, other: &[u8], max: usize, max_len: usize) {
    let mut text = String::from_utf8_lossy(data).into_owned();
    let other = String::from_utf8_lossy(other);
    let n = rng.small(max);
    let mut done = 0;
    for _ in 0..n * 4 {
        if done == n {
            break;
        }
        if mutate_once(&mut text, rng, &other) {
            done += 1;
        }
    }
    *data = text.into_bytes();
    if rng.chance(1, 8) {
        crate::bytes::mutate(data, rng, other.as_bytes(), 2, max_len);
    }
    data.truncate(max_len);
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "[simulation]\nname = \"t\" # c\nduration = \"1s\"\n\n[[agent]]\ntype = \"periodic\"\nname = \"p\"\nchannel = \"{env}/x\"\nperiod = \"100ms\"\nlatency = { dist = \"normal\", mean = \"5ms\", std = \"2ms\" }\n";

    #[test]
    fn scanners_find_pairs_strings_numbers_tables() {
        let keys: Vec<&str> = pairs(T).iter().map(|p| &T[p.key.0..p.key.1]).collect();
        assert_eq!(
            keys,
            [
                "name", "duration", "type", "name", "channel", "period", "latency", "dist", "mean",
                "std"
            ]
        );
        let p = pairs(T)[6];
        assert_eq!(
            &T[p.value.0..p.value.1],
            "{ dist = \"normal\", mean = \"5ms\", std = \"2ms\" }"
        );
        let p = pairs(T)[0];
        assert_eq!(&T[p.value.0..p.value.1], "\"t\"");
        assert_eq!(tables(T).len(), 2);
        assert!(strings(T).iter().any(|&(a, b)| &T[a..b] == "100ms"));
        let t2 = "a = 1\nb = -2.5e3\nc = \"3\"\nd = [4, 5]\n";
        let ns: Vec<&str> = numbers(t2).iter().map(|&(a, b)| &t2[a..b]).collect();
        assert_eq!(ns, ["1", "-2.5e3", "4", "5"]);
        assert_eq!(names(T), ["t", "p", "broker"]);
        assert_eq!(
            replace_values("a = 1\nb = { a = 7 }\n", "a", |v| v == "7", "0"),
            "a = 1\nb = { a = 0 }\n"
        );
        assert_eq!(
            values_of(
                "count = 1_0\nx = { count=0x5, y = 1 }\nrecount = 7\n",
                "count"
            ),
            ["1_0", "0x5"]
        );
    }

    #[test]
    fn mutations_keep_utf8_and_are_deterministic() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut d = T.as_bytes().to_vec();
            for _ in 0..2000 {
                mutate(&mut d, &mut rng, T.as_bytes(), 6, 1 << 16);
                if d.len() > 8000 {
                    d = T.as_bytes().to_vec();
                }
            }
            d
        };
        assert_eq!(run(5), run(5));
    }
}
