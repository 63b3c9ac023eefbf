//! The built-in controller policy of a grid (microgrid) agent.
//!
//! Each step a grid agent turns what it knows into device setpoints: the
//! price the environment published in this step's action, the latest net
//! load of its microgrid and the latest voltages the environment reported.
//! The policy is a pure function of those inputs, so the effect of stale or
//! missing messages on control shows up only through its inputs.
//!
//! **Storage** ([`storage_setpoint`]), by price band:
//! - price above `discharge_above` ($/MWh): discharge at `p_max_mw` (sell
//!   when energy is dear);
//! - price below `charge_below`: charge at `p_max_mw` (buy when cheap);
//! - in between: *peak shaving toward zero import*: offset the microgrid's
//!   net load, discharging to cover an import and charging to absorb an
//!   export, within `±p_max_mw`;
//! - whatever the price, never charge while the lowest bus voltage is
//!   below `v_min_pu`: charging is extra load and would deepen the
//!   under-voltage.
//!
//! The battery itself then limits the setpoint to what its state of charge
//! allows ([`super::device::Storage::step`]).
//!
//! **PV curtailment** ([`pv_curtailment`]) is a volt-watt droop, in the
//! spirit of the IEEE 1547 volt-watt function: no curtailment while the
//! highest bus voltage is at or below `v_max_pu`, then a fraction that
//! rises linearly to full curtailment at `v_max_pu + curtail_band_pu`.
//! Because the fraction is proportional rather than integrating, it settles
//! where curtailment and voltage balance instead of oscillating between
//! "all" and "nothing" when voltage reports arrive late.
//!
//! **Volt-VAr** ([`volt_var_q`], off unless `volt_var = true`): each PV
//! and storage inverter gets a reactive-power set point from the voltage of
//! its own bus in the latest network state, on the IEEE 1547-2018 curve
//! (inject below `vv_v2`, absorb above `vv_v3`, at most `vv_q_max` of its
//! rating), limited by what its apparent-power rating leaves beside its
//! active power. It is computed by the grid agent from the voltages the
//! environment published, so it reacts as late as those messages arrive,
//! not instantly at the terminals as an autonomous inverter would.
//!
//! Before the first network state arrives (voltages `None`) the policy
//! assumes voltages are within limits.
//!
//! Invalid inputs never panic: a non-finite price is treated as inside the
//! band, a non-finite net load as zero, and a non-finite voltage as
//! unknown.

use serde::{Deserialize, Serialize};

use crate::validate::Validator;

/// The tunable thresholds of the policy. Every key has a default, so an
/// empty table is valid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyParams {
    /// Charge at full power when the price is below this, $/MWh. Default 30.
    pub charge_below: f64,
    /// Discharge at full power when the price is above this, $/MWh.
    /// Default 60.
    pub discharge_above: f64,
    /// Upper voltage limit, pu: PV curtailment starts above it. Default 1.05.
    pub v_max_pu: f64,
    /// Voltage rise above `v_max_pu` at which PV is fully curtailed, pu.
    /// Default 0.05 (full curtailment at 1.10 pu with the default limit).
    pub curtail_band_pu: f64,
    /// Lower voltage limit, pu: storage does not charge below it.
    /// Default 0.95.
    pub v_min_pu: f64,
    /// Whether PV and storage inverters follow the volt-VAr curve
    /// ([`volt_var_q`]). Default false (unity power factor).
    pub volt_var: bool,
    /// Volt-VAr curve: at or below this bus voltage, full injection
    /// (`vv_q_max`), pu. Default 0.92 (IEEE 1547-2018, Category B).
    pub vv_v1: f64,
    /// Injection falls linearly to 0 at this voltage, pu. Default 0.98.
    pub vv_v2: f64,
    /// Absorption starts above this voltage, pu. Default 1.02.
    pub vv_v3: f64,
    /// Full absorption (`-vv_q_max`) at or above this voltage, pu.
    /// Default 1.08.
    pub vv_v4: f64,
    /// Reactive power at the ends of the curve, as a fraction of the
    /// inverter's apparent-power rating `s_rated_mva`. Default 0.44.
    pub vv_q_max: f64,
}

