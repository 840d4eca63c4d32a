"""Running a plan: under the rollback lock, in one transaction where the backend allows it,
step by step with progress events, and with an audit row that records the outcome.

planning.py decides what to do; this module only does it, and refuses a plan that went stale
between the preview and the confirmation.
"""

from __future__ import annotations

import contextlib
import copy
import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from django.utils.translation import ngettext

from . import signals
from .archive import Archiver, check_names
from .conf import approvals_required, get_setting
from .exceptions import (
    PlanRefusedError,
    RollbackError,
    RollbackFailedError,
    RollbackInProgressError,
    RollbackInterruptedError,
    StalePlanError,
    Terminated,
    first_line,
)
from .lock_waits import (
    WriteCounter,
    blocked_reason,
    is_lock_timeout,
    lock_timeout as lock_timeout_set,
)
from .locks import hold_transaction_lock, lock_scope, rollback_lock
from .models import APPROVAL_BYPASSED, MigrationState, RollbackLog, describe_commit
from .planning import PlanStep, RollbackPlan, labels
from .progress import ProgressWriter
from .snapshot import applied_migrations


def describe_state(state: MigrationState) -> str:
    """How every message names a state: the full commit and its tags."""
    return describe_commit(state.commit, state.tags)


@dataclass(frozen=True)
class StepEvent:
    """Progress of a running rollback: `started` then `finished` (with seconds) per step;
    `waiting` (seconds: the pause, message: who holds the table) when an attempt could not
    lock a table in time and the rollback will start over."""

    kind: Literal["started", "finished", "waiting"]
    step: PlanStep
    seconds: float = 0.0
    message: str = ""
    number: int = 0  # of the step, from 1 up to `total`
    total: int = 0
    elapsed: float = 0.0  # since the first step began


@dataclass
class RollbackResult:
    plan: RollbackPlan
    log: RollbackLog
    pruned: list[dict[str, object]]
    seconds: float
    audit_error: str | None = None  # the rollback succeeded but its log row could not be saved
    output: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)  # per step label
    rehearsal: bool = False  # ran in a transaction that was rolled back: nothing changed


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers often run as a uid with no passwd entry
        return os.environ.get("USER", "")


def _log_row(
    plan: RollbackPlan, status: RollbackLog.Status, *, user: str, source: RollbackLog.Source
) -> RollbackLog:
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
    )
    # With approvals on, the command line still runs (an operator with shell access), but
    # its audit entry says it went around them (approvals.py).
    command = status == RollbackLog.Status.RUNNING and source == RollbackLog.Source.COMMAND
    if command and approvals_required():
        row.add_event("bypassed", user, APPROVAL_BYPASSED)
    return row


