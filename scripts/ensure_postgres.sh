#!/usr/bin/env bash
# Start the local PostgreSQL cluster if it is down, and wait until it answers; then make sure
# it can prepare transactions (rollback_migrations --atomic and its tests need
# max_prepared_transactions > 0): when it is 0, set it and restart the cluster, once.
set -euo pipefail
host=127.0.0.1 port=5432

two_phase() {
  local value
  value=$(psql -h "$host" -p "$port" -U postgres -Atc "SHOW max_prepared_transactions" 2>/dev/null || echo "")
  if [ "$value" != "0" ]; then return 0; fi
  if ! command -v pg_ctlcluster >/dev/null || [ ! -d /etc/postgresql ]; then
    echo "max_prepared_transactions is 0 and pg_ctlcluster is not installed: set it above 0" \
      "(ALTER SYSTEM SET max_prepared_transactions = 100) and restart PostgreSQL." >&2
    return 1
  fi
  echo "max_prepared_transactions is 0: setting it to 100 and restarting PostgreSQL"
  psql -h "$host" -p "$port" -U postgres -qc "ALTER SYSTEM SET max_prepared_transactions = 100"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main restart
  wait_up
}

wait_up() {
  for _ in $(seq 1 60); do
    pg_isready -q -h "$host" -p "$port" && return 0
    sleep 1
  done
  echo "PostgreSQL did not come up on $host:$port." >&2
  return 1
}

if pg_isready -q -h "$host" -p "$port" 2>/dev/null; then two_phase; exit $?; fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "PostgreSQL is down: starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
else
  echo "PostgreSQL is not reachable on $host:$port and pg_ctlcluster is not installed." >&2
  exit 1
fi
wait_up
two_phase
