"""RollbackPlan: what to unapply, in which order, what it costs, and what stops it.

A plan is computed from the migration files on disk (the newer code) and the rows of
django_migrations; it never changes the database. execution.execute() runs it.

The idea, as set arithmetic over (app, migration) keys (build_plan names each stage):

    recorded      = the rows of django_migrations now
    target        = the saved state chosen, plus django_rollback's own rows (never unapplied)
    target_norm   = target with squashes folded in (a squash counts as applied when all it
                    replaces is, and the other way round)
    applied_nodes = the graph's nodes that are applied now
    to_unapply    = applied_nodes - target_norm             (the steps, in reverse plan order)
    expected_after= recorded - to_unapply - what each squash among them replaces

The checks then demand that expected_after, squashes folded in, equals target_norm exactly:
nothing that the target lacks stays applied (a missing file, a dependency that changed),
nothing that the target has is missing (that would be a migration forwards), and every
step is reversible.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import truncate_name
from django.db.migrations import operations as ops
from django.db.migrations.exceptions import BadMigrationError, NodeNotFoundError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.operations.fields import FieldOperation
from django.db.migrations.operations.models import IndexOperation, ModelOperation
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ModelState, ProjectState
from django.utils.translation import gettext, ngettext

from . import overrides
from .conf import get_setting
from .exceptions import PlanRefusedError
from .lazy_state import LazyProjectState, ModelKey, field_targets, references
from .models import MigrationKey, MigrationState
from .radius import Sizer, StepLocks, TableLock, TableSize, has_own_table, undo_locks
from .snapshot import SquashMap, applied_migrations, parse_squashes, squashes_on_disk, with_squashes


def label(key: MigrationKey) -> str:
    return f"{key[0]}.{key[1]}"


def labels(keys: set[MigrationKey] | frozenset[MigrationKey] | list[MigrationKey]) -> str:
    return ", ".join(label(k) for k in sorted(keys))


@dataclass(frozen=True)
class DataLoss:
    """A table or column that unapplying a step drops, with what it holds now."""

    table: str
    column: str | None = None  # None: the whole table
    rows: int | None = None  # rows of the table, or non-null values of the column
    estimated: bool = False  # rows is the catalog's estimate ("≈"), not a count
    archived: bool = False  # kept in the rollback's archive, restorable later
    join_table: bool = False  # the auto-created table of a many-to-many field

    def describe(self) -> str:
        if self.column is None:
            what = f'drops table "{self.table}"'
            count = (
                ngettext("%(count)d row", "%(count)d rows", self.rows) % {"count": self.rows}
                if self.rows is not None
                else gettext("unknown number of rows")
            )
        else:
            what = f'drops column "{self.table}"."{self.column}"'
            count = (
                ngettext("%(count)d non-null value", "%(count)d non-null values", self.rows)
                % {"count": self.rows}
                if self.rows is not None
                else gettext("unknown number of non-null values")
            )
        text = f"{what} ({'≈ ' if self.estimated else ''}{count})"
        if self.archived:
            return f"{text}: archived ({count}, restorable)"
        return f"{text}: lost"


@dataclass
class PlanStep:
    app: str
    name: str
    operations: list[str]
    atomic: bool = True
    irreversible: list[str] = field(default_factory=list)
    data_loss: list[DataLoss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The reviewed reverse from DJANGO_ROLLBACK["REVERSE"] that replaces its irreversible
    # operations, when there is one.
    override: overrides.ReverseOverride | None = None
    locks: list[TableLock] = field(default_factory=list)  # the blast radius (radius.py)

    @property
    def key(self) -> MigrationKey:
        return (self.app, self.name)

    @property
    def label(self) -> str:
        return label(self.key)

    def as_dict(self) -> dict[str, Any]:
        return {
            "migration": self.label,
            "operations": self.operations,
            "atomic": self.atomic,
            "irreversible": self.irreversible,
            "data_loss": [
                {
                    "table": d.table,
                    "column": d.column,
                    "rows": d.rows,
                    "estimated": d.estimated,
                    "archived": d.archived,
                    "join_table": d.join_table,
                }
                for d in self.data_loss
            ],
            "notes": self.notes,
            "reverse_override": self.override.as_dict() if self.override else None,
            "locks": [lock.as_dict() for lock in self.locks],
        }


@dataclass(frozen=True)
class AppChange:
    app: str
    current: tuple[str, ...]  # leaf migrations applied now; () = zero
    target: tuple[str, ...]
    steps: int

    def describe(self) -> str:
        current = " + ".join(self.current) or "zero"
        target = " + ".join(self.target) or "zero"
        return f"{self.app}: {current} → {target}"


@dataclass
class ExecutionContext:
    """What building the plan loaded and execute() reuses: the graph is loaded once, and
    the states of the steps are computed once."""

    executor: MigrationExecutor
    full_plan: list[tuple[Migration, bool]]
    applied_nodes: set[MigrationKey]
    migrations: list[Migration]
    _states: dict[MigrationKey, ProjectState] | None = field(default=None, repr=False)

    def states_before_steps(self, *, render: bool = True) -> dict[MigrationKey, ProjectState]:
        """The project state just before each step, as Django's backwards run sees it, but
        holding only the models the step can reach (see _state_for_step). Fresh copies on
        every call, free to mutate; they render lazily, so `render` is only a hint."""
        if self._states is None:
            self._states = _states_before(
                self.executor.loader, self.full_plan, self.applied_nodes, self.migrations
            )
        return {key: state.clone() for key, state in self._states.items()}


@dataclass
class RollbackPlan:
    database: str
    vendor: str
    current: MigrationState
    target: MigrationState
    steps: list[PlanStep]
    app_changes: list[AppChange]
    blockers: list[str]
    warnings: list[str]
    all_or_nothing: bool
    applied_before: frozenset[MigrationKey]
    expected_after: frozenset[MigrationKey]
    # Replaced migrations a step must also mark unapplied (squashes known from saved states).
    extra_unrecords: dict[MigrationKey, frozenset[MigrationKey]] = field(default_factory=dict)
    sql: list[str] | None = None
    # The squashes among the recorded rows, with what each replaces: kept in the audit entry,
    # so that the drift check knows them when the newer code and its states are gone.
    squashes: dict[MigrationKey, frozenset[MigrationKey]] = field(default_factory=dict)
    # Size of every table a step locks (measured with the preview's counts).
    tables: dict[str, TableSize] = field(default_factory=dict)
    context: ExecutionContext | None = field(default=None, repr=False, compare=False)
    # Whether running it keeps what the steps drop (archive.py); False: it is lost.
    archive: bool = True
    # What the steps drop that the archive keeps (restorable): information, not warnings.
    kept: list[str] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        """The target is the current state: nothing to do at all."""
        return self.target.pk == self.current.pk

    @property
    def can_run(self) -> bool:
        return not self.blockers

    @property
    def data_loss(self) -> list[tuple[PlanStep, DataLoss]]:
        return [(step, loss) for step in self.steps for loss in step.data_loss]

    @property
    def blast_radius(self) -> list[tuple[PlanStep, TableLock, TableSize | None]]:
        """Every table each step locks, with the lock and the table's size."""
        return [
            (step, lock, self.tables.get(lock.table)) for step in self.steps for lock in step.locks
        ]

    @property
    def fingerprint(self) -> str:
        """Identifies what was previewed, so a confirmation runs exactly that."""
        payload = [
            self.current.commit,
            self.target.commit,
            sorted(self.applied_before),
            [s.label for s in self.steps],
        ]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "from": {"commit": self.current.commit, "tags": list(self.current.tags)},
            "to": {"commit": self.target.commit, "tags": list(self.target.tags)},
            "all_or_nothing": self.all_or_nothing,
            "apps": [
                {"app": c.app, "current": list(c.current), "target": list(c.target)}
                for c in self.app_changes
            ],
            "steps": [s.as_dict() for s in self.steps],
            "warnings": self.warnings,
            "kept": self.kept,
            "blockers": self.blockers,
            "archive": self.archive,
            "tables": {name: size.as_dict() for name, size in sorted(self.tables.items())},
            # The shape MigrationState.squashes keeps: {"app.squash": [[app, name], ...]}.
            "squashes": {
                label(key): [list(r) for r in sorted(replaced)]
                for key, replaced in sorted(self.squashes.items())
            },
        }


