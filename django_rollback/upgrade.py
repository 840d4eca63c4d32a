"""Upgrading a database from django-rollback 0.4.0 (run by migration 0002_upgrade_from_0_4_0).

0.4.0 recorded a migration named like our first one (`django_rollback.0001_initial`), so on
its databases Django never runs ours: 0002 creates our tables when they are missing.

0.4.0 kept one row per commit in `django_rollback_appsstate`: the commit, a JSON text of
`[id, app, name]` holding the newest applied migration of each app (by django_migrations.id)
and a timestamp. Our states hold the full applied set, so each old row becomes a state whose
set is those newest migrations plus all their ancestors in the migration graph on disk (what
Django must have applied before them), plus the django_migrations rows still there that are
older than the save. Tags come from git when the commit is reachable. A
newest migration whose file is gone leaves its ancestors unknown: the state is kept, with
those migrations in `unresolved`, and a rollback to it is refused.

The old table is left as it was (a backup for one release); the next release drops it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from typing import Any

from django.apps.registry import Apps
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.graph import MigrationGraph
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import conf
from .exceptions import RepositoryError
from .git import GitRepository
from .models import MigrationKey

OLD_TABLE = "django_rollback_appsstate"
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
NEW_TABLES = ("MigrationState", "RollbackLog")


@dataclass(frozen=True)
class OldState:
    """One row of 0.4.0's table."""

    id: int
    commit: str
    newest: tuple[MigrationKey, ...]  # the newest applied migration of each app
    last_row_id: int | None  # the highest django_migrations.id among them
    saved_at: datetime | None


@dataclass(frozen=True)
class ConvertedSet:
    applied: frozenset[MigrationKey]
    unresolved: frozenset[MigrationKey]  # newest migrations whose file is not on disk


