"""Rolling back the planned targets of a fleet: the tenant schemas (in worker processes when
--jobs allows), then the public schema, which is held when a tenant failed."""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.util
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.db import connections

from .. import progress, services
from ..exceptions import RollbackError, RollbackInterruptedError
from .atomic import prepare_hook
from .results import FleetPlan, TargetRun
from .targets import cache_search_path, on_schema, search_path_cached


def run_all(
    fleet: FleetPlan,
    jobs: int,
    on_target: Callable[[TargetRun], None] | None,
    execute_options: dict[str, Any],
) -> None:
    # --atomic: after a failure, the others would only be prepared to be rolled back.
    atomic = any(r.gid is not None for r in fleet.runs)

    def stop() -> bool:
        return atomic and any(r.status == "failed" for r in fleet.runs)

    tenants = [r for r in fleet.runs if r.status == "planned" and r.target.kind == "tenant"]
    if jobs > 1 and len(tenants) > 1:
        _run_forked(fleet, tenants, jobs, on_target, execute_options)
    else:
        with _in_this_process(fleet):
            for run in tenants:
                if stop():
                    break  # left "planned": the coordinator says they were not rolled back
                run_target(run, execute_options)
                if on_target is not None:
                    on_target(run)
    failed_in = {r.target.database for r in tenants if r.status == "failed"}
    with _in_this_process(fleet):
        _run_shared(fleet, failed_in, stop, on_target, execute_options)


@contextmanager
def _in_this_process(fleet: FleetPlan) -> Iterator[None]:
    """What a worker does for all its targets, for the block: one SET search_path per
    schema, one progress connection (both undone at the end)."""
    with ExitStack() as stack:
        for database in sorted({run.target.database for run in fleet.runs}):
            stack.enter_context(search_path_cached(database))
        stack.enter_context(progress.connections_kept())
        yield


def _run_shared(
    fleet: FleetPlan,
    failed_in: set[str],
    stop: Callable[[], bool],
    on_target: Callable[[TargetRun], None] | None,
    execute_options: dict[str, Any],
) -> None:
    """The targets that are not tenants (public schemas, databases), after the tenants."""
    for run in fleet.runs:
        if run.status != "planned" or run.target.kind == "tenant" or stop():
            continue
        if run.target.database in failed_in:  # the public schema of a database
            run.status = "held"
            run.message = (
                "not rolled back while a tenant schema failed: the tenants at the newer "
                "release may still use its tables; run the command again"
            )
        else:
            run_target(run, execute_options)
        if on_target is not None:
            on_target(run)


# The plan the worker processes inherit by fork: plans hold loaded migration graphs and model
# states that are costly (or impossible) to pickle, and a fork shares them for free.
_FORKED: FleetPlan | None = None

# What a worker sends back: (index in fleet.runs, status, message, log id, seconds, archive).
Outcome = tuple[int, str, str, int | None, float | None, dict[str, Any] | None]


def _run_forked(
    fleet: FleetPlan,
    runs: list[TargetRun],
    jobs: int,
    on_target: Callable[[TargetRun], None] | None,
    execute_options: dict[str, Any],
) -> None:
    global _FORKED
    indexes = [fleet.runs.index(run) for run in runs]
    connections.close_all()  # each process opens connections of its own
    _FORKED = fleet
    try:
        context = multiprocessing.get_context("fork")
        pool = context.Pool(min(jobs, len(runs)), initializer=_start_worker)
        try:
            task = functools.partial(_run_in_worker, options=execute_options)
            for index, status, message, log_id, seconds, archived in pool.imap_unordered(
                task, indexes
            ):
                run = fleet.runs[index]
                run.status, run.message = status, message  # type: ignore[assignment]
                run.log_id, run.seconds, run.archived = log_id, seconds, archived
                if on_target is not None:
                    on_target(run)
            pool.close()  # idle workers leave on their own: SIGTERM is for interruptions
        except BaseException:
            pool.terminate()  # each running rollback closes its log entry as interrupted
            raise
        finally:
            pool.join()
    finally:
        _FORKED = None


def _start_worker() -> None:
    # One connection per worker, kept from target to target (on_schema() switches its
    # search_path) and closed when the worker leaves: multiprocessing runs finalizers then.
    multiprocessing.util.Finalize(None, connections.close_all, exitpriority=10)
    progress.keep_connections()  # one progress connection per worker, not one per target
    multiprocessing.util.Finalize(None, progress.close_kept, exitpriority=10)
    assert _FORKED is not None
    for database in {run.target.database for run in _FORKED.runs}:
        cache_search_path(database)  # this process only: it is a fork


def _run_in_worker(index: int, options: dict[str, Any]) -> Outcome:
    assert _FORKED is not None
    run = _FORKED.runs[index]
    try:
        run_target(run, options)
    except RollbackInterruptedError as exc:
        run.status, run.message = "failed", str(exc)
        connections.close_all()  # interrupted mid-transaction: the next target starts afresh
    return index, run.status, run.message, run.log_id, run.seconds, run.archived


def run_target(run: TargetRun, execute_options: dict[str, Any]) -> bool:
    """Roll one target back; True when it succeeded (or, with --atomic, was prepared)."""
    assert run.plan is not None
    hook = prepare_hook(run.gid) if run.gid is not None else None
    with on_schema(run.target):
        try:
            result = services.execute(run.plan, before_commit=hook, **execute_options)
        except RollbackInterruptedError as exc:
            run.status, run.message = "failed", str(exc)
            raise
        except RollbackError as exc:
            run.status, run.message = "failed", str(exc)
            return False
    run.status = "succeeded" if run.gid is None else "prepared"
    run.log_id, run.seconds = result.log.pk, result.seconds
    run.archived = result.log.archive or None
    run.message = f"{run.steps} migration{'s' if run.steps != 1 else ''} unapplied"
    if run.gid is not None:
        run.message += ", prepared (two-phase commit)"
    return True
