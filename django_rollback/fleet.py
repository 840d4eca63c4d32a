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

import dataclasses
import functools
import multiprocessing
import multiprocessing.util
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from django.apps import apps
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionDoesNotExist

from . import services
from .exceptions import (
    AmbiguousCommitError,
    RepositoryError,
    RollbackError,
    RollbackInterruptedError,
    StateNotSavedError,
    Terminated,
    UnknownReferenceError,
)
from .git import GitRepository, validate_commit_prefix
from .models import MigrationKey, MigrationState
from .planning import RollbackPlan, labels
from .snapshot import applied_migrations

TargetKind = Literal["shared", "tenant"]
# planned → succeeded | failed | held; the others are decided while planning.
TargetStatus = Literal[
    "planned", "done", "unsaved", "refused", "succeeded", "failed", "held", "skipped"
]


@dataclass(frozen=True)
class Target:
    """One schema of one database."""

    database: str
    schema: str
    kind: TargetKind

    @property
    def name(self) -> str:
        """How lines and JSON name it: the schema, prefixed by the alias when not default."""
        return (
            self.schema if self.database == DEFAULT_DB_ALIAS else f"{self.database}:{self.schema}"
        )


@dataclass(frozen=True)
class Selection:
    """Which targets: `schemas` by name, or only the tenants, or only the public schema."""

    schemas: tuple[str, ...] = ()
    tenants_only: bool = False
    shared_only: bool = False

    @property
    def narrowed(self) -> bool:
        return bool(self.schemas) or self.tenants_only or self.shared_only


# --- targets ---------------------------------------------------------------------------------


def uses_tenants(database: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether this alias is a django-tenants database (its connection chooses a schema)."""
    try:
        connection = connections[database]
    except ConnectionDoesNotExist:
        return False
    return hasattr(connection, "set_schema") and hasattr(settings, "TENANT_MODEL")


def public_schema() -> str:
    return str(getattr(settings, "PUBLIC_SCHEMA_NAME", "public"))


def check_setup(database: str) -> None:
    """Refuse, with the sentence that says what to change, a setup the fleet cannot serve."""
    if not uses_tenants(database):
        raise RollbackError(
            f"Database '{database}' does not use django-tenants "
            "(ENGINE django_tenants.postgresql_backend and TENANT_MODEL): --schemas, "
            "--tenants-only and --shared-only need it."
        )
    for setting in ("SHARED_APPS", "TENANT_APPS"):
        if "django_rollback" not in getattr(settings, setting, ()):
            raise RollbackError(
                f'Add "django_rollback" to settings.{setting}: each schema keeps its own saved '
                "states (docs/tenants.md)."
            )


@contextmanager
def on_schema(target: Target) -> Iterator[BaseDatabaseWrapper]:
    """The connection of the target's database, pointed at its schema until the end."""
    connection = connections[target.database]
    # set_schema() sets search_path to the schema then public on each new cursor: every
    # query of the single-database code lands in this schema's tables.
    connection.set_schema(target.schema)  # type: ignore[attr-defined]
    try:
        yield connection
    finally:
        connection.set_schema_to_public()  # type: ignore[attr-defined]


def targets(database: str = DEFAULT_DB_ALIAS, selection: Selection | None = None) -> list[Target]:
    """The public schema, then every tenant schema by name (migrate_schemas' order)."""
    selection = selection or Selection()
    check_setup(database)
    if selection.tenants_only and selection.shared_only:
        raise RollbackError("Choose --tenants-only or --shared-only, not both.")
    if selection.schemas and (selection.tenants_only or selection.shared_only):
        raise RollbackError("--schemas names the schemas: drop --tenants-only/--shared-only.")
    public = Target(database, public_schema(), "shared")
    with on_schema(public):
        model = apps.get_model(getattr(settings, "TENANT_MODEL", ""))
        names = set(model._default_manager.using(database).values_list("schema_name", flat=True))
    found = [public] + [
        Target(database, name, "tenant") for name in sorted(names - {public.schema})
    ]
    if selection.schemas:
        known = {t.schema for t in found}
        unknown = [name for name in selection.schemas if name not in known]
        if unknown:
            raise RollbackError(
                f"Unknown schema{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} in "
                f"database '{database}': known are {', '.join(sorted(known))}."
            )
        return [t for t in found if t.schema in selection.schemas]
    if selection.tenants_only:
        return [t for t in found if t.kind == "tenant"]
    if selection.shared_only:
        return [public]
    return found


def parse_schemas(value: str | None) -> tuple[str, ...]:
    """The --schemas a,b option: names, in order, without blanks or repeats."""
    if value is None:
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not names:
        raise RollbackError("--schemas needs schema names separated by commas.")
    return names


# --- saving ----------------------------------------------------------------------------------


@dataclass
class TargetSave:
    target: Target
    result: services.SaveResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class FleetSave:
    database: str
    saves: list[TargetSave]

    @property
    def failed(self) -> list[TargetSave]:
        return [save for save in self.saves if not save.ok]


def save_fleet(
    *,
    database: str = DEFAULT_DB_ALIAS,
    selection: Selection | None = None,
    on_target: Callable[[TargetSave], None] | None = None,
    **save_options: Any,
) -> FleetSave:
    """save_state() in every target's schema, for the same commit; a failure in one target is
    recorded and the others are saved all the same."""
    saves: list[TargetSave] = []
    for target in targets(database, selection):
        save = TargetSave(target)
        with on_schema(target):
            try:
                save.result = services.save_state(database=database, **save_options)
            except RollbackInterruptedError:
                raise
            except RollbackError as exc:
                save.error = str(exc)
        saves.append(save)
        if on_target is not None:
            on_target(save)
    return FleetSave(database, saves)


# --- planning --------------------------------------------------------------------------------


@dataclass
class TargetRun:
    """One target of a fleet rollback: what planning found, then what running it did."""

    target: Target
    status: TargetStatus
    message: str = ""
    applied: frozenset[MigrationKey] = frozenset()
    plan: RollbackPlan | None = field(default=None, repr=False)
    odd: bool = False  # a tenant whose applied set differs from most tenants'
    log_id: int | None = None
    seconds: float | None = None
    archived: dict[str, Any] | None = None
    shares: str = ""  # the target whose plan this one reuses (same applied set and states)

    @property
    def steps(self) -> int:
        return len(self.plan.steps) if self.plan is not None else 0

    @property
    def data_loss(self) -> list[str]:
        """What unapplying drops in this schema, in the words of the single-database preview;
        counted in the first schema of a group only (`shares` names it)."""
        if self.plan is None or self.shares:
            return []
        return [f"{step.label}: {loss.describe()}" for step, loss in self.plan.data_loss]

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.target.database,
            "schema": self.target.schema,
            "kind": self.target.kind,
            "status": self.status,
            "message": self.message,
            "odd": self.odd,
            "plan_of": self.shares or None,
            "steps": [step.label for step in self.plan.steps] if self.plan is not None else [],
            "data_loss": self.data_loss,
            "log_id": self.log_id,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "archive": self.archived,
        }


