//! The vector environment for reinforcement learning: layout and spaces,
//! determinism across thread counts, external setpoints reaching the
//! devices through the simulated network, NaN actions as the built-in
//! policy, episodes and autoreset, rewards, and observation ages on a
//! lossy network.

use std::path::Path;

use busbar::Scenario;
use busbar::SimTime;
use busbar::grid::{DeviceAgent, Environment, GridAgent};
use busbar::rollout::vecenv::{
    DEV_AGE, DEV_P, DEV_SOC, DEV_STEP, OBS_HOUR, OBS_PRICE, OBS_PRICE_STEP, OBS_STATE_AGE,
    OBS_STATE_STEP, OBS_V_MIN, RewardParams, StepResult, VecEnv, VecEnvError, device_obs_index,
};
use busbar::scenario::Override;

/// Two microgrids, `a` with storage, PV and load, `b` with storage and a
/// load (so its third action and observation slot are padding), on a
/// perfect network of 1 ms hops. 10 a.m.: the price is 45 $/MWh all along.
const SMALL: &str = r#"
[simulation]
name = "small"
duration = "20s"

[grid]
step = "1s"
deadline = "500ms"
start_hour = 10.0

[network.default]
latency = { dist = "constant", value = "1ms" }

[[microgrid]]
id = "a"
[[microgrid.device]]
type = "storage"
id = "bat"
capacity_mwh = 0.5
p_max_mw = 0.4
soc_init = 0.5
[[microgrid.device]]
type = "pv"
id = "pv"
peak_mw = 0.5
[[microgrid.device]]
type = "load"
id = "load"
base_mw = 0.8

[[microgrid]]
id = "b"
[[microgrid.device]]
type = "storage"
id = "bat"
capacity_mwh = 1.0
p_max_mw = 0.25
[[microgrid.device]]
type = "load"
id = "load"
base_mw = 0.3
noise = 0.1
"#;

fn parse(text: &str, sets: &[&str]) -> Scenario {
    let sets: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    Scenario::parse_with(text, "vecenv.toml", Path::new("."), &sets)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn shipped(name: &str, sets: &[&str]) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let sets: Vec<Override> = sets.iter().map(|s| s.parse().unwrap()).collect();
    Scenario::from_file_with(&path, &sets).unwrap_or_else(|e| panic!("{e}"))
}

/// Floats as bits, so that NaN equals NaN.
fn bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// A result's numbers as bits, its flags and its infos.
type Fingerprint = (Vec<u64>, Vec<bool>, Vec<bool>, String);

/// Every number of a result as bits (NaN compares equal to itself), plus
/// the flags and infos.
fn fingerprint(r: &StepResult) -> Fingerprint {
    let bits = r
        .obs
        .iter()
        .chain(&r.next_obs)
        .chain(&r.rewards)
        .map(|x| x.to_bits())
        .collect();
    (
        bits,
        r.terminated.clone(),
        r.truncated.clone(),
        format!("{:?}", r.infos),
    )
}

/// Actions that vary with the step, the environment and the agent, some
/// of them NaN (policy).
fn actions(env: &VecEnv, k: usize) -> Vec<f64> {
    let n = env.num_envs() * env.num_agents() * env.act_dim();
    (0..n)
        .map(|i| match (i + k) % 5 {
            0 => f64::NAN,
            r => (r as f64 - 2.5) / 5.0,
        })
        .collect()
}

fn run(scenario: &Scenario, threads: usize, steps: usize) -> Vec<Fingerprint> {
    let mut env = VecEnv::new(scenario, 5, Some(threads)).unwrap();
    let mut out = vec![fingerprint(env.reset(77).unwrap())];
    for k in 0..steps {
        let a = actions(&env, k);
        out.push(fingerprint(env.step(&a).unwrap()));
    }
    out
}