def build_plan(
    connection: BaseDatabaseWrapper,
    current: MigrationState,
    target: MigrationState,
    known_squashes: list[SquashMap],
    *,
    with_sql: bool = False,
    count_rows: bool = True,
    archive: bool = True,
    exact_counts: bool = False,
) -> RollbackPlan:
    """Everything needed to preview and run the rollback from `current` to `target`.
    With count_rows, the blast radius and data loss are measured (estimated above the
    ESTIMATE_ROWS_ABOVE setting unless exact_counts); with `archive`, what the steps drop
    is kept (execution.py, archive.py)."""
    executor = _load_executor(connection)
    recorded = applied_migrations(connection)
    squashes = parse_squashes(*known_squashes, squashes_on_disk(executor.loader))
    sets = _compute_sets(executor.loader, recorded, target, squashes)
    blockers = _check_sets(executor.loader, sets, squashes)

    full_plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    ordered = [m for m, _ in reversed(full_plan) if (m.app_label, m.name) in sets.to_unapply]
    reverse_overrides, override_blockers = _reverse_overrides(
        {f"{m.app_label}.{m.name}" for m in ordered}
    )
    blockers += override_blockers
    steps = [_describe_step(m, reverse_overrides) for m in ordered]
    extra_unrecords = dict(sets.extra_unrecords)
    if sets.stray_squashes:
        last = steps[-1]
        extra_unrecords[last.key] = extra_unrecords.get(last.key, frozenset()) | (
            sets.stray_squashes
        )
        last.notes.append(
            f"also removes the record of {labels(sets.stray_squashes)}: a newer `migrate` "
            "recorded the squash because all it replaces is applied; the target did not"
        )
    blockers += [
        f"Irreversible: {step.label} ({'; '.join(step.irreversible)})."
        for step in steps
        if step.irreversible
    ]
    # Steps with a reviewed override run a copy whose irreversible operations run it.
    ordered = [
        overrides.with_override(m, step.override) if step.override else m
        for m, step in zip(ordered, steps, strict=True)
    ]

    all_or_nothing = connection.features.can_rollback_ddl and all(m.atomic for m in ordered)
    context = ExecutionContext(executor, full_plan, sets.applied_nodes, ordered)
    tables: dict[str, TableSize] = {}
    if count_rows and steps:
        tables = _measure(connection, context, steps, exact=exact_counts, archive=archive)

    plan = RollbackPlan(
        database=connection.alias,
        vendor=connection.vendor,
        current=current,
        target=target,
        steps=steps,
        app_changes=_app_changes(
            executor.loader.graph, sets.applied_nodes, sets.target_nodes, sets.to_unapply
        ),
        blockers=blockers,
        warnings=[],
        all_or_nothing=all_or_nothing,
        applied_before=recorded,
        expected_after=sets.expected_after,
        extra_unrecords=extra_unrecords,
        squashes={key: squashes[key] for key in recorded if squashes.get(key)},
        tables=tables,
        context=context,
        archive=archive,
    )
    plan.warnings = _warnings(plan, connection, ordered, recorded, squashes)
    plan.kept = [
        f"{step.label}: {loss.describe()}" for step, loss in plan.data_loss if loss.archived
    ]
    if with_sql and steps:
        plan.sql = _collect_sql(connection, context)
    return plan


