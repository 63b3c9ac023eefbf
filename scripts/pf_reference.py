#!/usr/bin/env python3
"""The reference for busbar's AC power flow: pandapower's Newton-Raphson.

Reads the power-flow cases (tests/data/powerflow/cases.json: feeders with
impedances in pu on base_mva, lines pointing away from the slack bus 0, and
net injections per bus [P_MW, Q_MVAr], generation positive), builds each
feeder in pandapower and solves it:

- buses at VN_KV (any nominal voltage gives the same per-unit answer);
  r_ohm = r_pu * Z_base, x_ohm = x_pu * Z_base with Z_base = VN_KV^2 / base_mva,
  length 1 km, no shunt (c = g = 0), max_i_ka = rating_mva / (sqrt(3) VN_KV),
  so that loading_percent / 100 is |I| / (rating_mva / base_mva) in pu;
- an ext_grid at bus 0 with vm_pu = v_slack_pu and va_degree = 0;
- one load per bus with p_mw = -P, q_mvar = -Q (a negative load for a net
  injection);
- net sn_mva = base_mva; runpp with algorithm="nr", init="flat",
  tolerance_mva=1e-10, max_iteration=100, voltage angles on.

pandapower raising LoadflowNotConverged (or a result that is not finite) is
recorded as converged = false.

Writes tests/data/powerflow/reference.json: per case (in the input's order)
the name, converged, and when converged vm_pu and va_degree per bus, loading
(fraction) per line, the slack's p_mw and q_mvar and the total line losses.

Usage: python3 scripts/pf_reference.py [CASES_JSON] [OUT_JSON]
"""

import json
import math
import sys
import warnings
from pathlib import Path

import pandapower as pp

VN_KV = 12.66
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CASES = ROOT / "tests" / "data" / "powerflow" / "cases.json"
DEFAULT_OUT = ROOT / "tests" / "data" / "powerflow" / "reference.json"


def build(feeder, injections):
    base = feeder["base_mva"]
    z_base = VN_KV * VN_KV / base
    net = pp.create_empty_network(sn_mva=base)
    for b in range(feeder["n_buses"]):
        pp.create_bus(net, vn_kv=VN_KV, index=b)
    pp.create_ext_grid(net, bus=0, vm_pu=feeder["v_slack_pu"], va_degree=0.0)
    for k, line in enumerate(feeder["lines"]):
        pp.create_line_from_parameters(
            net,
            from_bus=line["from"],
            to_bus=line["to"],
            length_km=1.0,
            r_ohm_per_km=line["r_pu"] * z_base,
            x_ohm_per_km=line["x_pu"] * z_base,
            c_nf_per_km=0.0,
            g_us_per_km=0.0,
            max_i_ka=line["rating_mva"] / (math.sqrt(3.0) * VN_KV),
            index=k,
        )
    for b, (p, q) in enumerate(injections):
        pp.create_load(net, bus=b, p_mw=-p, q_mvar=-q)
    return net


def solve(case):
    net = build(case["feeder"], case["injections"])
    out = {"name": case["name"], "converged": False}
    try:
        pp.runpp(
            net,
            algorithm="nr",
            init="flat",
            tolerance_mva=1e-10,
            max_iteration=100,
            calculate_voltage_angles=True,
            numba=False,
        )
    except pp.LoadflowNotConverged:
        return out
    n = case["feeder"]["n_buses"]
    m = len(case["feeder"]["lines"])
    vm = [float(net.res_bus.vm_pu.at[b]) for b in range(n)]
    va = [float(net.res_bus.va_degree.at[b]) for b in range(n)]
    loading = [float(net.res_line.loading_percent.at[k]) / 100.0 for k in range(m)]
    p_slack = float(net.res_ext_grid.p_mw.sum())
    q_slack = float(net.res_ext_grid.q_mvar.sum())
    losses = float(net.res_line.pl_mw.sum())
    values = vm + va + loading + [p_slack, q_slack, losses]
    if not all(math.isfinite(v) for v in values):
        return out
    out.update(
        converged=True,
        vm_pu=vm,
        va_degree=va,
        loading=loading,
        p_slack_mw=p_slack,
        q_slack_mvar=q_slack,
        losses_mw=losses,
    )
    return out


def main():
    cases_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CASES
    out_path = Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_OUT
    cases = json.loads(cases_path.read_text())["cases"]
    warnings.simplefilter("ignore")
    results = [solve(c) for c in cases]
    doc = {
        "about": "pandapower Newton-Raphson (tolerance_mva=1e-10, flat start) on "
        "tests/data/powerflow/cases.json, by scripts/pf_reference.py",
        "pandapower_version": pp.__version__,
        "results": results,
    }
    out_path.write_text(json.dumps(doc, indent=1) + "\n")
    ok = sum(r["converged"] for r in results)
    print(f"{len(results)} cases, {ok} converged, {len(results) - ok} not: {out_path}")


if __name__ == "__main__":
    main()