#[test]
fn layout_spaces_and_labels() {
    let s = parse(SMALL, &[]);
    let mut env = VecEnv::new(&s, 3, Some(1)).unwrap();
    assert_eq!(env.agents(), ["a", "b"]);
    assert_eq!(
        (env.num_agents(), env.act_dim(), env.obs_dim()),
        (2, 3, 11 + 5 * 3)
    );
    assert_eq!(env.episode_steps(), 20);
    assert_eq!(env.action_labels(1), ["bat", "load", "pad2"]);
    let labels = env.observation_labels(0);
    assert_eq!(labels.len(), env.obs_dim());
    assert_eq!(labels[OBS_STATE_AGE], "state_age_s");
    assert_eq!(labels[device_obs_index(1, DEV_P)], "pv.p_mw");
    assert_eq!(labels[device_obs_index(2, DEV_AGE)], "load.age_s");
    assert_eq!(
        env.observation_labels(1)[device_obs_index(2, DEV_SOC)],
        "pad2.soc"
    );

    let a = env.action_space(0);
    assert_eq!(a.shape, [3]);
    assert_eq!(
        (a.low.clone(), a.high.clone()),
        (vec![-0.4, 0.0, -1.0], vec![0.4, 1.0, 1.0])
    );
    let b = env.action_space(1);
    assert_eq!(
        (b.low.clone(), b.high.clone()),
        (vec![-0.25, -1.0, -1.0], vec![0.25, 1.0, 1.0])
    );
    assert_eq!(env.observation_space(0).shape, [env.obs_dim()]);

    let space = env.observation_space(0).clone();
    let r = env.reset(1).unwrap();
    assert_eq!(r.obs.len(), 3 * 2 * r.obs_dim());
    assert_eq!(
        (r.rewards.len(), r.truncated.len(), r.infos.len()),
        (6, 3, 3)
    );
    // Control point 0: nothing has arrived; only the hour is known.
    let o = r.agent_obs(2, 1);
    assert_eq!(o[OBS_HOUR], 10.0);
    assert!(o.iter().skip(1).all(|x| x.is_nan()), "{o:?}");
    assert_eq!(bits(&r.obs), bits(&r.next_obs));

    let nan = vec![f64::NAN; 3 * 2 * 3];
    let r = env.step(&nan).unwrap();
    let b_obs = r.agent_obs(0, 1);
    assert!(b_obs[device_obs_index(1, DEV_P)] < 0.0, "b's load reported");
    let pad = device_obs_index(2, 0);
    assert!(
        b_obs[pad..pad + 5].iter().all(|x| x.is_nan()),
        "padding is NaN"
    );
    let a_obs = r.agent_obs(0, 0);
    let without_nan: Vec<f64> = a_obs
        .iter()
        .map(|x| if x.is_nan() { 0.5 } else { *x })
        .collect();
    assert!(space.contains(&without_nan), "{a_obs:?}");
}

#[test]
fn a_vector_environment_can_move_between_threads() {
    // A Python binding (or a training loop) may own it on any thread.
    fn is_send<T: Send>() {}
    is_send::<VecEnv>();
}

#[test]
fn errors_say_what_is_wrong() {
    let two_agents = shipped("two_agents.toml", &[]);
    assert!(matches!(
        VecEnv::new(&two_agents, 2, Some(1)),
        Err(VecEnvError::NoMicrogrids)
    ));
    let s = parse(SMALL, &[]);
    assert!(matches!(
        VecEnv::new(&s, 0, Some(1)),
        Err(VecEnvError::NumEnvs(0))
    ));
    assert!(matches!(
        VecEnv::new(&s, 2, Some(0)),
        Err(VecEnvError::NoThreads)
    ));
    let short = parse(SMALL, &["simulation.duration=\"900ms\""]);
    let e = VecEnv::new(&short, 2, Some(1)).unwrap_err();
    assert!(e.to_string().contains("less than one grid step"), "{e}");
    let mut env = VecEnv::new(&s, 2, None).unwrap();
    assert!(env.threads() >= 1);
    assert!(matches!(env.step(&[0.0; 12]), Err(VecEnvError::NotReset)));
    env.reset(0).unwrap();
    let e = env.step(&[0.0; 11]).unwrap_err();
    assert!(
        matches!(
            e,
            VecEnvError::ActionLength {
                expected: 12,
                got: 11
            }
        ),
        "{e}"
    );
}

