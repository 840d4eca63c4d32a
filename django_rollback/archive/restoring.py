"""Putting an archive back once the newer release is deployed again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from .. import signals
from ..exceptions import ArchiveError, RollbackInProgressError, first_line
from ..locks import rollback_lock
from ..models import RollbackLog
from .items import ArchiveItem, archive_items, archive_of
from .keys import advance_counter
from .names import column_types, item_table, relations
from .status import (
    ArchiveStatus,
    archive_status,
    kept_archives,
    missing_targets,
    restorable_now,
)


@dataclass
class ItemOutcome:
    item: ArchiveItem
    restored: int = 0  # rows inserted or updated, or values written back
    skipped: dict[str, int] = field(default_factory=dict)  # reason → rows

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.item.table,
            "column": self.item.column,
            "archived": self.item.rows,
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
            kept = kept_archives(database)
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
    if status is ArchiveStatus.NONE:
        raise ArchiveError(f"Rollback log entry {log_id} has no archive.")
    if status is ArchiveStatus.RESTORED:
        raise ArchiveError(
            f"The archive of rollback log entry {log_id} was already restored "
            f"({archive_of(log)['restored_at']}): restoring it twice is refused."
        )
    if status is ArchiveStatus.PURGED:
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
                reason = first_line(exc)
                raise ArchiveError(
                    f"Restoring the archive of log entry {log.pk} failed: {reason}; "
                    "nothing was restored."
                ) from None
            if not fake:
                _move_counters(connection, outcomes)
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
    items = archive_items(log)
    tables = [i for i in items if i.column is None]
    columns = [i for i in items if i.column is not None]
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
    connection: BaseDatabaseWrapper, tables: list[ArchiveItem], existing: set[str]
) -> list[ArchiveItem]:
    by_table = {item.table: item for item in tables}
    done: list[ArchiveItem] = []
    seen: set[str] = set()

    def visit(table: str) -> None:
        if table in seen:
            return
        seen.add(table)
        if table in existing:
            for _col, (_ref_col, ref_table) in relations(connection, table).items():
                if ref_table in by_table:
                    visit(ref_table)
        done.append(by_table[table])

    for table in by_table:
        visit(table)
    return done


def _unusable(connection: BaseDatabaseWrapper, item: ArchiveItem, existing: set[str]) -> str | None:
    """Why the item cannot go back at all (its table or column is gone, a type changed)."""
    table = item.table
    if table not in existing:
        return "table missing"
    live = column_types(connection, table)
    for column, kind in item.types.items():
        if column not in live:
            return "column missing"
        if live[column] != kind:
            return "incompatible type"
    return None


def _fk_conditions(connection: BaseDatabaseWrapper, item: ArchiveItem, alias: str) -> list[str]:
    """SQL conditions a row of the archive meets when each foreign key it holds points at a
    row that exists (in the live table, or in this archive for a table pointing at itself)."""
    quote = connection.ops.quote_name
    conditions = []
    for column, (ref_column, ref_table) in relations(connection, item.table).items():
        if column not in item.types:
            continue
        target = f"SELECT {quote(ref_column)} FROM {quote(ref_table)}"
        if connection.vendor == "mysql":  # MySQL refuses the target table of an UPDATE here
            target = f"SELECT r.{quote(ref_column)} FROM ({target}) r"
        allowed = f"{alias}.{quote(column)} IN ({target})"
        if ref_table == item.table and item.column is None:
            itself = f"SELECT {quote(ref_column)} FROM {item_table(connection, item)}"
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


@dataclass(frozen=True)
class _Opened:
    """What restoring an archived table or column starts from."""

    table: str  # the live table, quoted
    archive: str  # the archive table, quoted
    valid: str  # SQL: the archived rows ("a") whose foreign keys point at rows that exist
    total: int  # rows in the archive


def _open(
    connection: BaseDatabaseWrapper, item: ArchiveItem, existing: set[str], outcome: ItemOutcome
) -> _Opened | None:
    """The opening that restoring a table and restoring a column share; None when the item
    cannot go back at all (every row skipped, for the reason noted in `outcome`)."""
    reason = _unusable(connection, item, existing)
    if reason:
        outcome.skipped[reason] = item.rows
        return None
    archive = item_table(connection, item)
    return _Opened(
        table=connection.ops.quote_name(item.table),
        archive=archive,
        valid=" AND ".join(_fk_conditions(connection, item, "a")) or "1 = 1",
        total=_count(connection, f"SELECT COUNT(*) FROM {archive} a"),
    )


def _restore_table(
    connection: BaseDatabaseWrapper, item: ArchiveItem, existing: set[str]
) -> ItemOutcome:
    outcome = ItemOutcome(item)
    opened = _open(connection, item, existing, outcome)
    if opened is None:
        return outcome
    quote = connection.ops.quote_name
    table, pk, archive, valid = opened.table, item.pk, opened.archive, opened.valid
    usable = _count(connection, f"SELECT COUNT(*) FROM {archive} a WHERE {valid}")
    if opened.total - usable:
        outcome.skipped["foreign key to a deleted row"] = opened.total - usable
    columns = list(item.types)
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
    connection: BaseDatabaseWrapper, item: ArchiveItem, columns: list[str], where: str
) -> int:
    """UPDATE the live rows from the archive rows matched by primary key, where `where`."""
    quote = connection.ops.quote_name
    assert item.pk is not None, "an archived table or column has a primary key"
    table, pk, archive = quote(item.table), quote(item.pk), item_table(connection, item)
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
    connection: BaseDatabaseWrapper, item: ArchiveItem, existing: set[str]
) -> ItemOutcome:
    outcome = ItemOutcome(item)
    opened = _open(connection, item, existing, outcome)
    if opened is None:
        return outcome
    assert item.pk is not None, "an archived table or column has a primary key"
    table, archive, valid = opened.table, opened.archive, opened.valid
    pk = connection.ops.quote_name(item.pk)
    present = f"a.{pk} IN (SELECT t.{pk} FROM {table} t)"
    alive = _count(connection, f"SELECT COUNT(*) FROM {archive} a WHERE {present}")
    usable = _count(connection, f"SELECT COUNT(*) FROM {archive} a WHERE {present} AND {valid}")
    if opened.total - alive:
        outcome.skipped["row deleted"] = opened.total - alive
    if alive - usable:
        outcome.skipped["foreign key to a deleted row"] = alive - usable
    assert item.column is not None
    outcome.restored = _update(connection, item, [item.column], f"{present} AND {valid}")
    return outcome


def _move_counters(connection: BaseDatabaseWrapper, outcomes: list[ItemOutcome]) -> None:
    """New rows after a restore must not get the keys of restored rows: the key counter of
    every table that got rows back moves past its highest key (up only, as after a save)."""
    quote = connection.ops.quote_name
    for outcome in outcomes:
        item = outcome.item
        if item.column is not None or not item.pk or not outcome.restored:
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX({quote(item.pk)}) FROM {quote(item.table)}")
            highest = cursor.fetchone()[0]
        if isinstance(highest, int):  # integer keys only: a UUID or a code has no counter
            advance_counter(connection, item.table, item.pk, highest)
