//! TOML scenario files: parse, validate, and build simulations from them.
//!
//! Every error names the file, the line and column, and the key, e.g.
//! `scenarios/x.toml:14:1: network.link[0].loss: loss is a probability in
//! [0, 1], got 1.5`. Unknown keys are rejected. Syntax and type errors come
//! from the TOML parser with their position; semantic checks (ranges,
//! references between sections) are located by looking their key path up in
//! a spanned parse of the same text.
//!
//! See the README for the format, with examples.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::tagged::tagged_enum;
use serde::{Deserialize, Serialize};

use crate::agent::builtin::{Periodic, Sink};
use crate::broker::{BrokerConfig, Delivery};
use crate::grid::{GridSpec, MicrogridSpec};
use crate::message::{MessageKind, channels};
use crate::metrics::Summary;
use crate::network::{Latency, LinkModel, LinkOverride, Ordering};
use crate::sim::{BuildError, Limits, SimBuilder, SimError, Simulation};
use crate::time::{SimDuration, SimTime};
use crate::trace::Header;

/// The `[simulation]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSpec {
    /// Name of the scenario (shown in summaries).
    pub name: String,
    /// Default seed; `--seed` overrides it. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Virtual time to simulate.
    pub duration: SimDuration,
    /// Grid step period. Default 1 s.
    #[serde(default = "default_step")]
    pub step: SimDuration,
    /// Offset within each step at which the environment runs the power flow
    /// on the values it holds; state updates arriving later are late.
    /// Default: the end of the step.
    #[serde(default)]
    pub deadline: Option<SimDuration>,
    /// Hour of day at time 0, for PV and load profiles. Default 0.
    #[serde(default)]
    pub start_hour: f64,
}

fn default_step() -> SimDuration {
    SimDuration::from_secs(1)
}

impl SimulationSpec {
    /// The deadline offset within a step.
    pub fn deadline(&self) -> SimDuration {
        self.deadline.unwrap_or(self.step)
    }
}

/// The `[network]` table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Model of every link without an override.
    #[serde(default)]
    pub default: LinkModel,
    /// Per-link overrides (`[[network.link]]`).
    #[serde(default, rename = "link")]
    pub links: Vec<LinkSpec>,
}

/// One `[[network.link]]`: an override of the default model for the link
/// from `from` to `to` (one of them `"broker"`). With `both = true` the
/// override applies to the reverse link too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Start of the link: an agent name or `"broker"`.
    pub from: String,
    /// End of the link: an agent name or `"broker"`.
    pub to: String,
    /// Apply to the reverse direction as well. Default false.
    #[serde(default)]
    pub both: bool,
    /// Replaces the default latency.
    pub latency: Option<Latency>,
    /// Replaces the default loss probability.
    pub loss: Option<f64>,
    /// Replaces the default ordering.
    pub ordering: Option<Ordering>,
}

impl LinkSpec {
    fn to_override(&self) -> LinkOverride {
        LinkOverride {
            latency: self.latency.clone(),
            loss: self.loss,
            ordering: self.ordering,
        }
    }
}

tagged_enum! {
    tag = "type";
    /// One `[[agent]]`: a general-purpose built-in agent.
    #[derive(Clone, Debug, PartialEq)]
    pub enum AgentSpec {
        /// Publishes `[n, sent_s]` on `channel` every `period`.
        Periodic {
            /// Unique agent name.
            name: String,
            /// Channel to publish on; `{env}` is replaced by the environment
            /// prefix (`env0`).
            channel: String,
            /// Time between messages.
            period: SimDuration,
            /// Time of the first message. Default 0.
            #[serde(default)]
            start: SimDuration,
            /// Message kind. Default `info`.
            #[serde(default = "default_kind")]
            kind: MessageKind,
            /// Stop after this many messages. Default: never.
            #[serde(default)]
            count: Option<u64>,
            /// Address messages to this agent instead of broadcasting.
            #[serde(default)]
            to: Option<String>,
        },
        /// Subscribes to `channels` and counts arrivals; marks late the ones
        /// older than `deadline`.
        Sink {
            /// Unique agent name.
            name: String,
            /// Channels to subscribe to; `{env}` is replaced.
            channels: Vec<String>,
            /// `push` (default) or `pull`.
            #[serde(default = "default_delivery")]
            delivery: Delivery,
            /// Age beyond which an arrival is late.
            #[serde(default)]
            deadline: Option<SimDuration>,
        },
    }
}

