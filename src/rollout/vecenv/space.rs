//! The layout of a vector environment's arrays: the index of each value
//! in an agent's observation, their labels, and the observation and action
//! spaces ([`BoxSpace`]).

use crate::grid::device::DeviceSpec;

/// Index of the hour of day in an agent's observation.
pub const OBS_HOUR: usize = 0;
/// Index of the price of the newest action received, $/MWh.
pub const OBS_PRICE: usize = 1;
/// Index of the step of that action.
pub const OBS_PRICE_STEP: usize = 2;
/// Index of `converged` of the newest network state (then `v_min_pu`,
/// `v_max_pu`, `loading_max`, `p_import_mw`, `net_load_mw`: the
/// [`NETWORK_STATE_STRIDE`](crate::grid::protocol::NETWORK_STATE_STRIDE) values of the wire, in order).
pub const OBS_CONVERGED: usize = 3;
/// Index of the lowest bus voltage, pu.
pub const OBS_V_MIN: usize = 4;
/// Index of the highest bus voltage, pu.
pub const OBS_V_MAX: usize = 5;
/// Index of the highest line loading (fraction of the rating).
pub const OBS_LOADING_MAX: usize = 6;
/// Index of the power imported at the point of common coupling, MW.
pub const OBS_P_IMPORT: usize = 7;
/// Index of the net load without storage, MW.
pub const OBS_NET_LOAD: usize = 8;
/// Index of the step of the newest network state.
pub const OBS_STATE_STEP: usize = 9;
/// Index of the age of the newest network state, s.
pub const OBS_STATE_AGE: usize = 10;
/// Values before the device slots.
pub const OBS_HEADER: usize = 11;
/// Values per device slot.
pub const OBS_PER_DEVICE: usize = 5;
/// Offset of P (MW) in a device slot.
pub const DEV_P: usize = 0;
/// Offset of Q (MVAr) in a device slot.
pub const DEV_Q: usize = 1;
/// Offset of the SOC in a device slot.
pub const DEV_SOC: usize = 2;
/// Offset of the report's step in a device slot.
pub const DEV_STEP: usize = 3;
/// Offset of the report's age (s) in a device slot.
pub const DEV_AGE: usize = 4;

pub(super) const HEADER_LABELS: [&str; OBS_HEADER] = [
    "hour",
    "price",
    "price_step",
    "converged",
    "v_min_pu",
    "v_max_pu",
    "loading_max",
    "p_import_mw",
    "net_load_mw",
    "state_step",
    "state_age_s",
];
pub(super) const DEVICE_LABELS: [&str; OBS_PER_DEVICE] = ["p_mw", "q_mvar", "soc", "step", "age_s"];

/// The index of value `field` (`DEV_*`) of device slot `j` in an agent's
/// observation.
pub const fn device_obs_index(j: usize, field: usize) -> usize {
    OBS_HEADER + j * OBS_PER_DEVICE + field
}

/// A box: the bounds of each value of a flat vector (Gymnasium's `Box`).
/// An unbounded side is `±inf`.
#[derive(Clone, Debug, PartialEq)]
pub struct BoxSpace {
    /// Lower bounds.
    pub low: Vec<f64>,
    /// Upper bounds.
    pub high: Vec<f64>,
    /// The shape: `[len]`.
    pub shape: Vec<usize>,
}

impl BoxSpace {
    pub(super) fn new(bounds: Vec<(f64, f64)>) -> BoxSpace {
        BoxSpace {
            shape: vec![bounds.len()],
            low: bounds.iter().map(|b| b.0).collect(),
            high: bounds.iter().map(|b| b.1).collect(),
        }
    }

    /// Whether `x` has the shape and every value lies within its bounds
    /// (a NaN never does).
    pub fn contains(&self, x: &[f64]) -> bool {
        x.len() == self.low.len()
            && x.iter()
                .zip(self.low.iter().zip(&self.high))
                .all(|(v, (lo, hi))| *lo <= *v && *v <= *hi)
    }
}

/// The observation bounds of an agent with `devices`.
pub(super) fn obs_space(devices: &[DeviceSpec], act_dim: usize) -> BoxSpace {
    let inf = f64::INFINITY;
    let free = (-inf, inf);
    let non_negative = (0.0, inf);
    let mut b = vec![
        (0.0, 24.0),  // hour
        free,         // price
        non_negative, // price_step
        (0.0, 1.0),   // converged
        non_negative, // v_min_pu
        non_negative, // v_max_pu
        non_negative, // loading_max
        free,         // p_import_mw
        free,         // net_load_mw
        non_negative, // state_step
        non_negative, // state_age_s
    ];
    for j in 0..act_dim {
        let soc = match devices.get(j) {
            Some(DeviceSpec::Storage(_)) => (0.0, 1.0),
            Some(_) => (0.0, 0.0),
            None => free,
        };
        b.extend([free, free, soc, non_negative, non_negative]);
    }
    BoxSpace::new(b)
}

/// The action bounds of an agent with `devices` (see the module docs).
pub(super) fn act_space(devices: &[DeviceSpec], act_dim: usize) -> BoxSpace {
    let ignored = (-1.0, 1.0);
    BoxSpace::new(
        (0..act_dim)
            .map(|j| match devices.get(j) {
                Some(DeviceSpec::Storage(s)) => (-s.p_max_mw, s.p_max_mw),
                Some(DeviceSpec::Pv(_)) => (0.0, 1.0),
                Some(DeviceSpec::Load(_)) | None => ignored,
            })
            .collect(),
    )
}
