//! PV (`type = "pv"`): a solar plant whose output follows a [`Profile`]
//! (with optional multiplicative noise from the device's own random stream)
//! and which its grid agent curtails with the volt-watt droop
//! ([`pv_curtailment`]).

use serde::{Deserialize, Serialize};

use crate::grid::device::{
    ControlInput, DeviceKind, DeviceModel, DeviceOutput, Setpoint, inverter_q_mvar, noisy,
};
use crate::grid::policy::{PolicyParams, pv_curtailment, volt_var_q};
use crate::grid::profile::{Profile, clamp_fraction, non_negative};
use crate::rng::RngStream;
use crate::validate::Validator;

/// A solar plant (`type = "pv"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvSpec {
    /// Unique id of the device within its microgrid.
    pub id: String,
    /// Feeder bus; the caller assigns a default when absent.
    #[serde(default)]
    pub bus: Option<usize>,
    /// Output at profile value 1.0, MW. Must be > 0.
    pub peak_mw: f64,
    /// The output shape. Default: solar, 06:00 to 18:00.
    #[serde(default = "Profile::default_solar")]
    pub profile: Profile,
    /// Whether the grid agent may curtail it. Default true.
    #[serde(default = "default_true")]
    pub curtailable: bool,
    /// Fractional standard deviation of multiplicative profile noise,
    /// in `[0, 1]`, drawn by the caller. Default 0.
    #[serde(default)]
    pub noise: f64,
    /// Apparent-power rating of the inverter, MVA, at least `peak_mw`: what
    /// bounds its reactive power beside its active power (volt-VAr).
    /// Default `peak_mw` (no reactive headroom at full output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_rated_mva: Option<f64>,
}

fn default_true() -> bool {
    true
}

impl DeviceKind for PvSpec {
    fn id(&self) -> &str {
        &self.id
    }

    fn bus(&self) -> Option<usize> {
        self.bus
    }

    fn validate(&self, v: &mut Validator) {
        v.positive("peak_mw", self.peak_mw);
        v.fraction("noise", self.noise);
        if let Some(s) = self.s_rated_mva {
            v.check(s.is_finite() && s >= self.peak_mw, "s_rated_mva", || {
                format!(
                    "s_rated_mva must be at least peak_mw ({}), got {s}",
                    self.peak_mw
                )
            });
        }
        v.at("profile", |v| self.profile.validate(v));
    }

    fn profile(&self) -> Option<&Profile> {
        Some(&self.profile)
    }

    fn profile_mut(&mut self) -> Option<&mut Profile> {
        Some(&mut self.profile)
    }

    fn setpoint(&self, policy: &PolicyParams, input: &ControlInput) -> f64 {
        pv_curtailment(policy, input.v_max_pu)
    }

    fn q_setpoint(&self, policy: &PolicyParams, input: &ControlInput) -> f64 {
        volt_var_q(policy, input.v_bus_pu)
    }

    fn model(&self) -> Box<dyn DeviceModel> {
        Box::new(Pv::new(self.clone()))
    }
}

/// A solar plant.
#[derive(Clone, Debug, PartialEq)]
pub struct Pv {
    spec: PvSpec,
}

impl Pv {
    /// A plant with this spec.
    pub fn new(spec: PvSpec) -> Pv {
        Pv { spec }
    }

    /// The spec.
    pub fn spec(&self) -> &PvSpec {
        &self.spec
    }

    /// Output before curtailment, MW: `peak_mw × profile_value` (negative
    /// profile values read as 0; `NaN` stays `NaN`).
    pub fn available_mw(&self, profile_value: f64) -> f64 {
        self.spec.peak_mw * non_negative(profile_value)
    }

    /// Output delivered to the grid, MW: the available output reduced by
    /// `curtail_fraction` (clamped to `[0, 1]`, `NaN` read as 0). A plant
    /// that is not `curtailable` ignores the fraction. Reactive power is
    /// the volt-VAr set point within the rating ([`inverter_q_mvar`]).
    pub fn output_mw(&self, profile_value: f64, curtail_fraction: f64) -> f64 {
        let curtail = if self.spec.curtailable {
            clamp_fraction(curtail_fraction)
        } else {
            0.0
        };
        self.available_mw(profile_value) * (1.0 - curtail)
    }
}

