"""The blast radius of a plan: which tables each step locks and how, whether it rewrites a
table or builds an index, and how big those tables are.

Sizes come from the catalog (PostgreSQL's planner estimate, MySQL's information_schema) and
are counted exactly only up to DJANGO_ROLLBACK["ESTIMATE_ROWS_ABOVE"] rows: a preview must
never scan a table of tens of millions of rows. SQLite has no estimates and is counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations import operations as ops
from django.db.migrations.state import ModelState, ProjectState
from django.db.migrations.utils import (  # type: ignore[attr-defined]  # (stubs: elsewhere)
    resolve_relation,
)
from django.db.models import UniqueConstraint

from .presenters.text import describe_size

# Lock strengths, weakest first; the names are PostgreSQL's, what the others take below.
SHARE, SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE = 1, 2, 3
MODE_NAMES = {
    "postgresql": {
        SHARE: "SHARE",
        SHARE_ROW_EXCLUSIVE: "SHARE ROW EXCLUSIVE",
        ACCESS_EXCLUSIVE: "ACCESS EXCLUSIVE",
    },
    # Metadata locks: an online index build lets writes go on; the rest is exclusive.
    "mysql": {SHARE: "SHARED", SHARE_ROW_EXCLUSIVE: "SHARED", ACCESS_EXCLUSIVE: "EXCLUSIVE"},
}
SQLITE_MODE = "EXCLUSIVE (whole database)"  # SQLite locks the database file, not tables
SAMPLE_ROWS = 100_000  # rows read to estimate a column of a big table without statistics


@dataclass(frozen=True)
class TableLock:
    """What one step does to one table, and the lock it takes for it."""

    table: str
    mode: str
    actions: tuple[str, ...]
    rewrites: bool = False
    builds_index: bool = False

    def describe(self) -> str:
        what = "; ".join(self.actions)
        extra = [
            text
            for flag, text in (
                (self.rewrites, "rewrites it"),
                (self.builds_index, "builds an index"),
            )
            if flag
        ]
        return f'"{self.table}" {self.mode}: {", ".join([what, *extra])}'

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "mode": self.mode,
            "actions": list(self.actions),
            "rewrites": self.rewrites,
            "builds_index": self.builds_index,
        }


@dataclass(frozen=True)
class TableSize:
    rows: int | None  # None: the table does not exist (yet)
    bytes: int | None  # None: the backend cannot say
    estimated: bool = False  # rows is the catalog's estimate, not a count

    def describe(self) -> str:
        if self.rows is None:
            return "not in the database"
        rows = f"{'≈ ' if self.estimated else ''}{self.rows:,} rows"
        return rows if self.bytes is None else f"{rows}, {describe_size(self.bytes, largest='TB')}"

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "bytes": self.bytes, "estimated": self.estimated}


class StepLocks:
    """The locks of one step, merged per table (the strongest mode wins)."""

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        self.tables: dict[str, dict[str, Any]] = {}

    def add(
        self, table: str, strength: int, action: str, *, rewrites: bool = False, index: bool = False
    ) -> None:
        entry = self.tables.setdefault(
            table, {"strength": 0, "actions": [], "rewrites": False, "index": False}
        )
        entry["strength"] = max(entry["strength"], strength)
        if action not in entry["actions"]:
            entry["actions"].append(action)
        entry["rewrites"] |= rewrites
        entry["index"] |= index

    def result(self) -> list[TableLock]:
        return [
            TableLock(
                table,
                SQLITE_MODE
                if self.vendor == "sqlite"
                else MODE_NAMES.get(self.vendor, MODE_NAMES["postgresql"])[entry["strength"]],
                tuple(entry["actions"]),
                entry["rewrites"],
                entry["index"],
            )
            for table, entry in self.tables.items()
        ]


def undo_locks(
    connection: BaseDatabaseWrapper,
    app: str,
    operation: ops.base.Operation,
    before: ProjectState,
    after: ProjectState,
    locks: StepLocks,
    table_name: Any,
) -> None:
    """Record what undoing `operation` does to tables: `before`/`after` are the states around
    the operation run forwards (the undo goes from `after` back to `before`)."""
    u = _Undo(connection, app, before, after, locks, table_name)
    touched = getattr(operation, "model_name_lower", None) or getattr(operation, "name_lower", None)
    if touched is not None and any(
        (found := u.model(state, touched)) is not None and not has_own_table(found)
        for state in (before, after)
    ):
        return  # Django's schema editor skips the model: nothing is locked, nothing dropped
    _table_and_column_locks(u, operation)
    _alter_locks(u, operation)
    _index_and_name_locks(u, operation)


@dataclass
class _Undo:
    """What undoing one operation needs to know to name the tables it locks."""

    connection: BaseDatabaseWrapper
    app: str
    before: ProjectState
    after: ProjectState
    locks: StepLocks
    table_name: Any

    def model(self, state: ProjectState, name: str) -> ModelState | None:
        return state.models.get((self.app, name))

    def fk_targets(self, state: ProjectState, model_state: ModelState, fields: Any) -> set[str]:
        out = set()
        for field in fields:
            remote = getattr(field, "remote_field", None)
            if remote is None or getattr(field, "many_to_many", False):
                continue
            if not getattr(field, "db_constraint", True):
                continue  # no constraint: the target's table is not touched
            key = resolve_relation(remote.model, self.app, model_state.name_lower)
            target = state.models.get(key)
            if target is not None:
                out.add(self.table_name(target))
        return out


def _table_and_column_locks(u: _Undo, operation: ops.base.Operation) -> None:
    """Tables created or deleted, columns added or removed."""
    ae, sre = ACCESS_EXCLUSIVE, SHARE_ROW_EXCLUSIVE
    if isinstance(operation, ops.CreateModel):
        created = u.model(u.after, operation.name_lower)
        if created is not None:
            u.locks.add(u.table_name(created), ae, "drops the table")
            for target in u.fk_targets(u.after, created, created.fields.values()):
                u.locks.add(target, ae, "drops a foreign key to it")
    elif isinstance(operation, ops.DeleteModel):
        deleted = u.model(u.before, operation.name_lower)
        if deleted is not None:
            u.locks.add(u.table_name(deleted), ae, "re-creates the table (empty)")
            for target in u.fk_targets(u.before, deleted, deleted.fields.values()):
                u.locks.add(target, sre, "adds a foreign key to it")
    elif isinstance(operation, ops.AddField):
        changed = u.model(u.after, operation.model_name_lower)
        if changed is not None:
            u.locks.add(u.table_name(changed), ae, f"drops column {operation.name}")
            for target in u.fk_targets(u.after, changed, [operation.field]):
                u.locks.add(target, ae, "drops a foreign key to it")
    elif isinstance(operation, ops.RemoveField):
        changed = u.model(u.before, operation.model_name_lower)
        if changed is not None:
            field = changed.fields.get(operation.name_lower) or changed.fields.get(operation.name)
            # Re-adding a NOT NULL column with a default rewrites SQLite's table (Django
            # remakes it); PostgreSQL 11+ and MySQL 8 add it in place.
            rewrites = u.connection.vendor == "sqlite" and field is not None and not field.null
            u.locks.add(
                u.table_name(changed), ae, f"re-adds column {operation.name}", rewrites=rewrites
            )
            if field is not None:
                for target in u.fk_targets(u.before, changed, [field]):
                    u.locks.add(target, sre, "adds a foreign key to it")


def _alter_locks(u: _Undo, operation: ops.base.Operation) -> None:
    """Columns altered or renamed."""
    ae = ACCESS_EXCLUSIVE
    if isinstance(operation, ops.AlterField):
        old, new = (
            u.model(u.before, operation.model_name_lower),
            u.model(u.after, operation.model_name_lower),
        )
        if old is not None and new is not None:
            rewrites = u.connection.vendor == "sqlite" or _type_changes(
                u.connection,
                old.fields.get(operation.name_lower),
                new.fields.get(operation.name_lower),
            )
            u.locks.add(u.table_name(new), ae, f"alters column {operation.name}", rewrites=rewrites)
    elif isinstance(operation, ops.RenameField):
        changed = u.model(u.after, operation.model_name_lower)
        if changed is not None:
            u.locks.add(u.table_name(changed), ae, f"renames column {operation.new_name}")


def _index_and_name_locks(u: _Undo, operation: ops.base.Operation) -> None:
    """Table names and comments, indexes and constraints."""
    ae = ACCESS_EXCLUSIVE
    if isinstance(operation, ops.AlterModelTable | ops.AlterModelTableComment):
        changed = u.model(u.after, operation.name_lower)
        if changed is not None:
            u.locks.add(u.table_name(changed), ae, "renames or re-labels the table")
    elif isinstance(operation, ops.RenameModel):
        renamed = u.model(u.after, operation.new_name_lower)
        if renamed is not None:
            u.locks.add(u.table_name(renamed), ae, "renames the table")
    elif isinstance(operation, ops.AddIndex | ops.AddConstraint):
        changed = u.model(u.after, operation.model_name_lower)
        if changed is not None:
            kind = "an index" if isinstance(operation, ops.AddIndex) else "a constraint"
            u.locks.add(u.table_name(changed), ae, f"drops {kind}")
    elif isinstance(operation, ops.RemoveIndex):
        changed = u.model(u.before, operation.model_name_lower)
        if changed is not None:
            u.locks.add(u.table_name(changed), SHARE, "re-creates an index", index=True)
    elif isinstance(operation, ops.RemoveConstraint):
        changed = u.model(u.before, operation.model_name_lower)
        if changed is not None:
            constraint = next(
                (
                    c
                    for c in changed.options.get("constraints", [])
                    if c.name == getattr(operation, "name", None)
                ),
                None,
            )
            unique = isinstance(constraint, UniqueConstraint)
            action = "re-adds a constraint" + ("" if unique else " (checks every row)")
            u.locks.add(u.table_name(changed), ae, action, index=unique)
    elif isinstance(operation, ops.AlterUniqueTogether | ops.AlterIndexTogether):
        changed = u.model(u.after, operation.name_lower)
        if changed is not None:
            u.locks.add(u.table_name(changed), ae, "changes indexes", index=True)


def has_own_table(model: ModelState) -> bool:
    """Whether Django's migrations create and drop a table for the model: not for a proxy
    nor for an unmanaged model (over a view, or a table that something else owns), which
    the schema editor skips (Options.can_migrate)."""
    return not model.options.get("proxy") and model.options.get("managed", True) is not False


def _type_changes(connection: BaseDatabaseWrapper, old: Any, new: Any) -> bool:
    if old is None or new is None:
        return False
    try:
        return bool(old.db_type(connection) != new.db_type(connection))
    except Exception:  # a relation's type needs its target model: compare the classes
        return type(old) is not type(new)


class Sizer:
    """Table sizes and column counts, estimated from the catalog above the threshold."""

    def __init__(self, connection: BaseDatabaseWrapper, *, exact: bool, threshold: int) -> None:
        self.connection = connection
        self.exact = exact
        self.threshold = threshold
        self.sizes: dict[str, TableSize] = {}
        self._existing = set(connection.introspection.table_names())

    def table(self, table: str) -> TableSize:
        if table not in self.sizes:
            self.sizes[table] = self._measure(table)
        return self.sizes[table]

    def column(self, table: str, column: str) -> tuple[int | None, bool]:
        """Non-null values of the column, and whether that is an estimate."""
        size = self.table(table)
        if size.rows is None:
            return None, False
        if not size.estimated:
            return self._count(table, column), False
        return self._estimate_column(table, column, size.rows), True

    def _measure(self, table: str) -> TableSize:
        if table not in self._existing:
            return TableSize(None, None)
        estimate, size = self._catalog(table)
        if not self.exact and estimate is not None and estimate > self.threshold:
            return TableSize(estimate, size, estimated=True)
        return TableSize(self._count(table), size)

    def _query(self, sql: str, params: list[Any] | None = None) -> Any:
        try:
            with (
                transaction.atomic(using=self.connection.alias),
                self.connection.cursor() as cursor,
            ):
                cursor.execute(sql, params)
                return cursor.fetchone()
        except DatabaseError:
            return None

    def _count(self, table: str, column: str | None = None) -> int | None:
        quote = self.connection.ops.quote_name
        counted = "*" if column is None else quote(column)
        row = self._query(f"SELECT COUNT({counted}) FROM {quote(table)}")
        return None if row is None else int(row[0])

    def _catalog(self, table: str) -> tuple[int | None, int | None]:
        """(estimated rows, bytes with indexes) from the catalog; None where unknown."""
        vendor = self.connection.vendor
        if vendor == "postgresql":
            # The planner's estimate scales the last ANALYZE by the table's current size, so
            # it is right even for a table that was never analyzed (reltuples = -1).
            plan = self._query(
                f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {self.connection.ops.quote_name(table)}"
            )
            size = self._query(
                "SELECT pg_total_relation_size(to_regclass(%s))",
                [self.connection.ops.quote_name(table)],
            )
            rows = None
            if plan is not None:
                document = json.loads(plan[0]) if isinstance(plan[0], str) else plan[0]
                rows = int(document[0]["Plan"]["Plan Rows"])
            return rows, None if size is None or size[0] is None else int(size[0])
        if vendor == "mysql":
            row = self._query(
                "SELECT table_rows, data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                [table],
            )
            if row is None:
                return None, None
            return (None if row[0] is None else int(row[0])), (
                None if row[1] is None else int(row[1])
            )
        row = self._query("SELECT SUM(pgsize) FROM dbstat WHERE name = %s", [table])
        return None, None if row is None or row[0] is None else int(row[0])

    def _estimate_column(self, table: str, column: str, rows: int) -> int | None:
        """Non-null values of a column of a big table: PostgreSQL's statistics when ANALYZE
        has seen the column, else the share of non-null values in a small sample."""
        if self.connection.vendor == "postgresql":
            row = self._query(
                "SELECT null_frac FROM pg_stats WHERE schemaname = current_schema() "
                "AND tablename = %s AND attname = %s",
                [table, column],
            )
            if row is not None and row[0] is not None:
                return round(rows * (1 - float(row[0])))
        quote = self.connection.ops.quote_name
        if self.connection.vendor == "postgresql":
            # About SAMPLE_ROWS rows from randomly chosen pages: a few milliseconds.
            percent = min(100.0, 100.0 * SAMPLE_ROWS / max(rows, 1))
            sample = f"{quote(table)} TABLESAMPLE SYSTEM ({percent:f})"
        else:  # the first rows: cheap, if not random
            sample = f"(SELECT {quote(column)} FROM {quote(table)} LIMIT {SAMPLE_ROWS}) AS sample"
        row = self._query(f"SELECT COUNT(*), COUNT({quote(column)}) FROM {sample}")
        if row is None:
            return None
        seen, filled = int(row[0]), int(row[1])
        return round(rows * filled / seen) if seen else None
