"""`--check`: is the database what the saved state of the deployed commit says?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.db import (
    DEFAULT_DB_ALIAS,
)

from ..models import (
    MigrationKey,
    MigrationState,
)
from .commit import current_commit
from .connection import ready_connection
from .standing import StandingStatus, overview


@dataclass
class DriftReport:
    """Whether the database is what the current commit's saved state says it is: the
    Standing of the database (status and message as the admin shows them) for --check."""

    status: StandingStatus
    message: str
    commit: str
    state: MigrationState | None = None
    latest: MigrationState | None = None
    missing: frozenset[MigrationKey] = frozenset()  # saved in the state, not applied now
    unexpected: frozenset[MigrationKey] = frozenset()  # applied now, not in the state

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "status": self.status,
            "message": self.message,
            "commit": self.commit,
            "state_id": self.state.pk if self.state else None,
            "latest_state_id": self.latest.pk if self.latest else None,
            "missing": [list(key) for key in sorted(self.missing)],
            "unexpected": [list(key) for key in sorted(self.unexpected)],
        }


def check_drift(
    *,
    repo_path: str | Path | None = None,
    database: str = DEFAULT_DB_ALIAS,
    commit: str | None = None,
) -> DriftReport:
    """Compare the database with the saved state of the current commit. Never writes."""
    ready_connection(database)
    head = current_commit(repo_path=repo_path, commit=commit, option="--current-commit")
    view = overview(repo_path=repo_path, database=database, head=head)
    standing = view.standing
    return DriftReport(
        standing.status,
        standing.message,
        head.sha,
        view.current,
        view.latest,
        standing.missing,
        standing.unexpected,
    )
