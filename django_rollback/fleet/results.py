"""What planning a fleet found and what running it did: plain data the commands present."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..models import MigrationKey
from ..planning import RollbackPlan
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

    @property
    def steps(self) -> int:
        return len(self.plan.steps) if self.plan is not None else 0

    @property
    def data_loss(self) -> list[str]:
        """What unapplying drops in this schema, in the words of the single-database preview."""
        if self.plan is None:
            return []
        return [f"{step.label}: {loss.describe()}" for step, loss in self.plan.data_loss]

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
class AppliedGroup:
    """Targets of one kind that stand at the same applied set, and so share one plan."""

    kind: TargetKind
    applied: frozenset[MigrationKey]
    schemas: tuple[str, ...]
    steps: tuple[str, ...]


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
        """The planned targets grouped by kind and applied set, largest group first."""
        found: dict[tuple[TargetKind, frozenset[MigrationKey]], list[TargetRun]] = {}
        for run in self.planned:
            found.setdefault((run.target.kind, run.applied), []).append(run)
        groups = [
            AppliedGroup(
                kind,
                applied,
                tuple(r.target.name for r in runs),
                tuple(s.label for s in runs[0].plan.steps) if runs[0].plan else (),
            )
            for (kind, applied), runs in found.items()
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
