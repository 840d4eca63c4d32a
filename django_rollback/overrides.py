"""Reviewed reverse overrides: DJANGO_ROLLBACK["REVERSE"].

A migration whose operations cannot be reversed (a RunPython without reverse_code, a RunSQL
without reverse_sql, ...) blocks every rollback through it. Often it is a third-party app's,
and the team has reviewed that undoing it needs nothing, or a known function or SQL. The
setting names the migration and what its irreversible operations do backwards:

    DJANGO_ROLLBACK = {"REVERSE": {
        "oauth.0007_fill_tokens": "noop",
        "audit.0003_backfill": "myproject.rollback.unbackfill",  # (apps, schema_editor)
        "legacy.0002_trigger": {"sql": "DROP TRIGGER legacy_audit ON legacy_event"},
    }}

The plan no longer counts those operations as blockers, and running the step runs the
override in their place (each wrapped so that the project state still moves as the
original operation says).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.migrations import operations as ops
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation
from django.utils.module_loading import import_string

from . import conf

NOOP = "noop"


@dataclass(frozen=True)
class ReverseOverride:
    """One entry of the setting: kind is "noop", "function" or "sql"."""

    migration: str  # "app_label.migration_name"
    kind: str
    value: str = ""

    def describe(self) -> str:
        """How the preview and the audit log name it."""
        if self.kind == NOOP:
            return "reverse from settings: no-op"
        if self.kind == "function":
            return f"reverse from settings: {self.value}()"
        return f"reverse from settings: SQL {self.value!r}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "value": self.value}

    def reverse_operation(self) -> Operation:
        """An operation whose backwards run does what the override says."""
        if self.kind == NOOP:
            return ops.RunPython(ops.RunPython.noop, ops.RunPython.noop)
        if self.kind == "function":
            return ops.RunPython(ops.RunPython.noop, import_string(self.value))
        return ops.RunSQL(ops.RunSQL.noop, self.value)


def configured() -> dict[str, Any]:
    value = conf.get_setting("REVERSE") or {}
    if not isinstance(value, dict):
        raise ImproperlyConfigured('DJANGO_ROLLBACK["REVERSE"] must be a dict.')
    return value


def parse(migration: str, value: Any) -> ReverseOverride:
    """The override for one entry; ImproperlyConfigured with the reason when it is not one."""
    if value == NOOP:
        return ReverseOverride(migration, NOOP)
    if isinstance(value, dict) and set(value) == {"sql"} and isinstance(value["sql"], str):
        return ReverseOverride(migration, "sql", value["sql"])
    if isinstance(value, str) and "." in value:
        try:
            function = import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"{value!r} cannot be imported ({exc})") from None
        if not callable(function):
            raise ImproperlyConfigured(f"{value!r} is not a function")
        return ReverseOverride(migration, "function", value)
    raise ImproperlyConfigured(
        f'{value!r} is not "noop", a dotted path to a function (apps, schema_editor) '
        'or {"sql": "..."}'
    )


def irreversible_reasons(operations: Sequence[Operation]) -> list[str]:
    """Why each irreversible operation (inside SeparateDatabaseAndState too) is one."""
    reasons: list[str] = []
    for operation in operations:
        if isinstance(operation, ops.SeparateDatabaseAndState):
            reasons += irreversible_reasons(operation.database_operations)
        elif not operation.reversible:
            if isinstance(operation, ops.RunPython):
                reasons.append("RunPython without reverse_code")
            elif isinstance(operation, ops.RunSQL):
                reasons.append("RunSQL without reverse_sql")
            else:
                reasons.append(f"{type(operation).__name__} is not reversible")
    return reasons


class OverriddenOperation(ops.SeparateDatabaseAndState):
    """An irreversible operation with its reverse taken from the settings: the project state
    moves as the original says, the database backwards runs the override."""

    def __init__(self, original: Operation, override: ReverseOverride) -> None:
        super().__init__(
            database_operations=[override.reverse_operation()], state_operations=[original]
        )
        self.original = original
        self.override = override

    @property
    def reduces_to_sql(self) -> bool:  # type: ignore[override]
        # Never run Python while only collecting SQL.
        return self.override.kind != "function"

    def describe(self) -> str:
        return f"{self.original.describe()} ({self.override.describe()})"


def _replace_irreversible(
    operations: Sequence[Operation], override: ReverseOverride
) -> list[Operation]:
    out: list[Operation] = []
    for operation in operations:
        if isinstance(operation, ops.SeparateDatabaseAndState) and irreversible_reasons(
            operation.database_operations
        ):
            inner = copy.copy(operation)
            inner.database_operations = _replace_irreversible(
                operation.database_operations, override
            )
            out.append(inner)
        elif not isinstance(operation, ops.SeparateDatabaseAndState) and not operation.reversible:
            out.append(OverriddenOperation(operation, override))
        else:
            out.append(operation)
    return out


def with_override(migration: Migration, override: ReverseOverride) -> Migration:
    """A copy of the migration whose irreversible operations run the override backwards;
    same app, name and `replaces`, so the executor records it exactly as the original."""
    overridden = copy.copy(migration)
    # An attribute of this copy only; the class and the loaded migration keep theirs.
    overridden.operations = _replace_irreversible(migration.operations, override)  # type: ignore[misc]
    return overridden
