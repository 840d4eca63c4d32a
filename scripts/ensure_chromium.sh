#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (Playwright cannot download a browser here).
# Installs it when missing and we are root; otherwise says what to do.
set -euo pipefail
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$chromium" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing Chromium for the browser tests (apt-get install chromium)"
  # wait for another apt-get (a parallel test run installing the same) instead of failing
  wait_lock="-o DPkg::Lock::Timeout=600"
  apt-get $wait_lock update -qq
  DEBIAN_FRONTEND=noninteractive apt-get $wait_lock install -y -qq chromium >/dev/null
else
  echo "Chromium is missing at $chromium: run 'sudo apt-get install -y chromium'" \
       "or set CHROMIUM to a Chromium binary." >&2
  exit 1
fi
