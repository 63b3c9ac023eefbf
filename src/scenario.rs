//! TOML scenario files: parse, validate, and build simulations from them.
//!
//! Every error names the file, the line and column, and the key, e.g.
//! `scenarios/x.toml:14:1: network.link[0].loss: loss is a probability in
//! [0, 1], got 1.5`, and every semantic problem in a file is reported, not
//! just the first. Unknown keys are rejected. The spec deserializes straight
//! into the engine's own types (`[limits]` is [`Limits`], `[broker]` is
//! [`BrokerConfig`], `[network]` is [`NetworkSpec`], `[grid]` is
//! [`GridSpec`]), and is checked by the same validation layer as
//! [`SimBuilder`]; `error.rs` turns key paths into lines and columns.
//!
//! A [`Scenario`] exists only validated: its spec is private, so the only
//! way to a simulation is through [`Scenario::parse`] (or
//! [`Scenario::from_file`], [`Scenario::from_spec`]).
//!
//! See the README for the format, with examples.

mod error;
mod overrides;

pub use error::{Located, ScenarioError};
pub use overrides::{Override, OverrideError};

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::builtin::{Periodic, Relay, Sink};
use crate::broker::{BrokerConfig, Delivery};
use crate::grid::{GridPlan, GridSpec, MicrogridSpec, protocol};
use crate::message::{MessageKind, env_prefix};
use crate::metrics::Summary;
use crate::network::{FaultSpec, NetworkSpec};
use crate::sim::ClockSpec;
use crate::sim::{Limits, SimBuilder, SimError, Simulation};
use crate::tagged::tagged_enum;
use crate::time::{SimDuration, SimTime};
use crate::trace::Header;
use crate::validate::{Invalid, KeyPath, Validator, check_agent_name, check_unique};

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
    /// Keep the payloads published in the trace file (`run --trace`,
    /// `batch --traces`), at most this many bytes of each (1..=65536);
    /// absent: keep none. Exported by `busbar export --format jsonl` and
    /// shown by `busbar show`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_payloads: Option<u32>,
    /// The order of events scheduled for the same instant: `fifo` (the
    /// default) or `seeded`, a permutation drawn from the seed, to explore
    /// interleavings ([`TieBreak`](crate::sim::TieBreak)).
    #[serde(default, skip_serializing_if = "is_fifo")]
    pub tie_break: crate::sim::TieBreak,
    /// How links draw their delays: `sampled` (the default) from their
    /// latency models, or `adversarial`: each delay the smallest or the
    /// largest of its model's range, by a seeded coin, to provoke
    /// reorderings ([`Delays`](crate::network::Delays)).
    #[serde(default, skip_serializing_if = "is_sampled")]
    pub delays: crate::network::Delays,
}

fn is_sampled(d: &crate::network::Delays) -> bool {
    *d == crate::network::Delays::Sampled
}

fn is_fifo(t: &crate::sim::TieBreak) -> bool {
    *t == crate::sim::TieBreak::Fifo
}

impl SimulationSpec {
    fn validate(&self, v: &mut Validator) {
        v.check(!self.name.trim().is_empty(), "name", || {
            "name must not be empty".into()
        });
        v.at_least_one("duration", self.duration.as_nanos());
        if let Some(l) = self.trace_payloads {
            v.check(
                (1..=crate::trace::MAX_PAYLOAD_LIMIT).contains(&l),
                "trace_payloads",
                || {
                    format!(
                        "trace_payloads must be in 1..={} bytes, got {l}",
                        crate::trace::MAX_PAYLOAD_LIMIT
                    )
                },
            );
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
            /// Message kind: `info` (the default), a grid kind
            /// (`action`, `device_action`, `state_update`, `network_state`)
            /// or `custom:N`.
            #[serde(default = "default_kind")]
            kind: KindName,
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
            /// Channels to subscribe to: names or MQTT topic filters
            /// (`{env}/agent/+/state`, `{env}/#`); `{env}` is replaced.
            channels: Vec<String>,
            /// `push` (default) or `pull`.
            #[serde(default = "default_delivery")]
            delivery: Delivery,
            /// Age beyond which an arrival is late.
            #[serde(default)]
            deadline: Option<SimDuration>,
            /// Join this consumer group on each channel instead of
            /// subscribing (channel names only, no filters;
            /// docs/broker_groups.md).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            group: Option<String>,
        },
        /// Forwards every message it receives on `channels` to `channel`
        /// (same payload and kind, broadcast): a gateway, or a controller
        /// passing state on. The forwarded message causally follows the
        /// one received.
        Relay {
            /// Unique agent name.
            name: String,
            /// Channels to subscribe to (names, not filters); `{env}` is
            /// replaced.
            channels: Vec<String>,
            /// The channel to publish on; not one of `channels`.
            channel: String,
        },
    }
}