@dataclass(frozen=True)
class AppliedGroup:
    """Targets of one kind that stand at the same applied set, and so share one plan."""

    kind: TargetKind
    applied: frozenset[MigrationKey]
    schemas: tuple[str, ...]
    steps: tuple[str, ...]


@dataclass
class FleetPlan:
    database: str
    target_commit: str
    target_tags: list[str]
    runs: list[TargetRun]
    skip_unsaved: bool = False

    @property
    def refused(self) -> list[TargetRun]:
        return [r for r in self.runs if r.status == "refused"]

    @property
    def unsaved(self) -> list[TargetRun]:
        return [r for r in self.runs if r.status in ("unsaved", "skipped")]

    @property
    def odd(self) -> list[TargetRun]:
        return [r for r in self.runs if r.odd]

    @property
    def planned(self) -> list[TargetRun]:
        return [r for r in self.runs if r.status == "planned"]

    @property
    def refusal(self) -> str | None:
        """Why nothing may run, or None."""
        reasons = []
        if self.refused:
            reasons.append(
                f"{len(self.refused)} target{'s' if len(self.refused) != 1 else ''} refused ("
                + ", ".join(r.target.name for r in self.refused)
                + ")"
            )
        unsaved = [r for r in self.runs if r.status == "unsaved"]
        if unsaved:
            reasons.append(
                f"{len(unsaved)} schema{'s have' if len(unsaved) != 1 else ' has'} no saved "
                f"state at commit {self.target_commit[:12]} ("
                + ", ".join(r.target.name for r in unsaved)
                + "): created after it; --skip-unsaved leaves "
                + ("them" if len(unsaved) != 1 else "it")
                + " as "
                + ("they are" if len(unsaved) != 1 else "it is")
            )
        if not reasons:
            return None
        return "Refusing to roll back any schema: " + "; ".join(reasons) + "."

    def groups(self) -> list[AppliedGroup]:
        """The planned targets grouped by kind and applied set, largest group first."""
        found: dict[tuple[TargetKind, frozenset[MigrationKey]], list[TargetRun]] = {}
        for run in self.planned:
            found.setdefault((run.target.kind, run.applied), []).append(run)
        groups = [
            AppliedGroup(
                kind,
                applied,
                tuple(r.target.name for r in runs),
                tuple(s.label for s in runs[0].plan.steps) if runs[0].plan else (),
            )
            for (kind, applied), runs in found.items()
        ]
        return sorted(groups, key=lambda g: (g.kind != "tenant", -len(g.schemas), g.schemas))


