"""`rollback_migrations --list`: the saved states as a table, newest first."""

from __future__ import annotations

from ..models import SHORT_COMMIT_LENGTH
from ..services import StateListing


def state_table_lines(listing: StateListing, database: str) -> list[str]:
    """The heading, one line per state (a star on HEAD's) and the star's legend; the
    sentence of where the database stands is the caller's to print."""
    head = listing.head.sha if listing.head else None
    lines = [
        f"Saved migration states in database '{database}', newest first:",
        f"     {'ID':>5}  {'COMMIT':<{SHORT_COMMIT_LENGTH}}  {'SAVED AT (UTC)':<19}  "
        f"{'APPS':>4}  {'MIGRATIONS':>10}  TAGS",
    ]
    for state in listing.states:
        marker = "*" if state.commit == head else " "
        saved = state.saved_at.strftime("%Y-%m-%d %H:%M:%S")
        tags = ", ".join(state.tags) or "-"
        if state.unresolved:  # converted from 0.4.0 without its full set
            tags += f"  (not a rollback target: no file for {state.unresolved_labels})"
        lines.append(
            f"  {marker}  {state.pk:>5}  {state.short_commit:<{SHORT_COMMIT_LENGTH}}  "
            f"{saved:<19}  {state.app_count:>4}  {len(state.migrations):>10}  {tags}"
        )
    if head and any(state.commit == head for state in listing.states):
        lines.append("  * = the current commit (HEAD)")
    return lines
