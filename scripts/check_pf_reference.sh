#!/usr/bin/env bash
# Recomputes the pandapower reference of the AC power flow
# (scripts/pf_reference.py on tests/data/powerflow/cases.json) and checks
# it against the committed tests/data/powerflow/reference.json: the same
# converged flags and every value within 1e-9. tests/powerflow_reference.rs
# compares busbar's AC power flow to the committed file; this script shows
# that the file is what pandapower really computes.
#
# Needs python3 with venv and network access to PyPI (pinned pandapower;
# about a minute to install on a clean machine, 1.5 minutes to solve the
# ~200 cases). The venv is kept in $PF_VENV (default
# ${TMPDIR:-/tmp}/busbar-pf-venv) and reused when its pandapower is the
# pinned one.
#
#   scripts/check_pf_reference.sh           # check
#   scripts/check_pf_reference.sh --write   # rewrite reference.json
set -euo pipefail
cd "$(dirname "$0")/.."
PANDAPOWER_VERSION=3.5.6
venv=${PF_VENV:-${TMPDIR:-/tmp}/busbar-pf-venv}
data=tests/data/powerflow

if ! "$venv/bin/python" -c "import pandapower, sys; sys.exit(pandapower.__version__ != '$PANDAPOWER_VERSION')" 2>/dev/null; then
  echo "check_pf_reference: installing pandapower $PANDAPOWER_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "pandapower==$PANDAPOWER_VERSION"
fi

if [[ "${1:-}" == "--write" ]]; then
  "$venv/bin/python" scripts/pf_reference.py "$data/cases.json" "$data/reference.json"
  exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/busbar-pf.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" scripts/pf_reference.py "$data/cases.json" "$tmp/reference.json"
"$venv/bin/python" - "$data/reference.json" "$tmp/reference.json" <<'PY'
import json, sys
old = json.load(open(sys.argv[1]))["results"]
new = json.load(open(sys.argv[2]))["results"]
problems, worst = [], 0.0
if len(old) != len(new):
    problems.append(f"{len(old)} committed results, {len(new)} recomputed")
for a, b in zip(old, new):
    if a["name"] != b["name"] or a["converged"] != b["converged"]:
        problems.append(f"{a['name']}: converged {a['converged']} committed, {b['name']} {b['converged']} now")
        continue
    for key in ("vm_pu", "va_degree", "loading", "p_slack_mw", "q_slack_mvar", "losses_mw"):
        x, y = a.get(key), b.get(key)
        xs = x if isinstance(x, list) else [x]
        ys = y if isinstance(y, list) else [y]
        if x is None and y is None:
            continue
        if x is None or y is None or len(xs) != len(ys):
            problems.append(f"{a['name']}: {key} differs in shape")
            continue
        d = max((abs(u - v) for u, v in zip(xs, ys)), default=0.0)
        worst = max(worst, d)
        if d > 1e-9:
            problems.append(f"{a['name']}: {key} differs by {d:.3e}")
print(f"check_pf_reference: {len(new)} cases, largest difference {worst:.3e}")
if problems:
    print("\n".join(problems[:20]))
    sys.exit("check_pf_reference: the committed reference is not what pandapower computes "
             "(rewrite it with scripts/check_pf_reference.sh --write if that is intended)")
PY