#[test]
fn results_are_identical_for_1_2_and_4_threads_and_across_instances() {
    // A random, lossy, reordering network, and more steps than an episode
    // (autoreset included).
    let s = parse(
        SMALL,
        &[
            "network.default.latency={ dist = \"lognormal\", median = \"30ms\", sigma = 1.0 }",
            "network.default.loss=0.2",
            "network.default.ordering=\"unordered\"",
        ],
    );
    let one = run(&s, 1, 25);
    assert_eq!(one, run(&s, 2, 25), "2 threads");
    assert_eq!(one, run(&s, 4, 25), "4 threads");
    assert_eq!(one, run(&s, 1, 25), "another instance");
    // The seed matters.
    let mut env = VecEnv::new(&s, 5, Some(2)).unwrap();
    let other = fingerprint(env.reset(78).unwrap());
    let a = actions(&env, 0);
    let other_step = fingerprint(env.step(&a).unwrap());
    assert_eq!(other.0, one[0].0, "nothing has arrived at control point 0");
    assert_ne!(other_step.0, one[1].0);
}

#[test]
fn an_external_storage_setpoint_reaches_the_device() {
    let s = parse(SMALL, &[]);
    let soc_after = |setpoint: f64| {
        let mut env = VecEnv::new(&s, 1, Some(1)).unwrap();
        env.reset(5).unwrap();
        // a.bat gets `setpoint`; everything else follows the policy.
        let a = [setpoint, f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN];
        let r = env.step(&a).unwrap();
        let o = r.agent_obs(0, 0).to_vec();
        let sim = env.simulation(0).unwrap();
        let bat: &DeviceAgent = sim.agent(sim.agent_id("a.bat").unwrap()).unwrap();
        (o, bat.soc().unwrap())
    };
    let (charge, device_charge) = soc_after(-0.4);
    let (discharge, device_discharge) = soc_after(0.4);
    let bat_soc = device_obs_index(0, DEV_SOC);
    // Charging 0.4 MW for 1 s into 0.5 MWh at 95 %: +0.4/3600·0.95/0.5.
    let expected = 0.5 + 0.4 / 3600.0 * 0.95 / 0.5;
    assert!(
        (charge[bat_soc] - expected).abs() < 1e-12,
        "{}",
        charge[bat_soc]
    );
    assert!(discharge[bat_soc] < 0.5, "{}", discharge[bat_soc]);
    assert_eq!(
        charge[bat_soc], device_charge,
        "the grid agent sees the device's SOC"
    );
    assert_eq!(discharge[bat_soc], device_discharge);
    assert_eq!(charge[device_obs_index(0, DEV_P)], -0.4);
    assert_eq!(discharge[device_obs_index(0, DEV_P)], 0.4);
    // The report is step 0's, sent 4 ms into the step (action and setpoint,
    // two 1 ms hops each): 996 ms old at control point 1.
    assert_eq!(charge[device_obs_index(0, DEV_STEP)], 0.0);
    assert!((charge[device_obs_index(0, DEV_AGE)] - 0.996).abs() < 1e-12);
    // The network state of step 0 was sent at its deadline (500 ms).
    assert_eq!(charge[OBS_STATE_STEP], 0.0);
    assert!((charge[OBS_STATE_AGE] - 0.5).abs() < 1e-12);
    assert_eq!(charge[OBS_PRICE], 45.0);
    assert_eq!(charge[OBS_PRICE_STEP], 0.0);
    assert!(charge[OBS_V_MIN] > 0.9 && charge[OBS_V_MIN] < 1.0);
}

#[test]
fn nan_actions_reproduce_the_built_in_policy() {
    nan_actions_are_the_plain_run("500ms");
}

#[test]
fn nan_actions_reproduce_the_built_in_policy_with_the_deadline_at_the_step_end() {
    nan_actions_are_the_plain_run("1s");
}

