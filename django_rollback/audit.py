"""The life of a RollbackLog row, in one place: created (a dry run, a queued or requested
rollback, a running one), opened when the run holds the lock, closed with its outcome, or
closed at once when a signal interrupts the run. The services, the runner and approvals all
write the row through these functions."""

from __future__ import annotations

import os
import socket
from typing import Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from .conf import approvals_required
from .exceptions import first_line
from .models import APPROVAL_BYPASSED, RollbackLog
from .planning import RollbackPlan


def new_entry(
    plan: RollbackPlan,
    status: RollbackLog.Status,
    *,
    user: str,
    source: RollbackLog.Source,
    **fields: Any,
) -> RollbackLog:
    """An unsaved row naming the plan's two states; `fields` sets any others."""
    row = RollbackLog(
        status=status,
        database=plan.database,
        from_commit=plan.current.commit,
        from_tags=list(plan.current.tags),
        to_commit=plan.target.commit,
        to_tags=list(plan.target.tags),
        plan=plan.as_dict(),
        user=user,
        source=source,
        host=socket.gethostname(),
        **fields,
    )
    # With approvals on, the command line still runs (an operator with shell access), but
    # its audit entry says it went around them (approvals.py).
    command = status == RollbackLog.Status.RUNNING and source == RollbackLog.Source.COMMAND
    if command and approvals_required():
        row.add_event("bypassed", user, APPROVAL_BYPASSED)
    return row


def open_entry(plan: RollbackPlan, log: RollbackLog, pruned: list[dict[str, object]]) -> None:
    """Holding the rollback lock: save the row as running, by this process, from now."""
    log.status, log.pruned_states = RollbackLog.Status.RUNNING, pruned
    log.started_at, log.steps_total = timezone.now(), len(plan.steps)
    log.fingerprint, log.steps_done = plan.fingerprint, 0
    log.pid, log.host, log.heartbeat_at = os.getpid(), socket.gethostname(), log.started_at
    log.save(using=plan.database)


def finish_entry(
    log: RollbackLog,
    status: RollbackLog.Status,
    output: list[str],
    steps_done: int,
    seconds: float,
    *,
    error: str = "",
    archive: dict[str, Any] | None = None,
) -> str | None:
    """Close the row with its outcome; returns the reason it could not be saved, if so: a
    failure here must not hide what the rollback did."""
    log.status, log.output, log.error = status, "\n".join(output), error
    log.duration, log.finished_at = round(seconds, 3), timezone.now()
    log.steps_done = steps_done  # of the last attempt: earlier ones were undone
    log.running_step, log.step_started_at = "", None
    database = log._state.db or log.database
    fields = ["status", "output", "error", "duration", "finished_at"]
    if archive is not None:
        log.archive = archive
        fields.append("archive")
    fields += ["steps_done", "running_step", "step_started_at"]
    try:
        with transaction.atomic(using=database):  # a savepoint inside the rollback's
            log.save(using=database, update_fields=None if log._state.adding else fields)
    except DatabaseError as exc:
        return f"The rollback log entry {log.pk} could not be updated: {first_line(exc)}"
    return None


def save_interrupted(log: RollbackLog, database: str) -> None:
    """Write the interrupted outcome already set on `log`."""
    fields = ["status", "error", "output", "finished_at", "steps_done"]
    fields += ["running_step", "step_started_at"]
    if not log._state.adding:
        values = {name: getattr(log, name) for name in fields}
        if RollbackLog.objects.using(database).filter(pk=log.pk).update(**values):
            return
    # Never saved, or gone with the rollback's transaction (the transaction-scoped lock of
    # PgBouncer): the entry is written anew, so that the audit trail shows the attempt.
    log.pk, log._state.adding = None, True
    log.save(using=database)


def close_stale_running(database: str) -> int:
    """Mark "interrupted" the log entries still "running": called under the rollback lock,
    so they belong to processes that died."""
    return (
        RollbackLog.objects.using(database)
        .filter(status=RollbackLog.Status.RUNNING)
        .update(status=RollbackLog.Status.INTERRUPTED, error="The rollback process stopped.")
    )
