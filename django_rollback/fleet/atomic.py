"""--atomic: every target of a fleet commits, or none does (PostgreSQL two-phase commit).

Each target's rollback runs in its own transaction as always, but instead of committing it
ends with PREPARE TRANSACTION: its changes are on disk and its locks held, invisible to
others, until a COMMIT PREPARED or a ROLLBACK PREPARED from any session. The coordinator (the
process of the command) prepares every target, then records its decision in the
django_rollback_fleetdecision table of the home database (the alias it was given) in
autocommit, and only then commits (or rolls back) each prepared transaction.

A coordinator that dies at any moment leaves prepared transactions whose global ids say who
they are: ``djrb:<run>:<index>:<home alias>``. The next rollback_migrations run finds them in
pg_prepared_xacts and resolves them by the recorded decision: commit when it says "commit",
roll back otherwise (presumed abort: nothing is committed before "commit" is on disk). A
coordinator still alive holds a session advisory lock keyed by its run on the home database
for its whole life: while it does, its transactions are left to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ..exceptions import RollbackError
from ..models import FleetDecision, RollbackLog
from .targets import Target, on_schema, public_schema, uses_tenants

GID_PREFIX = "djrb"
TEST_PAUSE_ENV = "DJANGO_ROLLBACK_TEST_PAUSE"  # tests only: stop at a phase (pause())
_ALIAS = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def pause(phase: str) -> None:
    """A test hook: when DJANGO_ROLLBACK_TEST_PAUSE names this phase, say so on stderr and
    wait, so that a test can SIGKILL the coordinator exactly there. Phases: before-prepare,
    during-prepare (one target prepared), after-prepare (all prepared, nothing decided),
    during-commit (decided, one committed)."""
    if os.environ.get(TEST_PAUSE_ENV) == phase:
        print(f"django-rollback: paused at {phase}", file=sys.stderr, flush=True)
        time.sleep(600)


def max_prepared_transactions(connection: BaseDatabaseWrapper) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SHOW max_prepared_transactions")
        return int(cursor.fetchone()[0])


def check_two_phase(database: str) -> None:
    """Refuse --atomic, in one line, where the server cannot prepare transactions."""
    connection = connections[database]
    if connection.vendor != "postgresql":
        raise RollbackError(
            f"--atomic needs PostgreSQL (two-phase commit); database '{database}' is "
            f"{connection.vendor}."
        )
    if not _ALIAS.fullmatch(database):
        raise RollbackError("--atomic needs a database alias of letters, digits, _ . or -.")
    if max_prepared_transactions(connection) == 0:
        raise RollbackError(
            f"--atomic needs two-phase commit, which the server of database '{database}' has "
            "switched off: set max_prepared_transactions above 0 (ALTER SYSTEM SET "
            "max_prepared_transactions = 100) and restart PostgreSQL."
        )


def prepare_hook(gid: str) -> Callable[[BaseDatabaseWrapper], None]:
    """What execute() runs last in a target's transaction: PREPARE TRANSACTION."""

    def prepare(connection: BaseDatabaseWrapper) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"PREPARE TRANSACTION '{gid}'")
        # PREPARE ends the transaction and undoes what SET did in it, search_path included,
        # while django-tenants still believes the schema is set: make it set it again.
        if hasattr(connection, "search_path_set_schemas"):
            connection.search_path_set_schemas = None

    return prepare


def lock_key(run: str) -> int:
    digest = hashlib.sha256(f"django_rollback:fleet:{run}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def decision_table(database: str) -> str:
    table = connections[database].ops.quote_name(FleetDecision._meta.db_table)
    if uses_tenants(database):  # the decisions live in public, whatever the schema
        return f"{connections[database].ops.quote_name(public_schema())}.{table}"
    return table


def raw_connection(database: str) -> Any:
    """A connection of our own, outside Django's registry, in autocommit: the coordinator's
    lock and decisions must not share a session with the rollbacks, nor be inherited by
    worker processes as a Django connection they would close."""
    wrapper = connections[database]
    raw = wrapper.get_new_connection(wrapper.get_connection_params())
    raw.autocommit = True
    return raw


@dataclass
class Coordinator:
    """The run's identity, lock and decision row, on the home database."""

    database: str
    run: str
    raw: Any
    decision: str = FleetDecision.Decision.PENDING

    @classmethod
    def start(cls, database: str, targets: list[str]) -> Coordinator:
        run = uuid.uuid4().hex[:16]
        raw = raw_connection(database)
        coordinator = cls(database, run, raw)
        with raw.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key(run)])
            cursor.execute(
                f"INSERT INTO {decision_table(database)} (fleet, decision, targets, "
                "created_at, resolved_by) VALUES (%s, %s, %s::jsonb, now(), '')",
                [run, coordinator.decision, _json(targets)],
            )
        return coordinator

    def gid(self, index: int) -> str:
        return f"{GID_PREFIX}:{self.run}:{index}:{self.database}"

    def decide(self, decision: str) -> None:
        """Write the decision durably: before the first COMMIT (or ROLLBACK) PREPARED."""
        with self.raw.cursor() as cursor:
            cursor.execute(
                f"UPDATE {decision_table(self.database)} SET decision = %s, "
                "decided_at = now() WHERE fleet = %s",
                [decision, self.run],
            )
        self.decision = decision

    def resolved(self) -> None:
        with self.raw.cursor() as cursor:
            cursor.execute(
                f"UPDATE {decision_table(self.database)} SET resolved_at = now(), "
                "resolved_by = %s WHERE fleet = %s",
                [f"coordinator {socket.gethostname()}:{os.getpid()}", self.run],
            )

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the driver's own errors, not Django's
            self.raw.close()  # the advisory lock goes with the session


def _json(value: object) -> str:
    return json.dumps(value)


def finish_prepared(database: str, gid: str, *, commit: bool) -> None:
    """COMMIT PREPARED or ROLLBACK PREPARED, in autocommit on that database."""
    connection = connections[database]
    verb = "COMMIT" if commit else "ROLLBACK"
    with connection.cursor() as cursor:
        cursor.execute(f"{verb} PREPARED '{gid}'")


def mark_aborted(database: str, schema_target: Target, log_id: int | None, why: str) -> None:
    """The log row of a target rolled back with the others: it said "running" (its outcome
    was in the prepared transaction), it says "failed" with the reason now."""
    if log_id is None:
        return
    with on_schema(schema_target) if uses_tenants(database) else nullcontext():
        RollbackLog.objects.using(database).filter(
            pk=log_id, status=RollbackLog.Status.RUNNING
        ).update(status=RollbackLog.Status.FAILED, error=why, finished_at=timezone.now())
