"""Planning every target of a fleet before anything runs."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.backends.base.base import BaseDatabaseWrapper

from .. import services
from ..exceptions import RollbackError, RollbackInterruptedError
from ..models import MigrationKey, MigrationState
from ..planning import RollbackPlan, labels
from ..snapshot import applied_migrations
from .counting import count_shared
from .reference import resolve_reference
from .results import FleetPlan, TargetRun
from .survey import CHUNK, Surveyed, survey
from .targets import Selection, Target, TargetStatus, on_schema, search_path_cached, targets


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
    exact_counts: bool = False,
    whole: bool = False,
) -> FleetPlan:
    """Plan every target (tenants first, then public), without writing anything. With
    `whole`, a database without django-tenants is planned as one target; with `exact_counts`,
    the rows each target would lose are counted, never estimated."""
    chosen = targets(database, selection, whole=whole)
    target_state = resolve_reference(
        database, tag=tag, commit=commit, repo_path=repo_path, deployed_commit=deployed_commit
    )
    sha = target_state.commit
    ordered = [t for t in chosen if t.kind == "tenant"] + [t for t in chosen if t.kind != "tenant"]
    shared = SharedPlans(_head_commit(repo_path, deployed_commit))
    plan_options = dict(
        repo_path=repo_path,
        deployed_commit=deployed_commit,
        archive=archive,
        count_rows=count_rows,
        exact_counts=exact_counts,
    )
    runs: list[TargetRun] = []
    commits = [sha] + ([shared.head] if shared.head else [])
    with search_path_cached(database):  # reading only: one SET per schema is enough
        # CHUNK schemas' rows in a few queries, planned, then dropped: the coordinator, whose
        # memory every worker starts from, never holds every schema's rows at once.
        for start in range(0, len(ordered), CHUNK):
            part = ordered[start : start + CHUNK]
            surveyed = survey(database, part, commits)
            for target in part:
                found = surveyed.pop(target.schema, None)
                runs.append(_plan_on_schema(target, sha, shared, skip_unsaved, plan_options, found))
        if count_rows:
            count_shared(database, runs, exact=exact_counts)
    _mark_odd(runs)
    fleet = FleetPlan(database, sha, list(target_state.tags), runs, skip_unsaved)
    fleet.plans_built = shared.built
    return fleet


def _plan_on_schema(
    target: Target,
    sha: str,
    shared: SharedPlans,
    skip_unsaved: bool,
    plan_options: dict[str, Any],
    found: Surveyed | None = None,
) -> TargetRun:
    with on_schema(target) as connection:
        return _plan_target(
            target, connection, sha, shared, found, skip_unsaved=skip_unsaved, **plan_options
        )


def _head_commit(repo_path: str | Path | None, deployed_commit: str | None) -> str | None:
    """The current commit, asked once for the fleet; None leaves every target to
    plan_rollback(), which says why it cannot tell."""
    try:
        return services.current_commit(
            repo_path=repo_path, commit=deployed_commit, option="--current-commit"
        ).sha
    except RollbackError:
        return None


@dataclass
class SharedPlans:
    """One plan per group of targets that stand at the same place: same database and kind,
    same applied set, same saved current and target states. The first target of a group is
    planned in full (graph, sets, steps, checks, row counts); the others take a copy that
    differs only in their own saved-state rows, which the run checks and prunes; what the
    plan drops is counted in each of them afterwards (counting.py)."""

    head: str | None
    plans: dict[tuple[object, ...], tuple[str, RollbackPlan]] = field(default_factory=dict)
    built: int = 0
    applied_sets: dict[frozenset[MigrationKey], frozenset[MigrationKey]] = field(
        default_factory=dict
    )

    def key(
        self,
        target: Target,
        applied: frozenset[MigrationKey],
        goal: MigrationState,
        found: Surveyed | None = None,
    ) -> tuple[object, ...] | None:
        if self.head is None:
            return None
        if found is not None:
            current = found.at(self.head)
        else:
            states = MigrationState.objects.using(target.database)
            current = states.filter(commit=self.head).first()
        if current is None or goal.unresolved or goal.pk >= current.pk:
            return None  # plan_rollback() words the refusal
        place = (
            target.database,
            target.kind,
            target.tenant_type,  # another type, other apps: the router skips other steps
            applied,
            goal.migration_set,
            current.migration_set,
        )
        return (*place, current, goal)

    def get(self, key: tuple[object, ...] | None) -> tuple[str, RollbackPlan] | None:
        if key is None:
            return None
        found = next(
            (plan for k, plan in self.plans.items() if k[:-2] == key[:-2]),
            None,
        )
        if found is None:
            return None
        name, plan = found
        current, goal = key[-2], key[-1]
        assert isinstance(current, MigrationState) and isinstance(goal, MigrationState)
        _share_values(current, plan.current)
        _share_values(goal, plan.target)
        return name, dataclasses.replace(plan, current=current, target=goal)

    def interned(self, applied: frozenset[MigrationKey]) -> frozenset[MigrationKey]:
        """One object per distinct applied set, however many targets stand at it: the
        coordinator keeps (and every forked worker inherits) one copy, not one per schema."""
        return self.applied_sets.setdefault(applied, applied)

    def add(self, key: tuple[object, ...] | None, name: str, plan: RollbackPlan) -> None:
        self.built += 1
        if key is not None and not plan.blockers:
            self.plans.setdefault(key, (name, plan))


def _share_values(state: MigrationState, like: MigrationState) -> None:
    """A schema's saved-state row keeps its own id, commit and dates; its lists of
    migrations, equal to those of the row its group's plan was made with, become that row's
    (one copy in memory for the group)."""
    for name in ("tags", "migrations", "squashes", "readiness", "unresolved"):
        value = getattr(like, name)
        if getattr(state, name) == value:
            setattr(state, name, value)


def _plan_target(
    target: Target,
    connection: BaseDatabaseWrapper,
    sha: str,
    shared: SharedPlans,
    surveyed: Surveyed | None,
    *,
    skip_unsaved: bool,
    **plan_options: Any,
) -> TargetRun:
    try:
        applied, goal, latest = _read_target(target, connection, sha, surveyed)
        applied = shared.interned(applied)
        if goal is None:
            status: TargetStatus = "skipped" if skip_unsaved else "unsaved"
            return TargetRun(
                target,
                status,
                f"no state saved at commit {sha[:12]} (created after it): left as it is",
                applied,
            )
        if latest is not None and latest.pk == goal.pk and applied == goal.migration_set:
            return TargetRun(target, "done", f"already at {services.describe_state(goal)}", applied)
        key = shared.key(target, applied, goal, surveyed)
        found = shared.get(key)
        if found is not None:
            plan_of, plan = found
        else:
            plan_of, plan = (
                target.name,
                services.plan_rollback(
                    commit=sha, database=target.database, with_sql=False, **plan_options
                ),
            )
            shared.add(key, target.name, plan)
    except RollbackInterruptedError:
        raise
    except RollbackError as exc:
        return TargetRun(target, "refused", str(exc))
    if plan.blockers:
        return TargetRun(target, "refused", " ".join(plan.blockers), applied, plan)
    if plan.is_noop:
        return TargetRun(target, "done", "nothing to unapply", applied, plan)
    run = TargetRun(
        target,
        "planned",
        f"{len(plan.steps)} migration{'s' if len(plan.steps) != 1 else ''} to unapply",
        applied,
        plan,
    )
    run.plan_of = plan_of
    return run


def _read_target(
    target: Target, connection: BaseDatabaseWrapper, sha: str, found: Surveyed | None
) -> tuple[frozenset[MigrationKey], MigrationState | None, MigrationState | None]:
    """The schema's applied set, its state at the target commit and its latest state: from
    the survey, or asked here (which refuses a schema without the tables)."""
    if found is not None:
        return found.applied, found.at(sha), found.latest
    services.ready_connection(target.database)
    applied = applied_migrations(connection)
    states = MigrationState.objects.using(target.database)
    goal = states.filter(commit=sha).first()
    if goal is None:
        return applied, None, None
    return applied, goal, states.latest_state()


def _mark_odd(runs: list[TargetRun]) -> None:
    """Flag tenants whose applied set differs from the most common one among the tenants
    (of their type, with multi-type tenants)."""
    by_type: dict[str | None, list[TargetRun]] = {}
    for run in runs:
        if run.target.kind == "tenant" and run.applied:
            by_type.setdefault(run.target.tenant_type, []).append(run)
    for tenants in by_type.values():
        if len(tenants) > 1:
            _mark_odd_among(tenants)


def _mark_odd_among(tenants: list[TargetRun]) -> None:
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