def _reverse_overrides(
    wanted: set[str],
) -> tuple[dict[str, overrides.ReverseOverride], list[str]]:
    """The overrides of the steps of this plan; a broken one is a blocker (manage.py check
    names it too), never a silent no-op."""
    found: dict[str, overrides.ReverseOverride] = {}
    blockers: list[str] = []
    try:
        configured = overrides.configured()
    except ImproperlyConfigured as exc:
        return found, [str(exc)]
    for name in sorted(wanted & set(configured)):
        try:
            found[name] = overrides.parse(name, configured[name])
        except ImproperlyConfigured as exc:
            blockers.append(f'DJANGO_ROLLBACK["REVERSE"]["{name}"] is not usable: {exc}.')
    return found, blockers


class GraphLoader(MigrationLoader):
    """Django's MigrationLoader, with the first and latest migration of each app looked up
    once per graph. Django looks them up for every dependency on `__first__`, and
    `swappable_dependency(settings.AUTH_USER_MODEL)` is one: with thousands of migrations
    that each depend on the user model, its loader spends seconds scanning every node of the
    graph again for each of them. While the graph is built, an app's first and latest
    migrations depend only on the edges inside the app, all added before the dependencies
    between apps are resolved, so one lookup per app gives the same graph."""

    def build_graph(self) -> None:
        self._ends: dict[tuple[str, str], Any] = {}
        super().build_graph()

    def check_key(self, key: tuple[str, str], current_app: str) -> Any:
        if key[1] not in ("__first__", "__latest__") or key[0] == current_app:
            return super().check_key(key, current_app)
        if key not in self._ends:
            self._ends[key] = super().check_key(key, current_app)
        return self._ends[key]