fn default_kind() -> MessageKind {
    MessageKind::Info
}

fn default_delivery() -> Delivery {
    Delivery::Push
}

impl AgentSpec {
    /// The agent's name.
    pub fn name(&self) -> &str {
        match self {
            AgentSpec::Periodic { name, .. } | AgentSpec::Sink { name, .. } => name,
        }
    }
}

/// A whole scenario file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// `[simulation]`.
    pub simulation: SimulationSpec,
    /// `[limits]`.
    #[serde(default)]
    pub limits: Limits,
    /// `[broker]`.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// `[network]`.
    #[serde(default)]
    pub network: NetworkSpec,
    /// `[grid]`: settings of the built-in grid environment.
    #[serde(default)]
    pub grid: GridSpec,
    /// `[[microgrid]]`: grid agents and their devices.
    #[serde(default, rename = "microgrid")]
    pub microgrids: Vec<MicrogridSpec>,
    /// `[[agent]]`: general-purpose agents.
    #[serde(default, rename = "agent")]
    pub agents: Vec<AgentSpec>,
}

/// A scenario that could not be loaded. Displays as
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
    /// wrong type or range, or refers to something that does not exist.
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// The key path, e.g. `network.link[0].loss` (`.` for the file).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a scenario run failed after loading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The simulation could not be built (should not happen for a validated
    /// scenario; reported rather than panicking).
    #[error("cannot build simulation: {0}")]
    Build(#[from] BuildError),
    /// The run stopped with an error (a limit, or trace output).
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// A segment of a key path.
#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug, Default, PartialEq)]
struct KeyPath(Vec<Seg>);

impl KeyPath {
    fn key(&self, k: &str) -> KeyPath {
        let mut p = self.clone();
        for part in k.split('.') {
            p.0.push(Seg::Key(part.to_string()));
        }
        p
    }
    fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
    fn root(k: &str) -> KeyPath {
        KeyPath::default().key(k)
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

/// 1-based line and column of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
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
    for seg in &path.0 {
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

impl ScenarioError {
    fn at(file: &str, text: &str, path: &KeyPath, message: impl Into<String>) -> ScenarioError {
        let (line, column) = span_of(text, path).map_or((1, 1), |s| line_col(text, s.start));
        ScenarioError::Invalid {
            file: file.to_string(),
            line,
            column,
            key: path.to_string(),
            message: message.into(),
        }
    }
}

/// A loaded, validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The parsed contents.
    pub spec: ScenarioSpec,
    text: String,
    source: String,
    base_dir: PathBuf,
}

impl Scenario {
    /// Reads, parses and validates a scenario file. Relative paths inside it
    /// (CSV profiles) are resolved from the file's directory.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Io {
            file: file.clone(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        // Absolute, so a trace header can point a replay at it from anywhere.
        let base = std::fs::canonicalize(if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        })
        .unwrap_or_else(|_| base.to_path_buf());
        Scenario::parse(&text, &file, &base)
    }

    /// Parses and validates scenario text; `source` names it in errors and
    /// `base_dir` resolves relative paths.
    pub fn parse(text: &str, source: &str, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        let de = toml::Deserializer::parse(text).map_err(|e| toml_error(source, text, &e, None))?;
        let spec: ScenarioSpec = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = convert_path(e.path());
            toml_error(source, text, e.inner(), Some(&path))
        })?;
        let mut s = Scenario {
            spec,
            text: text.to_string(),
            source: source.to_string(),
            base_dir: base_dir.to_path_buf(),
        };
        s.validate()
            .map_err(|(path, msg)| ScenarioError::at(source, text, &path, msg))?;
        Ok(s)
    }

    /// The scenario's text, as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where it was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.spec.simulation.name
    }

    /// The default seed.
    pub fn seed(&self) -> u64 {
        self.spec.simulation.seed
    }

    /// How long a run lasts.
    pub fn duration(&self) -> SimDuration {
        self.spec.simulation.duration
    }

    /// The trace header for a run of this scenario.
    pub fn header(&self, seed: u64, env: u32) -> Header {
        Header {
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario_path: self.source.clone(),
            base_dir: self.base_dir.display().to_string(),
            scenario: self.text.clone(),
            seed,
            env,
        }
    }

    /// Every agent name the scenario defines, in id order.
    pub fn agent_names(&self) -> Vec<String> {
        let mut names = crate::grid::agent_names(&self.spec.microgrids);
        names.extend(self.spec.agents.iter().map(|a| a.name().to_string()));
        names
    }

    fn validate(&mut self) -> Result<(), (KeyPath, String)> {
        let spec = &mut self.spec;
        let sim = &spec.simulation;
        let p = KeyPath::root("simulation");
        if sim.name.trim().is_empty() {
            return Err((p.key("name"), "name must not be empty".into()));
        }
        if sim.duration.0 == 0 {
            return Err((p.key("duration"), "duration must be > 0".into()));
        }
        if sim.step.0 == 0 {
            return Err((p.key("step"), "step must be > 0".into()));
        }
        if let Some(d) = sim.deadline
            && (d.0 == 0 || d > sim.step)
        {
            return Err((
                p.key("deadline"),
                format!("deadline must be > 0 and at most the step ({})", sim.step),
            ));
        }
        if !(0.0..24.0).contains(&sim.start_hour) {
            return Err((
                p.key("start_hour"),
                format!("start_hour must be in [0, 24), got {}", sim.start_hour),
            ));
        }
        let l = &spec.limits;
        let lp = KeyPath::root("limits");
        for (key, v) in [
            ("max_events", l.max_events),
            ("max_sim_time", l.max_sim_time.0),
            ("max_in_flight", l.max_in_flight),
            ("max_trace_records", l.max_trace_records),
        ] {
            if v == 0 {
                return Err((lp.key(key), format!("{key} must be > 0")));
            }
        }
        spec.broker
            .validate()
            .map_err(|(k, m)| (KeyPath::root("broker").key(k), m))?;
        let np = KeyPath::root("network");
        spec.network
            .default
            .validate()
            .map_err(|(k, m)| (np.key("default").key(&latency_key(k)), m))?;

        // Grid agents and devices (names, parameters, profiles).
        crate::grid::validate(spec, &self.base_dir)
            .map_err(|(path, m)| (KeyPath::from_dotted(&path), m))?;

        // Names: unique across grid and general agents.
        let mut names = crate::grid::agent_names(&spec.microgrids);
        for (i, a) in spec.agents.iter().enumerate() {
            let ap = KeyPath::root("agent").index(i);
            let name = a.name();
            if name.is_empty() || name == "broker" || name.contains('/') {
                return Err((
                    ap.key("name"),
                    format!(
                        "agent name {name:?} is not allowed (empty, \"broker\", or containing '/')"
                    ),
                ));
            }
            if names.iter().any(|n| n == name) {
                return Err((ap.key("name"), format!("agent name {name:?} is used twice")));
            }
            names.push(name.to_string());
        }
        for (i, a) in spec.agents.iter().enumerate() {
            let ap = KeyPath::root("agent").index(i);
            match a {
                AgentSpec::Periodic {
                    period,
                    to,
                    channel,
                    ..
                } => {
                    if period.0 == 0 {
                        return Err((ap.key("period"), "period must be > 0".into()));
                    }
                    if channel.is_empty() {
                        return Err((ap.key("channel"), "channel must not be empty".into()));
                    }
                    if let Some(to) = to
                        && !names.iter().any(|n| n == to)
                    {
                        return Err((ap.key("to"), format!("no agent is called {to:?}")));
                    }
                }
                AgentSpec::Sink { channels, .. } => {
                    if channels.is_empty() {
                        return Err((ap.key("channels"), "list at least one channel".into()));
                    }
                }
            }
        }
        for (i, link) in spec.network.links.iter().enumerate() {
            let lp = np.key("link").index(i);
            for (key, end) in [("from", &link.from), ("to", &link.to)] {
                if end != "broker" && !names.iter().any(|n| n == end) {
                    return Err((
                        lp.key(key),
                        format!("{end:?} is neither \"broker\" nor an agent of this scenario"),
                    ));
                }
            }
            if (link.from == "broker") == (link.to == "broker") {
                return Err((
                    lp.key("to"),
                    "one end of a link must be \"broker\" and the other an agent".into(),
                ));
            }
            spec.network
                .default
                .with_override(&link.to_override())
                .validate()
                .map_err(|(k, m)| (lp.key(&latency_key(k)), m))?;
        }
        Ok(())
    }

    /// A builder for environment `env` with `seed`: agents, links, broker
    /// and limits set, trace left at the default (digest only). Add a trace
    /// target and call `build`.
    pub fn builder(&self, seed: u64, env: u32) -> SimBuilder {
        let spec = &self.spec;
        let mut b = SimBuilder::new(seed)
            .env(env)
            .name(&spec.simulation.name)
            .limits(spec.limits.clone())
            .broker(spec.broker.clone())
            .default_link(spec.network.default.clone());
        for link in &spec.network.links {
            b = b.link(&link.from, &link.to, link.to_override());
            if link.both {
                b = b.link(&link.to, &link.from, link.to_override());
            }
        }
        b = crate::grid::add_agents(b, spec);
        let prefix = channels::env_prefix(env);
        for a in &spec.agents {
            b = match a {
                AgentSpec::Periodic {
                    name,
                    channel,
                    period,
                    start,
                    kind,
                    count,
                    to,
                } => b.agent(
                    name,
                    Periodic::new(&channel.replace("{env}", &prefix), *period)
                        .start(*start)
                        .kind(*kind)
                        .limit(*count)
                        .to(to.clone()),
                ),
                AgentSpec::Sink {
                    name,
                    channels,
                    delivery,
                    deadline,
                } => {
                    let chans: Vec<String> = channels
                        .iter()
                        .map(|c| c.replace("{env}", &prefix))
                        .collect();
                    b.agent(name, Sink::new(&chans, *delivery, *deadline))
                }
            };
        }
        b
    }

    /// Builds environment `env` with `seed` and the default trace (digest).
    pub fn build(&self, seed: u64, env: u32) -> Result<Simulation, BuildError> {
        self.builder(seed, env).build()
    }

    /// Runs a built simulation of this scenario to its duration and returns
    /// the summary.
    pub fn run_sim(&self, sim: &mut Simulation) -> Result<Summary, RunError> {
        sim.run_until(SimTime::ZERO + self.duration())?;
        Ok(sim.finish()?)
    }

    /// Builds and runs environment `env` with `seed` (digest-only trace).
    pub fn run(&self, seed: u64, env: u32) -> Result<Summary, RunError> {
        let mut sim = self.build(seed, env)?;
        self.run_sim(&mut sim)
    }
}

