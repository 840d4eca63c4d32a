"""The core that the commands and the admin call: one module per job below this face.

    connection  ready_connection: the database answers and holds our tables
    commit      current_commit: the deployed commit and its tags
    saving      save_state: what is applied now, saved as that commit's state
    readiness   readiness: could a rollback to the previous state run?
    standing    overview, list_states: where the database stands, in one sentence
    drift       check_drift: `--check`
    targets     plan_rollback, resolve_state: which state a rollback goes to, and its plan

Running a plan lives in execution.py and the admin's detached runner in background.py; their
entry points are listed here too, so a skin needs this one module. Nothing here prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..execution import (
    LockSettings,
    RollbackResult,
    StepEvent,
    check_rehearsable,
    current_user,
    describe_state,
    execute,
    record_dry_run,
    rehearse,
)
from ..presenters.text import migrations_text
from ..progress import LiveProgress, live_progress
from .commit import CurrentCommit, current_commit
from .connection import open_repository, ready_connection
from .drift import DriftReport, check_drift
from .readiness import Readiness, readiness
from .saving import SAVE_WAIT_SECONDS, SaveResult, save_state
from .squashes import known_squashes
from .standing import (
    DatabaseOverview,
    PastRollback,
    Standing,
    StateListing,
    UndoSummary,
    list_states,
    overview,
)
from .targets import plan_rollback, resolve_state

if TYPE_CHECKING:
    from ..background import start_rollback

__all__ = [
    "SAVE_WAIT_SECONDS",
    "CurrentCommit",
    "DatabaseOverview",
    "DriftReport",
    "LiveProgress",
    "LockSettings",
    "PastRollback",
    "Readiness",
    "RollbackResult",
    "SaveResult",
    "Standing",
    "StateListing",
    "StepEvent",
    "UndoSummary",
    "check_drift",
    "check_rehearsable",
    "current_commit",
    "current_user",
    "describe_state",
    "execute",
    "known_squashes",
    "list_states",
    "live_progress",
    "migrations_text",
    "open_repository",
    "overview",
    "plan_rollback",
    "readiness",
    "ready_connection",
    "record_dry_run",
    "rehearse",
    "resolve_state",
    "save_state",
    "start_rollback",
]


def __getattr__(name: str) -> object:
    """`start_rollback` (the admin's way: queue the plan, start a runner) lives in
    background.py, which sits above the services and plans through `targets`: it is looked up
    on first use so that importing the services never imports the runner."""
    if name == "start_rollback":
        from .. import background

        return background.start_rollback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