def create_missing_tables(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Create the tables of 0001_initial where 0.4.0 recorded its own 0001_initial instead.

    `apps` is the state right after our 0001, so the models are exactly what it creates."""
    connection = schema_editor.connection
    existing = set(connection.introspection.table_names())
    for name in NEW_TABLES:
        model = apps.get_model("django_rollback", name)
        if model._meta.db_table not in existing:
            schema_editor.create_model(model)


def convert_old_states(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    """Copy 0.4.0's states into ours, oldest first (ids keep the order of the saves)."""
    connection = schema_editor.connection
    old_states = read_old_states(connection)
    if not old_states:
        return
    states = apps.get_model("django_rollback", "MigrationState")._default_manager.db_manager(
        connection.alias
    )
    already = set(states.values_list("commit", flat=True))  # 0002 unapplied and run again
    graph = disk_graph()
    repo = _repository()
    recorded = _recorded_rows(connection)
    for old in old_states:
        if old.commit in already:
            continue
        already.add(old.commit)
        converted = full_applied_set(graph, old.newest, _recorded_by(recorded, old.last_row_id))
        fields: dict[str, Any] = {
            "commit": old.commit,
            "tags": list(_tags(repo, old.commit)),
            "migrations": [[app, name] for app, name in sorted(converted.applied)],
            "squashes": {},  # unknown: 0.4.0 did not keep them; the files on disk tell
            "unresolved": [[app, name] for app, name in sorted(converted.unresolved)],
        }
        if old.saved_at is not None:
            fields["saved_at"] = old.saved_at
        states.create(**fields)


# 0.4.0 names its save time `timestamp`; releases before it had `created` (and `updated`).
TIME_COLUMNS = ("timestamp", "created", "updated")


def read_old_states(connection: BaseDatabaseWrapper) -> list[OldState]:
    """The rows of 0.4.0's table in the order 0.4.0 saw them (by save time, then id),
    oldest first; [] when there is no such table."""
    if OLD_TABLE not in connection.introspection.table_names():
        return []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        columns = {
            column.name
            for column in connection.introspection.get_table_description(cursor, OLD_TABLE)
        }
        time_column = next((name for name in TIME_COLUMNS if name in columns), None)
        saved_at = quote(time_column) if time_column else "NULL"
        cursor.execute(
            f"SELECT {quote('id')}, {quote('commit')}, {quote('migrations')}, {saved_at} "
            f"FROM {quote(OLD_TABLE)} ORDER BY {quote('id')}"
        )
        rows = cursor.fetchall()
    states = []
    for row_id, commit, migrations, timestamp in rows:
        newest = _newest(migrations)
        states.append(
            OldState(
                id=int(row_id),
                commit=str(commit).strip().lower(),
                newest=tuple(sorted({key for key, _ in newest})),
                last_row_id=max((i for _, i in newest if i is not None), default=None),
                saved_at=_aware(timestamp),
            )
        )
    # 0.4.0 ordered its states by save time; the id breaks ties (and orders rows without it).
    return sorted(states, key=lambda s: (s.saved_at is None, s.saved_at or _EPOCH, s.id))


def _newest(
    value: str | bytes | list[list[object]] | None,
) -> list[tuple[MigrationKey, int | None]]:
    """[[id, app, name], ...] as 0.4.0 wrote it (an [app, name] pair is accepted too)."""
    if not value:
        return []
    entries = json.loads(value) if isinstance(value, (str, bytes)) else value
    return [
        ((str(entry[-2]), str(entry[-1])), int(str(entry[0])) if len(entry) >= 3 else None)
        for entry in entries
        if len(entry) >= 2
    ]


def _recorded_rows(connection: BaseDatabaseWrapper) -> list[tuple[int, MigrationKey]]:
    recorder = MigrationRecorder(connection)
    return [(i, (a, n)) for i, a, n in recorder.migration_qs.values_list("id", "app", "name")]


def _recorded_by(
    recorded: list[tuple[int, MigrationKey]], last_row_id: int | None
) -> frozenset[MigrationKey]:
    """Rows of django_migrations still there that were written before the state was saved
    (ids only grow): they were applied then."""
    if last_row_id is None:
        return frozenset()
    return frozenset(key for row_id, key in recorded if row_id <= last_row_id)


def _aware(value: datetime | str | None) -> datetime | None:
    """The timestamp as Django would read it from this backend: SQLite gives text and
    MySQL a naive UTC datetime when USE_TZ is on."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value


def disk_graph() -> MigrationGraph:
    """The graph of every migration file on disk, squashed ones and what they replace both
    kept as nodes (0.4.0 may name either)."""
    loader = MigrationLoader(None, ignore_no_migrations=True, replace_migrations=False)
    graph: MigrationGraph = loader.graph
    return graph


def full_applied_set(
    graph: MigrationGraph,
    newest: tuple[MigrationKey, ...],
    recorded_before: frozenset[MigrationKey] = frozenset(),
) -> ConvertedSet:
    """The newest migrations and everything they depend on, as django_migrations lists it:
    a squash whose replaced migrations are all there is listed too, and the other way round.

    `recorded_before`: rows still in django_migrations that are older than the save. They
    matter when the newest row of an app is a squash, which Django records after the
    migrations that followed it once all it replaces is applied."""
    applied: set[MigrationKey] = set(recorded_before)
    unresolved: set[MigrationKey] = set()
    for key in newest:
        if key in graph.nodes:
            applied.update(graph.forwards_plan(key))
        else:
            unresolved.add(key)
            applied.add(key)  # named by 0.4.0, so it was applied; only its ancestors are unknown
    for key, node in graph.nodes.items():
        replaced = set(getattr(node, "replaces", None) or ())
        if not replaced:
            continue
        if key in applied:
            applied |= replaced
        elif replaced <= applied:
            applied.add(key)
    return ConvertedSet(frozenset(applied), frozenset(unresolved))


def _repository() -> GitRepository | None:
    try:
        return GitRepository(conf.repo_path())
    except RepositoryError:
        return None


def _tags(repo: GitRepository | None, commit: str) -> tuple[str, ...]:
    if repo is None or not repo.has_commit(commit):
        return ()
    return repo.tags_at(commit)
