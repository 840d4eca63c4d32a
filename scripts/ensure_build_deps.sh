#!/usr/bin/env bash
# mysqlclient (the `mysql` extra, installed by bootstrap.sh) builds against the MySQL/MariaDB
# client library: install it and pkg-config when missing and we are root; otherwise say how.
set -euo pipefail
missing=""
for package in default-libmysqlclient-dev pkg-config; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== apt-get install$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq $missing >/dev/null || { apt-get update -qq && apt-get install -y -qq $missing >/dev/null; }
else
  echo "Missing system packages:$missing (needed to build mysqlclient): run" \
       "'sudo apt-get install -y$missing'." >&2
  exit 1
fi