impl DeviceModel for Pv {
    fn advance(
        &mut self,
        setpoint: Setpoint,
        t_s: f64,
        _dt_s: f64,
        rng: &mut RngStream,
    ) -> DeviceOutput {
        let v = noisy(rng, &self.spec.profile, t_s, self.spec.noise);
        let p_mw = self.output_mw(v, setpoint.p);
        let s_rated = self.spec.s_rated_mva.unwrap_or(self.spec.peak_mw);
        DeviceOutput {
            p_mw,
            q_mvar: inverter_q_mvar(setpoint.q_pu, s_rated, p_mw),
            soc: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pv_curtailment() {
        let spec = PvSpec {
            id: "pv".into(),
            bus: None,
            peak_mw: 2.0,
            profile: Profile::default_solar(),
            curtailable: true,
            noise: 0.0,
            s_rated_mva: None,
        };
        let pv = Pv::new(spec.clone());
        assert_eq!(pv.output_mw(0.5, 0.0), 1.0);
        assert_eq!(pv.output_mw(0.5, 0.25), 0.75);
        assert_eq!(pv.output_mw(0.5, 2.0), 0.0);
        assert_eq!(pv.output_mw(0.5, f64::NAN), 1.0);
        assert_eq!(pv.output_mw(-0.5, 0.0), 0.0);
        let fixed = Pv::new(PvSpec {
            curtailable: false,
            ..spec
        });
        assert_eq!(fixed.output_mw(0.5, 0.5), 1.0);
    }

    #[test]
    fn reactive_power_is_the_volt_var_set_point_within_the_rating() {
        assert_eq!(inverter_q_mvar(0.44, 1.0, 0.0), 0.44);
        // S = 1 MVA at P = 0.8 MW leaves 0.6 MVAr.
        assert!((inverter_q_mvar(1.0, 1.0, 0.8) - 0.6).abs() < 1e-12);
        assert!((inverter_q_mvar(-1.0, 1.0, -0.8) + 0.6).abs() < 1e-12);
        assert_eq!(inverter_q_mvar(0.5, 1.0, 1.0), 0.0);
        assert_eq!(inverter_q_mvar(0.5, 1.0, 1.5), 0.0, "P above the rating");
        assert_eq!(inverter_q_mvar(f64::NAN, 1.0, 0.5), 0.0);
        // A 1 MW plant on a 1.1 MVA inverter at full sun, asked to absorb
        // 44 % of 1.1 MVA (0.484 MVAr), can absorb sqrt(1.21 - 1) only.
        let mut pv = Pv::new(PvSpec {
            id: "pv".into(),
            bus: None,
            peak_mw: 1.0,
            profile: Profile::Constant { value: 1.0 },
            curtailable: true,
            noise: 0.0,
            s_rated_mva: Some(1.1),
        });
        let mut rng = RngStream::new(1, 0, "pv");
        let set = Setpoint {
            p: 0.0,
            q_pu: -0.44,
        };
        let out = pv.advance(set, 43_200.0, 1.0, &mut rng);
        assert_eq!(out.p_mw, 1.0);
        assert!(
            (out.q_mvar + 0.21f64.sqrt()).abs() < 1e-12,
            "{}",
            out.q_mvar
        );
        let mut v = Validator::new();
        PvSpec {
            s_rated_mva: Some(0.5),
            ..pv.spec().clone()
        }
        .validate(&mut v);
        assert_eq!(v.issues()[0].path.to_string(), "s_rated_mva");
    }

    #[test]
    fn validation_names_the_nested_profile_key() {
        let pv = PvSpec {
            id: "p".into(),
            bus: None,
            peak_mw: 1.0,
            profile: Profile::Solar {
                sunrise_h: -1.0,
                sunset_h: 18.0,
            },
            curtailable: true,
            noise: 0.0,
            s_rated_mva: None,
        };
        let mut v = Validator::new();
        pv.validate(&mut v);
        let issue = &v.issues()[0];
        assert_eq!(issue.path.to_string(), "profile.sunrise_h");
        assert!(issue.message.contains("-1"), "{}", issue.message);
    }
}
