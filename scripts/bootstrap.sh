#!/usr/bin/env bash
# Create a virtualenv (default .venv) and install the package with its test and docs extras, once
# (re-run when pyproject changes). .venv gets Django 5.2 LTS on the default python3;
# `bootstrap.sh .venv-dj61` makes the Django 6.1 one that CI runs the suite with too (Django 6
# needs Python 3.12+: PYTHON_DJ61 or the newest pyenv/system python3.13/3.12 found).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
python=python3
case $venv in
  .venv-dj61)
    django='Django>=6.1,<6.2'
    python=${PYTHON_DJ61:-}
    if [ -z "$python" ]; then
      for candidate in /root/.pyenv/versions/3.13*/bin/python "$HOME"/.pyenv/versions/3.13*/bin/python \
                       python3.13 /root/.pyenv/versions/3.12*/bin/python python3.12; do
        if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
      done
    fi
    if [ -z "$python" ]; then
      echo "Django 6.1 needs Python 3.12 or newer: install one or set PYTHON_DJ61." >&2
      exit 1
    fi ;;
  *) django='Django>=5.2,<6.0' ;;
esac
stamp=$venv/.installed-$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  bash scripts/ensure_build_deps.sh
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/pip" install --quiet --disable-pip-version-check -e '.[test,postgres,mysql,docs]' "$django"
  rm -f "$venv"/.installed-* && touch "$stamp"
fi
