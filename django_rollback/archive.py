"""What a rollback keeps of the tables and columns it drops, and how it is put back.

Keeping (while a rollback runs, inside its transaction): the schema editor that unapplies each
step is wrapped so that, instead of losing data,

- a table that unapplying CreateModel (or a many-to-many AddField) drops is, on PostgreSQL,
  *moved* into the schema ``django_rollback_archive`` (``ALTER TABLE .. SET SCHEMA``: no row
  is copied, so a table of millions of rows costs what its metadata costs); its foreign keys
  are dropped so that the older release stays free to delete the rows they pointed at, and its
  indexes (with the constraints they back) and sequences move with it, out of the way of the
  names the newer release re-creates. Everything that moves is renamed first with the prefix
  ``log<log id>_<item number>_``, so the same table can be archived again and again.
  On SQLite and MySQL/MariaDB, which have no schema to move a table to without clashing index
  or constraint names, the table is copied (``CREATE TABLE .. AS SELECT``) and then dropped.
- a column that unapplying AddField drops is copied with the primary key of its row into an
  archive table (``CREATE TABLE .. AS SELECT pk, column``) before the column goes.

Every name the archive of one rollback creates holds the id of its log entry; before the first
step runs, check_names() refuses a rollback whose names are taken already (archive tables left
behind by log entries that were deleted, or a database restored from an older backup).

Everything is described in ``RollbackLog.archive``::

    {"items": [{"table", "column" (null: the whole table), "pk", "archive_table",
                "archive_schema" (null: the default one), "types" {column: type},
                "rows", "bytes", "step"}],
     "rows", "bytes", "restored_at", "restored", "purged_at"}

Putting back (restore(), run once the newer release is deployed again): rows of archived
tables are inserted with their primary keys (rows the newer release's data migrations re-created
with the same key are overwritten), archived column values are written back onto the rows that
still exist, matched by primary key. Rows whose foreign keys point at rows that are gone, and
items whose table or column is missing or has another type, are skipped and counted. It all
happens in one transaction; afterwards sequences are moved past the restored keys.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.ddl_references import Statement
from django.db.backends.utils import truncate_name
from django.db.models import Max
from django.utils import timezone

from . import conf, signals
from .exceptions import ArchiveError, RollbackInProgressError
from .lock_waits import WriteCounter
from .locks import rollback_lock
from .models import RollbackLog

PG_SCHEMA = "django_rollback_archive"
TABLE_PREFIX = "django_rollback_archive_"  # SQLite and MySQL: archive tables beside the others


def pg_schema(connection: BaseDatabaseWrapper) -> str:
    """The schema archive tables move to: with django-tenants, one per tenant schema, since
    each schema numbers its own log entries and its archive names would clash in one."""
    schema = getattr(connection, "schema_name", None)
    if not schema or schema == getattr(settings, "PUBLIC_SCHEMA_NAME", "public"):
        return PG_SCHEMA
    name = f"{PG_SCHEMA}_{schema}"
    if len(name) <= 63:
        return name
    return f"{PG_SCHEMA}_{hashlib.sha256(schema.encode()).hexdigest()[:20]}"


def enabled(flag: bool | None = None) -> bool:
    """Archive or not: the flag of this run, else DJANGO_ROLLBACK["ARCHIVE"] (default on)."""
    return bool(conf.get_setting("ARCHIVE")) if flag is None else flag


# --- keeping, while a rollback runs ----------------------------------------------------------


class Archiver:
    """Keeps what the steps of one rollback drop; one per rollback."""

    def __init__(self, connection: BaseDatabaseWrapper, log: RollbackLog) -> None:
        self.connection = connection
        self.log = log
        self.items: list[dict[str, Any]] = []
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
        return {
            "items": self.items,
            "rows": sum(item["rows"] or 0 for item in self.items),
            "bytes": sum(item["bytes"] or 0 for item in self.items),
            "restored_at": None,
            "restored": None,
            "purged_at": None,
        }

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
            for owner, constraint in _pg_foreign_keys(self.connection, table):
                editor.execute(f"ALTER TABLE {quote(owner)} DROP CONSTRAINT {quote(constraint)}")
            # SET SCHEMA takes the indexes (renaming one renames the constraint it backs)
            # and the owned sequences along under their names: the newer release re-creates
            # the same names, which the next archive of this table would meet there.
            for relation, kind in _pg_dependents(self.connection, table):
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
                    f"CREATE TABLE {_qualified(self.connection, schema, name)} AS "
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
                cursor.execute(f"SELECT COUNT(*) FROM {_qualified(self.connection, schema, name)}")
                rows = int(cursor.fetchone()[0])
        self.items.append(
            {
                "table": table,
                "column": column,
                "pk": pk,
                "archive_schema": schema,
                "archive_table": name,
                "types": types,
                "rows": rows,
                "bytes": _size(self.connection, schema, name),
                "step": self.step,
            }
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


# --- looking at the database -----------------------------------------------------------------


def _qualified(connection: BaseDatabaseWrapper, schema: str | None, name: str) -> str:
    quote = connection.ops.quote_name
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def _item_table(connection: BaseDatabaseWrapper, item: dict[str, Any]) -> str:
    return _qualified(connection, item.get("archive_schema"), item["archive_table"])


def column_types(
    connection: BaseDatabaseWrapper, table: str, schema: str | None = None
) -> dict[str, str]:
    """{column: type as the database declares it} of a table ({} when it does not exist)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped AND "
                + ("n.nspname = %s" if schema else "pg_table_is_visible(c.oid)"),
                [table, schema] if schema else [table],
            )
        elif connection.vendor == "mysql":
            cursor.execute(
                "SELECT column_name, column_type FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name = %s",
                [table],
            )
        else:
            cursor.execute(f"PRAGMA table_info({connection.ops.quote_name(table)})")
            return {row[1]: _sqlite_affinity(row[2]) for row in cursor.fetchall()}
        return {name: kind for name, kind in cursor.fetchall()}