class _Executor(MigrationExecutor):
    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        # MigrationExecutor.__init__, with GraphLoader.
        self.connection = connection
        self.loader = GraphLoader(connection)
        self.recorder = MigrationRecorder(connection)
        self.progress_callback = None


def _load_executor(connection: BaseDatabaseWrapper) -> MigrationExecutor:
    try:
        return _Executor(connection)
    except (NodeNotFoundError, BadMigrationError) as exc:
        raise PlanRefusedError(f"Cannot load the migration files: {exc}") from None


@dataclass(frozen=True)
class PlanSets:
    """The sets of the module docstring, for one rollback."""

    target_raw: frozenset[MigrationKey]
    target_norm: frozenset[MigrationKey]
    applied_nodes: set[MigrationKey]
    target_nodes: set[MigrationKey]
    to_unapply: set[MigrationKey]
    expected_after: frozenset[MigrationKey]
    after_norm: frozenset[MigrationKey]
    # Replaced migrations a step must also mark unapplied (squashes known from saved states).
    extra_unrecords: dict[MigrationKey, frozenset[MigrationKey]]
    # Squash rows the target lacks while it has all they replace: removed by the last step.
    stray_squashes: frozenset[MigrationKey] = frozenset()


def _compute_sets(
    loader: MigrationLoader,
    recorded: frozenset[MigrationKey],
    target: MigrationState,
    squashes: dict[MigrationKey, frozenset[MigrationKey]],
) -> PlanSets:
    graph = loader.graph
    # Never unapply django_rollback itself: its tables hold the states and the audit log,
    # and must match the code that runs the rollback.
    own = MigrationState._meta.app_label
    target_raw = frozenset(k for k in target.migration_set if k[0] != own) | {
        k for k in recorded if k[0] == own
    }
    target_norm = with_squashes(target_raw, squashes)
    applied_nodes = {key for key in loader.applied_migrations if key in graph.nodes}
    target_nodes = {key for key in graph.nodes if key in target_norm}
    to_unapply = applied_nodes - target_nodes
    # Records each step removes: itself and, for a squash, what it replaces.
    extra_unrecords: dict[MigrationKey, frozenset[MigrationKey]] = {}
    removed: set[MigrationKey] = set()
    for key in to_unapply:
        replaced = squashes.get(key, frozenset())
        removed |= {key} | replaced
        disk_replaced = frozenset(graph.nodes[key].replaces or ())
        if replaced - disk_replaced:
            extra_unrecords[key] = replaced - disk_replaced
    # A squash recorded while the target did not record it, everything it replaces staying
    # applied: newer code's `migrate` recorded it (Django does once all it replaces is
    # applied). It stands for rows the target has; its own row goes too, so that the rows
    # after the rollback are exactly the target's (build_plan gives it to the last step).
    stray_squashes = frozenset(
        key
        for key in recorded - removed - target_raw
        if squashes.get(key) and squashes[key] <= recorded - removed
    )
    if not to_unapply:
        stray_squashes = frozenset()  # no step to remove it with: it stays, harmlessly
    expected_after = recorded - removed - stray_squashes
    return PlanSets(
        target_raw=target_raw,
        target_norm=target_norm,
        applied_nodes=applied_nodes,
        target_nodes=target_nodes,
        to_unapply=to_unapply,
        expected_after=expected_after,
        after_norm=with_squashes(expected_after, squashes),
        extra_unrecords=extra_unrecords,
        stray_squashes=stray_squashes,
    )


