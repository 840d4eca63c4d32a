"""Signals sent by the services, so every entry point (the commands, the admin, the admin's
background runner) sends the same ones, once per event. docs/signals.md lists them.

Every signal is sent with `send_robust`: a receiver that raises is logged (logger
"django_rollback.signals") and never breaks the save, the rollback or the restore that sent it.

    state_saved          sender=MigrationState  state, database, created, previous
    rollback_requested   sender=RollbackLog     log, plan, database, user
    rollback_started     sender=RollbackLog     log, plan, database, user
    rollback_finished    sender=RollbackLog     log, plan, database, user, outcome, error
    archive_restored     sender=RollbackLog     log, result, database

`outcome` is "succeeded", "failed" or "interrupted" (RollbackLog.status). Dry runs and
rehearsals change nothing and send nothing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from django.dispatch import Signal

from .models import MigrationState, RollbackLog

if TYPE_CHECKING:
    from .archive import RestoreResult
    from .planning import RollbackPlan
    from .services import SaveResult

logger = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "interrupted"]

#: A new state was recorded (created, or the latest state saved again with other migrations);
#: not sent when the same state is saved again unchanged.
state_saved = Signal()
#: A rollback waits for approval (DJANGO_ROLLBACK["APPROVALS"]): its log entry was created.
rollback_requested = Signal()
#: A rollback holds the lock and its log entry is "running": the steps come next.
rollback_started = Signal()
#: A started rollback ended: `outcome` "succeeded", "failed" or "interrupted"; `error` is the
#: failure's one line ("" on success).
rollback_finished = Signal()
#: The archive of a rollback (`log`) was put back; `result` is archive.RestoreResult.
archive_restored = Signal()

# The events, by name: the notifications and the docs use the same names.
EVENTS: dict[str, Signal] = {
    "state_saved": state_saved,
    "rollback_requested": rollback_requested,
    "rollback_started": rollback_started,
    "rollback_finished": rollback_finished,
    "archive_restored": archive_restored,
}

# Marks on a log entry object of the events already sent for it: a rollback retried after
# a lock timeout prepares its entry again, and must not announce itself twice.
_SENT_ATTRIBUTE = "_rollback_signals_sent"


def send(signal: Signal, sender: type[Any], **kwargs: Any) -> None:
    """Send to every receiver; one that raises is logged, never propagated. (Django logs
    its traceback to "django.dispatch"; this line names the event and the receiver.)"""
    for receiver, response in signal.send_robust(sender=sender, **kwargs):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of django_rollback's %s signal failed: %s (%s)",
                _name(signal),
                response,
                getattr(receiver, "__qualname__", repr(receiver)),
            )


def _name(signal: Signal) -> str:
    return next((name for name, known in EVENTS.items() if known is signal), "unknown")


def _first_time(log: RollbackLog, event: str) -> bool:
    sent: set[str] = log.__dict__.setdefault(_SENT_ATTRIBUTE, set())
    if event in sent:
        return False
    sent.add(event)
    return True


def send_state_saved(result: SaveResult) -> None:
    """Only when the save recorded something new (see state_saved)."""
    if result.created or result.updated:
        send(
            state_saved,
            MigrationState,
            state=result.state,
            database=result.state._state.db,
            created=result.created,
            previous=result.previous,
        )


def send_archive_restored(result: RestoreResult) -> None:
    """Not for a --fake restore, which only counts."""
    if not result.fake:
        send(
            archive_restored,
            RollbackLog,
            log=result.log,
            result=result,
            database=result.log._state.db or result.log.database,
        )


def send_rollback_requested(plan: RollbackPlan, log: RollbackLog) -> None:
    """A request recorded (approvals on): nothing has run yet."""
    send(
        rollback_requested,
        RollbackLog,
        log=log,
        plan=plan,
        database=plan.database,
        user=log.user,
    )


def send_rollback_started(plan: RollbackPlan, log: RollbackLog) -> None:
    """Once per log entry object, however often the rollback is retried."""
    if _first_time(log, "rollback_started"):
        send(
            rollback_started,
            RollbackLog,
            log=log,
            plan=plan,
            database=plan.database,
            user=log.user,
        )


def send_rollback_finished(plan: RollbackPlan, log: RollbackLog) -> None:
    """The outcome is the entry's status; only for a rollback that was announced started."""
    sent = log.__dict__.get(_SENT_ATTRIBUTE, set())
    if "rollback_started" not in sent or not _first_time(log, "rollback_finished"):
        return
    send(
        rollback_finished,
        RollbackLog,
        log=log,
        plan=plan,
        database=plan.database,
        user=log.user,
        outcome=str(log.status),
        error=log.error,
    )
