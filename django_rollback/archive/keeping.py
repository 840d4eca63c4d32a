"""Keeping, while a rollback runs: the schema editor that archives what a step drops."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.ddl_references import Statement
from django.db.backends.utils import truncate_name

from ..lock_waits import WriteCounter
from ..models import RollbackLog
from .items import ArchiveItem
from .names import (
    PG_SCHEMA,
    TABLE_PREFIX,
    column_types,
    item_table,
    pg_dependents,
    pg_foreign_keys,
    pg_schema,
    qualified,
    table_size,
)


class Archiver:
    """Keeps what the steps of one rollback drop; one per rollback."""

    def __init__(self, connection: BaseDatabaseWrapper, log: RollbackLog) -> None:
        self.connection = connection
        self.log = log
        self.items: list[ArchiveItem] = []
        self.step = ""
        self._schema_ready = False
        # What this attempt wrote only into the archive (copies, not moves): a lock timeout
        # after them changed nothing that discard() cannot take back.
        self.copy_writes = WriteCounter()
        self._copies: list[tuple[str | None, str]] = []

    @property
    def moves_tables(self) -> bool:
        return self.connection.vendor == "postgresql"

    @contextmanager
    def watching(self, step: str) -> Iterator[None]:
        """While unapplying `step`, every schema editor of the connection archives drops."""
        self.step = step
        real = type(self.connection).schema_editor
        archiver = self

        def schema_editor(*args: Any, **kwargs: Any) -> Any:
            editor = real(self.connection, *args, **kwargs)
            editor.__class__ = _archiving_class(type(editor))
            editor.archiver = archiver  # type: ignore[attr-defined]
            return editor

        self.connection.schema_editor = schema_editor  # type: ignore[method-assign]
        try:
            yield
        finally:
            del self.connection.schema_editor

    def document(self) -> dict[str, Any]:
        self._measure()
        return {
            "items": [item.as_dict() for item in self.items],
            "rows": sum(item.rows or 0 for item in self.items),
            "bytes": sum(item.bytes or 0 for item in self.items),
            "restored_at": None,
            "restored": None,
            "purged_at": None,
        }

    def _measure(self) -> None:
        """PostgreSQL: the sizes of the archived tables, all in one query when the document
        is made (the tables are in the archive by then: measured one by one, a table or
        column archived cost a round trip more)."""
        unmeasured = [i for i, item in enumerate(self.items) if item.bytes is None]
        if self.connection.vendor != "postgresql" or not unmeasured:
            return
        names = [item_table(self.connection, self.items[i]) for i in unmeasured]
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_total_relation_size(to_regclass(name)) FROM unnest(%s::text[]) "
                "WITH ORDINALITY AS t(name, number) ORDER BY number",
                [names],
            )
            sizes = [row[0] for row in cursor.fetchall()]
        for index, size in zip(unmeasured, sizes, strict=True):
            if size is not None:
                self.items[index] = dataclasses.replace(self.items[index], bytes=int(size))

    def discard(self) -> None:
        """Drop the copies this attempt made, before it is tried again."""
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:
            for schema, name in self._copies:
                table = f"{quote(schema)}.{quote(name)}" if schema else quote(name)
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
        self._copies.clear()
        self.items.clear()

    def _name(self, table: str) -> tuple[str | None, str]:
        if self.moves_tables:
            return pg_schema(self.connection), self._moved_name(table)
        return None, f"{TABLE_PREFIX}{self.log.pk}_{len(self.items) + 1}"

    def _moved_name(self, name: str) -> str:
        """The name in the archive schema of the next item's table, or of its index or
        sequence: unique per log entry and item, the end hashed when too long."""
        limit = self.connection.ops.max_name_length() or 63
        return truncate_name(f"log{self.log.pk}_{len(self.items) + 1}_{name}", limit)

    def keep_table(self, editor: Any, model: Any) -> bool:
        """Archive the table of `model`; True when it was moved (nothing left to drop)."""
        table = model._meta.db_table
        with self.connection.cursor() as cursor:
            pk = self.connection.introspection.get_primary_key_column(cursor, table)
        types = column_types(self.connection, table)
        schema, name = self._name(table)
        quote = self.connection.ops.quote_name
        if self.moves_tables:
            self._ensure_schema(editor)
            # Its own foreign keys, and those of other tables pointing at it (only tables this
            # rollback drops can), would tie the archive to rows the older release may delete.
            for owner, constraint in pg_foreign_keys(self.connection, table):
                editor.execute(f"ALTER TABLE {quote(owner)} DROP CONSTRAINT {quote(constraint)}")
            # SET SCHEMA takes the indexes (renaming one renames the constraint it backs)
            # and the owned sequences along under their names: the newer release re-creates
            # the same names, which the next archive of this table would meet there.
            for relation, kind in pg_dependents(self.connection, table):
                new = quote(self._moved_name(relation))
                editor.execute(f"ALTER {kind} {quote(relation)} RENAME TO {new}")
            editor.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(name)}")
            editor.execute(f"ALTER TABLE {quote(name)} SET SCHEMA {quote(schema or PG_SCHEMA)}")
            # What Django's delete_model does after its DROP: forget statements about it.
            for sql in list(editor.deferred_sql):
                if isinstance(sql, Statement) and sql.references_table(table):
                    editor.deferred_sql.remove(sql)
        else:
            # A copy has none of the indexes or constraints: no name but its own to clash.
            with self.connection.execute_wrapper(self.copy_writes):
                editor.execute(f"CREATE TABLE {quote(name)} AS SELECT * FROM {quote(table)}")
            self._copies.append((schema, name))
        self._record(table, None, pk, schema, name, types)
        return self.moves_tables

    def keep_column(self, editor: Any, model: Any, column: str) -> None:
        table = model._meta.db_table
        pk = model._meta.pk.column
        types = column_types(self.connection, table)
        types = {name: kind for name, kind in types.items() if name in (pk, column)}
        schema, name = self._name(table)
        quote = self.connection.ops.quote_name
        with self.connection.execute_wrapper(self.copy_writes):
            if schema:
                self._ensure_schema(editor)
            with self.connection.cursor() as cursor:
                # Straight through the cursor, not editor.execute(): PostgreSQL and MySQL tell
                # how many rows were copied, which saves counting them again.
                cursor.execute(
                    f"CREATE TABLE {qualified(self.connection, schema, name)} AS "
                    f"SELECT {quote(pk)}, {quote(column)} FROM {quote(table)}"
                )
                copied = cursor.rowcount if self.connection.vendor != "sqlite" else -1
        self._copies.append((schema, name))
        self._record(table, column, pk, schema, name, types, rows=copied if copied >= 0 else None)

    def _ensure_schema(self, editor: Any) -> None:
        if not self._schema_ready:
            editor.execute(
                "CREATE SCHEMA IF NOT EXISTS "
                + self.connection.ops.quote_name(pg_schema(self.connection))
            )
            self._schema_ready = True

    def _record(
        self,
        table: str,
        column: str | None,
        pk: str | None,
        schema: str | None,
        name: str,
        types: dict[str, str],
        rows: int | None = None,
    ) -> None:
        if rows is None:
            with self.connection.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM {qualified(self.connection, schema, name)}")
                rows = int(cursor.fetchone()[0])
        self.items.append(
            ArchiveItem(
                table=table,
                column=column,
                pk=pk,
                archive_schema=schema,
                archive_table=name,
                types=types,
                rows=rows,
                # PostgreSQL: measured with the others by document().
                bytes=None if self.moves_tables else table_size(self.connection, schema, name),
                step=self.step,
            )
        )


_CLASSES: dict[type, type] = {}


def _archiving_class(editor_class: type) -> type:
    """The backend's schema editor, with drops turned into archiving."""
    if editor_class not in _CLASSES:
        _CLASSES[editor_class] = type(
            f"Archiving{editor_class.__name__}", (_ArchivingEditor, editor_class), {}
        )
    return _CLASSES[editor_class]


class _ArchivingEditor:
    archiver: Archiver

    def delete_model(self, model: Any, *args: Any, **kwargs: Any) -> None:
        # SQLite's editor drops the old copy of a table it rebuilds with
        # handle_autom2m=False: that is no drop of data.
        rebuilding = not kwargs.get("handle_autom2m", args[0] if args else True)
        if rebuilding:
            super().delete_model(model, *args, **kwargs)  # type: ignore[misc]
            return
        if self.archiver.moves_tables:
            for m2m in model._meta.local_many_to_many:
                if m2m.remote_field.through._meta.auto_created:
                    self.delete_model(m2m.remote_field.through)
            self.archiver.keep_table(self, model)
            return
        self.archiver.keep_table(self, model)
        super().delete_model(model, *args, **kwargs)  # type: ignore[misc]

    def remove_field(self, model: Any, field: Any) -> None:
        if not field.many_to_many and field.column is not None:
            self.archiver.keep_column(self, model, field.column)
        super().remove_field(model, field)  # type: ignore[misc]