def record_dry_run(
    plan: RollbackPlan, *, user: str = "", source: RollbackLog.Source = RollbackLog.Source.COMMAND
) -> RollbackLog:
    """Keep the previewed plan in the audit log; nothing else is written but the cleaning of
    entries left "running" by a process that died (when no rollback holds the lock)."""
    connection = connections[plan.database]
    try:
        with rollback_lock(connection):
            close_stale_running(plan.database)
    except RollbackInProgressError:
        pass  # a rollback is really running: its entry is not stale
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
    on_wait: Callable[[], None] | None = None,
    lock_timeout: float | None = None,
    retries: int | None = None,
    rehearse: bool = False,
    log: RollbackLog | None = None,
    before_commit: Callable[[BaseDatabaseWrapper], None] | None = None,
) -> RollbackResult:
    """Run the plan under the rollback lock; all or nothing where the backend allows it.

    `log` is an entry made beforehand (status queued, by background.start_rollback());
    without it the entry is created here. Either way, with the session lock, it records its
    progress while it runs (progress.py).

    Each attempt waits at most `lock_timeout` seconds for a table lock (default: the
    LOCK_TIMEOUT setting; 0: no limit). When that runs out and the attempt changed nothing,
    it is abandoned and tried again up to `retries` times (LOCK_RETRIES), after a pause of
    LOCK_RETRY_DELAY seconds doubled each time.

    With `rehearse`, the whole plan runs for real in one transaction that is then rolled
    back: the steps meet the real rows, and schema, data and states stay as they were. Only
    a `rehearsal` row in the log remains, with each step's time.

    Ctrl-C (KeyboardInterrupt) or SIGTERM (Terminated) while it runs: the log entry is
    marked interrupted at once and RollbackInterruptedError says what was changed.

    `before_commit` (fleet --atomic) runs last inside the plan's transaction, with the
    outcome written: it may end that transaction itself (PREPARE TRANSACTION), so nothing
    is written after it; it needs a plan that runs in one transaction."""
    if before_commit is not None and not plan.all_or_nothing:
        raise PlanRefusedError("This plan cannot run in one transaction: it cannot be prepared.")
    if plan.blockers:
        raise PlanRefusedError("Refusing to roll back: " + " ".join(plan.blockers))
    if plan.is_noop:
        raise RollbackError(f"Nothing to do: {describe_state(plan.target)} is the current state.")
    if rehearse:
        check_rehearsable(plan)
    assert plan.context is not None, "plans are made by plan_rollback()"
    timeout = float(get_setting("LOCK_TIMEOUT") if lock_timeout is None else lock_timeout)
    tries = 1 + int(get_setting("LOCK_RETRIES") if retries is None else retries)
    delay = float(get_setting("LOCK_RETRY_DELAY"))
    if timeout < 0 or tries < 1 or delay < 0:
        raise RollbackError("The lock timeout, the retries and their delay cannot be negative.")
    connection = connections[plan.database]
    if rehearse:
        with rollback_lock(connection, wait, on_wait=on_wait):
            _refuse_stale(plan)
            result, failure = _rehearse(
                plan, connection, user=user, source=source, progress=progress, timeout=timeout
            )
        # Raised once the lock is released: behind PgBouncer the lock's transaction commits
        # the rehearsal's log row only if the block ends without an error.
        if failure is not None:
            raise RollbackFailedError(result.log.error) from failure
        return result
    in_transaction = lock_scope(connection) == "transaction"
    if in_transaction and not plan.all_or_nothing:
        raise PlanRefusedError(
            "This plan cannot run in one transaction, and the rollback lock is held by the "
            "rollback's transaction (LOCK_SCOPE, for PgBouncer in transaction-pooling mode): "
            'run it over a direct connection to PostgreSQL with LOCK_SCOPE "session".'
        )
    if log is None:
        user = user or current_user()
        log = _log_row(plan, RollbackLog.Status.RUNNING, user=user, source=source)
    output: list[str] = []
    step_seconds: dict[str, float] = {}
    running: list[PlanStep] = []
    finished: list[PlanStep] = []
    committed = False
    session_lock = rollback_lock(connection, wait, on_wait=on_wait)
    # Read when a signal comes, so with the values of that moment (attempt, pause, finish).
    interrupts = _closed_on_interrupt(
        lambda signal: _interrupted(plan, log, output, running, finished, committed, signal)
    )
    with nullcontext() if in_transaction else session_lock, interrupts:
        if not in_transaction:
            newer, pruned = _prepare(plan, log)
        started = time.perf_counter()
        for attempt in range(1, tries + 1):
            running, finished = [], []
            writes = WriteCounter()
            archiver = Archiver(connection, log) if plan.archive else None
            try:
                with (
                    connection.execute_wrapper(writes),
                    _all_or_nothing(connection, plan.all_or_nothing),
                    lock_timeout_set(connection, timeout, in_transaction=plan.all_or_nothing),
                ):
                    if in_transaction:
                        hold_transaction_lock(connection, wait)
                        newer, pruned = _prepare(plan, log)
                    # Live progress needs the row committed before the transaction: not so with
                    # the transaction-scoped lock (PgBouncer), where the page shows it at the end.
                    writer = None if in_transaction else ProgressWriter(log)
                    try:
                        _run_steps(
                            plan,
                            connection,
                            output,
                            running,
                            finished,
                            _tee(progress, writer, output),
                            step_seconds,
                            archiver,
                        )
                    finally:
                        if writer is not None:  # before the outcome: no late progress after it
                            writer.discard()
                    _check_result(connection, plan)
                    newer.delete()
                    # The outcome commits with the rollback: a process killed right after the
                    # commit still leaves a log row that says it succeeded. A failure to write
                    # it must not undo the rollback, hence the savepoint in _finish().
                    commit_audit_error = _finish(
                        log,
                        RollbackLog.Status.SUCCEEDED,
                        output,
                        finished,
                        time.perf_counter() - started,
                        archiver=archiver,
                    )
                    if before_commit is not None:  # fleet --atomic: a prepared transaction
                        before_commit(connection)
                committed = True
                break
            except Exception as exc:
                if in_transaction:
                    # The row went with the transaction: a refusal leaves no trace, a
                    # failure is written anew below.
                    log.pk, log._state.adding = None, True
                    if isinstance(exc, RollbackError) and not running:
                        raise
                # Copies into the archive are the only writes discard() can take back.
                copied = archiver.copy_writes.count if archiver else 0
                unchanged = plan.all_or_nothing or writes.count == copied
                if not (is_lock_timeout(exc) and unchanged):
                    message = _failure(plan, exc, running, finished)
                else:
                    step = running[-1] if running else None
                    tables = [lock.table for lock in step.locks] if step else []
                    reason = blocked_reason(connection, tables, timeout)
                    if archiver is not None and not plan.all_or_nothing:
                        archiver.discard()  # a new attempt archives anew under the same names
                    if attempt < tries:
                        pause = min(delay * 2 ** (attempt - 1), MAX_RETRY_DELAY)
                        line = (
                            f"Attempt {attempt} of {tries}: {reason}; trying again in {pause:g}s."
                        )
                        output.append(line)
                        if progress and step:
                            progress(StepEvent("waiting", step, pause, line))
                        time.sleep(pause)
                        continue
                    message = (
                        f"Rollback gave up after {tries} attempt{'s' if tries != 1 else ''}: "
                        f"{reason}; the database is unchanged."
                    )
                seconds = time.perf_counter() - started
                # Step by step, the archive tables of the steps that ran are there: say so.
                kept = None if plan.all_or_nothing else archiver
                _finish(
                    log,
                    RollbackLog.Status.FAILED,
                    output,
                    finished,
                    seconds,
                    error=message,
                    archiver=kept,
                )
                signals.send_rollback_finished(plan, log)
                raise RollbackFailedError(message) from exc
        seconds = time.perf_counter() - started
        if before_commit is not None:
            # The log row is locked by the prepared transaction: writing it now would wait
            # for that transaction's outcome. Its duration is the one written inside it.
            audit_error = commit_audit_error
        else:
            audit_error = _finish(
                log, RollbackLog.Status.SUCCEEDED, output, finished, seconds, archiver=archiver
            )
        if audit_error and not commit_audit_error:
            audit_error = None  # only the final duration is missing; the outcome is saved
    signals.send_rollback_finished(plan, log)  # after the lock: receivers may be slow
    return RollbackResult(plan, log, pruned, seconds, audit_error, output, step_seconds)


