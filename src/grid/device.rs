//! Devices of the built-in grid scenario. A device **kind** is one type, in
//! one file under `grid/device/`, that owns everything about it: its spec
//! (the scenario table it is read from, `type = "..."`), how the spec is
//! checked, how a grid agent drives it ([`DeviceKind::setpoint`]) and the
//! physics that runs in its device agent ([`DeviceModel`]). The kinds are
//! registered in one place, the [`DeviceSpec`] enum below; adding a kind is
//! a new file plus one line there.
//!
//! Kinds today:
//! - **storage** ([`StorageSpec`], [`Storage`]): a battery, the balancing
//!   device;
//! - **pv** ([`PvSpec`], [`Pv`]): a solar plant following a profile,
//!   curtailable;
//! - **load** ([`LoadSpec`], [`Load`]): a demand following a profile at a
//!   fixed power factor.
//!
//! The physics types hold only physics: they take time as an argument and
//! draw random numbers only from the stream they are given (the device
//! agent's own, `agent/{name}`). Profile noise (`noise`, the fractional
//! standard deviation of a multiplicative factor `1 + noise·N(0,1)`) is
//! drawn only when `noise > 0`.
//!
//! Signs: a device's power is what it delivers *to the grid*. Storage is
//! positive when discharging; PV is positive; a load reports its
//! consumption as a negative injection.

pub mod load;
pub mod pv;
pub mod storage;

pub use load::{Load, LoadSpec};
pub use pv::{Pv, PvSpec};
pub use storage::{Storage, StorageSpec};

use crate::grid::policy::PolicyParams;
use crate::grid::profile::Profile;
use crate::rng::RngStream;
use crate::tagged::tagged_enum;
use crate::validate::Validator;

/// What a grid agent knows when it computes a device's setpoint for a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ControlInput {
    /// This step's price, $/MWh (from the environment's action).
    pub price: f64,
    /// The microgrid's latest net load without its balancing devices
    /// (demand minus generation, positive when importing), MW, divided
    /// evenly among its balancing devices.
    pub net_load_share_mw: f64,
    /// The lowest bus voltage of the latest network state, pu (`None`
    /// before the first one).
    pub v_min_pu: Option<f64>,
    /// The highest bus voltage of the latest network state, pu.
    pub v_max_pu: Option<f64>,
    /// The voltage of the device's own bus in the latest network state, pu
    /// (`None` before the first one).
    pub v_bus_pu: Option<f64>,
}

/// What a grid agent sends a device each step: `[k, setpoint, q_pu]` on
/// the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setpoint {
    /// The active-power set point in the device kind's terms (storage: MW,
    /// positive = discharge; PV: the curtailment fraction; load: ignored).
    pub p: f64,
    /// Reactive power as a fraction of the inverter's `s_rated_mva`,
    /// positive = injected (volt-VAr; 0 otherwise). Devices without an
    /// inverter ignore it.
    pub q_pu: f64,
}

/// The reactive power an inverter rated `s_rated_mva` delivers, MVAr, when
/// asked for `q_pu` of its rating while it delivers `p_mw`: active power
/// has priority, so `|Q| <= sqrt(S² - P²)`. A non-finite request, or a
/// rating at or below `|P|`, gives 0.
pub fn inverter_q_mvar(q_pu: f64, s_rated_mva: f64, p_mw: f64) -> f64 {
    if !(q_pu.is_finite() && s_rated_mva.is_finite() && p_mw.is_finite()) {
        return 0.0;
    }
    let headroom = (s_rated_mva * s_rated_mva - p_mw * p_mw).max(0.0).sqrt();
    (q_pu * s_rated_mva).clamp(-headroom, headroom)
}

/// What a device reports after a step: `[k, P_MW, Q_MVAr, SOC]` on the wire.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceOutput {
    /// Active power delivered to the grid, MW (negative: consumed).
    pub p_mw: f64,
    /// Reactive power delivered to the grid, MVAr.
    pub q_mvar: f64,
    /// State of charge (fraction of capacity); 0 for devices without one.
    pub soc: f64,
}

/// One kind of device, implemented by its spec type.
pub trait DeviceKind {
    /// The device's id within its microgrid.
    fn id(&self) -> &str;

    /// The feeder bus it sits on, if the scenario says (else bus `j + 1`
    /// for the `j`-th device).
    fn bus(&self) -> Option<usize>;

    /// Checks the parameters (keys relative to the device table). The id and
    /// bus are checked by the grid, which knows the microgrid.
    fn validate(&self, v: &mut Validator);

    /// Its profile, if the kind has one.
    fn profile(&self) -> Option<&Profile> {
        None
    }

    /// The same, to load it from disk.
    fn profile_mut(&mut self) -> Option<&mut Profile> {
        None
    }

    /// Whether the device balances its microgrid (storage): the grid agent
    /// divides the net load among the balancing devices, and the
    /// environment's net load leaves them out.
    fn balancing(&self) -> bool {
        false
    }

    /// The setpoint its grid agent sends this step.
    fn setpoint(&self, policy: &PolicyParams, input: &ControlInput) -> f64;

    /// The reactive set point its grid agent sends this step, a fraction of
    /// its inverter's rating ([`Setpoint::q_pu`]). Default 0: no inverter.
    fn q_setpoint(&self, _policy: &PolicyParams, _input: &ControlInput) -> f64 {
        0.0
    }

    /// The physics that runs in the device agent, at its initial state.
    fn model(&self) -> Box<dyn DeviceModel>;
}

