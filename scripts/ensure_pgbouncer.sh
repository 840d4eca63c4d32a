#!/usr/bin/env bash
# The PgBouncer tests start Debian's pgbouncer binary themselves (own config, free port);
# this only makes sure the binary is there. The package's own service is left stopped.
set -euo pipefail
if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing PgBouncer for the connection-pooler tests (apt-get install pgbouncer)"
  apt-get update -qq
  # policy-rc.d 101: do not start the packaged service (it would take port 6432).
  policy=/usr/sbin/policy-rc.d
  created=no
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=yes
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
  if [ "$created" = yes ]; then rm -f "$policy"; fi
else
  echo "pgbouncer is missing: run 'sudo apt-get install -y pgbouncer'." >&2
  exit 1
fi
