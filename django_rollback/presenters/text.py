"""Sentences and numbers that the commands and the admin both show, each built once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import ngettext

from ..models import MigrationState, describe_commit

if TYPE_CHECKING:  # archive/ uses this module: no import at run time
    from ..archive.items import ArchiveItem


def describe_state(state: MigrationState) -> str:
    """How every message names a state: the full commit and its tags."""
    return describe_commit(state.commit, state.tags)


def migrations_text(count: int) -> str:
    """ "1 migration", "3 migrations"."""
    return ngettext("%(count)d migration", "%(count)d migrations", count) % {"count": count}


def apps_text(count: int) -> str:
    return ngettext("%(count)d app", "%(count)d apps", count) % {"count": count}


def migrations_in_apps(migrations: int, apps: int) -> str:
    """ "3 migrations in 2 apps": the size of a rollback, wherever it is shown."""
    return f"{migrations_text(migrations)} in {apps_text(apps)}"


def to_unapply(migrations: int, apps: int) -> str:
    """ "3 migrations in 2 apps to unapply.": the size sentence of every preview (the command's
    summary line, the admin's preview page)."""
    return f"{migrations_in_apps(migrations, apps)} to unapply."


def describe_size(size: int | None, *, largest: str = "GB") -> str:
    """A byte count as people read it: "512 bytes", "1.5 kB", "2.0 GB" (up to the unit
    `largest`: archives stop at GB, table sizes at TB)."""
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == largest:
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def describe_archive_item(item: ArchiveItem) -> str:
    """One archived table or column, as the log entry page lists it."""
    if item.column is None:
        return f'table "{item.table}" ({item.rows} rows)'
    return f'column "{item.table}"."{item.column}" ({item.rows} rows)'
