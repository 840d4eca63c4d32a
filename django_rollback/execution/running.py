"""Running a plan for real: under the rollback lock, in one transaction where the backend
allows it, attempt after attempt while table locks time out, with the audit row (audit.py)
opened before the first step and closed with the outcome."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from .. import signals
from ..archive import Archiver, check_names
from ..audit import close_stale_running, finish_entry, new_entry, open_entry, save_interrupted
from ..exceptions import (
    PlanRefusedError,
    RollbackError,
    RollbackFailedError,
    RollbackInProgressError,
    RollbackInterruptedError,
    Terminated,
)
from ..lock_waits import (
    WriteCounter,
    blocked_reason,
    is_lock_timeout,
    lock_timeout as lock_timeout_set,
)
from ..locks import hold_transaction_lock, lock_scope, rollback_lock
from ..models import MigrationState, RollbackLog
from ..planning import RollbackPlan
from ..progress import ProgressWriter
from .checks import check_result, refuse_stale, refuse_unrunnable
from .records import LockSettings, RollbackResult, RunRecord, StepEvent, current_user
from .rehearsal import rehearse as rehearse_plan
from .steps import Progress, all_or_nothing, run_steps, tee
from .wording import failure_message, gave_up_message, interrupt_message


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
    log = new_entry(plan, RollbackLog.Status.DRY_RUN, user=user or current_user(), source=source)
    log.finished_at, log.duration = log.started_at, 0.0
    log.save(using=plan.database)
    return log


def execute(
    plan: RollbackPlan,
    *,
    user: str = "",
    source: RollbackLog.Source = RollbackLog.Source.COMMAND,
    progress: Progress | None = None,
    locks: LockSettings | None = None,
    on_wait: Callable[[], None] | None = None,
    rehearse: bool = False,
    log: RollbackLog | None = None,
    before_commit: Callable[[BaseDatabaseWrapper], None] | None = None,
) -> RollbackResult:
    """Run the plan under the rollback lock; all or nothing where the backend allows it.

    `log` is an entry made beforehand (status queued, by background.start_rollback());
    without it the entry is created here. Either way, with the session lock, it records its
    progress while it runs (progress.py).

    `locks` (records.LockSettings; None: the settings' values, no wait) says how long to wait
    for the rollback lock (`wait`, calling `on_wait` when the wait starts) and for each table
    lock (`timeout`, 0: no limit). When a table lock times out and the attempt changed
    nothing, it is abandoned and tried again (`tries` attempts in all), after a pause that
    doubles each time.

    `rehearse`: the older way to ask for rehearse() (rehearsal.py).

    Ctrl-C (KeyboardInterrupt) or SIGTERM (Terminated) while it runs: the log entry is
    marked interrupted at once and RollbackInterruptedError says what was changed.

    `before_commit` (fleet --atomic) runs last in the plan's single transaction, the outcome
    written: it may end it (PREPARE TRANSACTION); nothing is written after it."""
    if before_commit is not None and not plan.all_or_nothing:
        raise PlanRefusedError("This plan cannot run in one transaction: it cannot be prepared.")
    if rehearse:
        return rehearse_plan(
            plan, user=user, source=source, progress=progress, locks=locks, on_wait=on_wait
        )
    refuse_unrunnable(plan)
    assert plan.context is not None, "plans are made by plan_rollback()"
    if locks is None:
        locks = LockSettings.read(None, None)
    connection = connections[plan.database]
    in_transaction = _lock_in_transaction(plan, connection)
    if log is None:
        log = new_entry(
            plan, RollbackLog.Status.RUNNING, user=user or current_user(), source=source
        )
    run = _Run(plan, connection, log, locks, progress, in_transaction, before_commit)
    session_lock = rollback_lock(connection, locks.wait, on_wait=on_wait)
    with nullcontext() if in_transaction else session_lock, _closed_on_interrupt(run.interrupted):
        result = run.attempts()
    signals.send_rollback_finished(plan, log)  # after the lock: receivers may be slow
    return result


def _lock_in_transaction(plan: RollbackPlan, connection: BaseDatabaseWrapper) -> bool:
    """Whether the rollback lock is the transaction's (PgBouncer): then the plan must run
    in one transaction."""
    in_transaction = lock_scope(connection) == "transaction"
    if in_transaction and not plan.all_or_nothing:
        raise PlanRefusedError(
            "This plan cannot run in one transaction, and the rollback lock is held by the "
            "rollback's transaction (LOCK_SCOPE, for PgBouncer in transaction-pooling mode): "
            'run it over a direct connection to PostgreSQL with LOCK_SCOPE "session".'
        )
    return in_transaction


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


def _archive_of(archiver: Archiver | None) -> dict[str, Any] | None:
    return archiver.document() if archiver is not None and archiver.items else None


class _Run:
    """One rollback under way: its attempts share the audit row and the record."""

    def __init__(
        self,
        plan: RollbackPlan,
        connection: BaseDatabaseWrapper,
        log: RollbackLog,
        locks: LockSettings,
        progress: Progress | None,
        in_transaction: bool,
        before_commit: Callable[[BaseDatabaseWrapper], None] | None = None,
    ) -> None:
        self.plan, self.connection, self.log, self.locks = plan, connection, log, locks
        self.progress, self.in_transaction = progress, in_transaction
        self.record = RunRecord()
        self.archiver: Archiver | None = None
        self.newer: Any = None
        self.pruned: list[dict[str, object]] = []
        self.started = 0.0
        self.commit_audit_error: str | None = None
        self.before_commit = before_commit

    def attempts(self) -> RollbackResult:
        """Every attempt until one commits; then the row's final duration."""
        if not self.in_transaction:
            self.prepare()
        self.started = time.perf_counter()
        for attempt in range(1, self.locks.tries + 1):
            if self.attempt(attempt):
                break
        seconds = time.perf_counter() - self.started
        record = self.record
        if self.before_commit is not None:
            # The log row is locked by the prepared transaction: writing it now would wait
            # for that transaction's outcome. Its duration is the one written inside it.
            audit_error = self.commit_audit_error
        else:
            audit_error = finish_entry(
                self.log,
                RollbackLog.Status.SUCCEEDED,
                record.output,
                len(record.finished),
                seconds,
                archive=_archive_of(self.archiver),
            )
        if audit_error and not self.commit_audit_error:
            audit_error = None  # only the final duration is missing; the outcome is saved
        return RollbackResult(
            self.plan,
            self.log,
            self.pruned,
            seconds,
            audit_error,
            record.output,
            record.step_seconds,
        )

    def prepare(self) -> None:
        """Holding the rollback lock: refuse a stale plan, close the rows of dead rollbacks,
        and open this one's row. Keeps the newer states and what they held."""
        plan = self.plan
        refuse_stale(plan)
        if plan.archive:  # a name the archive needs is taken: refuse before the first step
            check_names(connections[plan.database], self.log)
        close_stale_running(plan.database)
        self.newer = MigrationState.objects.using(plan.database).newer_than(plan.target)
        self.pruned = [
            {
                "commit": s.commit,
                "tags": s.tags,
                "saved_at": s.saved_at.isoformat(),
                "migrations": s.migrations,
            }
            for s in self.newer
        ]
        open_entry(plan, self.log, self.pruned)
        signals.send_rollback_started(plan, self.log)

    def attempt(self, number: int) -> bool:
        """True when the rollback committed; False when a table lock timed out and the
        next attempt should start over. Raises when it failed for good."""
        self.record.new_attempt()
        writes = WriteCounter()
        self.archiver = Archiver(self.connection, self.log) if self.plan.archive else None
        try:
            with (
                self.connection.execute_wrapper(writes),
                all_or_nothing(self.connection, self.plan.all_or_nothing),
                lock_timeout_set(
                    self.connection, self.locks.timeout, in_transaction=self.plan.all_or_nothing
                ),
            ):
                self._steps()
            self.record.committed = True
            return True
        except Exception as exc:
            message = self._failed(exc, number, writes)
            if message is None:
                return False
            self._close_failed(message)
            raise RollbackFailedError(message) from exc

    def _steps(self) -> None:
        plan, connection, log, record = self.plan, self.connection, self.log, self.record
        if self.in_transaction:
            hold_transaction_lock(connection, self.locks.wait)
            self.prepare()
        # Live progress needs the row committed before the transaction: not so with the
        # transaction-scoped lock (PgBouncer), where the page shows it at the end.
        writer = None if self.in_transaction else ProgressWriter(log)
        try:
            run_steps(
                plan, connection, record, tee(self.progress, writer, record.output), self.archiver
            )
        finally:
            if writer is not None:  # before the outcome: no late progress after it
                writer.discard()
        check_result(connection, plan)
        self.newer.delete()
        # The outcome commits with the rollback: a process killed right after the commit
        # still leaves a log row that says it succeeded. A failure to write it must not
        # undo the rollback, hence the savepoint in finish_entry().
        self.commit_audit_error = finish_entry(
            log,
            RollbackLog.Status.SUCCEEDED,
            record.output,
            len(record.finished),
            time.perf_counter() - self.started,
            archive=_archive_of(self.archiver),
        )
        if self.before_commit is not None:  # fleet --atomic: a prepared transaction
            self.before_commit(self.connection)

    def _failed(self, exc: Exception, attempt: int, writes: WriteCounter) -> str | None:
        """The failure's message, or None when another attempt will follow."""
        plan, archiver, record = self.plan, self.archiver, self.record
        if self.in_transaction:
            # The row went with the transaction: a refusal leaves no trace, a failure is
            # written anew.
            self.log.pk, self.log._state.adding = None, True
            if isinstance(exc, RollbackError) and not record.running:
                raise exc
        # Copies into the archive are the only writes discard() can take back.
        copied = archiver.copy_writes.count if archiver else 0
        unchanged = plan.all_or_nothing or writes.count == copied
        if not (is_lock_timeout(exc) and unchanged):
            return failure_message(plan, exc, record)
        step = record.running[-1] if record.running else None
        tables = [lock.table for lock in step.locks] if step else []
        reason = blocked_reason(self.connection, tables, self.locks.timeout)
        if archiver is not None and not plan.all_or_nothing:
            archiver.discard()  # a new attempt archives anew under the same names
        if attempt >= self.locks.tries:
            return gave_up_message(self.locks.tries, reason)
        pause = self.locks.pause(attempt)
        line = f"Attempt {attempt} of {self.locks.tries}: {reason}; trying again in {pause:g}s."
        record.output.append(line)
        if self.progress and step:
            self.progress(StepEvent("waiting", step, pause, line))
        time.sleep(pause)
        return None

    def _close_failed(self, message: str) -> None:
        # Step by step, the archive tables of the steps that ran are there: say so.
        kept = None if self.plan.all_or_nothing else self.archiver
        finish_entry(
            self.log,
            RollbackLog.Status.FAILED,
            self.record.output,
            len(self.record.finished),
            time.perf_counter() - self.started,
            error=message,
            archive=_archive_of(kept),
        )
        signals.send_rollback_finished(self.plan, self.log)

    def interrupted(self, signal: KeyboardInterrupt) -> RollbackInterruptedError:
        """Close the log entry of an interrupted rollback at once, and say what was changed."""
        plan, log, record = self.plan, self.log, self.record
        terminated = isinstance(signal, Terminated)
        if record.committed:
            return RollbackInterruptedError(
                f"Interrupted after the rollback had finished (log entry {log.pk}).",
                terminated=terminated,
            )
        message = interrupt_message(plan, record)
        log.status, log.error = RollbackLog.Status.INTERRUPTED, message
        log.output = "\n".join(record.output)
        log.finished_at, log.steps_done = timezone.now(), len(record.finished)
        log.running_step, log.step_started_at = "", None
        try:
            save_interrupted(log, plan.database)
        except DatabaseError:  # the signal may have broken the connection mid-query
            connections[plan.database].close()
            # If this fails too, the next rollback or dry run marks it, holding the lock.
            with contextlib.suppress(DatabaseError):
                save_interrupted(log, plan.database)
        signals.send_rollback_finished(plan, log)
        return RollbackInterruptedError(message, terminated=terminated)
