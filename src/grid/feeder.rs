//! A radial distribution feeder: its buses and lines, how it is checked,
//! and the order a solver visits it in. The power-flow models that solve it
//! are in `powerflow`.
//!
//! A [`Feeder`] is a radial network: a tree of `n_buses` buses rooted at
//! bus 0, the *slack* bus (the substation, or the point of common coupling
//! with the upstream grid), whose voltage is held at `v_slack_pu`. Every
//! other bus has exactly one *parent line*: the [`Line`] whose `to` is that
//! bus and whose `from` is the bus one step closer to the slack. Line
//! impedances `r_pu`, `x_pu` are in per unit on the feeder base `base_mva`
//! (and the nominal voltage, which the model never needs explicitly);
//! `rating_mva` is the line's thermal rating. [`Feeder::check`] checks all
//! of this and says what is wrong.
//!

use serde::{Deserialize, Serialize};

use crate::validate::{KeyPath, Validator};

/// The feeder base power when none is given, in MVA.
pub const DEFAULT_BASE_MVA: f64 = 1.0;

/// The slack voltage when none is given, in per unit.
pub const DEFAULT_V_SLACK_PU: f64 = 1.0;

/// Marks "no parent line" for the slack bus in the solver's tables.
pub(crate) const NO_LINE: usize = usize::MAX;

/// A line (or cable, or transformer branch) of a radial feeder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// The upstream bus (closer to the slack bus 0).
    pub from: usize,
    /// The downstream bus; this line is its parent line.
    pub to: usize,
    /// Series resistance, per unit on the feeder base.
    pub r_pu: f64,
    /// Series reactance, per unit on the feeder base.
    pub x_pu: f64,
    /// Thermal rating, in MVA; loading is reported relative to it.
    pub rating_mva: f64,
}

/// A radial distribution feeder rooted at the slack bus 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feeder {
    /// Base power of the per-unit system, in MVA.
    #[serde(default = "default_base_mva")]
    pub base_mva: f64,
    /// Voltage magnitude held at the slack bus 0, in per unit.
    #[serde(default = "default_v_slack_pu")]
    pub v_slack_pu: f64,
    /// Number of buses, the slack included; buses are `0..n_buses`.
    pub n_buses: usize,
    /// The lines: exactly one parent line per bus `1..n_buses`.
    pub lines: Vec<Line>,
}

fn default_base_mva() -> f64 {
    DEFAULT_BASE_MVA
}

fn default_v_slack_pu() -> f64 {
    DEFAULT_V_SLACK_PU
}

/// Why a [`Feeder`] cannot be solved.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FeederError {
    /// The base power is not a positive finite number. Set `base_mva` to the
    /// base the line impedances are expressed on (e.g. 1 or 10 MVA).
    #[error("base_mva must be a positive finite number, got {value}")]
    BaseMva {
        /// The value found.
        value: f64,
    },
    /// The slack voltage is not a positive finite number. Set `v_slack_pu`
    /// to the substation voltage in per unit, typically 1.0.
    #[error("v_slack_pu must be a positive finite number, got {value}")]
    SlackVoltage {
        /// The value found.
        value: f64,
    },
    /// The feeder has no bus at all. A feeder needs at least the slack bus 0.
    #[error("the feeder has no buses; it needs at least the slack bus 0")]
    NoBuses,
    /// A line names a bus that does not exist. Buses are numbered
    /// `0..n_buses`; fix the line or raise `n_buses`.
    #[error(
        "line {line} refers to bus {bus}, but the feeder has only {n_buses} buses (0..{n_buses})"
    )]
    BusOutOfRange {
        /// Index of the line in `lines`.
        line: usize,
        /// The bus it names.
        bus: usize,
        /// The feeder's bus count.
        n_buses: usize,
    },
    /// A line starts and ends at the same bus. Remove it.
    #[error("line {line} connects bus {bus} to itself")]
    SelfLoop {
        /// Index of the line in `lines`.
        line: usize,
        /// The bus.
        bus: usize,
    },
    /// A line ends at the slack bus 0, which has no parent. Lines point away
    /// from the slack: swap `from` and `to`.
    #[error(
        "line {line} ends at the slack bus 0; lines must point away from the slack (swap from and to)"
    )]
    IntoSlack {
        /// Index of the line in `lines`.
        line: usize,
    },
    /// Two lines end at the same bus, which makes a loop or a parallel
    /// path: the feeder must be radial. Remove one of them, or if the line
    /// is drawn backwards, swap its `from` and `to`.
    #[error(
        "bus {bus} has two parent lines ({first_line} and {second_line}); the feeder must be radial"
    )]
    MultipleParents {
        /// The bus.
        bus: usize,
        /// The first line ending at it.
        first_line: usize,
        /// The second line ending at it.
        second_line: usize,
    },
    /// A bus other than the slack has no parent line, so it is not
    /// connected. Add a line ending at it, or lower `n_buses`.
    #[error(
        "bus {bus} has no parent line (no line has to = {bus}); every bus but the slack needs one"
    )]
    NoParent {
        /// The bus.
        bus: usize,
    },
    /// A bus cannot be reached from the slack: the parent lines of some
    /// buses form a loop detached from bus 0. Reconnect them to the tree.
    #[error("bus {bus} is not connected to the slack bus 0 (its parent lines form a loop)")]
    Unreachable {
        /// The first such bus.
        bus: usize,
    },
    /// A line has a negative or non-finite resistance or reactance. Use
    /// non-negative per-unit values on the feeder base.
    #[error("line {line} has r_pu = {r_pu}, x_pu = {x_pu}; both must be finite and >= 0")]
    Impedance {
        /// Index of the line in `lines`.
        line: usize,
        /// The resistance found.
        r_pu: f64,
        /// The reactance found.
        x_pu: f64,
    },
    /// A line's rating is not a positive finite number. Set `rating_mva` to
    /// the line's thermal rating.
    #[error("line {line} has rating_mva = {rating_mva}; it must be a positive finite number")]
    Rating {
        /// Index of the line in `lines`.
        line: usize,
        /// The rating found.
        rating_mva: f64,
    },
}