/// On deterministic links the extra state-update copies of external
/// control change no draw, so all-NaN actions must give the plain run.
fn nan_actions_are_the_plain_run(deadline: &str) {
    let s = parse(SMALL, &[&format!("grid.deadline=\"{deadline}\"")]);
    let deadline_first = deadline != "1s";
    let mut env = VecEnv::new(&s, 2, Some(2)).unwrap();
    env.reset(9).unwrap();
    let mut plain: Vec<_> = (0..2).map(|i| s.build(9 + i as u64, i).unwrap()).collect();
    let nan = vec![f64::NAN; env.num_envs() * env.num_agents() * env.act_dim()];
    let devices = ["a.bat", "a.pv", "a.load", "b.bat", "b.load"];
    for k in 1..env.episode_steps() {
        env.step(&nan).unwrap();
        for (i, p) in plain.iter_mut().enumerate() {
            p.run_until(SimTime(k * 1_000_000_000 - 1)).unwrap();
            let v = env.simulation(i).unwrap();
            let held = |sim: &busbar::Simulation, d: &str| {
                let e: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
                e.held(d)
            };
            for d in devices {
                assert_eq!(held(v, d), held(p, d), "step {k}, env {i}, {d}");
                assert!(held(v, d).is_some_and(|h| h.0 == k - 1));
            }
            let soc = |sim: &busbar::Simulation| {
                let b: &DeviceAgent = sim.agent(sim.agent_id("b.bat").unwrap()).unwrap();
                b.soc()
            };
            assert_eq!(soc(v), soc(p));
            let sent = |sim: &busbar::Simulation| {
                let g: &GridAgent = sim.agent(sim.agent_id("a").unwrap()).unwrap();
                g.setpoints_sent()
            };
            assert_eq!(sent(v), sent(p));
        }
    }
    let stats = |sim: &busbar::Simulation| {
        let e: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
        e.stats()
    };
    if deadline_first {
        assert_eq!(stats(env.simulation(1).unwrap()), stats(&plain[1]));
        // Only the message counts differ: the grid agents also get the
        // state updates (5 devices to 2 grid agents, per step).
        let (v, p) = (env.simulation(0).unwrap().metrics(), plain[0].metrics());
        assert_eq!(v.published, p.published);
        assert_eq!(v.delivered, p.delivered + 19 * 5 * 2);
    } else {
        // The vector environment has run the deadline at 19 s, the plain
        // run not yet; let it run that too (and step 19's start).
        plain[1].run_until(SimTime(19_000_000_000)).unwrap();
        let mut p = stats(&plain[1]);
        let v = stats(env.simulation(1).unwrap());
        assert_eq!((p.steps, v.steps, v.deadlines), (20, 19, 19));
        p.steps = v.steps;
        assert_eq!(v, p);
    }
}

#[test]
fn with_the_deadline_at_the_step_end_the_newest_state_is_a_step_older() {
    // The network state of step k is sent at (k+1)·step, the control point
    // itself: it arrives after it, so control point k+1 sees step k-1's.
    let s = parse(SMALL, &["grid.deadline=\"1s\""]);
    let mut env = VecEnv::new(&s, 1, Some(1)).unwrap();
    env.reset(5).unwrap();
    let nan = [f64::NAN; 6];
    let o = env.step(&nan).unwrap().agent_obs(0, 0).to_vec();
    assert!(
        o[OBS_STATE_STEP].is_nan() && o[OBS_STATE_AGE].is_nan(),
        "{o:?}"
    );
    assert_eq!(o[device_obs_index(0, DEV_STEP)], 0.0, "reports do arrive");
    let r = env.step(&nan).unwrap();
    let o = r.agent_obs(0, 0);
    assert_eq!(o[OBS_STATE_STEP], 0.0);
    assert!((o[OBS_STATE_AGE] - 1.0).abs() < 1e-12, "{o:?}");
    assert!(r.rewards.iter().all(|x| x.is_finite()));
}

#[test]
fn a_report_arriving_exactly_at_the_control_point_is_in_the_next_observation() {
    // 200 ms hops, 1.2 s steps: step k's action reaches the grid agent at
    // k·1.2 + 0.4 s, the setpoint the device at + 0.8 s, and the device's
    // report the grid agent at (k+1)·1.2 s, exactly the next control point.
    let s = parse(
        SMALL,
        &[
            "grid.step=\"1200ms\"",
            "network.default.latency={ dist = \"constant\", value = \"200ms\" }",
        ],
    );
    let mut env = VecEnv::new(&s, 1, Some(1)).unwrap();
    env.reset(5).unwrap();
    let nan = [f64::NAN; 6];
    let o = env.step(&nan).unwrap().agent_obs(0, 0).to_vec();
    let (step, age) = (device_obs_index(0, DEV_STEP), device_obs_index(0, DEV_AGE));
    assert!(o[step].is_nan(), "arrived at 1.2 s, not before: {o:?}");
    let o = env.step(&nan).unwrap().agent_obs(0, 0).to_vec();
    assert_eq!(o[step], 0.0, "step 1's report arrives at 2.4 s: not yet");
    assert!((o[age] - 1.6).abs() < 1e-12, "sent at 0.8 s: {o:?}");
    assert_eq!(o[OBS_PRICE_STEP], 1.0, "step 1's action arrived at 1.6 s");
}