def resolve_reference(
    database: str,
    *,
    tag: str | None = None,
    commit: str | None = None,
    repo_path: str | Path | None = None,
    deployed_commit: str | None = None,
) -> MigrationState:
    """The target state as the public schema saved it: a tag, a commit prefix, or the state
    saved before the current commit's. Every schema is rolled back to that state's commit."""
    if tag is not None and commit is not None:
        raise RollbackError("Choose one target: -t/--tag or -c/--commit, not both.")
    public = Target(database, public_schema(), "shared")
    with on_schema(public):
        services.ready_connection(database)
        states = MigrationState.objects.using(database)
        repo = _repository(repo_path) if tag or commit else None
        if tag is not None:
            tagged = states.with_tag(tag)
            if len(tagged) > 1:
                raise AmbiguousCommitError(
                    f'Tag "{tag}" is stored with several states of the public schema; '
                    "roll back by commit (-c) instead."
                )
            sha = tagged[0].commit if tagged else (repo.resolve_tag(tag) if repo else None)
            if sha is None:
                raise UnknownReferenceError(f'Unknown tag "{tag}": no saved state carries it.')
            return _state_or_refuse(states, sha, f'Tag "{tag}"')
        if commit is not None:
            prefix = validate_commit_prefix(commit)
            matches = list(states.with_commit_prefix(prefix)[:2])
            if len(matches) > 1:
                raise AmbiguousCommitError(
                    f'Commit prefix "{prefix}" is ambiguous: give more characters.'
                )
            sha = matches[0].commit if matches else None
            if sha is None and repo is not None:
                sha = repo.resolve_commit_prefix(prefix)
            if sha is None:
                raise UnknownReferenceError(f'Unknown commit "{prefix}": no saved state has it.')
            return _state_or_refuse(states, sha, f'Commit "{prefix}"')
        head = services.current_commit(
            repo_path=repo_path, commit=deployed_commit, option="--current-commit"
        )
        current = states.filter(commit=head.sha).first()
        previous = states.before(current).first() if current is not None else None
        if previous is None:
            raise StateNotSavedError(
                f"The public schema has no state saved before the current {head.described}: "
                "name the target with -t or -c."
            )
        return previous


def _repository(repo_path: str | Path | None) -> GitRepository | None:
    """Git, when there is one to ask (images without .git have none)."""
    try:
        return services.open_repository(repo_path)
    except RepositoryError:
        return None