def check_rehearsable(plan: RollbackPlan) -> None:
    """A rehearsal must be undone completely, so it needs one transaction around it all."""
    connection = connections[plan.database]
    if not connection.features.can_rollback_ddl:
        raise RollbackError(
            f"Cannot rehearse on {connection.display_name}: it commits every schema change at "
            "once (DDL is not transactional), so a rehearsal could not be undone. Rehearse on "
            "a PostgreSQL or SQLite copy instead, or preview with --fake."
        )
    if not plan.all_or_nothing:
        non_atomic = ", ".join(s.label for s in plan.steps if not s.atomic)
        raise RollbackError(
            f"Cannot rehearse: {non_atomic} cannot run inside a transaction, so a rehearsal "
            "could not be undone."
        )


def _rehearse(
    plan: RollbackPlan,
    connection: BaseDatabaseWrapper,
    *,
    user: str,
    source: RollbackLog.Source,
    progress: Callable[[StepEvent], None] | None,
    timeout: float,
) -> tuple[RollbackResult, Exception | None]:
    """The rollback for real inside one transaction, rolled back at the end whatever
    happens; then the log row (outside that transaction, so it stays). Table locks wait no
    longer than a rollback's would. Returns the result and the failure, if any."""
    output: list[str] = []
    step_seconds: dict[str, float] = {}
    running: list[PlanStep] = []
    finished: list[PlanStep] = []
    error = ""
    started = time.perf_counter()
    try:
        with (
            _all_or_nothing(connection, True, rehearse=True),
            lock_timeout_set(connection, timeout, in_transaction=True),
        ):
            _run_steps(plan, connection, output, running, finished, progress, step_seconds)
            _check_result(connection, plan)
    except Exception as exc:
        error = _failure(plan, exc, running, finished, rehearsal=True)
        failure: Exception | None = exc
    else:
        failure = None
    seconds = time.perf_counter() - started
    log = _log_row(plan, RollbackLog.Status.REHEARSAL, user=user or current_user(), source=source)
    log.plan = {**log.plan, "fingerprint": plan.fingerprint, "step_seconds": step_seconds}
    log.output, log.error = "\n".join(output), error
    log.duration, log.finished_at = round(seconds, 3), timezone.now()
    log.save(using=plan.database)
    result = RollbackResult(plan, log, [], seconds, None, output, step_seconds, rehearsal=True)
    return result, failure


