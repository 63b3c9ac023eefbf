//! The built-in grid environment runs the step protocol: every step starts,
//! every deadline runs a power flow, devices evolve within their limits,
//! controllers see the network state, and a bad network shows up as late
//! updates and deadline misses rather than lost information.

use std::path::Path;

use busbar::Scenario;
use busbar::grid::{DeviceAgent, Environment, GridAgent};
use busbar::scenario::ScenarioError;

fn scenario(name: &str) -> Scenario {
    Scenario::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, "grid.toml", Path::new("."))
}

const PERFECT: &str = r#"
[simulation]
name = "perfect"
duration = "60s"

[grid]
step = "1s"
deadline = "500ms"
start_hour = 10.0

[network.default]
latency = { dist = "constant", value = "1ms" }

[[microgrid]]
id = "mg"
count = 2
[[microgrid.device]]
type = "storage"
id = "bat"
capacity_mwh = 1.0
p_max_mw = 0.5
soc_init = 0.5
soc_min = 0.2
soc_max = 0.8
[[microgrid.device]]
type = "pv"
id = "pv"
peak_mw = 0.5
[[microgrid.device]]
type = "load"
id = "load"
base_mw = 0.8
"#;

#[test]
fn a_perfect_network_meets_every_deadline() {
    let s = parse(PERFECT).unwrap();
    let mut sim = s.build(1, 0).unwrap();
    let summary = s.run_sim(&mut sim).unwrap();
    let env: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
    let st = env.stats();
    // Steps at 0, 1, ..., 60 s; deadlines at 0.5, ..., 59.5 s.
    assert_eq!((st.steps, st.deadlines), (61, 60));
    assert_eq!(st.deadline_misses, 0, "{st:?}");
    assert_eq!(st.late_updates, 0);
    assert_eq!(summary.late, 0);
    assert_eq!(st.non_converged, 0);
    // Every update the environment used was sent 4 ms into its step (action
    // up and down, setpoint up and down: four 1 ms hops) and used at the
    // 500 ms deadline: an age of 496 ms.
    let aoi = &summary.age_of_information;
    assert_eq!(aoi.count, 60 * 6, "one age per device per deadline");
    assert!(aoi.p50_ns.abs_diff(496_000_000) < 500_000, "{aoi:?}");
    assert!(aoi.max_ns.abs_diff(496_000_000) < 500_000, "{aoi:?}");
    // The environment holds this step's values from every device.
    let (k, p, _q, _soc) = env.held("mg1.load").expect("load reported");
    assert_eq!(k, 59);
    assert!(p < 0.0, "a load injects negative power: {p}");
    let (_, p_pv, _, _) = env.held("mg2.pv").expect("pv reported");
    assert!(p_pv > 0.0, "PV generates at 10:00: {p_pv}");
}

#[test]
fn a_complete_step_costs_2nm_plus_2_messages_and_2nm_plus_2n_copies() {
    // N = 2 microgrids of M = 3 devices on a lossless network: steps 0..=59
    // complete (14 messages, 16 copies each, as docs/grid.md says), and
    // step 60's action is published at the very end and still in flight.
    let (n, m) = (2, 3);
    let s = parse(PERFECT).unwrap();
    let summary = s.run(1, 0).unwrap();
    let steps = 60;
    assert_eq!(
        summary.published,
        steps * (2 * n * m + 2) + 1,
        "{summary:?}"
    );
    assert_eq!(
        summary.delivered,
        steps * (2 * n * m + 2 * n),
        "{summary:?}"
    );
    assert_eq!(summary.routed, steps * (2 * n * m + 2));
    assert_eq!((summary.in_flight, summary.dropped), (1, 0));
}

#[test]
fn devices_evolve_within_their_limits_and_controllers_see_the_grid() {
    let s = parse(PERFECT).unwrap();
    let mut sim = s.build(1, 0).unwrap();
    s.run_sim(&mut sim).unwrap();
    let bat: &DeviceAgent = sim.agent(sim.agent_id("mg1.bat").unwrap()).unwrap();
    let soc = bat.soc().expect("storage has a SOC");
    assert!((0.2..=0.8).contains(&soc), "{soc}");
    assert_ne!(soc, 0.5, "the battery was dispatched");
    // Step 60 starts at the very end of the run: its setpoints are still on
    // the network, so 60 updates.
    assert_eq!(bat.updates(), 60);
    let pv: &DeviceAgent = sim.agent(sim.agent_id("mg1.pv").unwrap()).unwrap();
    assert_eq!(pv.soc(), None);
    let mg: &GridAgent = sim.agent(sim.agent_id("mg2").unwrap()).unwrap();
    assert_eq!(mg.setpoints_sent(), 60 * 3);
    let (vmin, vmax) = mg.voltages();
    let (vmin, vmax) = (vmin.expect("network state seen"), vmax.unwrap());
    assert!(vmin <= vmax && vmin > 0.9 && vmax < 1.1, "{vmin} {vmax}");
    let env: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
    let flow = env.flow(0).expect("microgrid 0 solved");
    assert!(flow.converged);
    assert_eq!(flow.v_pu.len(), 4, "slack + one bus per device");
}

