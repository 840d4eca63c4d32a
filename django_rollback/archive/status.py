"""What the skins show of archives, and listing and purging them."""

from __future__ import annotations

import datetime
from enum import Enum
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from ..exceptions import ArchiveError
from ..models import RollbackLog
from .items import archive_items, archive_of
from .names import column_types, item_table


class ArchiveStatus(str, Enum):
    """What became of a log entry's archive; equal to its plain string ("kept", ...), which
    templates and JSON documents show."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    NONE = "none"
    KEPT = "kept"
    RESTORED = "restored"
    PURGED = "purged"


def archive_status(log: RollbackLog) -> ArchiveStatus:
    archive = archive_of(log)
    if not archive.get("items"):
        return ArchiveStatus.NONE
    if archive.get("purged_at"):
        return ArchiveStatus.PURGED
    if archive.get("restored_at"):
        return ArchiveStatus.RESTORED
    return ArchiveStatus.KEPT


def missing_targets(connection: BaseDatabaseWrapper, log: RollbackLog) -> list[str]:
    """The tables and columns of the archive that do not exist (again) in the database."""
    existing = set(connection.introspection.table_names())
    missing: list[str] = []
    columns: dict[str, dict[str, str]] = {}
    for item in archive_items(log):
        table, column = item.table, item.column
        if table not in existing:
            missing.append(f'table "{table}"')
            continue
        if column is not None:
            if table not in columns:
                columns[table] = column_types(connection, table)
            if column not in columns[table]:
                missing.append(f'column "{table}"."{column}"')
    return missing


def restorable_now(
    database: str = DEFAULT_DB_ALIAS, kept: list[RollbackLog] | None = None
) -> RollbackLog | None:
    """The most recent archive kept and not restored whose tables and columns all exist;
    among `kept` (kept_archives() read already) when given."""
    connection = connections[database]
    for log in kept_archives(database) if kept is None else kept:
        if not missing_targets(connection, log):
            return log
    return None


def kept_archives(database: str) -> list[RollbackLog]:
    """The log entries whose archive is kept (not restored, not purged), newest first."""
    logs = RollbackLog.objects.using(database).succeeded()
    return [log for log in logs.order_by("-id") if archive_status(log) is ArchiveStatus.KEPT]


def list_archives(database: str = DEFAULT_DB_ALIAS) -> list[RollbackLog]:
    logs = RollbackLog.objects.using(database).order_by("-id")
    return [log for log in logs if archive_status(log) is not ArchiveStatus.NONE]


def find_log(database: str, log_id: int) -> RollbackLog:
    """A log entry that has (or had) an archive."""
    log = RollbackLog.objects.using(database).filter(pk=log_id).first()
    if log is None:
        raise ArchiveError(f"There is no rollback log entry {log_id}.")
    if archive_status(log) is ArchiveStatus.NONE:
        raise ArchiveError(f"Rollback log entry {log_id} has no archive.")
    return log


def summary(log: RollbackLog) -> dict[str, Any]:
    """One archive as --list and the admin show it."""
    items = archive_items(log)
    return {
        "log_id": log.pk,
        "from": log.from_commit,
        "from_tags": list(log.from_tags),
        "to": log.to_commit,
        "to_tags": list(log.to_tags),
        "rolled_back_at": log.started_at.isoformat(),
        "tables": sum(1 for item in items if item.column is None),
        "columns": sum(1 for item in items if item.column is not None),
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
    if archive_status(log) is ArchiveStatus.PURGED:
        raise ArchiveError(f"The archive of rollback log entry {log.pk} was purged already.")
    dropped = 0
    with transaction.atomic(using=database):
        with connection.cursor() as cursor:
            for item in archive_items(log):
                cursor.execute(f"DROP TABLE IF EXISTS {item_table(connection, item)}")
                dropped += 1
        log.archive = {**archive_of(log), "purged_at": timezone.now().isoformat()}
        log.save(using=database, update_fields=["archive"])
    return dropped


def purge_older_than(days: float, database: str = DEFAULT_DB_ALIAS) -> list[RollbackLog]:
    cutoff = timezone.now() - datetime.timedelta(days=days)
    purged = []
    for log in list_archives(database):
        if log.started_at < cutoff and archive_status(log) is not ArchiveStatus.PURGED:
            purge(log)
            purged.append(log)
    return purged
