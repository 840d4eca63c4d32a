"""Planning every target of a fleet before anything runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.backends.base.base import BaseDatabaseWrapper

from .. import services
from ..exceptions import RollbackError, RollbackInterruptedError
from ..models import MigrationState
from ..planning import labels
from ..snapshot import applied_migrations
from .reference import resolve_reference
from .results import FleetPlan, TargetRun
from .targets import Selection, Target, TargetStatus, on_schema, targets


def plan_fleet(
    *,
    database: str = DEFAULT_DB_ALIAS,
    selection: Selection | None = None,
    tag: str | None = None,
    commit: str | None = None,
    repo_path: str | Path | None = None,
    deployed_commit: str | None = None,
    archive: bool | None = None,
    skip_unsaved: bool = False,
    count_rows: bool = True,
) -> FleetPlan:
    """Plan every target (tenants first, then public), without writing anything."""
    chosen = targets(database, selection)
    target_state = resolve_reference(
        database, tag=tag, commit=commit, repo_path=repo_path, deployed_commit=deployed_commit
    )
    sha = target_state.commit
    ordered = [t for t in chosen if t.kind == "tenant"] + [t for t in chosen if t.kind == "shared"]
    runs: list[TargetRun] = []
    for target in ordered:
        with on_schema(target) as connection:
            runs.append(
                _plan_target(
                    target,
                    connection,
                    sha,
                    skip_unsaved=skip_unsaved,
                    repo_path=repo_path,
                    deployed_commit=deployed_commit,
                    archive=archive,
                    count_rows=count_rows,
                )
            )
    _mark_odd(runs)
    return FleetPlan(database, sha, list(target_state.tags), runs, skip_unsaved)


def _plan_target(
    target: Target,
    connection: BaseDatabaseWrapper,
    sha: str,
    *,
    skip_unsaved: bool,
    **plan_options: Any,
) -> TargetRun:
    try:
        services.ready_connection(target.database)
        applied = applied_migrations(connection)
        states = MigrationState.objects.using(target.database)
        goal = states.filter(commit=sha).first()
        if goal is None:
            status: TargetStatus = "skipped" if skip_unsaved else "unsaved"
            return TargetRun(
                target,
                status,
                f"no state saved at commit {sha[:12]} (created after it): left as it is",
                applied,
            )
        latest = states.latest_state()
        if latest is not None and latest.pk == goal.pk and applied == goal.migration_set:
            return TargetRun(target, "done", f"already at {services.describe_state(goal)}", applied)
        plan = services.plan_rollback(
            commit=sha, database=target.database, with_sql=False, **plan_options
        )
    except RollbackInterruptedError:
        raise
    except RollbackError as exc:
        return TargetRun(target, "refused", str(exc))
    if plan.blockers:
        return TargetRun(target, "refused", " ".join(plan.blockers), applied, plan)
    if plan.is_noop:
        return TargetRun(target, "done", "nothing to unapply", applied, plan)
    return TargetRun(
        target,
        "planned",
        f"{len(plan.steps)} migration{'s' if len(plan.steps) != 1 else ''} to unapply",
        applied,
        plan,
    )


def _mark_odd(runs: list[TargetRun]) -> None:
    """Flag tenants whose applied set differs from the most common one among the tenants."""
    tenants = [r for r in runs if r.target.kind == "tenant" and r.applied]
    if len(tenants) < 2:
        return
    norm, _count = Counter(r.applied for r in tenants).most_common(1)[0]
    for run in tenants:
        if run.applied != norm:
            run.odd = True
            extra, missing = run.applied - norm, norm - run.applied
            differs = []
            if extra:
                differs.append(f"also applied: {labels(extra)}")
            if missing:
                differs.append(f"not applied: {labels(missing)}")
            note = f"its applied set differs from most tenants' ({'; '.join(differs)})"
            run.message = f"{run.message}; {note}" if run.message else note
