"""The plan as data: its steps, what each drops and locks, the app changes, blockers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration
from django.db.migrations.state import ProjectState
from django.utils.translation import gettext, ngettext

from .. import overrides
from ..exceptions import PlanRefusedError
from ..models import MigrationKey, MigrationState
from ..radius import TableLock, TableSize
from .states import states_before

# An operation with the states it is undone between: (operation, before it, after it).
Backward = tuple[Any, ProjectState, ProjectState]


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
    # Reverse code (RunPython, RunSQL) runs: the rows it deletes or changes are not archived.
    runs_reverse_code: bool = False

    @property
    def key(self) -> MigrationKey:
        return (self.app, self.name)

    @property
    def irreversible_blocker(self) -> str | None:
        """The blocker an irreversible step puts on its plan."""
        if not self.irreversible:
            return None
        return f"Irreversible: {self.label} ({'; '.join(self.irreversible)})."

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
    _backwards: dict[MigrationKey, list[Backward]] = field(default_factory=dict, repr=False)

    def states_before_steps(self, *, render: bool = True) -> dict[MigrationKey, ProjectState]:
        """The project state just before each step, as Django's backwards run sees it, but
        holding only the models the step can reach (see state_for_step). Fresh copies on
        every call, free to mutate; they render lazily, so `render` is only a hint."""
        return {key: state.clone() for key, state in self._states_before().items()}

    def _states_before(self) -> dict[MigrationKey, ProjectState]:
        if self._states is None:
            self._states = states_before(
                self.executor.loader, self.full_plan, self.applied_nodes, self.migrations
            )
        return self._states

    def backwards(self, migration: Migration) -> list[Backward]:
        """(operation, state before it, state after it) for each operation of `migration`,
        last first: what Django's Migration.unapply() works out before undoing them, worked
        out once per process. The states render when first used and stay rendered, so the
        schemas of a fleet that run this plan render them once per worker, not each time."""
        key = (migration.app_label, migration.name)
        if key not in self._backwards:
            state = self._states_before()[key]
            runs: list[Backward] = []
            for operation in migration.operations:
                if not operation.reversible:  # refused by the plan: the last guard
                    raise IrreversibleError(f"{operation} in {migration} is not reversible")
                # Copies each: an operation undone may change its states (RunPython clears
                # a cache of its state), never the next one's.
                before, after = state.clone(), state.clone()
                operation.state_forwards(migration.app_label, after)
                runs.insert(0, (operation, before, after))
                state = after
            self._backwards[key] = runs
        return self._backwards[key]


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
    # Without any step: squash records a newer `migrate` added, which the rollback removes.
    stray_records: frozenset[MigrationKey] = frozenset()
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

    def refuse_if_blocked(self) -> None:
        """The one refusal of a plan with blockers, in the words every skin shows."""
        if self.blockers:
            raise PlanRefusedError(self.refusal)

    @property
    def refusal(self) -> str:
        return "Refusing to roll back: " + " ".join(self.blockers)

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
            "stray_records": [label(key) for key in sorted(self.stray_records)],
        }
