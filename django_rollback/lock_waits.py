"""Waiting for table locks without taking the site down.

A statement that needs an exclusive lock waits behind every transaction that touches the
table, and every later query on that table queues behind it. So each attempt of a rollback
runs with the backend's lock timeout: when the lock cannot be had in time, the attempt gives
up (and with it its place in the queue), execution.py says who held the table, waits, and
tries again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

PG_LOCK_NOT_AVAILABLE = "55P03"
MYSQL_LOCK_WAIT_TIMEOUT = 1205  # metadata locks and row locks alike
QUERY_SHOWN = 60  # characters of a blocking session's query in the message


@contextmanager
def lock_timeout(
    connection: BaseDatabaseWrapper, seconds: float, *, in_transaction: bool
) -> Iterator[None]:
    """Run the block with the lock timeout set; 0 leaves the server's default."""
    if not seconds or connection.vendor not in ("postgresql", "mysql"):
        yield
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            milliseconds = max(1, round(seconds * 1000))
            if in_transaction:
                # SET LOCAL ends with the transaction: nothing leaks into a pooled connection.
                cursor.execute(f"SET LOCAL lock_timeout = {milliseconds}")
                yield
                return
            cursor.execute(f"SET lock_timeout = {milliseconds}")
            restore = ["RESET lock_timeout"]
        else:
            cursor.execute("SELECT @@SESSION.lock_wait_timeout, @@SESSION.innodb_lock_wait_timeout")
            metadata, rows = cursor.fetchone()
            whole = max(1, math.ceil(seconds))  # MySQL counts whole seconds
            cursor.execute(
                f"SET SESSION lock_wait_timeout = {whole}, innodb_lock_wait_timeout = {whole}"
            )
            restore = [
                f"SET SESSION lock_wait_timeout = {int(metadata)}, "
                f"innodb_lock_wait_timeout = {int(rows)}"
            ]
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                for statement in restore:
                    cursor.execute(statement)
        except DatabaseError:
            pass  # the connection is gone, and its settings with it


def is_lock_timeout(exc: BaseException | None) -> bool:
    """Whether the error (or one it was raised from) is the server's lock timeout."""
    seen = 0
    while exc is not None and seen < 10:
        code = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
        if code == PG_LOCK_NOT_AVAILABLE:
            return True
        if type(exc).__module__.startswith("MySQLdb") and exc.args[:1] == (
            MYSQL_LOCK_WAIT_TIMEOUT,
        ):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def blocked_reason(connection: BaseDatabaseWrapper, tables: list[str], seconds: float) -> str:
    """One sentence: which table could not be locked, and which sessions held it."""
    try:
        if connection.vendor == "postgresql":
            table, sessions = _pg_holders(connection, tables)
        else:
            table, sessions = (tables[0] if tables else None), _mysql_open_transactions(connection)
    except DatabaseError as exc:
        table, sessions = (tables[0] if tables else None), [f"(cannot list them: {exc})"]
    where = f'table "{table}"' if table else "a table of this step"
    held = f"it is held by {', '.join(sessions)}" if sessions else "no session holds it now"
    return f"could not lock {where} within {seconds:g}s: {held}"


def _pg_holders(connection: BaseDatabaseWrapper, tables: list[str]) -> tuple[str | None, list[str]]:
    """The sessions holding a lock on one of `tables` (every table of the database when the
    step's tables are unknown). Any lock at all conflicts with the ACCESS EXCLUSIVE lock of
    DDL, so these are the sessions pg_blocking_pids() named while the attempt waited."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, l.pid, COALESCE(a.state, ''), COALESCE(a.query, ''), "
            "EXTRACT(EPOCH FROM now() - COALESCE(a.xact_start, a.query_start)) "
            "FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND c.relkind IN ('r', 'p') AND c.relnamespace = current_schema()::regnamespace "
            "AND (cardinality(%s::text[]) = 0 OR c.relname = ANY(%s::text[])) "
            "ORDER BY c.relname, l.pid",
            [tables, tables],
        )
        rows = cursor.fetchall()
    if not rows:
        return (tables[0] if tables else None), []
    order = {name: index for index, name in enumerate(tables)}
    table = min({row[0] for row in rows}, key=lambda name: (order.get(name, len(order)), name))
    sessions = [
        _session(pid, state, query, age) for name, pid, state, query, age in rows if name == table
    ]
    return table, list(dict.fromkeys(sessions))


def _mysql_open_transactions(connection: BaseDatabaseWrapper) -> list[str]:
    """MySQL/MariaDB do not show metadata lock holders by default: name the sessions of
    this database with an open transaction, which is what holds them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id, p.command, COALESCE(p.info, ''), t.trx_started, "
            "TIMESTAMPDIFF(SECOND, t.trx_started, NOW()) "
            "FROM information_schema.innodb_trx t "
            "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
            "WHERE p.id <> CONNECTION_ID() ORDER BY p.id"
        )
        return [
            _session(thread, "idle in transaction" if command == "Sleep" else "active", query, age)
            for thread, command, query, _started, age in cursor.fetchall()
        ]


def _session(pid: Any, state: str, query: str, age: Any) -> str:
    query = " ".join(str(query).split())
    if len(query) > QUERY_SHOWN:
        query = query[: QUERY_SHOWN - 1] + "…"
    seconds = "?" if age is None else f"{float(age):.0f}s"
    return f"pid {pid} ({state or 'unknown'} for {seconds}; last query: {query or '-'})"


class WriteCounter:
    """Counts the statements that changed something (an execute_wrapper): an attempt that
    wrote nothing can be retried even where DDL is not transactional."""

    READS = ("SELECT", "SHOW", "SET", "EXPLAIN", "RESET")

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        result = execute(sql, params, many, context)
        if not str(sql).lstrip().upper().startswith(self.READS):
            self.count += 1
        return result