/// The running state of a device.
pub trait DeviceModel: Send {
    /// Applies `setpoint` for one step of `dt_s` seconds that starts `t_s`
    /// seconds after midnight (wrapping daily), and reports the result.
    /// `rng` is the device agent's own stream.
    fn advance(
        &mut self,
        setpoint: Setpoint,
        t_s: f64,
        dt_s: f64,
        rng: &mut RngStream,
    ) -> DeviceOutput;

    /// The state of charge, for devices that have one.
    fn soc(&self) -> Option<f64> {
        None
    }
}

/// A profile value with multiplicative noise `1 + noise·N(0,1)`, never
/// negative. Draws from `rng` only when `noise > 0`.
pub(crate) fn noisy(rng: &mut RngStream, profile: &Profile, t_s: f64, noise: f64) -> f64 {
    let v = profile.value_at(t_s);
    if noise > 0.0 {
        (v * (1.0 + noise * rng.standard_normal())).max(0.0)
    } else {
        v
    }
}

/// Registers the device kinds: the variants of [`DeviceSpec`] and the one
/// place that dispatches to each kind's [`DeviceKind`] implementation.
macro_rules! device_kinds {
    ($( $(#[$doc:meta])* $variant:ident($ty:ty) = $name:literal ),* $(,)?) => {
        tagged_enum! {
            tag = "type";
            /// A device of a microgrid, as written in the scenario file
            /// (`type = "..."`): one variant per registered kind.
            #[derive(Clone, Debug, PartialEq)]
            pub enum DeviceSpec {
                $( $(#[$doc])* $variant($ty) ),*
            }
        }

        impl DeviceSpec {
            /// The kind behind the spec.
            pub fn kind(&self) -> &dyn DeviceKind {
                match self {
                    $( DeviceSpec::$variant(s) => s ),*
                }
            }

            /// The kind behind the spec, mutably (to load a profile).
            pub fn kind_mut(&mut self) -> &mut dyn DeviceKind {
                match self {
                    $( DeviceSpec::$variant(s) => s ),*
                }
            }

            /// The `type` tag.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( DeviceSpec::$variant(_) => $name ),*
                }
            }
        }
    };
}

device_kinds! {
    /// A battery.
    Storage(StorageSpec) = "storage",
    /// A solar plant.
    Pv(PvSpec) = "pv",
    /// A demand.
    Load(LoadSpec) = "load",
}

impl DeviceSpec {
    /// The device's id.
    pub fn id(&self) -> &str {
        self.kind().id()
    }

    /// The feeder bus the device sits on, if the scenario says.
    pub fn bus(&self) -> Option<usize> {
        self.kind().bus()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Devices {
        devices: Vec<DeviceSpec>,
    }

    fn parse(text: &str) -> Result<Vec<DeviceSpec>, toml::de::Error> {
        toml::from_str::<Devices>(text).map(|d| d.devices)
    }

    #[test]
    fn specs_parse_from_toml_with_defaults() {
        let devices = parse(
            r#"
            [[devices]]
            type = "storage"
            id = "bess"
            capacity_mwh = 2
            p_max_mw = 0.5

            [[devices]]
            type = "pv"
            id = "pv"
            bus = 3
            peak_mw = 0.8
            profile = { kind = "solar", sunrise_h = 5.5 }

            [[devices]]
            type = "load"
            id = "houses"
            base_mw = 0.6
            noise = 0.05
            profile = { kind = "csv", path = "profiles/h.csv", column = "p" }

            [[devices]]
            type = "load"
            id = "shop"
            base_mw = 0.1
            "#,
        )
        .unwrap();
        let DeviceSpec::Storage(s) = &devices[0] else {
            panic!("{:?}", devices[0])
        };
        assert_eq!(
            (s.capacity_mwh, s.soc_init, s.soc_min, s.soc_max),
            (2.0, 0.5, 0.0, 1.0)
        );
        assert_eq!(s.efficiency, 0.95);
        let DeviceSpec::Pv(pv) = &devices[1] else {
            panic!()
        };
        assert_eq!(pv.bus, Some(3));
        assert!(pv.curtailable);
        assert_eq!(
            pv.profile,
            Profile::Solar {
                sunrise_h: 5.5,
                sunset_h: 18.0
            }
        );
        let DeviceSpec::Load(l) = &devices[2] else {
            panic!()
        };
        assert_eq!(l.power_factor, 0.95);
        assert!(!l.profile.is_ready());
        let DeviceSpec::Load(shop) = &devices[3] else {
            panic!()
        };
        assert_eq!(shop.profile, Profile::Daily);
        assert_eq!(devices[2].id(), "houses");
        assert_eq!(devices[1].type_name(), "pv");
        for d in &devices {
            let mut v = Validator::new();
            d.kind().validate(&mut v);
            assert!(v.is_ok(), "{}: {:?}", d.id(), v.issues());
        }
    }

    #[test]
    fn unknown_keys_and_kinds_are_rejected() {
        let err = parse("[[devices]]\ntype = \"pv\"\nid = \"a\"\npeak_mw = 1\npeak_kw = 2\n")
            .unwrap_err();
        assert!(err.to_string().contains("peak_kw"), "{err}");
        assert!(parse("[[devices]]\ntype = \"wind\"\nid = \"a\"\n").is_err());
        let err = parse(
            "[[devices]]\ntype = \"pv\"\nid = \"a\"\npeak_mw = 1\nprofile = { kind = \"solar\", noon_h = 12 }\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("noon_h"), "{err}");
        // `data` is runtime state, not a key.
        assert!(
            parse("[[devices]]\ntype = \"pv\"\nid = \"a\"\npeak_mw = 1\nprofile = { kind = \"csv\", path = \"x\", column = \"p\", data = 1 }\n")
                .is_err()
        );
    }
}