def _check_sets(
    loader: MigrationLoader,
    sets: PlanSets,
    squashes: dict[MigrationKey, frozenset[MigrationKey]],
) -> list[str]:
    """Why the plan would not end exactly at the target, one sentence per reason."""
    graph = loader.graph
    blockers: list[str] = []
    for key in sorted(sets.to_unapply):
        part = squashes.get(key, frozenset()) & sets.target_raw
        if part:
            blockers.append(
                f"{label(key)} is a squashed migration and the target has only part of what "
                f"it replaces ({labels(part)}); the current migration files cannot reach it."
            )
    pulled_in = {
        dependent
        for key in sets.to_unapply
        for dependent in graph.backwards_plan(key)
        if dependent in sets.applied_nodes and dependent not in sets.to_unapply
    }
    if pulled_in:
        blockers.append(
            f"Unapplying the plan would also unapply {labels(pulled_in)}, which the target "
            "keeps (their dependencies changed after the target was saved)."
        )
    on_disk = set(loader.disk_migrations)
    stays = sets.after_norm - sets.target_norm
    missing_files = {key for key in stays if key not in on_disk}
    if missing_files:
        blockers.append(
            f"Migration file missing: {labels(missing_files)} is applied, not in the target, "
            "and not on disk, so it cannot be unapplied."
        )
    if stays - missing_files:
        blockers.append(
            f"{labels(stays - missing_files)} would stay applied although the target does "
            "not have it."
        )
    lacks = sets.target_norm - sets.after_norm
    if lacks:
        blockers.append(
            f"Not a rollback: the target has {labels(lacks)} applied, which is not applied "
            "now (a rollback only unapplies)."
        )
    return blockers


def _flatten(operations: Sequence[ops.base.Operation]) -> list[ops.base.Operation]:
    out: list[ops.base.Operation] = []
    for operation in operations:
        if isinstance(operation, ops.SeparateDatabaseAndState):
            out.extend(_flatten(operation.database_operations))
        else:
            out.append(operation)
    return out


def _describe_step(
    migration: Migration, reverse_overrides: dict[str, overrides.ReverseOverride] | None = None
) -> PlanStep:
    step = PlanStep(
        app=migration.app_label,
        name=migration.name,
        operations=[f"Undo: {op.describe()}" for op in reversed(migration.operations)],
        atomic=migration.atomic,
    )
    if migration.replaces:
        step.notes.append(f"squashed migration: replaces {len(migration.replaces)} migrations")
    for operation in _flatten(migration.operations):
        # Django's schema editor skips these models: their undo changes no table.
        if isinstance(operation, ops.CreateModel) and operation.options.get("proxy"):
            step.notes.append(f"{operation.name} is a proxy model: it has no table to drop")
        elif isinstance(operation, ops.CreateModel) and operation.options.get("managed") is False:
            step.notes.append(
                f"{operation.name} is not managed by Django (managed = False): its table or "
                "view is left as it is"
            )
    step.irreversible = overrides.irreversible_reasons(migration.operations)
    override = (reverse_overrides or {}).get(step.label)
    if step.irreversible and override is not None:
        step.override, step.irreversible = override, []
        step.notes.append(override.describe())
    for operation in _flatten(migration.operations):
        if not operation.reversible:
            continue  # named in step.irreversible above, or run by the override
        if isinstance(operation, ops.RunPython) and operation.reverse_code is ops.RunPython.noop:
            step.notes.append("runs a data migration whose reverse code does nothing")
        elif isinstance(operation, ops.RunPython):
            step.notes.append(
                "runs the reverse code of a data migration: rows it deletes or changes "
                "are not archived"
            )
        elif isinstance(operation, ops.RunSQL):
            step.notes.append("runs reverse SQL: rows it deletes or changes are not archived")
        elif isinstance(operation, ops.RemoveField):
            step.notes.append(
                f"re-adds {operation.model_name}.{operation.name}; its old values are not restored"
            )
        elif isinstance(operation, ops.DeleteModel):
            step.notes.append(f"re-creates {operation.name} empty; its old rows are not restored")
    if not migration.atomic:
        step.notes.append("not atomic: runs outside a transaction")
    foreign = sorted(
        {type(op).__name__ for op in migration.operations if _models_of(step.app, op) is None}
    )
    if foreign:
        step.notes.append(
            f"{', '.join(foreign)}: not one of Django's operations, so this step gets the "
            "whole project state rendered, as in Django"
        )
    return step


