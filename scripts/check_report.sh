#!/usr/bin/env bash
# Opens `busbar report` pages in a real browser: headless Chromium (the
# Debian package, installed with apt-get when missing and running as root)
# loads a trace report and a batch report with networking off, and the
# script checks that the browser parsed one <svg> per plot (Chromium's
# own DOM, --dump-dom) and took a screenshot of each page.
#
#   scripts/check_report.sh              # builds target/release/busbar
#   BUSBAR=path/to/busbar OUT=dir scripts/check_report.sh
#
# The screenshots (report_trace.png, report_batch.png) stay in $OUT
# (default: a temporary directory, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/ensure_chromium_and_busbar.sh
. scripts/ensure_chromium_and_busbar.sh check_report
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/busbar-report.XXXXXX")}
mkdir -p "$OUT"
profile=$(mktemp -d "${TMPDIR:-/tmp}/busbar-chromium.XXXXXX")
trap 'rm -rf "$profile"' EXIT

chrome() {
  timeout 120 /usr/bin/chromium --headless --no-sandbox --disable-gpu \
    --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$profile" "$@" 2>/dev/null
}

check() { # name html plots
  local name=$1 page=$2 plots=$3
  local dom svgs
  dom=$(chrome --dump-dom "file://$page")
  svgs=$(grep -o '<svg' <<<"$dom" | wc -l)
  if [ "$svgs" != "$plots" ]; then
    echo "FAIL $name: the browser's DOM holds $svgs <svg> elements, the report has $plots plots" >&2
    exit 1
  fi
  chrome --window-size=900,1600 --screenshot="$OUT/$name.png" "file://$page" >/dev/null
  local size
  size=$(stat -c %s "$OUT/$name.png" 2>/dev/null || echo 0)
  if [ "$size" -lt 20000 ]; then
    echo "FAIL $name: no screenshot, or a blank one ($size bytes)" >&2
    exit 1
  fi
  echo "ok $name: $plots plots rendered, screenshot $OUT/$name.png ($size bytes)"
}

"$BUSBAR" run scenarios/seed_example.toml --trace "$OUT/t.bin" >/dev/null
"$BUSBAR" report "$OUT/t.bin" -o "$OUT/report_trace.html" 2>"$OUT/log"
check report_trace "$OUT/report_trace.html" "$(grep -o '[0-9]* plots' "$OUT/log" | cut -d' ' -f1)"

"$BUSBAR" batch scenarios/lossy_jitter.toml --envs 3 \
  --sweep 'network.default.loss=0.0,0.05,0.1,0.2' --out "$OUT/r.csv" >/dev/null 2>&1
"$BUSBAR" report "$OUT/r.csv" -o "$OUT/report_batch.html" 2>"$OUT/log"
check report_batch "$OUT/report_batch.html" "$(grep -o '[0-9]* plots' "$OUT/log" | cut -d' ' -f1)"
echo "check_report: pages and screenshots in $OUT"
