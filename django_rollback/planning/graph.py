"""The migration graph and the set arithmetic over it (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.exceptions import BadMigrationError, NodeNotFoundError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from ..exceptions import PlanRefusedError
from ..models import MigrationKey, MigrationState
from ..snapshot import with_squashes
from .plan import AppChange, label, labels


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


class _Recorder(MigrationRecorder):
    def record_unapplied(self, app: str, name: str) -> None:
        """One DELETE by app and name. The ORM's delete() first SELECTs the rows and sends
        post_delete for each whenever a receiver listens to every model (django-tenants
        connects one): three statements' worth of work per step, and per schema in a fleet."""
        self.ensure_schema()
        quote = self.connection.ops.quote_name
        with self.connection.cursor() as cursor:  # Django's model: columns app and name
            cursor.execute(
                f"DELETE FROM {quote(self.Migration._meta.db_table)} "
                f"WHERE {quote('app')} = %s AND {quote('name')} = %s",
                [app, name],
            )


class _Executor(MigrationExecutor):
    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        # MigrationExecutor.__init__, with GraphLoader and _Recorder.
        self.connection = connection
        self.loader = GraphLoader(connection)
        self.recorder = _Recorder(connection)
        self.progress_callback = None


def load_executor(connection: BaseDatabaseWrapper) -> MigrationExecutor:
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


def compute_sets(
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
    # after the rollback are exactly the target's (build_plan gives it to the last step, or
    # to the plan itself when there is no step: a release that only shipped the squash).
    stray_squashes = frozenset(
        key
        for key in recorded - removed - target_raw
        if squashes.get(key) and squashes[key] <= recorded - removed
    )
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


def check_sets(
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


def leaf_names(graph: MigrationGraph, nodes: set[MigrationKey], app: str) -> tuple[str, ...]:
    in_app = {key for key in nodes if key[0] == app}
    return tuple(
        sorted(
            name
            for (a, name) in in_app
            if not any(child.key in in_app for child in graph.node_map[(a, name)].children)
        )
    )


def app_changes_of(
    graph: MigrationGraph,
    applied_nodes: set[MigrationKey],
    target_nodes: set[MigrationKey],
    to_unapply: set[MigrationKey],
) -> list[AppChange]:
    apps = sorted({app for app, _ in to_unapply})
    return [
        AppChange(
            app=app,
            current=leaf_names(graph, applied_nodes, app),
            target=leaf_names(graph, target_nodes & applied_nodes, app),
            steps=sum(1 for a, _ in to_unapply if a == app),
        )
        for app in apps
    ]
