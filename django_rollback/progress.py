"""Live progress of a running rollback, and telling a running rollback from a dead one.

A rollback runs in ONE transaction on PostgreSQL and SQLite, so what its own connection writes
stays invisible to everybody else until the end. Progress therefore travels another way:

- on a server database, a thread of the running process opens a second connection (cloned from
  the same settings) and updates the log row in autocommit after each step, plus a heartbeat
  every few seconds while a long step runs;
- on SQLite, a second writer would wait behind the rollback's write lock until the end, so the
  thread writes a small JSON file beside the database instead (SQLite is always local, like
  the admin that reads it).

The writer is a thread with a queue so the rollback itself never waits for a progress write.

A runner that dies (SIGKILL, OOM, a reboot) cannot say so: readers detect it by its pid when
they run on the same host, by a heartbeat older than STALE_SECONDS otherwise, and then close
the entry as "interrupted".
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import DatabaseError, connections
from django.db.models import Field
from django.db.utils import load_backend
from django.utils import timezone

from .models import RollbackLog

HEARTBEAT_SECONDS = 2.0
# A change waits this long for the ones after it, to be written with them: a rollback of a
# few quick steps (a fleet's schemas) writes its progress once, not once per event.
SETTLE_SECONDS = 0.25
STALE_SECONDS = 30.0  # no heartbeat for this long from another host: the runner is gone
PROGRESS_FIELDS = ("steps_done", "running_step", "step_started_at", "output", "heartbeat_at")


def sidecar_path(log: RollbackLog) -> Path | None:
    """Where an SQLite rollback writes its progress; None for other databases."""
    connection = connections[log._state.db or log.database]
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:") or not os.path.isabs(name):
        return None
    return Path(f"{name}.rollback-{log.pk}.json")


# A process that runs many short rollbacks one after the other (a fleet worker) keeps its
# progress connection from one to the next instead of opening one per rollback (a new server
# process each time, which the rollback waited for when it closed its writer).
_kept: dict[str, Any] = {}
_keeping = [False]
# A forked child must never use (nor close: that ends the session for the parent too) the
# connections its parent kept: they are set aside, referenced until the child ends.
_inherited: list[Any] = []


def _after_fork() -> None:
    _inherited.extend(_kept.values())
    _kept.clear()


os.register_at_fork(after_in_child=_after_fork)


def keep_connections() -> None:
    """From now on in this process, a writer's connection is kept for the next writer;
    close_kept() closes it (when the process ends)."""
    _keeping[0] = True


def close_kept() -> None:
    while _kept:
        _alias, connection = _kept.popitem()
        with contextlib.suppress(DatabaseError):
            connection.close()


@contextlib.contextmanager
def connections_kept() -> Iterator[None]:
    """keep_connections() until the end of the block, then close what was kept."""
    before = _keeping[0]
    _keeping[0] = True
    try:
        yield
    finally:
        _keeping[0] = before
        if not before:
            close_kept()


class ProgressWriter:
    """Writes the progress of `log` from a thread of its own until close()."""

    def __init__(self, log: RollbackLog) -> None:
        self.log_pk = log.pk
        alias = log._state.db or log.database
        self.settings_dict = copy.deepcopy(connections[alias].settings_dict)
        self.alias = f"{alias}:progress"
        # django-tenants: the clone must write to the schema the rollback runs in.
        self.schema = getattr(connections[alias], "schema_name", None)
        self.sidecar = sidecar_path(log)
        self.file_only = connections[alias].vendor == "sqlite"
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.state: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, name="django-rollback-progress")
        self.thread.daemon = True  # never keep a finished process alive
        self.thread.start()

    def update(self, **values: Any) -> None:
        self.queue.put(values)

    def close(self) -> None:
        """Write what is queued, then stop: called before the outcome is written, so a late
        progress write can never overwrite it."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def discard(self) -> None:
        self.close()
        if self.sidecar is not None:
            with contextlib.suppress(OSError):
                self.sidecar.unlink()

    def _run(self) -> None:
        connection = None if self.file_only else self._connection()
        try:
            while True:
                try:
                    item = self.queue.get(timeout=HEARTBEAT_SECONDS)
                except queue.Empty:
                    item = {}
                item, last = self._with_queued(item)
                if item is None:
                    return
                self.state.update(item, heartbeat_at=timezone.now())
                # Progress is best effort: the rollback itself must go on.
                with contextlib.suppress(DatabaseError, OSError):
                    self._write(connection, item or {"heartbeat_at": self.state["heartbeat_at"]})
                if last:
                    return
        finally:
            if connection is not None:
                self._release(connection)

    def _connection(self) -> Any:
        connection = _kept.pop(self.alias, None)
        if connection is None:
            backend = load_backend(self.settings_dict["ENGINE"])
            connection = backend.DatabaseWrapper(self.settings_dict, self.alias)
            if _keeping[0]:
                connection.inc_thread_sharing()  # the next writer's thread uses it too
        if self.schema and hasattr(connection, "set_schema"):
            connection.set_schema(self.schema)
        return connection

    def _release(self, connection: Any) -> None:
        if _keeping[0] and not connection.errors_occurred and self.alias not in _kept:
            _kept[self.alias] = connection
        else:
            connection.close()

    def _with_queued(self, item: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
        """`item` and the updates that come within SETTLE_SECONDS after it as one write (only
        the latest values matter); True when close()'s end mark came meanwhile."""
        if item is None:
            return None, True
        merged = dict(item)
        settled = time.monotonic() + (SETTLE_SECONDS if item else 0.0)  # {}: a heartbeat
        while True:
            try:
                more = self.queue.get(timeout=max(0.0, settled - time.monotonic()))
            except queue.Empty:
                return merged, False
            if more is None:
                return merged, True
            merged.update(more)

    def _write(self, connection: Any, changed: dict[str, Any]) -> None:
        if connection is None:
            if self.sidecar is None:
                return
            document = {
                key: value.isoformat() if isinstance(value, datetime) else value
                for key, value in self.state.items()
            }
            temporary = self.sidecar.with_suffix(".tmp")
            temporary.write_text(json.dumps(document))
            os.replace(temporary, self.sidecar)
            return
        values = {**changed, "heartbeat_at": self.state["heartbeat_at"]}
        _update_active_row(connection, self.log_pk, values)


def _update_active_row(connection: Any, pk: int, values: dict[str, Any]) -> None:
    """UPDATE the log row through `connection` while it is still running (a row already
    closed is left alone)."""
    opts = RollbackLog._meta
    quote = connection.ops.quote_name
    columns, params = [], []
    for name, value in values.items():
        field = opts.get_field(name)
        assert isinstance(field, Field)  # the log's own columns, never a relation
        columns.append(f"{quote(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection=connection))
    sql = (
        f"UPDATE {quote(opts.db_table)} SET {', '.join(columns)} "
        f"WHERE {quote(opts.pk.column)} = %s AND {quote('status')} IN (%s, %s)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, pk, *RollbackLog.ACTIVE])


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveProgress:
    """What the admin's live page shows: a log row with its latest progress."""

    log: RollbackLog
    steps_done: int
    steps_total: int
    running_step: str
    step_seconds: float | None
    seconds: float
    output: str

    @property
    def active(self) -> bool:
        return self.log.status in RollbackLog.ACTIVE

    @property
    def counts_targets(self) -> bool:
        """A fleet's entry (fleet_runner.py) counts schemas and databases, not steps."""
        return "fleet" in (self.log.plan or {})

    def as_dict(self) -> dict[str, Any]:
        log = self.log
        return {
            "id": log.pk,
            "status": log.status,
            "status_display": str(log.get_status_display()),
            "active": self.active,
            "steps_done": self.steps_done,
            "steps_total": self.steps_total,
            "running_step": self.running_step or None,
            "step_seconds": None if self.step_seconds is None else round(self.step_seconds, 1),
            "seconds": round(self.seconds, 1),
            "output": self.output,
            "error": log.error,
            "started_at": log.started_at.isoformat(),
            "finished_at": log.finished_at.isoformat() if log.finished_at else None,
        }


def live_progress(log: RollbackLog) -> LiveProgress:
    """The entry as it stands now; an active entry whose runner is gone becomes interrupted."""
    values = {name: getattr(log, name) for name in PROGRESS_FIELDS}
    sidecar = sidecar_path(log) if log.status in RollbackLog.ACTIVE else None
    if sidecar is not None:
        values.update(_read_sidecar(sidecar))
    if log.status in RollbackLog.ACTIVE and runner_gone(log, values["heartbeat_at"]):
        mark_interrupted(log, values)
        if sidecar is not None:
            with contextlib.suppress(OSError):
                sidecar.unlink()
    now = timezone.now()
    active = log.status in RollbackLog.ACTIVE
    if log.duration is not None and not active:
        seconds = log.duration
    else:
        seconds = ((log.finished_at or now) - log.started_at).total_seconds()
    step_started = values["step_started_at"] if active else None
    return LiveProgress(
        log=log,
        steps_done=values["steps_done"] if active else log.steps_done,
        steps_total=log.steps_total,
        running_step=(values["running_step"] or "") if active else "",
        step_seconds=(now - step_started).total_seconds() if step_started else None,
        seconds=max(seconds, 0.0),
        output=(values["output"] or "") if active else log.output,
    )


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    for key in ("step_started_at", "heartbeat_at"):
        if document.get(key):
            document[key] = datetime.fromisoformat(document[key])
    return {key: document[key] for key in PROGRESS_FIELDS if key in document}


def runner_gone(log: RollbackLog, heartbeat: datetime | None = None) -> bool:
    """True when no process is working on this active entry any more."""
    if log.pid and log.host == socket.gethostname():
        return not pid_alive(log.pid)
    last = heartbeat or log.heartbeat_at or log.started_at
    return timezone.now() - last > timedelta(seconds=STALE_SECONDS)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:  # a killed child its parent has not reaped yet is a zombie: dead all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def interrupted_message(log: RollbackLog, running_step: str = "") -> str:
    plan = log.plan if isinstance(log.plan, dict) else {}
    where = f" at {running_step}" if running_step else ""
    if plan.get("all_or_nothing", True):
        outcome = "the database is unchanged (the plan ran in one transaction)"
    else:
        outcome = "the steps that finished before it stay unapplied; saved states unchanged"
    return f"The rollback process stopped{where} before the end; {outcome}."


def mark_interrupted(log: RollbackLog, values: dict[str, Any] | None = None) -> None:
    """Close an active entry whose runner died, keeping the progress it had reached."""
    values = values or {}
    running_step = values.get("running_step") or log.running_step
    changed = {
        "status": RollbackLog.Status.INTERRUPTED,
        "error": interrupted_message(log, running_step),
        "finished_at": timezone.now(),
        "steps_done": values.get("steps_done", log.steps_done),
        "output": values.get("output", log.output) or "",
        "running_step": running_step or "",
    }
    updated = RollbackLog.objects.using(log._state.db).active().filter(pk=log.pk).update(**changed)
    if updated:
        for name, value in changed.items():
            setattr(log, name, value)
    else:
        log.refresh_from_db()  # it ended on its own meanwhile
