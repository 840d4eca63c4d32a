"""Squashed migrations a database can know of, beyond the files on disk."""

from __future__ import annotations

from ..models import (
    MigrationState,
    RollbackLog,
)
from ..snapshot import (
    SquashMap,
    squashes_on_disk,
)


def saved_squashes(database: str) -> list[SquashMap]:
    """Squashes recorded with the saved states (their files may be gone from disk)."""
    states = MigrationState.objects.using(database)
    return [s.squashes for s in states.only("squashes") if s.squashes]


def known_squashes(database: str) -> list[SquashMap]:
    """Every squash this database can know of: the files on disk, the saved states, and
    the plans of past rollbacks (whose newer states and files may both be gone)."""
    logs = RollbackLog.objects.using(database).succeeded()
    from_logs = [m for m in logs.values_list("plan__squashes", flat=True) if isinstance(m, dict)]
    return [squashes_on_disk(), *saved_squashes(database), *from_logs]