#[test]
fn a_bad_network_makes_updates_late_and_misses_deadlines() {
    let s = scenario("lossy_jitter.toml");
    let mut sim = s.build(s.seed(), 0).unwrap();
    let summary = s.run_sim(&mut sim).unwrap();
    let env: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
    let st = env.stats();
    assert!(st.late_updates > 0 && st.deadline_misses > 0, "{st:?}");
    // The environment's own count is what the run reports as late.
    assert_eq!(st.late_updates, summary.late);
    assert!(summary.dropped_by_reason["loss"] > 0);
    // Stale values are used, not dropped: some ages exceed one step.
    assert!(summary.age_of_information.max_ns > 500_000_000);
}

#[test]
fn large_scenario_has_the_expected_message_volume() {
    // 2·N·M + 2 messages per step (1 action, 500 setpoints, 500 state
    // updates, 1 network state) and 2·N·M + 2·N deliveries (100 action
    // copies, 500 + 500, 100 network-state copies): 1 002 and 1 200.
    let s = scenario("large_100x5.toml");
    let summary = s.run(s.seed(), 0).unwrap();
    let steps = 120;
    assert!(
        summary.published.abs_diff(steps * 1002) <= 1002,
        "{summary:?}"
    );
    let delivered_plus_lost = summary.delivered + summary.dropped + summary.in_flight;
    assert!(delivered_plus_lost.abs_diff(steps * 1200) <= 1200 + summary.dropped * 2);
}

#[test]
fn grid_errors_are_located() {
    let bad = PERFECT.replace("soc_min = 0.2", "soc_min = 0.9");
    let e = parse(&bad).unwrap_err().to_string();
    assert!(e.contains("microgrid[0].device[0].soc_max"), "{e}");
    let bad = PERFECT.replace("count = 2", "count = 0");
    let e = parse(&bad).unwrap_err().to_string();
    assert!(
        e.contains("grid.toml:16:") && e.contains("microgrid[0].count"),
        "{e}"
    );
    let bad = PERFECT.replace("id = \"pv\"", "id = \"bat\"");
    let e = parse(&bad).unwrap_err().to_string();
    assert!(
        e.contains("microgrid[0].device[1].id") && e.contains("twice"),
        "{e}"
    );
}

#[test]
fn power_flow_settings_are_checked_at_their_key() {
    for (set, key) in [
        ("pf_tolerance_pu = 0.0", "grid.pf_tolerance_pu"),
        ("pf_tolerance_pu = 0.5", "grid.pf_tolerance_pu"),
        ("pf_max_iter = 0", "grid.pf_max_iter"),
    ] {
        let bad = PERFECT.replace("start_hour = 10.0", &format!("start_hour = 10.0\n{set}"));
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("must be"), "{set}: {e}");
    }
    let bad = PERFECT.replace(
        "start_hour = 10.0",
        "start_hour = 10.0\npower_flow = \"dc\"",
    );
    assert!(parse(&bad).is_err());
}

fn first_flow(s: &Scenario) -> (Option<&'static str>, busbar::grid::FlowResult) {
    let mut sim = s.build(1, 0).unwrap();
    s.run_sim(&mut sim).unwrap();
    let env: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
    (env.power_flow_name(0), env.flow(0).unwrap().clone())
}

#[test]
fn the_default_model_is_ac_and_lindistflow_can_be_chosen() {
    let (name, ac) = first_flow(&parse(PERFECT).unwrap());
    assert_eq!(name, Some("ac"));
    assert!(ac.converged && ac.iterations >= 1);
    assert!(ac.losses_mw > 0.0);
    let lin = PERFECT.replace(
        "start_hour = 10.0",
        "start_hour = 10.0\npower_flow = \"lindistflow\"",
    );
    let (name, lin) = first_flow(&parse(&lin).unwrap());
    assert_eq!(name, Some("lindistflow"));
    assert!(lin.converged);
    assert_eq!(lin.iterations, 0);
    for (a, l) in ac.v_pu.iter().zip(&lin.v_pu) {
        assert!((a - l).abs() < 0.01, "{a} {l}");
    }
}

