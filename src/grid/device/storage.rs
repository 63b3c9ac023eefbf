//! Storage (`type = "storage"`): a battery with an energy capacity, a power
//! limit, state-of-charge (SOC) limits and a one-way efficiency applied both
//! when charging and when discharging. It is the balancing device: its grid
//! agent drives it with the price-band storage policy
//! ([`storage_setpoint`]), and the environment leaves it out of the
//! microgrid's net load.

use serde::{Deserialize, Serialize};

use crate::grid::device::{
    ControlInput, DeviceKind, DeviceModel, DeviceOutput, Setpoint, inverter_q_mvar,
};
use crate::grid::policy::{PolicyParams, storage_setpoint, volt_var_q};
use crate::grid::profile::non_negative;
use crate::rng::RngStream;
use crate::validate::Validator;

/// A battery (`type = "storage"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    /// Unique id of the device within its microgrid.
    pub id: String,
    /// Feeder bus; the caller assigns a default when absent.
    #[serde(default)]
    pub bus: Option<usize>,
    /// Usable energy capacity at SOC 1.0, MWh. Must be > 0.
    pub capacity_mwh: f64,
    /// Power limit, both directions, MW. Must be > 0.
    pub p_max_mw: f64,
    /// SOC at the start, fraction of capacity. Default 0.5.
    #[serde(default = "default_soc_init")]
    pub soc_init: f64,
    /// Lowest SOC the battery may reach. Default 0.0.
    #[serde(default)]
    pub soc_min: f64,
    /// Highest SOC the battery may reach. Default 1.0.
    #[serde(default = "default_soc_max")]
    pub soc_max: f64,
    /// One-way efficiency, applied when charging (energy stored = energy
    /// in × efficiency) and when discharging (energy out = energy drawn ×
    /// efficiency), in `(0, 1]`. Default 0.95.
    #[serde(default = "default_efficiency")]
    pub efficiency: f64,
    /// Apparent-power rating of the inverter, MVA, at least `p_max_mw`:
    /// what bounds its reactive power beside its active power (volt-VAr).
    /// Default `p_max_mw`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_rated_mva: Option<f64>,
}

fn default_soc_init() -> f64 {
    0.5
}

fn default_soc_max() -> f64 {
    1.0
}

fn default_efficiency() -> f64 {
    0.95
}

impl DeviceKind for StorageSpec {
    fn id(&self) -> &str {
        &self.id
    }

    fn bus(&self) -> Option<usize> {
        self.bus
    }

    fn validate(&self, v: &mut Validator) {
        v.positive("capacity_mwh", self.capacity_mwh);
        v.positive("p_max_mw", self.p_max_mw);
        let fractions = v.fraction("soc_min", self.soc_min)
            & v.fraction("soc_max", self.soc_max)
            & v.fraction("soc_init", self.soc_init);
        if fractions {
            let ordered = v.check(self.soc_min <= self.soc_max, "soc_max", || {
                format!(
                    "soc_max must be >= soc_min ({}), got {}",
                    self.soc_min, self.soc_max
                )
            });
            if ordered {
                v.check(
                    (self.soc_min..=self.soc_max).contains(&self.soc_init),
                    "soc_init",
                    || {
                        format!(
                            "soc_init must be between soc_min ({}) and soc_max ({}), got {}",
                            self.soc_min, self.soc_max, self.soc_init
                        )
                    },
                );
            }
        }
        v.check(
            self.efficiency > 0.0 && self.efficiency <= 1.0,
            "efficiency",
            || format!("efficiency must be in (0, 1], got {}", self.efficiency),
        );
        if let Some(s) = self.s_rated_mva {
            v.check(s.is_finite() && s >= self.p_max_mw, "s_rated_mva", || {
                format!(
                    "s_rated_mva must be at least p_max_mw ({}), got {s}",
                    self.p_max_mw
                )
            });
        }
    }

    fn balancing(&self) -> bool {
        true
    }

    fn setpoint(&self, policy: &PolicyParams, input: &ControlInput) -> f64 {
        storage_setpoint(
            policy,
            input.price,
            input.net_load_share_mw,
            self.p_max_mw,
            input.v_min_pu,
        )
    }

    fn q_setpoint(&self, policy: &PolicyParams, input: &ControlInput) -> f64 {
        volt_var_q(policy, input.v_bus_pu)
    }

