#!/usr/bin/env bash
# Start the local MariaDB server if it is down, and wait until it answers.
set -euo pipefail
host=127.0.0.1 port=3306
alive() { mysqladmin --protocol=tcp -h "$host" -P "$port" -u root ping >/dev/null 2>&1; }
if alive; then exit 0; fi
server=$(command -v mariadbd || ls /usr/sbin/mariadbd 2>/dev/null || true)
if [ -z "$server" ]; then
  echo "MariaDB is not reachable on $host:$port and mariadbd is not installed." >&2
  exit 1
fi
echo "MariaDB is down: starting it"
start-stop-daemon --start --oknodo --background --exec "$server"
for _ in $(seq 1 60); do
  alive && exit 0
  sleep 1
done
echo "MariaDB did not come up on $host:$port." >&2
exit 1