def _states_before(
    loader: MigrationLoader,
    full_plan: list[tuple[Migration, bool]],
    applied_nodes: set[MigrationKey],
    wanted: list[Migration],
) -> dict[MigrationKey, ProjectState]:
    """Walk the applied migrations forwards once on an unrendered state, as Django's
    backwards run does, and keep what each step needs. Django renders the state at the
    first step and then mutates the rendered state, which re-renders every related model
    at every later migration: with thousands of migrations and a model that everything
    points at (the user model), that walk is most of the time of a rollback.

    Data steps keep the whole state, shared with the walk rather than copied: from then on
    the walk clones a model state before a migration changes it (copy on write)."""
    remaining = {(m.app_label, m.name) for m in wanted}
    states: dict[MigrationKey, ProjectState] = {}
    state = ProjectState(real_apps=loader.unmigrated_apps)
    owned: set[ModelKey] | None = None  # model states not shared with a kept state; None: all
    for migration, _ in full_plan:
        if not remaining:
            break
        key = (migration.app_label, migration.name)
        if key not in applied_nodes:
            continue
        if key in remaining:
            remaining.discard(key)
            states[key] = _state_for_step(state, migration)
            if isinstance(states[key], LazyProjectState):
                owned = set()
        if owned is not None:
            changed = _changed_models(migration)
            if changed is None:  # RenameModel or an unknown operation: may change any model
                changed = set(state.models)
            for model_key in changed - owned:
                if model_key in state.models:
                    state.models[model_key] = state.models[model_key].clone()
            owned |= changed
        migration.mutate_state(state, preserve=False)
    return states


def _changed_models(migration: Migration) -> set[ModelKey] | None:
    """The model states that the migration's operations change in place; None: any."""
    changed: set[ModelKey] = set()
    for operation in migration.operations:
        if isinstance(operation, ops.RenameModel):
            return None  # also repoints the fields of every model pointing at it
        models = _models_of(migration.app_label, operation)
        if models is None:
            return None
        changed |= models[0]
    return changed


def _has_code(operations: Sequence[ops.base.Operation]) -> bool:
    return any(isinstance(operation, ops.RunPython) for operation in _flatten(operations))


def _state_for_step(state: ProjectState, migration: Migration) -> ProjectState:
    """A copy of `state` with what unapplying `migration` can touch: the models its
    operations change, the models that point at those, and everything these point at or
    inherit from (rendering needs the targets of every relation). Rendering a few models
    instead of the whole project is what makes each step cheap. RunSQL needs no model.
    RunPython code may ask for any model: it gets the whole state with a registry that
    renders a model when the code asks for it (LazyProjectState). Operations from outside
    Django may do anything: they get the whole state, rendered in full as in Django."""
    changed: set[ModelKey] = set()
    needed: set[ModelKey] = set()
    for operation in migration.operations:
        models = _models_of(migration.app_label, operation)
        if models is None:
            return state.clone()
        changed |= models[0]
        needed |= models[1]
    if _has_code(migration.operations):
        return LazyProjectState(
            dict(state.models),
            state.real_apps,
            None if _changed_models(migration) is None else changed,
        )
    # Models pointing at a changed one (their foreign keys may be altered with it); not
    # those pointing at a mere target, or every step would need everything that points
    # at the user model.
    needed |= changed
    for key, model in state.models.items():
        if key not in needed and references(key, model) & changed:
            needed.add(key)
    frontier = list(needed)
    while frontier:
        model = state.models.get(frontier.pop())
        if model is None:
            continue
        for target in references((model.app_label, model.name_lower), model) - needed:
            needed.add(target)
            frontier.append(target)
    return ProjectState(
        models={key: state.models[key].clone() for key in needed if key in state.models},
        real_apps=state.real_apps,
    )


def _models_of(
    app: str, operation: ops.base.Operation
) -> tuple[set[ModelKey], set[ModelKey]] | None:
    """The models an operation of Django's changes, and the models that the fields it
    adds point at; None when it is not one of Django's operations. Data operations
    change no model (RunSQL: unless its state_operations do)."""
    if not type(operation).__module__.startswith("django.db.migrations.operations."):
        return None
    if isinstance(operation, ops.RunPython):
        return set(), set()
    if isinstance(operation, (ops.RunSQL, ops.SeparateDatabaseAndState)):
        inner = list(operation.state_operations)
        if isinstance(operation, ops.SeparateDatabaseAndState):
            inner += operation.database_operations
        changed: set[ModelKey] = set()
        needed: set[ModelKey] = set()
        for each in inner:
            models = _models_of(app, each)
            if models is None:
                return None
            changed |= models[0]
            needed |= models[1]
        return changed, needed
    if isinstance(operation, ops.CreateModel):
        key = (app, operation.name_lower)
        fields = [f for _, f in operation.fields]
        return {key}, field_targets(key, fields, operation.bases or ())
    if isinstance(operation, ops.RenameModel):
        return {(app, operation.old_name_lower), (app, operation.new_name_lower)}, set()
    if isinstance(operation, ModelOperation):
        return {(app, operation.name_lower)}, set()
    if isinstance(operation, FieldOperation):
        key = (app, operation.model_name_lower)
        added = getattr(operation, "field", None)
        return {key}, field_targets(key, [added]) if added is not None else set()
    if isinstance(operation, IndexOperation):  # indexes and constraints
        return {(app, operation.model_name_lower)}, set()
    return None


