"""Running a planned fleet: tenants in parallel processes, then public."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .. import services
from ..exceptions import RollbackError, RollbackInterruptedError, Terminated
from .commit import run_atomic
from .results import FleetPlan, FleetResult, TargetRun
from .targets import on_schema
from .workers import run_all


def default_jobs() -> int:
    """--jobs by default: min(4, CPU count)."""
    return max(1, min(4, os.cpu_count() or 1))


def run_fleet(
    fleet: FleetPlan,
    *,
    jobs: int = 1,
    on_target: Callable[[TargetRun], None] | None = None,
    atomic: bool = False,
    **execute_options: Any,
) -> FleetResult:
    """Roll back every planned target: the tenants (in `jobs` processes at once), then
    public; each in its own transaction with its own lock, archive and log entry. A failure is
    recorded and the other targets go on. Refused when planning refused anything.

    With `atomic` (PostgreSQL), every target commits or none does (commit.py)."""
    refusal = fleet.refusal
    if refusal:
        raise RollbackError(refusal)
    if jobs < 1:
        raise RollbackError("--jobs needs a number of processes, 1 or more.")
    try:
        if atomic:
            run_atomic(fleet, jobs, on_target, execute_options)
        else:
            run_all(fleet, jobs, on_target, execute_options)
    except (KeyboardInterrupt, RollbackInterruptedError) as exc:
        # Ctrl-C or SIGTERM in a schema's rollback (its message says what that one did), or
        # between two schemas: the schemas finished before stay rolled back.
        done = [r.target.name for r in fleet.runs if r.status == "succeeded"]
        stopped = next((r for r in reversed(fleet.runs) if r.status == "failed"), None)
        where = (
            f" {stopped.target.name}: {exc}"
            if isinstance(exc, RollbackInterruptedError) and stopped
            else ""
        )
        raise RollbackInterruptedError(
            f"Interrupted:{where} {len(done)} schema{'s' if len(done) != 1 else ''} rolled "
            "back" + (f" ({', '.join(done)})" if done else "") + ", the others not; run the "
            "same command again to finish.",
            terminated=isinstance(exc, Terminated)
            or (isinstance(exc, RollbackInterruptedError) and exc.terminated),
        ) from None
    return FleetResult(fleet)


def dry_run(fleet: FleetPlan) -> FleetResult:
    """Keep each planned target's preview in its own audit log; nothing else is written."""
    for run in fleet.planned:
        assert run.plan is not None
        with on_schema(run.target):
            run.log_id = services.record_dry_run(run.plan).pk
    return FleetResult(fleet, dry_run=True)