def _check_result(connection: BaseDatabaseWrapper, plan: RollbackPlan) -> None:
    actual = applied_migrations(connection)
    if actual != plan.expected_after:
        raise RollbackFailedError(
            "after the plan the applied migrations are not the expected ones "
            f"(unexpected: {labels(actual - plan.expected_after) or '-'}; "
            f"missing: {labels(plan.expected_after - actual) or '-'})"
        )


MAX_RETRY_DELAY = 30.0


def _prepare(plan: RollbackPlan, log: RollbackLog) -> tuple[Any, list[dict[str, object]]]:
    """Holding the rollback lock: refuse a stale plan, close the rows of dead rollbacks, and
    save this one's row as running. Returns the newer states and what they held."""
    _refuse_stale(plan)
    if plan.archive:  # a name the archive needs is taken: refuse before the first step
        check_names(connections[plan.database], log)
    close_stale_running(plan.database)
    states = MigrationState.objects.using(plan.database)
    newer = states.newer_than(plan.target)
    pruned: list[dict[str, object]] = [
        {
            "commit": s.commit,
            "tags": s.tags,
            "saved_at": s.saved_at.isoformat(),
            "migrations": s.migrations,
        }
        for s in newer
    ]
    log.status, log.pruned_states = RollbackLog.Status.RUNNING, pruned
    log.started_at, log.steps_total = timezone.now(), len(plan.steps)
    log.fingerprint, log.steps_done = plan.fingerprint, 0
    log.pid, log.host, log.heartbeat_at = os.getpid(), socket.gethostname(), log.started_at
    log.save(using=plan.database)
    signals.send_rollback_started(plan, log)
    return newer, pruned


def _refuse_stale(plan: RollbackPlan) -> None:
    """Holding the rollback lock: the database and the states must be as when planned."""
    connection = connections[plan.database]
    if applied_migrations(connection) != plan.applied_before:
        raise StalePlanError(
            "The applied migrations changed since this plan was made: preview it again."
        )
    states = MigrationState.objects.using(plan.database)
    if states.filter(pk__in=[plan.current.pk, plan.target.pk]).count() != 2:
        raise StalePlanError("The saved states changed since this plan was made.")


