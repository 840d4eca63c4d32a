"""Where archive tables live and what the database says about them: names, sizes,
column types, foreign keys."""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Max

from .. import conf
from ..exceptions import ArchiveError
from ..models import RollbackLog
from .items import ArchiveItem

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


def qualified(connection: BaseDatabaseWrapper, schema: str | None, name: str) -> str:
    quote = connection.ops.quote_name
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def item_table(connection: BaseDatabaseWrapper, item: ArchiveItem) -> str:
    return qualified(connection, item.archive_schema, item.archive_table)


def column_types(
    connection: BaseDatabaseWrapper, table: str, schema: str | None = None
) -> dict[str, str]:
    """{column: type as the database declares it} of a table ({} when it does not exist)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The table by name as PostgreSQL resolves it (to_regclass: in `schema`, or the
            # first in the search path, as pg_table_is_visible() has it), then its columns by
            # pg_attribute's index: no join over every schema's tables of that name.
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = to_regclass("
                + ("quote_ident(%s) || '.' || " if schema else "")
                + "quote_ident(%s)) AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                [schema, table] if schema else [table],
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


def pg_dependents(connection: BaseDatabaseWrapper, table: str) -> list[tuple[str, str]]:
    """(name, "INDEX" or "SEQUENCE") of the indexes of `table` and the sequences its columns
    own (serial or identity): what SET SCHEMA moves along with it."""
    with connection.cursor() as cursor:
        # Its indexes, or sequences among what depends on it: both sides looked up by oid in
        # the catalog's indexes (an OR of the two made PostgreSQL read the whole of pg_class,
        # every schema's relations).
        cursor.execute(
            "WITH indexes AS (SELECT indexrelid AS oid FROM pg_index WHERE indrelid = "
            "%s::regclass) SELECT c.relname, CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE "
            "'INDEX' END FROM pg_class c WHERE c.oid IN (SELECT oid FROM indexes UNION "
            "SELECT objid FROM pg_depend WHERE classid = 'pg_class'::regclass AND refclassid = "
            "'pg_class'::regclass AND refobjid = %s::regclass AND deptype IN ('a', 'i')) "
            "AND (c.relkind = 'S' OR c.oid IN (SELECT oid FROM indexes)) ORDER BY c.relname",
            [connection.ops.quote_name(table)] * 2,
        )
        return [(name, kind) for name, kind in cursor.fetchall()]


def check_names(connection: BaseDatabaseWrapper, log: RollbackLog) -> None:
    """Before a rollback writes anything: refuse when a name its archive would get is taken.

    Every such name holds the log entry's id; a name holding an id this entry has or may get
    (above every entry's, when it has none yet) belongs to no entry: the entries were deleted,
    or the database came back from a backup older than its archive."""
    names = archive_names(connection)
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


def archive_names(connection: BaseDatabaseWrapper) -> list[tuple[int, str]]:
    """(log id, shown name) of everything in the archive, indexes and sequences included."""
    if connection.vendor == "postgresql":
        pattern = re.compile(r"^log(\d+)_\d+_")
        with connection.cursor() as cursor:
            # The current schema too: the table's indexes are renamed there before moving.
            # Every tenant's archive holds names like these: find them by name (the index
            # on relname), then keep the two schemas' by their oids, never comparing each
            # relation found with every schema (that grew with the square of the fleet).
            cursor.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relnamespace IN (SELECT oid FROM "
                "pg_namespace WHERE nspname IN (%s, current_schema())) "
                "AND c.relname >= 'log' AND c.relname < 'loh' "
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


def pg_foreign_keys(connection: BaseDatabaseWrapper, table: str) -> list[tuple[str, str]]:
    """(table, constraint) of every foreign key from or to `table`."""
    with connection.cursor() as cursor:
        # Those pointing at it are found through pg_depend (indexed by what is depended on):
        # pg_constraint has no index on confrelid, and reading all of it reads every schema's.
        cursor.execute(
            "SELECT c.conrelid::regclass::text, c.conname FROM pg_constraint c "
            "WHERE c.contype = 'f' AND (c.conrelid = %s::regclass OR c.confrelid = %s::regclass) "
            "AND c.oid IN (SELECT oid FROM pg_constraint WHERE conrelid = %s::regclass UNION "
            "SELECT objid FROM pg_depend WHERE classid = 'pg_constraint'::regclass "
            "AND refclassid = 'pg_class'::regclass AND refobjid = %s::regclass)",
            [connection.ops.quote_name(table)] * 4,
        )
        return [(owner.strip('"'), name) for owner, name in cursor.fetchall()]


def table_size(connection: BaseDatabaseWrapper, schema: str | None, name: str) -> int | None:
    """Bytes the archive table takes, when the database says."""
    if connection.vendor == "postgresql":  # the table is there: no savepoint needed
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_total_relation_size(%s::regclass)", [qualified(connection, schema, name)]
            )
            row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else None
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if connection.vendor == "mysql":
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


def relations(connection: BaseDatabaseWrapper, table: str) -> dict[str, tuple[str, str]]:
    """{column: (referenced column, referenced table)} of the live table's foreign keys."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_relations(cursor, table)
    # Django 6 adds the database-level on_delete as a third item: keep the first two.
    return {column: (relation[0], relation[1]) for column, relation in found.items()}