fn default_kind() -> KindName {
    KindName(MessageKind::INFO)
}

/// A message kind written by its name in a scenario: `info`, a grid kind or
/// `custom:N`, read and written through the grid protocol's name table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindName(pub MessageKind);

impl Serialize for KindName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&protocol::kind_names().name(self.0))
    }
}

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        protocol::kind_names()
            .parse(&name)
            .map(KindName)
            .map_err(serde::de::Error::custom)
    }
}

fn default_delivery() -> Delivery {
    Delivery::Push
}

impl AgentSpec {
    /// The agent's name.
    pub fn name(&self) -> &str {
        match self {
            AgentSpec::Periodic { name, .. }
            | AgentSpec::Sink { name, .. }
            | AgentSpec::Relay { name, .. } => name,
        }
    }

    /// Checks the table (keys relative to it); `is_agent` tells which names
    /// exist, for `to`.
    fn validate(&self, v: &mut Validator, is_agent: &dyn Fn(&str) -> bool) {
        if let Err(m) = check_agent_name(self.name()) {
            v.fail("name", m);
        }
        match self {
            AgentSpec::Periodic {
                period,
                to,
                channel,
                ..
            } => {
                v.at_least_one("period", period.as_nanos());
                v.check(!channel.is_empty(), "channel", || {
                    "channel must not be empty".into()
                });
                if let Some(to) = to {
                    v.check(is_agent(to), "to", || format!("no agent is called {to:?}"));
                }
            }
            AgentSpec::Relay {
                channels, channel, ..
            } => {
                v.check(!channel.is_empty(), "channel", || {
                    "channel must not be empty".into()
                });
                v.check(!channels.is_empty(), "channels", || {
                    "list at least one channel".into()
                });
                for (i, c) in channels.iter().enumerate() {
                    v.at("channels", |v| {
                        v.index(i, |v| {
                            v.check(
                                !c.is_empty() && !crate::broker::topic::is_wildcard(c),
                                "",
                                || format!("{c:?}: a relay subscribes to channel names, not filters"),
                            );
                            v.check(c != channel, "", || {
                                format!("{c:?} is the channel the relay publishes on: it would forward its own messages forever")
                            });
                        })
                    });
                }
            }
            AgentSpec::Sink {
                channels, group, ..
            } => {
                v.check(!channels.is_empty(), "channels", || {
                    "list at least one channel".into()
                });
                if let Some(g) = group {
                    if let Err(m) = crate::broker::check_group_name(g) {
                        v.fail("group", m);
                    }
                    for (i, c) in channels.iter().enumerate() {
                        v.at("channels", |v| {
                            v.index(i, |v| {
                                v.check(!crate::broker::topic::is_wildcard(c), "", || {
                                    format!(
                                        "{c:?} is a topic filter; a sink with a group joins it on channel names only"
                                    )
                                });
                            })
                        });
                    }
                }
                for (i, c) in channels.iter().enumerate() {
                    v.at("channels", |v| {
                        v.index(i, |v| {
                            if !v.check(!c.is_empty(), "", || {
                                "a channel name must not be empty".into()
                            }) {
                                return;
                            }
                            let filter = c.replace("{env}", "env0");
                            if let Err(m) = crate::broker::topic::check_filter(&filter) {
                                v.fail("", m);
                            }
                        })
                    });
                }
            }
        }
    }
}

/// A whole scenario file: plain data that round-trips through TOML. Turn it
/// into a [`Scenario`] with [`Scenario::from_spec`], which validates it.
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
    #[serde(default, rename = "microgrid", skip_serializing_if = "Vec::is_empty")]
    pub microgrids: Vec<MicrogridSpec>,
    /// `[[agent]]`: general-purpose agents.
    #[serde(default, rename = "agent", skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentSpec>,
    /// `[[fault]]`: link failures, partitions, degradations, crashes and
    /// broker outages, scheduled or random.
    #[serde(default, rename = "fault", skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
    /// `[[clock]]`: agents whose clocks are offset from virtual time or
    /// drift.
    #[serde(default, rename = "clock", skip_serializing_if = "Vec::is_empty")]
    pub clocks: Vec<ClockSpec>,
}