def _failure(
    plan: RollbackPlan,
    exc: Exception,
    running: list[PlanStep],
    finished: list[PlanStep],
    *,
    rehearsal: bool = False,
) -> str:
    """The one line that names the failing step, the same for a rollback and a rehearsal."""
    where = f" at {running[-1].label}" if running else ""
    if rehearsal:
        outcome = "nothing was changed (the rehearsal ran in one transaction, rolled back)"
    elif plan.all_or_nothing:
        outcome = "the database is unchanged (the plan ran in one transaction)"
    else:
        outcome = _steps_done(finished) + "; saved states unchanged"
    prefix = "Rehearsal: rollback" if rehearsal else "Rollback"
    return f"{prefix} failed{where}: {first_line(first_error(exc))}; {outcome}."


def first_error(exc: BaseException) -> BaseException:
    """The error that broke the transaction, not the one that followed it: after a failed
    query inside an atomic block, Django refuses every further query (SQLite's schema editor
    checks constraints on its way out) with TransactionManagementError, which says nothing
    about the constraint that failed."""
    while isinstance(exc, TransactionManagementError) and exc.__context__ is not None:
        exc = exc.__context__
    return exc


def close_stale_running(database: str) -> int:
    """Mark "interrupted" the log entries still "running": called under the rollback lock,
    so they belong to processes that died."""
    return (
        RollbackLog.objects.using(database)
        .filter(status=RollbackLog.Status.RUNNING)
        .update(status=RollbackLog.Status.INTERRUPTED, error="The rollback process stopped.")
    )


def _steps_done(finished: list[PlanStep]) -> str:
    return ngettext(
        "%(count)d step before it stays unapplied",
        "%(count)d steps before it stay unapplied",
        len(finished),
    ) % {"count": len(finished)}


@contextmanager
def _closed_on_interrupt(
    close: Callable[[KeyboardInterrupt], RollbackInterruptedError],
) -> Iterator[None]:
    """Ctrl-C (KeyboardInterrupt) or SIGTERM (Terminated, through the commands' handler)
    anywhere in the block: a step, the archive, the pause between attempts, the final write.
    `close` marks the log entry and returns the error that says what was changed."""
    try:
        yield
    except KeyboardInterrupt as exc:
        raise close(exc) from None


def _interrupted(
    plan: RollbackPlan,
    log: RollbackLog,
    output: list[str],
    running: list[PlanStep],
    finished: list[PlanStep],
    committed: bool,
    signal: KeyboardInterrupt,
) -> RollbackInterruptedError:
    """Close the log entry of an interrupted rollback at once, and say what was changed."""
    terminated = isinstance(signal, Terminated)
    if committed:
        return RollbackInterruptedError(
            f"Interrupted after the rollback had finished (log entry {log.pk}).",
            terminated=terminated,
        )
    if plan.all_or_nothing:
        message = "Interrupted: nothing was changed (the plan ran in one transaction)."
    else:
        where = f" at {running[-1].label}" if running else ""
        message = (
            f"Interrupted{where}: {_steps_done(finished)}; saved states unchanged. Run the "
            "same rollback again to finish it."
        )
    log.status, log.error, log.output = RollbackLog.Status.INTERRUPTED, message, "\n".join(output)
    log.finished_at, log.steps_done = timezone.now(), len(finished)
    log.running_step, log.step_started_at = "", None
    try:
        _save_interrupted(log, plan.database)
    except DatabaseError:  # the signal may have broken the connection mid-query
        connections[plan.database].close()
        # If this fails too, the next rollback or dry run marks it, holding the lock.
        with contextlib.suppress(DatabaseError):
            _save_interrupted(log, plan.database)
    signals.send_rollback_finished(plan, log)
    return RollbackInterruptedError(message, terminated=terminated)


def _save_interrupted(log: RollbackLog, database: str) -> None:
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


