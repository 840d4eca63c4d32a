"""The values a run carries: its lock settings, what it has done so far, and its result."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Literal

from ..conf import get_setting
from ..exceptions import RollbackError
from ..models import RollbackLog
from ..planning import PlanStep, RollbackPlan

MAX_RETRY_DELAY = 30.0


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # containers often run as a uid with no passwd entry
        return os.environ.get("USER", "")


@dataclass(frozen=True)
class LockSettings:
    """How a run waits: `wait` seconds for the rollback lock, `timeout` seconds for each
    table lock (0: no limit), `tries` attempts when a table lock times out, the first pause
    `delay` seconds, doubled each time up to MAX_RETRY_DELAY."""

    timeout: float
    tries: int
    delay: float
    wait: float = 0.0

    @classmethod
    def read(
        cls, lock_timeout: float | None, retries: int | None, wait: float = 0.0
    ) -> LockSettings:
        """The values given, else the LOCK_TIMEOUT, LOCK_RETRIES and LOCK_RETRY_DELAY
        settings."""
        timeout = float(get_setting("LOCK_TIMEOUT") if lock_timeout is None else lock_timeout)
        tries = 1 + int(get_setting("LOCK_RETRIES") if retries is None else retries)
        delay = float(get_setting("LOCK_RETRY_DELAY"))
        if timeout < 0 or tries < 1 or delay < 0:
            raise RollbackError("The lock timeout, the retries and their delay cannot be negative.")
        return cls(timeout, tries, delay, wait)

    def pause(self, attempt: int) -> float:
        """Before the attempt after `attempt` (counted from 1)."""
        return min(self.delay * 2.0 ** (attempt - 1), MAX_RETRY_DELAY)


@dataclass
class RunRecord:
    """What a run has done so far: read when it fails or a signal interrupts it, so the
    message counts the steps themselves, never the output's text."""

    output: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)  # per step label
    running: list[PlanStep] = field(default_factory=list)  # started, the last one first to fail
    finished: list[PlanStep] = field(default_factory=list)
    committed: bool = False

    def new_attempt(self) -> None:
        self.running, self.finished = [], []


@dataclass(frozen=True)
class StepEvent:
    """Progress of a running rollback: `started` then `finished` (with seconds) per step;
    `waiting` (seconds: the pause, message: who holds the table) when an attempt could not
    lock a table in time and the rollback will start over."""

    kind: Literal["started", "finished", "waiting"]
    step: PlanStep
    seconds: float = 0.0
    message: str = ""
    number: int = 0  # of the step, from 1 up to `total`
    total: int = 0
    elapsed: float = 0.0  # since the first step began


@dataclass
class RollbackResult:
    plan: RollbackPlan
    log: RollbackLog
    pruned: list[dict[str, object]]
    seconds: float
    audit_error: str | None = None  # the rollback succeeded but its log row could not be saved
    output: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)  # per step label
    rehearsal: bool = False  # ran in a transaction that was rolled back: nothing changed
