#!/usr/bin/env bash
# Start the local PostgreSQL cluster if it is down, and wait until it answers.
set -euo pipefail
host=127.0.0.1 port=5432
if pg_isready -q -h "$host" -p "$port" 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "PostgreSQL is down: starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
else
  echo "PostgreSQL is not reachable on $host:$port and pg_ctlcluster is not installed." >&2
  exit 1
fi
for _ in $(seq 1 60); do
  pg_isready -q -h "$host" -p "$port" && exit 0
  sleep 1
done
echo "PostgreSQL did not come up on $host:$port." >&2
exit 1