impl FeederError {
    /// The key of the feeder table at fault.
    pub fn key(&self) -> KeyPath {
        let line = |k: usize| KeyPath::root().key("lines").index(k);
        match *self {
            FeederError::BaseMva { .. } => KeyPath::root().key("base_mva"),
            FeederError::SlackVoltage { .. } => KeyPath::root().key("v_slack_pu"),
            FeederError::NoBuses
            | FeederError::NoParent { .. }
            | FeederError::Unreachable { .. } => KeyPath::root().key("n_buses"),
            FeederError::BusOutOfRange { line: k, .. }
            | FeederError::SelfLoop { line: k, .. }
            | FeederError::IntoSlack { line: k } => line(k).key("to"),
            FeederError::MultipleParents { second_line, .. } => line(second_line).key("to"),
            FeederError::Impedance { line: k, r_pu, .. } => {
                line(k).key(if r_pu.is_finite() && r_pu >= 0.0 {
                    "x_pu"
                } else {
                    "r_pu"
                })
            }
            FeederError::Rating { line: k, .. } => line(k).key("rating_mva"),
        }
    }
}

/// The solver's view of a validated feeder: a visiting order and the parent
/// line of each bus.
#[derive(Clone, Debug)]
pub(crate) struct Topology {
    /// Buses in breadth-first order from the slack: every bus comes after its
    /// parent, so a forward pass goes downstream and a reverse pass upstream.
    pub(crate) order: Vec<usize>,
    /// The parent line of each bus, [`NO_LINE`] for the slack.
    pub(crate) parent_line: Vec<usize>,
    /// `(from, to)` of each line when the topology was built, to notice a
    /// feeder that changed shape since.
    pub(crate) ends: Vec<(usize, usize)>,
}

impl Topology {
    /// Whether this order still describes `feeder` (same buses and line
    /// ends); impedances, ratings, base and slack voltage may differ.
    pub(crate) fn fits(&self, feeder: &Feeder) -> bool {
        feeder.n_buses == self.parent_line.len()
            && feeder.lines.len() == self.ends.len()
            && feeder
                .lines
                .iter()
                .zip(&self.ends)
                .all(|(l, &(from, to))| l.from == from && l.to == to)
    }
}

impl Feeder {
    /// A chain `0 - 1 - 2 - ... - (n_buses - 1)` of identical lines, on the
    /// default base ([`DEFAULT_BASE_MVA`]) with the slack at
    /// [`DEFAULT_V_SLACK_PU`]. Line `k` runs from bus `k` to bus `k + 1`.
    pub fn chain(n_buses: usize, r_pu: f64, x_pu: f64, rating_mva: f64) -> Feeder {
        let lines = (1..n_buses)
            .map(|to| Line {
                from: to - 1,
                to,
                r_pu,
                x_pu,
                rating_mva,
            })
            .collect();
        Feeder {
            base_mva: DEFAULT_BASE_MVA,
            v_slack_pu: DEFAULT_V_SLACK_PU,
            n_buses,
            lines,
        }
    }

