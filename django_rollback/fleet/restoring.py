"""Putting back what a fleet rollback archived: each schema's own archive, schema by schema.

Every schema keeps its archive (django_rollback_archive_<schema>) and its log entries, so a
schema's restore is the single-database restore with the connection pointed at the schema.
A schema whose archives are all restored (or purged) already has nothing to do: running the
same command again finishes what is left."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .. import archive
from ..exceptions import RollbackError
from .targets import Selection, Target, on_schema, targets

RestoreStatus = Literal["restored", "nothing", "failed"]


@dataclass
class TargetRestore:
    target: Target
    status: RestoreStatus
    result: archive.RestoreResult | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.target.as_dict(),
            "status": self.status,
            "error": self.error,
            **(self.result.as_dict() if self.result is not None else {}),
        }


def restore_fleet(
    database: str,
    selection: Selection,
    *,
    fake: bool = False,
    on_target: Callable[[TargetRestore], None] | None = None,
) -> list[TargetRestore]:
    """Restore the most recent restorable archive of every selected schema, each in its own
    transaction; a failure is recorded and the others go on. `fake` counts, changes nothing."""
    outcomes = []
    for target in targets(database, selection):
        with on_schema(target):
            outcome = _restore_one(target, fake)
        outcomes.append(outcome)
        if on_target is not None:
            on_target(outcome)
    return outcomes


def _restore_one(target: Target, fake: bool) -> TargetRestore:
    if not archive.kept_archives(target.database):
        return TargetRestore(target, "nothing")
    try:
        log = archive.find_archive(target.database)
        return TargetRestore(target, "restored", archive.restore(log, fake=fake))
    except RollbackError as exc:
        return TargetRestore(target, "failed", error=str(exc))