def _measure(
    connection: BaseDatabaseWrapper,
    context: ExecutionContext,
    steps: list[PlanStep],
    *,
    exact: bool,
    archive: bool = True,
) -> dict[str, TableSize]:
    """Fill in each step's locks and what it drops (the tables of unapplied CreateModel with
    their many-to-many join tables, the columns of unapplied AddField, the join table of an
    unapplied many-to-many AddField); return the sizes of the tables involved."""
    sizer = Sizer(connection, exact=exact, threshold=int(get_setting("ESTIMATE_ROWS_ABOVE")))
    states = context.states_before_steps()
    max_length = connection.ops.max_name_length()

    def dropped(table: str, column: str | None = None, *, join: bool = False) -> DataLoss:
        if column is None:
            size = sizer.table(table)
            rows, estimated = size.rows, size.estimated
        else:
            rows, estimated = sizer.column(table, column)
        return DataLoss(table, column, rows, estimated, archived=archive, join_table=join)

    for migration, step in zip(context.migrations, steps, strict=True):
        state = states[step.key]
        locks = StepLocks(connection.vendor)
        for operation in migration.operations:
            before = _before(state, migration.app_label, operation)
            operation.state_forwards(migration.app_label, state)
            if _routed_here(connection, migration.app_label, _model_of(operation)):
                undo_locks(
                    connection,
                    migration.app_label,
                    operation,
                    before,
                    state,
                    locks,
                    lambda model: _table_name(model, max_length),
                )
            if isinstance(operation, ops.CreateModel):
                if not _routed_here(connection, migration.app_label, operation.name_lower):
                    continue
                model = state.models[(migration.app_label, operation.name_lower)]
                if not has_own_table(model):
                    continue
                table = _table_name(model, max_length)
                step.data_loss.append(dropped(table))
                for name, model_field in model.fields.items():
                    join = _join_table(model_field, table, name, max_length)
                    if join:
                        step.data_loss.append(dropped(join, join=True))
            elif isinstance(operation, ops.AddField):
                if not _routed_here(connection, migration.app_label, operation.model_name_lower):
                    continue
                model = state.models[(migration.app_label, operation.model_name_lower)]
                if not has_own_table(model):
                    continue
                added = operation.field.clone()  # type: ignore[attr-defined]  # (not in stubs)
                added.set_attributes_from_name(operation.name)
                table = _table_name(model, max_length)
                if added.many_to_many:
                    join = _join_table(added, table, operation.name, max_length)
                    if join:
                        step.data_loss.append(dropped(join, join=True))
                    continue
                step.data_loss.append(dropped(table, added.column))
        step.locks = locks.result()
        for lock in step.locks:
            sizer.table(lock.table)
    return sizer.sizes


def _join_table(model_field: Any, table: str, name: str, max_length: int | None) -> str | None:
    """The table Django creates for a many-to-many field without a `through` model."""
    if not getattr(model_field, "many_to_many", False):
        return None
    if getattr(model_field.remote_field, "through", None) is not None:
        return None  # a model of its own: its CreateModel drops it
    return model_field.db_table or truncate_name(f"{table}_{name}", max_length)


# Operations whose undo needs the model as it was before them (what they removed or changed).
NEEDS_BEFORE = (
    ops.DeleteModel,
    ops.RemoveField,
    ops.AlterField,
    ops.RemoveIndex,
    ops.RemoveConstraint,
)


