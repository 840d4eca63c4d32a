"""Key counters of tables that came back after a rollback archived them.

A rollback keeps a table it drops in the archive, rows and keys. When the newer release is
deployed again, ``migrate`` creates the table afresh and its key counter (a PostgreSQL sequence
or identity, MySQL's AUTO_INCREMENT, SQLite's ``sqlite_sequence``) starts at 1 again: the rows
the site writes next would take the keys of archived rows, and restoring the archive would then
overwrite them (archived values win on the same key). save_state() (services/saving.py) calls
advance_past_archives() so that the counters of such tables start past every archived key; a
restore (restoring.py) moves them past the keys it put back with advance_counter().
"""

from __future__ import annotations

from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ..models import RollbackLog
from .items import ArchiveItem, archive_items
from .names import item_table
from .status import kept_archives


def advance_past_archives(
    connection: BaseDatabaseWrapper, kept: list[RollbackLog] | None = None
) -> list[str]:
    """Move the key counter of every live table a kept archive holds rows of past the highest
    archived key; returns the tables whose counter moved. Counters only ever go up. `kept`:
    the kept archives when the caller has read them already (kept_archives())."""
    if kept is None:
        kept = kept_archives(connection.alias)
    highest = _highest_archived_keys(connection, kept)
    moved = []
    for (table, pk), key in sorted(highest.items()):
        if advance_counter(connection, table, pk, key):
            moved.append(table)
    return moved


def _highest_archived_keys(
    connection: BaseDatabaseWrapper, kept: list[RollbackLog]
) -> dict[tuple[str, str], int]:
    """(live table, key column) → the highest integer key among the archived rows of the
    `kept` archives whose tables exist again."""
    live = set(connection.introspection.table_names())
    highest: dict[tuple[str, str], int] = {}
    for log in kept:
        for item in archive_items(log):
            if not item.is_table or not item.pk or item.table not in live:
                continue
            key = _highest_key(connection, item)
            if isinstance(key, int):
                where = (item.table, item.pk)
                highest[where] = max(key, highest.get(where, key))
    return highest


def _highest_key(connection: BaseDatabaseWrapper, item: ArchiveItem) -> object:
    assert item.pk is not None
    pk = connection.ops.quote_name(item.pk)
    try:
        # A savepoint: an archive table dropped by hand must not break the save around it.
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX({pk}) FROM {item_table(connection, item)}")
            return cursor.fetchone()[0]
    except DatabaseError:
        return None


def advance_counter(connection: BaseDatabaseWrapper, table: str, pk: str, key: int) -> bool:
    """Move the key counter of `table` (key column `pk`) so that the next key is above `key`;
    whether it moved. Only ever up: a counter already past `key` stays where it is."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [quote(table), pk])
            sequence = cursor.fetchone()[0]
            if sequence is None:
                return False
            cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
            last, called = cursor.fetchone()
            if (last if called else last - 1) >= key:
                return False
            cursor.execute("SELECT setval(%s, %s, true)", [sequence, key])
            return True
        if connection.vendor == "mysql":
            cursor.execute(
                "SELECT AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                [table],
            )
            row = cursor.fetchone()
            if row is None or row[0] is None or row[0] > key:
                return False
            cursor.execute(f"ALTER TABLE {quote(table)} AUTO_INCREMENT = {int(key) + 1}")
            return True
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s", [table]
            )
            row = cursor.fetchone()
            if row is None or "AUTOINCREMENT" not in (row[0] or "").upper():
                return False  # the next key follows the highest row: nothing to move
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
            current = cursor.fetchone()
            if current is not None and current[0] >= key:
                return False
            if current is None:
                cursor.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", [table, key]
                )
            else:
                cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [key, table])
            return True
    return False
