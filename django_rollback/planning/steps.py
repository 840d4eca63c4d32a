"""Each step described from its migration file: operations, irreversibility, the
project state before it, and the warnings about the plan as a whole."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration

from .. import overrides
from ..models import MigrationKey
from ..snapshot import with_squashes
from .plan import PlanStep, RollbackPlan
from .states import flatten, model_of, models_of, routed_here


def describe_step(
    migration: Migration,
    reverse_overrides: dict[str, overrides.ReverseOverride] | None = None,
    connection: BaseDatabaseWrapper | None = None,
) -> PlanStep:
    """The step that unapplies `migration`; with `connection`, described as it runs there (a
    step whose operations the routers all keep out of it only removes its record)."""
    step = PlanStep(
        app=migration.app_label,
        name=migration.name,
        operations=[f"Undo: {op.describe()}" for op in reversed(migration.operations)],
        atomic=migration.atomic,
    )
    if migration.replaces:
        step.notes.append(f"squashed migration: replaces {len(migration.replaces)} migrations")
    for operation in flatten(migration.operations):
        # Django's schema editor skips these models: their undo changes no table.
        if isinstance(operation, ops.CreateModel) and operation.options.get("proxy"):
            step.notes.append(f"{operation.name} is a proxy model: it has no table to drop")
        elif isinstance(operation, ops.CreateModel) and operation.options.get("managed") is False:
            step.notes.append(
                f"{operation.name} is not managed by Django (managed = False): its table or "
                "view is left as it is"
            )
    step.irreversible = overrides.irreversible_reasons(migration.operations)
    override = (reverse_overrides or {}).get(step.label)
    if step.irreversible and override is not None:
        step.override, step.irreversible = override, []
        step.notes.append(override.describe())
    if connection is not None and _routed_out(connection, migration):
        # Django asks the routers for each operation: none runs here, reverse code included
        # (django-tenants: a tenant app's step in the public schema).
        step.operations = []
        step.notes = [
            f"does nothing in this database: the routers keep {migration.app_label} out of "
            f"it (database '{connection.alias}'{_schema_of(connection)}); only its record is "
            "removed"
        ]
        return step
    _reverse_notes(step, migration)
    if not migration.atomic:
        step.notes.append("not atomic: runs outside a transaction")
    foreign = sorted(
        {type(op).__name__ for op in migration.operations if models_of(step.app, op) is None}
    )
    if foreign:
        step.notes.append(
            f"{', '.join(foreign)}: not one of Django's operations, so this step gets the "
            "whole project state rendered, as in Django"
        )
    return step


def _reverse_notes(step: PlanStep, migration: Migration) -> None:
    """What undoing each reversible operation does to the data."""
    for operation in flatten(migration.operations):
        if not operation.reversible:
            continue  # named in step.irreversible above, or run by the override
        if isinstance(operation, ops.RunPython) and operation.reverse_code is ops.RunPython.noop:
            step.notes.append("runs a data migration whose reverse code does nothing")
        elif isinstance(operation, ops.RunPython):
            step.runs_reverse_code = True
            step.notes.append(
                "runs the reverse code of a data migration: rows it deletes or changes "
                "are not archived"
            )
        elif isinstance(operation, ops.RunSQL):
            step.runs_reverse_code = True
            step.notes.append("runs reverse SQL: rows it deletes or changes are not archived")
        elif isinstance(operation, ops.RemoveField):
            step.notes.append(
                f"re-adds {operation.model_name}.{operation.name}; its old values are not restored"
            )
        elif isinstance(operation, ops.DeleteModel):
            step.notes.append(f"re-creates {operation.name} empty; its old rows are not restored")


def _routed_out(connection: BaseDatabaseWrapper, migration: Migration) -> bool:
    operations = flatten(migration.operations)
    return bool(operations) and not any(
        routed_here(connection, migration.app_label, model_of(op)) for op in operations
    )


def _schema_of(connection: BaseDatabaseWrapper) -> str:
    schema = getattr(connection, "schema_name", None)  # django-tenants
    return f", schema {schema}" if schema else ""


def plan_warnings(
    plan: RollbackPlan,
    connection: BaseDatabaseWrapper,
    ordered: list[Migration],
    recorded: frozenset[MigrationKey],
    squashes: dict[MigrationKey, frozenset[MigrationKey]],
) -> list[str]:
    # What the archive keeps is said apart (plan.kept): only what is lost is a warning.
    warnings = [
        f"{step.label}: {loss.describe()}" for step, loss in plan.data_loss if not loss.archived
    ]
    warnings += [
        f"{step.label}: its reverse code runs; the rows it deletes or changes are not archived."
        for step in plan.steps
        if step.runs_reverse_code
    ]
    if plan.steps and not plan.all_or_nothing:
        if not connection.features.can_rollback_ddl:
            warnings.append(
                f"Not all or nothing: {connection.display_name} cannot roll back schema changes "
                "(DDL is not transactional), so the steps run one by one and each is committed "
                "as it ends. If a step fails, the steps before it stay unapplied, that step may "
                "be half done, and the saved states are not changed; the error and the rollback "
                "log name the step. Fix the cause (finish or undo that step's changes by hand if "
                "needed) and run the same rollback again: it continues from what is applied."
            )
        else:
            non_atomic = [f"{m.app_label}.{m.name}" for m in ordered if not m.atomic]
            warnings.append(
                f"Not all or nothing: {', '.join(non_atomic)} cannot run inside a transaction, "
                "so each step runs in its own; a failure stops the rollback part way."
            )
    # A squash counts as what it replaces (its row alone is no drift).
    drift = with_squashes(recorded, squashes) ^ with_squashes(plan.current.migration_set, squashes)
    if drift:
        warnings.append(
            f"The database does not match the saved state of the current commit "
            f"({len(drift)} migrations differ); the plan starts from what is applied now."
        )
    return warnings
