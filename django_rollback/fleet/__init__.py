"""Many targets at once: the schemas of a django-tenants database.

A *target* is one schema of one database alias: the public schema (kind "shared") or a tenant
schema (kind "tenant"). django_rollback is installed in both SHARED_APPS and TENANT_APPS, so
every schema holds its own saved states and audit log, and everything the single-database code
does (save, plan, execute, archive) runs unchanged once the connection points at the schema:
django-tenants' router makes the operations of apps that do not live in a schema no-ops there,
and its introspection lists the tables of the current schema only.

Saving goes public first, then every tenant (migrate_schemas' order). Rolling back plans every
target before anything runs (a refusal anywhere changes nothing anywhere), then rolls every
tenant back, then the public schema: the reverse of migrate_schemas' order. The rules for the
targets that do not fit (docs/tenants.md):

- a target with no saved state at the target commit (a tenant created after that release) is
  "unsaved": the whole run is refused unless `skip_unsaved`, which leaves it as it is;
- a target already at the target state (a run finished before) is "done" and left alone, so
  running the same command again finishes what is left;
- a tenant whose applied set differs from the most common one among the tenants is "odd": it
  is rolled back from its own saved state with its own plan, and listed;
- when a tenant fails, the public schema is "held" (not rolled back): the tenants at the newer
  release may still need its shared tables; the next run rolls it back.

Nothing here prints: results are dataclasses that the commands present.
"""

from __future__ import annotations

from .atomic import check_two_phase
from .databases import aliases_with_states, plan_databases
from .plans import plan_fleet
from .recovery import Resolution, prepared, recover
from .reference import resolve_reference
from .restoring import TargetRestore, restore_fleet
from .results import AppliedGroup, FleetPlan, FleetResult, TargetRun
from .running import default_jobs, dry_run, run_fleet
from .saving import FleetSave, TargetSave, save_fleet
from .targets import (
    Selection,
    Target,
    TargetKind,
    TargetStatus,
    check_setup,
    on_schema,
    parse_schemas,
    public_schema,
    targets,
    uses_tenants,
)

__all__ = [
    "AppliedGroup",
    "FleetPlan",
    "FleetResult",
    "FleetSave",
    "Resolution",
    "Selection",
    "Target",
    "TargetKind",
    "TargetRestore",
    "TargetRun",
    "TargetSave",
    "TargetStatus",
    "aliases_with_states",
    "check_setup",
    "check_two_phase",
    "default_jobs",
    "dry_run",
    "on_schema",
    "parse_schemas",
    "plan_databases",
    "plan_fleet",
    "prepared",
    "public_schema",
    "recover",
    "resolve_reference",
    "restore_fleet",
    "run_fleet",
    "save_fleet",
    "targets",
    "uses_tenants",
]
