"""Resolving what a dead --atomic coordinator left behind (atomic.py says how it is laid out).

Every rollback_migrations run (and --check) calls recover() first: the prepared transactions
of this package on the database (their global ids start with "djrb:") are committed when the
home database recorded "commit" for their run, and rolled back otherwise. Those of a
coordinator still alive (its advisory lock is held) are left to it, and said so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from django.db import DatabaseError, connections
from django.utils.connection import ConnectionDoesNotExist

from ..models import FleetDecision
from .atomic import GID_PREFIX, decision_table, finish_prepared, lock_key, raw_connection

Action = Literal["committed", "rolled back", "left"]
LOCK_WAIT_SECONDS = 3.0  # a coordinator killed a moment ago: its session may still be closing


@dataclass
class Resolution:
    """The prepared transactions of one --atomic run found on one database."""

    database: str
    run: str
    home: str
    gids: list[str] = field(default_factory=list)
    action: Action = "left"
    reason: str = ""

    def describe(self) -> str:
        count = len(self.gids)
        what = f"{count} prepared transaction{'s' if count != 1 else ''}"
        where = f"of --atomic run {self.run} on database '{self.database}'"
        if self.action == "left":
            return f"Left {what} {where}: {self.reason}."
        return f"Recovered {what} {where}: {self.action} ({self.reason})."


def prepared(database: str) -> list[str]:
    """The global ids of this package's prepared transactions on this database."""
    with connections[database].cursor() as cursor:
        cursor.execute(
            "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() "
            "AND gid LIKE %s ORDER BY prepared",
            [f"{GID_PREFIX}:%"],
        )
        return [row[0] for row in cursor.fetchall()]


def recover(database: str) -> list[Resolution]:
    """Resolve the prepared transactions that dead coordinators left on `database`."""
    try:
        connection = connections[database]
    except ConnectionDoesNotExist:
        return []
    if connection.vendor != "postgresql":
        return []
    runs: dict[tuple[str, str], Resolution] = {}
    for gid in prepared(database):
        parts = gid.split(":", 3)
        if len(parts) != 4:
            continue
        _prefix, run, _index, home = parts
        runs.setdefault((run, home), Resolution(database, run, home)).gids.append(gid)
    for resolution in runs.values():
        _resolve(resolution)
    return list(runs.values())


def _resolve(resolution: Resolution) -> None:
    if resolution.home not in connections.settings:
        resolution.reason = f"its home database '{resolution.home}' is not in DATABASES"
        return
    raw = raw_connection(resolution.home)
    try:
        with raw.cursor() as cursor:
            if not _try_lock(cursor, resolution.run):
                resolution.reason = "its coordinator is still running"
                return
            cursor.execute(
                f"SELECT decision FROM {decision_table(resolution.home)} WHERE fleet = %s",
                [resolution.run],
            )
            row = cursor.fetchone()
            decision = row[0] if row else None
            commit = decision == FleetDecision.Decision.COMMIT
            for gid in resolution.gids:
                try:
                    finish_prepared(resolution.database, gid, commit=commit)
                except DatabaseError:  # resolved by another process in the meantime
                    if gid in prepared(resolution.database):
                        raise
            resolution.action = "committed" if commit else "rolled back"
            resolution.reason = (
                'the decision recorded was "commit"'
                if commit
                else f"no decision to commit was recorded ({decision or 'no row'})"
            )
            cursor.execute(
                f"UPDATE {decision_table(resolution.home)} SET resolved_at = now(), "
                "resolved_by = 'recovery', decision = %s WHERE fleet = %s",
                ["commit" if commit else "abort", resolution.run],
            )
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key(resolution.run)])
    finally:
        raw.close()


def _try_lock(cursor: object, run: str) -> bool:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(run)])  # type: ignore[attr-defined]
        if cursor.fetchone()[0]:  # type: ignore[attr-defined]
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
