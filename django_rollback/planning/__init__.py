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

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.migration import Migration

from .. import overrides
from ..models import MigrationKey, MigrationState
from ..radius import TableSize
from ..snapshot import SquashMap, applied_migrations, parse_squashes, squashes_on_disk
from .graph import GraphLoader, PlanSets, app_changes_of, check_sets, compute_sets, load_executor
from .measure import measure_steps
from .plan import AppChange, DataLoss, ExecutionContext, PlanStep, RollbackPlan, label, labels
from .states import state_for_step, states_before
from .steps import describe_step, plan_warnings

__all__ = [
    "AppChange",
    "DataLoss",
    "ExecutionContext",
    "GraphLoader",
    "PlanSets",
    "PlanStep",
    "RollbackPlan",
    "build_plan",
    "label",
    "labels",
]

# The names tests/test_lazy_registry.py has always imported from here.
_describe_step, _state_for_step, _states_before = describe_step, state_for_step, states_before


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
    executor = load_executor(connection)
    recorded = applied_migrations(connection)
    squashes = parse_squashes(*known_squashes, squashes_on_disk(executor.loader))
    sets = compute_sets(executor.loader, recorded, target, squashes)
    blockers = check_sets(executor.loader, sets, squashes)

    full_plan = executor.migration_plan(executor.loader.graph.leaf_nodes(), clean_start=True)
    ordered, steps, extra_unrecords = _ordered_steps(connection, full_plan, sets, blockers)
    stray_records = frozenset() if steps else sets.stray_squashes

    all_or_nothing = connection.features.can_rollback_ddl and all(m.atomic for m in ordered)
    context = ExecutionContext(executor, full_plan, sets.applied_nodes, ordered)
    tables: dict[str, TableSize] = {}
    if count_rows and steps:
        tables = measure_steps(connection, context, steps, exact=exact_counts, archive=archive)

    plan = RollbackPlan(
        database=connection.alias,
        vendor=connection.vendor,
        current=current,
        target=target,
        steps=steps,
        app_changes=app_changes_of(
            executor.loader.graph, sets.applied_nodes, sets.target_nodes, sets.to_unapply
        ),
        blockers=blockers,
        warnings=[],
        all_or_nothing=all_or_nothing,
        applied_before=recorded,
        expected_after=sets.expected_after,
        extra_unrecords=extra_unrecords,
        stray_records=stray_records,
        squashes={key: squashes[key] for key in recorded if squashes.get(key)},
        tables=tables,
        context=context,
        archive=archive,
    )
    plan.warnings = plan_warnings(plan, connection, ordered, recorded, squashes)
    plan.kept = [
        f"{step.label}: {loss.describe()}" for step, loss in plan.data_loss if loss.archived
    ]
    if with_sql and steps:
        plan.sql = _collect_sql(connection, context)
    return plan


def _ordered_steps(
    connection: BaseDatabaseWrapper,
    full_plan: list[tuple[Migration, bool]],
    sets: PlanSets,
    blockers: list[str],
) -> tuple[list[Migration], list[PlanStep], dict[MigrationKey, frozenset[MigrationKey]]]:
    """The migrations to unapply in reverse plan order (reviewed overrides in place), their
    steps and the records each removes besides its own; adds to `blockers` what stops
    them."""
    ordered = [m for m, _ in reversed(full_plan) if (m.app_label, m.name) in sets.to_unapply]
    reverse_overrides, override_blockers = _reverse_overrides(
        {f"{m.app_label}.{m.name}" for m in ordered}
    )
    blockers += override_blockers
    steps = [describe_step(m, reverse_overrides, connection) for m in ordered]
    extra_unrecords = dict(sets.extra_unrecords)
    if sets.stray_squashes and steps:
        last = steps[-1]
        extra_unrecords[last.key] = extra_unrecords.get(last.key, frozenset()) | (
            sets.stray_squashes
        )
        last.notes.append(
            f"also removes the record of {labels(sets.stray_squashes)}: a newer `migrate` "
            "recorded the squash because all it replaces is applied; the target did not"
        )
    blockers += [step.irreversible_blocker for step in steps if step.irreversible_blocker]
    # Steps with a reviewed override run a copy whose irreversible operations run it.
    ordered = [
        overrides.with_override(m, step.override) if step.override else m
        for m, step in zip(ordered, steps, strict=True)
    ]
    return ordered, steps, extra_unrecords


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