    fn model(&self) -> Box<dyn DeviceModel> {
        Box::new(Storage::new(self.clone()))
    }
}

/// A battery's state: its spec and its state of charge.
///
/// The spec is expected to be valid ([`StorageSpec::validate`]); an invalid
/// one never panics, but a battery with no capacity or efficiency simply
/// delivers nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Storage {
    spec: StorageSpec,
    soc: f64,
}

impl Storage {
    /// A battery at its initial SOC.
    pub fn new(spec: StorageSpec) -> Storage {
        let soc = spec.soc_init;
        Storage { spec, soc }
    }

    /// The spec.
    pub fn spec(&self) -> &StorageSpec {
        &self.spec
    }

    /// State of charge, fraction of capacity.
    pub fn soc(&self) -> f64 {
        self.soc
    }

    /// Stored energy, MWh.
    pub fn energy_mwh(&self) -> f64 {
        self.soc * self.spec.capacity_mwh
    }

    /// Applies `setpoint_mw` (positive = discharge into the grid, negative =
    /// charge) for `dt_s` seconds and returns the power actually exchanged
    /// with the grid, MW, with the same sign convention. (Reactive power,
    /// from the volt-VAr set point, is added by the device model.)
    ///
    /// The setpoint is clamped to `±p_max_mw`, then to what the SOC limits
    /// allow over `dt_s`: delivering `p` draws `p · dt / efficiency` from
    /// the cells; charging at `p` stores `p · dt · efficiency`. A
    /// non-finite setpoint or a non-positive `dt_s` delivers nothing and
    /// leaves the SOC unchanged.
    pub fn step(&mut self, setpoint_mw: f64, dt_s: f64) -> f64 {
        let s = &self.spec;
        let usable = setpoint_mw.is_finite()
            && dt_s.is_finite()
            && dt_s > 0.0
            && s.capacity_mwh > 0.0
            && s.efficiency > 0.0
            && s.p_max_mw > 0.0;
        if !usable {
            return 0.0;
        }
        let dt_h = dt_s / 3600.0;
        let cap = s.capacity_mwh;
        let eff = s.efficiency;
        if setpoint_mw > 0.0 {
            let stored_mwh = non_negative((self.soc - s.soc_min) * cap);
            let p_mw = setpoint_mw.min(s.p_max_mw).min(stored_mwh * eff / dt_h);
            // Rounding may overshoot the limit by an ulp; the clamp keeps
            // the invariant `soc >= soc_min` exact.
            self.soc = (self.soc - p_mw * dt_h / (eff * cap)).max(s.soc_min);
            p_mw
        } else if setpoint_mw < 0.0 {
            let room_mwh = non_negative((s.soc_max - self.soc) * cap);
            let p_mw = (-setpoint_mw).min(s.p_max_mw).min(room_mwh / (eff * dt_h));
            self.soc = (self.soc + p_mw * dt_h * eff / cap).min(s.soc_max);
            -p_mw
        } else {
            0.0
        }
    }
}

impl DeviceModel for Storage {
    fn advance(
        &mut self,
        setpoint: Setpoint,
        _t_s: f64,
        dt_s: f64,
        _rng: &mut RngStream,
    ) -> DeviceOutput {
        let p_mw = self.step(setpoint.p, dt_s);
        let s_rated = self.spec.s_rated_mva.unwrap_or(self.spec.p_max_mw);
        DeviceOutput {
            p_mw,
            q_mvar: inverter_q_mvar(setpoint.q_pu, s_rated, p_mw),
            soc: self.soc(),
        }
    }

