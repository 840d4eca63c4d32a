"""One rollback at a time per database, released by the server if the process dies."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .conf import get_setting
from .exceptions import RollbackError, RollbackInProgressError

# Advisory lock key for PostgreSQL, and lock name for MySQL/MariaDB.
LOCK_KEY = int.from_bytes(b"djrollbk", "big")
LOCK_NAME = "django_rollback"
POLL_SECONDS = 0.2
_process_locks: dict[str, threading.Lock] = {}

# (acquire without waiting: True when taken, release)
LockFunctions = tuple[Callable[[], bool], Callable[[], None]]


@contextmanager
def rollback_lock(
    connection: BaseDatabaseWrapper,
    wait: float = 0.0,
    *,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold the rollback lock of this database; refuse at once, or after `wait` seconds.
    `on_wait` is called once when the lock is taken and the caller starts waiting, so that
    a command can say why it seems to hang.

    With the transaction-scoped lock (lock_scope(): PgBouncer in transaction pooling) the
    block runs in a transaction that holds the lock, committed at its end and rolled back
    if it raises: a session lock would stay behind on a pooled server connection."""
    if lock_scope(connection) == "transaction":
        with _locked_transaction(connection, wait, on_wait):
            yield
        return
    if connection.vendor == "postgresql":
        acquire, release = _sql_lock(
            connection,
            "SELECT pg_try_advisory_lock(%s)",
            "SELECT pg_advisory_unlock(%s)",
            pg_lock_key(connection),
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
    waiting = False
    while not acquire():
        if time.monotonic() >= deadline:
            raise _in_progress(connection)
        if not waiting and on_wait is not None:
            on_wait()
        waiting = True
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        release()


def lock_scope(connection: BaseDatabaseWrapper) -> str:
    """ "session" or "transaction": who holds the rollback lock on PostgreSQL (LOCK_SCOPE).

    Behind PgBouncer in transaction-pooling mode a session lock is taken on whichever server
    connection ran that statement, and later statements may run on another one: the lock
    would stay behind in the pool. A transaction-scoped lock lives exactly as long as the
    rollback's transaction, which PgBouncer keeps on one server connection."""
    if connection.vendor != "postgresql":
        return "session"
    scope = str(get_setting("LOCK_SCOPE"))
    if scope == "auto":
        pooled = connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
        return "transaction" if pooled else "session"
    if scope not in ("session", "transaction"):
        raise RollbackError(
            f'DJANGO_ROLLBACK["LOCK_SCOPE"] is "{scope}": use "auto", "session" or "transaction".'
        )
    return scope


def hold_transaction_lock(connection: BaseDatabaseWrapper, wait: float = 0.0) -> None:
    """Take the rollback lock for the rest of the current transaction (PostgreSQL); refuse
    at once, or after `wait` seconds."""
    deadline = time.monotonic() + wait
    while not _try_transaction_lock(connection):
        if time.monotonic() >= deadline:
            raise _in_progress(connection)
        time.sleep(POLL_SECONDS)


@contextmanager
def _locked_transaction(
    connection: BaseDatabaseWrapper, wait: float, on_wait: Callable[[], None] | None
) -> Iterator[None]:
    """A transaction that holds the rollback lock. Each try is a transaction of its own, so
    that a waiting command does not keep a pooled server connection busy between tries."""
    deadline = time.monotonic() + wait
    waiting = False
    while True:
        with transaction.atomic(using=connection.alias):
            if _try_transaction_lock(connection):
                yield
                return
        if time.monotonic() >= deadline:
            raise _in_progress(connection)
        if not waiting and on_wait is not None:
            on_wait()
        waiting = True
        time.sleep(POLL_SECONDS)


def _try_transaction_lock(connection: BaseDatabaseWrapper) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [pg_lock_key(connection)])
        return bool(cursor.fetchone()[0])


def pg_lock_key(connection: BaseDatabaseWrapper) -> int:
    """The advisory lock key: LOCK_KEY for a database, and with django-tenants one key per
    tenant schema, so that schemas roll back in parallel (fleet.py) without waiting for each
    other; the public schema keeps LOCK_KEY."""
    schema = getattr(connection, "schema_name", None)
    if not schema or schema == getattr(settings, "PUBLIC_SCHEMA_NAME", "public"):
        return LOCK_KEY
    digest = hashlib.sha256(f"{LOCK_NAME}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)  # a bigint, as PostgreSQL wants


def _in_progress(connection: BaseDatabaseWrapper) -> RollbackInProgressError:
    return RollbackInProgressError(
        f"Another rollback is running on database '{connection.alias}'; "
        "try again when it has finished."
    )


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


def sqlite_lock_path(database_name: str) -> str:
    """The lock file of an SQLite database: in the system temporary directory, named after
    the database's real path, so that it is never a stray file beside the database that a
    `git add -A` commits."""
    real = os.path.realpath(database_name)
    digest = hashlib.sha256(real.encode()).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), f"django-rollback-{digest}.lock")


def _file_lock(connection: BaseDatabaseWrapper) -> LockFunctions:
    """A lock file for an SQLite database; a process lock for in-memory ones."""
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:") or not os.path.isabs(name):
        lock = _process_locks.setdefault(connection.alias, threading.Lock())
        return (lambda: lock.acquire(blocking=False)), lock.release
    held: list[IO[str]] = []
    path = sqlite_lock_path(name)

    def acquire() -> bool:
        handle = open(path, "a+")  # noqa: SIM115  # closed by release()
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
