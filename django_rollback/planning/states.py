"""Project states before each step (walked once, copy on write) and the table names
and routing the measurements need."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import truncate_name
from django.db.migrations import operations as ops
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.operations.fields import FieldOperation
from django.db.migrations.operations.models import IndexOperation, ModelOperation
from django.db.migrations.state import ModelState, ProjectState

from ..lazy_state import LazyProjectState, ModelKey, field_targets, references
from ..models import MigrationKey


def flatten(operations: Sequence[ops.base.Operation]) -> list[ops.base.Operation]:
    out: list[ops.base.Operation] = []
    for operation in operations:
        if isinstance(operation, ops.SeparateDatabaseAndState):
            out.extend(flatten(operation.database_operations))
        else:
            out.append(operation)
    return out


def states_before(
    loader: MigrationLoader,
    full_plan: list[tuple[Migration, bool]],
    applied_nodes: set[MigrationKey],
    wanted: list[Migration],
) -> dict[MigrationKey, ProjectState]:
    """Walk the applied migrations forwards once on an unrendered state, as Django's
    backwards run does, and keep what each step needs. Django renders the state at the
    first step and then mutates the rendered state, which re-renders every related model
    at every later migration: with thousands of migrations and a model that everything
    points at (the user model), that walk is most of the time of a rollback.

    Data steps keep the whole state, shared with the walk rather than copied: from then on
    the walk clones a model state before a migration changes it (copy on write)."""
    remaining = {(m.app_label, m.name) for m in wanted}
    states: dict[MigrationKey, ProjectState] = {}
    state = ProjectState(real_apps=loader.unmigrated_apps)
    owned: set[ModelKey] | None = None  # model states not shared with a kept state; None: all
    for migration, _ in full_plan:
        if not remaining:
            break
        key = (migration.app_label, migration.name)
        if key not in applied_nodes:
            continue
        if key in remaining:
            remaining.discard(key)
            states[key] = state_for_step(state, migration)
            if isinstance(states[key], LazyProjectState):
                owned = set()
        if owned is not None:
            changed = changed_models(migration)
            if changed is None:  # RenameModel or an unknown operation: may change any model
                changed = set(state.models)
            for model_key in changed - owned:
                if model_key in state.models:
                    state.models[model_key] = state.models[model_key].clone()
            owned |= changed
        migration.mutate_state(state, preserve=False)
    return states


def changed_models(migration: Migration) -> set[ModelKey] | None:
    """The model states that the migration's operations change in place; None: any."""
    changed: set[ModelKey] = set()
    for operation in migration.operations:
        if isinstance(operation, ops.RenameModel):
            return None  # also repoints the fields of every model pointing at it
        models = models_of(migration.app_label, operation)
        if models is None:
            return None
        changed |= models[0]
    return changed


def has_code(operations: Sequence[ops.base.Operation]) -> bool:
    return any(isinstance(operation, ops.RunPython) for operation in flatten(operations))


def state_for_step(state: ProjectState, migration: Migration) -> ProjectState:
    """A copy of `state` with what unapplying `migration` can touch: the models its
    operations change, the models that point at those, and everything these point at or
    inherit from (rendering needs the targets of every relation). Rendering a few models
    instead of the whole project is what makes each step cheap. RunSQL needs no model.
    RunPython code may ask for any model: it gets the whole state with a registry that
    renders a model when the code asks for it (LazyProjectState). Operations from outside
    Django may do anything: they get the whole state, rendered in full as in Django."""
    changed: set[ModelKey] = set()
    needed: set[ModelKey] = set()
    for operation in migration.operations:
        models = models_of(migration.app_label, operation)
        if models is None:
            return state.clone()
        changed |= models[0]
        needed |= models[1]
    if has_code(migration.operations):
        return LazyProjectState(
            dict(state.models),
            state.real_apps,
            None if changed_models(migration) is None else changed,
        )
    # Models pointing at a changed one (their foreign keys may be altered with it); not
    # those pointing at a mere target, or every step would need everything that points
    # at the user model.
    needed |= changed
    for key, model in state.models.items():
        if key not in needed and references(key, model) & changed:
            needed.add(key)
    frontier = list(needed)
    while frontier:
        model = state.models.get(frontier.pop())
        if model is None:
            continue
        for target in references((model.app_label, model.name_lower), model) - needed:
            needed.add(target)
            frontier.append(target)
    return ProjectState(
        models={key: state.models[key].clone() for key in needed if key in state.models},
        real_apps=state.real_apps,
    )


def models_of(
    app: str, operation: ops.base.Operation
) -> tuple[set[ModelKey], set[ModelKey]] | None:
    """The models an operation of Django's changes, and the models that the fields it
    adds point at; None when it is not one of Django's operations. Data operations
    change no model (RunSQL: unless its state_operations do)."""
    if not type(operation).__module__.startswith("django.db.migrations.operations."):
        return None
    if isinstance(operation, ops.RunPython):
        return set(), set()
    if isinstance(operation, (ops.RunSQL, ops.SeparateDatabaseAndState)):
        inner = list(operation.state_operations)
        if isinstance(operation, ops.SeparateDatabaseAndState):
            inner += operation.database_operations
        changed: set[ModelKey] = set()
        needed: set[ModelKey] = set()
        for each in inner:
            models = models_of(app, each)
            if models is None:
                return None
            changed |= models[0]
            needed |= models[1]
        return changed, needed
    if isinstance(operation, ops.CreateModel):
        key = (app, operation.name_lower)
        fields = [f for _, f in operation.fields]
        return {key}, field_targets(key, fields, operation.bases or ())
    if isinstance(operation, ops.RenameModel):
        return {(app, operation.old_name_lower), (app, operation.new_name_lower)}, set()
    if isinstance(operation, ModelOperation):
        return {(app, operation.name_lower)}, set()
    if isinstance(operation, FieldOperation):
        key = (app, operation.model_name_lower)
        added = getattr(operation, "field", None)
        return {key}, field_targets(key, [added]) if added is not None else set()
    if isinstance(operation, IndexOperation):  # indexes and constraints
        return {(app, operation.model_name_lower)}, set()
    return None


NEEDS_BEFORE = (
    ops.DeleteModel,
    ops.RemoveField,
    ops.AlterField,
    ops.RemoveIndex,
    ops.RemoveConstraint,
)


def state_before(state: ProjectState, app: str, operation: ops.base.Operation) -> ProjectState:
    """What undo_locks needs of the state before `operation`: a copy of the one model it
    changes (the others are shared: it does not touch them); cloning the whole state for
    every operation would cost as much as the plan itself on a big project."""
    if not isinstance(operation, NEEDS_BEFORE):
        return state
    models = dict(state.models)
    key = (app, model_of(operation) or "")
    if key in models:
        models[key] = models[key].clone()
    return ProjectState(models=models, real_apps=state.real_apps)


def model_of(operation: ops.base.Operation) -> str | None:
    return getattr(operation, "model_name_lower", None) or getattr(operation, "name_lower", None)


def routed_here(connection: BaseDatabaseWrapper, app_label: str, model_name: str | None) -> bool:
    """Whether the routers let this model into this database (else its steps do nothing)."""
    return bool(router.allow_migrate(connection.alias, app_label, model_name=model_name))


def table_name(model_state: ModelState, max_length: int | None) -> str:
    return model_state.options.get("db_table") or truncate_name(
        f"{model_state.app_label}_{model_state.name_lower}", max_length
    )