def _state_or_refuse(states: Any, sha: str, what: str) -> MigrationState:
    state: MigrationState | None = states.filter(commit=sha).first()
    if state is None:
        raise StateNotSavedError(
            f'{what} points at commit "{sha}", whose state the public schema never saved.'
        )
    return state


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
    if deployed_commit is None:  # git asked once for the fleet, not once per schema
        deployed_commit = services.current_commit(
            repo_path=repo_path, option="--current-commit"
        ).sha
    ordered = [t for t in chosen if t.kind == "tenant"] + [t for t in chosen if t.kind == "shared"]
    runs: list[TargetRun] = []
    shared: dict[Any, TargetRun] = {}  # one plan per group of schemas that stand alike
    for target in ordered:
        with on_schema(target) as connection:
            runs.append(
                _plan_target(
                    target,
                    connection,
                    sha,
                    skip_unsaved=skip_unsaved,
                    shared=shared,
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
    shared: dict[Any, TargetRun],
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
        # Schemas of one kind at the same applied set, with the same current and target
        # states, share the first one's plan: the same steps, blockers and order; only the
        # saved-state rows (their ids differ from schema to schema) are the schema's own.
        current = states.filter(commit=plan_options["deployed_commit"]).first()
        key = (
            (target.kind, applied, current.migration_set, goal.migration_set)
            if current is not None and goal.pk <= current.pk
            else None
        )
        first = shared.get(key)
        if first is not None and first.plan is not None:
            assert current is not None
            plan = dataclasses.replace(first.plan, current=current, target=goal)
        else:
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
    run = TargetRun(
        target,
        "planned",
        f"{len(plan.steps)} migration{'s' if len(plan.steps) != 1 else ''} to unapply",
        applied,
        plan,
        shares=first.target.name if first is not None else "",
    )
    if first is None and key is not None:
        shared[key] = run
    return run


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


# --- running ---------------------------------------------------------------------------------


@dataclass
class FleetResult:
    plan: FleetPlan
    dry_run: bool = False

    @property
    def runs(self) -> list[TargetRun]:
        return self.plan.runs

    def count(self, *statuses: TargetStatus) -> int:
        return sum(1 for r in self.runs if r.status in statuses)

    @property
    def ok(self) -> bool:
        """Every target is done, succeeded, skipped on request (or planned, in a dry run)."""
        allowed: tuple[TargetStatus, ...] = ("done", "succeeded", "skipped")
        if self.dry_run:
            allowed += ("planned",)
        return all(r.status in allowed for r in self.runs)

    def summary(self) -> dict[str, int]:
        statuses: list[TargetStatus] = [
            "succeeded",
            "done",
            "planned",
            "failed",
            "held",
            "refused",
            "unsaved",
            "skipped",
        ]
        return {status: self.count(status) for status in statuses} | {"total": len(self.runs)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.plan.database,
            "target": {"commit": self.plan.target_commit, "tags": self.plan.target_tags},
            "dry_run": self.dry_run,
            "ok": self.ok,
            "summary": self.summary(),
            "targets": [r.as_dict() for r in self.runs],
        }


def default_jobs() -> int:
    """--jobs by default: min(4, CPU count)."""
    return max(1, min(4, os.cpu_count() or 1))


def run_fleet(
    fleet: FleetPlan,
    *,
    jobs: int = 1,
    on_target: Callable[[TargetRun], None] | None = None,
    **execute_options: Any,
) -> FleetResult:
    """Roll back every planned target: the tenants (in `jobs` processes at once), then
    public; each in its own transaction with its own lock, archive and log entry. A failure is
    recorded and the other targets go on. Refused when planning refused anything."""
    refusal = fleet.refusal
    if refusal:
        raise RollbackError(refusal)
    if jobs < 1:
        raise RollbackError("--jobs needs a number of processes, 1 or more.")
    try:
        _run_all(fleet, jobs, on_target, execute_options)
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


def _run_all(
    fleet: FleetPlan,
    jobs: int,
    on_target: Callable[[TargetRun], None] | None,
    execute_options: dict[str, Any],
) -> None:
    tenants = [r for r in fleet.runs if r.status == "planned" and r.target.kind == "tenant"]
    if jobs > 1 and len(tenants) > 1:
        _run_forked(fleet, tenants, jobs, on_target, execute_options)
    else:
        for run in tenants:
            _run_target(run, execute_options)
            if on_target is not None:
                on_target(run)
    tenant_failed = any(r.status == "failed" for r in tenants)
    for run in fleet.runs:
        if run.status != "planned" or run.target.kind != "shared":
            continue
        if tenant_failed:
            run.status = "held"
            run.message = (
                "not rolled back while a tenant schema failed: the tenants at the newer "
                "release may still use its tables; run the command again"
            )
        else:
            _run_target(run, execute_options)
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
    # One connection per worker, reused from target to target (on_schema() switches its
    # search_path), closed when the worker leaves: multiprocessing runs its finalizers then.
    multiprocessing.util.Finalize(None, connections.close_all, exitpriority=10)


def _run_in_worker(index: int, options: dict[str, Any]) -> Outcome:
    assert _FORKED is not None
    run = _FORKED.runs[index]
    try:
        _run_target(run, options)
    except RollbackInterruptedError as exc:
        run.status, run.message = "failed", str(exc)
        connections.close_all()  # interrupted mid-transaction: start the next one afresh
    return index, run.status, run.message, run.log_id, run.seconds, run.archived


def _run_target(run: TargetRun, execute_options: dict[str, Any]) -> bool:
    """Roll one target back; True when it succeeded."""
    assert run.plan is not None
    with on_schema(run.target):
        try:
            result = services.execute(run.plan, **execute_options)
        except RollbackInterruptedError as exc:
            run.status, run.message = "failed", str(exc)
            raise
        except RollbackError as exc:
            run.status, run.message = "failed", str(exc)
            return False
    run.status = "succeeded"
    run.log_id, run.seconds = result.log.pk, result.seconds
    run.archived = result.log.archive or None
    run.message = f"{run.steps} migration{'s' if run.steps != 1 else ''} unapplied"
    return True


def dry_run(fleet: FleetPlan) -> FleetResult:
    """Keep each planned target's preview in its own audit log; nothing else is written."""
    for run in fleet.planned:
        assert run.plan is not None
        with on_schema(run.target):
            run.log_id = services.record_dry_run(run.plan).pk
    return FleetResult(fleet, dry_run=True)
