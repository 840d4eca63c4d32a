"""System checks (`manage.py check`) for the reviewed reverse overrides and the notifications.

An override is a promise about one migration; when that migration is renamed, squashed away
or made reversible upstream, the promise silently stops meaning anything. These warnings say so
at the next `check` (and at every `migrate`, which runs the checks). A bad NOTIFY setting is
an error: notifications would otherwise silently not go out."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db.migrations.exceptions import BadMigrationError, NodeNotFoundError
from django.db.migrations.loader import MigrationLoader

from . import overrides

SETTING = 'DJANGO_ROLLBACK["REVERSE"]'


def check_reverse_overrides(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        configured = overrides.configured()
    except ImproperlyConfigured as exc:
        return [checks.Warning(str(exc), id="django_rollback.W003")]
    if not configured:
        return []
    try:  # the files only: no database needed
        loader = MigrationLoader(None, ignore_no_migrations=True)
    except (NodeNotFoundError, BadMigrationError) as exc:
        return [checks.Warning(f"{SETTING} cannot be checked: {exc}", id="django_rollback.W001")]
    found: list[checks.CheckMessage] = []
    for name, value in sorted(configured.items()):
        where = f'{SETTING}["{name}"]'
        app, _, migration_name = str(name).partition(".")
        migration = loader.disk_migrations.get((app, migration_name))
        if migration is None:
            found.append(
                checks.Warning(
                    f"{where} names a migration that does not exist.",
                    hint='Use "app_label.migration_name" of a migration file on disk, or '
                    "remove the entry.",
                    id="django_rollback.W001",
                )
            )
            continue
        if not overrides.irreversible_reasons(migration.operations):
            found.append(
                checks.Warning(
                    f"{where}: {name} is reversible, the override is never used.",
                    hint="Remove the entry: the migration's own reverse runs.",
                    id="django_rollback.W002",
                )
            )
        try:
            overrides.parse(name, value)
        except ImproperlyConfigured as exc:
            found.append(
                checks.Warning(f"{where} is not usable: {exc}.", id="django_rollback.W003")
            )
    return found


def check_notify(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A bad DJANGO_ROLLBACK["NOTIFY"] is an error: notifications would silently not go out."""
    from .notify_settings import config

    try:
        config()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(str(exc), hint="See docs/notifications.md.", id="django_rollback.E001")
        ]
    return []
