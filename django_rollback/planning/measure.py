"""What each step locks and drops, and the sizes of the tables involved."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import truncate_name
from django.db.migrations import operations as ops
from django.db.migrations.state import ProjectState

from ..conf import get_setting
from ..radius import Sizer, StepLocks, TableSize, has_own_table, undo_locks
from .plan import DataLoss, ExecutionContext, PlanStep
from .states import model_of, routed_here, state_before, table_name


def measure_steps(
    connection: BaseDatabaseWrapper,
    context: ExecutionContext,
    steps: list[PlanStep],
    *,
    exact: bool,
    archive: bool = True,
) -> dict[str, TableSize]:
    """Fill in each step's locks and what it drops (the tables of unapplied CreateModel with
    their many-to-many join tables, the columns of unapplied AddField, the join table of an
    unapplied many-to-many AddField); return the sizes of the tables involved."""
    sizer = Sizer(connection, exact=exact, threshold=int(get_setting("ESTIMATE_ROWS_ABOVE")))
    states = context.states_before_steps()
    max_length = connection.ops.max_name_length()

    def dropped(table: str, column: str | None = None, *, join: bool = False) -> DataLoss:
        if column is None:
            size = sizer.table(table)
            rows, estimated = size.rows, size.estimated
        else:
            rows, estimated = sizer.column(table, column)
        return DataLoss(table, column, rows, estimated, archived=archive, join_table=join)

    for migration, step in zip(context.migrations, steps, strict=True):
        state = states[step.key]
        locks = StepLocks(connection.vendor)
        for operation in migration.operations:
            before = state_before(state, migration.app_label, operation)
            operation.state_forwards(migration.app_label, state)
            if routed_here(connection, migration.app_label, model_of(operation)):
                undo_locks(
                    connection,
                    migration.app_label,
                    operation,
                    before,
                    state,
                    locks,
                    lambda model: table_name(model, max_length),
                )
            step.data_loss += _drops(connection, migration.app_label, operation, state, dropped)
        step.locks = locks.result()
        for lock in step.locks:
            sizer.table(lock.table)
    return sizer.sizes


def _drops(
    connection: BaseDatabaseWrapper,
    app: str,
    operation: ops.base.Operation,
    state: ProjectState,
    dropped: Callable[..., DataLoss],
) -> list[DataLoss]:
    """What undoing one operation drops: a CreateModel's table and its many-to-many join
    tables, an AddField's column (or its join table)."""
    max_length = connection.ops.max_name_length()
    if isinstance(operation, ops.CreateModel):
        if not routed_here(connection, app, operation.name_lower):
            return []
        model = state.models[(app, operation.name_lower)]
        if not has_own_table(model):
            return []
        table = table_name(model, max_length)
        losses = [dropped(table)]
        for name, model_field in model.fields.items():
            join = join_table(model_field, table, name, max_length)
            if join:
                losses.append(dropped(join, join=True))
        return losses
    if isinstance(operation, ops.AddField):
        if not routed_here(connection, app, operation.model_name_lower):
            return []
        model = state.models[(app, operation.model_name_lower)]
        if not has_own_table(model):
            return []
        added = operation.field.clone()  # type: ignore[attr-defined]  # (not in stubs)
        added.set_attributes_from_name(operation.name)
        table = table_name(model, max_length)
        if added.many_to_many:
            join = join_table(added, table, operation.name, max_length)
            return [dropped(join, join=True)] if join else []
        return [dropped(table, added.column)]
    return []


def join_table(model_field: Any, table: str, name: str, max_length: int | None) -> str | None:
    """The table Django creates for a many-to-many field without a `through` model."""
    if not getattr(model_field, "many_to_many", False):
        return None
    if getattr(model_field.remote_field, "through", None) is not None:
        return None  # a model of its own: its CreateModel drops it
    return model_field.db_table or truncate_name(f"{table}_{name}", max_length)


# Operations whose undo needs the model as it was before them (what they removed or changed).