impl ScenarioSpec {
    /// Checks everything (loading CSV profiles from `base_dir`), reporting
    /// every problem at its key.
    fn validate(&mut self, base_dir: &Path) -> Result<(), Invalid> {
        let mut v = Validator::new();
        v.at("simulation", |v| self.simulation.validate(v));
        v.at("limits", |v| self.limits.validate(v));
        v.at("broker", |v| {
            self.broker.load(base_dir, v);
            self.broker.validate(v);
        });
        v.at("grid", |v| {
            self.grid.validate(v);
            self.grid.load_feeder(base_dir, v);
        });
        let case = self.grid.feeder_case.0.clone();
        crate::grid::validate_microgrids(&mut self.microgrids, base_dir, case.as_deref(), &mut v);
        v.at("network", |v| self.network.load(base_dir, v));
        let (duration, max) = (self.simulation.duration, self.limits.max_sim_time);
        v.at("simulation", |v| {
            v.check(duration <= max, "duration", || {
                format!(
                    "duration {duration} is longer than limits.max_sim_time = {max}; raise \
                     [limits] max_sim_time if the run is meant to be this long"
                )
            })
        });

        // Bound the expansion before doing it: `count` may ask for billions.
        let grid_agents = crate::grid::agent_count(&self.microgrids);
        let total = grid_agents.saturating_add(self.agents.len() as u64);
        if let Some(m) = crate::sim::too_many_agents(total, &self.limits) {
            // Point at the largest `count`, or at the agents.
            let largest = (0..self.microgrids.len())
                .filter(|&i| self.microgrids[i].count.is_some())
                .max_by_key(|&i| self.microgrids[i].count);
            let at = match largest {
                Some(i) => KeyPath::root().key("microgrid").index(i).key("count"),
                None => KeyPath::root().key("agent"),
            };
            v.fail_at(at, m);
            return v.finish();
        }

        // Names: one rule (checked where each name is written), unique
        // across grid and general agents.
        let mut names = crate::grid::agent_names(&self.microgrids);
        for (i, a) in self.agents.iter().enumerate() {
            let at = KeyPath::root().key("agent").index(i).key("name");
            names.push((a.name().to_string(), at));
        }
        check_unique(&mut v, names.iter().map(|(n, at)| (n.as_str(), at.clone())));
        let known: BTreeSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        let is_agent = |n: &str| known.contains(n);
        v.at("agent", |v| {
            for (i, a) in self.agents.iter().enumerate() {
                v.index(i, |v| a.validate(v, &is_agent));
            }
        });
        let agent_refs: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
        v.at("network", |v| self.network.validate(v, &agent_refs));
        let agent_names: Vec<String> = names.iter().map(|(n, _)| n.clone()).collect();
        v.at("fault", |v| {
            crate::sim::resolve_faults(&self.network, &self.faults, &agent_names, 0, 0, v);
        });
        v.at("clock", |v| {
            crate::sim::resolve_clocks(&self.clocks, &agent_names, v);
        });
        v.finish()
    }
}

/// Why a scenario run failed after loading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The simulation could not be built (should not happen for a validated
    /// scenario; reported rather than panicking).
    #[error("cannot build simulation: {0}")]
    Build(#[from] Invalid),
    /// The run stopped with an error (a limit, or trace output).
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// A loaded, validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    spec: ScenarioSpec,
    grid: GridPlan,
    text: String,
    source: String,
    base_dir: PathBuf,
}

/// How many events [`Scenario::run_to_end`] processes between two calls of
/// its hook.
pub const HOOK_EVERY_EVENTS: u64 = 4096;

