#!/usr/bin/env bash
# `make demo`: set up .venv, replay the example project's releases v1.0.0..v1.2.0 into ./demo-site
# (a git repo with one saved migration state per release), create an admin user and serve it.
#
#   DEMO_NO_SERVE=1      stop before starting the server (tests, CI)
#   DEMO_DATABASE_URL    deploy to this (empty) database instead of demo-site/db.sqlite3
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh

root=$PWD
py=$root/.venv/bin/python
site=$root/demo-site

# The demo uses its own settings and its own database, never the caller's.
unset DJANGO_SETTINGS_MODULE
if [ -n "${DEMO_DATABASE_URL:-}" ]; then
  export DATABASE_URL=$DEMO_DATABASE_URL
else
  unset DATABASE_URL
fi

if [ "${DEMO_TENANTS:-}" = 1 ]; then
  # `make demo-tenants`: the django-tenants project (public + tenants alpha, beta, gamma, delta)
  # on PostgreSQL, in ./demo-tenants-site; DEMO_DATABASE_URL names its database.
  site=$root/demo-tenants-site
  url=${DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/django_rollback_demo_tenants}
  echo "== Building the tenant project's release history in $site ($url)"
  "$py" demo/build_tenants.py "$site" --database-url "$url" --force
  cd "$site"
  export DATABASE_URL=$url DJANGO_SETTINGS_MODULE=tenantsite.admin_settings PYTHONPATH=$root
  echo
  echo "== A fleet preview (python manage.py rollback_migrations -t v1.1.0 --fake --skip-unsaved)"
  "$py" manage.py rollback_migrations -t v1.1.0 --fake --skip-unsaved
  DJANGO_SUPERUSER_PASSWORD=admin "$py" manage.py createsuperuser --noinput \
    --username admin --email admin@example.com
  cat <<MSG

== The tenant demo is ready
  Admin:        http://127.0.0.1:8000/admin/   (user: admin, password: admin)
  Saved states: http://127.0.0.1:8000/admin/django_rollback/migrationstate/
  Command line: cd demo-tenants-site && DATABASE_URL=$url DJANGO_SETTINGS_MODULE=tenantsite.admin_settings \\
                  PYTHONPATH=$root ../.venv/bin/python manage.py rollback_migrations -t v1.1.0 --fake
MSG
  if [ "${DEMO_NO_SERVE:-}" = 1 ]; then
    echo "DEMO_NO_SERVE=1: not starting the server."
    exit 0
  fi
  exec "$py" manage.py runserver 127.0.0.1:8000
fi

echo "== Building the release history in $site"
"$py" demo/build_history.py "$site" --force

cd "$site"
echo
echo "== Saved migration states (python manage.py rollback_migrations --list)"
"$py" manage.py rollback_migrations --list

echo
DJANGO_SUPERUSER_PASSWORD=admin "$py" manage.py createsuperuser --noinput \
  --username admin --email admin@example.com

cat <<MSG

== The demo is ready
  Admin:        http://127.0.0.1:8000/admin/   (user: admin, password: admin)
  Saved states: http://127.0.0.1:8000/admin/django_rollback/migrationstate/
  Command line: cd demo-site && ../.venv/bin/python manage.py rollback_migrations -t v1.0.0 --fake
MSG

if [ "${DEMO_NO_SERVE:-}" = 1 ]; then
  echo "DEMO_NO_SERVE=1: not starting the server."
  exit 0
fi
echo
exec "$py" manage.py runserver 127.0.0.1:8000
