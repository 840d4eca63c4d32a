"""save_migrations_state over a fleet: every target saves for the same commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError

from .. import services
from ..exceptions import RollbackError, RollbackInterruptedError, database_error
from .databases import aliases_to_save
from .targets import Selection, Target, home_target, on_schema, targets


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
    databases: list[str]  # every alias saved in (several with --all-databases)

    @property
    def failed(self) -> list[TargetSave]:
        return [save for save in self.saves if not save.ok]


def save_fleet(
    *,
    database: str = DEFAULT_DB_ALIAS,
    selection: Selection | None = None,
    all_databases: bool = False,
    on_target: Callable[[TargetSave], None] | None = None,
    **save_options: Any,
) -> FleetSave:
    """save_state() in every target's schema, for the same commit; a failure in one target is
    recorded and the others are saved all the same. `all_databases`: the targets of every
    alias django_rollback migrates in (aliases_to_save()), a database without django-tenants
    being one target."""
    aliases = aliases_to_save() if all_databases else [database]
    if not aliases:
        raise RollbackError("No database in DATABASES takes django_rollback's tables (routers).")
    saves: list[TargetSave] = []

    def done(save: TargetSave) -> None:
        saves.append(save)
        if on_target is not None:
            on_target(save)

    for alias in aliases:
        try:
            found = targets(alias, selection, whole=all_databases)
        except DatabaseError as exc:  # its tenants cannot be listed: the alias fails
            if not all_databases:
                raise
            done(TargetSave(home_target(alias), error=database_error(alias, exc)))
            continue
        for target in found:
            done(_save_one(target, save_options))
    return FleetSave(aliases[0], saves, aliases)


def _save_one(target: Target, save_options: dict[str, Any]) -> TargetSave:
    save = TargetSave(target)
    with on_schema(target):
        try:
            save.result = services.save_state(database=target.database, **save_options)
        except RollbackInterruptedError:
            raise
        except RollbackError as exc:
            save.error = str(exc)
        except DatabaseError as exc:
            save.error = database_error(target.database, exc)
    return save