    fn soc(&self) -> Option<f64> {
        Some(self.soc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn storage_spec() -> StorageSpec {
        StorageSpec {
            id: "b".into(),
            bus: None,
            capacity_mwh: 2.0,
            p_max_mw: 1.0,
            soc_init: 0.5,
            soc_min: 0.1,
            soc_max: 0.9,
            efficiency: 0.9,
            s_rated_mva: None,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn charging_stores_energy_times_efficiency() {
        let mut b = Storage::new(storage_spec());
        let p = b.step(-0.5, 3600.0);
        assert_eq!(p, -0.5);
        // 0.5 MWh in, 0.45 MWh stored, on 2 MWh: +0.225.
        assert!(close(b.soc(), 0.725), "{}", b.soc());
    }

    #[test]
    fn discharging_draws_energy_over_efficiency() {
        let mut b = Storage::new(storage_spec());
        let p = b.step(0.45, 3600.0);
        assert_eq!(p, 0.45);
        // 0.45 MWh out draws 0.5 MWh: -0.25.
        assert!(close(b.soc(), 0.25), "{}", b.soc());
    }

    #[test]
    fn round_trip_loses_efficiency_squared() {
        let mut b = Storage::new(storage_spec());
        let e0 = b.energy_mwh();
        let mut into_grid_mwh = 0.0;
        let mut from_grid_mwh = 0.0;
        for _ in 0..60 {
            from_grid_mwh -= b.step(-0.3, 60.0) * 60.0 / 3600.0;
        }
        let e1 = b.energy_mwh();
        assert!(close(e1 - e0, from_grid_mwh * 0.9));
        for _ in 0..60 {
            into_grid_mwh += b.step(0.2, 60.0) * 60.0 / 3600.0;
        }
        assert!(close(e1 - b.energy_mwh(), into_grid_mwh / 0.9));
    }

    #[test]
    fn power_is_clamped_to_p_max() {
        let mut b = Storage::new(storage_spec());
        assert_eq!(b.step(5.0, 1.0), 1.0);
        assert_eq!(b.step(-5.0, 1.0), -1.0);
    }

    #[test]
    fn soc_limits_hold_and_clamp_the_last_step() {
        let mut b = Storage::new(storage_spec());
        // 0.4 of 2 MWh = 0.8 MWh above soc_min; at 1 MW with 0.9 efficiency
        // that lasts 0.72 h, so a 1 h step delivers 0.72 MW on average.
        let p = b.step(1.0, 3600.0);
        assert!(close(p, 0.72), "{p}");
        assert_eq!(b.soc(), 0.1);
        assert_eq!(b.step(1.0, 3600.0), 0.0);
        assert_eq!(b.soc(), 0.1);
        for _ in 0..1000 {
            let p = b.step(-1.0, 60.0);
            assert!((-1.0..=0.0).contains(&p));
            assert!(b.soc() <= 0.9);
        }
        assert_eq!(b.soc(), 0.9);
        assert_eq!(b.step(-1.0, 60.0), 0.0);
    }

    #[test]
    fn bad_step_input_changes_nothing() {
        let mut b = Storage::new(storage_spec());
        for (p, dt) in [
            (f64::NAN, 1.0),
            (1.0, 0.0),
            (1.0, -1.0),
            (1.0, f64::INFINITY),
            (0.0, 1.0),
        ] {
            assert_eq!(b.step(p, dt), 0.0);
            assert_eq!(b.soc(), 0.5);
        }
        let mut empty = Storage::new(StorageSpec {
            capacity_mwh: 0.0,
            ..storage_spec()
        });
        assert_eq!(empty.step(1.0, 1.0), 0.0);
    }

    fn issue_keys(s: StorageSpec) -> Vec<String> {
        let mut v = Validator::new();
        s.validate(&mut v);
        v.issues().iter().map(|i| i.path.to_string()).collect()
    }

    #[test]
    fn validation_names_every_key() {
        assert!(issue_keys(storage_spec()).is_empty());
        let bad = StorageSpec {
            capacity_mwh: 0.0,
            p_max_mw: f64::NAN,
            efficiency: 1.01,
            ..storage_spec()
        };
        assert_eq!(issue_keys(bad), ["capacity_mwh", "p_max_mw", "efficiency"]);
        for (spec, key) in [
            (
                StorageSpec {
                    soc_init: 0.95,
                    ..storage_spec()
                },
                "soc_init",
            ),
            (
                StorageSpec {
                    soc_init: 1.5,
                    ..storage_spec()
                },
                "soc_init",
            ),
            (
                StorageSpec {
                    soc_min: 0.95,
                    ..storage_spec()
                },
                "soc_max",
            ),
            (
                StorageSpec {
                    efficiency: 0.0,
                    ..storage_spec()
                },
                "efficiency",
            ),
        ] {
            assert_eq!(issue_keys(spec), [key]);
        }
    }
}
