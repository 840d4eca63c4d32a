"""Running one plan on one database, as Django's executor runs what its loader planned:

    records    the values a run carries (lock settings, what it did, the result)
    checks     what a plan must pass before and after it runs
    steps      unapplying the steps, progress events
    running    execute(): the rollback for real, attempt after attempt, the audit row
    rehearsal  rehearse(): the same steps in a transaction rolled back at the end
    wording    the one wording of failures and interrupts

planning.py decides what to do; this package only does it, and refuses a plan that went
stale between the preview and the confirmation. The audit row's life is in audit.py.
"""

from __future__ import annotations

from ..audit import close_stale_running
from ..presenters.text import describe_state
from .checks import check_rehearsable
from .records import (
    MAX_RETRY_DELAY,
    LockSettings,
    RollbackResult,
    RunRecord,
    StepEvent,
    current_user,
)
from .rehearsal import rehearse
from .running import execute, record_dry_run
from .wording import first_error

__all__ = [
    "MAX_RETRY_DELAY",
    "LockSettings",
    "RollbackResult",
    "RunRecord",
    "StepEvent",
    "check_rehearsable",
    "close_stale_running",
    "current_user",
    "describe_state",
    "execute",
    "first_error",
    "record_dry_run",
    "rehearse",
]
