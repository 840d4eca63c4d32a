"""The preview of a plan, as `rollback_migrations --fake` prints it; the admin's page shows
the same parts through its template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..planning import RollbackPlan, labels
from .text import describe_state, to_unapply

LineKind = Literal["info", "warning", "error", "sql"]


@dataclass(frozen=True)
class Line:
    text: str
    kind: LineKind = "info"


def size_sentence(plan: RollbackPlan) -> str:
    """ "3 migrations in 2 apps to unapply.": in the summary below and on the admin's preview."""
    return to_unapply(len(plan.steps), len(plan.app_changes))


def summary(plan: RollbackPlan) -> str:
    """ "Rollback from A to B: 3 migrations in 2 apps to unapply." """
    return (
        f"Rollback from {describe_state(plan.current)} to {describe_state(plan.target)}: "
        f"{size_sentence(plan)}"
    )


def preview_lines(plan: RollbackPlan, *, detailed: bool) -> list[Line]:
    """The summary, per app current → target, how it runs; with `detailed` each step with
    its operations, notes and locks, and the blockers; then what is kept, the warnings and
    the SQL when it was asked for."""
    lines = [Line(summary(plan))]
    lines += [Line(f"  {change.describe()}") for change in plan.app_changes]
    if plan.stray_records:
        lines.append(Line(stray_records_line(plan)))
    elif not plan.steps:
        lines.append(Line("No migrations to unapply; only the saved states change."))
    elif plan.all_or_nothing:
        lines.append(
            Line(f"All or nothing: the whole plan runs in one transaction ({plan.vendor}).")
        )
    if detailed:
        lines += _step_lines(plan)
    lines += [Line(f"Kept: {kept}") for kept in plan.kept]
    lines += [Line(f"Warning: {warning}", "warning") for warning in plan.warnings]
    if detailed:
        lines += [Line(f"Blocked: {blocker}", "error") for blocker in plan.blockers]
    if plan.sql is not None:
        lines.append(Line("SQL of the plan:"))
        lines += [Line(statement, "sql") for statement in plan.sql]
    return lines


def stray_records_line(plan: RollbackPlan) -> str:
    return (
        f"No migrations to unapply; the record of {labels(sorted(plan.stray_records))} goes "
        "(the newer release's `migrate` recorded the squash because all it replaces is "
        "applied; the target did not) and the saved states change."
    )


def _step_lines(plan: RollbackPlan) -> list[Line]:
    lines = [Line("Steps, in order:")] if plan.steps else []
    for number, step in enumerate(plan.steps, 1):
        lines.append(Line(f"  {number}. {step.label}"))
        lines += [
            Line(f"       {operation}") for operation in step.operations or ["(no operations)"]
        ]
        lines += [Line(f"       note: {note}") for note in step.notes]
        for lock in step.locks:
            size = plan.tables.get(lock.table)
            sized = f" [{size.describe()}]" if size else ""
            lines.append(Line(f"       locks {lock.describe()}{sized}"))
    return lines
