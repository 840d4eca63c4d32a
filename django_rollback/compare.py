"""Compare two saved states: per app, the migrations applied in one and not the other, and
the tables and columns that those migrations create, drop, rename or alter, in both
directions. Nothing is written; only the migration files are read (no database schema).

The changes are derived from the migrations' operations, replayed in the graph's forward
order on a ProjectState (as Django builds the state for makemigrations): an operation that
belongs to a migration of one side is described with the model state just before it, so a
column removed or renamed is named with the table it had then.

compare_states() is the service; comparison_lines() and comparison_document() present its
result for the command (text, --json) and the admin page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from django.db import DEFAULT_DB_ALIAS
from django.db.migrations import operations as ops
from django.db.migrations.exceptions import BadMigrationError, NodeNotFoundError
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.base import Operation
from django.db.migrations.operations.models import ModelOperation
from django.db.migrations.state import ModelState, ProjectState

from . import services
from .exceptions import RollbackError
from .models import MigrationKey, MigrationState, describe_commit
from .planning import GraphLoader

Action = Literal["create", "drop", "rename", "alter", "other"]


@dataclass(frozen=True)
class SchemaChange:
    """What one operation of a migration does to the schema."""

    migration: str  # the migration's name (its app is the AppDiff's)
    operation: str  # the operation's class: CreateModel, AddField, ...
    action: Action
    table: str | None = None  # None: no table (RunPython, RunSQL)
    column: str | None = None  # None: the table itself
    old: str | None = None  # the former table or column of a rename
    detail: str = ""  # Django's own description of the operation

    @property
    def text(self) -> str:
        target = f"{self.table}.{self.column}" if self.column else self.table
        kind = "column" if self.column else "table"
        if self.action == "create":
            return f"creates {kind} {target}"
        if self.action == "drop":
            return f"drops {kind} {target}"
        if self.action == "rename":
            return f"renames {kind} {self.old} to {target}"
        if self.action == "alter":
            # A table is altered by many kinds of operation (indexes, constraints, options):
            # Django's description says which.
            detail = f" ({self.detail})" if self.detail and not self.column else ""
            return f"alters {kind} {target}{detail}"
        return f"other: {self.detail}"  # RunPython, RunSQL: no table to name


@dataclass(frozen=True)
class Side:
    """What one state has in one app that the other lacks."""

    migrations: tuple[str, ...] = ()
    changes: tuple[SchemaChange, ...] = ()
    unknown: tuple[str, ...] = ()  # applied there, but no file on disk: changes unknown


@dataclass(frozen=True)
class AppDiff:
    app: str
    only_in_first: Side
    only_in_second: Side

    @property
    def sides(self) -> tuple[Side, Side]:
        return self.only_in_first, self.only_in_second


@dataclass(frozen=True)
class StateComparison:
    first: MigrationState
    second: MigrationState
    apps: tuple[AppDiff, ...] = field(default_factory=tuple)

    @property
    def identical(self) -> bool:
        return not self.apps

    def count(self, side: Literal["first", "second"]) -> int:
        return sum(len(getattr(app, f"only_in_{side}").migrations) for app in self.apps)


# --- the service ------------------------------------------------------------------------------


def compare_refs(
    ref1: str,
    ref2: str,
    *,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
) -> StateComparison:
    """The states that REF1 and REF2 name (a tag or a commit prefix, as -t and -c take them),
    compared."""
    first = services.resolve_state(ref1, repo_path=repo_path, database=database)
    second = services.resolve_state(ref2, repo_path=repo_path, database=database)
    return compare_states(first, second)


def compare_states(
    first: MigrationState, second: MigrationState, loader: MigrationLoader | None = None
) -> StateComparison:
    """Per app, the migrations of each state missing from the other, with their changes."""
    a, b = first.migration_set, second.migration_set
    if loader is None:
        try:
            # The files only, every migration kept apart (no squash replaces what it squashed):
            # a state records the squashed migrations by their own names.
            loader = GraphLoader(None, ignore_no_migrations=True, replace_migrations=False)
        except (NodeNotFoundError, BadMigrationError) as exc:
            raise RollbackError(f"Cannot load the migration files: {exc}") from None
    changes = _changes(loader, a ^ b)
    apps = tuple(
        AppDiff(app, _side(app, a - b, changes), _side(app, b - a, changes))
        for app in sorted({app for app, _ in a ^ b})
    )
    return StateComparison(first, second, apps)


def _side(
    app: str, keys: frozenset[MigrationKey], changes: dict[MigrationKey, list[SchemaChange]]
) -> Side:
    """`changes` has a key for every wanted migration in the graph, in forward order."""
    mine = sorted(key for key in keys if key[0] == app)
    order = {key: index for index, key in enumerate(changes)}
    known = sorted((key for key in mine if key in order), key=order.__getitem__)
    return Side(
        migrations=tuple(name for _, name in mine),
        changes=tuple(change for key in known for change in changes[key]),
        unknown=tuple(key[1] for key in mine if key not in order),
    )


def _changes(
    loader: MigrationLoader, wanted: frozenset[MigrationKey]
) -> dict[MigrationKey, list[SchemaChange]]:
    """The changes of each wanted migration on disk, keys in forward order."""
    graph = loader.graph
    found: dict[MigrationKey, list[SchemaChange]] = {}
    state = ProjectState(real_apps=loader.unmigrated_apps)
    for key in _forward_order(graph):
        migration = graph.nodes[key]
        mine = found.setdefault(key, []) if key in wanted else None
        # A squash beside the migrations it replaces: a state records both, and the
        # replaced ones carry the operations (replaying both would apply them twice).
        if any(old in graph.nodes for old in migration.replaces or ()):
            continue
        for operation in migration.operations:
            if mine is not None:
                mine += _describe(key[1], key[0], operation, state)
            operation.state_forwards(key[0], state)
    return found


def _forward_order(graph: MigrationGraph) -> list[MigrationKey]:
    """Every node, each after its dependencies (the order `migrate` would apply them)."""
    seen: dict[MigrationKey, None] = {}
    for leaf in sorted(graph.leaf_nodes()):
        for key in graph.forwards_plan(leaf):
            seen.setdefault(key, None)
    return list(seen)


def _describe(
    migration: str, app: str, operation: Operation, state: ProjectState
) -> list[SchemaChange]:
    """The change `operation` makes, named with the model states before it."""
    if isinstance(operation, ops.SeparateDatabaseAndState):
        return [
            change
            for inner in operation.database_operations
            for change in _describe(migration, app, inner, state)
        ]
    name, detail = type(operation).__name__, operation.describe()

    def made(
        action: Action, table: str | None, column: str | None = None, old: str | None = None
    ) -> list[SchemaChange]:
        return [SchemaChange(migration, name, action, table, column, old, detail)]

    if isinstance(operation, ops.CreateModel):
        created = ModelState(app, operation.name, list(operation.fields), dict(operation.options))
        return made("create", _table(created))
    if isinstance(operation, ops.DeleteModel):
        return made("drop", _table_of(state, app, operation.name_lower))
    if isinstance(operation, ops.RenameModel):
        old = _table_of(state, app, operation.old_name_lower)
        renamed = state.models.get((app, operation.old_name_lower))
        explicit = renamed is not None and renamed.options.get("db_table")
        new = old if explicit else f"{app}_{operation.new_name_lower}"
        return made("rename", new, old=old) if new != old else made("other", None)
    if isinstance(operation, ops.AlterModelTable):
        old = _table_of(state, app, operation.name_lower)
        return made("rename", operation.table or f"{app}_{operation.name_lower}", old=old)
    if isinstance(operation, ops.AddField | ops.AlterField):
        table = _table_of(state, app, operation.model_name_lower)
        action: Action = "create" if isinstance(operation, ops.AddField) else "alter"
        return made(action, *_column_or_join(table, operation.name, operation.field))
    if isinstance(operation, ops.RemoveField):
        table = _table_of(state, app, operation.model_name_lower)
        old_field = _field(state, app, operation.model_name_lower, operation.name)
        return made("drop", *_column_or_join(table, operation.name, old_field))
    if isinstance(operation, ops.RenameField):
        table = _table_of(state, app, operation.model_name_lower)
        old_field = _field(state, app, operation.model_name_lower, operation.old_name)
        old = _column(operation.old_name, old_field)
        explicit = old_field is not None and old_field.db_column
        new = old if explicit else _column(operation.new_name, old_field)
        return made("rename", table, new, old=old) if new != old else made("other", None)
    model_name = getattr(operation, "model_name_lower", None) or (
        getattr(operation, "name_lower", None) if isinstance(operation, ModelOperation) else None
    )
    if model_name:  # indexes, constraints, unique_together, options: the table is altered
        return made("alter", _table_of(state, app, model_name))
    return made("other", None)  # RunPython, RunSQL, extensions: no table to name


def _table(model: ModelState) -> str:
    return str(model.options.get("db_table") or f"{model.app_label}_{model.name_lower}")


def _table_of(state: ProjectState, app: str, model_name: str) -> str:
    model = state.models.get((app, model_name.lower()))
    return _table(model) if model is not None else f"{app}_{model_name.lower()}"


def _field(state: ProjectState, app: str, model_name: str, name: str) -> Any:
    model = state.models.get((app, model_name))
    return model.fields.get(name) if model is not None else None


def _column(name: str, model_field: Any) -> str:
    if model_field is None:
        return name
    if model_field.db_column:
        return str(model_field.db_column)
    # A foreign key's column is its attname: name_id.
    return f"{name}_id" if model_field.many_to_one or model_field.one_to_one else name


def _column_or_join(table: str, name: str, model_field: Any) -> tuple[str, str | None]:
    """(table, column); a many-to-many field is its join table: (join table, None)."""
    if model_field is not None and model_field.many_to_many:
        through = getattr(model_field.remote_field, "through", None)
        if through is None:  # the join table Django creates for the field
            return str(getattr(model_field, "db_table", None) or f"{table}_{name}"), None
    return table, _column(name, model_field)


# --- presenting ---------------------------------------------------------------------------------


def state_label(state: MigrationState) -> str:
    """How the comparison names a state: short commit and tags."""
    return f"{state.short_commit} {state.tags_display}"


def side_lines(side: Side, label: str) -> list[str]:
    """The lines of one direction in one app: what `label` has that the other lacks."""
    if not side.migrations:
        return [f"only in {label}: nothing"]
    lines = [f"only in {label}: {', '.join(side.migrations)}"]
    lines += [f"  {change.text} ({change.migration})" for change in side.changes]
    lines += [f"  {name}: no file on disk, its changes are unknown" for name in side.unknown]
    return lines


def summary(result: StateComparison) -> str:
    first, second = state_label(result.first), state_label(result.second)
    if result.identical:
        return f"{first} and {second} have the same migrations applied."
    apps, only_first = len(result.apps), result.count("first")
    return (
        f"{apps} app{' differs' if apps == 1 else 's differ'}: {only_first} "
        f"migration{'' if only_first == 1 else 's'} only in {first}, "
        f"{result.count('second')} only in {second}."
    )


def comparison_lines(result: StateComparison) -> list[str]:
    """The text of `rollback_migrations --diff` (the admin page shows the same lines per app)."""
    first, second = state_label(result.first), state_label(result.second)
    lines = [f"Comparing {describe_commit(result.first.commit, result.first.tags)}"]
    lines.append(f"     with {describe_commit(result.second.commit, result.second.tags)}")
    for app in result.apps:
        lines.append(f"{app.app}:")
        lines += ["  " + line for line in side_lines(app.only_in_first, first)]
        lines += ["  " + line for line in side_lines(app.only_in_second, second)]
    lines.append(summary(result))
    return lines


def _state_document(state: MigrationState) -> dict[str, Any]:
    return {"id": state.pk, "commit": state.commit, "tags": list(state.tags)}


def _side_document(side: Side) -> dict[str, Any]:
    return {
        "migrations": list(side.migrations),
        "changes": [
            {
                "migration": c.migration,
                "operation": c.operation,
                "action": c.action,
                "table": c.table,
                "column": c.column,
                "old": c.old,
                "text": c.text,
            }
            for c in side.changes
        ],
        "unknown": list(side.unknown),
    }


def comparison_document(result: StateComparison) -> dict[str, Any]:
    """The JSON of `rollback_migrations --diff --json`: per app, the two directions apart."""
    return {
        "first": _state_document(result.first),
        "second": _state_document(result.second),
        "identical": result.identical,
        "apps": {
            app.app: {
                "only_in_first": _side_document(app.only_in_first),
                "only_in_second": _side_document(app.only_in_second),
            }
            for app in result.apps
        },
        "summary": summary(result),
    }
