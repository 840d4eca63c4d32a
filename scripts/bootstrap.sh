#!/usr/bin/env bash
# Create a virtualenv (default .venv) and install the package with its test extras, once
# (re-run when pyproject changes). `bootstrap.sh .venv-dj42` makes the Django 4.2 LTS one
# that CI runs the suite with too; .venv gets the newest Django (5.2).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
case $venv in
  .venv-dj42) django='Django>=4.2,<5.0' ;;
  *) django='Django>=5.2,<6.0' ;;
esac
stamp=$venv/.installed-$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  bash scripts/ensure_build_deps.sh
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install --quiet --disable-pip-version-check -e '.[test,postgres,mysql]' "$django"
  rm -f "$venv"/.installed-* && touch "$stamp"
fi
