"""What is applied now, and what the migration files on disk say about squashes."""

from __future__ import annotations

import os
import pkgutil
from collections.abc import Iterator
from importlib import import_module

from django.apps import apps
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from .catalog import existing_tables
from .models import MigrationKey

# {"app.squashed_name": [[app, replaced_name], ...]}: the JSON shape kept in MigrationState.
SquashMap = dict[str, list[list[str]]]


def applied_migrations(
    connection: BaseDatabaseWrapper, *, table_exists: bool = False
) -> frozenset[MigrationKey]:
    """Every (app, name) row of django_migrations: the raw truth, squashes included.

    With table_exists, skip the recorder's introspection query (one query fewer)."""
    recorder = MigrationRecorder(connection)
    table = recorder.Migration._meta.db_table
    if table_exists or existing_tables(connection, [table]):
        return frozenset(recorder.migration_qs.values_list("app", "name"))
    return frozenset()  # no django_migrations table: nothing applied (as the recorder says)


def squashes_on_disk(loader: MigrationLoader | None = None) -> SquashMap:
    """Squashed migrations among the files on disk, with what each one replaces."""
    if loader is None:
        return _squashes_in_files()
    return {
        f"{app}.{name}": [[r_app, r_name] for r_app, r_name in migration.replaces]
        for (app, name), migration in loader.disk_migrations.items()
        if migration.replaces
    }


def _migration_files() -> Iterator[tuple[str, str, str, str | None]]:
    """(app label, migrations module, migration name, folder) for every migration module on
    disk, as MigrationLoader.load_disk() would find them, without importing them."""
    for app_config in apps.get_app_configs():
        module_name, _ = MigrationLoader.migrations_module(app_config.label)
        if module_name is None:
            continue
        try:
            package = import_module(module_name)
        except ModuleNotFoundError:
            continue
        if not hasattr(package, "__path__") or (
            getattr(package, "__file__", None) is None and not isinstance(package.__path__, list)
        ):
            continue  # a module, or an empty namespace package: the loader skips both
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg or info.name[0] in "_~":
                continue
            folder = getattr(info.module_finder, "path", None)
            yield app_config.label, module_name, info.name, folder


def _squashes_in_files() -> SquashMap:
    """What MigrationLoader.load_disk() would say about squashes, without importing every
    migration module (on a big project that is most of the time of a save): a module can
    only declare `replaces` if its source says so, so only those modules are imported."""
    found: SquashMap = {}
    for label, module_name, name, folder in _migration_files():
        if folder is not None:
            try:
                with open(os.path.join(folder, f"{name}.py"), "rb") as source:
                    if b"replaces" not in source.read():
                        continue
            except OSError:
                pass  # no source file next to it: import it to find out
        migration = getattr(import_module(f"{module_name}.{name}"), "Migration", None)
        replaces = getattr(migration, "replaces", None) or []
        if replaces:
            found[f"{label}.{name}"] = [[a, n] for a, n in replaces]
    return found


def unapplied_on_disk(
    applied: frozenset[MigrationKey], squashes: SquashMap | None = None
) -> list[MigrationKey]:
    """Migration files on disk that are not applied, sorted: what `migrate` would apply.

    A squashed migration counts as applied when everything it replaces is, and the files it
    replaces when it is (as the loader sees them). Only file names are listed; the files are
    read (for squashes) only when some name is not applied, so a routine save stays cheap."""
    candidates = [
        (label, name)
        for label, _module, name, _folder in _migration_files()
        if (label, name) not in applied
    ]
    if not candidates:
        return []
    replaced_by = parse_squashes(squashes if squashes is not None else _squashes_in_files())
    done = with_squashes(applied, replaced_by)
    for squash, replaced in replaced_by.items():
        if squash in done:
            done |= replaced
    return sorted(key for key in candidates if key not in done)


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