def _sqlite_affinity(declared: str) -> str:
    """SQLite stores by affinity; CREATE TABLE .. AS keeps only that, so compare it."""
    kind = declared.upper()
    if "INT" in kind:
        return "INTEGER"
    if any(word in kind for word in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in kind or not kind:
        return "BLOB"
    if any(word in kind for word in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def _pg_dependents(connection: BaseDatabaseWrapper, table: str) -> list[tuple[str, str]]:
    """(name, "INDEX" or "SEQUENCE") of the indexes of `table` and the sequences its columns
    own (serial or identity): what SET SCHEMA moves along with it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'INDEX' END "
            "FROM pg_class c WHERE c.oid IN (SELECT indexrelid FROM pg_index "
            "WHERE indrelid = %s::regclass) OR (c.relkind = 'S' AND c.oid IN (SELECT objid "
            "FROM pg_depend WHERE classid = 'pg_class'::regclass AND refclassid = "
            "'pg_class'::regclass AND refobjid = %s::regclass AND deptype IN ('a', 'i'))) "
            "ORDER BY c.relname",
            [connection.ops.quote_name(table)] * 2,
        )
        return [(name, kind) for name, kind in cursor.fetchall()]


def check_names(connection: BaseDatabaseWrapper, log: RollbackLog) -> None:
    """Before a rollback writes anything: refuse when a name its archive would get is taken.

    Every such name holds the log entry's id; a name holding an id this entry has or may get
    (above every entry's, when it has none yet) belongs to no entry: the entries were deleted,
    or the database came back from a backup older than its archive."""
    names = _archive_names(connection)
    if not log._state.adding:  # saved already (queued from the admin): its id is known
        taken = [name for number, name in names if number == log.pk]
    else:
        newest = RollbackLog.objects.using(connection.alias).aggregate(Max("id"))["id__max"]
        taken = [name for number, name in names if number > (newest or 0)]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise ArchiveError(
            f"Refusing to roll back: the archive holds {taken[0]}{more}, named like this "
            "rollback's archive but kept for no rollback log entry (entries deleted, or the "
            "database restored from an older backup?): drop or rename it, or roll back with "
            "--no-archive; nothing was changed."
        )


def _archive_names(connection: BaseDatabaseWrapper) -> list[tuple[int, str]]:
    """(log id, shown name) of everything in the archive, indexes and sequences included."""
    if connection.vendor == "postgresql":
        pattern = re.compile(r"^log(\d+)_\d+_")
        with connection.cursor() as cursor:
            # The current schema too: the table's indexes are renamed there before moving.
            cursor.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname IN (%s, current_schema()) "
                "AND c.relname ~ '^log[0-9]+_[0-9]+_' ORDER BY c.relname",
                [pg_schema(connection)],
            )
            found = [(f"{schema}.{name}", name) for schema, name in cursor.fetchall()]
    else:
        pattern = re.compile(rf"^{TABLE_PREFIX}(\d+)_\d+$")
        found = [(name, name) for name in connection.introspection.table_names()]
    names = []
    for shown, name in found:
        match = pattern.match(name)
        if match:
            names.append((int(match.group(1)), shown))
    return names


def _pg_foreign_keys(connection: BaseDatabaseWrapper, table: str) -> list[tuple[str, str]]:
    """(table, constraint) of every foreign key from or to `table`."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c "
            "WHERE c.contype = 'f' AND (c.conrelid = %s::regclass OR c.confrelid = %s::regclass)",
            [connection.ops.quote_name(table)] * 2,
        )
        return [(owner.strip('"'), name) for owner, name in cursor.fetchall()]


def _size(connection: BaseDatabaseWrapper, schema: str | None, name: str) -> int | None:
    """Bytes the archive table takes, when the database says."""
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    "SELECT pg_total_relation_size(%s::regclass)",
                    [_qualified(connection, schema, name)],
                )
            elif connection.vendor == "mysql":
                cursor.execute(
                    "SELECT data_length + index_length FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name = %s",
                    [name],
                )
            else:
                cursor.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = %s", [name])
            row = cursor.fetchone()
    except DatabaseError:  # SQLite without the dbstat table
        return None
    return int(row[0]) if row and row[0] is not None else None


def _relations(connection: BaseDatabaseWrapper, table: str) -> dict[str, tuple[str, str]]:
    """{column: (referenced column, referenced table)} of the live table's foreign keys."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_relations(cursor, table)
    # Django 6 adds the database-level on_delete as a third item: keep the first two.
    return {column: (relation[0], relation[1]) for column, relation in found.items()}


# --- what the skins show ---------------------------------------------------------------------


def describe_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} bytes"


def describe_item(item: dict[str, Any]) -> str:
    if item["column"] is None:
        return f'table "{item["table"]}" ({item["rows"]} rows)'
    return f'column "{item["table"]}"."{item["column"]}" ({item["rows"]} rows)'


def archive_of(log: RollbackLog) -> dict[str, Any]:
    """The archive document of a log entry ({} when it has none)."""
    return log.archive if isinstance(log.archive, dict) else {}


def archive_status(log: RollbackLog) -> str:
    """ "none", "restored", "purged" or "kept"."""
    archive = archive_of(log)
    if not archive.get("items"):
        return "none"
    if archive.get("purged_at"):
        return "purged"
    if archive.get("restored_at"):
        return "restored"
    return "kept"


def missing_targets(connection: BaseDatabaseWrapper, log: RollbackLog) -> list[str]:
    """The tables and columns of the archive that do not exist (again) in the database."""
    existing = set(connection.introspection.table_names())
    missing: list[str] = []
    columns: dict[str, dict[str, str]] = {}
    for item in archive_of(log).get("items", []):
        table, column = item["table"], item["column"]
        if table not in existing:
            missing.append(f'table "{table}"')
            continue
        if column is not None:
            if table not in columns:
                columns[table] = column_types(connection, table)
            if column not in columns[table]:
                missing.append(f'column "{table}"."{column}"')
    return missing


def restorable_now(database: str = DEFAULT_DB_ALIAS) -> RollbackLog | None:
    """The most recent archive kept and not restored whose tables and columns all exist."""
    connection = connections[database]
    for log in _kept(database):
        if not missing_targets(connection, log):
            return log
    return None


def _kept(database: str) -> list[RollbackLog]:
    logs = RollbackLog.objects.using(database).filter(status=RollbackLog.Status.SUCCEEDED)
    return [log for log in logs.order_by("-id") if archive_status(log) == "kept"]


# --- restoring -------------------------------------------------------------------------------


@dataclass
class ItemOutcome:
    item: dict[str, Any]
    restored: int = 0  # rows inserted or updated, or values written back
    skipped: dict[str, int] = field(default_factory=dict)  # reason → rows

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.item["table"],
            "column": self.item["column"],
            "archived": self.item["rows"],
            "restored": self.restored,
            "skipped": self.skipped,
        }


@dataclass
class RestoreResult:
    log: RollbackLog
    outcomes: list[ItemOutcome]
    fake: bool

    @property
    def restored(self) -> int:
        return sum(o.restored for o in self.outcomes)

    @property
    def skipped(self) -> int:
        return sum(o.skipped_total for o in self.outcomes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "log_id": self.log.pk,
            "fake": self.fake,
            "restored": self.restored,
            "skipped": self.skipped,
            "items": [o.as_dict() for o in self.outcomes],
        }


class _Rehearsal(Exception):
    """Raised to roll back a --fake restore after counting."""


def find_archive(database: str = DEFAULT_DB_ALIAS, log_id: int | None = None) -> RollbackLog:
    """The archive of this log entry, or the most recent one that can be restored now."""
    logs = RollbackLog.objects.using(database)
    if log_id is None:
        log = restorable_now(database)
        if log is None:
            kept = _kept(database)
            if kept:
                missing = missing_targets(connections[database], kept[0])
                raise ArchiveError(
                    f"No archive can be restored yet: the most recent one (log entry "
                    f"{kept[0].pk}) needs {', '.join(missing[:3])}, which do not exist: deploy "
                    "the release it came from (migrate) first."
                )
            raise ArchiveError("There is no archive to restore.")
        return log
    log = logs.filter(pk=log_id).first()
    if log is None:
        raise ArchiveError(f"There is no rollback log entry {log_id}.")
    status = archive_status(log)
    if status == "none":
        raise ArchiveError(f"Rollback log entry {log_id} has no archive.")
    if status == "restored":
        raise ArchiveError(
            f"The archive of rollback log entry {log_id} was already restored "
            f"({archive_of(log)['restored_at']}): restoring it twice is refused."
        )
    if status == "purged":
        raise ArchiveError(f"The archive of rollback log entry {log_id} was purged.")
    return log


def restore(log: RollbackLog, *, fake: bool = False, wait: float = 0.0) -> RestoreResult:
    """Put the archive of `log` back, all of it or nothing; `fake` counts and changes nothing."""
    database = log._state.db or DEFAULT_DB_ALIAS
    connection = connections[database]
    try:
        with rollback_lock(connection, wait):
            fresh = find_archive(database, log.pk)  # restored meanwhile by someone else?
            try:
                with transaction.atomic(using=database):
                    outcomes = _restore_items(connection, fresh, fake=fake)
                    if fake:
                        raise _Rehearsal
                    fresh.archive = {
                        **archive_of(fresh),
                        "restored_at": timezone.now().isoformat(),
                        "restored": [o.as_dict() for o in outcomes],
                    }
                    fresh.save(using=database, update_fields=["archive"])
            except _Rehearsal:
                pass
            except DatabaseError as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ArchiveError(
                    f"Restoring the archive of log entry {log.pk} failed: {reason}; "
                    "nothing was restored."
                ) from None
            if not fake:
                _move_sequences(connection, outcomes)
    except RollbackInProgressError:
        raise RollbackInProgressError(
            f"A rollback or a restore is running on database '{database}': try again later."
        ) from None
    result = RestoreResult(fresh, outcomes, fake)
    signals.send_archive_restored(result)  # after the lock: receivers may be slow
    return result


def _restore_items(
    connection: BaseDatabaseWrapper, log: RollbackLog, *, fake: bool
) -> list[ItemOutcome]:
    items = archive_of(log).get("items", [])
    tables = [i for i in items if i["column"] is None]
    columns = [i for i in items if i["column"] is not None]
    existing = set(connection.introspection.table_names())
    outcomes: list[ItemOutcome] = []
    # Tables pointed at first, so rows pointing at restored rows find them.
    for item in _referenced_first(connection, tables, existing):
        outcomes.append(_restore_table(connection, item, existing))
    for item in columns:
        outcomes.append(_restore_column(connection, item, existing))
    order = {id(item): n for n, item in enumerate(items)}
    return sorted(outcomes, key=lambda o: order[id(o.item)])


def _referenced_first(
    connection: BaseDatabaseWrapper, tables: list[dict[str, Any]], existing: set[str]
) -> list[dict[str, Any]]:
    by_table = {item["table"]: item for item in tables}
    done: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(table: str) -> None:
        if table in seen:
            return
        seen.add(table)
        if table in existing:
            for _col, (_ref_col, ref_table) in _relations(connection, table).items():
                if ref_table in by_table:
                    visit(ref_table)
        done.append(by_table[table])

    for table in by_table:
        visit(table)
    return done


def _unusable(
    connection: BaseDatabaseWrapper, item: dict[str, Any], existing: set[str]
) -> str | None:
    """Why the item cannot go back at all (its table or column is gone, a type changed)."""
    table = item["table"]
    if table not in existing:
        return "table missing"
    live = column_types(connection, table)
    for column, kind in item["types"].items():
        if column not in live:
            return "column missing"
        if live[column] != kind:
            return "incompatible type"
    return None


def _fk_conditions(connection: BaseDatabaseWrapper, item: dict[str, Any], alias: str) -> list[str]:
    """SQL conditions a row of the archive meets when each foreign key it holds points at a
    row that exists (in the live table, or in this archive for a table pointing at itself)."""
    quote = connection.ops.quote_name
    conditions = []
    for column, (ref_column, ref_table) in _relations(connection, item["table"]).items():
        if column not in item["types"]:
            continue
        target = f"SELECT {quote(ref_column)} FROM {quote(ref_table)}"
        if connection.vendor == "mysql":  # MySQL refuses the target table of an UPDATE here
            target = f"SELECT r.{quote(ref_column)} FROM ({target}) r"
        allowed = f"{alias}.{quote(column)} IN ({target})"
        if ref_table == item["table"] and item["column"] is None:
            itself = f"SELECT {quote(ref_column)} FROM {_item_table(connection, item)}"
            allowed += f" OR {alias}.{quote(column)} IN ({itself})"
        conditions.append(f"({alias}.{quote(column)} IS NULL OR {allowed})")
    return conditions


def _count(connection: BaseDatabaseWrapper, sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return int(cursor.fetchone()[0])


def _execute(connection: BaseDatabaseWrapper, sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return max(int(cursor.rowcount), 0)


def _restore_table(
    connection: BaseDatabaseWrapper, item: dict[str, Any], existing: set[str]
) -> ItemOutcome:
    outcome = ItemOutcome(item)
    reason = _unusable(connection, item, existing)
    if reason:
        outcome.skipped[reason] = item["rows"]
        return outcome
    quote = connection.ops.quote_name
    table, pk, archive = quote(item["table"]), item["pk"], _item_table(connection, item)
    valid = " AND ".join(_fk_conditions(connection, item, "a")) or "1 = 1"
    total = _count(connection, f"SELECT COUNT(*) FROM {archive} a")
    usable = _count(connection, f"SELECT COUNT(*) FROM {archive} a WHERE {valid}")
    if total - usable:
        outcome.skipped["foreign key to a deleted row"] = total - usable
    columns = list(item["types"])
    names = ", ".join(quote(c) for c in columns)
    picked = ", ".join(f"a.{quote(c)}" for c in columns)
    if pk is None:
        outcome.restored = _execute(
            connection,
            f"INSERT INTO {table} ({names}) SELECT {picked} FROM {archive} a WHERE {valid}",
        )
        return outcome
    # Rows the newer release re-created with the same key existed at rollback time: the
    # archived values win.
    others = [c for c in columns if c != pk]
    present = f"a.{quote(pk)} IN (SELECT t.{quote(pk)} FROM {table} t)"
    if others:
        outcome.restored += _update(connection, item, others, f"{valid} AND {present}")
    outcome.restored += _execute(
        connection,
        f"INSERT INTO {table} ({names}) SELECT {picked} FROM {archive} a "
        f"WHERE {valid} AND NOT ({present})",
    )
    return outcome


def _update(
    connection: BaseDatabaseWrapper, item: dict[str, Any], columns: list[str], where: str
) -> int:
    """UPDATE the live rows from the archive rows matched by primary key, where `where`."""
    quote = connection.ops.quote_name
    table, pk, archive = quote(item["table"]), quote(item["pk"]), _item_table(connection, item)
    if connection.vendor == "mysql":
        sets = ", ".join(f"t.{quote(c)} = a.{quote(c)}" for c in columns)
        return _execute(
            connection,
            f"UPDATE {table} t JOIN {archive} a ON t.{pk} = a.{pk} SET {sets} WHERE {where}",
        )
    sets = ", ".join(f"{quote(c)} = a.{quote(c)}" for c in columns)
    return _execute(
        connection,
        f"UPDATE {table} SET {sets} FROM {archive} a WHERE {table}.{pk} = a.{pk} AND {where}",
    )


def _restore_column(
    connection: BaseDatabaseWrapper, item: dict[str, Any], existing: set[str]
) -> ItemOutcome:
    outcome = ItemOutcome(item)
    reason = _unusable(connection, item, existing)
    if reason:
        outcome.skipped[reason] = item["rows"]
        return outcome
    quote = connection.ops.quote_name
    table, pk, archive = quote(item["table"]), quote(item["pk"]), _item_table(connection, item)
    present = f"a.{pk} IN (SELECT t.{pk} FROM {table} t)"
    valid = " AND ".join(_fk_conditions(connection, item, "a")) or "1 = 1"
    total = _count(connection, f"SELECT COUNT(*) FROM {archive} a")
    alive = _count(connection, f"SELECT COUNT(*) FROM {archive} a WHERE {present}")
    usable = _count(connection, f"SELECT COUNT(*) FROM {archive} a WHERE {present} AND {valid}")
    if total - alive:
        outcome.skipped["row deleted"] = total - alive
    if alive - usable:
        outcome.skipped["foreign key to a deleted row"] = alive - usable
    outcome.restored = _update(connection, item, [item["column"]], f"{present} AND {valid}")
    return outcome


def _move_sequences(connection: BaseDatabaseWrapper, outcomes: list[ItemOutcome]) -> None:
    """New rows after a restore must not get the keys of restored rows. SQLite's
    AUTOINCREMENT counter follows explicit keys by itself."""
    quote = connection.ops.quote_name
    for outcome in outcomes:
        item = outcome.item
        if item["column"] is not None or not item["pk"] or not outcome.restored:
            continue
        table, pk = item["table"], item["pk"]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence(%s, %s), "
                    f"COALESCE(MAX({quote(pk)}), 1), MAX({quote(pk)}) IS NOT NULL) "
                    f"FROM {quote(table)} WHERE pg_get_serial_sequence(%s, %s) IS NOT NULL",
                    [quote(table), pk, quote(table), pk],
                )
            elif connection.vendor == "mysql":
                cursor.execute(f"SELECT COALESCE(MAX({quote(pk)}), 0) + 1 FROM {quote(table)}")
                cursor.execute(
                    f"ALTER TABLE {quote(table)} AUTO_INCREMENT = {int(cursor.fetchone()[0])}"
                )


# --- listing and purging ---------------------------------------------------------------------


def list_archives(database: str = DEFAULT_DB_ALIAS) -> list[RollbackLog]:
    logs = RollbackLog.objects.using(database).order_by("-id")
    return [log for log in logs if archive_status(log) != "none"]


def find_log(database: str, log_id: int) -> RollbackLog:
    """A log entry that has (or had) an archive."""
    log = RollbackLog.objects.using(database).filter(pk=log_id).first()
    if log is None:
        raise ArchiveError(f"There is no rollback log entry {log_id}.")
    if archive_status(log) == "none":
        raise ArchiveError(f"Rollback log entry {log_id} has no archive.")
    return log


def summary(log: RollbackLog) -> dict[str, Any]:
    """One archive as --list and the admin show it."""
    items = archive_of(log).get("items", [])
    return {
        "log_id": log.pk,
        "from": log.from_commit,
        "from_tags": list(log.from_tags),
        "to": log.to_commit,
        "to_tags": list(log.to_tags),
        "rolled_back_at": log.started_at.isoformat(),
        "tables": sum(1 for item in items if item["column"] is None),
        "columns": sum(1 for item in items if item["column"] is not None),
        "rows": archive_of(log).get("rows", 0),
        "bytes": archive_of(log).get("bytes", 0),
        "status": archive_status(log),
        "restored_at": archive_of(log).get("restored_at"),
        "purged_at": archive_of(log).get("purged_at"),
    }


def purge(log: RollbackLog) -> int:
    """Drop the archive tables of one log entry; returns how many were dropped."""
    database = log._state.db or DEFAULT_DB_ALIAS
    connection = connections[database]
    if archive_status(log) == "purged":
        raise ArchiveError(f"The archive of rollback log entry {log.pk} was purged already.")
    dropped = 0
    with transaction.atomic(using=database):
        with connection.cursor() as cursor:
            for item in archive_of(log).get("items", []):
                cursor.execute(f"DROP TABLE IF EXISTS {_item_table(connection, item)}")
                dropped += 1
        log.archive = {**archive_of(log), "purged_at": timezone.now().isoformat()}
        log.save(using=database, update_fields=["archive"])
    return dropped


def purge_older_than(days: float, database: str = DEFAULT_DB_ALIAS) -> list[RollbackLog]:
    cutoff = timezone.now() - datetime.timedelta(days=days)
    purged = []
    for log in list_archives(database):
        if log.started_at < cutoff and archive_status(log) != "purged":
            purge(log)
            purged.append(log)
    return purged
