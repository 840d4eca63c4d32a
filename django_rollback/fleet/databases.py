"""--all-databases: every alias of DATABASES that keeps saved states, in one fleet.

A django-tenants alias brings its schemas (public and each tenant); any other alias is one
target of kind "database". Aliases whose router keeps django_rollback out, or that hold no
saved state, are left out. The first alias is the home of an --atomic run (atomic.py)."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, connections, router

from ..exceptions import RollbackError, database_error
from ..models import MigrationState
from .plans import plan_fleet
from .results import FleetPlan
from .targets import home_target, on_schema


def aliases_to_save() -> list[str]:
    """The aliases (in DATABASES' order) whose router lets django_rollback migrate there:
    each keeps its own saved states. One that is not migrated yet, or does not answer, is a
    failed target of a save, not left out silently."""
    return [alias for alias in connections if router.allow_migrate_model(alias, MigrationState)]


def aliases_with_states() -> list[str]:
    """The aliases (in DATABASES' order) where django_rollback migrates and a state is saved.
    One that does not answer refuses the run: it may hold states, and "every database" must
    not quietly mean the others."""
    found = []
    for alias in aliases_to_save():
        try:
            with on_schema(home_target(alias)) as connection:
                tables = set(connection.introspection.table_names())
                if MigrationState._meta.db_table not in tables:
                    continue
                if MigrationState.objects.using(alias).exists():
                    found.append(alias)
        except DatabaseError as exc:
            raise RollbackError(
                f"{database_error(alias, exc)}. Nothing was changed: bring it back, or roll the "
                "other databases back one by one with --database."
            ) from None
    return found


def plan_databases(**plan_options: Any) -> FleetPlan:
    """One fleet plan over every alias with saved states: each planned as plan_fleet() plans
    one database, then put together (every alias's tenants before the shared targets)."""
    aliases = aliases_with_states()
    if not aliases:
        raise RollbackError("No database in DATABASES has a saved state: nothing to roll back.")
    plans = [plan_fleet(database=alias, whole=True, **plan_options) for alias in aliases]
    commits = {plan.target_commit for plan in plans}
    if len(commits) > 1:
        raise RollbackError(
            "The databases name different commits for this target ("
            + ", ".join(f"{p.database}: {p.target_commit[:12]}" for p in plans)
            + "): roll them back one by one with --database."
        )
    runs = [r for p in plans for r in p.runs if r.target.kind == "tenant"]
    runs += [r for p in plans for r in p.runs if r.target.kind != "tenant"]
    first = plans[0]
    combined = FleetPlan(first.database, first.target_commit, first.target_tags, runs)
    combined.skip_unsaved = first.skip_unsaved
    combined.plans_built = sum(p.plans_built for p in plans)
    combined.databases = aliases
    return combined
