"""The coordinator of --atomic: prepare every target, decide, then commit or roll back all.

atomic.py holds the pieces (the hook that prepares, the decision row, the lock); this module
runs them in order, and recovery.py resolves what a dead coordinator left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError

from ..models import FleetDecision
from .atomic import (
    GID_PREFIX,
    Coordinator,
    check_two_phase,
    finish_prepared,
    mark_aborted,
    pause,
)
from .recovery import prepared
from .results import FleetPlan, TargetRun
from .workers import run_all

Progress = Callable[[TargetRun], None] | None


def run_atomic(
    fleet: FleetPlan, jobs: int, on_target: Progress, execute_options: dict[str, Any]
) -> None:
    """Prepare every planned target; commit them all when every one is prepared, roll every
    prepared one back otherwise. The decision is on disk before the first of either."""
    for database in dict.fromkeys(r.target.database for r in fleet.runs):
        check_two_phase(database)
    planned = fleet.planned
    if not planned:
        return
    coordinator = Coordinator.start(fleet.database, [r.target.name for r in planned])
    try:
        for index, run in enumerate(fleet.runs):
            if run.status == "planned":
                run.gid = coordinator.gid(index)
        pause("before-prepare")
        run_all(fleet, jobs, _pausing_after_first(on_target), execute_options)
        ready = [r for r in fleet.runs if r.status == "prepared"]
        if len(ready) == len(planned):
            pause("after-prepare")
            coordinator.decide(FleetDecision.Decision.COMMIT)
            _commit(ready, on_target)
        else:
            _abort(coordinator, fleet, on_target)
        coordinator.resolved()
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or broken: finish the way already decided, or abort.
        with contextlib.suppress(DatabaseError):
            if coordinator.decision == FleetDecision.Decision.COMMIT:
                _commit([r for r in fleet.runs if r.status == "prepared"], None)
            else:
                _abort(coordinator, fleet, None)
            coordinator.resolved()
        raise
    finally:
        coordinator.close()


def _pausing_after_first(on_target: Progress) -> Callable[[TargetRun], None]:
    seen: list[TargetRun] = []

    def report(run: TargetRun) -> None:
        if on_target is not None:
            on_target(run)
        if run.status == "prepared" and not seen:
            seen.append(run)
            pause("during-prepare")

    return report


def _commit(ready: list[TargetRun], on_target: Progress) -> None:
    for number, run in enumerate(ready):
        assert run.gid is not None
        finish_prepared(run.target.database, run.gid, commit=True)
        run.status = "succeeded"
        run.message = run.message.replace(", prepared (two-phase commit)", "") + ", committed"
        if on_target is not None:
            on_target(run)
        if number == 0:
            pause("during-commit")


def _abort(coordinator: Coordinator, fleet: FleetPlan, on_target: Progress) -> None:
    coordinator.decide(FleetDecision.Decision.ABORT)
    failed = [r.target.name for r in fleet.runs if r.status == "failed"]
    why = (
        "rolled back with every other target (--atomic): "
        + (", ".join(failed) if failed else "the run was interrupted")
        + (" failed" if failed else "")
    )
    for run in fleet.runs:
        if run.status == "prepared":
            assert run.gid is not None
            finish_prepared(run.target.database, run.gid, commit=False)
            run.status, run.message = "aborted", why
            mark_aborted(run.target.database, run.target, run.log_id, f"Not committed: {why}.")
            if on_target is not None:
                on_target(run)
        elif run.status in ("planned", "held"):
            run.status, run.message = "aborted", f"not rolled back: {why}"
    # A worker stopped between its PREPARE and its report (Ctrl-C, SIGTERM) left one that no
    # run says is prepared: every transaction of this run goes.
    for database in dict.fromkeys(r.target.database for r in fleet.runs):
        for gid in prepared(database):
            if gid.startswith(f"{GID_PREFIX}:{coordinator.run}:"):
                finish_prepared(database, gid, commit=False)
