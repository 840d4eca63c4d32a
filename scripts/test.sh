#!/usr/bin/env bash
# The whole suite on SQLite and on PostgreSQL (started if it is down). Extra arguments go
# to pytest; TEST_BACKENDS="sqlite" or "postgresql" runs just one backend.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/ensure_chromium.sh
backends=${TEST_BACKENDS:-"sqlite postgresql"}
for backend in $backends; do
  case $backend in
    sqlite)
      echo "== tests on SQLite"
      env -u DATABASE_URL .venv/bin/pytest "$@" ;;
    postgresql)
      bash scripts/ensure_postgres.sh
      echo "== tests on PostgreSQL"
      DATABASE_URL=${PG_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/django_rollback_tests} \
        .venv/bin/pytest "$@" ;;
    *) echo "unknown backend: $backend" >&2; exit 2 ;;
  esac
done
