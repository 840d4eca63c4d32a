"""Could the state just saved be rolled back to the previous one? (planned, not run)"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import BaseDatabaseWrapper

from .. import overrides
from ..execution import (
    describe_state,
)
from ..models import (
    MigrationState,
)
from ..planning import build_plan, label
from ..presenters.text import migrations_in_apps
from .squashes import saved_squashes


@dataclass(frozen=True)
class Readiness:
    """Could the state just saved be rolled back to the previous one? Planned right after
    the save, without counting rows and without changing anything."""

    target: MigrationState
    migrations: int
    apps: int
    irreversible: tuple[tuple[str, str], ...]  # (migration label, why), in plan order
    blockers: tuple[str, ...]  # every reason the plan gives, irreversible steps included
    overridden: tuple[str, ...] = ()  # steps made reversible by DJANGO_ROLLBACK["REVERSE"]
    # Every irreversible migration applied in this state that an earlier save saw arrive:
    # it blocks a rollback to any state without it. The admin list reads it from the
    # current state alone instead of planning each row.
    irreversible_applied: tuple[tuple[str, str], ...] = ()
    # The blockers that irreversible steps put (said through `irreversible` instead).
    irreversible_blockers: frozenset[str] = frozenset()

    @property
    def possible(self) -> bool:
        return not self.blockers

    @property
    def message(self) -> str:
        """The one line a save prints."""
        target = describe_state(self.target)
        if self.possible:
            if not self.migrations:
                return f"Rollback to {target} is possible: no migrations to unapply."
            return (
                f"Rollback to {target} is possible: "
                f"{migrations_in_apps(self.migrations, self.apps)}."
            )
        reasons = []
        if self.irreversible:
            reasons.append(
                "irreversible: " + ", ".join(f"{name} ({why})" for name, why in self.irreversible)
            )
        reasons += [b for b in self.blockers if b not in self.irreversible_blockers]
        why = "; ".join(reason.rstrip(".") for reason in reasons)
        return f"Warning: a rollback to {target} is NOT possible: {why}."

    def as_dict(self) -> dict[str, object]:
        """The JSON of `save_migrations_state --json` and of MigrationState.readiness."""
        return {
            "possible": self.possible,
            "target": {
                "id": self.target.pk,
                "commit": self.target.commit,
                "tags": list(self.target.tags),
            },
            "migrations": self.migrations,
            "apps": self.apps,
            "irreversible": [{"migration": m, "reason": r} for m, r in self.irreversible],
            "blockers": list(self.blockers),
            "overridden": list(self.overridden),
            "irreversible_applied": [
                {"migration": m, "reason": r} for m, r in self.irreversible_applied
            ],
            "message": self.message,
        }


def readiness(
    connection: BaseDatabaseWrapper, state: MigrationState, previous: MigrationState
) -> Readiness:
    """Plan the rollback from `state` (applied now) to `previous`; nothing is written."""
    plan = build_plan(
        connection, state, previous, saved_squashes(connection.alias), count_rows=False
    )
    irreversible: list[tuple[str, str]] = []
    for step in plan.steps:
        irreversible += [(step.label, why) for why in step.irreversible]
    earlier = [
        (entry["migration"], entry["reason"])
        for entry in (previous.readiness or {}).get("irreversible_applied", [])
    ]
    applied = {label(key) for key in state.migration_set}
    overridden = {step.label for step in plan.steps if step.override}
    try:
        reviewed = set(overrides.configured())
    except ImproperlyConfigured:
        reviewed = set()
    still = {
        (name, why): None
        for name, why in earlier + irreversible
        if name in applied and name not in reviewed
    }
    return Readiness(
        target=previous,
        migrations=len(plan.steps),
        apps=len(plan.app_changes),
        irreversible=tuple(irreversible),
        blockers=tuple(plan.blockers),
        overridden=tuple(sorted(overridden)),
        irreversible_applied=tuple(still),
        irreversible_blockers=frozenset(
            step.irreversible_blocker for step in plan.steps if step.irreversible_blocker
        ),
    )
