"""Unapplying the steps of a plan, inside one transaction where the backend allows it, with
progress events for the caller and for the log row."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import django
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.utils import timezone

from ..archive import Archiver
from ..planning import RollbackPlan
from ..progress import ProgressWriter
from .records import RunRecord, StepEvent

Progress = Callable[[StepEvent], None]


@contextmanager
def all_or_nothing(
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


def run_steps(
    plan: RollbackPlan,
    connection: BaseDatabaseWrapper,
    record: RunRecord,
    progress: Progress | None,
    archiver: Archiver | None = None,
) -> None:
    """Unapply the steps in order; each is added to `record.running` when it starts and to
    `record.finished` when it is done: what the messages count, never the output's text."""
    context = plan.context
    assert context is not None
    total, first = len(plan.steps), time.perf_counter()
    for number, (migration, step) in enumerate(zip(context.migrations, plan.steps, strict=True), 1):
        record.running.append(step)
        if progress:
            progress(StepEvent("started", step, number=number, total=total))
        began = time.perf_counter()
        _unapply(plan, connection, migration, step.label, archiver)
        for app, name in sorted(plan.extra_unrecords.get(step.key, ())):
            context.executor.recorder.record_unapplied(app, name)
        if plan.all_or_nothing and connection.vendor == "postgresql":
            # A data step leaves deferred FK checks pending, and PostgreSQL refuses to ALTER
            # a table with pending trigger events later in the same transaction: fire them now
            # (Django's check_constraints(), in one round trip instead of two).
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED")
        seconds = time.perf_counter() - began
        record.step_seconds[step.label] = round(seconds, 3)
        record.finished.append(step)
        how = f" ({step.override.describe()})" if step.override else ""
        record.output.append(f"Unapplying {step.label}... OK{how}")
        if progress:
            elapsed = time.perf_counter() - first
            progress(
                StepEvent("finished", step, seconds, number=number, total=total, elapsed=elapsed)
            )
    for app, name in sorted(plan.stray_records):
        context.executor.recorder.record_unapplied(app, name)
        record.output.append(f"Removing the record of {app}.{name}... OK")


def _unapply(
    plan: RollbackPlan,
    connection: BaseDatabaseWrapper,
    migration: Migration,
    label: str,
    archiver: Archiver | None,
) -> None:
    """What Django's executor does to unapply one migration, with the states of its
    operations worked out once per process (ExecutionContext.backwards) instead of once per
    run: a fleet runs the same plan in every schema."""
    context = plan.context
    assert context is not None
    # Inside our transaction a step needs no atomic block of its own, and on SQLite that
    # block breaks on a failing step: the schema editor's exit queries the broken
    # transaction before closing its block, hiding the real error and leaving it open.
    atomic = migration.atomic and not (plan.all_or_nothing and connection.vendor == "sqlite")
    with (
        archiver.watching(label) if archiver else nullcontext(),
        connection.schema_editor(atomic=atomic) as editor,
    ):
        for operation, before, after in context.backwards(migration):
            # As Django does: an atomic operation in a migration that is not (or on a backend
            # without transactional DDL) gets a transaction of its own.
            own = operation.atomic or (atomic and operation.atomic is not False)
            alone = own and not editor.atomic_migration
            with transaction.atomic(connection.alias) if alone else nullcontext():
                operation.database_backwards(migration.app_label, editor, after, before)
    _record_unapplied(context.executor, migration)


def _record_unapplied(executor: MigrationExecutor, migration: Migration) -> None:
    """The migration's row gone, and those of the migrations it replaces (a squash), as
    Django's executor records a backwards run in each version."""
    if django.VERSION >= (6, 0):  # record_migration(..., forward=False) follows nested squashes
        record: Any = executor.record_migration  # (the stubs know 5.2's signature)
        record(migration.app_label, migration.name, forward=False)
        return
    for app, name in [*migration.replaces, (migration.app_label, migration.name)]:
        executor.recorder.record_unapplied(app, name)


def tee(progress: Progress | None, writer: ProgressWriter | None, output: list[str]) -> Progress:
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
