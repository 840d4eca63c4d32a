"""What planning a fleet found and what running it did: plain data the commands present."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..models import MigrationKey
from ..planning import DataLoss, RollbackPlan
from .targets import Target, TargetKind, TargetStatus


@dataclass
class TargetRun:
    """One target of a fleet rollback: what planning found, then what running it did."""

    target: Target
    status: TargetStatus
    message: str = ""
    applied: frozenset[MigrationKey] = frozenset()
    plan: RollbackPlan | None = field(default=None, repr=False)
    odd: bool = False  # a tenant whose applied set differs from most tenants'
    log_id: int | None = None
    seconds: float | None = None
    archived: dict[str, Any] | None = None
    gid: str | None = None  # --atomic: the global id of its prepared transaction
    plan_of: str | None = None  # the target whose plan it shares (itself when planned alone)
    # What the shared plan drops, counted in this schema (counting.py); None: planned alone,
    # the plan's own counts are this schema's.
    losses: list[tuple[str, DataLoss]] | None = field(default=None, repr=False)

    @property
    def steps(self) -> int:
        return len(self.plan.steps) if self.plan is not None else 0

    @property
    def own_losses(self) -> list[tuple[str, DataLoss]]:
        """(migration, what it drops) in this schema, with this schema's counts."""
        if self.losses is not None:
            return self.losses
        if self.plan is None:
            return []
        return [(step.label, loss) for step, loss in self.plan.data_loss]

    @property
    def data_loss(self) -> list[str]:
        """What unapplying drops in this schema, in the words of the single-database preview."""
        return [f"{label}: {loss.describe()}" for label, loss in self.own_losses]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.target.as_dict(),
            "status": self.status,
            "message": self.message,
            "odd": self.odd,
            "steps": [step.label for step in self.plan.steps] if self.plan is not None else [],
            "data_loss": self.data_loss,
            "plan_of": self.plan_of,
            "log_id": self.log_id,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "archive": self.archived,
        }


@dataclass(frozen=True)
class GroupLoss:
    """A table or column that a group's plan drops, summed over the group's schemas."""

    migration: str
    loss: DataLoss  # what is dropped and whether it is archived (its rows: one schema's)
    rows: int  # rows (or non-null values), summed over the schemas where they were counted
    estimated: bool  # some schema's count is an estimate
    holding: int  # schemas where it holds any
    schemas: int  # schemas of the group
    most: tuple[str, int] | None  # the schema holding the most, and how many
    uncounted: int  # schemas where it is missing or could not be counted
    same: bool = False  # every schema where it was counted holds as many


def group_losses(runs: list[TargetRun]) -> tuple[GroupLoss, ...]:
    """What the runs of a group drop, each table or column once, in the plan's order."""
    found: dict[tuple[str, str, str | None], list[tuple[str, DataLoss]]] = {}
    for run in runs:
        for migration, loss in run.own_losses:
            key = (migration, loss.table, loss.column)
            found.setdefault(key, []).append((run.target.name, loss))
    totals = []
    for (migration, _table, _column), losses in found.items():
        counted = [(name, loss.rows) for name, loss in losses if loss.rows is not None]
        most = max(counted, key=lambda pair: pair[1], default=None)
        totals.append(
            GroupLoss(
                migration,
                losses[0][1],
                sum(rows for _name, rows in counted),
                any(loss.estimated for _name, loss in losses),
                sum(1 for _name, rows in counted if rows),
                len(runs),
                (most[0], most[1]) if most is not None and most[1] else None,
                len(runs) - len(counted),
                len({rows for _name, rows in counted}) == 1,
            )
        )
    return tuple(totals)


@dataclass(frozen=True)
class AppliedGroup:
    """Targets of one kind that stand at the same applied set, and so share one plan."""

    kind: TargetKind
    applied: frozenset[MigrationKey]
    schemas: tuple[str, ...]
    steps: tuple[str, ...]
    losses: tuple[GroupLoss, ...] = ()
    tenant_type: str | None = None  # multi-type tenants: the group's type
    plan: RollbackPlan | None = field(default=None, compare=False, repr=False)  # its first's