#[test]
fn a_library_user_can_plug_a_power_flow() {
    use busbar::grid::{Feeder, FlowResult, PowerFlow, PowerFlowFactory};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// Counts its calls and reports every bus at 0.97 pu.
    struct Flat(Arc<AtomicU64>);
    impl PowerFlow for Flat {
        fn name(&self) -> &'static str {
            "flat"
        }
        fn solve(&mut self, feeder: &Feeder, _: &[(f64, f64)], out: &mut FlowResult) {
            self.0.fetch_add(1, Ordering::Relaxed);
            *out = FlowResult::new(feeder);
            out.v_pu.fill(0.97);
            out.converged = true;
        }
    }
    let calls = Arc::new(AtomicU64::new(0));
    let built = Arc::new(Mutex::new(0u32));
    let (c, b) = (calls.clone(), built.clone());
    let factory: PowerFlowFactory = Arc::new(move |_: &Feeder| {
        *b.lock().unwrap() += 1;
        Box::new(Flat(c.clone())) as Box<dyn PowerFlow>
    });
    let s = parse(PERFECT).unwrap().with_power_flow(factory);
    let (name, flow) = first_flow(&s);
    assert_eq!(name, Some("flat"));
    assert_eq!(flow.v_min_pu(), Some(0.97));
    // Two microgrids, 60 deadlines each.
    assert_eq!(calls.load(Ordering::Relaxed), 120);
    assert!(*built.lock().unwrap() >= 2);
}

// ---------------------------------------------------------------------------
// A shared feeder (MATPOWER case), the full network state, volt-VAr
// ---------------------------------------------------------------------------

/// Two microgrids on the IEEE 33-bus feeder, at the ends of two laterals;
/// `pv18` is mg18's PV peak, MW.
fn on_ieee33(pv18: f64, volt_var: bool) -> String {
    format!(
        r#"
[simulation]
name = "ieee33-two"
duration = "20s"

[network.default]
latency = {{ dist = "constant", value = "1ms" }}

[grid]
step = "1s"
deadline = "500ms"
start_hour = 12.0
feeder = "scenarios/feeders/ieee33.m"
base_mva = 10.0

[grid.policy]
volt_var = {volt_var}

[[microgrid]]
id = "mg18"
pcc_bus = 18
[[microgrid.device]]
type = "pv"
id = "pv"
peak_mw = {pv18}
s_rated_mva = 2.0
[[microgrid.device]]
type = "load"
id = "load"
base_mw = 0.1

[[microgrid]]
id = "mg33"
pcc_bus = 33
[[microgrid.device]]
type = "pv"
id = "pv"
peak_mw = 0.2
s_rated_mva = 0.4
[[microgrid.device]]
type = "load"
id = "load"
base_mw = 0.3
"#
    )
}