def _before(state: ProjectState, app: str, operation: ops.base.Operation) -> ProjectState:
    """What undo_locks needs of the state before `operation`: a copy of the one model it
    changes (the others are shared: it does not touch them); cloning the whole state for
    every operation would cost as much as the plan itself on a big project."""
    if not isinstance(operation, NEEDS_BEFORE):
        return state
    models = dict(state.models)
    key = (app, _model_of(operation) or "")
    if key in models:
        models[key] = models[key].clone()
    return ProjectState(models=models, real_apps=state.real_apps)


def _model_of(operation: ops.base.Operation) -> str | None:
    return getattr(operation, "model_name_lower", None) or getattr(operation, "name_lower", None)


def _routed_here(connection: BaseDatabaseWrapper, app_label: str, model_name: str | None) -> bool:
    """Whether the routers let this model into this database (else its steps do nothing)."""
    return bool(router.allow_migrate(connection.alias, app_label, model_name=model_name))


def _table_name(model_state: ModelState, max_length: int | None) -> str:
    return model_state.options.get("db_table") or truncate_name(
        f"{model_state.app_label}_{model_state.name_lower}", max_length
    )


def _leaves(graph: MigrationGraph, nodes: set[MigrationKey], app: str) -> tuple[str, ...]:
    in_app = {key for key in nodes if key[0] == app}
    return tuple(
        sorted(
            name
            for (a, name) in in_app
            if not any(child.key in in_app for child in graph.node_map[(a, name)].children)
        )
    )


def _app_changes(
    graph: MigrationGraph,
    applied_nodes: set[MigrationKey],
    target_nodes: set[MigrationKey],
    to_unapply: set[MigrationKey],
) -> list[AppChange]:
    apps = sorted({app for app, _ in to_unapply})
    return [
        AppChange(
            app=app,
            current=_leaves(graph, applied_nodes, app),
            target=_leaves(graph, target_nodes & applied_nodes, app),
            steps=sum(1 for a, _ in to_unapply if a == app),
        )
        for app in apps
    ]


def _warnings(
    plan: RollbackPlan,
    connection: BaseDatabaseWrapper,
    ordered: list[Migration],
    recorded: frozenset[MigrationKey],
    squashes: dict[MigrationKey, frozenset[MigrationKey]],
) -> list[str]:
    # What the archive keeps is said apart (plan.kept): only what is lost is a warning.
    warnings = [
        f"{step.label}: {loss.describe()}" for step, loss in plan.data_loss if not loss.archived
    ]
    warnings += [
        f"{step.label}: its reverse code runs; the rows it deletes or changes are not archived."
        for step in plan.steps
        if any("are not archived" in note for note in step.notes)
    ]
    if plan.steps and not plan.all_or_nothing:
        if not connection.features.can_rollback_ddl:
            warnings.append(
                f"Not all or nothing: {connection.display_name} cannot roll back schema changes "
                "(DDL is not transactional), so the steps run one by one and each is committed "
                "as it ends. If a step fails, the steps before it stay unapplied, that step may "
                "be half done, and the saved states are not changed; the error and the rollback "
                "log name the step. Fix the cause (finish or undo that step's changes by hand if "
                "needed) and run the same rollback again: it continues from what is applied."
            )
        else:
            non_atomic = [f"{m.app_label}.{m.name}" for m in ordered if not m.atomic]
            warnings.append(
                f"Not all or nothing: {', '.join(non_atomic)} cannot run inside a transaction, "
                "so each step runs in its own; a failure stops the rollback part way."
            )
    # A squash counts as what it replaces (its row alone is no drift).
    drift = with_squashes(recorded, squashes) ^ with_squashes(plan.current.migration_set, squashes)
    if drift:
        warnings.append(
            f"The database does not match the saved state of the current commit "
            f"({len(drift)} migrations differ); the plan starts from what is applied now."
        )
    return warnings


def _collect_sql(connection: BaseDatabaseWrapper, context: ExecutionContext) -> list[str]:
    """The SQL of the whole plan, as `sqlmigrate --backwards` prints it for each step."""
    states = context.states_before_steps()
    statements: list[str] = []
    for migration in context.migrations:
        statements.append(f"-- Unapply {migration.app_label}.{migration.name}")
        try:
            with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
                migration.unapply(
                    states[(migration.app_label, migration.name)], editor, collect_sql=True
                )
            statements.extend(editor.collected_sql)
        except Exception as exc:  # an irreversible step: say so instead of failing the preview
            statements.append(f"-- cannot be written as SQL: {exc}")
    return statements