@dataclass
class FleetPlan:
    database: str
    target_commit: str
    target_tags: list[str]
    runs: list[TargetRun]
    skip_unsaved: bool = False
    plans_built: int = 0  # plan_rollback() calls: one per group of targets at the same place
    databases: list[str] = field(default_factory=list)  # --all-databases: every alias in it

    @property
    def refused(self) -> list[TargetRun]:
        return [r for r in self.runs if r.status == "refused"]

    @property
    def unsaved(self) -> list[TargetRun]:
        return [r for r in self.runs if r.status in ("unsaved", "skipped")]

    @property
    def odd(self) -> list[TargetRun]:
        return [r for r in self.runs if r.odd]

    @property
    def planned(self) -> list[TargetRun]:
        return [r for r in self.runs if r.status == "planned"]

    @property
    def refusal(self) -> str | None:
        """Why nothing may run, or None."""
        reasons = []
        if self.refused:
            reasons.append(
                f"{len(self.refused)} target{'s' if len(self.refused) != 1 else ''} refused ("
                + ", ".join(r.target.name for r in self.refused)
                + ")"
            )
        unsaved = [r for r in self.runs if r.status == "unsaved"]
        if unsaved:
            reasons.append(
                f"{len(unsaved)} schema{'s have' if len(unsaved) != 1 else ' has'} no saved "
                f"state at commit {self.target_commit[:12]} ("
                + ", ".join(r.target.name for r in unsaved)
                + "): created after it; --skip-unsaved leaves "
                + ("them" if len(unsaved) != 1 else "it")
                + " as "
                + ("they are" if len(unsaved) != 1 else "it is")
            )
        if not reasons:
            return None
        return "Refusing to roll back any schema: " + "; ".join(reasons) + "."

    def groups(self) -> list[AppliedGroup]:
        """The planned targets grouped by kind (and tenant type) and applied set, largest
        group first."""
        found: dict[tuple[TargetKind, str | None, frozenset[MigrationKey]], list[TargetRun]] = {}
        for run in self.planned:
            key = (run.target.kind, run.target.tenant_type, run.applied)
            found.setdefault(key, []).append(run)
        groups = [
            AppliedGroup(
                kind,
                applied,
                tuple(r.target.name for r in runs),
                tuple(s.label for s in runs[0].plan.steps) if runs[0].plan else (),
                group_losses(runs),
                tenant_type,
                runs[0].plan,
            )
            for (kind, tenant_type, applied), runs in found.items()
        ]
        return sorted(groups, key=lambda g: (g.kind != "tenant", -len(g.schemas), g.schemas))


@dataclass
class FleetResult:
    plan: FleetPlan
    dry_run: bool = False

    @property
    def runs(self) -> list[TargetRun]:
        return self.plan.runs

    def count(self, *statuses: TargetStatus) -> int:
        return sum(1 for r in self.runs if r.status in statuses)

    @property
    def ok(self) -> bool:
        """Every target is done, succeeded, skipped on request (or planned, in a dry run)."""
        allowed: tuple[TargetStatus, ...] = ("done", "succeeded", "skipped")
        if self.dry_run:
            allowed += ("planned",)
        return all(r.status in allowed for r in self.runs)

    def summary(self) -> dict[str, int]:
        statuses: list[TargetStatus] = [
            "succeeded",
            "done",
            "planned",
            "failed",
            "held",
            "aborted",
            "refused",
            "unsaved",
            "skipped",
        ]
        return {status: self.count(status) for status in statuses} | {"total": len(self.runs)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.plan.database,
            "databases": self.plan.databases or [self.plan.database],
            "target": {"commit": self.plan.target_commit, "tags": self.plan.target_tags},
            "dry_run": self.dry_run,
            "plans_built": self.plan.plans_built,
            "ok": self.ok,
            "summary": self.summary(),
            "targets": [r.as_dict() for r in self.runs],
        }