impl Default for PolicyParams {
    fn default() -> Self {
        PolicyParams {
            charge_below: 30.0,
            discharge_above: 60.0,
            v_max_pu: 1.05,
            curtail_band_pu: 0.05,
            v_min_pu: 0.95,
            volt_var: false,
            vv_v1: 0.92,
            vv_v2: 0.98,
            vv_v3: 1.02,
            vv_v4: 1.08,
            vv_q_max: 0.44,
        }
    }
}

impl PolicyParams {
    /// Checks the parameters (keys relative to the policy table).
    pub fn validate(&self, v: &mut Validator) {
        let prices = v.check(self.charge_below.is_finite(), "charge_below", || {
            format!(
                "charge_below must be a finite price, got {}",
                self.charge_below
            )
        }) & v.check(self.discharge_above.is_finite(), "discharge_above", || {
            format!(
                "discharge_above must be a finite price, got {}",
                self.discharge_above
            )
        });
        if prices {
            v.check(
                self.charge_below <= self.discharge_above,
                "discharge_above",
                || {
                    format!(
                        "discharge_above must be >= charge_below ({}), got {}",
                        self.charge_below, self.discharge_above
                    )
                },
            );
        }
        let v_min_ok = v.check(
            self.v_min_pu.is_finite() && self.v_min_pu > 0.0,
            "v_min_pu",
            || format!("v_min_pu must be a positive voltage, got {}", self.v_min_pu),
        );
        if v_min_ok {
            v.check(
                self.v_max_pu.is_finite() && self.v_max_pu > self.v_min_pu,
                "v_max_pu",
                || {
                    format!(
                        "v_max_pu must be a voltage above v_min_pu ({}), got {}",
                        self.v_min_pu, self.v_max_pu
                    )
                },
            );
        }
        v.positive("curtail_band_pu", self.curtail_band_pu);
        let points = [
            ("vv_v1", self.vv_v1),
            ("vv_v2", self.vv_v2),
            ("vv_v3", self.vv_v3),
            ("vv_v4", self.vv_v4),
        ];
        let mut ok = true;
        for (key, value) in points {
            ok &= v.positive(key, value);
        }
        if ok {
            // v1 < v2 <= v3 < v4: two slopes around a dead band.
            for (i, ((_, lo), (key, hi))) in points.iter().zip(&points[1..]).enumerate() {
                let ordered = if i == 1 { lo <= hi } else { lo < hi };
                v.check(ordered, key, || {
                    format!(
                        "the volt-VAr points must satisfy vv_v1 < vv_v2 <= vv_v3 < vv_v4; \
                         {key} = {hi} is not above {lo}"
                    )
                });
            }
        }
        v.check((0.0..=1.0).contains(&self.vv_q_max), "vv_q_max", || {
            format!(
                "vv_q_max must be in [0, 1] (a fraction of s_rated_mva), got {}",
                self.vv_q_max
            )
        });
    }
}

/// The storage setpoint, MW (positive = discharge into the grid), for a
/// battery rated `p_max_mw`.
///
/// `price` is this step's price, $/MWh. `net_load_mw` is the microgrid's
/// net load *without this battery* (demand minus generation, positive when
/// importing); with several batteries, pass each its share. `v_min_pu` is
/// the lowest bus voltage of the latest network state, `None` before the
/// first one. See the module docs for the rules.
pub fn storage_setpoint(
    params: &PolicyParams,
    price: f64,
    net_load_mw: f64,
    p_max_mw: f64,
    v_min_pu: Option<f64>,
) -> f64 {
    // `max` maps NaN to 0, so a bad rating yields a zero setpoint.
    let p_max_mw = p_max_mw.max(0.0);
    let setpoint_mw = if price > params.discharge_above {
        p_max_mw
    } else if price < params.charge_below {
        -p_max_mw
    } else if net_load_mw.is_finite() {
        net_load_mw.min(p_max_mw).max(-p_max_mw)
    } else {
        0.0
    };
    let under_voltage = matches!(v_min_pu, Some(v) if v < params.v_min_pu);
    if under_voltage {
        setpoint_mw.max(0.0)
    } else {
        setpoint_mw
    }
}

