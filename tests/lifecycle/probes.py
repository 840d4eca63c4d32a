"""What the invariants read, through the raw drivers (tests/dbtools.py), never through the code
under test: log entries, archives and the values they hold, locks left behind."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlparse

from .. import dbtools


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def in_schema(table: str, schema: str | None) -> str:
    """A table of the current schema, or of a django-tenants schema."""
    return f'"{schema}"."{table}"' if schema else f'"{table}"'


def log_entries(url: str, schema: str | None = None) -> list[dict[str, Any]]:
    """Every RollbackLog row: id, status, pid, archive document, plan, output, error."""
    rows = dbtools.query(
        url,
        "SELECT id, status, pid, archive, plan, steps_done, steps_total, error, output "
        f"FROM {in_schema('django_rollback_rollbacklog', schema)} ORDER BY id",
    )
    return [
        {
            "id": r[0],
            "status": r[1],
            "pid": r[2],
            "archive": _json(r[3]) or {},
            "plan": _json(r[4]) or {},
            "steps_done": r[5],
            "steps_total": r[6],
            "error": r[7],
            "output": r[8] or "",
        }
        for r in rows
    ]


def kept_archives(url: str, schema: str | None = None) -> list[dict[str, Any]]:
    """The log entries whose archive can still be restored (neither restored nor purged),
    newest first. Not only succeeded rollbacks: on MariaDB a rollback cut short half way keeps
    what its finished steps dropped, and `restore_rollback_archive LOG_ID` takes it."""
    found = []
    for entry in reversed(log_entries(url, schema)):
        archive = entry["archive"]
        if not archive.get("items"):
            continue
        if archive.get("restored_at") or archive.get("purged_at"):
            continue
        found.append(entry)
    return found


def _qualified(item: dict[str, Any]) -> str:
    schema = item.get("archive_schema")
    return f'"{schema}"."{item["archive_table"]}"' if schema else f'"{item["archive_table"]}"'


def archive_values(url: str, entry: dict[str, Any]) -> dict[tuple[str, str, int], Any]:
    """(table, column, pk) → value, for every value the archive of this entry holds."""
    values: dict[tuple[str, str, int], Any] = {}
    for item in entry["archive"]["items"]:
        pk = item["pk"]
        columns = [c for c in item["types"] if c != pk]
        if not pk or not columns:
            continue
        names = ", ".join(f'"{c}"' for c in [pk, *columns])
        try:
            rows = dbtools.query(url, f"SELECT {names} FROM {_qualified(item)}")
        except Exception as exc:  # a document naming a table that is not there: say which
            raise AssertionError(f"log entry {entry['id']}'s archive: {exc}") from exc
        for row in rows:
            for column, value in zip(columns, row[1:], strict=True):
                values[(item["table"], column, int(row[0]))] = value
    return values


def columns(url: str, table: str) -> set[str]:
    """The columns of a live table, from the catalog (SQLite takes an unknown double-quoted
    name in a SELECT for a string, so selecting a column proves nothing there)."""
    if dbtools.BACKEND == "sqlite":
        return {row[1] for row in dbtools.query(url, f'PRAGMA table_info("{table}")')}
    schema = "current_schema()" if dbtools.BACKEND == "postgresql" else "DATABASE()"
    rows = dbtools.query(
        url,
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = {schema} AND table_name = '{table}'",
    )
    return {row[0] for row in rows}


def server_activity(url: str) -> str:
    """What every session of this database is doing (PostgreSQL): printed with a failure, so
    that a hang leaves who waited on what in the log."""
    if dbtools.BACKEND != "postgresql":
        return ""
    sessions = dbtools.query(
        url,
        "SELECT pid, state, now() - xact_start, wait_event_type, wait_event, left(query, 160) "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    waits = dbtools.query(
        url,
        "SELECT pid, locktype, mode, relation::regclass::text, objid FROM pg_locks "
        "WHERE NOT granted OR locktype = 'advisory'",
    )
    lines = ["  sessions:"] + [f"    {row}" for row in sessions]
    return "\n".join(
        lines + ["  locks waited for, and advisory locks:"] + [f"    {w}" for w in waits]
    )


def live_values(
    url: str, table: str, columns: list[str], schema: str | None = None
) -> dict[int, tuple]:
    where = in_schema(table, schema)
    if not columns:
        return {int(r[0]): () for r in dbtools.query(url, f"SELECT id FROM {where}")}
    names = ", ".join(f'"{c}"' for c in columns)
    return {int(r[0]): tuple(r[1:]) for r in dbtools.query(url, f"SELECT id, {names} FROM {where}")}


def locks_held(url: str) -> int:
    """Advisory locks (PostgreSQL) or the named lock (MySQL) held on this database by anyone.
    SQLite's lock is a file lock, which dies with its process."""
    name = urlparse(url).path.lstrip("/")
    if dbtools.BACKEND == "postgresql":
        [(count,)] = dbtools.query(
            url,
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        return int(count)
    if dbtools.BACKEND == "mysql":
        from django_rollback.locks import mysql_lock_name

        [(holder,)] = dbtools.query(url, f"SELECT IS_USED_LOCK('{mysql_lock_name(name)}')")
        return 0 if holder is None else 1
    return 0


def settled(check: Any, seconds: float = 5.0) -> Any:
    """The value of check() once it is falsy, or its last value after `seconds`: a server
    notices a killed client's closed socket a moment after the kill."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if not value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def saved_states(
    url: str, schema: str | None = None
) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    """(commit, applied set) of each saved state, oldest first."""
    table = in_schema("django_rollback_migrationstate", schema)
    rows = dbtools.query(url, f'SELECT "commit", migrations FROM {table} ORDER BY id')
    return [(c, frozenset((a, n) for a, n in _json(m))) for c, m in rows]
