//! The grid's protocol on the bus: its message kinds, its channel names and
//! the layout of each payload. Everything that spells the protocol is here,
//! so the agents and any outside tool agree on it.
//!
//! | step | kind (code) | channel | from → to | payload |
//! |---|---|---|---|---|
//! | 1 | `action` (0) | `{env}/actions` | environment → every grid agent (broadcast) | `[k, price]` |
//! | 2 | `device_action` (1) | `{env}/agent/{mg}/device_actions` | grid agent → each of its devices (addressed) | `[k, setpoint]`, or `[k, setpoint, q_pu]` with volt-VAr on |
//! | 3 | `state_update` (2) | `{env}/state_updates` | device → environment (broadcast) | `[k, P_MW, Q_MVAr, SOC]` |
//! | 4 | `network_state` (3) | `{env}/network_state` | environment → every grid agent (broadcast) | see below |
//!
//! `{env}` is the environment's prefix (`env0`, `env1`, ...).
//!
//! The network state carries the whole solved network, so its size grows
//! with the feeder (and a link with a rate charges for it):
//!
//! ```text
//! [k, converged, losses_mw, p_slack_mw, q_slack_mvar, n_buses, n_lines,   (NETWORK_STATE_HEAD values)
//!  vm_pu of each bus                          (n_buses values)
//!  loading of each line                       (n_lines values)
//!  per microgrid, in order: converged, v_min_pu, v_max_pu, loading_max,
//!  p_import_mw, net_load_mw                   (NETWORK_STATE_STRIDE values each)]
//! ```
//!
//! The header sums every power flow the environment solved (one per
//! microgrid, or one for a shared `[grid] feeder`): `converged` is 1 if all
//! converged, `losses_mw` the total series losses, `p_slack_mw` and
//! `q_slack_mvar` the power imported from the upstream grid (positive
//! when importing, losses included). Buses and lines are listed network by
//! network: a microgrid's own feeder is its point of common coupling (bus
//! 0) and one bus per device section; a shared feeder is the case's buses
//! (reference bus first, then the case's order), then each microgrid's
//! buses. Loading is the line current over its rating (rating at 1 pu:
//! `|I| / (rating_mva / base_mva)`; 1.0 = at the rating). A microgrid's
//! summary: its network converged (1 or 0), its lowest and highest bus
//! voltage and highest line loading (its buses include its point of common
//! coupling), the power flowing into it at that point (MW, losses inside
//! it included), and its net load without storage (MW, demand minus
//! generation). A value the power flow could not give is NaN. A grid agent
//! reads its own part: its summary at `NETWORK_STATE_HEAD + n_buses +
//! n_lines + index × NETWORK_STATE_STRIDE`, and its devices' bus voltages.

use crate::message::{KindNames, MessageKind};

/// Environment → grid agents: the step's actions (the price).
pub const ACTION: MessageKind = MessageKind::from_code(0);
/// Grid agent → its devices: setpoints.
pub const DEVICE_ACTION: MessageKind = MessageKind::from_code(1);
/// Device → environment: `P_MW, Q_MVAr, SOC` after applying a setpoint.
pub const STATE_UPDATE: MessageKind = MessageKind::from_code(2);
/// Environment → grid agents: the power-flow results.
pub const NETWORK_STATE: MessageKind = MessageKind::from_code(3);

/// The grid's kinds with their names, plus the engine's own (`info`).
pub fn kind_names() -> KindNames {
    KindNames::new()
        .with(ACTION, "action")
        .with(DEVICE_ACTION, "device_action")
        .with(STATE_UPDATE, "state_update")
        .with(NETWORK_STATE, "network_state")
}

/// Values per microgrid in a network-state payload.
pub const NETWORK_STATE_STRIDE: usize = 6;

/// Values before the bus voltages in a network-state payload: `k,
/// converged, losses_mw, p_slack_mw, q_slack_mvar, n_buses, n_lines`.
pub const NETWORK_STATE_HEAD: usize = 7;

/// The parts of a network-state payload: `(bus voltages, line loadings,
/// the summary of microgrid `index`)`, or `None` if the payload is too
/// short or its counts are not whole numbers.
pub fn network_state_parts(v: &[f64], index: usize) -> Option<(&[f64], &[f64], &[f64])> {
    let head = v.get(..NETWORK_STATE_HEAD)?;
    let count = |x: f64| (x >= 0.0 && x.fract() == 0.0 && x < 1e12).then_some(x as usize);
    let (nb, nl) = (count(head[5])?, count(head[6])?);
    let buses = v.get(NETWORK_STATE_HEAD..NETWORK_STATE_HEAD + nb)?;
    let lines = v.get(NETWORK_STATE_HEAD + nb..NETWORK_STATE_HEAD + nb + nl)?;
    let at = NETWORK_STATE_HEAD + nb + nl + index * NETWORK_STATE_STRIDE;
    let mine = v.get(at..at + NETWORK_STATE_STRIDE)?;
    Some((buses, lines, mine))
}

/// The name of the environment agent.
pub const ENV_AGENT: &str = "env";

/// The agent name of device `dev` of microgrid `mg`: `{mg}.{dev}`.
pub fn device_agent_name(mg: &str, dev: &str) -> String {
    format!("{mg}.{dev}")
}

/// `{env}/actions`: the environment's broadcast actions.
pub fn actions(env: &str) -> String {
    format!("{env}/actions")
}

/// `{env}/state_updates`: device state reports.
pub fn state_updates(env: &str) -> String {
    format!("{env}/state_updates")
}

/// `{env}/network_state`: power-flow results.
pub fn network_state(env: &str) -> String {
    format!("{env}/network_state")
}

/// `{env}/agent/{mg}/device_actions`: a grid agent's setpoints for its devices.
pub fn device_actions(env: &str, mg: &str) -> String {
    format!("{env}/agent/{mg}/device_actions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_follow_the_convention() {
        let env = crate::message::env_prefix(3);
        assert_eq!(actions(&env), "env3/actions");
        assert_eq!(state_updates(&env), "env3/state_updates");
        assert_eq!(network_state(&env), "env3/network_state");
        assert_eq!(device_actions(&env, "mg1"), "env3/agent/mg1/device_actions");
        assert_eq!(device_agent_name("mg1", "bat"), "mg1.bat");
    }

    #[test]
    fn kind_codes_and_names_are_the_trace_contract() {
        let names = kind_names();
        for (kind, name, code) in [
            (ACTION, "action", 0),
            (DEVICE_ACTION, "device_action", 1),
            (STATE_UPDATE, "state_update", 2),
            (NETWORK_STATE, "network_state", 3),
            (MessageKind::INFO, "info", 5),
        ] {
            assert_eq!(kind.code(), code);
            assert_eq!(names.name(kind), name);
            assert_eq!(names.parse(name), Ok(kind));
        }
    }
}