@contextmanager
def _all_or_nothing(
    connection: BaseDatabaseWrapper, enabled: bool, *, rehearse: bool = False
) -> Iterator[None]:
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
            if rehearse:  # everything checked as a commit would; now undo it all
                transaction.set_rollback(True, using=connection.alias)
    finally:
        if sqlite:
            connection.enable_constraint_checking()


def _run_steps(
    plan: RollbackPlan,
    connection: BaseDatabaseWrapper,
    output: list[str],
    running: list[PlanStep],
    finished: list[PlanStep],
    progress: Callable[[StepEvent], None] | None,
    step_seconds: dict[str, float],
    archiver: Archiver | None = None,
) -> None:
    """Unapply the steps in order; each is added to `running` when it starts and to
    `finished` when it is done: what the messages count, never the output's text."""
    context = plan.context
    assert context is not None
    executor = context.executor
    states = context.states_before_steps()
    flush_deferred = plan.all_or_nothing and connection.vendor == "postgresql"
    own_transaction = plan.all_or_nothing and connection.vendor == "sqlite"
    total, first = len(plan.steps), time.perf_counter()
    for number, (migration, step) in enumerate(zip(context.migrations, plan.steps, strict=True), 1):
        running.append(step)
        if progress:
            progress(StepEvent("started", step, number=number, total=total))
        began = time.perf_counter()
        if own_transaction:
            # Inside our transaction a step needs no atomic block of its own, and on SQLite
            # that block breaks on a failing step: the schema editor's exit queries the
            # broken transaction before closing its block, hiding the real error and
            # leaving the block open.
            migration = copy.copy(migration)
            migration.atomic = False  # type: ignore[misc]  # on this copy only
        if archiver is None:
            executor.unapply_migration(states[step.key], migration)
        else:
            with archiver.watching(step.label):
                executor.unapply_migration(states[step.key], migration)
        for app, name in sorted(plan.extra_unrecords.get(step.key, ())):
            executor.recorder.record_unapplied(app, name)
        if flush_deferred:
            # A data step leaves deferred FK checks pending, and PostgreSQL refuses to ALTER
            # a table with pending trigger events later in the same transaction: fire them now.
            connection.check_constraints()
        seconds = time.perf_counter() - began
        step_seconds[step.label] = round(seconds, 3)
        finished.append(step)
        how = f" ({step.override.describe()})" if step.override else ""
        output.append(f"Unapplying {step.label}... OK{how}")
        if progress:
            elapsed = time.perf_counter() - first
            progress(
                StepEvent("finished", step, seconds, number=number, total=total, elapsed=elapsed)
            )


def _tee(
    progress: Callable[[StepEvent], None] | None,
    writer: ProgressWriter | None,
    output: list[str],
) -> Callable[[StepEvent], None]:
    """Progress events go to the caller (the command prints them) and to the log row."""

    def handle(event: StepEvent) -> None:
        if writer is not None and event.kind == "started":
            writer.update(running_step=event.step.label, step_started_at=timezone.now())
        elif writer is not None and event.kind == "finished":
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
    finished: list[PlanStep],
    seconds: float,
    error: str = "",
    archiver: Archiver | None = None,
) -> str | None:
    """Close the audit row; a failure here must not hide what the rollback did."""
    log.status, log.output, log.error = status, "\n".join(output), error
    log.duration, log.finished_at = round(seconds, 3), timezone.now()
    log.steps_done = len(finished)  # of the last attempt: earlier ones were undone
    log.running_step, log.step_started_at = "", None
    database = log._state.db or log.database
    fields = ["status", "output", "error", "duration", "finished_at"]
    if archiver is not None and archiver.items:
        log.archive = archiver.document()
        fields.append("archive")
    fields += ["steps_done", "running_step", "step_started_at"]
    try:
        with transaction.atomic(using=database):  # a savepoint inside the rollback's
            log.save(using=database, update_fields=None if log._state.adding else fields)
    except DatabaseError as exc:
        return f"The rollback log entry {log.pk} could not be updated: {first_line(exc)}"
    return None