#[test]
fn episodes_end_at_the_duration_and_reset_with_the_next_seed() {
    // 5.5 s of 1 s steps: 5 steps, the last control point at 5 s.
    let s = parse(SMALL, &["simulation.duration=\"5500ms\""]);
    let mut env = VecEnv::new(&s, 2, Some(2)).unwrap();
    assert_eq!(env.episode_steps(), 5);
    env.reset(100).unwrap();
    assert_eq!(env.simulation(1).unwrap().seed(), 101);
    let nan = vec![f64::NAN; 2 * 2 * 3];
    for k in 1..=4 {
        let r = env.step(&nan).unwrap();
        assert_eq!(r.truncated, [false, false]);
        assert_eq!(r.terminated, [false, false]);
        assert_eq!(bits(&r.obs), bits(&r.next_obs));
        assert_eq!(
            (r.infos[1].step, r.infos[1].episode, r.infos[1].seed),
            (k, 0, 101)
        );
        assert_eq!(r.infos[1].time_s, k as f64);
    }
    let r = env.step(&nan).unwrap();
    assert_eq!(r.truncated, [true, true]);
    assert_eq!(r.terminated, [false, false]);
    assert_eq!(
        (r.infos[0].step, r.infos[0].episode, r.infos[0].seed),
        (5, 0, 100)
    );
    assert_eq!(r.infos[0].error, None);
    // obs: the final observation (step 4's network state, received); next_obs:
    // the new episode's first one (nothing received).
    assert_eq!(r.agent_obs(0, 0)[OBS_STATE_STEP], 4.0);
    assert!(r.agent_next_obs(0, 0)[OBS_STATE_STEP].is_nan());
    assert!(r.rewards.iter().all(|x| x.is_finite()));
    // Episode 1 of env i: seed 100 + i + 2·1, same environment index.
    for i in 0..2 {
        let sim = env.simulation(i).unwrap();
        assert_eq!((sim.seed(), sim.env()), (100 + i as u64 + 2, i as u32));
        assert_eq!(sim.now(), SimTime::ZERO);
    }
    let r = env.step(&nan).unwrap();
    assert_eq!(
        (r.infos[1].step, r.infos[1].episode, r.infos[1].seed),
        (1, 1, 103)
    );
    assert_eq!(r.truncated, [false, false]);
}

#[test]
fn a_limit_ends_the_episode_early() {
    let s = parse(SMALL, &["limits.max_events=300"]);
    let mut env = VecEnv::new(&s, 1, Some(1)).unwrap();
    env.reset(3).unwrap();
    let nan = vec![f64::NAN; 6];
    let mut stopped = None;
    for _ in 0..20 {
        let r = env.step(&nan).unwrap();
        if r.truncated[0] {
            stopped = Some((r.infos[0].clone(), r.rewards.clone()));
            break;
        }
    }
    let (info, _rewards) = stopped.expect("the limit stops the episode");
    assert!(info.step < 20, "{info:?}");
    assert!(
        info.error.as_deref().unwrap().contains("max_events"),
        "{info:?}"
    );
    // The next episode starts afresh.
    let r = env.step(&nan).unwrap();
    assert_eq!((r.infos[0].episode, r.infos[0].step), (1, 1));
    assert_eq!(r.infos[0].error, None);
}

#[test]
fn rewards_price_the_imported_energy_and_count_deadline_misses() {
    rewards_are_the_environments_measures("500ms");
}

#[test]
fn rewards_with_the_deadline_at_the_step_end() {
    rewards_are_the_environments_measures("1s");
}

