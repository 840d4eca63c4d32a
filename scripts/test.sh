#!/usr/bin/env bash
# The whole suite on SQLite, PostgreSQL and MariaDB (servers started if they are down).
# Extra arguments go to pytest; TEST_BACKENDS="sqlite postgresql" (for example) picks backends;
# VENV=.venv-dj42 runs it with another virtualenv (see scripts/bootstrap.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
bash scripts/bootstrap.sh "$venv"
bash scripts/ensure_chromium.sh
backends=${TEST_BACKENDS:-"sqlite postgresql mariadb"}
django=$("$venv/bin/python" -c 'import django; print(django.get_version())')
for backend in $backends; do
  case $backend in
    sqlite)
      echo "== tests on SQLite (Django $django)"
      env -u DATABASE_URL "$venv/bin/pytest" "$@" ;;
    postgresql)
      bash scripts/ensure_postgres.sh
      bash scripts/ensure_pgbouncer.sh
      echo "== tests on PostgreSQL (Django $django)"
      DATABASE_URL=${PG_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/django_rollback_tests} \
        "$venv/bin/pytest" "$@" ;;
    mariadb)
      bash scripts/ensure_mariadb.sh
      echo "== tests on MariaDB (Django $django)"
      DATABASE_URL=${MYSQL_DATABASE_URL:-mysql://root@127.0.0.1:3306/django_rollback_tests} \
        "$venv/bin/pytest" "$@" ;;
    *) echo "unknown backend: $backend" >&2; exit 2 ;;
  esac
done
