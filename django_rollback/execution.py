"""Running a plan: under the rollback lock, in one transaction where the backend allows it,
step by step with progress events, and with an audit row that records the outcome.

planning.py decides what to do; this module only does it, and refuses a plan that went stale
between the preview and the confirmation.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from .exceptions import (
    PlanRefusedError,
    RollbackError,
    RollbackFailedError,
    StalePlanError,
    first_line,
)
from .locks import rollback_lock
from .models import MigrationState, RollbackLog
from .planning import PlanStep, RollbackPlan, labels
from .progress import ProgressWriter, mark_interrupted
from .snapshot import applied_migrations


def describe_state(state: MigrationState) -> str:
    """How every message names a state: the full commit and its tags."""
    return f'commit "{state.commit}" {state.tags_display}'


@dataclass(frozen=True)
class StepEvent:
    """Progress of a running rollback: `started` then `finished` (with seconds) per step.

    `number` counts from 1 up to `total`; `elapsed` is the time since the first step began."""

    kind: Literal["started", "finished"]
    step: PlanStep
    seconds: float = 0.0
    number: int = 0
    total: int = 0
    elapsed: float = 0.0


@dataclass
class RollbackResult:
    plan: RollbackPlan
    log: RollbackLog
    pruned: list[dict[str, object]]
    seconds: float
    audit_error: str | None = None  # the rollback succeeded but its log row could not be saved
    output: list[str] = field(default_factory=list)


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers often run as a uid with no passwd entry
        return os.environ.get("USER", "")


def _log_row(
    plan: RollbackPlan, status: RollbackLog.Status, *, user: str, source: RollbackLog.Source
) -> RollbackLog:
    return RollbackLog(
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
    )


def record_dry_run(
    plan: RollbackPlan, *, user: str = "", source: RollbackLog.Source = RollbackLog.Source.COMMAND
) -> RollbackLog:
    """Keep the previewed plan in the audit log; nothing else is written."""
    log = _log_row(plan, RollbackLog.Status.DRY_RUN, user=user or current_user(), source=source)
    log.finished_at, log.duration = log.started_at, 0.0
    log.save(using=plan.database)
    return log


def execute(
    plan: RollbackPlan,
    *,
    user: str = "",
    source: RollbackLog.Source = RollbackLog.Source.COMMAND,
    progress: Callable[[StepEvent], None] | None = None,
    wait: float = 0.0,
    log: RollbackLog | None = None,
) -> RollbackResult:
    """Run the plan under the rollback lock; all or nothing where the backend allows it.

    `log` is an entry made beforehand (status queued, by background.start_rollback());
    without it the entry is created here. Either way it records its progress while it runs
    (progress.py)."""
    if plan.blockers:
        raise PlanRefusedError("Refusing to roll back: " + " ".join(plan.blockers))
    if plan.is_noop:
        raise RollbackError(f"Nothing to do: {describe_state(plan.target)} is the current state.")
    assert plan.context is not None, "plans are made by plan_rollback()"
    connection = connections[plan.database]
    states = MigrationState.objects.using(plan.database)
    with rollback_lock(connection, wait):
        if applied_migrations(connection) != plan.applied_before:
            raise StalePlanError(
                "The applied migrations changed since this plan was made: preview it again."
            )
        if states.filter(pk__in=[plan.current.pk, plan.target.pk]).count() != 2:
            raise StalePlanError("The saved states changed since this plan was made.")
        # Holding the lock, any row still "running" belongs to a process that died.
        for dead in RollbackLog.objects.using(plan.database).filter(
            status=RollbackLog.Status.RUNNING
        ):
            mark_interrupted(dead)
        newer = states.newer_than(plan.target)
        pruned = [
            {
                "commit": s.commit,
                "tags": s.tags,
                "saved_at": s.saved_at.isoformat(),
                "migrations": s.migrations,
            }
            for s in newer
        ]
        if log is None:
            user = user or current_user()
            log = _log_row(plan, RollbackLog.Status.RUNNING, user=user, source=source)
        log.status, log.pruned_states = RollbackLog.Status.RUNNING, pruned
        log.started_at, log.steps_total = timezone.now(), len(plan.steps)
        log.fingerprint = plan.fingerprint
        log.pid, log.host, log.heartbeat_at = os.getpid(), socket.gethostname(), log.started_at
        log.save(using=plan.database)  # committed before the transaction: others can see it
        output: list[str] = []
        started = time.perf_counter()
        running: list[PlanStep] = []
        writer = ProgressWriter(log)
        try:
            with _all_or_nothing(connection, plan.all_or_nothing):
                try:
                    _run_steps(plan, connection, output, running, _tee(progress, writer, output))
                finally:
                    writer.close()  # before the outcome is written: no late progress after it
                actual = applied_migrations(connection)
                if actual != plan.expected_after:
                    raise RollbackFailedError(
                        "after the plan the applied migrations are not the expected ones "
                        f"(unexpected: {labels(actual - plan.expected_after) or '-'}; "
                        f"missing: {labels(plan.expected_after - actual) or '-'})"
                    )
                newer.delete()
                # The outcome commits with the rollback: a process killed right after the
                # commit still leaves a log row that says it succeeded. A failure to write it
                # must not undo the rollback, hence the savepoint in _finish().
                commit_audit_error = _finish(
                    log, RollbackLog.Status.SUCCEEDED, output, time.perf_counter() - started
                )
        except Exception as exc:
            seconds = time.perf_counter() - started
            where = f" at {running[-1].label}" if running else ""
            if plan.all_or_nothing:
                outcome = "the database is unchanged (the plan ran in one transaction)"
            else:
                done = [line for line in output if line.endswith("OK")]
                outcome = f"{len(done)} step(s) before it stay unapplied; saved states unchanged"
            message = f"Rollback failed{where}: {first_line(exc)}; {outcome}."
            _finish(log, RollbackLog.Status.FAILED, output, seconds, error=message)
            writer.discard()
            raise RollbackFailedError(message) from exc
        seconds = time.perf_counter() - started
        audit_error = _finish(log, RollbackLog.Status.SUCCEEDED, output, seconds)
        writer.discard()
        if audit_error and not commit_audit_error:
            audit_error = None  # only the final duration is missing; the outcome is saved
    return RollbackResult(plan, log, pruned, seconds, audit_error, output)


@contextmanager
def _all_or_nothing(connection: BaseDatabaseWrapper, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    # SQLite cannot switch foreign keys off inside a transaction, and its schema editor
    # needs them off: switch them off first, check them all before committing.
    sqlite = connection.vendor == "sqlite"
    if sqlite:
        connection.disable_constraint_checking()
    try:
        with transaction.atomic(using=connection.alias):
            yield
            if sqlite:
                connection.check_constraints()
    finally:
        if sqlite:
            connection.enable_constraint_checking()


def _run_steps(
    plan: RollbackPlan,
    connection: BaseDatabaseWrapper,
    output: list[str],
    running: list[PlanStep],
    progress: Callable[[StepEvent], None] | None,
) -> None:
    context = plan.context
    assert context is not None
    executor = context.executor
    states = context.states_before_steps()
    flush_deferred = plan.all_or_nothing and connection.vendor == "postgresql"
    total, first = len(plan.steps), time.perf_counter()
    for number, (migration, step) in enumerate(zip(context.migrations, plan.steps, strict=True), 1):
        running.append(step)
        if progress:
            progress(StepEvent("started", step, number=number, total=total))
        began = time.perf_counter()
        executor.unapply_migration(states[step.key], migration)
        for app, name in sorted(plan.extra_unrecords.get(step.key, ())):
            executor.recorder.record_unapplied(app, name)
        if flush_deferred:
            # A data step leaves deferred FK checks pending, and PostgreSQL refuses to ALTER
            # a table with pending trigger events later in the same transaction: fire them now.
            connection.check_constraints()
        seconds = time.perf_counter() - began
        output.append(f"Unapplying {step.label}... OK")
        if progress:
            elapsed = time.perf_counter() - first
            progress(StepEvent("finished", step, seconds, number, total, elapsed))


def _tee(
    progress: Callable[[StepEvent], None] | None, writer: ProgressWriter, output: list[str]
) -> Callable[[StepEvent], None]:
    """Progress events go to the caller (the command prints them) and to the log row."""

    def handle(event: StepEvent) -> None:
        if event.kind == "started":
            writer.update(running_step=event.step.label, step_started_at=timezone.now())
        else:
            writer.update(
                steps_done=event.number,
                running_step="",
                step_started_at=None,
                output="\n".join(output),
            )
        if progress:
            progress(event)

    return handle


def _finish(
    log: RollbackLog,
    status: RollbackLog.Status,
    output: list[str],
    seconds: float,
    error: str = "",
) -> str | None:
    """Close the audit row; a failure here must not hide what the rollback did."""
    log.status, log.output, log.error = status, "\n".join(output), error
    log.duration, log.finished_at = round(seconds, 3), timezone.now()
    log.steps_done = sum(1 for line in output if line.endswith("OK"))
    log.running_step, log.step_started_at = "", None
    try:
        with transaction.atomic(using=log._state.db):  # a savepoint inside the rollback's
            log.save(
                using=log._state.db,
                update_fields=[
                    "status",
                    "output",
                    "error",
                    "duration",
                    "finished_at",
                    "steps_done",
                    "running_step",
                    "step_started_at",
                ],
            )
    except DatabaseError as exc:
        return f"The rollback log entry {log.pk} could not be updated: {first_line(exc)}"
    return None
