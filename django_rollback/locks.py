"""One rollback at a time per database, released by the server if the process dies."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from .exceptions import RollbackInProgressError

# Advisory lock key for PostgreSQL, and lock name for MySQL/MariaDB.
LOCK_KEY = int.from_bytes(b"djrollbk", "big")
LOCK_NAME = "django_rollback"
POLL_SECONDS = 0.2
_process_locks: dict[str, threading.Lock] = {}

# (acquire without waiting: True when taken, release)
LockFunctions = tuple[Callable[[], bool], Callable[[], None]]


@contextmanager
def rollback_lock(connection: BaseDatabaseWrapper, wait: float = 0.0) -> Iterator[None]:
    """Hold the rollback lock of this database; refuse at once, or after `wait` seconds."""
    if connection.vendor == "postgresql":
        acquire, release = _sql_lock(
            connection, "SELECT pg_try_advisory_lock(%s)", "SELECT pg_advisory_unlock(%s)"
        )
    elif connection.vendor == "mysql":
        acquire, release = _sql_lock(
            connection,
            "SELECT GET_LOCK(%s, 0)",
            "SELECT RELEASE_LOCK(%s)",
            mysql_lock_name(str(connection.settings_dict["NAME"])),
        )
    else:
        acquire, release = _file_lock(connection)
    deadline = time.monotonic() + wait
    while not acquire():
        if time.monotonic() >= deadline:
            raise RollbackInProgressError(
                f"Another rollback is running on database '{connection.alias}'; "
                "try again when it has finished."
            )
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        release()


def mysql_lock_name(database_name: str) -> str:
    """GET_LOCK names are server-wide: one lock per database, within MySQL's 64 characters."""
    return f"{LOCK_NAME}:{database_name}"[:64]


def _sql_lock(
    connection: BaseDatabaseWrapper, acquire_sql: str, release_sql: str, key: int | str = LOCK_KEY
) -> LockFunctions:
    def acquire() -> bool:
        with connection.cursor() as cursor:
            cursor.execute(acquire_sql, [key])
            return bool(cursor.fetchone()[0])

    def release() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(release_sql, [key])
        except DatabaseError:
            pass  # the connection is gone, and the server dropped the lock with it

    return acquire, release


def _file_lock(connection: BaseDatabaseWrapper) -> LockFunctions:
    """A lock file beside an SQLite database; a process lock for in-memory ones."""
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:") or not os.path.isabs(name):
        lock = _process_locks.setdefault(connection.alias, threading.Lock())
        return (lambda: lock.acquire(blocking=False)), lock.release
    held: list[IO[str]] = []

    def acquire() -> bool:
        handle = open(f"{name}.rollback-lock", "a+")  # noqa: SIM115  # closed by release()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        held.append(handle)
        return True

    def release() -> None:
        handle = held.pop()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    return acquire, release
