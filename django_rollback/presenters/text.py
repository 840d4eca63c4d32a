"""Sentences and numbers that the commands and the admin both show, each built once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import ngettext

from ..models import MigrationState, describe_commit

if TYPE_CHECKING:  # archive/ uses this module: no import at run time
    from ..archive.items import ArchiveItem
    from ..fleet.results import GroupLoss


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


def describe_group_loss(total: GroupLoss) -> str:
    """What a group's plan drops over all its schemas, as the fleet previews (the command's
    and the admin's) say it: 'notes.0003_comment: drops table "notes_comment": 11 rows in 2
    of 3 schemas (most in beta: 8): archived (restorable)'."""
    loss = total.loss
    if loss.column is None:
        what = f'drops table "{loss.table}"'
        unit = ngettext("row", "rows", total.rows)
    else:
        what = f'drops column "{loss.table}"."{loss.column}"'
        unit = ngettext("non-null value", "non-null values", total.rows)
    schemas = ngettext(
        "%(count)d of %(total)d schema", "%(count)d of %(total)d schemas", total.schemas
    )
    text = (
        f"{total.migration}: {what}: {'≈ ' if total.estimated else ''}{total.rows:,} {unit} in "
        + schemas % {"count": total.holding, "total": total.schemas}
    )
    if total.same and total.holding > 1 and total.most is not None:
        text += f" ({total.most[1]:,} in each)"
    elif total.most is not None and total.holding > 1:
        text += f" (most in {total.most[0]}: {total.most[1]:,})"
    if total.uncounted:
        text += f"; not found in {total.uncounted}"
    return f"{text}: {'archived (restorable)' if loss.archived else 'lost'}"
