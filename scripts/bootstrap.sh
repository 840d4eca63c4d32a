#!/usr/bin/env bash
# Create .venv and install the package with its test extras, once (re-run when pyproject changes).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/pip install --quiet --disable-pip-version-check -e '.[test,postgres,mysql]'
  rm -f .venv/.installed-* && touch "$stamp"
fi
