#!/usr/bin/env bash
# Renders `busbar export --format mermaid` diagrams of shipped scenarios
# with mermaid-cli (Chromium through puppeteer) and checks that Mermaid
# parsed them: an SVG with no syntax error, one text per arrow and note,
# every message text whole (a stray `#` would start a Mermaid comment).
#
# Needs Node 20 with npx, network access to the npm registry and a
# Chromium: /usr/bin/chromium, or the Debian package `chromium`, which this
# script installs with apt-get when it runs as root. puppeteer's own
# browser download is skipped. .ci/run calls it after
# scripts/check_report.sh has installed Chromium (about 30 s with a warm
# npm cache, a minute more on a clean machine for the mermaid-cli
# download).
#
#   scripts/check_mermaid.sh            # builds target/release/busbar
#   BUSBAR=path/to/busbar scripts/check_mermaid.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MMDC_VERSION=11.17.0

# shellcheck source=scripts/ensure_chromium_and_busbar.sh
. scripts/ensure_chromium_and_busbar.sh check_mermaid

tmp=$(mktemp -d "${TMPDIR:-/tmp}/busbar-mermaid.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo '{"executablePath": "/usr/bin/chromium", "args": ["--no-sandbox"]}' >"$tmp/puppeteer.json"

render() { # name scenario export-flags...
  local name=$1 scenario=$2
  shift 2
  "$BUSBAR" run "$scenario" --trace "$tmp/$name.bin" >/dev/null
  "$BUSBAR" export "$tmp/$name.bin" --format mermaid -o "$tmp/$name.mmd" "$@" 2>/dev/null
  PUPPETEER_SKIP_DOWNLOAD=1 npx -y "@mermaid-js/mermaid-cli@$MMDC_VERSION" \
    -p "$tmp/puppeteer.json" -i "$tmp/$name.mmd" -o "$tmp/$name.svg" >/dev/null 2>&1 || {
    echo "FAIL $name: mermaid-cli refused $tmp/$name.mmd" >&2
    exit 1
  }
  python3 - "$tmp/$name.mmd" "$tmp/$name.svg" "$name" <<'PY'
import collections, html, re, sys
mmd, svg, name = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3]
if "Syntax error" in svg or "<svg" not in svg:
    sys.exit(f"FAIL {name}: Mermaid could not parse the diagram")
decode = lambda t: re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), t)
want = collections.Counter(
    decode(l.split(": ", 1)[1])
    for l in mmd.splitlines()[1:]
    if not l.startswith("participant ")
)
got = collections.Counter(
    html.unescape(re.sub(r"<[^>]+>", "", t))
    for t in re.findall(r"<text[^>]*>(.*?)</text>", svg, re.S)
)
missing = want - got
if missing:
    sys.exit(f"FAIL {name}: not rendered whole: {list(missing)[:3]}")
print(f"ok {name}: {sum(want.values())} arrows and notes rendered", flush=True)
PY
}

render two_agents scenarios/two_agents.toml --to 3s
render lossy scenarios/lossy_jitter.toml --to 500ms
render feeder scenarios/feeder_lte_plc.toml --truncate
render feeder_filtered scenarios/feeder_lte_plc.toml --filter kind=drop,kind=fault --truncate
echo "check_mermaid: ok"
