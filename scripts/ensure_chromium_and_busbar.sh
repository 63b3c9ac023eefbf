# Sourced by the scripts that open busbar's output in a browser: installs
# Debian's Chromium when /usr/bin/chromium is missing (as root, with
# apt-get), and sets BUSBAR to a release build unless it is set already.
# $1 names the calling script in error messages.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
  else
    echo "$1: /usr/bin/chromium not found (apt-get install chromium)" >&2
    exit 1
  fi
fi
if [ -z "${BUSBAR:-}" ]; then
  cargo build --release --quiet
  BUSBAR=target/release/busbar
fi
