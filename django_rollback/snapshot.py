"""What is applied now, and what the migration files on disk say about squashes."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from .models import MigrationKey

# {"app.squashed_name": [[app, replaced_name], ...]}: the JSON shape kept in MigrationState.
SquashMap = dict[str, list[list[str]]]


def applied_migrations(
    connection: BaseDatabaseWrapper, *, table_exists: bool = False
) -> frozenset[MigrationKey]:
    """Every (app, name) row of django_migrations: the raw truth, squashes included.

    With table_exists, skip the recorder's introspection query (one query fewer)."""
    recorder = MigrationRecorder(connection)
    if table_exists:
        return frozenset(recorder.migration_qs.values_list("app", "name"))
    return frozenset(recorder.applied_migrations())


def squashes_on_disk(loader: MigrationLoader | None = None) -> SquashMap:
    """Squashed migrations among the files on disk, with what each one replaces."""
    if loader is None:
        loader = MigrationLoader(None, ignore_no_migrations=True, load=False)
        loader.load_disk()
    return {
        f"{app}.{name}": [[r_app, r_name] for r_app, r_name in migration.replaces]
        for (app, name), migration in loader.disk_migrations.items()
        if migration.replaces
    }


def parse_squashes(*maps: SquashMap) -> dict[MigrationKey, frozenset[MigrationKey]]:
    """Merge squash maps (from disk and from saved states) into key -> replaced keys."""
    merged: dict[MigrationKey, frozenset[MigrationKey]] = {}
    for squash_map in maps:
        for label, replaced in (squash_map or {}).items():
            app, name = label.split(".", 1)
            merged[(app, name)] = frozenset((a, n) for a, n in replaced)
    return merged


def with_squashes(
    keys: frozenset[MigrationKey], squashes: dict[MigrationKey, frozenset[MigrationKey]]
) -> frozenset[MigrationKey]:
    """A squashed migration counts as applied when everything it replaces is."""
    return keys | {key for key, replaced in squashes.items() if replaced and replaced <= keys}
