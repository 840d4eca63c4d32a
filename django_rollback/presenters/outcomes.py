"""What a save and a restore did, in the words that save_migrations_state and
restore_rollback_archive print and that the admin shows as its messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext

from .text import describe_state

if TYPE_CHECKING:  # results of the core: types only, the core does not import presenters back
    from ..archive.restoring import ItemOutcome, RestoreResult
    from ..services.saving import SaveResult


def save_outcome(result: SaveResult) -> str:
    """ "State successfully created for commit "…" ['v2']." (0.4.0's words), or that the state
    was updated, or that it was saved already."""
    state = {"state": describe_state(result.state)}
    if result.created:
        return gettext("State successfully created for %(state)s.") % state
    if result.updated:
        return (
            gettext(
                "State updated for %(state)s: the applied migrations changed since it was saved."
            )
            % state
        )
    return gettext("State for %(state)s was already saved.") % state


def not_latest_warning(result: SaveResult) -> str:
    """A commit saved again whose state is not the newest: an older release runs."""
    return gettext(
        "%(state)s is not the latest saved state (the latest is %(latest)s). Was an older "
        "release deployed without rollback_migrations? Check the applied migrations before "
        "rolling back."
    ) % {"state": describe_state(result.state), "latest": describe_state(result.latest)}


def restore_item_line(outcome: ItemOutcome, *, fake: bool) -> str:
    """'"shop_book"."pages": restored 3 of 4 values; skipped 1 row deleted': one archived
    table or column of a restore (or of its dry run)."""
    item = outcome.item
    what = f'"{item.table}"' + (f'."{item.column}"' if item.column else "")
    verb = gettext("would restore") if fake else gettext("restored")
    unit = gettext("rows") if item.column is None else gettext("values")
    line = f"{what}: {verb} {outcome.restored} of {item.rows} {unit}"
    if outcome.skipped:
        reasons = ", ".join(f"{count} {why}" for why, count in outcome.skipped.items())
        line += "; " + gettext("skipped %(reasons)s") % {"reasons": reasons}
    return line


def restored_sentence(result: RestoreResult) -> str:
    """ "Restored 7 rows/values, skipped 1": what a restore did, in the command and the admin."""
    return gettext("Restored %(restored)d rows/values, skipped %(skipped)d") % {
        "restored": result.restored,
        "skipped": result.skipped,
    }


def restore_preview_sentence(result: RestoreResult) -> str:
    """What a restore's dry run found, in the command (--fake) and on the admin's restore page."""
    return gettext(
        "Dry run: restoring would put back %(restored)d rows/values and skip %(skipped)d. "
        "Nothing has been changed yet."
    ) % {"restored": result.restored, "skipped": result.skipped}
