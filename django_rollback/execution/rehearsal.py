"""A rehearsal: the whole plan runs for real in one transaction that is then rolled back.
The steps meet the real rows; schema, data and states stay as they were. Only a `rehearsal`
row in the log remains, with each step's time."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ..audit import new_entry
from ..exceptions import RollbackFailedError
from ..lock_waits import lock_timeout as lock_timeout_set
from ..locks import rollback_lock
from ..models import RollbackLog
from ..planning import RollbackPlan
from .checks import check_rehearsable, check_result, refuse_stale, refuse_unrunnable
from .records import LockSettings, RollbackResult, RunRecord, current_user
from .steps import Progress, all_or_nothing, run_steps
from .wording import failure_message


def rehearse(
    plan: RollbackPlan,
    *,
    user: str = "",
    source: RollbackLog.Source = RollbackLog.Source.COMMAND,
    progress: Progress | None = None,
    locks: LockSettings | None = None,
    on_wait: Callable[[], None] | None = None,
) -> RollbackResult:
    """Rehearse the plan under the rollback lock, waiting `locks.wait` seconds for it (as
    execute() does); table locks wait no longer than a rollback's would (`locks.timeout`).
    `locks` None: the settings' values, no wait."""
    refuse_unrunnable(plan)
    check_rehearsable(plan)
    assert plan.context is not None, "plans are made by plan_rollback()"
    if locks is None:
        locks = LockSettings.read(None, None)
    connection = connections[plan.database]
    with rollback_lock(connection, locks.wait, on_wait=on_wait):
        refuse_stale(plan)
        result, failure = _rehearse_and_undo(plan, connection, user, source, progress, locks)
    # Raised once the lock is released: behind PgBouncer the lock's transaction commits
    # the rehearsal's log row only if the block ends without an error.
    if failure is not None:
        raise RollbackFailedError(result.log.error) from failure
    return result


def _rehearse_and_undo(
    plan: RollbackPlan,
    connection: BaseDatabaseWrapper,
    user: str,
    source: RollbackLog.Source,
    progress: Progress | None,
    locks: LockSettings,
) -> tuple[RollbackResult, Exception | None]:
    """The rollback for real inside one transaction, rolled back at the end whatever
    happens; then the log row (outside that transaction, so it stays). Returns the result
    and the failure, if any."""
    record = RunRecord()
    error = ""
    failure: Exception | None = None
    started = time.perf_counter()
    try:
        with (
            all_or_nothing(connection, True, rehearse=True),
            lock_timeout_set(connection, locks.timeout, in_transaction=True),
        ):
            run_steps(plan, connection, record, progress)
            check_result(connection, plan)
    except Exception as exc:
        error = failure_message(plan, exc, record, rehearsal=True)
        failure = exc
    seconds = time.perf_counter() - started
    log = new_entry(plan, RollbackLog.Status.REHEARSAL, user=user or current_user(), source=source)
    log.plan = {**log.plan, "fingerprint": plan.fingerprint, "step_seconds": record.step_seconds}
    log.output, log.error = "\n".join(record.output), error
    log.duration, log.finished_at = round(seconds, 3), timezone.now()
    log.save(using=plan.database)
    result = RollbackResult(
        plan, log, [], seconds, None, record.output, record.step_seconds, rehearsal=True
    )
    return result, failure
