"""A real PgBouncer in transaction-pooling mode in front of the test server (Debian's
binary, a config of its own, a free port), and views of what it leaves on the server."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from . import dbtools

# What Django asks for behind a transaction pooler; LOCK_SCOPE "auto" reads it.
POOLED_OPTIONS: dict[str, object] = {"DISABLE_SERVER_SIDE_CURSORS": True}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_pgbouncer(server_url: str, pool_size: int = 4) -> Iterator[int]:
    """PgBouncer (pool_mode = transaction) in front of the server of `server_url`; yields its
    port and stops it by its pid."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        raise RuntimeError("pgbouncer is missing: run scripts/ensure_pgbouncer.sh")
    server = urlparse(server_url)
    folder = Path(tempfile.mkdtemp(prefix="dr-pgbouncer-"))
    folder.chmod(0o777)  # pgbouncer refuses to run as root: it runs as postgres below
    port = free_port()
    (folder / "users.txt").write_text(f'"{server.username or "postgres"}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={server.hostname or "127.0.0.1"} port={server.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 100
ignore_startup_parameters = extra_float_digits,options
logfile = {folder / "pgbouncer.log"}
"""
    )
    for path in folder.iterdir():
        path.chmod(0o666)
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", pwd.getpwnam("postgres").pw_name]
    # Its output goes to a file, never to a pipe: PgBouncer logs every login to stderr as well
    # as to its logfile, and once an unread pipe is full (64 KiB, a few hundred commands) it
    # blocks on the write and stops serving anyone: the life-cycle soak's "hang".
    console = folder / "console.txt"
    with console.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert process.poll() is None, console.read_text()
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def through(port: int, url: str) -> str:
    """The same database, reached through the PgBouncer on `port`."""
    parsed = urlparse(url)
    return parsed._replace(netloc=f"{parsed.username or 'postgres'}@127.0.0.1:{port}").geturl()


def advisory_locks(url: str) -> int:
    """Advisory locks held in this database by any session (the pool's server sessions too),
    read over a direct connection."""
    return len(advisory_lock_holders(url))


def advisory_lock_holders(url: str) -> list[tuple]:
    """(pid, state, last query) of each session holding an advisory lock in this database."""
    return dbtools.query(
        url,
        "SELECT l.pid, a.state, a.query FROM pg_locks l "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
    )