    /// The same feeder on another base power, in MVA.
    pub fn with_base_mva(mut self, base_mva: f64) -> Feeder {
        self.base_mva = base_mva;
        self
    }

    /// The same feeder with another slack voltage, in per unit.
    pub fn with_v_slack_pu(mut self, v_slack_pu: f64) -> Feeder {
        self.v_slack_pu = v_slack_pu;
        self
    }

    /// Checks that the feeder is a radial tree rooted at bus 0 with sane
    /// parameters; the error says which line or bus is wrong.
    pub fn check(&self) -> Result<(), FeederError> {
        self.topology().map(|_| ())
    }

    /// [`Feeder::check`] through the validation layer: the problem is
    /// reported at its key (`base_mva`, `lines[3].r_pu`, ...) relative to
    /// the feeder's table.
    pub fn validate(&self, v: &mut Validator) {
        if let Err(e) = self.check() {
            v.fail_at(v.path().join(&e.key()), e.to_string());
        }
    }

    /// Validates and computes the visiting order. Children are visited in
    /// line order, so the order depends only on the feeder.
    pub(crate) fn topology(&self) -> Result<Topology, FeederError> {
        if !(self.base_mva.is_finite() && self.base_mva > 0.0) {
            return Err(FeederError::BaseMva {
                value: self.base_mva,
            });
        }
        if !(self.v_slack_pu.is_finite() && self.v_slack_pu > 0.0) {
            return Err(FeederError::SlackVoltage {
                value: self.v_slack_pu,
            });
        }
        let n = self.n_buses;
        if n == 0 {
            return Err(FeederError::NoBuses);
        }
        let mut parent_line = vec![NO_LINE; n];
        for (k, line) in self.lines.iter().enumerate() {
            for bus in [line.from, line.to] {
                if bus >= n {
                    return Err(FeederError::BusOutOfRange {
                        line: k,
                        bus,
                        n_buses: n,
                    });
                }
            }
            if line.from == line.to {
                return Err(FeederError::SelfLoop {
                    line: k,
                    bus: line.from,
                });
            }
            if line.to == 0 {
                return Err(FeederError::IntoSlack { line: k });
            }
            let impedance_ok = line.r_pu.is_finite()
                && line.r_pu >= 0.0
                && line.x_pu.is_finite()
                && line.x_pu >= 0.0;
            if !impedance_ok {
                return Err(FeederError::Impedance {
                    line: k,
                    r_pu: line.r_pu,
                    x_pu: line.x_pu,
                });
            }
            if !(line.rating_mva.is_finite() && line.rating_mva > 0.0) {
                return Err(FeederError::Rating {
                    line: k,
                    rating_mva: line.rating_mva,
                });
            }
            let slot = &mut parent_line[line.to];
            if *slot != NO_LINE {
                return Err(FeederError::MultipleParents {
                    bus: line.to,
                    first_line: *slot,
                    second_line: k,
                });
            }
            *slot = k;
        }
        if let Some(bus) = (1..n).find(|&b| parent_line[b] == NO_LINE) {
            return Err(FeederError::NoParent { bus });
        }

        // Children in compressed form (offsets into one array), filled in
        // line order so the breadth-first order is a function of the feeder.
        let mut child_start = vec![0usize; n + 1];
        for line in &self.lines {
            child_start[line.from + 1] += 1;
        }
        for b in 0..n {
            child_start[b + 1] += child_start[b];
        }
        let mut fill = child_start.clone();
        let mut children = vec![0usize; self.lines.len()];
        for line in &self.lines {
            children[fill[line.from]] = line.to;
            fill[line.from] += 1;
        }
        let mut order = Vec::with_capacity(n);
        let mut reached = vec![false; n];
        order.push(0);
        reached[0] = true;
        let mut head = 0;
        while head < order.len() {
            let b = order[head];
            head += 1;
            for &c in &children[child_start[b]..child_start[b + 1]] {
                // Each bus has one parent, so a bus is met at most once;
                // the flag only guards the loop detection below.
                if !reached[c] {
                    reached[c] = true;
                    order.push(c);
                }
            }
        }
        if let Some(bus) = reached.iter().position(|&r| !r) {
            return Err(FeederError::Unreachable { bus });
        }
        let ends = self.lines.iter().map(|l| (l.from, l.to)).collect();
        Ok(Topology {
            order,
            parent_line,
            ends,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::powerflow::LinDistFlow;

    #[test]
    fn non_radial_feeders_are_rejected() {
        let mut loop_feeder = Feeder::chain(3, 0.01, 0.01, 1.0);
        loop_feeder.lines.push(Line {
            from: 0,
            to: 2,
            r_pu: 0.01,
            x_pu: 0.01,
            rating_mva: 1.0,
        });
        assert_eq!(
            loop_feeder.check(),
            Err(FeederError::MultipleParents {
                bus: 2,
                first_line: 1,
                second_line: 2
            })
        );
        assert!(LinDistFlow::new(&loop_feeder).is_err());

        // 2 -> 1 -> 2 is a loop detached from the slack; bus 3 hangs off it.
        let mut detached = Feeder::chain(4, 0.01, 0.01, 1.0);
        detached.lines[0].from = 2;
        detached.lines[2].from = 0;
        assert_eq!(detached.check(), Err(FeederError::Unreachable { bus: 1 }));

        let mut missing = Feeder::chain(3, 0.01, 0.01, 1.0);
        missing.lines.pop();
        assert_eq!(missing.check(), Err(FeederError::NoParent { bus: 2 }));

        let mut backwards = Feeder::chain(2, 0.01, 0.01, 1.0);
        backwards.lines[0] = Line {
            from: 1,
            to: 0,
            ..backwards.lines[0].clone()
        };
        assert_eq!(backwards.check(), Err(FeederError::IntoSlack { line: 0 }));
    }

    #[test]
    fn bad_parameters_are_rejected() {
        let ok = Feeder::chain(3, 0.01, 0.01, 1.0);
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(Feeder::chain(1, 0.0, 0.0, 1.0).check(), Ok(()));
        assert_eq!(
            Feeder::chain(0, 0.0, 0.0, 1.0).check(),
            Err(FeederError::NoBuses)
        );
        assert!(matches!(
            ok.clone().with_base_mva(0.0).check(),
            Err(FeederError::BaseMva { .. })
        ));
        assert!(matches!(
            ok.clone().with_v_slack_pu(f64::NAN).check(),
            Err(FeederError::SlackVoltage { .. })
        ));
        assert!(matches!(
            Feeder::chain(3, -0.01, 0.01, 1.0).check(),
            Err(FeederError::Impedance { line: 0, .. })
        ));
        assert!(matches!(
            Feeder::chain(3, 0.01, 0.01, 0.0).check(),
            Err(FeederError::Rating { line: 0, .. })
        ));
        let mut out_of_range = ok.clone();
        out_of_range.lines[1].to = 7;
        assert_eq!(
            out_of_range.check(),
            Err(FeederError::BusOutOfRange {
                line: 1,
                bus: 7,
                n_buses: 3
            })
        );
        let mut self_loop = ok;
        self_loop.lines[1].from = 2;
        assert_eq!(
            self_loop.check(),
            Err(FeederError::SelfLoop { line: 1, bus: 2 })
        );
    }

    #[test]
    fn feeder_reads_from_toml() {
        let text =
            "n_buses = 2\n[[lines]]\nfrom = 0\nto = 1\nr_pu = 0.01\nx_pu = 0.02\nrating_mva = 1\n";
        let feeder: Feeder = toml::from_str(text).unwrap();
        assert_eq!(feeder, Feeder::chain(2, 0.01, 0.02, 1.0));
        assert!(toml::from_str::<Feeder>("n_buses = 1\nlines = []\nbogus = 1\n").is_err());
    }

    #[test]
    fn feeder_problems_are_reported_at_their_key() {
        let mut bad = Feeder::chain(3, 0.01, 0.01, 1.0).with_base_mva(0.0);
        bad.lines[1].r_pu = -1.0;
        let mut v = Validator::at_path(KeyPath::root().key("feeder"));
        bad.validate(&mut v);
        let err = v.finish().unwrap_err();
        // The first problem found is the base; the check stops there.
        assert_eq!(err.issues[0].path.to_string(), "feeder.base_mva");
        let bad = Feeder::chain(3, 0.01, 0.01, 1.0);
        let mut with_bad_line = bad.clone();
        with_bad_line.lines[1].x_pu = f64::NAN;
        assert_eq!(
            with_bad_line.check().unwrap_err().key().to_string(),
            "lines[1].x_pu"
        );
        let mut v = Validator::new();
        bad.validate(&mut v);
        assert!(v.is_ok());
    }
}
