//! Load (`type = "load"`): a demand that follows a [`Profile`] (with
//! optional multiplicative noise from the device's own random stream) at a
//! fixed lagging power factor. Its grid agent sends it no control (setpoint
//! 0); it reports its consumption as a negative injection.

use serde::{Deserialize, Serialize};

use crate::grid::device::{ControlInput, DeviceKind, DeviceModel, DeviceOutput, Setpoint, noisy};
use crate::grid::policy::PolicyParams;
use crate::grid::profile::{Profile, non_negative};
use crate::rng::RngStream;
use crate::validate::Validator;

/// A demand (`type = "load"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Unique id of the device within its microgrid.
    pub id: String,
    /// Feeder bus; the caller assigns a default when absent.
    #[serde(default)]
    pub bus: Option<usize>,
    /// Demand at profile value 1.0, MW. Must be > 0.
    pub base_mw: f64,
    /// Power factor (lagging), in `(0, 1]`. Default 0.95.
    #[serde(default = "default_power_factor")]
    pub power_factor: f64,
    /// The demand shape. Default: the built-in residential day.
    #[serde(default = "default_load_profile")]
    pub profile: Profile,
    /// Fractional standard deviation of multiplicative profile noise,
    /// in `[0, 1]`, drawn by the caller. Default 0.
    #[serde(default)]
    pub noise: f64,
}

fn default_power_factor() -> f64 {
    0.95
}

fn default_load_profile() -> Profile {
    Profile::Daily
}

impl DeviceKind for LoadSpec {
    fn id(&self) -> &str {
        &self.id
    }

    fn bus(&self) -> Option<usize> {
        self.bus
    }

    fn validate(&self, v: &mut Validator) {
        v.positive("base_mw", self.base_mw);
        v.check(
            self.power_factor > 0.0 && self.power_factor <= 1.0,
            "power_factor",
            || format!("power_factor must be in (0, 1], got {}", self.power_factor),
        );
        v.fraction("noise", self.noise);
        v.at("profile", |v| self.profile.validate(v));
    }

    fn profile(&self) -> Option<&Profile> {
        Some(&self.profile)
    }

    fn profile_mut(&mut self) -> Option<&mut Profile> {
        Some(&mut self.profile)
    }

    fn setpoint(&self, _policy: &PolicyParams, _input: &ControlInput) -> f64 {
        0.0
    }

    fn model(&self) -> Box<dyn DeviceModel> {
        Box::new(Load::new(self.clone()))
    }
}

/// A demand.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    spec: LoadSpec,
}

impl Load {
    /// A load with this spec.
    pub fn new(spec: LoadSpec) -> Load {
        Load { spec }
    }

    /// The spec.
    pub fn spec(&self) -> &LoadSpec {
        &self.spec
    }

    /// Power consumed, `(P_MW, Q_MVAr)`, both positive for a lagging load:
    /// `P = base_mw × profile_value` (negative values read as 0),
    /// `Q = P × tan(acos(pf)) = P × sqrt(1 - pf²) / pf`. A power factor
    /// outside `(0, 1]` (rejected by validation) is read as 1.
    pub fn demand(&self, profile_value: f64) -> (f64, f64) {
        let p_mw = self.spec.base_mw * non_negative(profile_value);
        let pf = self.spec.power_factor;
        let tan_phi = if pf > 0.0 && pf <= 1.0 {
            (1.0 - pf * pf).sqrt() / pf
        } else {
            0.0
        };
        (p_mw, p_mw * tan_phi)
    }
}

impl DeviceModel for Load {
    fn advance(
        &mut self,
        _setpoint: Setpoint,
        t_s: f64,
        _dt_s: f64,
        rng: &mut RngStream,
    ) -> DeviceOutput {
        let v = noisy(rng, &self.spec.profile, t_s, self.spec.noise);
        let (p, q) = self.demand(v);
        DeviceOutput {
            p_mw: -p,
            q_mvar: -q,
            soc: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + b.abs())
    }

    #[test]
    fn load_reactive_power_follows_power_factor() {
        let load = Load::new(LoadSpec {
            id: "l".into(),
            bus: None,
            base_mw: 1.0,
            power_factor: 0.8,
            profile: Profile::Daily,
            noise: 0.0,
        });
        let (p, q) = load.demand(0.5);
        assert_eq!(p, 0.5);
        assert!(close(q, 0.375)); // tan(acos 0.8) = 0.75
        let unity = Load::new(LoadSpec {
            power_factor: 1.0,
            ..load.spec().clone()
        });
        assert_eq!(unity.demand(1.0), (1.0, 0.0));
    }

    #[test]
    fn validation_names_every_key() {
        let load = LoadSpec {
            id: "l".into(),
            bus: None,
            base_mw: 1.0,
            power_factor: 0.0,
            profile: Profile::Daily,
            noise: -0.1,
        };
        let mut v = Validator::new();
        load.validate(&mut v);
        let keys: Vec<String> = v.issues().iter().map(|i| i.path.to_string()).collect();
        assert_eq!(keys, ["power_factor", "noise"]);
    }
}