/// `latency` validation keys are relative to the latency table.
fn latency_key(k: &str) -> String {
    match k {
        "loss" | "ordering" => k.to_string(),
        other => format!("latency.{other}"),
    }
}

impl KeyPath {
    /// Parses `a.b[2].c`.
    fn from_dotted(s: &str) -> KeyPath {
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
}

fn convert_path(p: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment;
    KeyPath(
        p.iter()
            .filter_map(|s| match s {
                Segment::Seq { index } => Some(Seg::Index(*index)),
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect(),
    )
}

fn toml_error(
    file: &str,
    text: &str,
    e: &toml::de::Error,
    path: Option<&KeyPath>,
) -> ScenarioError {
    let mut path = path.cloned().unwrap_or_default();
    let mut message = e.message().trim();
    let mut keyed = false;
    if let Some((key, msg)) = message
        .strip_prefix(crate::tagged::KEY_PREFIX)
        .and_then(|rest| rest.split_once("`: "))
    {
        // An error from inside a tagged table names its key (see `tagged`).
        path.0.extend(KeyPath::from_dotted(key).0);
        message = msg;
        keyed = true;
    } else if let Some((field, _)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
    {
        // Point at the unknown key itself, not at its table.
        if path.0.last() != Some(&Seg::Key(field.to_string())) {
            path = path.key(field);
        }
        keyed = true;
    }
    // A key we know is located by its own span; otherwise trust the parser.
    let span = if keyed {
        span_of(text, &path).or_else(|| e.span())
    } else {
        e.span().or_else(|| span_of(text, &path))
    };
    let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
    ScenarioError::Invalid {
        file: file.to_string(),
        line,
        column,
        key: path.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[simulation]
name = "t"
duration = "1s"

[[agent]]
type = "periodic"
name = "p"
channel = "{env}/x"
period = "100ms"

[[agent]]
type = "sink"
name = "s"
channels = ["{env}/x"]
"#;

    fn err(text: &str) -> (usize, usize, String, String) {
        match Scenario::parse(text, "t.toml", Path::new(".")).unwrap_err() {
            ScenarioError::Invalid {
                line,
                column,
                key,
                message,
                ..
            } => (line, column, key, message),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn minimal_scenario_runs() {
        let s = Scenario::parse(MINIMAL, "t.toml", Path::new(".")).unwrap();
        let sum = s.run(0, 0).unwrap();
        // Published at 0, 100 ms, ..., 1 s; the last one is still on the
        // network (2 ms of latency) when the run ends.
        assert_eq!(sum.published, 11);
        assert_eq!(sum.delivered, 10);
        assert_eq!(sum.in_flight, 1);
    }

    #[test]
    fn unknown_key_is_located() {
        let text = MINIMAL.replace("period = \"100ms\"", "period = \"100ms\"\nperiodd = 3");
        let (line, _, key, msg) = err(&text);
        assert_eq!(line, 11);
        assert_eq!(key, "agent[0].periodd");
        assert!(msg.contains("periodd"), "{msg}");
    }

    #[test]
    fn bad_duration_is_located() {
        let text = MINIMAL.replace("duration = \"1s\"", "duration = \"1 fortnight\"");
        let (line, col, key, msg) = err(&text);
        assert_eq!((line, key.as_str()), (4, "simulation.duration"));
        assert!(col > 1);
        assert!(msg.contains("unit"), "{msg}");
    }

    #[test]
    fn semantic_errors_name_key_and_line() {
        let text =
            format!("{MINIMAL}\n[[network.link]]\nfrom = \"p\"\nto = \"broker\"\nloss = 1.5\n");
        let (line, _, key, msg) = err(&text);
        assert_eq!(key, "network.link[0].loss");
        assert_eq!(line, 20);
        assert!(msg.contains("[0, 1]"), "{msg}");

        let text = format!("{MINIMAL}\n[[network.link]]\nfrom = \"ghost\"\nto = \"broker\"\n");
        let (_, _, key, msg) = err(&text);
        assert_eq!(key, "network.link[0].from");
        assert!(msg.contains("ghost"));

        let text = MINIMAL.replace("name = \"s\"", "name = \"p\"");
        let (line, _, key, _) = err(&text);
        assert_eq!((line, key.as_str()), (14, "agent[1].name"));
    }

    #[test]
    fn errors_inside_nested_tagged_tables_name_the_field() {
        let text = "[simulation]\nname = \"t\"\nduration = \"1s\"\n\n[[microgrid]]\nid = \"a\"\n\
                    [[microgrid.device]]\ntype = \"pv\"\nid = \"pv\"\npeak_mw = 1.0\n\
                    profile = { kind = \"solar\", sunset_h = \"late\" }\n";
        let (line, col, key, msg) = err(text);
        assert_eq!(
            (line, key.as_str()),
            (11, "microgrid[0].device[0].profile.sunset_h")
        );
        assert_eq!(col, 29, "the column of `sunset_h`");
        assert!(msg.contains("expected f64"), "{msg}");
        let text = text.replace("kind = \"solar\", sunset_h = \"late\"", "kind = \"lunar\"");
        let (_, _, key, msg) = err(&text);
        assert_eq!(key, "microgrid[0].device[0].profile.kind");
        assert!(msg.contains("lunar"), "{msg}");
    }

    #[test]
    fn syntax_error_has_position() {
        let (line, _, _, _) = err("[simulation]\nname = \"x\"\nduration = \n");
        assert_eq!(line, 3);
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nf", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nf", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nf", 6), (2, 3));
        assert_eq!(line_col("ab\ncdé\nf", 8), (3, 1));
    }

    #[test]
    fn dotted_paths_parse() {
        let p = KeyPath::from_dotted("microgrid[2].device[0].profile.sunset_h");
        assert_eq!(p.to_string(), "microgrid[2].device[0].profile.sunset_h");
    }
}