/// The PV curtailment fraction in `[0, 1]` given the highest bus voltage of
/// the latest network state (`None` before the first one): 0 up to
/// `v_max_pu`, rising linearly to 1 at `v_max_pu + curtail_band_pu`.
pub fn pv_curtailment(params: &PolicyParams, v_max_pu: Option<f64>) -> f64 {
    let Some(v) = v_max_pu else {
        return 0.0;
    };
    if v.is_nan() || v <= params.v_max_pu {
        // An unknown voltage curtails nothing.
        return 0.0;
    }
    if params.curtail_band_pu.is_nan() || params.curtail_band_pu <= 0.0 {
        // A zero band is a step: any over-voltage curtails fully.
        return 1.0;
    }
    let fraction = (v - params.v_max_pu) / params.curtail_band_pu;
    fraction.min(1.0)
}

/// The volt-VAr set point: reactive power as a fraction of the inverter's
/// apparent-power rating (positive: injected, capacitive; negative:
/// absorbed, inductive), for the voltage of the inverter's bus in the
/// latest network state (`None` before the first one, or not finite: 0).
///
/// A piecewise-linear curve in the form of IEEE 1547-2018 (§5.3.3): `q_max`
/// at or below `vv_v1`, falling linearly to 0 at `vv_v2`, 0 up to `vv_v3`,
/// falling linearly to `-q_max` at `vv_v4`, and `-q_max` above. The
/// inverter then limits it to what its rating leaves beside its active
/// power ([`super::device::inverter_q_mvar`]). Returns 0 when
/// `volt_var` is off.
pub fn volt_var_q(params: &PolicyParams, v_bus_pu: Option<f64>) -> f64 {
    let Some(v) = v_bus_pu.filter(|v| v.is_finite()) else {
        return 0.0;
    };
    if !params.volt_var {
        return 0.0;
    }
    let q = params.vv_q_max;
    let (v1, v2, v3, v4) = (params.vv_v1, params.vv_v2, params.vv_v3, params.vv_v4);
    if v <= v1 {
        q
    } else if v < v2 {
        q * (v2 - v) / (v2 - v1)
    } else if v <= v3 {
        0.0
    } else if v < v4 {
        -q * (v - v3) / (v4 - v3)
    } else {
        -q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(p: &PolicyParams) -> Vec<String> {
        let mut v = Validator::new();
        p.validate(&mut v);
        v.issues().iter().map(|i| i.path.to_string()).collect()
    }

    fn p() -> PolicyParams {
        PolicyParams::default()
    }

    #[test]
    fn price_bands_drive_storage() {
        assert_eq!(storage_setpoint(&p(), 80.0, 0.3, 0.5, None), 0.5);
        assert_eq!(storage_setpoint(&p(), 10.0, 0.3, 0.5, None), -0.5);
        // Thresholds themselves are inside the band.
        assert_eq!(storage_setpoint(&p(), 60.0, 0.3, 0.5, None), 0.3);
        assert_eq!(storage_setpoint(&p(), 30.0, 0.3, 0.5, None), 0.3);
    }

    #[test]
    fn mid_price_offsets_net_load_within_rating() {
        assert_eq!(storage_setpoint(&p(), 45.0, 0.2, 0.5, None), 0.2);
        assert_eq!(storage_setpoint(&p(), 45.0, 2.0, 0.5, None), 0.5);
        assert_eq!(storage_setpoint(&p(), 45.0, -0.1, 0.5, None), -0.1);
        assert_eq!(storage_setpoint(&p(), 45.0, -2.0, 0.5, None), -0.5);
        assert_eq!(storage_setpoint(&p(), 45.0, 0.0, 0.5, None), 0.0);
    }

    #[test]
    fn no_charging_during_under_voltage() {
        assert_eq!(storage_setpoint(&p(), 10.0, 0.0, 0.5, Some(0.94)), 0.0);
        assert_eq!(storage_setpoint(&p(), 45.0, -0.2, 0.5, Some(0.9)), 0.0);
        assert_eq!(storage_setpoint(&p(), 80.0, 0.0, 0.5, Some(0.9)), 0.5);
        assert_eq!(storage_setpoint(&p(), 10.0, 0.0, 0.5, Some(0.96)), -0.5);
    }

    #[test]
    fn bad_inputs_do_not_panic() {
        assert_eq!(storage_setpoint(&p(), f64::NAN, 0.2, 0.5, None), 0.2);
        assert_eq!(storage_setpoint(&p(), 45.0, f64::NAN, 0.5, None), 0.0);
        assert_eq!(storage_setpoint(&p(), 80.0, 0.0, -1.0, None), 0.0);
        assert_eq!(storage_setpoint(&p(), 80.0, 0.0, f64::NAN, None), 0.0);
        assert_eq!(storage_setpoint(&p(), 45.0, 0.2, 0.5, Some(f64::NAN)), 0.2);
        assert_eq!(pv_curtailment(&p(), Some(f64::NAN)), 0.0);
    }

    #[test]
    fn curtailment_is_a_volt_watt_droop() {
        assert_eq!(pv_curtailment(&p(), None), 0.0);
        assert_eq!(pv_curtailment(&p(), Some(1.0)), 0.0);
        assert_eq!(pv_curtailment(&p(), Some(1.05)), 0.0);
        let half = pv_curtailment(&p(), Some(1.075));
        assert!((half - 0.5).abs() < 1e-9, "{half}");
        assert_eq!(pv_curtailment(&p(), Some(1.2)), 1.0);
        let step = PolicyParams {
            curtail_band_pu: 0.0,
            ..p()
        };
        assert_eq!(pv_curtailment(&step, Some(1.051)), 1.0);
    }

    #[test]
    fn volt_var_follows_the_ieee_1547_curve() {
        let on = PolicyParams {
            volt_var: true,
            ..p()
        };
        let q = |v: f64| volt_var_q(&on, Some(v));
        assert_eq!(q(0.85), 0.44);
        assert_eq!(q(0.92), 0.44);
        assert!((q(0.95) - 0.22).abs() < 1e-12, "{}", q(0.95));
        assert_eq!(q(0.98), 0.0);
        assert_eq!(q(1.0), 0.0);
        assert_eq!(q(1.02), 0.0);
        assert!((q(1.05) + 0.22).abs() < 1e-12, "{}", q(1.05));
        assert_eq!(q(1.08), -0.44);
        assert_eq!(q(1.2), -0.44);
        assert_eq!(volt_var_q(&on, None), 0.0);
        assert_eq!(volt_var_q(&on, Some(f64::NAN)), 0.0);
        assert_eq!(volt_var_q(&p(), Some(1.2)), 0.0, "off by default");
        let bad = PolicyParams {
            vv_v3: 0.97,
            ..on.clone()
        };
        assert_eq!(keys(&bad), ["vv_v3"]);
        let bad = PolicyParams {
            vv_q_max: 1.5,
            ..on
        };
        assert_eq!(keys(&bad), ["vv_q_max"]);
    }

    #[test]
    fn params_from_toml_and_validation() {
        let params: PolicyParams = toml::from_str("charge_below = 25\n").unwrap();
        assert_eq!(params.charge_below, 25.0);
        assert_eq!(params.discharge_above, 60.0);
        assert!(keys(&params).is_empty());
        assert!(toml::from_str::<PolicyParams>("charge_above = 1\n").is_err());
        let bad = PolicyParams {
            charge_below: 70.0,
            ..p()
        };
        assert_eq!(keys(&bad), ["discharge_above"]);
        let bad = PolicyParams {
            v_max_pu: 0.9,
            ..p()
        };
        assert_eq!(keys(&bad), ["v_max_pu"]);
        let bad = PolicyParams {
            curtail_band_pu: 0.0,
            ..p()
        };
        assert_eq!(keys(&bad), ["curtail_band_pu"]);
    }
}
