"""save_migrations_state over a fleet: every target saves for the same commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS

from .. import services
from ..exceptions import RollbackError, RollbackInterruptedError
from .targets import Selection, Target, on_schema, targets


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