impl Scenario {
    /// Reads, parses and validates a scenario file. Relative paths inside it
    /// (CSV profiles) are resolved from the file's directory.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::from_file_with(path, &[])
    }

    /// [`Scenario::from_file`] with `overrides` applied (see
    /// [`Scenario::parse_with`]).
    pub fn from_file_with(path: &Path, overrides: &[Override]) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = crate::files::read_text(path, "scenario", crate::files::MAX_SCENARIO_BYTES)
            .map_err(|e| ScenarioError::Io {
                file: file.clone(),
                message: e.detail(),
            })?;
        let base = path.parent().unwrap_or(Path::new("."));
        // Absolute, so a trace header can point a replay at it from anywhere.
        let base = std::fs::canonicalize(if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        })
        .unwrap_or_else(|_| base.to_path_buf());
        Scenario::parse_with(&text, &file, &base, overrides)
    }

    /// Parses and validates scenario text; `source` names it in errors and
    /// `base_dir` resolves relative paths.
    pub fn parse(text: &str, source: &str, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        Scenario::parse_with(text, source, base_dir, &[])
    }

    /// [`Scenario::parse`], with `overrides` (`--set key=value`) applied in
    /// order before the scenario is validated. A problem with an overridden
    /// value is reported at the override (`--set network.default.loss=2:
    /// ...`), every other one in the file. The scenario's
    /// [`text`](Scenario::text) is then the TOML of the result, so a trace
    /// of it replays without the overrides.
    pub fn parse_with(
        text: &str,
        source: &str,
        base_dir: &Path,
        overrides: &[Override],
    ) -> Result<Scenario, ScenarioError> {
        let toml_error = |e: &toml::de::Error, path: Option<&serde_path_to_error::Path>| {
            ScenarioError::from_toml(source, text, overrides, e, path)
        };
        let (mut spec, effective): (ScenarioSpec, String) = if overrides.is_empty() {
            let de = toml::Deserializer::parse(text).map_err(|e| toml_error(&e, None))?;
            let spec = serde_path_to_error::deserialize(de)
                .map_err(|e| toml_error(e.inner(), Some(e.path())))?;
            (spec, text.to_string())
        } else {
            let mut doc: toml::Table = text.parse().map_err(|e| toml_error(&e, None))?;
            for o in overrides {
                o.apply(&mut doc)
                    .map_err(|message| ScenarioError::Invalid {
                        file: source.to_string(),
                        problems: vec![Located {
                            line: 0,
                            column: 0,
                            set: Some(o.text().to_string()),
                            key: o.key().to_string(),
                            message,
                        }],
                    })?;
            }
            let rendered = toml::to_string(&doc).map_err(|e| ScenarioError::Io {
                file: source.to_string(),
                message: format!("cannot render the overridden scenario as TOML: {e}"),
            })?;
            let spec = serde_path_to_error::deserialize(toml::Value::Table(doc))
                .map_err(|e| toml_error(e.inner(), Some(e.path())))?;
            (spec, rendered)
        };
        spec.validate(base_dir)
            .map_err(|e| ScenarioError::from_invalid(source, text, overrides, e))?;
        let grid = GridPlan::new(spec.grid.clone(), spec.microgrids.clone()).map_err(|e| {
            let invalid = Invalid::one(KeyPath::root().key("grid"), e.to_string());
            ScenarioError::from_invalid(source, text, overrides, invalid)
        })?;
        Ok(Scenario {
            spec,
            grid,
            text: effective,
            source: source.to_string(),
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// Validates a spec built in code (e.g. a parameter sweep). It is
    /// rendered as TOML, which is what traces embed and what errors locate.
    pub fn from_spec(
        spec: &ScenarioSpec,
        source: &str,
        base_dir: &Path,
    ) -> Result<Scenario, ScenarioError> {
        let text = toml::to_string(spec).map_err(|e| ScenarioError::Io {
            file: source.to_string(),
            message: format!("cannot render the scenario as TOML: {e}"),
        })?;
        Scenario::parse(&text, source, base_dir)
    }

    /// The validated contents.
    pub fn spec(&self) -> &ScenarioSpec {
        &self.spec
    }

    /// The scenario's text, as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where it was read from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The directory relative paths inside the scenario are resolved from.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
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

    /// The virtual time at which a run ends.
    pub fn end(&self) -> SimTime {
        SimTime::ZERO + self.duration()
    }

    /// The same scenario with every microgrid's power flow built by
    /// `factory` instead of the `[grid] power_flow` model (see
    /// [`PowerFlowFactory`](crate::grid::PowerFlowFactory)). The scenario
    /// text, and so a trace's header, is unchanged: a replay runs the
    /// model the file names.
    pub fn with_power_flow(mut self, factory: crate::grid::PowerFlowFactory) -> Scenario {
        self.grid = self.grid.with_power_flow(factory);
        self
    }

    /// The grid part: settings, microgrids, and how many after expansion.
    pub fn grid(&self) -> &GridPlan {
        &self.grid
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
            payload_limit: self.spec.simulation.trace_payloads,
        }
    }

    /// The files the scenario reads besides itself (CSV profiles), as the
    /// paths they are opened by, in the order of the file.
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for mg in &self.spec.microgrids {
            for device in &mg.devices {
                if let Some(crate::grid::profile::Profile::Csv { path, .. }) =
                    device.kind().profile()
                {
                    files.push(self.base_dir.join(path));
                }
            }
        }
        if let Some(f) = &self.spec.grid.feeder {
            files.push(self.base_dir.join(f));
        }
        let network = self.spec.network.files().into_iter();
        files.extend(network.map(|p| self.base_dir.join(p)));
        let broker = self.spec.broker.files().into_iter();
        files.extend(broker.map(|p| self.base_dir.join(p)));
        files
    }

    /// Every agent name the scenario defines, in id order.
    pub fn agent_names(&self) -> Vec<String> {
        let mut names: Vec<String> = crate::grid::agent_names(&self.spec.microgrids)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.extend(self.spec.agents.iter().map(|a| a.name().to_string()));
        names
    }

    /// The resolved network as text: every directed link with its model,
    /// and every agent's route of more than one hop
    /// ([`NetworkSpec::explain`]; `busbar check --explain`).
    pub fn explain_network(&self) -> String {
        // Validated already, so this cannot fail; if it did, say why.
        let names = self.agent_names();
        self.spec
            .network
            .explain(&names)
            .unwrap_or_else(|e| format!("{e}\n"))
    }

    /// A builder for environment `env` with `seed`: agents, links, broker,
    /// limits and kind names set, trace left at the default (digest only).
    /// Add a trace target and call `build`.
    pub fn builder(&self, seed: u64, env: u32) -> SimBuilder {
        let spec = &self.spec;
        let mut b = SimBuilder::new(seed)
            .env(env)
            .name(&spec.simulation.name)
            .limits(spec.limits.clone())
            .broker(spec.broker.clone())
            .network(spec.network.clone())
            .faults(spec.faults.clone())
            .clocks(spec.clocks.clone())
            .keep_payloads(spec.simulation.trace_payloads)
            .tie_break(spec.simulation.tie_break)
            .delays(spec.simulation.delays)
            .kind_names(protocol::kind_names());
        b = self.grid.add_agents(b);
        let prefix = env_prefix(env);
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
                        .kind(kind.0)
                        .limit(*count)
                        .to(to.clone()),
                ),
                AgentSpec::Sink {
                    name,
                    channels,
                    delivery,
                    deadline,
                    group,
                } => {
                    let chans: Vec<String> = channels
                        .iter()
                        .map(|c| c.replace("{env}", &prefix))
                        .collect();
                    b.agent(
                        name,
                        Sink::new(&chans, *delivery, *deadline).group(group.clone()),
                    )
                }
                AgentSpec::Relay {
                    name,
                    channels,
                    channel,
                } => {
                    let chans: Vec<String> = channels
                        .iter()
                        .map(|c| c.replace("{env}", &prefix))
                        .collect();
                    b.agent(name, Relay::new(&chans, &channel.replace("{env}", &prefix)))
                }
            };
        }
        b
    }

    /// Builds environment `env` with `seed` and the default trace (digest).
    pub fn build(&self, seed: u64, env: u32) -> Result<Simulation, Invalid> {
        self.builder(seed, env).build()
    }

    /// Runs a simulation of this scenario to its end: every event at or
    /// before [`Scenario::end`], then the clock at the end. This is the one
    /// way a scenario is run — by [`Scenario::run`], the CLI and replay.
    ///
    /// `hook` is called after every [`HOOK_EVERY_EVENTS`] events and once at
    /// the end, with the simulation (to draw progress, or to take records
    /// as they come); returning `Break` stops the run there. On a limit the
    /// error is returned and the simulation can still
    /// [`finish`](Simulation::finish) (writing a partial trace).
    pub fn run_to_end(
        &self,
        sim: &mut Simulation,
        mut hook: impl FnMut(&mut Simulation) -> ControlFlow<()>,
    ) -> Result<(), SimError> {
        let end = self.end();
        loop {
            let done = sim.advance(end, HOOK_EVERY_EVENTS)?;
            if hook(sim).is_break() || done {
                return Ok(());
            }
        }
    }

    /// Runs a simulation built from this scenario to its end and finishes
    /// it (trace footer written), returning the summary.
    pub fn run_sim(&self, sim: &mut Simulation) -> Result<Summary, RunError> {
        self.run_to_end(sim, |_| ControlFlow::Continue(()))?;
        Ok(sim.finish()?)
    }

    /// Builds and runs environment `env` with `seed` (digest-only trace).
    pub fn run(&self, seed: u64, env: u32) -> Result<Summary, RunError> {
        let mut sim = self.build(seed, env)?;
        self.run_sim(&mut sim)
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
        let e = Scenario::parse(text, "t.toml", Path::new(".")).unwrap_err();
        let p = e
            .problems()
            .first()
            .unwrap_or_else(|| panic!("{e}"))
            .clone();
        (p.line, p.column, p.key, p.message)
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
    fn a_relay_forwards_and_may_not_feed_itself() {
        let relay =
            "\n[[agent]]\ntype = \"relay\"\nname = \"r\"\nchannels = [\"x\"]\nchannel = \"x\"\n";
        let (_, _, key, msg) = err(&format!("{MINIMAL}{relay}"));
        assert_eq!(key, "agent[2].channels[0]");
        assert!(msg.contains("forever"), "{msg}");
        let filter = relay.replace("[\"x\"]", "[\"a/#\"]");
        let (_, _, key, msg) = err(&format!("{MINIMAL}{filter}"));
        assert_eq!(key, "agent[2].channels[0]");
        assert!(msg.contains("not filters"), "{msg}");
        // A relay from the periodic agent's channel to another: each of
        // the 11 messages (0 to 1 s, every 100 ms) is published again but
        // the last, which reaches the relay after the run's end.
        let ok = format!("{MINIMAL}{}", relay.replace("[\"x\"]", "[\"{env}/x\"]"));
        let ok = ok.replace("channel = \"x\"", "channel = \"{env}/y\"");
        let s = Scenario::parse(&ok, "t.toml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
        let summary = s.run(1, 0).unwrap();
        assert_eq!(summary.published, 11 + 10);
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
        use super::error::line_col;
        assert_eq!(line_col("ab\ncdé\nf", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nf", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nf", 6), (2, 3));
        assert_eq!(line_col("ab\ncdé\nf", 8), (3, 1));
    }

    #[test]
    fn every_semantic_error_is_reported_at_its_line() {
        let text = MINIMAL
            .replace("period = \"100ms\"", "period = \"0s\"")
            .replace("channels = [\"{env}/x\"]", "channels = []")
            + "\n[limits]\nmax_events = 0\n\n[[network.link]]\nfrom = \"ghost\"\nto = \"broker\"\nloss = 2.0\n";
        let e = Scenario::parse(&text, "t.toml", Path::new(".")).unwrap_err();
        let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "agent[0].period",
                "agent[1].channels",
                "limits.max_events",
                "network.link[0].from",
                "network.link[0].loss"
            ],
            "{e}"
        );
        assert_eq!(e.to_string().lines().count(), 5);
        let lines: Vec<usize> = e.problems().iter().map(|p| p.line).collect();
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "in file order: {e}");
    }

    #[test]
    fn message_kinds_are_read_by_name_and_located() {
        let text = MINIMAL.replace(
            "period = \"100ms\"",
            "period = \"100ms\"\nkind = \"state_update\"",
        );
        let s = Scenario::parse(&text, "t.toml", Path::new(".")).unwrap();
        let AgentSpec::Periodic { kind, .. } = &s.spec().agents[0] else {
            panic!("a periodic agent")
        };
        assert_eq!(kind.0, protocol::STATE_UPDATE);
        assert!(
            toml::to_string(s.spec())
                .unwrap()
                .contains("kind = \"state_update\"")
        );
        let (line, _, key, msg) = err(&text.replace("state_update", "bogus"));
        assert_eq!((line, key.as_str()), (11, "agent[0].kind"));
        assert!(msg.contains("custom:N"), "{msg}");
    }

    #[test]
    fn grid_keys_in_the_old_place_say_where_they_moved() {
        let text = MINIMAL.replace("duration = \"1s\"", "duration = \"1s\"\nstep = \"1s\"");
        let (line, _, key, msg) = err(&text);
        assert_eq!((line, key.as_str()), (5, "simulation.step"));
        assert!(msg.contains("[grid]"), "{msg}");
    }

    #[test]
    fn a_spec_round_trips_through_from_spec() {
        let s = Scenario::parse(MINIMAL, "t.toml", Path::new(".")).unwrap();
        let again = Scenario::from_spec(s.spec(), "gen.toml", Path::new(".")).unwrap();
        assert_eq!(again.spec(), s.spec());
        assert_eq!(again.run(3, 0).unwrap().digest, s.run(3, 0).unwrap().digest);
        let mut bad = s.spec().clone();
        bad.simulation.duration = SimDuration::ZERO;
        let e = Scenario::from_spec(&bad, "gen.toml", Path::new(".")).unwrap_err();
        assert_eq!(e.problems()[0].key, "simulation.duration");
    }
}