fn rewards_are_the_environments_measures(deadline: &str) {
    let s = parse(
        SMALL,
        &[
            "network.default.latency={ dist = \"exponential\", mean = \"300ms\" }",
            "network.default.loss=0.1",
            &format!("grid.deadline=\"{deadline}\""),
        ],
    );
    let m = 15;
    let rewards = |params: RewardParams| {
        let mut env = VecEnv::new(&s, 1, Some(1)).unwrap();
        env.set_reward_params(params);
        env.reset(11).unwrap();
        let a = [-0.2, f64::NAN, f64::NAN, 0.1, f64::NAN, f64::NAN];
        let mut total = 0.0;
        for _ in 0..m {
            total += env.step(&a).unwrap().rewards.iter().sum::<f64>();
        }
        let sim = env.simulation(0).unwrap();
        let e: &Environment = sim.agent(sim.agent_id("env").unwrap()).unwrap();
        (total, e.stats())
    };
    let free = RewardParams {
        voltage_violation: 0.0,
        non_converged: 0.0,
        deadline_miss: 0.0,
        export_credit: 0.0,
    };
    let (cost, stats) = rewards(free.clone());
    assert_eq!(stats.deadlines, m as u64, "deadlines 0..m-1, no more");
    assert!(stats.energy_imported_mwh > 0.0);
    assert!(
        (cost + 45.0 * stats.energy_imported_mwh).abs() < 1e-9,
        "{cost} {stats:?}"
    );
    let (with_misses, stats) = rewards(RewardParams {
        deadline_miss: 1.0,
        ..free
    });
    assert!(stats.deadline_misses > 0, "{stats:?}");
    let misses = cost - with_misses;
    assert!(
        (misses - stats.deadline_misses as f64).abs() < 1e-9,
        "{misses} {stats:?}"
    );
}

/// Mean and largest finite value of observation index `i` over steps.
fn ages(scenario: &Scenario, index: impl Fn(usize) -> Vec<usize>) -> (f64, f64) {
    let mut env = VecEnv::new(scenario, 2, Some(2)).unwrap();
    env.reset(1).unwrap();
    let nan = vec![f64::NAN; env.num_envs() * env.num_agents() * env.act_dim()];
    let (mut sum, mut n, mut max) = (0.0, 0.0, 0.0f64);
    for _ in 0..60 {
        let r = env.step(&nan).unwrap();
        for e in 0..r.num_envs() {
            for a in 0..r.num_agents() {
                let o = r.agent_obs(e, a);
                for i in index(a) {
                    if o[i].is_finite() {
                        sum += o[i];
                        n += 1.0;
                        max = max.max(o[i]);
                    }
                }
            }
        }
    }
    (sum / n, max)
}

#[test]
fn observation_ages_grow_on_a_lossy_network() {
    let clean = shipped("seed_example.toml", &["network.default.loss=0"]);
    let lossy = shipped("seed_example.toml", &["network.default.loss=0.5"]);
    let state = |_| vec![OBS_STATE_AGE];
    let (clean_mean, clean_max) = ages(&clean, state);
    let (lossy_mean, lossy_max) = ages(&lossy, state);
    // Without loss the network state is the previous deadline's: about
    // 200 ms old (deadline at 800 ms).
    assert!(clean_mean < 0.3, "{clean_mean}");
    assert!(
        lossy_mean > 1.5 * clean_mean,
        "{lossy_mean} vs {clean_mean}"
    );
    assert!(
        lossy_max > 2.0,
        "lost network states leave old ones: {lossy_max}"
    );
    assert!(lossy_max > clean_max);
    let reports = |_| (0..3).map(|j| device_obs_index(j, DEV_AGE)).collect();
    let (clean_mean, _) = ages(&clean, reports);
    let (lossy_mean, lossy_max) = ages(&lossy, reports);
    assert!(
        lossy_mean > 1.5 * clean_mean,
        "{lossy_mean} vs {clean_mean}"
    );
    assert!(lossy_max > 2.0, "{lossy_max}");
}

/// Step throughput: `cargo test --release --test vecenv -- --ignored --nocapture throughput`.
#[test]
#[ignore = "a measurement, not a check"]
fn throughput() {
    let s = shipped("seed_example.toml", &[]);
    // The plain runs, for comparison: 64 seeds, one thread.
    let start = std::time::Instant::now();
    for i in 0..64u32 {
        s.run(u64::from(i), i).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "seed_example, 64 plain runs, 1 thread: {:.0} steps/s",
        (64 * 300) as f64 / secs
    );
    for threads in [1, 2] {
        let mut env = VecEnv::new(&s, 64, Some(threads)).unwrap();
        env.reset(0).unwrap();
        let nan = vec![f64::NAN; 64 * env.num_agents() * env.act_dim()];
        let steps = env.episode_steps() as usize;
        let start = std::time::Instant::now();
        for _ in 0..steps {
            env.step(&nan).unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = (64 * steps) as f64 / secs;
        println!(
            "seed_example, 64 envs, {threads} thread(s): {steps} steps ({} env-steps incl. one autoreset each) in {secs:.2} s = {rate:.0} env-steps/s",
            64 * steps
        );
    }
}
