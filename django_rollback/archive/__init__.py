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

from ..exceptions import ArchiveError
from ..presenters.text import describe_archive_item as describe_item, describe_size
from .items import ArchiveItem, archive_items, archive_of
from .keeping import Archiver
from .keys import advance_past_archives
from .names import PG_SCHEMA, TABLE_PREFIX, check_names, column_types, enabled, pg_schema
from .restoring import ItemOutcome, RestoreResult, find_archive, restore
from .status import (
    ArchiveStatus,
    archive_status,
    find_log,
    kept_archives,
    list_archives,
    missing_targets,
    purge,
    purge_older_than,
    restorable_now,
    summary,
)

__all__ = [
    "PG_SCHEMA",
    "TABLE_PREFIX",
    "ArchiveError",
    "ArchiveItem",
    "ArchiveStatus",
    "Archiver",
    "ItemOutcome",
    "RestoreResult",
    "advance_past_archives",
    "archive_items",
    "archive_of",
    "archive_status",
    "check_names",
    "column_types",
    "describe_item",
    "describe_size",
    "enabled",
    "find_archive",
    "find_log",
    "kept_archives",
    "list_archives",
    "missing_targets",
    "pg_schema",
    "purge",
    "purge_older_than",
    "restorable_now",
    "restore",
    "summary",
]