fn run_ieee33(pv18: f64, volt_var: bool) -> (busbar::Simulation, Scenario) {
    let s = Scenario::parse(
        &on_ieee33(pv18, volt_var),
        "ieee33.toml",
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut sim = s.build(3, 0).unwrap();
    s.run_sim(&mut sim).unwrap();
    (sim, s)
}

#[test]
fn microgrids_on_a_shared_feeder_are_solved_together() {
    let (sim, _) = run_ieee33(0.5, false);
    let env: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
    let (feeder, buses) = env.network(1).unwrap();
    // The case's 33 buses, then 2 buses for each microgrid.
    assert_eq!(feeder.n_buses, 33 + 2 + 2);
    assert_eq!(buses, &[32, 35, 36], "mg33: its PCC is case bus 33");
    let flow = env.flow(0).unwrap();
    assert!(flow.converged);
    assert_eq!(flow.v_pu.len(), 37, "one flow for the whole network");
    // Power balance: the substation supplies the case's 3.715 MW of load,
    // the microgrids' net load (the values held at the last deadline: the
    // next step's updates come after the end) and the losses.
    let devices = ["mg18.pv", "mg18.load", "mg33.pv", "mg33.load"];
    let injected: f64 = devices.iter().map(|d| env.held(d).unwrap().1).sum();
    let balance = 3.715 - injected + flow.losses_mw;
    assert!(
        (flow.p_slack_mw - balance).abs() < 1e-9,
        "{} vs {balance}",
        flow.p_slack_mw
    );
    assert!(flow.losses_mw > 0.05, "{}", flow.losses_mw);
}

#[test]
fn one_microgrids_export_moves_anothers_voltage() {
    let v_min_of_mg33 = |pv18: f64| {
        let (sim, _) = run_ieee33(pv18, false);
        let mg: &GridAgent = sim.agent(sim.agent_id("mg33").unwrap()).unwrap();
        mg.voltages().0.expect("network state seen")
    };
    let (quiet, exporting) = (v_min_of_mg33(0.01), v_min_of_mg33(1.5));
    // mg18 and mg33 share the feeder head (buses 1 to 6): mg18's export
    // lowers the current there and so lifts mg33's voltage.
    assert!(exporting > quiet + 1e-3, "{quiet} -> {exporting}");
}

#[test]
fn the_network_state_carries_every_bus_and_line() {
    use busbar::grid::protocol::{NETWORK_STATE_HEAD, NETWORK_STATE_STRIDE, network_state_parts};
    let (sim, _) = run_ieee33(0.5, false);
    let env: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
    let flow = env.flow(0).unwrap().clone();
    // The grid agents' view was made from the payload: rebuild it here
    // the same way and compare with the environment's own result.
    let mut payload = vec![0.0; NETWORK_STATE_HEAD];
    payload[5] = flow.v_pu.len() as f64;
    payload[6] = flow.loading.len() as f64;
    payload.extend_from_slice(&flow.v_pu);
    payload.extend_from_slice(&flow.loading);
    payload.extend(std::iter::repeat_n(7.0, 2 * NETWORK_STATE_STRIDE));
    let (buses, lines, mine) = network_state_parts(&payload, 1).unwrap();
    assert_eq!(buses, flow.v_pu.as_slice());
    assert_eq!(lines, flow.loading.as_slice());
    assert_eq!(mine, &[7.0; NETWORK_STATE_STRIDE]);
    assert!(network_state_parts(&payload[..payload.len() - 1], 1).is_none());
    // The grid agent's lowest voltage is the lowest of its own buses.
    let (_, own) = env.network(1).unwrap();
    let lowest = own
        .iter()
        .map(|&b| flow.v_pu[b])
        .fold(f64::INFINITY, f64::min);
    let mg: &GridAgent = sim.agent(sim.agent_id("mg33").unwrap()).unwrap();
    assert_eq!(mg.voltages().0, Some(lowest));
}

#[test]
fn volt_var_injects_reactive_power_at_low_voltage() {
    // mg33 sits near 0.92-0.93 pu: on the curve its inverter injects.
    let q_of = |volt_var: bool| {
        let (sim, _) = run_ieee33(0.01, volt_var);
        let env: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
        let (_, p, q, _) = env.held("mg33.pv").expect("the PV reported");
        let v = sim
            .agent::<GridAgent>(sim.agent_id("mg33").unwrap())
            .unwrap()
            .voltages()
            .0
            .unwrap();
        (p, q, v)
    };
    let (_, q_off, v_off) = q_of(false);
    let (p_on, q_on, v_on) = q_of(true);
    assert_eq!(q_off, 0.0);
    assert!(q_on > 0.0, "{q_on}");
    // Within the 0.4 MVA rating beside the active power.
    assert!(q_on * q_on + p_on * p_on <= 0.16 + 1e-12, "{p_on} {q_on}");
    assert!(
        v_on > v_off,
        "injecting Q lifts the voltage: {v_off} -> {v_on}"
    );
}

#[test]
fn feeder_and_pcc_errors_are_located() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let parse_here = |t: &str| Scenario::parse(t, "x.toml", root).unwrap_err().to_string();
    let good = on_ieee33(0.5, false);
    let e = parse_here(&good.replace("pcc_bus = 33", "pcc_bus = 34"));
    assert!(
        e.contains("microgrid[1].pcc_bus") && e.contains("bus 34"),
        "{e}"
    );
    let e = parse_here(&good.replace("pcc_bus = 33\n", ""));
    assert!(e.contains("microgrid[1].pcc_bus"), "{e}");
    let e = parse_here(&good.replace("feeder = \"scenarios/feeders/ieee33.m\"\n", ""));
    assert!(e.contains("needs a shared feeder"), "{e}");
    let e = parse_here(&good.replace("ieee33.m", "nope.m"));
    assert!(e.contains("grid.feeder") && e.contains("nope.m"), "{e}");
}
